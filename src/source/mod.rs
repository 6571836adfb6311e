//! The config repository as slipway sees it: a directory, and when it is a Git work tree, the
//! commits behind it. `git` clones and fetches a remote into such a directory; `watch` reports
//! changes to a local one.

pub mod git;
pub mod knownhosts;
pub mod watch;

use std::path::{Path, PathBuf};

use git2::{Repository, Tree};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("the repository directory {path} does not exist (check --repo / SLIPWAY_REPO)")]
    Missing { path: PathBuf },
    #[error("failed to open repository directory {path}: {source}")]
    Open { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a directory")]
    NotADirectory { path: PathBuf },
}

/// A checked-out config repository.
pub(crate) struct RepoDir {
    /// Canonical path of the directory slipway reads manifests from.
    pub root: PathBuf,
    git: Option<GitInfo>,
}

struct GitInfo {
    repo: Repository,
    /// `root` relative to the work tree's top, `/`-separated, empty at the top.
    prefix: PathBuf,
    head: Option<git2::Oid>,
}

impl RepoDir {
    pub(crate) fn open(path: &Path) -> Result<RepoDir, SourceError> {
        let root = path.canonicalize().map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => SourceError::Missing { path: path.to_path_buf() },
            _ => SourceError::Open { path: path.to_path_buf(), source },
        })?;
        if !root.is_dir() {
            return Err(SourceError::NotADirectory { path: root });
        }
        let git = Repository::discover(&root).ok().and_then(|repo| {
            let top = repo.workdir()?.canonicalize().ok()?;
            let prefix = root.strip_prefix(&top).ok()?.to_path_buf();
            let head = repo.head().ok().and_then(|h| h.target());
            Some(GitInfo { repo, prefix, head })
        });
        Ok(RepoDir { root, git })
    }

    /// The commit checked out, when the directory is in a Git work tree with commits.
    pub(crate) fn head_commit(&self) -> Option<String> {
        self.git.as_ref()?.head.map(|oid| oid.to_string())
    }

    /// The latest commit that changed `rel` (a directory relative to `root`). A source zip
    /// names this commit, not HEAD, so a commit elsewhere in the repository does not rebuild
    /// every application.
    pub(crate) fn last_commit_touching(&self, rel: &str) -> Option<String> {
        let git = self.git.as_ref()?;
        let path = git.prefix.join(rel);
        let mut walk = git.repo.revwalk().ok()?;
        walk.push(git.head?).ok()?;
        for oid in walk.flatten() {
            let commit = git.repo.find_commit(oid).ok()?;
            let here = entry_id(&commit.tree().ok()?, &path);
            let changed = match commit.parent(0) {
                Ok(parent) => entry_id(&parent.tree().ok()?, &path) != here,
                Err(_) => here.is_some(),
            };
            if changed {
                return Some(oid.to_string());
            }
        }
        None
    }

    /// True when `rel` has changes not yet committed: the zip then holds content that the
    /// commit it names does not.
    pub(crate) fn is_dirty(&self, rel: &str) -> bool {
        let Some(git) = self.git.as_ref() else {
            return false;
        };
        let mut opts = git2::StatusOptions::new();
        opts.pathspec(git.prefix.join(rel)).include_untracked(true).include_ignored(false);
        git.repo.statuses(Some(&mut opts)).map(|s| !s.is_empty()).unwrap_or(false)
    }
}

fn entry_id(tree: &Tree<'_>, path: &Path) -> Option<git2::Oid> {
    if path.as_os_str().is_empty() {
        return Some(tree.id());
    }
    tree.get_path(path).ok().map(|e| e.id())
}
