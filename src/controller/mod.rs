//! The GitOps loop behind `slipway run`.
//!
//! One scheduler task owns all state. It fetches the config repository on the poll interval (or
//! at once on a webhook or a change in a watched directory), re-prepares the manifests, and
//! hands each pipeline that is due to its own reconcile task: observe → plan → apply (or only
//! report, with `sync: observe`). A pipeline is due when a new revision changes it, when its
//! drift interval has passed, or when its backoff after a transient error has. Reconcile tasks
//! run concurrently under a bound and report back over a channel, so a slow or failing
//! pipeline never delays the others.
//!
//! With several replicas (`--ha-table`) the loop works only on the pipelines of the shards its
//! lease task holds ([`Sharding`]), runs each reconcile inside its shard's fence (a write without
//! the lease is never sent), takes over a gained shard's pipelines at once and drops a lost
//! shard's from its status and metrics.
//!
//! The loop decides when; the [`World`] does the work (Git and AWS in [`RealWorld`]), so the
//! timing is tested on a paused clock in `tests.rs`. Each reconcile ends in
//! `Result<Reconciled, ReconcileError>`; when to look again is decided by the pure policies of
//! `slipway_core::reconcile` ([`requeue`] after a success, [`error_policy`] after an error).

mod schedule;
#[cfg(test)]
mod tests;
mod world;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, RwLock, Semaphore, mpsc, watch};
use tokio::time::Instant;
use tracing::{Instrument, debug, error, info, info_span, warn};

use slipway_aws::fence;
use slipway_core::change::{Change, ChangeOutcome};
use slipway_core::compile::DesiredPipeline;
use slipway_core::delivery::{DeployTarget, Memory, Step};
use slipway_core::manifest::SyncMode;
use slipway_core::prune::{self, PrunePolicy};
use slipway_core::reconcile::{Outcome, ReconcileResult, Timing, error_policy, requeue};
use slipway_core::resource::{Key, Kind};
use slipway_core::status::{
    self, ChangeFeedStatus, ConditionType, ControllerStatus, PipelineStatus, ReplicaStatus, Truth, record, record_invalid,
    record_suspended, timestamp,
};
use slipway_core::trigger::TriggerIndex;

use crate::engine::Prepared;
use crate::feed::FeedSignal;
use crate::metrics::Metrics;
use crate::replica::Sharding;
use world::Job;
pub(crate) use world::{Pass, RealWorld, SourceSettings, World};

/// The loop's timing and policy. Where the configuration comes from and what it is applied to is
/// the [`World`]'s business.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Git poll interval.
    pub interval: Duration,
    pub drift_interval: Duration,
    pub concurrency: usize,
    pub prune: bool,
    /// The guards on prune: empty revisions, the deletion budget.
    pub prune_policy: PrunePolicy,
    /// One full pass, then stop.
    pub once: bool,
    /// How long in-flight reconciles may finish after a shutdown signal.
    pub shutdown_grace: Duration,
    /// How often a pipeline is looked at while a deployment runs or a push awaits its pipeline.
    pub watch_interval: Duration,
    /// With `--change-events`: how often every pipeline is still read while the change feed
    /// works, the safety net for an event lost. `None` without a feed.
    pub full_check_interval: Option<Duration>,
}

/// State shared with the HTTP server.
#[derive(Debug, Default)]
pub struct Shared {
    pub status: RwLock<ControllerStatus>,
    /// Ask the loop to fetch now (webhooks). Readiness is `status.ready`: `/readyz` and
    /// `/status` read the same field.
    pub refresh: Notify,
}

/// A pipeline the loop knows.
struct Unit {
    desired: DesiredPipeline,
    /// What delivery needs; `None` when the task definition names no `<IMAGE1_NAME>` container.
    target: Option<DeployTarget>,
    /// Delivery's memory; travels with the reconcile task and comes back in [`Finished`].
    memory: Option<Memory>,
    fingerprint: String,
    sync: SyncMode,
    suspended: bool,
    /// When to reconcile next; `None` waits for the next commit.
    due: Option<Instant>,
    attempt: u32,
    reconciled_once: bool,
    /// A change in AWS arrived while its reconcile ran (which may have read before it): look
    /// again as soon as it ends.
    poked: bool,
    /// Its shard, with several replicas (0 otherwise).
    shard: u16,
    /// Its last reconcile did not apply (blocked, or failed): what it no longer wants is not an
    /// orphan yet (a CodeDeploy application it moves away from outlives the move).
    held_back: bool,
}

/// A reconcile task's report to the loop.
struct Finished {
    name: String,
    fingerprint: String,
    /// Kinds of all the pipeline's resources.
    kinds: Vec<Kind>,
    duration: Duration,
    pass: Pass,
}

pub(crate) struct Controller<W: World = RealWorld> {
    settings: Settings,
    world: Arc<W>,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    units: BTreeMap<String, Unit>,
    revision: Option<String>,
    fetched_once: bool,
    prepared: Option<Prepared>,
    /// Pipelines with a reconcile task running. Kept apart from `units` so that a pipeline
    /// removed and re-added while its task runs is never reconciled twice at once.
    running: HashSet<String>,
    /// The change feed works: pipelines are read in full every `full_check_interval` only.
    feed_up: bool,
    /// Where the triggers of each revision go, for the trigger queue's task
    /// (`--trigger-route queue`, [`crate::triggers`]).
    trigger_index: Option<watch::Sender<Option<Arc<TriggerIndex>>>>,
    /// With several replicas (`--ha-table`): the shards this replica works on. Without, every
    /// pipeline is its own.
    sharding: Option<Sharding>,
    /// The shards held, as the lease task last said; `None` until it first read the table.
    held: Option<BTreeSet<u16>>,
}

/// The repository's warnings (and suspect files) that the previous revision did not already
/// have: each is logged once, not on every fetch or every change in a watched directory.
fn fresh_warnings(before: Option<&Prepared>, now: &Prepared) -> Vec<String> {
    let all = |p: &Prepared| -> Vec<String> { p.warnings.iter().cloned().chain(p.suspects.iter().map(ToString::to_string)).collect() };
    let seen: HashSet<String> = before.map(all).unwrap_or_default().into_iter().collect();
    all(now).into_iter().filter(|w| !seen.contains(w)).collect()
}

/// A valid pipeline's entry in the status, as the revision describes it.
fn describe(ps: &mut PipelineStatus, valid: &slipway_core::manifest::validate::ValidPipeline, revision: Option<&str>, now: SystemTime) {
    let spec = &valid.pipeline.spec;
    ps.file = valid.file.display().to_string();
    ps.sync = spec.sync;
    ps.suspended = spec.suspend;
    ps.last_seen_revision = revision.map(str::to_owned);
    if spec.suspend {
        record_suspended(ps, now);
    }
}

/// Resolves when the lease task says something new; never without one.
async fn held_changed(held: &mut Option<watch::Receiver<Option<crate::replica::Held>>>) {
    let changed = match held {
        Some(rx) => rx.changed().await.is_ok(),
        None => false,
    };
    if !changed {
        std::future::pending::<()>().await;
    }
}

impl<W: World> Controller<W> {
    pub fn new(settings: Settings, world: Arc<W>, shared: Arc<Shared>, metrics: Arc<Metrics>) -> Controller<W> {
        Controller {
            settings,
            world,
            shared,
            metrics,
            units: BTreeMap::new(),
            revision: None,
            fetched_once: false,
            prepared: None,
            running: HashSet::new(),
            feed_up: false,
            trigger_index: None,
            sharding: None,
            held: None,
        }
    }

    /// Works only on the pipelines of the shards this replica holds, each write fenced by its
    /// shard's lease.
    pub fn with_sharding(mut self, sharding: Sharding) -> Controller<W> {
        self.sharding = Some(sharding);
        self
    }

    fn shard_of(&self, pipeline: &str) -> u16 {
        self.sharding.as_ref().map_or(0, |s| s.shard_of(pipeline))
    }

    /// Whether this replica works on `shard`'s pipelines now (always, as the only replica).
    fn holds(&self, shard: u16) -> bool {
        self.sharding.is_none() || self.held.as_ref().is_some_and(|held| held.contains(&shard))
    }

    fn fence(&self, shard: u16) -> Option<fence::Fence> {
        self.sharding.as_ref().map(|s| s.fence(shard))
    }

    /// Publishes each revision's triggers to the trigger queue's task.
    pub fn with_trigger_index(mut self, tx: watch::Sender<Option<Arc<TriggerIndex>>>) -> Controller<W> {
        self.trigger_index = Some(tx);
        self
    }

    /// How often every pipeline is read (and orphans looked for): the drift interval, or the
    /// full-check interval while the change feed works.
    fn drift_interval(&self) -> Duration {
        match self.settings.full_check_interval {
            Some(full) if self.feed_up => full,
            _ => self.settings.drift_interval,
        }
    }

    /// Runs until `shutdown` turns true (or, with `once`, after one full pass). Returns whether
    /// the last pass succeeded everywhere.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> bool {
        {
            let mut st = self.shared.status.write().await;
            st.version = env!("CARGO_PKG_VERSION").to_string();
            (st.source.repo, st.source.reference) = self.world.source();
        }
        // Without a watch, a channel that never delivers.
        let mut changes = self.world.watch().unwrap_or_else(|| mpsc::channel(1).1);
        let mut feed = self.world.changes().unwrap_or_else(|| mpsc::channel(1).1);
        let mut held = self.sharding.as_ref().map(|s| s.held.clone());
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Finished>();
        let semaphore = Arc::new(Semaphore::new(self.settings.concurrency.max(1)));
        let mut next_fetch = Instant::now();
        let mut next_sweep = Instant::now();
        let mut once_failed = false;

        loop {
            let now = Instant::now();
            if now >= next_fetch {
                self.refresh().await;
                next_fetch = Instant::now() + schedule::jittered(self.settings.interval);
                if self.settings.once && !self.fetched_once {
                    return false;
                }
            }
            self.spawn_due(&semaphore, &done_tx);
            let all_reconciled = self.fetched_once
                && (self.sharding.is_none() || self.held.is_some())
                && self.units.values().filter(|u| self.holds(u.shard)).all(|u| u.reconciled_once || u.suspended || u.due.is_none());
            let can_sweep = all_reconciled && self.running.is_empty();
            if can_sweep && Instant::now() >= next_sweep {
                // With several replicas, the holder of shard 0 looks for orphans for all.
                if self.holds(0) {
                    once_failed |= !self.sweep_orphans().await;
                }
                next_sweep = Instant::now() + self.drift_interval();
                let mut st = self.shared.status.write().await;
                if !st.ready {
                    st.ready = true;
                    let own = self.units.values().filter(|u| self.holds(u.shard)).count();
                    info!(pipelines = own, "first pass complete; ready");
                }
                drop(st);
                if self.settings.once {
                    break;
                }
            }
            let next_due = self
                .units
                .iter()
                .filter(|(n, u)| !self.running.contains(*n) && !u.suspended && self.holds(u.shard))
                .filter_map(|(_, u)| u.due)
                .min();
            // A sweep that must wait for reconciles in progress is woken by their `done`, not by
            // its (already passed) time, which would spin the loop.
            let wake = [Some(next_fetch), can_sweep.then_some(next_sweep), next_due]
                .into_iter()
                .flatten()
                .min()
                .expect("next_fetch is always set");
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = self.shared.refresh.notified() => next_fetch = Instant::now(),
                Some(()) = changes.recv() => next_fetch = Instant::now(),
                Some(signal) = feed.recv() => {
                    // Orphans, like drift, are looked for each drift interval while the feed is down.
                    if self.on_feed(signal).await {
                        next_sweep = next_sweep.min(Instant::now() + self.settings.drift_interval);
                    }
                }
                Some(done) = done_rx.recv() => self.finish(done).await,
                () = held_changed(&mut held) => self.on_held().await,
                _ = shutdown.changed() => break,
            }
        }

        if !self.running.is_empty() {
            info!(in_flight = self.running.len(), grace = ?self.settings.shutdown_grace, "waiting for reconciles in progress");
            let deadline = Instant::now() + self.settings.shutdown_grace;
            while !self.running.is_empty() {
                match tokio::time::timeout_at(deadline, done_rx.recv()).await {
                    Ok(Some(done)) => self.finish(done).await,
                    _ => {
                        warn!(
                            in_flight = self.running.len(),
                            "abandoning reconciles still in progress; the next run converges what they left"
                        );
                        break;
                    }
                }
            }
        }
        let st = self.shared.status.read().await;
        let failed = st.pipelines.iter().any(|p| p.truth(ConditionType::Ready) == Some(Truth::False))
            || !st.invalid.is_empty()
            || st.source.last_fetch_error.is_some();
        !(failed || once_failed)
    }

    /// Fetches (or re-reads) the repository and works out which pipelines are now due.
    async fn refresh(&mut self) {
        let fetched = self.world.fetch().await;
        let now = SystemTime::now();
        match fetched {
            Ok(prepared) => {
                let mut st = self.shared.status.write().await;
                st.source.last_fetch_time = Some(timestamp(now));
                st.source.last_fetch_error = None;
                drop(st);
                self.fetched_once = true;
                self.apply_prepared(prepared, now).await;
            }
            Err(err) => {
                error!(error = %err, "failed to fetch or read the config repository; keeping the last good revision");
                self.shared.status.write().await.source.last_fetch_error = Some(err.to_string());
            }
        }
    }

    /// Merges a freshly prepared repository into the loop's units and the status.
    async fn apply_prepared(&mut self, prepared: Prepared, now: SystemTime) {
        let placement = self.world.placement();
        let revision = prepared.revision.clone();
        if revision != self.revision {
            info!(revision = revision.as_deref().unwrap_or("-"), "new revision");
        }
        self.revision = revision.clone();
        if let Some(revision) = &revision {
            self.metrics.set_revision(revision);
        }
        let mut st = self.shared.status.write().await;
        st.source.revision = revision.clone();
        st.invalid = prepared.diagnostics.clone();
        for w in fresh_warnings(self.prepared.as_ref(), &prepared) {
            warn!(warning = %w, "repository warning");
        }

        let mut seen: HashSet<String> = HashSet::new();
        for ((valid, _), desired) in prepared.pipelines.iter().zip(crate::engine::compile_all(&prepared, &placement, self.settings.prune)) {
            let name = valid.name().to_string();
            seen.insert(name.clone());
            let delivery_target = DeployTarget::from_valid(valid);
            let fingerprint = desired.fingerprint();
            let spec = &valid.pipeline.spec;
            let shard = self.shard_of(&name);
            let held = self.holds(shard);
            if held {
                describe(st.pipeline_mut(&name), valid, revision.as_deref(), now);
            }
            match self.units.get_mut(&name) {
                Some(unit) => {
                    let changed =
                        unit.fingerprint != fingerprint || unit.sync != spec.sync || unit.suspended != spec.suspend || unit.due.is_none();
                    unit.desired = desired;
                    unit.fingerprint = fingerprint;
                    unit.sync = spec.sync;
                    unit.suspended = spec.suspend;
                    if changed {
                        unit.due = Some(Instant::now());
                        unit.attempt = 0;
                    }
                }
                None => {
                    if held {
                        self.metrics.init_pipeline(&name, &desired.kinds());
                    }
                    self.units.insert(
                        name,
                        Unit {
                            desired,
                            target: delivery_target,
                            memory: Some(Memory::default()),
                            fingerprint,
                            sync: spec.sync,
                            suspended: spec.suspend,
                            due: Some(Instant::now()),
                            attempt: 0,
                            reconciled_once: false,
                            poked: false,
                            shard,
                            held_back: false,
                        },
                    );
                }
            }
        }
        // Pipelines whose manifests are broken: reported, and left alone until the next commit.
        for name in &prepared.protected {
            seen.insert(name.clone());
            if self.holds(self.shard_of(name)) {
                let errors: Vec<String> =
                    prepared.diagnostics.iter().filter(|d| d.pipeline.as_deref() == Some(name.as_str())).map(|d| d.to_string()).collect();
                let ps = st.pipeline_mut(name);
                ps.last_seen_revision = revision.clone();
                record_invalid(ps, &errors, now);
            }
            if let Some(unit) = self.units.get_mut(name) {
                unit.due = None;
            }
        }
        // Pipelines that left Git: forgotten here, series and all; their resources become orphans.
        for gone in self.units.keys().filter(|n| !seen.contains(*n)) {
            self.metrics.forget_pipeline(gone);
        }
        self.units.retain(|name, _| seen.contains(name));
        st.pipelines.retain(|p| seen.contains(&p.name) && self.holds(self.shard_of(&p.name)));
        drop(st);
        self.count_shard_pipelines();
        if let Some(tx) = &self.trigger_index {
            // A pipeline whose manifest broke keeps the triggers of its last valid revision.
            let triggers = self.units.iter().map(|(name, unit)| (name.clone(), unit.desired.queued.clone())).collect();
            tx.send_replace(Some(Arc::new(TriggerIndex { triggers, incomplete: !prepared.health.unsafe_files.is_empty() })));
        }
        self.prepared = Some(prepared);
    }

    /// Starts every due pipeline's reconcile. The jobs started together share what was read
    /// ahead for them ([`World::read_ahead`]).
    fn spawn_due(&mut self, semaphore: &Arc<Semaphore>, done_tx: &mpsc::UnboundedSender<Finished>) {
        let now = Instant::now();
        let names: Vec<(String, u16)> = self
            .units
            .iter()
            .filter(|(name, unit)| !self.running.contains(*name) && !unit.suspended && unit.due.is_some_and(|d| d <= now))
            .filter(|(_, unit)| self.holds(unit.shard))
            .map(|(name, unit)| (name.clone(), unit.shard))
            .collect();
        let mut due = Vec::new();
        for (name, shard) in names {
            let fence = self.fence(shard);
            let unit = self.units.get_mut(&name).expect("listed from the units");
            self.running.insert(name.clone());
            let job = Job {
                desired: unit.desired.clone(),
                target: unit.target.clone(),
                memory: unit.memory.take(),
                sync: unit.sync,
                revision: self.revision.clone(),
                ahead: None,
            };
            let span = info_span!("reconcile", pipeline = %name, revision = self.revision.as_deref().unwrap_or("-"));
            due.push((job, unit.fingerprint.clone(), span, fence));
        }
        if due.is_empty() {
            return;
        }
        self.publish_busy();
        let observing: Vec<&DesiredPipeline> = due.iter().map(|(job, _, _, _)| &job.desired).collect();
        let scope = crate::engine::pass_scope(&observing, self.units.values().map(|u| &u.desired));
        let (world, tx, semaphore) = (self.world.clone(), done_tx.clone(), semaphore.clone());
        tokio::spawn(async move {
            let ahead = world.read_ahead(scope).await;
            for (mut job, fingerprint, span, fence) in due {
                job.ahead = Some(ahead.clone());
                let (world, tx, semaphore) = (world.clone(), tx.clone(), semaphore.clone());
                tokio::spawn(
                    async move {
                        let _permit = semaphore.acquire_owned().await.expect("the semaphore is never closed");
                        let started = std::time::Instant::now();
                        let name = job.desired.name.clone();
                        let kinds = job.desired.kinds();
                        // With several replicas, every write it makes is checked against its shard's lease.
                        let pass = fence::scope(fence, world.reconcile(job)).await;
                        let _ = tx.send(Finished { name, fingerprint, kinds, duration: started.elapsed(), pass });
                    }
                    .instrument(span),
                );
            }
        });
    }

    async fn finish(&mut self, finished: Finished) {
        let Finished { name, fingerprint, kinds, duration, pass: Pass { result, memory, delivery } } = finished;
        self.running.remove(&name);
        self.publish_busy();
        let drift_interval = self.drift_interval();
        let handed_over = !self.holds(self.shard_of(&name));
        // A pipeline removed from Git while its reconcile ran is forgotten.
        let Some(unit) = self.units.get_mut(&name) else { return };
        if handed_over {
            // Its shard went to another replica while this ran: that one reports the pipeline
            // now (a delivery's end included), this one says nothing more of it.
            debug!(pipeline = %name, "reconcile ended after its shard was handed over; not reported here");
            unit.memory = memory.or_else(|| Some(Memory::default()));
            return;
        }
        unit.reconciled_once = true;
        unit.held_back = !matches!(&result, Ok(r) if !matches!(r.outcome, Outcome::Blocked { .. }));
        match &result {
            Ok(r) => match &r.outcome {
                Outcome::Synced { repaired } if !repaired.is_empty() => info!(pipeline = %name, changes = ?repaired, "applied"),
                Outcome::Observed { drift } if !drift.is_empty() => {
                    warn!(pipeline = %name, drift = ?drift, "drift detected (sync: observe)")
                }
                Outcome::Blocked { reasons } => warn!(pipeline = %name, reasons = ?reasons, "pipeline blocked"),
                _ => {}
            },
            Err(error) => {
                warn!(pipeline = %name, error = %error, kind = %error.kind(), retryable = error.is_retryable(), "reconcile failed")
            }
        }
        unit.memory = memory.or_else(|| Some(Memory::default()));
        let timing = Timing { drift_interval, watch_interval: self.settings.watch_interval };
        let action = match &result {
            // While a deployment runs (or a push awaits its pipeline), look again soon.
            Ok(reconciled) => requeue(
                &reconciled.outcome,
                matches!(&delivery, Some(Ok(report)) if report.active.is_some() || report.step.as_ref().is_some_and(Step::awaits_event)),
                &timing,
            ),
            Err(error) => error_policy(error, unit.attempt, &timing, fastrand::f64()),
        };
        unit.attempt = action.attempt;
        // A newer revision, or a change in AWS, arrived while this ran: reconcile again at once.
        let again = unit.fingerprint != fingerprint || std::mem::take(&mut unit.poked);
        unit.due = Some(if again { Instant::now() } else { Instant::now() + action.requeue_after });
        let now = SystemTime::now();
        self.metrics.record_reconcile(&name, ReconcileResult::of(&result), duration);
        if let Ok(reconciled) = &result {
            self.metrics.set_drift(&name, &kinds, &reconciled.drift);
        }
        let mut st = self.shared.status.write().await;
        let ps = st.pipeline_mut(&name);
        record(ps, &result, self.revision.as_deref(), now);
        match &delivery {
            Some(Ok(report)) => {
                self.metrics.record_delivery(&name, report);
                if let Some(step) = &report.step {
                    info!(pipeline = %name, action = %step, "delivery");
                }
                for problem in &report.problems {
                    warn!(pipeline = %name, problem = %problem, "delivery problem");
                }
                for event in status::record_delivery(ps, &name, report, now) {
                    if event.reason.is_warning() {
                        warn!(pipeline = %name, reason = ?event.reason, message = %event.message, "deployment event");
                    } else {
                        info!(pipeline = %name, reason = ?event.reason, message = %event.message, "deployment event");
                    }
                }
            }
            Some(Err(err)) => {
                warn!(pipeline = %name, error = %err, kind = %err.kind, "delivery failed");
                if let Some(d) = ps.delivery.as_mut() {
                    d.problems = vec![format!("delivery failed: {err}")];
                }
            }
            None => {}
        }
        self.metrics.set_conditions(&name, &ps.conditions);
    }

    /// Tells the lease task which shards have a reconcile in flight: their leases are kept.
    fn publish_busy(&self) {
        if let Some(sharding) = &self.sharding {
            sharding.busy.send_replace(self.running.iter().map(|name| sharding.shard_of(name)).collect());
        }
    }

    /// The shards this replica holds changed: takes over the pipelines of the shards gained (due
    /// now, delivery's memory read again from AWS), hands over those of the shards lost (their
    /// status and series are another replica's now).
    async fn on_held(&mut self) {
        let Some(sharding) = &self.sharding else { return };
        let Some(held) = sharding.held.borrow().clone() else { return };
        let before = self.held.replace(held.shards.clone()).unwrap_or_default();
        let now = Instant::now();
        let (mut gained, mut lost) = (Vec::new(), Vec::new());
        for (name, unit) in self.units.iter_mut() {
            match (before.contains(&unit.shard), held.shards.contains(&unit.shard)) {
                (false, true) => {
                    // A pipeline waiting for a commit (its manifest broken) keeps waiting.
                    unit.due = unit.due.map(|_| now);
                    unit.attempt = 0;
                    unit.reconciled_once = false;
                    if !self.running.contains(name) {
                        // Whoever held it may have deployed: delivery reads its history again.
                        unit.memory = Some(Memory::default());
                    }
                    gained.push(name.clone());
                }
                (true, false) => {
                    unit.reconciled_once = false;
                    lost.push(name.clone());
                }
                _ => {}
            }
        }
        for name in &lost {
            self.metrics.forget_pipeline(name);
        }
        for name in &gained {
            self.metrics.init_pipeline(name, &self.units[name].desired.kinds());
        }
        let mut st = self.shared.status.write().await;
        self.describe(&mut st, &gained, SystemTime::now());
        st.pipelines.retain(|p| self.holds(self.shard_of(&p.name)));
        st.replica = Some(ReplicaStatus {
            id: sharding.id.clone(),
            table: sharding.table.clone(),
            shards: sharding.shards,
            held: held.shards.iter().copied().collect(),
            members: held.members.clone(),
        });
        drop(st);
        self.count_shard_pipelines();
        if !gained.is_empty() || !lost.is_empty() {
            info!(shards = ?held.shards, members = held.members.len(), taken_over = gained.len(), handed_over = lost.len(), "the pipelines this replica works on changed");
        }
    }

    /// Fills the status of pipelines just taken over from the revision in hand.
    fn describe(&self, st: &mut ControllerStatus, names: &[String], now: SystemTime) {
        let Some(prepared) = &self.prepared else { return };
        for name in names {
            if let Some((valid, _)) = prepared.pipelines.iter().find(|(v, _)| v.name() == name) {
                describe(st.pipeline_mut(name), valid, self.revision.as_deref(), now);
            }
        }
    }

    /// `slipway_shard_pipelines`: the pipelines of each shard held.
    fn count_shard_pipelines(&self) {
        let (Some(_), Some(held)) = (&self.sharding, &self.held) else { return };
        let mut per_shard: BTreeMap<u16, usize> = held.iter().map(|s| (*s, 0)).collect();
        for unit in self.units.values() {
            if let Some(n) = per_shard.get_mut(&unit.shard) {
                *n += 1;
            }
        }
        self.metrics.set_shard_pipelines(&per_shard);
    }

    /// The change feed went up or down, or brought changes. Returns whether it went down.
    async fn on_feed(&mut self, signal: FeedSignal) -> bool {
        match signal {
            FeedSignal::Up { queue } => {
                self.feed_up = true;
                self.metrics.set_change_feed_up(true);
                info!(queue = %queue, full_check = %humantime::format_duration(self.drift_interval()), "change feed up: a change in AWS re-checks its pipeline at once; every pipeline is still read on the full-check interval");
                self.shared.status.write().await.change_feed = Some(ChangeFeedStatus { up: true, queue: Some(queue), reason: None });
                false
            }
            FeedSignal::Down(reason) => {
                self.feed_down(&reason);
                let mut st = self.shared.status.write().await;
                let queue = st.change_feed.take().and_then(|f| f.queue);
                st.change_feed = Some(ChangeFeedStatus { up: false, queue, reason: Some(reason) });
                true
            }
            FeedSignal::Changes(changes) => {
                for change in changes {
                    self.recheck_owners(&change);
                }
                false
            }
        }
    }

    /// Back to the drift interval: no pipeline waits longer than it while changes go unseen.
    fn feed_down(&mut self, reason: &str) {
        self.metrics.set_change_feed_up(false);
        let was_up = std::mem::replace(&mut self.feed_up, false);
        let drift = self.drift_interval();
        warn!(reason = %reason, drift_interval = %humantime::format_duration(drift), "change feed down: every pipeline is read each --drift-interval until it is back");
        if was_up {
            let latest = Instant::now() + drift;
            for unit in self.units.values_mut() {
                unit.due = unit.due.map(|due| due.min(latest));
            }
        }
    }

    /// Re-checks, at once, every pipeline owning a resource `change` names.
    fn recheck_owners(&mut self, change: &Change) {
        let mut owners = 0;
        for (name, unit) in self.units.iter_mut().filter(|(_, u)| u.desired.resources.iter().any(|r| change.keys.contains(&r.key))) {
            owners += 1;
            if unit.suspended || unit.due.is_none() {
                continue;
            }
            info!(pipeline = %name, call = %change.call, source = %change.source, by = change.actor.as_deref().unwrap_or("-"), "a change in AWS: re-checking the pipeline");
            if self.running.contains(name) {
                unit.poked = true;
            } else {
                unit.due = Some(Instant::now());
            }
        }
        if owners == 0 {
            let keys: Vec<String> = change.keys.iter().map(ToString::to_string).collect();
            debug!(call = %change.call, resources = ?keys, "a change in AWS to nothing a pipeline owns");
        }
        self.metrics.record_change(if owners == 0 { ChangeOutcome::Unowned } else { ChangeOutcome::Rechecked });
    }

    /// Looks for orphans (and prunes them when asked). Returns false when that failed.
    async fn sweep_orphans(&mut self) -> bool {
        let Some(prepared) = &self.prepared else { return true };
        let desired: HashSet<Key> = self.units.values().flat_map(|u| u.desired.resources.iter().map(|r| r.key.clone())).collect();
        let mut spared = prepared.protected.clone();
        spared.extend(self.units.iter().filter(|(_, u)| u.held_back).map(|(name, _)| name.clone()));
        let result = self.world.find_orphans(&desired, &spared).await;
        let mut st = self.shared.status.write().await;
        match result {
            Ok(orphans) => {
                st.last_orphan_check_error = None;
                let holds = prune::holds(&orphans, &prepared.health, &self.settings.prune_policy);
                // Said once per change, not on every pass.
                if self.settings.prune && holds != st.prune_holds {
                    for hold in &holds {
                        warn!("{hold}");
                    }
                }
                st.prune_holds = holds;
                if !orphans.is_empty() && self.settings.prune {
                    if !st.prune_holds.is_empty() {
                        st.orphans = orphans;
                        return true;
                    }
                    drop(st);
                    let (deleted, errors) = fence::scope(self.fence(0), self.world.prune(&orphans)).await;
                    for key in &deleted {
                        info!(resource = %key, "pruned");
                    }
                    for e in &errors {
                        warn!(error = %e, "prune failed");
                    }
                    let mut st = self.shared.status.write().await;
                    st.orphans = orphans.into_iter().filter(|o| !deleted.contains(&o.key)).collect();
                    st.last_orphan_check_error = (!errors.is_empty()).then(|| errors.join("; "));
                    return errors.is_empty();
                }
                st.orphans = orphans;
                true
            }
            Err(err) => {
                warn!(error = %err, "failed to look for orphaned resources");
                st.last_orphan_check_error = Some(err.to_string());
                false
            }
        }
    }
}
