//! `imgbind health`: a probe for container healthchecks, where the image has no curl. It asks a
//! running `imgbind serve` for `GET /healthz` (or `--path /readyz`) over TCP or its Unix socket
//! and succeeds only on `200`. It reads the same `IMGBIND_LISTEN` / `IMGBIND_UNIX` variables as
//! `serve`, so a container configured by environment probes the address it serves on.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};

use crate::config::HealthArgs;

/// Most bytes of the answer read: the status line is all the probe needs.
const MOST_READ: usize = 4096;

/// Runs the probe: `Ok` with the status line on `200`, `Err` with what went wrong otherwise.
pub fn probe(args: &HealthArgs) -> Result<String, String> {
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: imgbind-health\r\nConnection: close\r\n\r\n",
        args.path
    );
    let answer = match (&args.listen, &args.unix) {
        (None, Some(path)) => {
            #[cfg(unix)]
            {
                let mut stream = std::os::unix::net::UnixStream::connect(path)
                    .map_err(|e| format!("cannot connect to {}: {e}", path.display()))?;
                stream.set_read_timeout(Some(args.timeout)).ok();
                stream.set_write_timeout(Some(args.timeout)).ok();
                exchange(&mut stream, &request)?
            }
            #[cfg(not(unix))]
            return Err(format!("no Unix sockets here ({})", path.display()));
        }
        (listen, _) => {
            let addr = reachable(listen.unwrap_or(crate::config::DEFAULT_LISTEN));
            let mut stream = TcpStream::connect_timeout(&addr, args.timeout)
                .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
            stream.set_read_timeout(Some(args.timeout)).ok();
            stream.set_write_timeout(Some(args.timeout)).ok();
            exchange(&mut stream, &request)?
        }
    };
    let status_line = answer.lines().next().unwrap_or_default().to_owned();
    match status_line.split_whitespace().nth(1) {
        Some("200") => Ok(status_line),
        Some(_) => Err(format!("{} answered {status_line:?}", args.path)),
        None => Err(format!("{} gave no HTTP answer", args.path)),
    }
}

/// A wildcard listen address (`0.0.0.0`, `::`) is reached through loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

/// Writes the request and reads the start of the answer (up to [`MOST_READ`] bytes or EOF).
fn exchange(stream: &mut (impl Read + Write), request: &str) -> Result<String, String> {
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("cannot send the probe: {e}"))?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 512];
    while buf.len() < MOST_READ && !buf.windows(2).any(|w| w == b"\r\n") {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("no answer: {e}")),
        }
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_addresses_are_probed_on_loopback() {
        let any: SocketAddr = "0.0.0.0:9000".parse().unwrap();
        assert_eq!(reachable(any), "127.0.0.1:9000".parse().unwrap());
        let any6: SocketAddr = "[::]:9000".parse().unwrap();
        assert_eq!(reachable(any6), "[::1]:9000".parse().unwrap());
        let other: SocketAddr = "10.1.2.3:9000".parse().unwrap();
        assert_eq!(reachable(other), other);
    }
}
