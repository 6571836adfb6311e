//! Adapter: the deployment settings of a referenced ECS service (ECS strategies). Read from
//! `DescribeServices` (what the pass read ahead, when it did), written with one `UpdateService`
//! that sets the deployment controller, the deployment configuration and the load balancer's
//! advanced configuration. The service is never created, tagged or deleted: `create` and
//! `delete` refuse.
//!
//! moto 5.2.5 stores and returns all three (checked with boto3 against the server), so the
//! converge tests run against it; the request shape is also pinned with `aws-smithy-mocks` in
//! `tests/adapters_mocked.rs`.

use aws_sdk_ecs::types::{
    AdvancedConfiguration, CanaryConfiguration, DeploymentAlarms, DeploymentConfiguration, DeploymentController, DeploymentControllerType,
    DeploymentLifecycleHook, DeploymentLifecycleHookAction, DeploymentLifecycleHookStage, DeploymentLifecycleHookTargetType,
    DeploymentLifecycleHookTimeoutConfiguration, DeploymentStrategy, LinearConfiguration, LoadBalancer, Service,
};
use slipway_core::resource::ecs::{Alarms, Canary, Controller, Hook, Linear, ServiceSpec, Strategy};
use slipway_core::resource::{Live, Spec, Tags};

use crate::ahead::ReadAhead;
use crate::{Aws, AwsError, aws_err};

fn split(name: &str) -> (&str, &str) {
    name.split_once('/').expect("service settings keys are cluster/service")
}

async fn describe(aws: &Aws, cluster: &str, service: &str) -> Result<Option<Service>, AwsError> {
    let described =
        match aws.ecs.describe_services().cluster(cluster).services(service).send().await.map_err(aws_err("ecs", "DescribeServices")) {
            Ok(d) => d,
            Err(e) if e.code.as_deref() == Some("ClusterNotFoundException") => return Ok(None),
            Err(e) => return Err(e),
        };
    Ok(described.services.unwrap_or_default().into_iter().find(|s| s.status.as_deref() != Some("INACTIVE")))
}

pub(super) async fn read(aws: &Aws, name: &str, ahead: Option<&ReadAhead>) -> Result<Option<Live>, AwsError> {
    let (cluster, service) = split(name);
    let found = match ahead.and_then(|a| a.service(cluster, service)) {
        Some(read) => Some(read.clone()),
        None => describe(aws, cluster, service).await?,
    };
    // Untagged: the service is the user's; its tags are not slipway's to judge or set.
    Ok(found.map(|s| Live { spec: Spec::Service(Box::new(spec_of(&s))), tags: Tags::new() }))
}

/// The live settings, normalised as compile writes them: settings of another strategy and
/// alarms that are off read as absent, lists sorted.
fn spec_of(s: &Service) -> ServiceSpec {
    let controller = s.deployment_controller.as_ref().map_or(Controller::Ecs, |c| Controller::parse(c.r#type.as_str()));
    let config = s.deployment_configuration.as_ref();
    let strategy = config.and_then(|c| c.strategy.as_ref()).map(|st| Strategy::parse(st.as_str()));
    let linear = config.and_then(|c| c.linear_configuration.as_ref()).filter(|_| strategy == Some(Strategy::Linear)).map(|l| Linear {
        step_percent: l.step_percent.unwrap_or(10.0),
        step_bake_time_in_minutes: l.step_bake_time_in_minutes.unwrap_or(6),
    });
    let canary = config.and_then(|c| c.canary_configuration.as_ref()).filter(|_| strategy == Some(Strategy::Canary)).map(|c| Canary {
        canary_percent: c.canary_percent.unwrap_or(5.0),
        canary_bake_time_in_minutes: c.canary_bake_time_in_minutes.unwrap_or(10),
    });
    let alarms = config.and_then(|c| c.alarms.as_ref()).filter(|a| a.enable && !a.alarm_names.is_empty()).map(|a| {
        let mut alarm_names = a.alarm_names.clone();
        alarm_names.sort();
        Alarms { alarm_names, rollback: a.rollback }
    });
    let mut lifecycle_hooks: Vec<Hook> = config
        .and_then(|c| c.lifecycle_hooks.as_ref())
        .into_iter()
        .flatten()
        .map(|h| {
            let mut lifecycle_stages: Vec<String> = h.lifecycle_stages.iter().flatten().map(|s| s.as_str().to_string()).collect();
            lifecycle_stages.sort();
            let timeout = h.timeout_configuration.as_ref();
            Hook {
                lifecycle_stages,
                // AWS's defaults, written out: a hook without them reads as what ECS does.
                target_type: h.target_type.as_ref().map_or("AWS_LAMBDA", |t| t.as_str()).to_string(),
                hook_target_arn: h.hook_target_arn.clone(),
                role_arn: h.role_arn.clone(),
                timeout_in_minutes: timeout.and_then(|t| t.timeout_in_minutes).unwrap_or(1440),
                timeout_action: timeout.and_then(|t| t.action.as_ref()).map_or("ROLLBACK", |a| a.as_str()).to_string(),
            }
        })
        .collect();
    lifecycle_hooks.sort();
    let balancer = s.load_balancers.as_ref().and_then(|lbs| lbs.iter().find(|lb| lb.target_group_arn.is_some()));
    let advanced = balancer.and_then(|lb| lb.advanced_configuration.as_ref());
    let mut target_groups: Vec<String> = balancer.and_then(|lb| lb.target_group_arn.clone()).into_iter().collect();
    target_groups.extend(advanced.and_then(|a| a.alternate_target_group_arn.clone()));
    target_groups.sort();
    ServiceSpec {
        deployment_controller: controller,
        strategy,
        bake_time_in_minutes: config.and_then(|c| c.bake_time_in_minutes),
        linear,
        canary,
        alarms,
        lifecycle_hooks,
        target_groups,
        production_listener_rule: advanced.and_then(|a| a.production_listener_rule.clone()),
        test_listener_rule: advanced.and_then(|a| a.test_listener_rule.clone()),
        infrastructure_role_arn: advanced.and_then(|a| a.role_arn.clone()),
        running_deployment: running_deployment(s),
        target_group_names: None,
    }
}

/// A deployment not yet done: CodeDeploy's second task set, or an ECS deployment in progress.
fn running_deployment(s: &Service) -> Option<String> {
    let task_sets = s.task_sets.as_deref().unwrap_or_default();
    if task_sets.len() > 1 {
        let ids: Vec<&str> = task_sets.iter().filter_map(|t| t.id.as_deref()).collect();
        return Some(format!("task sets {}", ids.join(", ")));
    }
    let deployments = s.deployments.as_deref().unwrap_or_default();
    let rolling = deployments.iter().find(|d| d.rollout_state.as_ref().is_some_and(|r| r.as_str() == "IN_PROGRESS"));
    if deployments.len() > 1 || rolling.is_some() {
        let ids: Vec<&str> = deployments.iter().filter_map(|d| d.id.as_deref()).collect();
        return Some(format!("deployments {}", ids.join(", ")));
    }
    None
}

pub(super) fn create(name: &str) -> Result<(), AwsError> {
    Err(AwsError::refused(
        "ecs",
        "UpdateService",
        format!("ECS service {name} does not exist: slipway references services, it does not create them"),
    ))
}

/// One `UpdateService` with the controller (when it changes), the whole deployment configuration
/// and the load balancer wiring. Fields slipway does not manage (the rolling percentages, the
/// circuit breaker, the container and port of the load balancer) are carried over from a fresh
/// read, because `UpdateService` replaces what it is given.
pub(super) async fn update(aws: &Aws, name: &str, want: &ServiceSpec, have: &ServiceSpec) -> Result<(), AwsError> {
    let (cluster, service) = split(name);
    let current = describe(aws, cluster, service)
        .await?
        .ok_or_else(|| AwsError::refused("ecs", "UpdateService", format!("ECS service {name} no longer exists")))?;
    let mut request = aws.ecs.update_service().cluster(cluster).service(service);
    if want.deployment_controller != have.deployment_controller {
        let controller = DeploymentController::builder()
            .r#type(DeploymentControllerType::from(want.deployment_controller.as_str()))
            .build()
            .map_err(|e| AwsError::refused("ecs", "UpdateService", e.to_string()))?;
        request = request.deployment_controller(controller);
    }
    request = request.deployment_configuration(configuration(want, current.deployment_configuration.as_ref()));
    if let Some(balancer) = load_balancer(want, &current) {
        request = request.load_balancers(balancer);
    }
    request.send().await.map_err(aws_err("ecs", "UpdateService"))?;
    Ok(())
}

fn configuration(want: &ServiceSpec, current: Option<&DeploymentConfiguration>) -> DeploymentConfiguration {
    let hooks: Vec<DeploymentLifecycleHook> = want
        .lifecycle_hooks
        .iter()
        .map(|h| {
            DeploymentLifecycleHook::builder()
                .target_type(DeploymentLifecycleHookTargetType::from(h.target_type.as_str()))
                .set_hook_target_arn(h.hook_target_arn.clone())
                .set_role_arn(h.role_arn.clone())
                .set_lifecycle_stages(Some(h.lifecycle_stages.iter().map(|s| DeploymentLifecycleHookStage::from(s.as_str())).collect()))
                .timeout_configuration(
                    DeploymentLifecycleHookTimeoutConfiguration::builder()
                        .timeout_in_minutes(h.timeout_in_minutes)
                        .action(DeploymentLifecycleHookAction::from(h.timeout_action.as_str()))
                        .build(),
                )
                .build()
        })
        .collect();
    let alarms = want
        .alarms
        .as_ref()
        .map(|a| DeploymentAlarms::builder().set_alarm_names(Some(a.alarm_names.clone())).rollback(a.rollback).enable(true).build());
    let alarms = alarms.and_then(Result::ok).or_else(|| {
        // Alarms slipway turned on and the manifest no longer names: off.
        current
            .and_then(|c| c.alarms.as_ref())
            .filter(|a| a.enable)
            .and_then(|_| DeploymentAlarms::builder().set_alarm_names(Some(Vec::new())).rollback(false).enable(false).build().ok())
    });
    DeploymentConfiguration::builder()
        .set_maximum_percent(current.and_then(|c| c.maximum_percent))
        .set_minimum_healthy_percent(current.and_then(|c| c.minimum_healthy_percent))
        .set_deployment_circuit_breaker(current.and_then(|c| c.deployment_circuit_breaker.clone()))
        .set_alarms(alarms)
        .set_strategy(want.strategy.as_ref().map(|s| DeploymentStrategy::from(s.as_str())))
        .set_bake_time_in_minutes(want.bake_time_in_minutes)
        .set_linear_configuration(want.linear.as_ref().map(|l| {
            LinearConfiguration::builder().step_percent(l.step_percent).step_bake_time_in_minutes(l.step_bake_time_in_minutes).build()
        }))
        .set_canary_configuration(want.canary.as_ref().map(|c| {
            CanaryConfiguration::builder()
                .canary_percent(c.canary_percent)
                .canary_bake_time_in_minutes(c.canary_bake_time_in_minutes)
                .build()
        }))
        .set_lifecycle_hooks(Some(hooks))
        .build()
}

/// The service's load balancer with the alternate target group, the listener rules and the
/// infrastructure role. The service keeps the target group it uses now (blue and green swap with
/// every deployment); `None` when it has no load balancer on either target group.
fn load_balancer(want: &ServiceSpec, current: &Service) -> Option<LoadBalancer> {
    let lb =
        current.load_balancers.as_ref()?.iter().find(|lb| lb.target_group_arn.as_ref().is_some_and(|a| want.target_groups.contains(a)))?;
    let primary = lb.target_group_arn.clone()?;
    let alternate = want.target_groups.iter().find(|a| **a != primary).cloned();
    let advanced = AdvancedConfiguration::builder()
        .set_alternate_target_group_arn(alternate)
        .set_production_listener_rule(want.production_listener_rule.clone())
        .set_test_listener_rule(want.test_listener_rule.clone())
        .set_role_arn(want.infrastructure_role_arn.clone())
        .build();
    Some(
        LoadBalancer::builder()
            .target_group_arn(primary)
            .set_load_balancer_name(lb.load_balancer_name.clone())
            .set_container_name(lb.container_name.clone())
            .set_container_port(lb.container_port)
            .advanced_configuration(advanced)
            .build(),
    )
}

pub(super) fn refuse_delete(name: &str) -> Result<(), AwsError> {
    Err(AwsError::refused("ecs", "DeleteService", format!("ECS service {name} is referenced, not owned: slipway never deletes it")))
}
