//! The Git source against real repositories and servers: file://, `git daemon` on loopback, and
//! an OpenSSH server on a loopback port with its own host key.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::git::{GitDaemon, Remote, git};
use slipway::source::git::{GitAuth, GitError, GitRef, GitSettings, Secret, SshKey, sync};

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
        auth: GitAuth { ssh_key: Some(key), known_hosts: Some(known_hosts), ..Default::default() },
        ..settings(url.clone(), GitRef::Branch("main".into()), &workdir.path().join(dir))
    };
    let key_file = SshKey::File(sshd.dir.path().join("client_key"));
    let head = git(&remote.work(), &["rev-parse", "HEAD"]);

    // The right host key in known_hosts: fetched with the key file, and with the key inline.
    assert_eq!(sync(&with(sshd.known_hosts_with("host_key"), key_file.clone(), "file")).unwrap().commit, head);
    let inline = SshKey::Inline(Secret::new(std::fs::read_to_string(sshd.dir.path().join("client_key")).unwrap()));
    assert_eq!(sync(&with(sshd.known_hosts_with("host_key"), inline, "inline")).unwrap().commit, head);

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
}
