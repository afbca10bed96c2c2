//! Shutdown that load balancers understand (issue #14): `/readyz` turns 503 the moment SIGTERM
//! arrives while `/healthz` stays 200, `--shutdown-delay` / `IMGBIND_SHUTDOWN_DELAY` keeps the
//! listener open and serving for that long, then the listener closes and the process exits 0.
//! Runs the real binary so the signal path is the production one.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use support::common::*;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::process::Child;

const BINARY: &str = env!("CARGO_BIN_EXE_imgbind");

/// Starts `imgbind serve --unix <dir>/s.sock` with extra environment, and waits until it accepts.
async fn start(dir: &Path, env: &[(&str, &str)]) -> (Child, PathBuf) {
    let socket = dir.join("s.sock");
    let mut command = tokio::process::Command::new(BINARY);
    command
        .args(["serve", "--log-level", "warn"])
        .env("IMGBIND_UNIX", &socket)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    let child = command.spawn().unwrap();
    let started = Instant::now();
    while UnixStream::connect(&socket).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "server did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (child, socket)
}

async fn connect(socket: &Path) -> Conn {
    Box::new(UnixStream::connect(socket).await.unwrap())
}

async fn get_on(conn: &mut Conn, path: &str) -> RawResponse {
    conn.write_all(format!("GET {path} HTTP/1.1\r\nhost: images.local\r\n\r\n").as_bytes())
        .await
        .unwrap();
    read_response(conn, Reading::FAST).await
}

async fn get(socket: &Path, path: &str) -> RawResponse {
    get_on(&mut connect(socket).await, path).await
}

fn transform_request() -> Vec<u8> {
    transform_body(
        &corpus("overlay-logo-337x330.png"),
        r#"[{"imageIndex":0,"width":64,"fit":"scale-down"}]"#,
        "image/webp",
    )
}

async fn transform_on(conn: &mut Conn) -> RawResponse {
    send_post(conn, "/transform", "", &transform_request()).await;
    read_response(conn, Reading::FAST).await
}

/// Runs `imgbind health` with the given arguments and environment: (exit ok, stdout + stderr).
fn health(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut command = std::process::Command::new(BINARY);
    command
        .arg("health")
        .args(args)
        .env_remove("IMGBIND_LISTEN")
        .env_remove("IMGBIND_UNIX");
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

fn sigterm(child: &Child) {
    kill(Pid::from_raw(child.id().unwrap() as i32), Signal::SIGTERM).unwrap();
}

#[tokio::test]
async fn readyz_fails_at_sigterm_and_the_server_keeps_serving_for_the_delay() {
    let dir = tempfile::tempdir().unwrap();
    let delay = Duration::from_millis(2500);
    let (mut child, socket) = start(dir.path(), &[("IMGBIND_SHUTDOWN_DELAY", "2500ms")]).await;

    let ready = get(&socket, "/readyz").await;
    assert_eq!((ready.status, ready.text().as_str()), (200, "ready\n"));
    // The container healthcheck's probe agrees (IMGBIND_UNIX, as the server reads it).
    let unix = socket.to_str().unwrap();
    let probe = health(&["--path", "/readyz"], &[("IMGBIND_UNIX", unix)]);
    assert!(probe.0, "{}", probe.1);
    // A keep-alive connection opened before the signal.
    let mut before = connect(&socket).await;
    assert_eq!(get_on(&mut before, "/healthz").await.status, 200);

    sigterm(&child);
    let signalled = Instant::now();
    // Readiness turns at once (well inside the delay)…
    let not_ready = loop {
        let answer = get(&socket, "/readyz").await;
        if answer.status != 200 {
            break answer;
        }
        assert!(
            signalled.elapsed() < Duration::from_millis(500),
            "/readyz still 200"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(
        (not_ready.status, not_ready.text().as_str()),
        (503, "shutting down\n")
    );
    // …liveness does not, and new and existing connections are still served, transforms included.
    assert_eq!(get(&socket, "/healthz").await.status, 200);
    let probe = health(&["--unix", unix, "--path", "/readyz"], &[]);
    assert!(!probe.0 && probe.1.contains("503"), "{}", probe.1);
    let probe = health(&["--unix", unix], &[]);
    assert!(probe.0 && probe.1.contains("200"), "{}", probe.1);
    let mut fresh = connect(&socket).await;
    assert_image(
        &transform_on(&mut fresh).await,
        image::ImageFormat::WebP,
        64,
        63,
    );
    assert_image(
        &transform_on(&mut before).await,
        image::ImageFormat::WebP,
        64,
        63,
    );

    // Still accepting late in the delay.
    tokio::time::sleep_until((signalled + delay - Duration::from_millis(700)).into()).await;
    assert_eq!(get(&socket, "/readyz").await.status, 503);
    assert!(signalled.elapsed() < delay);

    // Then the listener closes and the process exits 0 (idle connections end at once).
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits after the delay")
        .unwrap();
    let exited = signalled.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        exited >= delay,
        "exited after {exited:?}, before the {delay:?} delay"
    );
    assert!(
        exited < delay + Duration::from_secs(5),
        "exited after {exited:?}"
    );
    assert!(UnixStream::connect(&socket).await.is_err());
}

#[tokio::test]
async fn without_a_delay_sigterm_closes_the_listener_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, socket) = start(dir.path(), &[]).await;
    assert_eq!(get(&socket, "/readyz").await.status, 200);
    let mut post = connect(&socket).await;
    assert_eq!(get_on(&mut post, "/readyz").await.status, 200);
    // /readyz is GET only, like /healthz.
    send_post(&mut post, "/readyz", "", b"x").await;
    assert_eq!(read_response(&mut post, Reading::FAST).await.status, 405);
    drop(post);

    sigterm(&child);
    let signalled = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits")
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        signalled.elapsed() < Duration::from_secs(2),
        "took {:?}",
        signalled.elapsed()
    );
}

#[test]
fn a_bad_shutdown_delay_is_refused_at_startup() {
    let output = std::process::Command::new(BINARY)
        .args(["serve", "--shutdown-delay", "5h", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--shutdown-delay"), "{stderr}");
}

#[tokio::test]
async fn the_health_probe_reaches_a_wildcard_listener_through_loopback() {
    // A free port: bind, note it, release it for the server.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("0.0.0.0:{port}");
    let mut child = tokio::process::Command::new(BINARY)
        .args(["serve", "--log-level", "warn"])
        .env("IMGBIND_LISTEN", &listen)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let started = Instant::now();
    let env = [("IMGBIND_LISTEN", listen.as_str())];
    while !health(&[], &env).0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no healthy answer: {}",
            health(&[], &env).1
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let missing = health(&["--path", "/nowhere"], &env);
    assert!(!missing.0 && missing.1.contains("404"), "{}", missing.1);
    child.kill().await.unwrap();
    child.wait().await.unwrap();
    let gone = health(&["--timeout", "500ms"], &env);
    assert!(!gone.0 && gone.1.contains("cannot connect"), "{}", gone.1);
}
