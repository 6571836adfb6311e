//! Cloning and fetching the config repository with git2.
//!
//! The work directory is initialised once and then only fetched (never re-cloned), and the
//! requested branch, tag or commit is checked out detached. Full history is kept: the source zip
//! of a build-in-AWS pipeline names the last commit that changed its directory, which a shallow
//! clone cannot know.
//!
//! Credentials never reach a log line, an error, `/status` or a metric: they live in [`Secret`]
//! (whose `Debug` is redacted) and URLs are shown through [`redact_url`].

use std::cell::RefCell;
use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use git2::build::CheckoutBuilder;
use git2::{CertificateCheckStatus, Cred, CredentialType, FetchOptions, Oid, RemoteCallbacks, Repository};

use super::knownhosts::{self, HostKeyVerdict};

/// A credential. Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// What to check out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitRef {
    Branch(String),
    Tag(String),
    Commit(String),
}

impl fmt::Display for GitRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GitRef::Branch(b) => write!(f, "branch {b}"),
            GitRef::Tag(t) => write!(f, "tag {t}"),
            GitRef::Commit(c) => write!(f, "commit {c}"),
        }
    }
}

#[derive(Debug, Clone)]
pub enum SshKey {
    File(PathBuf),
    /// The key itself, as the seeds pass `SSH_PRIVATE_KEY`.
    Inline(Secret),
}

/// The OpenSSH known_hosts lines SSH host keys are checked against.
#[derive(Debug, Clone, Default)]
pub enum KnownHosts {
    /// `~/.ssh/known_hosts`.
    #[default]
    Home,
    File(PathBuf),
    /// The lines themselves (from an environment variable, so that a container can take them
    /// from a secret store without a file). Host keys are public: no need to hide them.
    Inline(String),
}

impl KnownHosts {
    /// The lines, and where they came from (for error messages). A missing file reads as empty,
    /// so every host is unknown and refused.
    fn read(&self) -> (String, String) {
        match self {
            KnownHosts::Home => {
                let path = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/")).join(".ssh/known_hosts");
                (std::fs::read_to_string(&path).unwrap_or_default(), path.display().to_string())
            }
            KnownHosts::File(path) => (std::fs::read_to_string(path).unwrap_or_default(), path.display().to_string()),
            KnownHosts::Inline(lines) => (lines.clone(), "the known_hosts lines given inline (SLIPWAY_KNOWN_HOSTS_DATA)".into()),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct GitAuth {
    /// User name for HTTPS (defaults to `x-access-token` with a token) or SSH (defaults to the
    /// URL's user, then `git`).
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub token: Option<Secret>,
    pub ssh_key: Option<SshKey>,
    pub ssh_key_passphrase: Option<Secret>,
    /// Where SSH host keys are checked against.
    pub known_hosts: KnownHosts,
    /// Accept any SSH host key. Off by default; for throw-away test setups only.
    pub insecure_skip_host_key_check: bool,
}

#[derive(Debug, Clone)]
pub struct GitSettings {
    pub url: String,
    pub reference: GitRef,
    /// Where the work tree lives; created on first use.
    pub workdir: PathBuf,
    pub auth: GitAuth,
    /// A fetch that takes longer is abandoned.
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("failed to prepare work directory {path}: {source}")]
    Workdir { path: PathBuf, source: git2::Error },
    #[error("failed to fetch {url} ({reference}): {message}")]
    Fetch { url: String, reference: String, message: String },
    #[error("{reference} not found in {url}")]
    NotFound { url: String, reference: String },
    #[error("failed to check out {commit}: {source}")]
    Checkout { commit: String, source: git2::Error },
}

/// The outcome of one sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synced {
    pub commit: String,
    /// True when this sync created the work directory (the first one).
    pub cloned: bool,
}

/// Shows a URL without any password or token in it.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let (authority, path) = rest.split_once('/').map(|(a, p)| (a, format!("/{p}"))).unwrap_or((rest, String::new()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            let shown = if userinfo.contains(':') { format!("{user}:***") } else { user.to_string() };
            format!("{scheme}://{shown}@{host}{path}")
        }
        None => url.to_string(),
    }
}

/// Host and port of an SSH URL: `ssh://user@host:port/path` or scp-style `user@host:path`.
pub(crate) fn ssh_host_port(url: &str) -> Option<(String, u16)> {
    if let Some(rest) = url.strip_prefix("ssh://").or_else(|| url.strip_prefix("git+ssh://")) {
        let authority = rest.split('/').next()?;
        let host_port = authority.rsplit_once('@').map(|(_, h)| h).unwrap_or(authority);
        if let Some(stripped) = host_port.strip_prefix('[') {
            let (host, after) = stripped.split_once(']')?;
            let port = after.strip_prefix(':').map(|p| p.parse().ok()).unwrap_or(Some(22))?;
            return Some((host.to_string(), port));
        }
        return Some(match host_port.rsplit_once(':') {
            Some((host, port)) => (host.to_string(), port.parse().ok()?),
            None => (host_port.to_string(), 22),
        });
    }
    if url.contains("://") {
        return None;
    }
    let (before_path, _) = url.split_once(':')?;
    let host = before_path.rsplit_once('@').map(|(_, h)| h).unwrap_or(before_path);
    Some((host.to_string(), 22))
}

/// Clones (the first time) or fetches, then checks out the requested revision.
/// Blocking: run it on a blocking thread.
pub fn sync(settings: &GitSettings) -> Result<Synced, GitError> {
    let url = redact_url(&settings.url);
    let fetch_err = |message: String| GitError::Fetch { url: url.clone(), reference: settings.reference.to_string(), message };
    let workdir = &settings.workdir;
    let (repo, cloned) = open_or_init(workdir).map_err(|source| GitError::Workdir { path: workdir.clone(), source })?;
    // The URL may have changed since the work directory was made (new token, new host).
    let remote_ok = repo.find_remote("origin").ok().and_then(|r| r.url().ok().map(|u| u == settings.url)).unwrap_or(false);
    if !remote_ok {
        let _ = repo.remote_delete("origin");
        repo.remote("origin", &settings.url).map_err(|source| GitError::Workdir { path: workdir.clone(), source })?;
    }
    let mut remote = repo.find_remote("origin").map_err(|source| GitError::Workdir { path: workdir.clone(), source })?;
    let refspecs: Vec<String> = match &settings.reference {
        GitRef::Branch(b) => vec![format!("+refs/heads/{b}:refs/remotes/origin/{b}")],
        GitRef::Tag(t) => vec![format!("+refs/tags/{t}:refs/tags/{t}")],
        GitRef::Commit(_) => vec!["+refs/heads/*:refs/remotes/origin/*".into(), "+refs/tags/*:refs/tags/*".into()],
    };
    let host_key_problem = Rc::new(RefCell::new(None));
    let mut options = FetchOptions::new();
    options.remote_callbacks(callbacks(settings, host_key_problem.clone()));
    options.download_tags(git2::AutotagOption::None);
    let fetched = remote.fetch(&refspecs, Some(&mut options), None);
    drop(options);
    if let Err(e) = fetched {
        // libgit2 replaces a refused host key's message with its own; ours says what to do.
        let message = host_key_problem.borrow_mut().take().unwrap_or_else(|| describe(&e, ssh_host_port(&settings.url).is_some()));
        return Err(fetch_err(message));
    }

    let not_found = || GitError::NotFound { url: url.clone(), reference: settings.reference.to_string() };
    let oid = match &settings.reference {
        GitRef::Branch(b) => repo.refname_to_id(&format!("refs/remotes/origin/{b}")).map_err(|_| not_found())?,
        GitRef::Tag(t) => {
            repo.revparse_single(&format!("refs/tags/{t}")).and_then(|o| o.peel_to_commit()).map(|c| c.id()).map_err(|_| not_found())?
        }
        GitRef::Commit(c) => {
            let oid = Oid::from_str(c).map_err(|_| not_found())?;
            repo.find_commit(oid).map_err(|_| not_found())?.id()
        }
    };
    let checkout_err = |source| GitError::Checkout { commit: oid.to_string(), source };
    repo.set_head_detached(oid).map_err(checkout_err)?;
    repo.checkout_head(Some(CheckoutBuilder::new().force().remove_untracked(true))).map_err(checkout_err)?;
    Ok(Synced { commit: oid.to_string(), cloned })
}

fn open_or_init(workdir: &Path) -> Result<(Repository, bool), git2::Error> {
    if workdir.join(".git").exists() {
        return Ok((Repository::open(workdir)?, false));
    }
    std::fs::create_dir_all(workdir).map_err(|e| git2::Error::from_str(&e.to_string()))?;
    Ok((Repository::init(workdir)?, true))
}

/// libgit2's messages are good; make an authentication failure (by its error code, never its
/// text) say what to check.
fn describe(err: &git2::Error, over_ssh: bool) -> String {
    let message = err.message();
    match err.code() {
        git2::ErrorCode::Auth if over_ssh => format!("{message} (check the SSH key and that it is allowed to read the repository)"),
        git2::ErrorCode::Auth => format!("{message} (check the token or password)"),
        _ => message.to_string(),
    }
}

fn callbacks(settings: &GitSettings, host_key_problem: Rc<RefCell<Option<String>>>) -> RemoteCallbacks<'_> {
    let auth = &settings.auth;
    let url = settings.url.clone();
    let deadline = Instant::now() + settings.timeout;
    let mut callbacks = RemoteCallbacks::new();
    let mut attempts = 0;
    callbacks.credentials(move |_url, url_user, allowed| {
        // libgit2 asks again after a rejected credential; three tries is plenty.
        attempts += 1;
        if attempts > 3 {
            let rejected = "authentication failed: the credentials were rejected";
            return Err(git2::Error::new(git2::ErrorCode::Auth, git2::ErrorClass::Callback, rejected));
        }
        if allowed.contains(CredentialType::SSH_KEY)
            && let Some(key) = &auth.ssh_key
        {
            let user = auth.username.as_deref().or(url_user).unwrap_or("git");
            let passphrase = auth.ssh_key_passphrase.as_ref().map(Secret::expose);
            return match key {
                SshKey::File(path) => Cred::ssh_key(user, None, path, passphrase),
                SshKey::Inline(key) => Cred::ssh_key_from_memory(user, None, key.expose(), passphrase),
            };
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
            if let Some(token) = &auth.token {
                return Cred::userpass_plaintext(auth.username.as_deref().or(url_user).unwrap_or("x-access-token"), token.expose());
            }
            if let (Some(user), Some(password)) = (auth.username.as_deref().or(url_user), &auth.password) {
                return Cred::userpass_plaintext(user, password.expose());
            }
        }
        if allowed.contains(CredentialType::USERNAME) {
            return Cred::username(auth.username.as_deref().or(url_user).unwrap_or("git"));
        }
        Err(git2::Error::from_str("the server asks for credentials and none are configured (see --git-token, --git-ssh-key)"))
    });
    callbacks.certificate_check(move |cert, _host| {
        let Some(hostkey) = cert.as_hostkey() else {
            // TLS: let libgit2 verify the certificate chain as usual.
            return Ok(CertificateCheckStatus::CertificatePassthrough);
        };
        if auth.insecure_skip_host_key_check {
            return Ok(CertificateCheckStatus::CertificateOk);
        }
        let (host, port) = ssh_host_port(&url).ok_or_else(|| git2::Error::from_str("cannot tell the SSH host from the repository URL"))?;
        let key = hostkey.hostkey().ok_or_else(|| git2::Error::from_str("the SSH server's host key is not available for checking"))?;
        let (lines, source) = auth.known_hosts.read();
        let name = knownhosts::host_pattern_name(&host, port);
        let problem = match knownhosts::verify(&lines, &host, port, key) {
            HostKeyVerdict::Trusted => return Ok(CertificateCheckStatus::CertificateOk),
            HostKeyVerdict::Unknown => {
                format!(
                    "host key of {name} is not in {source}: refusing to connect (add it, e.g. with ssh-keyscan, after checking its fingerprint)"
                )
            }
            HostKeyVerdict::Mismatch => {
                format!("host key of {name} does not match {source}: refusing to connect (the key changed, or someone is in between)")
            }
            HostKeyVerdict::Revoked => format!("host key of {name} is revoked in {source}"),
        };
        let err = git2::Error::from_str(&problem);
        *host_key_problem.borrow_mut() = Some(problem);
        Err(err)
    });
    callbacks.transfer_progress(move |_| Instant::now() < deadline);
    callbacks.sideband_progress(move |_| Instant::now() < deadline);
    callbacks
}

/// Bounds connecting to and waiting on a Git server, for every fetch in this process.
pub fn set_network_timeouts(timeout: Duration) {
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: these set libgit2 globals; called once at startup before any fetch runs.
    unsafe {
        let _ = git2::opts::set_server_connect_timeout_in_milliseconds(ms);
        let _ = git2::opts::set_server_timeout_in_milliseconds(ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_secrets() {
        assert_eq!(redact_url("https://bot:glpat-s3cret@gitlab.example.com/g/r.git"), "https://bot:***@gitlab.example.com/g/r.git");
        assert_eq!(redact_url("https://oauth2@host/r.git"), "https://oauth2@host/r.git");
        assert_eq!(redact_url("git@host:g/r.git"), "git@host:g/r.git");
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(***)");
    }

    #[test]
    fn ssh_hosts_and_ports_come_from_either_url_style() {
        assert_eq!(ssh_host_port("ssh://git@127.0.0.1:2222/srv/repo.git"), Some(("127.0.0.1".into(), 2222)));
        assert_eq!(ssh_host_port("ssh://git@gitlab.example.com/g/r.git"), Some(("gitlab.example.com".into(), 22)));
        assert_eq!(ssh_host_port("git@gitlab.example.com:g/r.git"), Some(("gitlab.example.com".into(), 22)));
        assert_eq!(ssh_host_port("https://gitlab.example.com/g/r.git"), None);
    }
}
