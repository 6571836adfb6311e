//! The Git source against real repositories and servers: file://, `git daemon` on loopback, and
//! an OpenSSH server on a loopback port with its own host key.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::git::{GitDaemon, Remote, git};
use slipway::source::git::{GitAuth, GitError, GitRef, GitSettings, KnownHosts, Secret, SshKey, sync};

fn settings(url: String, reference: GitRef, workdir: &Path) -> GitSettings {
    GitSettings { url, reference, workdir: workdir.to_path_buf(), auth: GitAuth::default(), timeout: Duration::from_secs(30) }
}

fn seed() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("README"), "config\n").unwrap();
    dir
}

#[test]
fn a_repository_is_cloned_once_then_fetched_incrementally() {
    let seed = seed();
    let remote = Remote::with_contents(seed.path());
    let workdir = tempfile::tempdir().unwrap();
    let s = settings(remote.file_url(), GitRef::Branch("main".into()), &workdir.path().join("checkout"));

    let first = sync(&s).unwrap();
    assert!(first.cloned);
    assert_eq!(first.commit, git(&remote.work(), &["rev-parse", "HEAD"]));
    let marker = workdir.path().join("checkout/.git/slipway-marker");
    std::fs::write(&marker, "").unwrap();

    std::fs::write(remote.work().join("README"), "changed\n").unwrap();
    let second_commit = remote.commit_and_push("change");
    let second = sync(&s).unwrap();
    assert!(!second.cloned, "no re-clone");
    assert!(marker.exists(), "the same work directory was reused");
    assert_eq!(second.commit, second_commit);
    assert_eq!(std::fs::read_to_string(workdir.path().join("checkout/README")).unwrap(), "changed\n");
}

#[test]
fn tags_and_commits_are_checked_out_and_a_missing_branch_is_a_clear_error() {
    let seed = seed();
    let remote = Remote::with_contents(seed.path());
    let first = git(&remote.work(), &["rev-parse", "HEAD"]);
    git(&remote.work(), &["tag", "v1"]);
    git(&remote.work(), &["push", "-q", "origin", "v1"]);
    std::fs::write(remote.work().join("README"), "v2\n").unwrap();
    remote.commit_and_push("v2");
    let workdir = tempfile::tempdir().unwrap();

    assert_eq!(sync(&settings(remote.file_url(), GitRef::Tag("v1".into()), &workdir.path().join("a"))).unwrap().commit, first);
    assert_eq!(sync(&settings(remote.file_url(), GitRef::Commit(first.clone()), &workdir.path().join("b"))).unwrap().commit, first);
    let err = sync(&settings(remote.file_url(), GitRef::Branch("nope".into()), &workdir.path().join("c"))).unwrap_err();
    assert!(matches!(err, GitError::Fetch { .. } | GitError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("branch nope"), "{err}");
}

#[test]
fn a_repository_served_by_git_daemon_is_fetched() {
    let seed = seed();
    let remote = Remote::with_contents(seed.path());
    let daemon = GitDaemon::serve(remote.dir.path());
    let workdir = tempfile::tempdir().unwrap();
    let s = settings(format!("git://127.0.0.1:{}/config.git", daemon.port), GitRef::Branch("main".into()), workdir.path());
    assert_eq!(sync(&s).unwrap().commit, git(&remote.work(), &["rev-parse", "HEAD"]));
}

/// An OpenSSH server on a loopback port, with its own host key, accepting one client key.
struct Sshd {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Sshd {
    fn start() -> Sshd {
        let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"].into_iter().map(PathBuf::from).find(|p| p.exists());
        let sshd = sshd.expect("sshd is not installed: scripts/setup installs openssh-server");
        // sshd insists on its privilege separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for name in ["host_key", "client_key", "other_host_key"] {
            let status = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(d.join(name)).status().unwrap();
            assert!(status.success());
        }
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nAuthorizedKeysFile {auth}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PubkeyAuthentication yes\nStrictModes no\nUsePAM no\nPermitRootLogin prohibit-password\nPidFile {pid}\nLogLevel ERROR\n",
            host = d.join("host_key").display(),
            auth = d.join("authorized_keys").display(),
            pid = d.join("sshd.pid").display(),
        );
        std::fs::write(d.join("sshd_config"), config).unwrap();
        let child = Command::new(sshd)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(d.join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "sshd did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Sshd { child, port, dir }
    }

    fn known_hosts_with(&self, key_file: &str) -> PathBuf {
        let public = std::fs::read_to_string(self.dir.path().join(format!("{key_file}.pub"))).unwrap();
        let path = self.dir.path().join(format!("known_hosts_{key_file}"));
        let key: Vec<&str> = public.split_whitespace().take(2).collect();
        std::fs::write(&path, format!("[127.0.0.1]:{} {}\n", self.port, key.join(" "))).unwrap();
        path
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn key_file_of(sshd: &Sshd) -> SshKey {
    SshKey::File(sshd.dir.path().join("client_key"))
}

fn whoami() -> String {
    String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap().trim().to_string()
}

#[test]
fn ssh_key_authentication_with_a_checked_host_key_and_refusal_of_unknown_or_changed_ones() {
    let seed = seed();
    let remote = Remote::with_contents(seed.path());
    let sshd = Sshd::start();
    let url = format!("ssh://{}@127.0.0.1:{}{}", whoami(), sshd.port, remote.bare().display());
    let workdir = tempfile::tempdir().unwrap();
    let with = |known_hosts: PathBuf, key: SshKey, dir: &str| GitSettings {
        auth: GitAuth { ssh_key: Some(key), known_hosts: KnownHosts::File(known_hosts), ..Default::default() },
        ..settings(url.clone(), GitRef::Branch("main".into()), &workdir.path().join(dir))
    };
    let key_file = key_file_of(&sshd);
    let head = git(&remote.work(), &["rev-parse", "HEAD"]);

    // The right host key in known_hosts: fetched with the key file, and with the key inline.
    assert_eq!(sync(&with(sshd.known_hosts_with("host_key"), key_file.clone(), "file")).unwrap().commit, head);
    let inline = SshKey::Inline(Secret::new(std::fs::read_to_string(sshd.dir.path().join("client_key")).unwrap()));
    assert_eq!(sync(&with(sshd.known_hosts_with("host_key"), inline, "inline")).unwrap().commit, head);

    // known_hosts lines given inline (SLIPWAY_KNOWN_HOSTS_DATA) are checked the same way.
    let inline_hosts = |key_file: &str, dir: &str| GitSettings {
        auth: GitAuth {
            ssh_key: Some(key_file_of(&sshd)),
            known_hosts: KnownHosts::Inline(std::fs::read_to_string(sshd.known_hosts_with(key_file)).unwrap()),
            ..Default::default()
        },
        ..settings(url.clone(), GitRef::Branch("main".into()), &workdir.path().join(dir))
    };
    assert_eq!(sync(&inline_hosts("host_key", "inline-hosts")).unwrap().commit, head);
    let err = sync(&inline_hosts("other_host_key", "inline-hosts-changed")).unwrap_err().to_string();
    assert!(err.contains("does not match the known_hosts lines given inline"), "{err}");

    // An unknown host is refused.
    let empty = sshd.dir.path().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let err = sync(&with(empty, key_file.clone(), "unknown")).unwrap_err().to_string();
    assert!(err.contains(&format!("host key of [127.0.0.1]:{} is not in", sshd.port)), "{err}");

    // A changed host key is refused.
    let err = sync(&with(sshd.known_hosts_with("other_host_key"), key_file.clone(), "changed")).unwrap_err().to_string();
    assert!(err.contains("does not match"), "{err}");

    // A key the server does not accept fails authentication, and says so without the key.
    let wrong = SshKey::File(sshd.dir.path().join("other_host_key"));
    let err = sync(&with(sshd.known_hosts_with("host_key"), wrong, "wrong")).unwrap_err().to_string();
    assert!(err.contains("failed to fetch") && !err.contains("PRIVATE KEY"), "{err}");
    assert!(err.contains("check the SSH key"), "an authentication failure says what to check: {err}");
}

/// `git http-backend` (Git's own smart-HTTP server, run as CGI) behind basic auth on loopback:
/// the HTTPS-style authentication path, without TLS.
mod http_backend {
    use std::io::Write;
    use std::path::PathBuf;
    use std::process::{Command, Stdio};

    use axum::body::{Body, Bytes};
    use axum::http::{HeaderMap, Method, Response, StatusCode, Uri};
    use base64::Engine;

    pub async fn serve(root: PathBuf, user: &'static str, password: &'static str) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let root = root.clone();
            async move { handle(root, user, password, method, uri, headers, body) }
        });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        port
    }

    fn handle(root: PathBuf, user: &str, password: &str, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response<Body> {
        let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")));
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
            return Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .header("WWW-Authenticate", "Basic realm=\"git\"")
                .body(Body::empty())
                .unwrap();
        }
        let mut child = Command::new("git")
            .arg("http-backend")
            .env("GIT_PROJECT_ROOT", &root)
            .env("GIT_HTTP_EXPORT_ALL", "1")
            .env("REQUEST_METHOD", method.as_str())
            .env("PATH_INFO", uri.path())
            .env("QUERY_STRING", uri.query().unwrap_or(""))
            .env("CONTENT_TYPE", headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or(""))
            .env("CONTENT_LENGTH", body.len().to_string())
            .env("HTTP_CONTENT_ENCODING", headers.get("content-encoding").and_then(|v| v.to_str().ok()).unwrap_or(""))
            .env("GIT_PROTOCOL", headers.get("git-protocol").and_then(|v| v.to_str().ok()).unwrap_or(""))
            .env("REMOTE_USER", user)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&body).unwrap();
        let out = child.wait_with_output().unwrap();
        // CGI output: headers, a blank line, the body.
        let split = out
            .stdout
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|i| (i, 4))
            .or_else(|| out.stdout.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
        let (end, sep) = split.expect("CGI headers end with a blank line");
        let mut response = Response::builder();
        for line in String::from_utf8_lossy(&out.stdout[..end]).lines() {
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("status") {
                    response = response.status(v.trim()[..3].parse::<u16>().unwrap());
                } else {
                    response = response.header(k.trim(), v.trim());
                }
            }
        }
        response.body(Body::from(out.stdout[end + sep..].to_vec())).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn https_style_token_and_basic_auth_against_git_http_backend() {
    let seed = seed();
    let remote = Remote::with_contents(seed.path());
    let head = git(&remote.work(), &["rev-parse", "HEAD"]);
    let token_port = http_backend::serve(remote.dir.path().to_path_buf(), "x-access-token", "tok-123").await;
    let basic_port = http_backend::serve(remote.dir.path().to_path_buf(), "deployer", "pa55").await;
    let workdir = tempfile::tempdir().unwrap();
    let run = |port: u16, auth: GitAuth, dir: &str| {
        let s = GitSettings {
            auth,
            ..settings(format!("http://127.0.0.1:{port}/config.git"), GitRef::Branch("main".into()), &workdir.path().join(dir))
        };
        std::thread::spawn(move || sync(&s)).join().unwrap()
    };

    let token = GitAuth { token: Some(Secret::new("tok-123")), ..Default::default() };
    assert_eq!(run(token_port, token, "token").unwrap().commit, head);
    let basic = GitAuth { username: Some("deployer".into()), password: Some(Secret::new("pa55")), ..Default::default() };
    assert_eq!(run(basic_port, basic, "basic").unwrap().commit, head);

    let wrong = GitAuth { token: Some(Secret::new("tok-wrong")), ..Default::default() };
    let err = run(token_port, wrong, "wrong").unwrap_err().to_string();
    assert!(err.contains("authentication failed") || err.contains("401"), "{err}");
    assert!(err.contains("check the token or password"), "an authentication failure says what to check: {err}");
    assert!(!err.contains("tok-wrong"), "the token must not appear in errors: {err}");

    let err = run(token_port, GitAuth::default(), "none").unwrap_err().to_string();
    assert!(err.contains("none are configured"), "{err}");
}

#[test]
fn a_server_that_never_answers_is_abandoned_after_the_timeout() {
    // Accepts connections and says nothing, like a hung Git server.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    slipway::source::git::set_network_timeouts(Duration::from_secs(2));
    let workdir = tempfile::tempdir().unwrap();
    let mut s = settings(format!("git://127.0.0.1:{port}/config.git"), GitRef::Branch("main".into()), workdir.path());
    s.timeout = Duration::from_secs(2);
    let started = Instant::now();
    let err = sync(&s).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(15), "gave up after {:?}", started.elapsed());
    assert!(err.to_string().starts_with("failed to fetch git://127.0.0.1"), "{err}");
}
