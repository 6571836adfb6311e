//! What delivery needs from AWS, as two small port traits: the image registry (ECR) and the
//! delivery services (CodeDeploy, CodePipeline, ECS), and the values they return. The
//! `slipway-aws` crate implements them with the SDK; tests use moto for the registry and an
//! in-memory fake for the delivery services, because moto keeps CodeDeploy deployments `Created`
//! forever.

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
    /// Any other CodeDeploy error code, as written.
    Other(String),
}

impl StopCode {
    pub fn parse(value: &str) -> StopCode {
        match value {
            "MANUAL_STOP" => StopCode::ManualStop,
            "ALARM_ACTIVE" => StopCode::AlarmActive,
            other => StopCode::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            StopCode::ManualStop => "MANUAL_STOP",
            StopCode::AlarmActive => "ALARM_ACTIVE",
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
    /// CodeDeploy's error code when it did not succeed.
    pub error_code: Option<StopCode>,
    pub message: Option<String>,
    pub description: Option<String>,
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
    /// The pipeline's executions, newest first, at most `limit`.
    fn executions(&self, pipeline: &str, limit: usize) -> impl Future<Output = Result<Vec<Execution>, AwsError>> + Send;
    fn start_execution(&self, pipeline: &str) -> impl Future<Output = Result<String, AwsError>> + Send;
}
