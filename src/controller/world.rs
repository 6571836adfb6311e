//! What the loop does outside itself: fetch the config repository, reconcile one pipeline, look
//! for orphans and prune them. [`RealWorld`] does it against Git and AWS. Keeping it behind a trait
//! lets the loop's timing (polling, drift re-checks, backoff, shutdown) be tested on a paused
//! tokio clock with a scripted world (see `tests.rs`): real Git and AWS calls cannot run on a
//! paused clock, and the end-to-end tests in tests/controller.rs cover them in real time.

use std::collections::HashSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use slipway_aws::ahead::{ReadAhead, Scope};
use slipway_aws::{Aws, AwsError};
use slipway_core::compile::{DesiredPipeline, Placement};
use slipway_core::delivery::{self, DeployTarget, Memory, Report};
use slipway_core::manifest::SyncMode;
use slipway_core::plan::Orphan;
use slipway_core::quota::Limits;
use slipway_core::reconcile::{Outcome, ReconcileError, Reconciled};
use slipway_core::resource::Key;
use tokio::sync::mpsc;
use tracing::{Instrument, info, info_span, warn};

use crate::engine::{self, EngineError, Prepared, prepare};
use crate::feed::{self, FeedSignal};
use crate::metrics::Metrics;
use crate::source::git::{self, GitError, GitSettings};
use crate::source::watch::{self as dir_watch, DirWatch};
use slipway_core::trigger::TriggerRoute;

/// One pipeline's reconcile, handed to a task.
pub(crate) struct Job {
    pub desired: DesiredPipeline,
    /// What delivery needs; `None` when the task definition names no `<IMAGE1_NAME>` container.
    pub target: Option<DeployTarget>,
    /// Delivery's memory; travels with the job and comes back in the [`Pass`].
    pub memory: Option<Memory>,
    pub sync: SyncMode,
    pub revision: Option<String>,
    /// What was read ahead once for the jobs started together.
    pub ahead: Option<Arc<ReadAhead>>,
}

/// What one reconcile saw and did.
pub(crate) struct Pass {
    pub result: Result<Reconciled, ReconcileError>,
    pub memory: Option<Memory>,
    /// Delivery's pass, when it ran (after a reconcile that synced or observed).
    pub delivery: Option<Result<Report, AwsError>>,
}

/// Why the config repository could not be fetched or read. The last good revision stays.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("fetch timed out after {0:?}")]
    TimedOut(Duration),
    #[error(transparent)]
    Read(#[from] EngineError),
    #[error("the fetch task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

pub trait World: Send + Sync + 'static {
    /// Where the configuration comes from, for /status: repository and Git reference.
    fn source(&self) -> (String, Option<String>);
    /// Changes noticed between polls (a watched directory); `None` when there is nothing to watch.
    fn watch(&self) -> Option<mpsc::Receiver<()>>;
    /// Changes made in AWS (`--change-events`, [`crate::feed`]); `None` without a feed.
    fn changes(&self) -> Option<mpsc::Receiver<FeedSignal>>;
    /// Fetches (or re-reads) the config repository and prepares its manifests. An error keeps the
    /// last good revision in place.
    fn fetch(&self) -> impl Future<Output = Result<Prepared, FetchError>> + Send;
    /// The partition, region and account resources are compiled for.
    fn placement(&self) -> Placement;
    /// Reads ahead, once, for the jobs about to start ([`slipway_aws::ahead`]).
    fn read_ahead(&self, scope: Scope) -> impl Future<Output = Arc<ReadAhead>> + Send;
    /// Observe, plan, apply (with `sync: auto`) and deliver one pipeline.
    fn reconcile(&self, job: Job) -> impl Future<Output = Pass> + Send;
    /// Resources slipway owns that no pipeline in Git (valid or broken) accounts for.
    fn find_orphans(
        &self,
        desired: &HashSet<Key>,
        protected: &HashSet<String>,
    ) -> impl Future<Output = Result<Vec<Orphan>, AwsError>> + Send;
    /// Deletes orphans; returns the keys deleted and the errors.
    fn prune(&self, orphans: &[Orphan]) -> impl Future<Output = (Vec<Key>, Vec<String>)> + Send;
}

/// Where the config repository comes from.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant, reason = "one value per process, read on every fetch")]
pub(crate) enum SourceSettings {
    Git(GitSettings),
    /// A local directory, watched for changes.
    Dir(PathBuf),
}

/// Git (or a local directory) and AWS.
pub(crate) struct RealWorld {
    aws: Aws,
    metrics: Arc<Metrics>,
    source: SourceSettings,
    /// Subdirectory of the repository that holds the manifests.
    path: Option<PathBuf>,
    fetch_timeout: Duration,
    /// The account quotas the manifests are counted against.
    limits: Limits,
    /// Keeps the directory watch alive as long as the loop runs.
    dir_watch: Mutex<Option<DirWatch>>,
    /// The change feed's queue and rule name, with `--change-events`.
    feed: Option<String>,
    /// How triggers reach the pipelines (`--trigger-route`).
    triggers: TriggerRoute,
}

impl RealWorld {
    pub fn new(
        aws: Aws,
        metrics: Arc<Metrics>,
        source: SourceSettings,
        path: Option<PathBuf>,
        fetch_timeout: Duration,
        limits: Limits,
    ) -> RealWorld {
        RealWorld {
            aws,
            metrics,
            source,
            path,
            fetch_timeout,
            limits,
            dir_watch: Mutex::new(None),
            feed: None,
            triggers: TriggerRoute::Rules,
        }
    }

    /// Reads AWS's change events from the queue and rule `name`.
    pub fn with_trigger_route(mut self, triggers: TriggerRoute) -> RealWorld {
        self.triggers = triggers;
        self
    }

    pub fn with_change_feed(mut self, name: Option<String>) -> RealWorld {
        self.feed = name;
        self
    }

    /// The pipelines already applied keep their room in the quotas; the inventory names them.
    async fn sync_git(&self, settings: &GitSettings) -> Result<PathBuf, FetchError> {
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
            Ok(Ok(Err(err))) => Err(err.into()),
            Ok(Err(join)) => Err(join.into()),
            Err(_) => Err(FetchError::TimedOut(self.fetch_timeout)),
        };
        self.metrics.record_fetch(result.is_ok(), started.elapsed());
        result
    }
}

impl World for RealWorld {
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

    fn changes(&self) -> Option<mpsc::Receiver<FeedSignal>> {
        let name = self.feed.clone()?;
        Some(feed::spawn(self.aws.clone(), name, self.metrics.clone()))
    }

    async fn fetch(&self) -> Result<Prepared, FetchError> {
        let root = match &self.source {
            SourceSettings::Dir(dir) => dir.clone(),
            SourceSettings::Git(settings) => self.sync_git(settings).instrument(info_span!("fetch")).await?,
        };
        let dir = match &self.path {
            Some(path) => root.join(path),
            None => root,
        };
        let admission = engine::admission(&self.aws, self.limits.clone(), self.triggers).await;
        Ok(tokio::task::spawn_blocking(move || prepare(&dir, &admission)).await??)
    }

    fn placement(&self) -> Placement {
        self.aws.placement()
    }

    async fn read_ahead(&self, scope: Scope) -> Arc<ReadAhead> {
        Arc::new(slipway_aws::ahead::read_ahead(&self.aws, &scope).await)
    }

    async fn reconcile(&self, job: Job) -> Pass {
        let Job { desired, target, mut memory, sync, revision, ahead } = job;
        let result = reconcile(&self.aws, &desired, sync, revision.as_deref(), ahead.as_deref()).await;
        // Delivery runs once the pipeline's resources are in place; with sync: observe it only reports.
        let act = match result.as_ref().map(|r| &r.outcome) {
            Ok(Outcome::Synced { .. }) => Some(true),
            Ok(Outcome::Observed { .. }) => Some(false),
            Ok(Outcome::Blocked { .. }) | Err(_) => None,
        };
        let delivery = match (act, &target, memory.as_mut()) {
            (Some(act), Some(target), Some(memory)) => Some(
                delivery::pass(&self.aws, &self.aws, target, memory, revision.as_deref(), act, SystemTime::now())
                    .instrument(info_span!("deliver"))
                    .await,
            ),
            _ => None,
        };
        Pass { result, memory, delivery }
    }

    async fn find_orphans(&self, desired: &HashSet<Key>, protected: &HashSet<String>) -> Result<Vec<Orphan>, AwsError> {
        engine::find_orphans_in(&self.aws, desired, protected).instrument(info_span!("orphans")).await
    }

    async fn prune(&self, orphans: &[Orphan]) -> (Vec<Key>, Vec<String>) {
        let (deleted, errors) = engine::prune(&self.aws, orphans).await;
        (deleted.into_iter().map(|d| d.key).collect(), errors)
    }
}

/// Observe, plan and (with `sync: auto`) apply one pipeline. On success, also the kinds of the
/// resources found different from Git (before any repair), for the drift metrics.
async fn reconcile(
    aws: &Aws,
    desired: &DesiredPipeline,
    sync: SyncMode,
    revision: Option<&str>,
    ahead: Option<&ReadAhead>,
) -> Result<Reconciled, ReconcileError> {
    let plan = engine::observe_and_plan(aws, desired, ahead).await;
    if let Some(error) = plan.error {
        return Err(ReconcileError::Observe(error));
    }
    let drifted = plan.drifted();
    let drift = drifted.iter().map(|k| k.kind).collect();
    if plan.is_blocked() {
        return Ok(Reconciled { outcome: Outcome::Blocked { reasons: plan.blocked_reasons() }, drift });
    }
    let names: Vec<String> = drifted.iter().map(Key::to_string).collect();
    let outcome = match sync {
        SyncMode::Observe => Outcome::Observed { drift: names },
        SyncMode::Auto if names.is_empty() => {
            // In sync, yet perhaps created by a slipway older than the inventory: record it
            // (no call once the inventory holds it).
            engine::record_inventory(aws, &plan).await?;
            Outcome::Synced { repaired: Vec::new() }
        }
        SyncMode::Auto => {
            let applied = engine::apply_pipeline(aws, &plan, revision).await;
            if let Some(error) = applied.error {
                return Err(error);
            }
            Outcome::Synced { repaired: applied.done.iter().map(|d| format!("{} {}", d.verb, d.key)).collect() }
        }
    };
    Ok(Reconciled { outcome, drift })
}
