//! The one-way flow, end to end: load → validate → compile → observe → plan → apply.
//! Only `prepare` (files, git), `plan` (AWS reads) and `apply` (AWS writes) do I/O; the
//! decisions they carry out are made by the pure modules.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tracing::{Instrument, debug, info, info_span, warn};

use slipway_aws::ahead::{ReadAhead, Scope, read_ahead};
use slipway_aws::observe::observe_pipeline;
use slipway_aws::{Aws, AwsError, inventory, resource};
use slipway_core::artifact::build_zip;
use slipway_core::compile::{DesiredPipeline, Placement, compile, route_triggers, share_trails, trail_keep};
use slipway_core::inventory::{Applied as AppliedAt, Entry};
use slipway_core::manifest::validate::ValidPipeline;
use slipway_core::manifest::{Diagnostic, load_repository, validate};
use slipway_core::plan::{Operation, Orphan, PipelinePlan, Step, plan_pipeline};
use slipway_core::prune::{self, PruneHold, PrunePolicy, RevisionHealth};
use slipway_core::quota::{Admission, Limits};
use slipway_core::reconcile::ReconcileError;
use slipway_core::resource::{DeletionPolicy, Key, Kind, Owner, owner};
use slipway_core::trigger::TriggerRoute;

use crate::source::{RepoDir, SourceError};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("failed to read the repository: {0}")]
    Read(#[from] std::io::Error),
    #[error("unknown pipeline `{0}`: no valid manifest defines it")]
    UnknownPipeline(String),
}

/// The repository, loaded and validated, with each valid pipeline's zip built.
pub struct Prepared {
    pub root: PathBuf,
    pub revision: Option<String>,
    pub pipelines: Vec<(ValidPipeline, Arc<Vec<u8>>)>,
    pub diagnostics: Vec<Diagnostic>,
    /// Files that may have been manifests but cannot be read as any: warnings that hold prune.
    pub suspects: Vec<Diagnostic>,
    /// Pipelines whose manifests are broken: their resources are never orphans.
    pub protected: HashSet<String>,
    /// What prune needs to know of this revision.
    pub health: RevisionHealth,
    /// How the pipelines' triggers reach them ([`route_triggers`]).
    pub triggers: TriggerRoute,
    pub warnings: Vec<String>,
}

/// Loads and validates the repository; `admission` decides which pipelines fit the account's
/// quotas (those past one are invalid, at the field that needs it).
pub fn prepare(repo: &Path, admission: &Admission) -> Result<Prepared, EngineError> {
    let dir = RepoDir::open(repo)?;
    let loaded = load_repository(&dir.root)?;
    let (valid, mut diagnostics) = validate(&dir.root, &loaded.pipelines, admission);
    diagnostics.extend(loaded.errors);
    diagnostics.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    let mut protected: HashSet<String> = loaded.broken_names.into_iter().collect();
    protected.extend(diagnostics.iter().filter_map(|d| d.pipeline.clone()));
    let health = RevisionHealth {
        pipelines: valid.iter().map(|v| v.name().to_string()).chain(protected.iter().cloned()).collect::<HashSet<_>>().len(),
        unsafe_files: diagnostics.iter().chain(&loaded.suspects).map(|d| d.file.clone()).collect(),
    };
    let mut warnings = Vec::new();
    let pipelines = valid
        .into_iter()
        .map(|v| {
            let commit = v.pipeline.spec.build.as_ref().map(|_| source_commit(&dir, &v, &mut warnings));
            let zip = Arc::new(build_zip(&v.source_files, commit.as_deref()));
            (v, zip)
        })
        .collect();
    Ok(Prepared {
        root: dir.root.clone(),
        revision: dir.head_commit(),
        pipelines,
        diagnostics,
        suspects: loaded.suspects,
        protected,
        health,
        warnings,
        triggers: admission.triggers,
    })
}

/// The commit `git-commit-hash.txt` names: the last one that changed the source directory.
fn source_commit(dir: &RepoDir, v: &ValidPipeline, warnings: &mut Vec<String>) -> String {
    let path = &v.pipeline.spec.source.path;
    match dir.last_commit_touching(path) {
        Some(commit) => {
            if dir.is_dirty(path) {
                warnings.push(format!(
                    "pipeline {}: `{path}` has uncommitted changes; the zip holds them but git-commit-hash.txt names {}",
                    v.name(),
                    &commit[..8]
                ));
            }
            commit
        }
        None => {
            warnings.push(format!(
                "pipeline {}: `{path}` is not in a Git commit; git-commit-hash.txt holds a digest of its content instead",
                v.name()
            ));
            let mut hasher = Sha256::new();
            for f in &v.source_files {
                hasher.update(f.name.as_bytes());
                hasher.update([0]);
                hasher.update(&f.contents);
            }
            hex::encode(hasher.finalize())
        }
    }
}

/// The result of observing and planning.
#[derive(Debug, Serialize)]
pub struct Plan {
    pub revision: Option<String>,
    pub pipelines: Vec<PipelinePlan>,
    /// `None` when not computed (a `--pipeline` filter was given).
    pub orphans: Option<Vec<Orphan>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orphan_error: Option<String>,
    pub invalid: Vec<Diagnostic>,
    /// Files that may have been manifests but cannot be read as any.
    pub suspects: Vec<Diagnostic>,
    pub warnings: Vec<String>,
    /// Why the orphans would be kept by `apply --prune`; empty when they would be deleted.
    pub prune_holds: Vec<PruneHold>,
}

impl Plan {
    pub(crate) fn has_changes(&self) -> bool {
        self.pipelines.iter().any(|p| p.has_changes()) || self.orphans.as_ref().is_some_and(|o| o.iter().any(Orphan::prunable))
    }
    pub fn has_errors(&self) -> bool {
        !self.invalid.is_empty() || self.orphan_error.is_some() || self.pipelines.iter().any(|p| p.is_blocked())
    }
}

/// Observes and plans every selected pipeline, concurrently up to `concurrency`. Orphans are
/// looked for only when all pipelines are selected.
pub async fn plan(aws: &Aws, prepared: &Prepared, only: &[String], concurrency: usize, policy: &PrunePolicy) -> Result<Plan, EngineError> {
    for name in only {
        if !prepared.pipelines.iter().any(|(v, _)| v.name() == name) && !prepared.protected.contains(name) {
            return Err(EngineError::UnknownPipeline(name.clone()));
        }
    }
    let desired = compile_all(prepared, &aws.placement(), policy.prune);
    let selected: Vec<&DesiredPipeline> = desired.iter().filter(|d| only.is_empty() || only.contains(&d.name)).collect();
    let ahead = read_ahead(aws, &pass_scope(&selected, &desired)).await;
    let mut pipelines: Vec<PipelinePlan> = futures::stream::iter(selected)
        .map(|d| observe_and_plan(aws, d, Some(&ahead)))
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    pipelines.sort_by(|a, b| a.pipeline.cmp(&b.pipeline));

    let (orphans, orphan_error) = if only.is_empty() {
        let desired_keys: HashSet<Key> = desired.iter().flat_map(|d| d.resources.iter().map(|r| r.key.clone())).collect();
        // A blocked pipeline keeps what it no longer wants until it applies: a CodeDeploy
        // application a pipeline moves away from must outlive the deployment that holds the move.
        let mut spared = prepared.protected.clone();
        spared.extend(pipelines.iter().filter(|p| p.is_blocked()).map(|p| p.pipeline.clone()));
        match find_orphans_in(aws, &desired_keys, &spared).await {
            Ok(orphans) => (Some(orphans), None),
            Err(err) => (None, Some(format!("failed to look for orphaned resources: {err}"))),
        }
    } else {
        (None, None)
    };
    let prune_holds = orphans.as_deref().map(|o| prune::holds(o, &prepared.health, policy)).unwrap_or_default();
    Ok(Plan {
        revision: prepared.revision.clone(),
        pipelines,
        orphans,
        orphan_error,
        invalid: prepared.diagnostics.clone(),
        suspects: prepared.suspects.clone(),
        warnings: prepared.warnings.clone(),
        prune_holds,
    })
}

/// Compiles every valid pipeline, with the trails they share ([`share_trails`]) and, on the
/// queue route, their triggers taken out of rules ([`route_triggers`]). A shared trail keeps
/// watching what it watches while any file of the revision is broken, and the objects of
/// pipelines removed from Git until `pruning` ([`trail_keep`]).
pub(crate) fn compile_all(prepared: &Prepared, placement: &Placement, pruning: bool) -> Vec<DesiredPipeline> {
    let mut desired: Vec<DesiredPipeline> = prepared.pipelines.iter().map(|(v, zip)| compile(v, zip.clone(), placement)).collect();
    let keep = trail_keep(&desired, prepared.health.unsafe_files.is_empty(), pruning);
    share_trails(&mut desired, &keep);
    route_triggers(&mut desired, prepared.triggers);
    desired
}

/// Who gets an account quota's room first ([`Admission`]): the pipelines this installation's
/// inventory names, then the others by name. Without the inventory (it cannot be read), by name
/// alone, with a warning.
pub async fn admission(aws: &Aws, limits: Limits, triggers: TriggerRoute) -> Admission {
    let applied = inventory::applied_pipelines(aws).await.unwrap_or_else(|err| {
        warn!(error = %err, "cannot read the inventory: pipelines are counted against the quotas in name order");
        Default::default()
    });
    Admission { limits, applied, triggers }
}

/// What a pass over `observing` reads, out of `all` the valid pipelines ([`read_ahead`]).
pub(crate) fn pass_scope<'a>(observing: &[&DesiredPipeline], all: impl IntoIterator<Item = &'a DesiredPipeline>) -> Scope {
    let keys = |d: &DesiredPipeline| d.resources.iter().map(|r| r.key.clone()).collect::<Vec<_>>();
    Scope {
        observing: observing.iter().flat_map(|d| keys(d)).collect(),
        references: observing.iter().flat_map(|d| d.references.clone()).collect(),
        managed: all.into_iter().flat_map(keys).collect(),
    }
}

/// Observes one pipeline and plans it. A failed read becomes a failed plan, never a panic.
pub(crate) async fn observe_and_plan(aws: &Aws, desired: &DesiredPipeline, ahead: Option<&ReadAhead>) -> PipelinePlan {
    let span = info_span!("observe", pipeline = %desired.name);
    async {
        match observe_pipeline(aws, desired, ahead).await {
            Ok(observed) => plan_pipeline(desired, &observed),
            Err(err) => {
                warn!(error = %err, "failed to observe pipeline");
                PipelinePlan::failed(desired, err)
            }
        }
    }
    .instrument(span)
    .await
}

/// Resources the inventory records that no desired pipeline wants, sparing `protected`
/// pipelines, each read from AWS for its deletion policy. A recorded resource that is gone is
/// listed with policy `Delete` (prune then only forgets its entry); one whose tags no longer name
/// the pipeline (or, shared, this installation) is never deleted, and left out.
pub(crate) async fn find_orphans_in(aws: &Aws, desired: &HashSet<Key>, protected: &HashSet<String>) -> Result<Vec<Orphan>, AwsError> {
    let recorded = inventory::list(aws).await?;
    let installation = Owner::Installation(aws.inventory.bucket.clone());
    let mut orphans = Vec::new();
    for entry in slipway_core::inventory::orphans(&recorded, desired, protected) {
        // Read on its own, not from a sweep: what prune may delete is judged by its tags now.
        let ours = |owner: Option<Owner>| owner == Some(Owner::Pipeline(entry.pipeline.clone())) || owner == Some(installation.clone());
        let policy = match resource::read(aws, &entry.key, None).await? {
            None => DeletionPolicy::Delete,
            Some(live) if ours(owner(&live.tags)) => DeletionPolicy::of(entry.key.kind, &live.tags),
            Some(_) => {
                debug!(resource = %entry.key, pipeline = %entry.pipeline, "in the inventory, but no longer tagged as the pipeline's: never pruned");
                continue;
            }
        };
        orphans.push(Orphan { key: entry.key, pipeline: entry.pipeline, policy });
    }
    Ok(orphans)
}

/// Deletes the orphans whose deletion policy is `Delete`, in order (dependents first), and
/// forgets them in the inventory; returns what was deleted and what failed. Retained orphans are
/// left as they are, and stay in the inventory.
pub async fn prune(aws: &Aws, orphans: &[Orphan]) -> (Vec<Applied>, Vec<String>) {
    let mut pruned = Vec::new();
    let mut errors = Vec::new();
    for orphan in orphans.iter().filter(|o| o.prunable()) {
        info!(resource = %orphan.key, pipeline = %orphan.pipeline, "deleting orphaned resource");
        let verb = match resource::delete(aws, &orphan.key).await {
            Ok(()) => "deleted",
            Err(err) if err.is_not_found() => "already gone",
            Err(err) => {
                errors.push(format!("failed to delete {}: {err}", orphan.key));
                continue;
            }
        };
        pruned.push(Applied { key: orphan.key.clone(), verb });
        if let Err(err) = inventory::forget(aws, &Entry::new(&orphan.pipeline, orphan.key.clone())).await {
            errors.push(format!("deleted {}, but failed to remove it from the inventory: {err}", orphan.key));
        }
    }
    (pruned, errors)
}

/// Records in the inventory what a pipeline has and is about to create, before any create:
/// a resource the inventory lacks could never be pruned. Conflicts (not slipway's) are left out.
pub(crate) async fn record_inventory(aws: &Aws, p: &PipelinePlan) -> Result<(), ReconcileError> {
    let (creating, existing): (Vec<&Step>, Vec<&Step>) =
        p.steps.iter().filter(|s| !matches!(s.action, Operation::Conflict { .. })).partition(|s| s.action == Operation::Create);
    let entries = |steps: Vec<&Step>| slipway_core::inventory::entries(&p.pipeline, steps.into_iter().map(|s| &s.key));
    inventory::ensure(aws, entries(existing), entries(creating)).await.map_err(ReconcileError::Inventory)
}

/// What apply did to one resource.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    pub key: Key,
    pub verb: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct PipelineOutcome {
    pub pipeline: String,
    pub done: Vec<Applied>,
    /// Why nothing was attempted (a conflict, a missing reference, a failed read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// The call that failed; the steps after it were not attempted. Keeps its kind; serialised
    /// as its message.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "as_message")]
    pub error: Option<ReconcileError>,
}

fn as_message<S: serde::Serializer>(error: &Option<ReconcileError>, serializer: S) -> Result<S::Ok, S::Error> {
    match error {
        Some(e) => serializer.collect_str(e),
        None => serializer.serialize_none(),
    }
}

#[derive(Debug, Serialize)]
pub struct ApplyReport {
    pub revision: Option<String>,
    pub pipelines: Vec<PipelineOutcome>,
    pub pruned: Vec<Applied>,
    pub prune_errors: Vec<String>,
    /// Orphans prune would delete, left in place (no `--prune`, a hold, or a failed delete).
    pub orphans_kept: usize,
    /// Orphans whose deletion policy is `Retain`: prune never deletes them.
    pub orphans_retained: usize,
    pub invalid: Vec<Diagnostic>,
}

impl ApplyReport {
    pub fn succeeded(&self) -> bool {
        self.invalid.is_empty() && self.prune_errors.is_empty() && self.pipelines.iter().all(|p| p.error.is_none() && p.skipped.is_none())
    }
}

/// Carries out a plan: each pipeline's steps in creation order, stopping that pipeline at its
/// first failure; other pipelines go on. With `prune`, orphans are deleted afterwards.
pub async fn apply(aws: &Aws, plan: &Plan, prune: bool, concurrency: usize) -> ApplyReport {
    let mut pipelines: Vec<PipelineOutcome> = futures::stream::iter(&plan.pipelines)
        .map(|p| {
            let span = info_span!("apply", pipeline = %p.pipeline, revision = plan.revision.as_deref().unwrap_or("-"));
            apply_pipeline(aws, p, plan.revision.as_deref()).instrument(span)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    pipelines.sort_by(|a, b| a.pipeline.cmp(&b.pipeline));

    let mut pruned = Vec::new();
    let mut prune_errors = Vec::new();
    let orphans = plan.orphans.as_deref().unwrap_or_default();
    if prune && !orphans.is_empty() {
        if plan.prune_holds.is_empty() {
            (pruned, prune_errors) = self::prune(aws, orphans).await;
        } else {
            prune_errors.extend(plan.prune_holds.iter().map(ToString::to_string));
        }
    }
    if prune && plan.orphans.is_none() {
        prune_errors.push("not pruning: --prune needs the whole repository (drop --pipeline)".into());
    }
    if let Some(err) = &plan.orphan_error {
        prune_errors.push(err.clone());
    }
    ApplyReport {
        revision: plan.revision.clone(),
        pipelines,
        orphans_kept: orphans.iter().filter(|o| o.prunable()).count() - pruned.len(),
        orphans_retained: orphans.iter().filter(|o| !o.prunable()).count(),
        pruned,
        prune_errors,
        invalid: plan.invalid.clone(),
    }
}

/// Applies one pipeline's plan: records it in the inventory, then its steps in creation order,
/// stopping at the first failure; a pass that changed anything records the `revision`. A
/// blocked pipeline is skipped whole.
pub(crate) async fn apply_pipeline(aws: &Aws, p: &PipelinePlan, revision: Option<&str>) -> PipelineOutcome {
    let mut outcome = PipelineOutcome { pipeline: p.pipeline.clone(), done: Vec::new(), skipped: None, error: None };
    if p.is_blocked() {
        let reasons = p.blocked_reasons().join("; ");
        warn!(reasons = %reasons, "pipeline blocked; nothing applied");
        outcome.skipped = Some(reasons);
        return outcome;
    }
    if let Err(err) = record_inventory(aws, p).await {
        warn!(error = %err, "nothing applied: the inventory could not record this pipeline");
        outcome.error = Some(err);
        return outcome;
    }
    for step in &p.steps {
        let artifact = step.key.kind == Kind::SourceArtifact;
        let result = match &step.action {
            Operation::Noop | Operation::Conflict { .. } => continue,
            _ if step.desired.is_shared() => resource::apply_shared(aws, &step.desired, p.adopt).await.map(|done| match done {
                Operation::Create => Some("created"),
                Operation::Update { .. } => Some("updated"),
                _ => None,
            }),
            Operation::Create => resource::create(aws, &step.desired).await.map(|()| Some(if artifact { "uploaded" } else { "created" })),
            Operation::Update { .. } => {
                let live = step.live.as_ref().expect("updates have a live resource");
                resource::update(aws, &step.desired, live).await.map(|()| Some(if artifact { "uploaded" } else { "updated" }))
            }
        };
        match result {
            Ok(None) => debug!(resource = %step.key, "already as wanted: another pipeline sharing it applied it first"),
            Ok(Some(verb)) => {
                info!(resource = %step.key, verb, "applied");
                outcome.done.push(Applied { key: step.key.clone(), verb });
            }
            Err(err) => {
                warn!(resource = %step.key, error = %err, "apply failed; later steps of this pipeline skipped");
                outcome.error = Some(ReconcileError::Apply { resource: step.key.clone(), source: err });
                break;
            }
        }
    }
    if outcome.error.is_none() && !outcome.done.is_empty() {
        let applied = AppliedAt {
            pipeline: p.pipeline.clone(),
            revision: revision.map(str::to_owned),
            applied_at: slipway_core::time::timestamp(std::time::SystemTime::now()),
        };
        // The revision record informs people; the inventory entries above are what prune needs.
        if let Err(err) = inventory::record_applied(aws, &applied).await {
            warn!(error = %err, "applied, but failed to record the revision in the state bucket");
        }
    }
    outcome
}
