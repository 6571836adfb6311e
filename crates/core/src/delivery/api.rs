//! What delivery needs from AWS, as two small port traits: the image registry (ECR) and the
//! delivery services (CodeDeploy, CodePipeline, ECS), and the values they return. The
//! `slipway-aws` crate implements them with the SDK; tests use moto for the registry and an
//! in-memory fake for the delivery services, because moto keeps CodeDeploy deployments `Created`
//! forever and implements none of ECS's service deployment calls.
//!
//! A CodeDeploy deployment and an ECS service deployment both become a [`Deployment`]: an ECS
//! one through [`ServiceDeployment::into_deployment`], so the rest of delivery (watching,
//! reporting each end once, rollback triggers, metrics) is the same for every strategy.

use std::future::Future;
use std::time::SystemTime;

use serde::Serialize;

use crate::error::AwsError;

/// An image in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub digest: String,
    pub pushed_at: Option<SystemTime>,
    pub tags: Vec<String>,
}

/// CodeDeploy deployment states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DeployStatus {
    Created,
    Queued,
    InProgress,
    Baking,
    Ready,
    Succeeded,
    Failed,
    Stopped,
    /// A state this version of slipway does not know (AWS added one, or sent none). Never taken
    /// for an end: a deployment in it is still watched, and nothing new is deployed meanwhile.
    Unknown,
}

impl DeployStatus {
    pub fn is_active(self) -> bool {
        !matches!(self, DeployStatus::Succeeded | DeployStatus::Failed | DeployStatus::Stopped)
    }
}

/// Who created a deployment, as far as delivery cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Creator {
    /// A person, slipway, or CodePipeline (CodeDeploy says `user` for all of them).
    User,
    /// CodeDeploy's own rollback deployment: counted as the rollback, not as a deployment.
    CodeDeployRollback,
    /// Anything else, as CodeDeploy wrote it (`autoscaling`, `CodeDeployAutoUpdate`, …).
    Other(String),
}

impl Creator {
    pub fn parse(value: &str) -> Creator {
        match value {
            "user" => Creator::User,
            "codeDeployRollback" => Creator::CodeDeployRollback,
            other => Creator::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Creator::User => "user",
            Creator::CodeDeployRollback => "codeDeployRollback",
            Creator::Other(other) => other,
        }
    }
}

impl Serialize for Creator {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Why a deployment did not succeed, as far as rollback detection cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopCode {
    /// Someone (or `slipway rollback`) stopped it.
    ManualStop,
    /// A CloudWatch alarm stopped it.
    AlarmActive,
    /// ECS: the deployment circuit breaker (tasks failing to start or to get healthy).
    CircuitBreaker,
    /// ECS: a lifecycle hook failed, timed out with `ROLLBACK`, or was answered `ROLLBACK`.
    LifecycleHook,
    /// Any other CodeDeploy error code, as written.
    Other(String),
}

impl StopCode {
    pub fn parse(value: &str) -> StopCode {
        match value {
            "MANUAL_STOP" => StopCode::ManualStop,
            "ALARM_ACTIVE" => StopCode::AlarmActive,
            "ECS_CIRCUIT_BREAKER" => StopCode::CircuitBreaker,
            "ECS_LIFECYCLE_HOOK" => StopCode::LifecycleHook,
            other => StopCode::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            StopCode::ManualStop => "MANUAL_STOP",
            StopCode::AlarmActive => "ALARM_ACTIVE",
            StopCode::CircuitBreaker => "ECS_CIRCUIT_BREAKER",
            StopCode::LifecycleHook => "ECS_LIFECYCLE_HOOK",
            StopCode::Other(other) => other,
        }
    }
}

impl Serialize for StopCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A CodeDeploy deployment, as much of it as delivery needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    pub id: String,
    pub status: DeployStatus,
    pub creator: Creator,
    #[serde(skip)]
    pub created: Option<SystemTime>,
    #[serde(skip)]
    pub completed: Option<SystemTime>,
    /// The task definition the deployment rolls out.
    pub task_definition: Option<String>,
    /// This deployment was rolled back by that one.
    pub rolled_back_by: Option<String>,
    /// This deployment is a rollback of that one.
    pub rollback_of: Option<String>,
    /// CodeDeploy's error code when it did not succeed (for ECS, the cause slipway read).
    pub error_code: Option<StopCode>,
    pub message: Option<String>,
    pub description: Option<String>,
    /// ECS: the deployment rolled itself back to the previous revision (no second deployment).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub rolled_back_in_place: bool,
    /// ECS: the lifecycle stage it is in, as ECS writes it (`BAKE_TIME`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// ECS: a PAUSE hook waits for `slipway promote` (or its timeout).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused: Option<PausedHook>,
}

/// A PAUSE lifecycle hook waiting for an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PausedHook {
    pub hook_id: String,
    /// What ECS does when nobody answers, and when.
    pub timeout_action: Option<String>,
    #[serde(skip)]
    pub expires: Option<SystemTime>,
}

impl Deployment {
    /// A deployment with only an id and a status known; the rest empty.
    pub fn new(id: impl Into<String>, status: DeployStatus) -> Deployment {
        Deployment {
            id: id.into(),
            status,
            creator: Creator::User,
            created: None,
            completed: None,
            task_definition: None,
            rolled_back_by: None,
            rollback_of: None,
            error_code: None,
            message: None,
            description: None,
            rolled_back_in_place: false,
            stage: None,
            paused: None,
        }
    }
}

/// ECS service deployment states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceDeploymentStatus {
    Pending,
    InProgress,
    Successful,
    Stopped,
    StopRequested,
    RollbackRequested,
    RollbackInProgress,
    RollbackSuccessful,
    RollbackFailed,
    /// A state this version of slipway does not know, as written: never taken for an end.
    Unknown(String),
}

impl ServiceDeploymentStatus {
    pub fn parse(value: &str) -> ServiceDeploymentStatus {
        match value {
            "PENDING" => ServiceDeploymentStatus::Pending,
            "IN_PROGRESS" => ServiceDeploymentStatus::InProgress,
            "SUCCESSFUL" => ServiceDeploymentStatus::Successful,
            "STOPPED" => ServiceDeploymentStatus::Stopped,
            "STOP_REQUESTED" => ServiceDeploymentStatus::StopRequested,
            "ROLLBACK_REQUESTED" => ServiceDeploymentStatus::RollbackRequested,
            "ROLLBACK_IN_PROGRESS" => ServiceDeploymentStatus::RollbackInProgress,
            "ROLLBACK_SUCCESSFUL" => ServiceDeploymentStatus::RollbackSuccessful,
            "ROLLBACK_FAILED" => ServiceDeploymentStatus::RollbackFailed,
            other => ServiceDeploymentStatus::Unknown(other.to_string()),
        }
    }

    /// The CodeDeploy-shaped status delivery decides on. A rollback under way is still running;
    /// a finished one is a failed deployment that was rolled back.
    fn as_deploy_status(&self, stage: Option<&str>) -> DeployStatus {
        match self {
            ServiceDeploymentStatus::Pending => DeployStatus::Queued,
            ServiceDeploymentStatus::InProgress if stage == Some("BAKE_TIME") => DeployStatus::Baking,
            ServiceDeploymentStatus::InProgress
            | ServiceDeploymentStatus::StopRequested
            | ServiceDeploymentStatus::RollbackRequested
            | ServiceDeploymentStatus::RollbackInProgress => DeployStatus::InProgress,
            ServiceDeploymentStatus::Successful => DeployStatus::Succeeded,
            ServiceDeploymentStatus::Stopped => DeployStatus::Stopped,
            ServiceDeploymentStatus::RollbackSuccessful | ServiceDeploymentStatus::RollbackFailed => DeployStatus::Failed,
            ServiceDeploymentStatus::Unknown(_) => DeployStatus::Unknown,
        }
    }
}

/// A lifecycle hook's state in a service deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookStatus {
    AwaitingAction,
    InProgress,
    Succeeded,
    Failed,
    TimedOut,
    Unknown(String),
}

impl HookStatus {
    pub fn parse(value: &str) -> HookStatus {
        match value {
            "AWAITING_ACTION" => HookStatus::AwaitingAction,
            "IN_PROGRESS" => HookStatus::InProgress,
            "SUCCEEDED" => HookStatus::Succeeded,
            "FAILED" => HookStatus::Failed,
            "TIMED_OUT" => HookStatus::TimedOut,
            other => HookStatus::Unknown(other.to_string()),
        }
    }
}

/// One lifecycle hook of a service deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookDetail {
    pub hook_id: String,
    /// `PAUSE` or `AWS_LAMBDA`, as ECS writes it.
    pub pause: bool,
    pub status: HookStatus,
    pub timeout_action: Option<String>,
    pub expires: Option<SystemTime>,
}

/// An ECS service deployment, as much of it as delivery needs (`DescribeServiceDeployments`,
/// with the target revision's task definition from `DescribeServiceRevisions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceDeployment {
    pub arn: String,
    pub status: ServiceDeploymentStatus,
    pub status_reason: Option<String>,
    pub stage: Option<String>,
    pub created: Option<SystemTime>,
    pub finished: Option<SystemTime>,
    pub task_definition: Option<String>,
    pub hooks: Vec<HookDetail>,
    /// Alarms that went into alarm during the deployment.
    pub triggered_alarms: Vec<String>,
    /// The circuit breaker tripped.
    pub circuit_breaker_tripped: bool,
    /// ECS's reason for a rollback, when it started one.
    pub rollback_reason: Option<String>,
}

impl ServiceDeployment {
    /// The deployment delivery watches. The cause of a rollback or stop is read from what
    /// tripped: an alarm, the circuit breaker, a failed or timed-out hook; with none of them
    /// somebody asked for it (`StopServiceDeployment`, or a hook answered `ROLLBACK`).
    pub fn into_deployment(self) -> Deployment {
        let status = self.status.as_deploy_status(self.stage.as_deref());
        let rolled_back = matches!(
            self.status,
            ServiceDeploymentStatus::RollbackRequested
                | ServiceDeploymentStatus::RollbackInProgress
                | ServiceDeploymentStatus::RollbackSuccessful
                | ServiceDeploymentStatus::RollbackFailed
        );
        let stopped = rolled_back || matches!(self.status, ServiceDeploymentStatus::Stopped | ServiceDeploymentStatus::StopRequested);
        let error_code = stopped.then(|| {
            if !self.triggered_alarms.is_empty() {
                StopCode::AlarmActive
            } else if self.circuit_breaker_tripped {
                StopCode::CircuitBreaker
            } else if self.hooks.iter().any(|h| matches!(h.status, HookStatus::Failed | HookStatus::TimedOut)) {
                StopCode::LifecycleHook
            } else {
                StopCode::ManualStop
            }
        });
        let paused = self.hooks.iter().find(|h| h.pause && h.status == HookStatus::AwaitingAction).map(|h| PausedHook {
            hook_id: h.hook_id.clone(),
            timeout_action: h.timeout_action.clone(),
            expires: h.expires,
        });
        Deployment {
            id: self.arn,
            status,
            creator: Creator::User,
            created: self.created,
            completed: self.finished,
            task_definition: self.task_definition,
            rolled_back_by: None,
            rollback_of: None,
            error_code,
            message: self.rollback_reason.or(self.status_reason),
            description: None,
            rolled_back_in_place: matches!(self.status, ServiceDeploymentStatus::RollbackSuccessful),
            stage: self.stage,
            paused,
        }
    }
}

/// A CodePipeline execution's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecutionStatus {
    InProgress,
    Stopping,
    Stopped,
    Succeeded,
    Superseded,
    Failed,
    Cancelled,
    /// A state this version of slipway does not know, as written: never taken for an end.
    Unknown(String),
}

impl ExecutionStatus {
    pub fn parse(value: &str) -> ExecutionStatus {
        match value {
            "InProgress" => ExecutionStatus::InProgress,
            "Stopping" => ExecutionStatus::Stopping,
            "Stopped" => ExecutionStatus::Stopped,
            "Succeeded" => ExecutionStatus::Succeeded,
            "Superseded" => ExecutionStatus::Superseded,
            "Failed" => ExecutionStatus::Failed,
            "Cancelled" => ExecutionStatus::Cancelled,
            other => ExecutionStatus::Unknown(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            ExecutionStatus::InProgress => "InProgress",
            ExecutionStatus::Stopping => "Stopping",
            ExecutionStatus::Stopped => "Stopped",
            ExecutionStatus::Succeeded => "Succeeded",
            ExecutionStatus::Superseded => "Superseded",
            ExecutionStatus::Failed => "Failed",
            ExecutionStatus::Cancelled => "Cancelled",
            ExecutionStatus::Unknown(other) => other,
        }
    }

    /// Whether the execution is over (an unknown state is not).
    pub(crate) fn has_ended(&self) -> bool {
        !matches!(self, ExecutionStatus::InProgress | ExecutionStatus::Stopping | ExecutionStatus::Unknown(_))
    }
}

/// A CodePipeline execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    pub id: String,
    pub status: ExecutionStatus,
    pub started: Option<SystemTime>,
    /// Revisions of the source actions (an ECR source's is the image digest).
    pub source_revisions: Vec<String>,
}

/// A task definition as delivery reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDefinition {
    pub arn: String,
    /// `container name → image`.
    pub images: Vec<(String, String)>,
    /// The Git revision slipway tagged it with, when slipway registered it.
    pub revision: Option<String>,
}

pub trait Registry: Send + Sync {
    /// The image a tag points at now.
    fn image_by_tag(&self, repository: &str, tag: &str) -> impl Future<Output = Result<Option<Image>, AwsError>> + Send;
    fn image_by_digest(&self, repository: &str, digest: &str) -> impl Future<Output = Result<Option<Image>, AwsError>> + Send;
    /// Points `tag` at `digest` (moving it off any other image).
    fn put_tag(&self, repository: &str, digest: &str, tag: &str) -> impl Future<Output = Result<(), AwsError>> + Send;
    /// `<account>.dkr.ecr.<region>.amazonaws.com/<repository>`
    fn repository_uri(&self, repository: &str) -> impl Future<Output = Result<String, AwsError>> + Send;
}

/// What to answer a PAUSE hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookAnswer {
    Continue,
    Rollback,
}

impl HookAnswer {
    pub fn as_aws(self) -> &'static str {
        match self {
            HookAnswer::Continue => "CONTINUE",
            HookAnswer::Rollback => "ROLLBACK",
        }
    }
}

pub trait Delivery: Send + Sync {
    /// The group's deployments, newest first, at most `limit`.
    fn deployments(&self, application: &str, group: &str, limit: usize) -> impl Future<Output = Result<Vec<Deployment>, AwsError>> + Send;
    fn create_deployment(
        &self,
        application: &str,
        group: &str,
        app_spec: &str,
        description: &str,
    ) -> impl Future<Output = Result<String, AwsError>> + Send;
    /// Stops a deployment; with `rollback`, CodeDeploy rolls back to the previous task set.
    fn stop_deployment(&self, id: &str, rollback: bool) -> impl Future<Output = Result<(), AwsError>> + Send;
    fn register_task_definition(
        &self,
        definition: &serde_json::Value,
        revision: Option<&str>,
    ) -> impl Future<Output = Result<String, AwsError>> + Send;
    fn task_definition(&self, arn: &str) -> impl Future<Output = Result<TaskDefinition, AwsError>> + Send;
    /// The task definition the service runs now (its primary task set).
    fn service_task_definition(&self, cluster: &str, service: &str) -> impl Future<Output = Result<Option<String>, AwsError>> + Send;
    /// ECS strategies: the service's deployments, newest first, at most `limit`.
    fn service_deployments(
        &self,
        cluster: &str,
        service: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<ServiceDeployment>, AwsError>> + Send;
    /// ECS strategies: points the service at a task definition, which starts a deployment under
    /// the service's strategy; returns the deployment's id (its ARN when ECS gives one).
    fn update_service(&self, cluster: &str, service: &str, task_definition: &str) -> impl Future<Output = Result<String, AwsError>> + Send;
    /// ECS strategies: stops a deployment; with `rollback`, back to the previous revision.
    fn stop_service_deployment(&self, arn: &str, rollback: bool) -> impl Future<Output = Result<(), AwsError>> + Send;
    /// ECS strategies: answers a PAUSE hook.
    fn continue_service_deployment(
        &self,
        arn: &str,
        hook_id: &str,
        answer: HookAnswer,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
    /// The pipeline's executions, newest first, at most `limit`.
    fn executions(&self, pipeline: &str, limit: usize) -> impl Future<Output = Result<Vec<Execution>, AwsError>> + Send;
    fn start_execution(&self, pipeline: &str) -> impl Future<Output = Result<String, AwsError>> + Send;
}
