//! The real `imgbind` binary: flags from the environment, socket permissions, a transform, and a
//! clean exit on SIGTERM.

mod support;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::process::Stdio;
use std::time::{Duration, Instant};

use image::ImageFormat;
use support::common::*;
use tokio::net::UnixStream;

const BINARY: &str = env!("CARGO_BIN_EXE_imgbind");

#[test]
fn help_documents_flags_env_vars_and_defaults() {
    let output = std::process::Command::new(BINARY)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for expected in [
        "--unix",
        "IMGBIND_UNIX",
        "--listen",
        "IMGBIND_LISTEN",
        "127.0.0.1:8790",
        "--unix-mode",
        "[default: 600]",
        "IMGBIND_MAX_INPUT_BYTES",
        "--drain-max-bytes",
    ] {
        assert!(
            help.contains(expected),
            "--help lacks {expected:?}:\n{help}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn serves_on_a_unix_socket_from_env_and_exits_0_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("imgbind.sock");
    // A stale socket file from an earlier run is replaced.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());

    let mut child = tokio::process::Command::new(BINARY)
        .arg("serve")
        .env("IMGBIND_UNIX", &socket)
        .env("IMGBIND_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let started = Instant::now();
    let mut conn: Conn = loop {
        if let Ok(stream) = UnixStream::connect(&socket).await {
            break Box::new(stream);
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "server did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let meta = std::fs::metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    let body = transform_body(
        &corpus("photo-20mp-kleiber.jpg"),
        r#"[{"imageIndex":0,"width":800}]"#,
        "image/jpeg",
    );
    send_post(&mut conn, "/transform", "", &body).await;
    assert_image(
        &read_response(&mut conn, Reading::FAST).await,
        ImageFormat::Jpeg,
        800,
        450,
    );
    drop(conn);

    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(!socket.exists(), "socket file removed on exit");
}
