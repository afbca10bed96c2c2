//! The scale-out store's services for tests, started per test and stopped on drop: a real
//! PostgreSQL (Debian's `postgresql` 15: `initdb` into a temporary directory, listening only on a
//! Unix socket there; as the `postgres` user when the tests run as root) and a real
//! S3-compatible server on loopback (moto's server mode, from PyPI into the project's venv
//! `target/py` by `scripts/setup.sh`). Where either cannot start, [`Services::start`] says why
//! and the test is skipped — except under `CI=true`, where that is a failure.

#![allow(dead_code, unreachable_pub)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// PostgreSQL and an S3 server for one test.
pub struct Services {
    dir: tempfile::TempDir,
    moto: Child,
    s3_port: u16,
    database: String,
}

/// `/proc/self` belongs to the process's effective user.
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn as_postgres(program: &str) -> Command {
    let path = format!("{PG_BIN}/{program}");
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--", &path]);
        command
    } else {
        Command::new(path)
    }
}

fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let out = command
        .output()
        .map_err(|e| format!("{what}: cannot run: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn moto_server() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/py/bin/moto_server")
}

impl Services {
    /// Starts both, or says why not (a skip, or a panic under `CI=true`).
    pub fn start() -> Option<Services> {
        match Services::try_start() {
            Ok(services) => Some(services),
            Err(why) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("the S3 + PostgreSQL store's services did not start: {why}")
            }
            Err(why) => {
                eprintln!("SKIP (S3 + PostgreSQL store): {why}");
                None
            }
        }
    }

    fn try_start() -> Result<Services, String> {
        if !Path::new(PG_BIN).join("initdb").exists() {
            return Err(format!(
                "no PostgreSQL in {PG_BIN} (scripts/setup.sh installs Debian's postgresql)"
            ));
        }
        if !moto_server().exists() {
            return Err("no moto_server in target/py (scripts/setup.sh installs it)".into());
        }
        let dir = tempfile::Builder::new()
            .prefix("imgbind-pg")
            .tempdir_in("/tmp")
            .map_err(|e| e.to_string())?;
        if is_root() {
            run(
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(dir.path()),
                "chown",
            )?;
        }
        let data = dir.path().join("data");
        run(
            as_postgres("initdb")
                .args([
                    "-A",
                    "trust",
                    "-U",
                    "imgbind",
                    "--no-sync",
                    "-E",
                    "UTF8",
                    "-D",
                ])
                .arg(&data),
            "initdb",
        )?;
        let options = format!(
            "-c listen_addresses='' -c unix_socket_directories='{}' -c fsync=off -c max_connections=200",
            dir.path().display()
        );
        run(
            as_postgres("pg_ctl")
                .args(["-w", "-t", "30", "-l"])
                .arg(dir.path().join("log"))
                .args(["-o", &options, "-D"])
                .arg(&data)
                .arg("start"),
            "pg_ctl start",
        )?;
        let s3_port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let moto = Command::new(moto_server())
            .args(["-H", "127.0.0.1", "-p", &s3_port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("moto_server: {e}"))?;
        let mut services = Services {
            dir,
            moto,
            s3_port,
            database: "postgres".into(),
        };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", s3_port)).is_err() {
            if started.elapsed() > Duration::from_secs(30) {
                return Err("moto_server did not listen within 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        services.create_bucket("images")?;
        services.database = "images".into();
        services.psql("postgres", "CREATE DATABASE images")?;
        Ok(services)
    }

    /// `PUT /<bucket>` on moto (it needs no signature).
    fn create_bucket(&self, bucket: &str) -> Result<(), String> {
        use std::io::{Read, Write};
        let mut conn =
            TcpStream::connect(("127.0.0.1", self.s3_port)).map_err(|e| e.to_string())?;
        write!(
            conn,
            "PUT /{bucket} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )
        .map_err(|e| e.to_string())?;
        let mut answer = String::new();
        let _ = conn.read_to_string(&mut answer);
        if answer.starts_with("HTTP/1.1 200") {
            Ok(())
        } else {
            Err(format!(
                "creating the bucket: {}",
                answer.lines().next().unwrap_or("")
            ))
        }
    }

    /// Runs SQL in `database` with psql over the socket.
    pub fn psql(&self, database: &str, sql: &str) -> Result<(), String> {
        run(
            Command::new("psql")
                .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
                .arg(self.dir.path())
                .args(["-U", "imgbind", "-d", database, "-c", sql]),
            "psql",
        )
    }

    /// Runs SQL in the test's database.
    pub fn sql(&self, sql: &str) -> Result<(), String> {
        self.psql(&self.database, sql)
    }

    /// The backend's environment for this store.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "IMGBIND_DATABASE_URL".into(),
                format!(
                    "postgres://imgbind@localhost/{}?host={}",
                    self.database,
                    self.dir.path().display()
                ),
            ),
            (
                "IMGBIND_OBJECT_STORE_URL".into(),
                "s3://images/hosted".into(),
            ),
            (
                "AWS_ENDPOINT".into(),
                format!("http://127.0.0.1:{}", self.s3_port),
            ),
            ("AWS_ALLOW_HTTP".into(), "true".into()),
            ("AWS_ACCESS_KEY_ID".into(), "test".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
            ("AWS_REGION".into(), "us-east-1".into()),
        ]
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        let _ = self.moto.kill();
        let _ = self.moto.wait();
        let _ = as_postgres("pg_ctl")
            .args(["-m", "immediate", "-D"])
            .arg(self.dir.path().join("data"))
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
