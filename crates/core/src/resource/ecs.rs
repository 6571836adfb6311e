//! The deployment settings of a referenced ECS service, for the ECS strategies (`ecs-blue-green`,
//! `ecs-linear`, `ecs-canary`): its deployment controller, its deployment configuration and the
//! advanced configuration of its load balancer (alternate target group, listener rules, the
//! infrastructure role). The service itself stays referenced: slipway never creates, tags or
//! deletes it, and changes only these settings.

use serde::Serialize;

aws_values!(
    /// Who runs the service's deployments.
    Controller { Ecs = "ECS", CodeDeploy = "CODE_DEPLOY", External = "EXTERNAL" }
);
aws_values!(
    /// How the ECS controller deploys.
    Strategy { Rolling = "ROLLING", BlueGreen = "BLUE_GREEN", Linear = "LINEAR", Canary = "CANARY" }
);
aws_values!(HookTargetType { Pause = "PAUSE", AwsLambda = "AWS_LAMBDA" });
aws_values!(HookAction { Rollback = "ROLLBACK", Continue = "CONTINUE" });

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Linear {
    pub step_percent: f64,
    pub step_bake_time_in_minutes: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Canary {
    pub canary_percent: f64,
    pub canary_bake_time_in_minutes: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Alarms {
    /// Sorted.
    pub alarm_names: Vec<String>,
    pub rollback: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Hook {
    /// Sorted wire strings (`POST_TEST_TRAFFIC_SHIFT`, …).
    pub lifecycle_stages: Vec<String>,
    pub target_type: String,
    pub hook_target_arn: Option<String>,
    pub role_arn: Option<String>,
    pub timeout_in_minutes: i32,
    pub timeout_action: String,
}

/// What slipway sets on the service. Lists are sorted on both sides.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    pub deployment_controller: Controller,
    pub strategy: Option<Strategy>,
    pub bake_time_in_minutes: Option<i32>,
    pub linear: Option<Linear>,
    pub canary: Option<Canary>,
    pub alarms: Option<Alarms>,
    /// Sorted.
    pub lifecycle_hooks: Vec<Hook>,
    /// The target group the service's load balancer uses and its alternate, as ARNs, sorted:
    /// they swap roles with every deployment.
    pub target_groups: Vec<String>,
    pub production_listener_rule: Option<String>,
    pub test_listener_rule: Option<String>,
    pub infrastructure_role_arn: Option<String>,
    /// Live side only, never compared: the deployment running now, when one is (a CodeDeploy
    /// deployment's second task set, or an ECS deployment not yet done). The deployment
    /// controller is not switched under it.
    #[serde(skip)]
    pub running_deployment: Option<String>,
    /// Desired side only: the target groups by name, resolved into `target_groups` by `bind`.
    #[serde(skip)]
    pub target_group_names: Option<[String; 2]>,
}

impl ServiceSpec {
    /// Fills in the target group ARNs from resolved references. `None` when one is unresolved:
    /// the plan then reports the missing reference instead of a diff.
    pub fn bind(&self, resolve: impl Fn(&str) -> Option<String>) -> Option<ServiceSpec> {
        let mut bound = self.clone();
        if let Some(names) = &self.target_group_names {
            let mut arns = vec![resolve(&names[0])?, resolve(&names[1])?];
            arns.sort();
            bound.target_groups = arns;
        }
        bound.target_group_names = None;
        Some(bound)
    }

    /// Why the update must wait, when it must: the controller is not switched while a deployment
    /// runs (AWS refuses it, and a CodeDeploy deployment half-way would be left to nobody).
    pub fn switch_refused(&self, live: &ServiceSpec) -> Option<String> {
        let running = live.running_deployment.as_ref()?;
        (self.deployment_controller != live.deployment_controller).then(|| {
            format!(
                "the service's deployment controller cannot move from {} to {} while a deployment runs ({running}); slipway switches it once that deployment ends",
                live.deployment_controller, self.deployment_controller
            )
        })
    }
}
