//! What the loop does outside itself: fetch the config repository, reconcile one pipeline, look
//! for orphans and prune them. [`Live`] does it against Git and AWS. Keeping it behind a trait
//! lets the loop's timing (polling, drift re-checks, backoff, shutdown) be tested on a paused
//! tokio clock with a scripted world (see `tests.rs`): real Git and AWS calls cannot run on a
//! paused clock, and the end-to-end tests in tests/controller.rs cover them in real time.

use std::collections::HashSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tracing::{Instrument, info, info_span, warn};

use super::reconcile;
use super::status::Outcome;
use crate::aws::Aws;
use crate::deploy;
use crate::desired::{DesiredPipeline, Target};
use crate::engine::{self, Prepared, prepare};
use crate::manifest::SyncMode;
use crate::metrics::METRICS;
use crate::plan::Orphan;
use crate::resource::{Key, Kind};
use crate::source::git::{self, GitSettings};
use crate::source::watch::{self as dir_watch, DirWatch};

/// One pipeline's reconcile, handed to a task.
pub struct Job {
    pub desired: DesiredPipeline,
    /// What delivery needs; `None` when the task definition names no `<IMAGE1_NAME>` container.
    pub target: Option<deploy::Target>,
    /// Delivery's memory; travels with the job and comes back in the [`Pass`].
    pub memory: Option<deploy::Memory>,
    pub sync: SyncMode,
    pub revision: Option<String>,
}

/// What one reconcile saw and did.
pub struct Pass {
    pub outcome: Outcome,
    /// Kinds of the resources that differed from Git when observed (before any repair).
    pub drift: Vec<Kind>,
    pub memory: Option<deploy::Memory>,
    pub delivery: Option<Result<deploy::Report, String>>,
}

pub trait World: Send + Sync + 'static {
    /// Where the configuration comes from, for /status: repository and Git reference.
    fn source(&self) -> (String, Option<String>);
    /// Changes noticed between polls (a watched directory); `None` when there is nothing to watch.
    fn watch(&self) -> Option<mpsc::Receiver<()>>;
    /// Fetches (or re-reads) the config repository and prepares its manifests. An error keeps the
    /// last good revision in place.
    fn fetch(&self) -> impl Future<Output = Result<Prepared, String>> + Send;
    /// The partition, region and account resources are compiled for.
    fn target(&self) -> Target;
    /// Observe, plan, apply (with `sync: auto`) and deliver one pipeline.
    fn reconcile(&self, job: Job) -> impl Future<Output = Pass> + Send;
    /// Resources slipway owns that no pipeline in Git (valid or broken) accounts for.
    fn find_orphans(&self, desired: &HashSet<Key>, protected: &HashSet<String>)
    -> impl Future<Output = Result<Vec<Orphan>, String>> + Send;
    /// Deletes orphans; returns the keys deleted and the errors.
    fn prune(&self, orphans: &[Orphan]) -> impl Future<Output = (Vec<Key>, Vec<String>)> + Send;
}

/// Where the config repository comes from.
#[derive(Debug, Clone)]
pub enum SourceSettings {
    Git(GitSettings),
    /// A local directory, watched for changes.
    Dir(PathBuf),
}

/// Git (or a local directory) and AWS.
pub struct Live {
    aws: Aws,
    source: SourceSettings,
    /// Subdirectory of the repository that holds the manifests.
    path: Option<PathBuf>,
    fetch_timeout: Duration,
    /// Keeps the directory watch alive as long as the loop runs.
    dir_watch: Mutex<Option<DirWatch>>,
}

impl Live {
    pub fn new(aws: Aws, source: SourceSettings, path: Option<PathBuf>, fetch_timeout: Duration) -> Live {
        Live { aws, source, path, fetch_timeout, dir_watch: Mutex::new(None) }
    }

    async fn sync_git(&self, settings: &GitSettings) -> Result<PathBuf, String> {
        let started = std::time::Instant::now();
        let workdir = settings.workdir.clone();
        let owned = settings.clone();
        let sync = tokio::task::spawn_blocking(move || git::sync(&owned));
        // libgit2 also enforces the timeout; this bounds everything else.
        let result = match tokio::time::timeout(self.fetch_timeout + Duration::from_secs(5), sync).await {
            Ok(Ok(Ok(synced))) => {
                info!(commit = %synced.commit, cloned = synced.cloned, seconds = started.elapsed().as_secs_f64(), "fetched");
                Ok(workdir)
            }
            Ok(Ok(Err(err))) => Err(err.to_string()),
            Ok(Err(join)) => Err(format!("fetch task failed: {join}")),
            Err(_) => Err(format!("fetch timed out after {:?}", self.fetch_timeout)),
        };
        METRICS.git_fetch_duration_seconds.observe(started.elapsed().as_secs_f64());
        METRICS.git_fetch_total.with_label_values(&[if result.is_ok() { "success" } else { "error" }]).inc();
        if result.is_ok() {
            let unix = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
            METRICS.git_last_success_timestamp_seconds.set(unix.as_secs_f64());
        }
        result
    }
}

impl World for Live {
    fn source(&self) -> (String, Option<String>) {
        match &self.source {
            SourceSettings::Git(g) => (git::redact_url(&g.url), Some(g.reference.to_string())),
            SourceSettings::Dir(d) => (d.display().to_string(), None),
        }
    }

    fn watch(&self) -> Option<mpsc::Receiver<()>> {
        let SourceSettings::Dir(dir) = &self.source else { return None };
        match dir_watch::watch(dir, Duration::from_millis(500)) {
            Ok((guard, changes)) => {
                *self.dir_watch.lock().expect("the watch lock is never poisoned") = Some(guard);
                Some(changes)
            }
            Err(err) => {
                warn!(error = %err, "failed to watch the repository directory; changes are seen on the poll interval only");
                None
            }
        }
    }

    async fn fetch(&self) -> Result<Prepared, String> {
        let root = match &self.source {
            SourceSettings::Dir(dir) => dir.clone(),
            SourceSettings::Git(settings) => self.sync_git(settings).instrument(info_span!("fetch")).await?,
        };
        let dir = match &self.path {
            Some(path) => root.join(path),
            None => root,
        };
        match tokio::task::spawn_blocking(move || prepare(&dir)).await {
            Ok(Ok(prepared)) => Ok(prepared),
            Ok(Err(err)) => Err(err.to_string()),
            Err(join) => Err(format!("reading the config repository failed: {join}")),
        }
    }

    fn target(&self) -> Target {
        engine::target(&self.aws)
    }

    async fn reconcile(&self, job: Job) -> Pass {
        let Job { desired, target, mut memory, sync, revision } = job;
        let (outcome, drift) = reconcile(&self.aws, &desired, sync).await;
        // Delivery runs once the pipeline's resources are in place; with sync: observe it only reports.
        let delivery = match (&outcome, &target, memory.as_mut()) {
            (Outcome::Synced { .. } | Outcome::Observed { .. }, Some(target), Some(memory)) => {
                let act = matches!(outcome, Outcome::Synced { .. });
                let report = deploy::pass(&self.aws, &self.aws, target, memory, revision.as_deref(), act, SystemTime::now())
                    .instrument(info_span!("deliver"))
                    .await;
                Some(report.map_err(|e| e.to_string()))
            }
            _ => None,
        };
        Pass { outcome, drift, memory, delivery }
    }

    async fn find_orphans(&self, desired: &HashSet<Key>, protected: &HashSet<String>) -> Result<Vec<Orphan>, String> {
        engine::find_orphans_in(&self.aws, desired, protected).instrument(info_span!("orphans")).await.map_err(|e| e.to_string())
    }

    async fn prune(&self, orphans: &[Orphan]) -> (Vec<Key>, Vec<String>) {
        let (deleted, errors) = engine::prune(&self.aws, orphans).await;
        (deleted.into_iter().map(|d| d.key).collect(), errors)
    }
}
