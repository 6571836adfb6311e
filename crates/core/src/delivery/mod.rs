//! Delivery: deploying new images, watching every deployment to its end, rolling back, and
//! protecting the image the service really runs.
//!
//! The decisions are pure ([`decide`]); the I/O goes through two small port traits ([`api`])
//! that the `slipway-aws` crate implements with the SDK and tests implement in memory. [`pass`]
//! ties one observe → decide → act step together for a pipeline and says what it did as a typed
//! [`Step`]; the controller runs it after each reconcile, and `slipway history` / `slipway
//! rollback` use the same pieces from the command line. No async runtime is needed here: the
//! caller's drives the futures.

pub mod api;
pub mod decide;

use std::collections::HashSet;
use std::fmt;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::Value;

use crate::error::AwsError;
use crate::manifest::DeployStrategy;
use crate::manifest::validate::ValidPipeline;
use crate::time::timestamp;
use api::{Delivery, Deployment, HookAnswer, Image, Registry};
use decide::{Decision, DeployOutcome, ImageRef, Observation, image_container, parse_image_ref, render_app_spec, render_task_definition};

/// The tag that keeps the image a pipeline's service runs from ever expiring.
pub fn live_tag(pipeline: &str) -> String {
    format!("slipway-live-{pipeline}")
}

/// What delivery deploys to and how, for one pipeline, taken from its validated manifest.
#[derive(Debug, Clone)]
pub struct DeployTarget {
    pub pipeline: String,
    pub repository: String,
    pub tag: String,
    pub pin: Option<String>,
    pub route: decide::Route,
    /// Who shifts traffic: CodeDeploy (the application and group below) or ECS itself.
    pub strategy: DeployStrategy,
    pub codepipeline: String,
    pub application: String,
    pub group: String,
    pub cluster: String,
    pub service: String,
    pub grace: Duration,
    pub task_definition: Value,
    /// Empty with an ECS strategy (no AppSpec).
    pub app_spec: String,
    /// The container whose image is `<IMAGE1_NAME>`.
    pub container: String,
}

impl DeployTarget {
    /// `None` when the task definition names no `<IMAGE1_NAME>` container: nothing to deploy.
    pub fn from_valid(v: &ValidPipeline) -> Option<DeployTarget> {
        let p = &v.pipeline;
        let s = &p.spec;
        let file = |name: &str| v.source_files.iter().find(|f| f.name == name).map(|f| f.contents.clone());
        let task_definition = v.task_definition()?;
        let app_spec = if s.deploy.strategy.is_ecs() { String::new() } else { String::from_utf8(file(s.deploy.app_spec())?).ok()? };
        Some(DeployTarget {
            pipeline: p.name().to_string(),
            repository: s.image.repository.clone(),
            tag: s.image.tag.clone(),
            pin: s.image.pin.clone(),
            route: match (p.uses_codepipeline(), s.build.is_some()) {
                (false, _) => decide::Route::Direct,
                (true, false) => decide::Route::PipelineOnPush,
                (true, true) => decide::Route::PipelineBuildsImage,
            },
            strategy: s.deploy.strategy,
            codepipeline: p.codepipeline_name().to_string(),
            application: p.application_name().to_string(),
            group: p.deployment_group_name().to_string(),
            cluster: s.deploy.cluster.clone(),
            service: s.deploy.service.clone(),
            grace: Duration::from_secs(s.deploy.event_grace_seconds.into()),
            container: image_container(&task_definition)?,
            task_definition,
            app_spec,
        })
    }
}

/// What delivery remembers about a pipeline between passes.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    /// Digests deployed or tried: never deployed again.
    pub attempted: HashSet<String>,
    /// Whether `attempted` and `finished` were filled from the group's history yet.
    pub seeded: bool,
    /// Deployments already known to have ended: each end is reported once, whoever started the
    /// deployment (slipway, the pipeline, a person in the console, CodeDeploy's rollback).
    pub finished: HashSet<String>,
    /// Pipeline executions already known to have ended.
    pub finished_executions: HashSet<String>,
}

/// What a delivery pass did, or with `sync: observe` would do. The loop and the status branch on
/// the variant; [`fmt::Display`] gives the sentence for logs and `/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A new digest awaits the execution EventBridge should start.
    AwaitingEvent { pipeline: String, digest: String },
    /// An execution started after the push (EventBridge's): it carries the digest.
    PipelineStarted { pipeline: String, digest: String },
    /// No execution came within the grace period after the push: slipway started one.
    StartedPipeline { pipeline: String, execution: String, digest: String, grace: Duration },
    /// Direct mode: slipway registered the task definition and created the deployment.
    CreatedDeployment { deployment: String, digest: String, task_definition: String },
    /// `sync: observe`: this digest would be deployed.
    WouldDeploy { digest: String },
}

impl Step {
    /// Waiting for something expected soon: the loop looks again on the watch interval.
    pub fn awaits_event(&self) -> bool {
        matches!(self, Step::AwaitingEvent { .. })
    }

    /// A deployment starts with this step (an event `Deploying`).
    pub(crate) fn starts_deployment(&self) -> bool {
        matches!(self, Step::PipelineStarted { .. } | Step::StartedPipeline { .. } | Step::CreatedDeployment { .. })
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::AwaitingEvent { pipeline, digest } => write!(f, "waiting for EventBridge to start {pipeline} for {digest}"),
            Step::PipelineStarted { pipeline, digest } => write!(f, "{pipeline} was started for {digest}"),
            Step::StartedPipeline { pipeline, execution, digest, grace } => {
                write!(f, "no execution appeared within {grace:?} of the push: started {pipeline} ({execution}) for {digest}")
            }
            Step::CreatedDeployment { deployment, digest, task_definition } => {
                write!(f, "created deployment {deployment} of {digest} ({task_definition})")
            }
            Step::WouldDeploy { digest } => write!(f, "would deploy {digest} (sync: observe)"),
        }
    }
}

/// What one delivery pass saw and did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// The digest Git asks for (the tracked tag's or the pin's).
    pub tracked: Option<String>,
    /// The digest the service runs.
    pub live: Option<String>,
    /// What this pass did.
    pub step: Option<Step>,
    pub active: Option<Deployment>,
    /// Deployments that ended since the last pass.
    pub finished: Vec<Deployment>,
    /// Pipeline executions that ended since the last pass (pipeline mode).
    pub finished_executions: Vec<api::Execution>,
    /// The service runs something other than what Git asks for, and nothing is deploying.
    pub image_drift: bool,
    /// Something delivery could not do (it does not stop the pipeline).
    pub problems: Vec<String>,
}

/// Recent deployments looked at each pass (and for history).
pub(crate) const HISTORY: usize = 20;

/// The target's recent deployments, newest first: the CodeDeploy group's, or the ECS service's.
async fn deployments<D: Delivery>(delivery: &D, t: &DeployTarget, limit: usize) -> Result<Vec<Deployment>, AwsError> {
    if t.strategy.is_ecs() {
        let found = delivery.service_deployments(&t.cluster, &t.service, limit).await?;
        return Ok(found.into_iter().map(api::ServiceDeployment::into_deployment).collect());
    }
    delivery.deployments(&t.application, &t.group, limit).await
}

/// Deploys a registered task definition: a CodeDeploy deployment from the AppSpec, or the
/// service pointed at it (ECS deploys it under the service's strategy).
async fn deploy<D: Delivery>(delivery: &D, t: &DeployTarget, task_definition: &str, description: &str) -> Result<String, AwsError> {
    if t.strategy.is_ecs() {
        return delivery.update_service(&t.cluster, &t.service, task_definition).await;
    }
    delivery.create_deployment(&t.application, &t.group, &render_app_spec(&t.app_spec, task_definition), description).await
}

/// Reads what delivery decides on.
pub async fn observe<R: Registry, D: Delivery>(registry: &R, delivery: &D, t: &DeployTarget) -> Result<Observation, AwsError> {
    let tracked = match t.pin.as_deref().and_then(parse_image_ref) {
        Some(ImageRef::Digest { digest, .. }) => registry.image_by_digest(&t.repository, &digest).await?,
        Some(ImageRef::Tag { tag, .. }) => registry.image_by_tag(&t.repository, &tag).await?,
        None => registry.image_by_tag(&t.repository, &t.tag).await?,
    };
    let deployments = deployments(delivery, t, HISTORY).await?;
    let live = live_digest(registry, delivery, t).await?;
    let executions = if t.route == decide::Route::Direct { Vec::new() } else { delivery.executions(&t.codepipeline, 10).await? };
    Ok(Observation { tracked, live, deployments, executions })
}

/// The digest of the image the service's current task definition runs, when it is an image of
/// the pipeline's repository.
pub(crate) async fn live_digest<R: Registry, D: Delivery>(
    registry: &R,
    delivery: &D,
    t: &DeployTarget,
) -> Result<Option<String>, AwsError> {
    let Some(arn) = delivery.service_task_definition(&t.cluster, &t.service).await? else { return Ok(None) };
    image_digest_of(registry, delivery, t, &arn).await
}

async fn image_digest_of<R: Registry, D: Delivery>(
    registry: &R,
    delivery: &D,
    t: &DeployTarget,
    task_definition: &str,
) -> Result<Option<String>, AwsError> {
    digest_in(registry, t, &delivery.task_definition(task_definition).await?).await
}

/// The digest of the pipeline's container image in an already read task definition.
async fn digest_in<R: Registry>(registry: &R, t: &DeployTarget, definition: &api::TaskDefinition) -> Result<Option<String>, AwsError> {
    let Some((_, image)) = definition.images.iter().find(|(name, _)| *name == t.container) else { return Ok(None) };
    let ours = |repo: &str| repo == t.repository || repo.ends_with(&format!("/{}", t.repository));
    match parse_image_ref(image) {
        Some(ImageRef::Digest { repository, digest }) if ours(&repository) => Ok(Some(digest)),
        Some(ImageRef::Tag { repository, tag }) if ours(&repository) => {
            Ok(registry.image_by_tag(&t.repository, &tag).await?.map(|i| i.digest))
        }
        _ => Ok(None),
    }
}

/// One observe → decide → act step. With `act` false (sync: observe) nothing is started and
/// no tag is moved: the report only says what is.
pub async fn pass<R: Registry, D: Delivery>(
    registry: &R,
    delivery: &D,
    t: &DeployTarget,
    memory: &mut Memory,
    revision: Option<&str>,
    act: bool,
    now: SystemTime,
) -> Result<Report, AwsError> {
    let obs = observe(registry, delivery, t).await?;
    let mut report = Report { tracked: obs.tracked.as_ref().map(|i| i.digest.clone()), live: obs.live.clone(), ..Default::default() };
    let ended = obs.deployments.iter().filter(|d| !d.status.is_active());
    let ended_executions = obs.executions.iter().filter(|e| e.status.has_ended());
    if !memory.seeded {
        memory.finished_executions.extend(ended_executions.map(|e| e.id.clone()));
        // Everything the group ever rolled out counts as tried: a restart never redeploys it.
        for d in &obs.deployments {
            if let Some(arn) = &d.task_definition
                && let Some(digest) = image_digest_of(registry, delivery, t, arn).await?
            {
                memory.attempted.insert(digest);
            }
        }
        memory.finished.extend(ended.map(|d| d.id.clone()));
        memory.seeded = true;
    } else {
        // Oldest first, so events read in the order things happened.
        for d in ended.collect::<Vec<_>>().into_iter().rev() {
            if memory.finished.insert(d.id.clone()) {
                report.finished.push(d.clone());
            }
        }
        for e in ended_executions.collect::<Vec<_>>().into_iter().rev() {
            if memory.finished_executions.insert(e.id.clone()) {
                report.finished_executions.push(e.clone());
            }
        }
    }
    report.active = obs.active().cloned();
    let pipeline = t.codepipeline.clone();
    match decide::decide(&obs, t.route, &memory.attempted, t.grace, now) {
        Decision::Watch(_) => {}
        Decision::Settled => {
            if act && let Some(live) = &obs.live {
                protect(registry, t, live, &mut report).await;
            }
        }
        Decision::AwaitEvent { digest, .. } => report.step = Some(Step::AwaitingEvent { pipeline, digest }),
        Decision::PipelineStarted { digest } => {
            memory.attempted.insert(digest.clone());
            report.step = Some(Step::PipelineStarted { pipeline, digest });
        }
        Decision::StartPipeline { digest } if act => {
            let execution = delivery.start_execution(&t.codepipeline).await?;
            memory.attempted.insert(digest.clone());
            report.step = Some(Step::StartedPipeline { pipeline, execution, digest, grace: t.grace });
        }
        Decision::DeployDirect { digest } if act => {
            let uri = registry.repository_uri(&t.repository).await?;
            let definition = render_task_definition(&t.task_definition, &format!("{uri}@{digest}"));
            // Recorded before the calls: a failure half-way must not lead to a second attempt.
            memory.attempted.insert(digest.clone());
            let arn = delivery.register_task_definition(&definition, revision).await?;
            let description = format!("slipway: deploy {digest} (revision {})", revision.unwrap_or("-"));
            let deployment = deploy(delivery, t, &arn, &description).await?;
            report.step = Some(Step::CreatedDeployment { deployment, digest, task_definition: arn });
        }
        Decision::StartPipeline { digest } | Decision::DeployDirect { digest } => report.step = Some(Step::WouldDeploy { digest }),
    }
    report.image_drift = report.active.is_none() && report.tracked.is_some() && report.tracked != report.live;
    Ok(report)
}

/// Points the live tag at the running digest, so no lifecycle rule can delete it.
async fn protect<R: Registry>(registry: &R, t: &DeployTarget, live: &str, report: &mut Report) {
    let tag = live_tag(&t.pipeline);
    let tagged = match registry.image_by_digest(&t.repository, live).await {
        Ok(Some(Image { tags, .. })) => tags.contains(&tag),
        Ok(None) => {
            report.problems.push(format!("the running image {live} is no longer in {}: the service cannot start new tasks", t.repository));
            return;
        }
        Err(e) => {
            report.problems.push(format!("failed to read the running image: {e}"));
            return;
        }
    };
    if !tagged && let Err(e) = registry.put_tag(&t.repository, live, &tag).await {
        report.problems.push(format!("failed to tag the running image {live} as {tag}: {e}"));
    }
}

/// One row of `slipway history`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    #[serde(flatten)]
    pub deployment: Deployment,
    pub started: Option<String>,
    pub ended: Option<String>,
    pub duration_seconds: Option<f64>,
    pub outcome: DeployOutcome,
    /// Who or what rolled it back (or, for a `slipway rollback` deployment, that it was one).
    pub rollback: Option<decide::RollbackTrigger>,
    pub image_digest: Option<String>,
    pub git_revision: Option<String>,
}

/// The pipeline's recent deployments, newest first, with the image and Git revision each
/// rolled out. Reads AWS only: no running controller needed.
pub async fn history<R: Registry, D: Delivery>(
    registry: &R,
    delivery: &D,
    t: &DeployTarget,
    limit: usize,
) -> Result<Vec<HistoryEntry>, AwsError> {
    let mut out = Vec::new();
    for d in deployments(delivery, t, limit).await? {
        let (mut image_digest, mut git_revision) = (None, None);
        if let Some(arn) = &d.task_definition {
            // One read for both the revision tag and the image.
            let definition = delivery.task_definition(arn).await?;
            image_digest = digest_in(registry, t, &definition).await?;
            git_revision = definition.revision;
        }
        let stamp = |t: Option<SystemTime>| t.map(timestamp);
        out.push(HistoryEntry {
            started: stamp(d.created),
            ended: stamp(d.completed),
            duration_seconds: d.created.zip(d.completed).and_then(|(a, b)| b.duration_since(a).ok()).map(|d| d.as_secs_f64()),
            outcome: decide::outcome(&d),
            rollback: decide::rollback_trigger(&d),
            image_digest,
            git_revision,
            deployment: d,
        });
    }
    Ok(out)
}

/// What `slipway rollback` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollbackDone {
    /// A deployment was in progress: stopped, and CodeDeploy rolls back to the previous task set.
    Stopped { deployment: String },
    /// Nothing in progress: a new deployment of an earlier good task definition.
    Redeployed { deployment: String, of: String, task_definition: String },
}

/// Stops a deployment in progress with rollback or, when none is, deploys the task definition of
/// the last successful deployment (or of `to`). Refuses, with the reason, when there is nothing
/// to roll back to.
pub async fn rollback<D: Delivery>(delivery: &D, t: &DeployTarget, to: Option<&str>) -> Result<RollbackDone, RollbackError> {
    let deployments = deployments(delivery, t, HISTORY).await?;
    if let Some(active) = deployments.iter().find(|d| d.status.is_active()) {
        if to.is_some() {
            return Err(RollbackError::Refused(format!("deployment {} is in progress: roll it back first (without --to)", active.id)));
        }
        if t.strategy.is_ecs() {
            delivery.stop_service_deployment(&active.id, true).await?;
        } else {
            delivery.stop_deployment(&active.id, true).await?;
        }
        return Ok(RollbackDone::Stopped { deployment: active.id.clone() });
    }
    let running = delivery.service_task_definition(&t.cluster, &t.service).await?;
    let target = decide::rollback_target(&deployments, running.as_deref(), to).map_err(RollbackError::Refused)?;
    let task_definition = target.task_definition.clone().expect("rollback targets have a task definition");
    let description = format!("{}{}", decide::SLIPWAY_ROLLBACK, target.id);
    // ECS keeps no description: with an ECS strategy this redeploy is counted as a deployment,
    // not as a `slipway` rollback (README: Deploy strategies).
    let id = deploy(delivery, t, &task_definition, &description).await?;
    Ok(RollbackDone::Redeployed { deployment: id, of: target.id.clone(), task_definition })
}

/// What `slipway promote` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promoted {
    pub deployment: String,
    pub hook_id: String,
    pub answer: HookAnswer,
}

/// Answers the PAUSE hook the running deployment waits at (ECS strategies): `Continue` lets it go
/// on, `Rollback` sends it back. Refuses, with the reason, when nothing waits.
pub async fn promote<D: Delivery>(delivery: &D, t: &DeployTarget, answer: HookAnswer) -> Result<Promoted, RollbackError> {
    if !t.strategy.is_ecs() {
        return Err(RollbackError::Refused(format!(
            "pipeline {} deploys with strategy `codedeploy`: CodeDeploy has no pause hooks (its ready wait is answered in CodeDeploy)",
            t.pipeline
        )));
    }
    let deployments = deployments(delivery, t, HISTORY).await?;
    let Some(active) = deployments.iter().find(|d| d.status.is_active()) else {
        return Err(RollbackError::Refused(format!("no deployment of {}/{} is running", t.cluster, t.service)));
    };
    let Some(paused) = &active.paused else {
        let stage = active.stage.as_deref().unwrap_or("no stage reported");
        return Err(RollbackError::Refused(format!("deployment {} is not waiting at a PAUSE hook ({stage})", active.id)));
    };
    delivery.continue_service_deployment(&active.id, &paused.hook_id, answer).await?;
    Ok(Promoted { deployment: active.id.clone(), hook_id: paused.hook_id.clone(), answer })
}

#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error("refusing to roll back: {0}")]
    Refused(String),
    #[error(transparent)]
    Aws(#[from] AwsError),
}
