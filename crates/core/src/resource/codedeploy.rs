//! CodeDeploy application (ECS) and blue/green deployment group with traffic control.

use serde::Serialize;

use super::reference::ListenerKey;

aws_values!(
    /// Where an application's deployments run.
    ComputePlatform { Ecs = "ECS", Server = "Server", Lambda = "Lambda" }
);
aws_values!(DeploymentType { BlueGreen = "BLUE_GREEN", InPlace = "IN_PLACE" });
aws_values!(DeploymentOption { WithTrafficControl = "WITH_TRAFFIC_CONTROL", WithoutTrafficControl = "WITHOUT_TRAFFIC_CONTROL" });
aws_values!(
    /// What happens to the old task set after a successful deployment.
    InstanceAction { Terminate = "TERMINATE", KeepAlive = "KEEP_ALIVE" }
);
aws_values!(
    /// What happens when the green task set is ready: reroute at once, or wait to be told.
    ReadyAction { ContinueDeployment = "CONTINUE_DEPLOYMENT", StopDeployment = "STOP_DEPLOYMENT" }
);
aws_values!(
    /// The events that make CodeDeploy roll back on its own.
    AutoRollbackEvent {
        DeploymentFailure = "DEPLOYMENT_FAILURE",
        DeploymentStopOnAlarm = "DEPLOYMENT_STOP_ON_ALARM",
        DeploymentStopOnRequest = "DEPLOYMENT_STOP_ON_REQUEST",
    }
);

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSpec {
    pub compute_platform: ComputePlatform,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupSpec {
    pub service_role_arn: String,
    pub deployment_config_name: String,
    pub deployment_type: DeploymentType,
    pub deployment_option: DeploymentOption,
    /// What happens to the old task set after this many minutes (the rollback window).
    pub termination_action: InstanceAction,
    pub termination_wait_minutes: i32,
    pub ready_action: ReadyAction,
    pub ready_wait_minutes: i32,
    pub auto_rollback_enabled: bool,
    /// Sorted by wire string (see [`sort_events`]).
    pub auto_rollback_events: Vec<AutoRollbackEvent>,
    pub cluster: String,
    pub service: String,
    /// Sorted: blue and green swap roles with every deployment.
    pub target_groups: Vec<String>,
    pub prod_listener_arns: Vec<String>,
    pub test_listener_arns: Vec<String>,
    /// Listeners as the manifest names them; resolved into the ARNs above by `bind`.
    #[serde(skip)]
    pub listener_refs: Option<(ListenerKey, Option<ListenerKey>)>,
}

/// Rollback events in one order on both sides, without repeats.
pub fn sort_events(events: &mut Vec<AutoRollbackEvent>) {
    events.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    events.dedup();
}

impl GroupSpec {
    /// Fills in listener ARNs from resolved references. `None` when one is unresolved: the
    /// plan then reports the missing reference instead of a diff.
    pub fn bind(&self, resolve: impl Fn(&ListenerKey) -> Option<String>) -> Option<GroupSpec> {
        let mut bound = self.clone();
        if let Some((prod, test)) = &self.listener_refs {
            bound.prod_listener_arns = vec![resolve(prod)?];
            bound.test_listener_arns = match test {
                Some(test) => vec![resolve(test)?],
                None => Vec::new(),
            };
        }
        bound.listener_refs = None;
        Some(bound)
    }
}
