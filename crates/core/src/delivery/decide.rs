//! Delivery decisions. Pure: what AWS shows in, what to do out.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::api::{Creator, DeployStatus, Deployment, Execution, Image, StopCode};
use crate::manifest::validate::{IMAGE_PLACEHOLDER, TASK_DEFINITION_PLACEHOLDER};

/// An image reference as a task definition or a pin writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    Digest { repository: String, digest: String },
    Tag { repository: String, tag: String },
}

/// `…/repo@sha256:…` or `…/repo:tag` (a registry host with a port is not mistaken for a tag).
pub(crate) fn parse_image_ref(image: &str) -> Option<ImageRef> {
    if let Some((repo, digest)) = image.split_once('@') {
        return Some(ImageRef::Digest { repository: repo.to_string(), digest: digest.to_string() });
    }
    let (repo, tag) = image.rsplit_once(':')?;
    if tag.contains('/') {
        return None;
    }
    Some(ImageRef::Tag { repository: repo.to_string(), tag: tag.to_string() })
}

/// The name of the container whose image is `<IMAGE1_NAME>` in the template.
pub(crate) fn image_container(template: &Value) -> Option<String> {
    template["containerDefinitions"]
        .as_array()?
        .iter()
        .find(|c| c["image"] == IMAGE_PLACEHOLDER)
        .and_then(|c| c["name"].as_str())
        .map(str::to_owned)
}

/// The template with the image filled in, ready to register.
pub(crate) fn render_task_definition(template: &Value, image: &str) -> Value {
    let mut definition = template.clone();
    if let Some(containers) = definition["containerDefinitions"].as_array_mut() {
        for c in containers.iter_mut().filter(|c| c["image"] == IMAGE_PLACEHOLDER) {
            c["image"] = Value::String(image.to_string());
        }
    }
    definition
}

/// The AppSpec template with the registered task definition filled in.
pub(crate) fn render_app_spec(template: &str, task_definition_arn: &str) -> String {
    template.replace(TASK_DEFINITION_PLACEHOLDER, task_definition_arn)
}

/// What delivery saw for one pipeline.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// What Git asks for: the tracked tag's image, or the pinned one.
    pub tracked: Option<Image>,
    /// The digest the service runs now.
    pub live: Option<String>,
    /// Deployments of the group, newest first.
    pub deployments: Vec<Deployment>,
    /// Pipeline executions, newest first (pipeline mode).
    pub executions: Vec<Execution>,
}

impl Observation {
    pub fn active(&self) -> Option<&Deployment> {
        self.deployments.iter().find(|d| d.status.is_active())
    }
}

/// How a new image reaches the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// slipway registers the task definition and creates the deployment (`deploy.mode: direct`).
    Direct,
    /// A push to ECR starts the managed CodePipeline (seed 000).
    PipelineOnPush,
    /// The pipeline builds the image itself (seed 002): a new digest is its output, never a
    /// reason to start it (that would loop), so delivery only follows and reports.
    PipelineBuildsImage,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to deploy: in step, no image yet, or this digest was already tried.
    Settled,
    /// A deployment is running: follow it, start nothing.
    Watch(String),
    /// Pipeline mode: a new digest, and no execution for it yet; EventBridge should start one.
    AwaitEvent { digest: String, deadline: SystemTime },
    /// Pipeline mode: the event did not come within the grace period.
    StartPipeline { digest: String },
    /// Pipeline mode: an execution started after the push; it carries this digest.
    PipelineStarted { digest: String },
    /// Direct mode: register the task definition and create the deployment.
    DeployDirect { digest: String },
}

/// Decides the next delivery step. `attempted` holds digests already deployed or tried (from the
/// group's history and this process), so no digest is ever deployed twice.
pub fn decide(obs: &Observation, route: Route, attempted: &HashSet<String>, grace: Duration, now: SystemTime) -> Decision {
    if let Some(active) = obs.active() {
        return Decision::Watch(active.id.clone());
    }
    let Some(tracked) = &obs.tracked else { return Decision::Settled };
    if obs.live.as_deref() == Some(tracked.digest.as_str()) || attempted.contains(&tracked.digest) {
        return Decision::Settled;
    }
    let digest = tracked.digest.clone();
    match route {
        Route::Direct => return Decision::DeployDirect { digest },
        Route::PipelineBuildsImage => return Decision::Settled,
        Route::PipelineOnPush => {}
    }
    let pushed = tracked.pushed_at.unwrap_or(now);
    let started_for_it = obs.executions.iter().any(|e| e.source_revisions.contains(&digest) || e.started.is_some_and(|s| s >= pushed));
    if started_for_it {
        return Decision::PipelineStarted { digest };
    }
    let deadline = pushed + grace;
    if now >= deadline { Decision::StartPipeline { digest } } else { Decision::AwaitEvent { digest, deadline } }
}

labels! {
    /// Who or what rolled a deployment back. Its label is the `trigger` of
    /// `slipway_rollbacks_total`.
    pub enum RollbackTrigger {
        /// CodeDeploy's automatic rollback after a failure.
        AutoFailure = "auto_failure",
        /// CodeDeploy stopped it on a CloudWatch alarm.
        Alarm = "alarm",
        /// Someone stopped it (console, CLI, `slipway rollback` of a running deployment).
        Manual = "manual",
        /// `slipway rollback` deployed an earlier task definition.
        Slipway = "slipway",
        /// ECS's deployment circuit breaker (tasks failed to start or to get healthy).
        CircuitBreaker = "circuit_breaker",
        /// An ECS lifecycle hook failed or timed out with `ROLLBACK`.
        LifecycleHook = "lifecycle_hook",
    }
}

/// Prefix of the description `slipway rollback` gives the deployments it creates.
pub(crate) const SLIPWAY_ROLLBACK: &str = "slipway rollback to ";

/// Whether `d` was rolled back, and by what. A deployment `slipway rollback` created counts as a
/// rollback (of whatever ran before it).
pub fn rollback_trigger(d: &Deployment) -> Option<RollbackTrigger> {
    if d.description.as_deref().is_some_and(|t| t.starts_with(SLIPWAY_ROLLBACK)) {
        return Some(RollbackTrigger::Slipway);
    }
    let rolled_back = d.rolled_back_by.is_some()
        || d.rolled_back_in_place
        || (d.status == DeployStatus::Stopped && d.error_code == Some(StopCode::ManualStop));
    if !rolled_back && d.status != DeployStatus::Failed {
        return None;
    }
    match d.error_code {
        Some(StopCode::AlarmActive) => Some(RollbackTrigger::Alarm),
        Some(StopCode::ManualStop) => Some(RollbackTrigger::Manual),
        Some(StopCode::CircuitBreaker) => Some(RollbackTrigger::CircuitBreaker),
        Some(StopCode::LifecycleHook) => Some(RollbackTrigger::LifecycleHook),
        _ if rolled_back || d.status == DeployStatus::Failed => Some(RollbackTrigger::AutoFailure),
        _ => None,
    }
}

labels! {
    /// How a deployment ended (or that it has not), for history, events and metrics.
    pub enum DeployOutcome {
        InProgress = "in_progress",
        Succeeded = "succeeded",
        Failed = "failed",
        RolledBack = "rolled_back",
        Stopped = "stopped",
        /// A deployment `slipway rollback` created, that succeeded.
        Rollback = "rollback",
    }
}

impl DeployOutcome {
    /// The `result` label values of the deployment metrics: how a finished deployment counts.
    pub const RESULTS: [DeployOutcome; 4] =
        [DeployOutcome::Succeeded, DeployOutcome::Failed, DeployOutcome::RolledBack, DeployOutcome::Stopped];

    /// The metric result a finished deployment counts as: a successful `slipway rollback` is a
    /// successful deployment (its rollback is counted by `slipway_rollbacks_total`).
    pub fn result(self) -> DeployOutcome {
        match self {
            DeployOutcome::Rollback => DeployOutcome::Succeeded,
            other => other,
        }
    }
}

/// How a deployment ended, for history and metrics.
pub fn outcome(d: &Deployment) -> DeployOutcome {
    match (d.status, rollback_trigger(d)) {
        (s, _) if s.is_active() => DeployOutcome::InProgress,
        (DeployStatus::Succeeded, Some(RollbackTrigger::Slipway)) => DeployOutcome::Rollback,
        (DeployStatus::Succeeded, _) => DeployOutcome::Succeeded,
        (_, Some(_)) if d.rolled_back_by.is_some() || d.rolled_back_in_place => DeployOutcome::RolledBack,
        (DeployStatus::Stopped, _) => DeployOutcome::Stopped,
        _ => DeployOutcome::Failed,
    }
}

/// Whether a finished deployment is counted as a deployment: CodeDeploy's own rollback
/// deployments are counted as the rollback of the one they replace instead.
pub fn counts_as_deployment(d: &Deployment) -> bool {
    d.creator != Creator::CodeDeployRollback
}

/// The deployment `slipway rollback` goes back to: `to` when given (it must have succeeded), else
/// the newest successful deployment whose task definition is not the one running now.
pub(crate) fn rollback_target<'a>(
    deployments: &'a [Deployment],
    running: Option<&str>,
    to: Option<&str>,
) -> Result<&'a Deployment, String> {
    if let Some(id) = to {
        let d = deployments
            .iter()
            .find(|d| d.id == id)
            .ok_or_else(|| format!("deployment {id} is not among this pipeline's recent deployments"))?;
        if d.status != DeployStatus::Succeeded || d.task_definition.is_none() {
            return Err(format!("deployment {id} did not succeed; only a successful deployment's task definition is a safe target"));
        }
        return Ok(d);
    }
    deployments
        .iter()
        .filter(|d| d.status == DeployStatus::Succeeded && d.task_definition.is_some())
        .find(|d| d.task_definition.as_deref() != running)
        .ok_or_else(|| "nothing to roll back to: no earlier successful deployment with another task definition".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn image(digest: &str, pushed: u64) -> Image {
        Image { digest: digest.into(), pushed_at: Some(at(pushed)), tags: vec!["latest".into()] }
    }

    fn deployment(id: &str, status: DeployStatus) -> Deployment {
        Deployment { task_definition: Some(format!("arn:td/{id}")), ..Deployment::new(id, status) }
    }

    #[test]
    fn image_references_split_into_repository_and_digest_or_tag() {
        assert_eq!(
            parse_image_ref("1.dkr.ecr.r.amazonaws.com/web@sha256:ab"),
            Some(ImageRef::Digest { repository: "1.dkr.ecr.r.amazonaws.com/web".into(), digest: "sha256:ab".into() })
        );
        assert_eq!(
            parse_image_ref("localhost:5000/web:v1"),
            Some(ImageRef::Tag { repository: "localhost:5000/web".into(), tag: "v1".into() })
        );
        assert_eq!(parse_image_ref("localhost:5000/web"), None);
    }

    #[test]
    fn a_running_deployment_is_watched_and_nothing_new_starts() {
        let obs = Observation {
            tracked: Some(image("sha256:new", 10)),
            live: Some("sha256:old".into()),
            deployments: vec![deployment("d-1", DeployStatus::InProgress)],
            ..Default::default()
        };
        assert_eq!(decide(&obs, Route::Direct, &HashSet::new(), Duration::from_secs(60), at(100)), Decision::Watch("d-1".into()));
    }

    #[test]
    fn a_deployment_in_a_status_slipway_does_not_know_is_still_running() {
        // A status AWS adds later must not read as an end: that would deploy again beside it.
        assert!(DeployStatus::Unknown.is_active());
        let obs = Observation {
            tracked: Some(image("sha256:new", 10)),
            live: Some("sha256:old".into()),
            deployments: vec![deployment("d-1", DeployStatus::Unknown)],
            ..Default::default()
        };
        assert_eq!(decide(&obs, Route::Direct, &HashSet::new(), Duration::from_secs(60), at(100)), Decision::Watch("d-1".into()));
        let ended: Vec<DeployStatus> = [DeployStatus::Succeeded, DeployStatus::Failed, DeployStatus::Stopped].into();
        assert!(ended.iter().all(|s| !s.is_active()));
    }

    #[test]
    fn a_new_digest_is_deployed_once_and_never_again() {
        let obs = Observation { tracked: Some(image("sha256:new", 10)), live: Some("sha256:old".into()), ..Default::default() };
        assert_eq!(
            decide(&obs, Route::Direct, &HashSet::new(), Duration::from_secs(60), at(100)),
            Decision::DeployDirect { digest: "sha256:new".into() }
        );
        let attempted: HashSet<String> = ["sha256:new".to_string()].into();
        assert_eq!(
            decide(&obs, Route::Direct, &attempted, Duration::from_secs(60), at(100)),
            Decision::Settled,
            "a digest that was tried (and rolled back) is not deployed again"
        );
        let in_step = Observation { live: Some("sha256:new".into()), ..obs };
        assert_eq!(decide(&in_step, Route::Direct, &HashSet::new(), Duration::from_secs(60), at(100)), Decision::Settled);
    }

    #[test]
    fn pipeline_mode_waits_for_the_event_then_starts_the_pipeline_itself_but_never_both() {
        let mut obs = Observation { tracked: Some(image("sha256:new", 100)), live: Some("sha256:old".into()), ..Default::default() };
        let grace = Duration::from_secs(120);
        assert_eq!(
            decide(&obs, Route::PipelineOnPush, &HashSet::new(), grace, at(150)),
            Decision::AwaitEvent { digest: "sha256:new".into(), deadline: at(220) }
        );
        assert_eq!(
            decide(&obs, Route::PipelineOnPush, &HashSet::new(), grace, at(221)),
            Decision::StartPipeline { digest: "sha256:new".into() }
        );
        obs.executions.push(Execution {
            id: "e-1".into(),
            status: super::super::api::ExecutionStatus::InProgress,
            started: Some(at(101)),
            source_revisions: vec![],
        });
        assert_eq!(
            decide(&obs, Route::PipelineOnPush, &HashSet::new(), grace, at(221)),
            Decision::PipelineStarted { digest: "sha256:new".into() }
        );
    }

    #[test]
    fn a_pipeline_that_builds_its_image_is_never_started_for_the_image_it_built() {
        let obs = Observation { tracked: Some(image("sha256:built", 100)), live: Some("sha256:old".into()), ..Default::default() };
        assert_eq!(decide(&obs, Route::PipelineBuildsImage, &HashSet::new(), Duration::from_secs(1), at(10_000)), Decision::Settled);
    }

    #[test]
    fn rollbacks_are_told_apart_by_their_cause() {
        let mut failed = deployment("d-1", DeployStatus::Failed);
        failed.rolled_back_by = Some("d-2".into());
        assert_eq!(rollback_trigger(&failed), Some(RollbackTrigger::AutoFailure));
        assert_eq!(outcome(&failed), DeployOutcome::RolledBack);
        let mut alarm = failed.clone();
        alarm.error_code = Some(StopCode::AlarmActive);
        assert_eq!(rollback_trigger(&alarm), Some(RollbackTrigger::Alarm));
        let mut stopped = deployment("d-3", DeployStatus::Stopped);
        stopped.error_code = Some(StopCode::ManualStop);
        assert_eq!(rollback_trigger(&stopped), Some(RollbackTrigger::Manual));
        let mut ours = deployment("d-4", DeployStatus::Succeeded);
        ours.description = Some(format!("{SLIPWAY_ROLLBACK}d-0"));
        assert_eq!(rollback_trigger(&ours), Some(RollbackTrigger::Slipway));
        assert_eq!(rollback_trigger(&deployment("d-5", DeployStatus::Succeeded)), None);
    }

    #[test]
    fn rollback_targets_the_last_good_task_definition_and_refuses_when_there_is_none() {
        let history = vec![
            deployment("d-3", DeployStatus::Succeeded),
            deployment("d-2", DeployStatus::Failed),
            deployment("d-1", DeployStatus::Succeeded),
        ];
        assert_eq!(rollback_target(&history, Some("arn:td/d-3"), None).unwrap().id, "d-1");
        assert_eq!(rollback_target(&history, Some("arn:td/d-3"), Some("d-1")).unwrap().id, "d-1");
        assert!(rollback_target(&history, Some("arn:td/d-3"), Some("d-2")).unwrap_err().contains("did not succeed"));
        assert!(rollback_target(&history[..1], Some("arn:td/d-3"), None).unwrap_err().starts_with("nothing to roll back to"));
    }

    #[test]
    fn templates_are_filled_in() {
        let template: Value =
            serde_json::json!({"containerDefinitions": [{"name": "app", "image": "<IMAGE1_NAME>"}, {"name": "sidecar", "image": "envoy"}]});
        assert_eq!(image_container(&template).as_deref(), Some("app"));
        let rendered = render_task_definition(&template, "repo@sha256:1");
        assert_eq!(rendered["containerDefinitions"][0]["image"], "repo@sha256:1");
        assert_eq!(rendered["containerDefinitions"][1]["image"], "envoy");
        assert_eq!(render_app_spec("TaskDefinition: \"<TASK_DEFINITION>\"", "arn:td:1"), "TaskDefinition: \"arn:td:1\"");
    }
}
