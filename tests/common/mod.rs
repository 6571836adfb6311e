//! Test harness: a real moto server (the AWS emulator) on a free loopback port, one per test,
//! and a copy of the example config repository to edit.
#![allow(dead_code)]

pub mod git;
pub mod http;
pub mod proxy;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_sdk_s3::config::{Credentials, Region};
use slipway_aws::Aws;
use slipway_aws::calls::Unobserved;

pub const REGION: &str = "ap-northeast-1";
pub const ACCOUNT: &str = "123456789012";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file below `dir`, recursively, appended to `out`.
pub fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn moto_server_bin() -> PathBuf {
    if let Ok(path) = std::env::var("SLIPWAY_MOTO_SERVER") {
        return PathBuf::from(path);
    }
    let venv = repo_root().join(".venv/bin/moto_server");
    assert!(venv.exists(), "moto is not installed: run `scripts/setup` (it creates .venv with moto[server]==5.2.5)");
    venv
}

pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    /// Starts moto and waits until it answers.
    pub fn start() -> Moto {
        Moto::start_with(&[])
    }

    /// Starts moto with its request recorder writing every request (headers included) to
    /// `file`, one JSON object a line.
    #[allow(dead_code)] // not every test binary that includes this module needs it
    pub fn start_recording(file: &Path) -> Moto {
        Moto::start_with(&[("MOTO_RECORDER_FILEPATH", file.to_str().unwrap()), ("MOTO_ENABLE_RECORDING", "true")])
    }

    fn start_with(env: &[(&str, &str)]) -> Moto {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(moto_server_bin())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("failed to start moto_server");
        // Ready when it answers HTTP, not merely when the port accepts connections.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !answers_http(port) {
            assert!(Instant::now() < deadline, "moto_server did not answer on port {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { child, endpoint: format!("http://127.0.0.1:{port}") }
    }

    /// Starts moto and creates what the examples reference (examples/bootstrap-emulator).
    pub fn start_bootstrapped() -> Moto {
        let moto = Moto::start();
        let out = Command::new(repo_root().join("examples/bootstrap-emulator"))
            .envs(moto.env())
            .output()
            .expect("failed to run bootstrap-emulator");
        assert!(out.status.success(), "bootstrap failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        moto
    }

    /// The environment a slipway process needs to talk to this emulator.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", REGION.into()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_MAX_ATTEMPTS", "2".into()),
        ]
    }

    /// Clients pointed at this emulator. Two attempts at most: moto answers HTTP 500 for the
    /// operations it lacks, which the SDK would otherwise retry with back-off.
    pub async fn aws(&self) -> Aws {
        self.aws_via(&self.endpoint).await
    }

    /// Clients that reach this emulator through `endpoint` (a proxy in front of it).
    pub async fn aws_via(&self, endpoint: &str) -> Aws {
        self.aws_observed_via(endpoint, std::sync::Arc::new(Unobserved)).await
    }

    /// Clients that tell `observer` about every call, in the order the calls end.
    #[allow(dead_code)] // not every test binary that includes this module needs it
    pub async fn aws_observed(&self, observer: std::sync::Arc<dyn slipway_aws::calls::CallObserver>) -> Aws {
        self.aws_observed_via(&self.endpoint, observer).await
    }

    async fn aws_observed_via(&self, endpoint: &str, observer: std::sync::Arc<dyn slipway_aws::calls::CallObserver>) -> Aws {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
            .retry_config(RetryConfig::standard().with_max_attempts(2))
            .load()
            .await;
        Aws::from_config(&config, observer).await.expect("moto answers sts:GetCallerIdentity")
    }
}

fn answers_http(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if stream.write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: localhost\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A copy of `examples/` in a temporary directory (not a Git work tree), to edit freely.
pub fn example_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo_root().join("examples"), dir.path());
    dir
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Replaces `from` with `to` in a file of the repository, insisting that `from` is there.
pub fn edit(repo: &Path, file: &str, from: &str, to: &str) {
    let path = repo.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{file} does not contain {from:?}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}
