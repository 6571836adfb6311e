//! The manifest types: what people write in the config repository.
//!
//! `deny_unknown_fields` everywhere so a typo is an error that names the closest known field,
//! instead of a silently ignored setting. Defaults match the two seed pipelines.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::resource::DeletionPolicy;

pub const API_VERSION: &str = "slipway.dev/v1alpha1";
pub(crate) const KIND_PIPELINE: &str = "Pipeline";

// Limits AWS sets, written once: the JSON Schema (`#[schemars(range/length)]`) and `validate`
// both read them, and the loader checks every document against the schema.
/// The longest pipeline name: it prefixes resource names that AWS limits (`<name>-build`, …).
pub const MAX_NAME_LENGTH: usize = 40;
/// CodeDeploy's longest wait before the blue task set is deleted, and before traffic is rerouted
/// (2 days).
pub const MAX_WAIT_MINUTES: u32 = 2880;
/// CodeBuild's shortest and longest build timeout (36 hours).
pub const MIN_BUILD_TIMEOUT_MINUTES: u32 = 5;
pub const MAX_BUILD_TIMEOUT_MINUTES: u32 = 2160;
/// ECR's longest image tag.
pub const MAX_TAG_LENGTH: usize = 128;
/// S3 bucket names are 3 to 63 characters.
pub const MIN_BUCKET_LENGTH: usize = 3;
pub const MAX_BUCKET_LENGTH: usize = 63;
/// ECR repository names are 2 to 256 characters.
pub const MIN_REPOSITORY_LENGTH: usize = 2;
pub const MAX_REPOSITORY_LENGTH: usize = 256;

/// One `kind: Pipeline` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Pipeline {
    /// Always `slipway.dev/v1alpha1`.
    #[schemars(extend("const" = API_VERSION))]
    pub api_version: String,
    /// Always `Pipeline`.
    #[schemars(extend("const" = KIND_PIPELINE))]
    pub kind: String,
    pub metadata: Metadata,
    pub spec: PipelineSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    /// Pipeline name: lower-case letters, digits and `-`, at most 40 characters. It is the
    /// default name of every resource the pipeline creates and the value of the
    /// `slipway.dev/pipeline` tag.
    #[schemars(length(min = 1, max = MAX_NAME_LENGTH), regex(pattern = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"))]
    pub name: String,
    /// Free-form labels, copied onto every resource as tags: at most 47 (AWS allows 50 tags and
    /// slipway sets 3), keys 1–128 and values 0–256 characters of letters, numbers, spaces and
    /// `_ . : / = + - @`, no `aws:` prefix, no `slipway.dev/` key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend(
        "maxProperties" = 47,
        "propertyNames" = {"minLength": 1, "maxLength": 128, "pattern": "^(?![aA][wW][sS]:)(?!slipway\\.dev/)[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]+$"},
        "additionalProperties" = {"type": "string", "maxLength": 256, "pattern": "^(?![aA][wW][sS]:)[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*$"}
    ))]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PipelineSpec {
    /// Take over resources of the same name that exist without slipway's ownership tags.
    /// Without it slipway reports a conflict and never touches them.
    #[serde(default)]
    pub adopt: bool,
    /// What prune does with this pipeline's resources once the pipeline leaves Git: `Retain`
    /// keeps them, `Delete` deletes them. Unset: the ECR repository and the S3 buckets (images,
    /// object versions) are retained, the rest deleted. Recorded on each resource as the tag
    /// `slipway.dev/deletion-policy`, so it holds after the manifest is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
    /// What the controller (`slipway run`) does with drift: `auto` applies, `observe` only
    /// detects and reports it.
    #[serde(default)]
    pub sync: SyncMode,
    /// Leave the pipeline alone in the controller: no reads, no writes, until set back to false.
    #[serde(default)]
    pub suspend: bool,
    pub image: Image,
    pub source: Source,
    /// Present for the "build in AWS" topology (seed 002): Source (S3) → Build (CodeBuild) →
    /// Deploy. Absent for the "image pushed to ECR" topology (seed 000): Source (S3 + ECR) →
    /// Deploy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    pub deploy: Deploy,
    /// The CodePipeline. Required with `deploy.mode: pipeline` (the default); absent with
    /// `deploy.mode: direct`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<PipelineSettings>,
    #[serde(default)]
    pub triggers: Triggers,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    #[default]
    Auto,
    Observe,
}

impl SyncMode {
    /// As the manifest writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncMode::Auto => "auto",
            SyncMode::Observe => "observe",
        }
    }
}

/// The ECR repository that holds the application image. slipway creates and owns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Image {
    /// ECR repository name: 2 to 256 lower-case letters, digits, `.`, `_`, `-` and `/`.
    #[schemars(length(min = MIN_REPOSITORY_LENGTH, max = MAX_REPOSITORY_LENGTH))]
    pub repository: String,
    /// The tag that is deployed (the ECR source action watches it).
    #[serde(default = "default_tag")]
    #[schemars(length(min = 1, max = MAX_TAG_LENGTH))]
    pub tag: String,
    #[serde(default)]
    pub tag_mutability: TagMutability,
    #[serde(default = "yes")]
    pub scan_on_push: bool,
    /// Untagged images expire this many days after push (lifecycle rule). The image a service
    /// runs after a rollback may be untagged: see the README.
    #[serde(default = "default_untagged_expiry_days")]
    #[schemars(range(min = 1))]
    pub untagged_expiry_days: u32,
    /// Deploy exactly this image instead of following `tag`: `<repository>@sha256:<digest>` or
    /// `<repository>:<tag>`. Needs `deploy.mode: direct`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TagMutability {
    /// `latest` is moved by every push, as both seeds do.
    #[default]
    Mutable,
    Immutable,
}

impl TagMutability {
    pub(crate) fn as_aws(self) -> &'static str {
        match self {
            TagMutability::Mutable => "MUTABLE",
            TagMutability::Immutable => "IMMUTABLE",
        }
    }
}

/// What slipway zips from the config repository and publishes to S3.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Source {
    /// Directory in the config repository, relative to its root. Without `build` only the task
    /// definition and AppSpec files are zipped (seed 000's `settings.zip`); with `build` the whole
    /// directory is zipped with `git-commit-hash.txt` added (seed 002's `docker_image.zip`).
    pub path: String,
    /// S3 bucket for the zip. slipway creates and owns it (versioned, private, encrypted).
    #[schemars(length(min = MIN_BUCKET_LENGTH, max = MAX_BUCKET_LENGTH), regex(pattern = r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$"))]
    pub bucket: String,
    /// Object key of the zip.
    #[serde(default = "default_source_key")]
    pub key: String,
}

/// CodeBuild project that builds and pushes the image (seed 002).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Build {
    /// Project name; defaults to `<pipeline>-build`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// IAM role ARN CodeBuild assumes (slipway creates no IAM).
    pub service_role_arn: String,
    #[serde(default = "default_build_image")]
    pub image: String,
    #[serde(default = "default_compute_type")]
    pub compute_type: String,
    /// Docker-in-docker needs privileged mode.
    #[serde(default = "yes")]
    pub privileged: bool,
    /// Buildspec path inside the source zip.
    #[serde(default = "default_buildspec")]
    pub buildspec: String,
    /// Build timeout in minutes (5..=2160).
    #[serde(default = "default_build_timeout")]
    #[schemars(range(min = MIN_BUILD_TIMEOUT_MINUTES, max = MAX_BUILD_TIMEOUT_MINUTES))]
    pub timeout_minutes: u32,
    /// Extra plain-text environment variables. `IMAGE_REPO_NAME`, `IMAGE_TAG` and
    /// `AWS_ACCOUNT_ID` are set from the manifest unless given here.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
}

/// How new task definitions reach an existing ECS service: CodeDeploy blue/green (the seed
/// topologies), or ECS's own blue/green, linear or canary deployments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Deploy {
    /// `codedeploy` (default): a CodeDeploy application and deployment group shift traffic.
    /// `ecs-blue-green`, `ecs-linear`, `ecs-canary`: ECS shifts traffic itself; slipway manages the
    /// service's deployment configuration and load balancer wiring instead (README: "Deploy
    /// strategies").
    #[serde(default)]
    pub strategy: DeployStrategy,
    /// CodeDeploy application name; defaults to the pipeline name (`codedeploy` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<String>,
    /// Deployment group name; defaults to the pipeline name (`codedeploy` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_group: Option<String>,
    /// IAM role ARN CodeDeploy assumes (required with `codedeploy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_role_arn: Option<String>,
    /// ECS cluster (referenced, not created).
    pub cluster: String,
    /// ECS service (referenced, not created). With `codedeploy` it must use the CODE_DEPLOY
    /// deployment controller; with an ECS strategy slipway switches it to the ECS controller.
    pub service: String,
    /// The blue and green target groups, by name (referenced). With an ECS strategy the service's
    /// load balancer uses one and ECS deploys to the other (the alternate).
    pub target_groups: [String; 2],
    /// Production traffic listener (referenced; required with `codedeploy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prod_listener: Option<ListenerRef>,
    /// Optional test traffic listener (referenced; `codedeploy` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_listener: Option<ListenerRef>,
    /// ARN of the listener rule that carries production traffic (referenced; required with an
    /// ECS strategy). It must forward to both target groups: ECS moves the weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prod_listener_rule: Option<String>,
    /// ARN of the listener rule that carries test traffic (optional, ECS strategies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_listener_rule: Option<String>,
    /// IAM role ECS assumes to change the listener rules (required with an ECS strategy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infrastructure_role_arn: Option<String>,
    /// ECS strategies: minutes both revisions keep running after production traffic moved, for
    /// a fast rollback (0..=1440; default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = MAX_ECS_BAKE_MINUTES))]
    pub bake_time_minutes: Option<u32>,
    /// `ecs-linear`: how much production traffic each step moves, and the wait between steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linear: Option<LinearSettings>,
    /// `ecs-canary`: how much production traffic the canary gets, and for how long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanarySettings>,
    /// ECS strategies: CloudWatch alarms that, in alarm, fail the deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarms: Option<AlarmSettings>,
    /// ECS strategies: lifecycle hooks (a Lambda function, or a pause until `slipway promote`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<HookSettings>,
    /// Task definition template, relative to `source.path`; its image is `<IMAGE1_NAME>`.
    #[serde(default = "default_taskdef")]
    pub task_definition: String,
    /// AppSpec template, relative to `source.path`; its task definition is `<TASK_DEFINITION>`
    /// (`codedeploy` only; default `appspec.yaml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_spec: Option<String>,
    /// How long the old (blue) task set is kept after success, for a fast rollback (0..=2880,
    /// default 5; `codedeploy` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = MAX_WAIT_MINUTES))]
    pub termination_wait_minutes: Option<u32>,
    /// Minutes to wait before rerouting traffic; 0 (the default) reroutes at once (0..=2880,
    /// `codedeploy` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = MAX_WAIT_MINUTES))]
    pub ready_wait_minutes: Option<u32>,
    /// Events that roll a deployment back automatically (default `[DEPLOYMENT_FAILURE]`;
    /// `codedeploy` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_rollback_on: Option<Vec<RollbackEvent>>,
    /// CodeDeploy deployment configuration (default `CodeDeployDefault.ECSAllAtOnce`;
    /// `codedeploy` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_config: Option<String>,
    /// `pipeline`: new images go through the managed CodePipeline (started by EventBridge, or by
    /// slipway when no execution appears within `eventGraceSeconds`). `direct`: slipway registers
    /// the task definition and deploys it itself, without CodePipeline.
    #[serde(default)]
    pub mode: DeployMode,
    /// How long to wait for the EventBridge-started execution before starting one.
    #[serde(default = "default_event_grace")]
    pub event_grace_seconds: u32,
}

/// ECS's longest bake time, step bake time and canary bake time (24 hours).
pub const MAX_ECS_BAKE_MINUTES: u32 = 1440;
/// ECS's longest wait for a lifecycle hook (14 days).
pub const MAX_HOOK_TIMEOUT_MINUTES: u32 = 20160;

/// Who shifts traffic to a new task definition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DeployStrategy {
    /// A CodeDeploy application and deployment group (blue/green with traffic control).
    #[default]
    Codedeploy,
    /// ECS blue/green: all production traffic at once, then the bake time.
    EcsBlueGreen,
    /// ECS linear: production traffic in equal steps, a wait after each.
    EcsLinear,
    /// ECS canary: a slice of production traffic, a wait, then the rest.
    EcsCanary,
}

impl Deploy {
    /// The AppSpec template's path (`codedeploy`).
    pub fn app_spec(&self) -> &str {
        self.app_spec.as_deref().unwrap_or("appspec.yaml")
    }
    pub(crate) fn termination_wait_minutes(&self) -> u32 {
        self.termination_wait_minutes.unwrap_or(5)
    }
    pub(crate) fn ready_wait_minutes(&self) -> u32 {
        self.ready_wait_minutes.unwrap_or(0)
    }
    pub(crate) fn auto_rollback_on(&self) -> Vec<RollbackEvent> {
        self.auto_rollback_on.clone().unwrap_or_else(|| vec![RollbackEvent::DeploymentFailure])
    }
    pub(crate) fn deployment_config(&self) -> &str {
        self.deployment_config.as_deref().unwrap_or("CodeDeployDefault.ECSAllAtOnce")
    }
}

impl DeployStrategy {
    pub fn as_str(self) -> &'static str {
        match self {
            DeployStrategy::Codedeploy => "codedeploy",
            DeployStrategy::EcsBlueGreen => "ecs-blue-green",
            DeployStrategy::EcsLinear => "ecs-linear",
            DeployStrategy::EcsCanary => "ecs-canary",
        }
    }

    /// ECS shifts traffic itself (the service uses the ECS deployment controller).
    pub fn is_ecs(self) -> bool {
        self != DeployStrategy::Codedeploy
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LinearSettings {
    /// Percent of production traffic moved per step: a multiple of 0.1 from 3.0 to 100.0.
    #[serde(default = "default_step_percent")]
    pub step_percent: f64,
    /// Minutes between steps (0..=1440).
    #[serde(default = "default_step_bake")]
    #[schemars(range(max = MAX_ECS_BAKE_MINUTES))]
    pub step_bake_time_minutes: u32,
}

impl Default for LinearSettings {
    fn default() -> Self {
        LinearSettings { step_percent: default_step_percent(), step_bake_time_minutes: default_step_bake() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CanarySettings {
    /// Percent of production traffic the canary gets: a multiple of 0.1 from 0.1 to 100.0.
    #[serde(default = "default_canary_percent")]
    pub percent: f64,
    /// Minutes the canary runs before the rest of the traffic moves (0..=1440).
    #[serde(default = "default_canary_bake")]
    #[schemars(range(max = MAX_ECS_BAKE_MINUTES))]
    pub bake_time_minutes: u32,
}

impl Default for CanarySettings {
    fn default() -> Self {
        CanarySettings { percent: default_canary_percent(), bake_time_minutes: default_canary_bake() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AlarmSettings {
    /// CloudWatch alarm names (1 to 10).
    pub names: Vec<String>,
    /// Roll back when one goes into alarm (default true); false only fails the deployment.
    #[serde(default = "default_true")]
    pub rollback: bool,
}

/// One lifecycle hook of an ECS deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HookSettings {
    /// `PAUSE`: the deployment waits at the stage until `slipway promote` (or the timeout).
    /// `AWS_LAMBDA`: ECS calls `function` and acts on its answer.
    #[serde(rename = "type")]
    pub target: HookTarget,
    /// The stages the hook runs at.
    pub stages: Vec<HookStage>,
    /// Lambda function ARN (`AWS_LAMBDA` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// IAM role ECS assumes to call the function (`AWS_LAMBDA` only, required there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// Minutes ECS waits for the hook before `onTimeout` (1..=20160; default 1440).
    #[serde(default = "default_hook_timeout")]
    #[schemars(range(min = 1, max = MAX_HOOK_TIMEOUT_MINUTES))]
    pub timeout_minutes: u32,
    /// What ECS does when the hook times out (default `ROLLBACK`).
    #[serde(default)]
    pub on_timeout: HookAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HookTarget {
    Pause,
    AwsLambda,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HookAction {
    #[default]
    Rollback,
    Continue,
}

/// The stages of an ECS deployment a hook can run at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HookStage {
    ReconcileService,
    PreScaleUp,
    PostScaleUp,
    TestTrafficShift,
    PostTestTrafficShift,
    PreProductionTrafficShift,
    ProductionTrafficShift,
    PostProductionTrafficShift,
}

impl HookTarget {
    pub(crate) fn as_aws(self) -> &'static str {
        match self {
            HookTarget::Pause => "PAUSE",
            HookTarget::AwsLambda => "AWS_LAMBDA",
        }
    }
}

impl HookAction {
    pub(crate) fn as_aws(self) -> &'static str {
        match self {
            HookAction::Rollback => "ROLLBACK",
            HookAction::Continue => "CONTINUE",
        }
    }
}

impl HookStage {
    pub(crate) fn as_aws(self) -> &'static str {
        match self {
            HookStage::ReconcileService => "RECONCILE_SERVICE",
            HookStage::PreScaleUp => "PRE_SCALE_UP",
            HookStage::PostScaleUp => "POST_SCALE_UP",
            HookStage::TestTrafficShift => "TEST_TRAFFIC_SHIFT",
            HookStage::PostTestTrafficShift => "POST_TEST_TRAFFIC_SHIFT",
            HookStage::PreProductionTrafficShift => "PRE_PRODUCTION_TRAFFIC_SHIFT",
            HookStage::ProductionTrafficShift => "PRODUCTION_TRAFFIC_SHIFT",
            HookStage::PostProductionTrafficShift => "POST_PRODUCTION_TRAFFIC_SHIFT",
        }
    }

    /// A pause makes no sense while traffic moves: AWS allows these two to Lambda hooks only.
    pub fn takes_pause(self) -> bool {
        !matches!(self, HookStage::TestTrafficShift | HookStage::ProductionTrafficShift)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeployMode {
    #[default]
    Pipeline,
    Direct,
}

/// A listener, by ARN or by load balancer name and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
#[schemars(extend("errorMessage" = LISTENER_EXPECTED))]
pub enum ListenerRef {
    Arn(String),
    ByPort(ListenerByPort),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ListenerByPort {
    pub load_balancer: String,
    #[schemars(range(min = 1))]
    pub port: u16,
}

/// What a listener field takes, in the user's words (also the schema's `errorMessage`, which
/// editors show).
pub(crate) const LISTENER_EXPECTED: &str = "expected a listener ARN or `{loadBalancer, port}`; port must be 1–65535";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RollbackEvent {
    DeploymentFailure,
    DeploymentStopOnAlarm,
    DeploymentStopOnRequest,
}

impl RollbackEvent {
    pub(crate) fn as_aws(self) -> &'static str {
        match self {
            RollbackEvent::DeploymentFailure => "DEPLOYMENT_FAILURE",
            RollbackEvent::DeploymentStopOnAlarm => "DEPLOYMENT_STOP_ON_ALARM",
            RollbackEvent::DeploymentStopOnRequest => "DEPLOYMENT_STOP_ON_REQUEST",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PipelineSettings {
    /// CodePipeline name; defaults to the pipeline name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// IAM role ARN CodePipeline assumes.
    pub role_arn: String,
    /// Bucket for CodePipeline's artifact store; defaults to `source.bucket`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_bucket: Option<String>,
    /// The CodePipeline pipeline type: `V2` (default) or `V1`. They differ in price and in the
    /// execution modes they run; see the README ("CodePipeline: type and execution mode").
    #[serde(default, rename = "type")]
    pub pipeline_type: PipelineType,
    /// What happens to an execution while another runs: `SUPERSEDED` (default) lets the newer
    /// one overtake, `QUEUED` runs them one by one in order, `PARALLEL` runs them at once.
    /// `QUEUED` and `PARALLEL` need `type: V2`.
    #[serde(default)]
    pub execution_mode: ExecutionMode,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PipelineType {
    /// Billed per month in which a change runs through it; runs only `SUPERSEDED`.
    V1,
    /// Billed per action execution minute; runs every execution mode.
    #[default]
    V2,
}

impl PipelineType {
    pub(crate) fn as_aws(self) -> &'static str {
        match self {
            PipelineType::V1 => "V1",
            PipelineType::V2 => "V2",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionMode {
    /// A newer execution overtakes an older one waiting for a stage (what V1 does).
    #[default]
    Superseded,
    /// Executions run one by one, in the order they started. Needs `type: V2`.
    Queued,
    /// Executions run at once, independently. Needs `type: V2`.
    Parallel,
}

impl ExecutionMode {
    pub(crate) fn as_aws(self) -> &'static str {
        match self {
            ExecutionMode::Superseded => "SUPERSEDED",
            ExecutionMode::Queued => "QUEUED",
            ExecutionMode::Parallel => "PARALLEL",
        }
    }
}

/// What starts the pipeline. Events are best effort; slipway reconciles periodically anyway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Triggers {
    /// Role ARN EventBridge assumes to start the pipeline. Required when any trigger is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// Start on a successful push of `image.tag` (only without `build`).
    #[serde(default = "yes")]
    pub ecr_push: bool,
    /// Start when the source zip is written (S3's EventBridge notifications, or CloudTrail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Trigger>,
}

impl Default for Triggers {
    fn default() -> Self {
        Triggers { role_arn: None, ecr_push: true, s3: None }
    }
}

/// Start the pipeline when the source zip is written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct S3Trigger {
    /// How S3 tells EventBridge about the write. `eventbridge` (the default): the source
    /// bucket's own EventBridge notifications, which AWS delivers durably; no trail. `cloudtrail`:
    /// a trail recording data events (best effort, billed per event, and AWS allows 5 trails per
    /// Region).
    #[serde(default)]
    pub via: S3EventRoute,
    /// With `via: cloudtrail`: the trail recording writes to the source object, shared by every
    /// pipeline that names it (they must agree on `logBucket` and `logPrefix`); defaults to
    /// `slipway-s3-writes`. A trail watches up to 497 objects, and AWS allows 5 trails per Region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trail: Option<String>,
    /// With `via: cloudtrail`: the existing bucket CloudTrail writes its logs to (referenced; it
    /// needs CloudTrail's bucket policy). Not read with `via: eventbridge`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_bucket: Option<String>,
    /// With `via: cloudtrail`: the prefix of the trail's log files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_prefix: Option<String>,
}

/// How a write to the source object reaches EventBridge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum S3EventRoute {
    /// S3 event notifications to EventBridge, enabled on the source bucket.
    #[default]
    Eventbridge,
    /// CloudTrail data events, recorded by a trail.
    Cloudtrail,
}

fn yes() -> bool {
    true
}
fn default_tag() -> String {
    "latest".into()
}
fn default_untagged_expiry_days() -> u32 {
    1
}
fn default_source_key() -> String {
    "settings.zip".into()
}
fn default_build_image() -> String {
    "aws/codebuild/standard:7.0".into()
}
fn default_compute_type() -> String {
    "BUILD_GENERAL1_SMALL".into()
}
fn default_buildspec() -> String {
    "buildspec.yml".into()
}
fn default_build_timeout() -> u32 {
    60
}
fn default_taskdef() -> String {
    "taskdef.json".into()
}
fn default_event_grace() -> u32 {
    120
}
fn default_step_percent() -> f64 {
    10.0
}
fn default_step_bake() -> u32 {
    6
}
fn default_canary_percent() -> f64 {
    5.0
}
fn default_canary_bake() -> u32 {
    10
}
fn default_true() -> bool {
    true
}
fn default_hook_timeout() -> u32 {
    1440
}

impl Pipeline {
    pub fn name(&self) -> &str {
        &self.metadata.name
    }
    pub fn application_name(&self) -> &str {
        self.spec.deploy.application.as_deref().unwrap_or(&self.metadata.name)
    }
    pub fn deployment_group_name(&self) -> &str {
        self.spec.deploy.deployment_group.as_deref().unwrap_or(&self.metadata.name)
    }
    pub(crate) fn codepipeline_name(&self) -> &str {
        self.spec.pipeline.as_ref().and_then(|p| p.name.as_deref()).unwrap_or(&self.metadata.name)
    }
    pub fn artifact_bucket(&self) -> &str {
        self.spec.pipeline.as_ref().and_then(|p| p.artifact_bucket.as_deref()).unwrap_or(&self.spec.source.bucket)
    }
    /// Whether new images go through a managed CodePipeline (otherwise slipway deploys directly).
    pub(crate) fn uses_codepipeline(&self) -> bool {
        self.spec.deploy.mode == DeployMode::Pipeline
    }
    pub(crate) fn build_project_name(&self) -> Option<String> {
        self.spec.build.as_ref().map(|b| b.project.clone().unwrap_or_else(|| format!("{}-build", self.metadata.name)))
    }
    /// The trail of an S3 trigger routed through CloudTrail: shared by every pipeline naming it.
    pub fn trail_name(&self) -> Option<String> {
        self.spec
            .triggers
            .s3
            .as_ref()
            .filter(|t| self.uses_codepipeline() && t.via == S3EventRoute::Cloudtrail)
            .map(|t| t.trail.clone().unwrap_or_else(|| crate::resource::trail::SHARED_TRAIL.to_string()))
    }
    /// How writes to the source object reach EventBridge, when the S3 trigger is on.
    pub(crate) fn s3_route(&self) -> Option<S3EventRoute> {
        self.spec.triggers.s3.as_ref().filter(|_| self.uses_codepipeline()).map(|t| t.via)
    }
    /// The ECR push trigger only makes sense when the image is pushed from outside (seed 000).
    pub(crate) fn watches_ecr_push(&self) -> bool {
        self.uses_codepipeline() && self.spec.build.is_none() && self.spec.triggers.ecr_push
    }
    /// Whether the S3 write trigger (a rule, and bucket notifications or a trail) is set up.
    pub(crate) fn watches_s3(&self) -> bool {
        self.s3_route().is_some()
    }
}
