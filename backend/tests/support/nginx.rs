//! nginx (Debian's package) as a reverse proxy in front of the backend, for delivery tests: an
//! unprivileged-port instance with a generated config in a temp dir, run in the foreground
//! (`nginx -p DIR -c DIR/nginx.conf -g 'daemon off;'`) and stopped with SIGQUIT/SIGKILL on drop.

#![allow(dead_code, unreachable_pub)]

use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running nginx.
pub struct Nginx {
    /// Where clients connect.
    pub addr: SocketAddr,
    child: Child,
    dir: tempfile::TempDir,
}

/// The nginx binary: `$IMGBIND_NGINX`, else `/usr/sbin/nginx`, else `nginx` on `PATH`.
pub fn nginx_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("IMGBIND_NGINX") {
        return Some(PathBuf::from(path));
    }
    let sbin = Path::new("/usr/sbin/nginx");
    if sbin.exists() {
        return Some(sbin.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("nginx"))
            .find(|path| path.exists())
    })
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Nginx {
    /// Starts nginx with these locations (each `(prefix, upstream URL, extra directives)`),
    /// e.g. `("/", "http://unix:/path/s.sock:", "")`. Request buffering is off everywhere.
    pub fn start(locations: &[(&str, String, &str)]) -> Nginx {
        let binary = nginx_binary()
            .expect("nginx not found: scripts/setup.sh installs it (apt-get install nginx)");
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let port = free_port();
        // As root, nginx's workers would switch to `nobody`, which cannot reach the backend's
        // owner-only socket in an owner-only temp dir; keep them as root. (Unprivileged: ignored.)
        let as_root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        let user = if as_root { "user root root;" } else { "" };
        let mut servers = String::new();
        for (prefix, upstream, extra) in locations {
            servers.push_str(&format!(
                "        location {prefix} {{\n\
                 \x20           proxy_pass {upstream};\n\
                 \x20           proxy_http_version 1.1;\n\
                 \x20           proxy_set_header Connection \"\";\n\
                 \x20           proxy_request_buffering off;\n\
                 \x20           {extra}\n\
                 \x20       }}\n"
            ));
        }
        let r = root.display();
        let config = format!(
            "{user}\n\
             worker_processes 2;\n\
             error_log {r}/error.log warn;\n\
             pid {r}/nginx.pid;\n\
             events {{ worker_connections 512; }}\n\
             http {{\n\
             \x20   access_log off;\n\
             \x20   client_body_temp_path {r}/client_body;\n\
             \x20   proxy_temp_path {r}/proxy;\n\
             \x20   fastcgi_temp_path {r}/fastcgi;\n\
             \x20   uwsgi_temp_path {r}/uwsgi;\n\
             \x20   scgi_temp_path {r}/scgi;\n\
             \x20   client_max_body_size 0;\n\
             \x20   proxy_read_timeout 120s;\n\
             \x20   proxy_send_timeout 120s;\n\
             \x20   send_timeout 120s;\n\
             \x20   server {{\n\
             \x20       listen 127.0.0.1:{port};\n\
             {servers}\
             \x20   }}\n\
             }}\n"
        );
        let conf = root.join("nginx.conf");
        std::fs::write(&conf, config).unwrap();
        let child = Command::new(&binary)
            .arg("-p")
            .arg(root)
            .arg("-e")
            .arg(root.join("error.log"))
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut nginx = Nginx {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child,
            dir,
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(nginx.addr).is_err() {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                panic!("nginx exited at start ({status}):\n{}", nginx.error_log());
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "nginx did not start:\n{}",
                nginx.error_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        nginx
    }

    /// nginx's error log so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGQUIT: graceful stop of master and workers; SIGKILL if that takes too long.
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGQUIT);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
