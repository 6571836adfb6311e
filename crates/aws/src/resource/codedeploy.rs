//! Adapter: CodeDeploy application (ECS) and blue/green deployment group with traffic control.
//!
//! moto 5.2.5 has no `UpdateDeploymentGroup`, `DeleteDeploymentGroup` or `DeleteApplication`:
//! those calls are tested with `aws-smithy-mocks` in `tests/adapters_mocked.rs`.

use crate::ahead::{ReadAhead, ahead_or};
use crate::tags::swept_or;
use crate::{Aws, AwsError, absent_if_not_found, aws_err};
use aws_sdk_codedeploy::types as sdk;
use aws_sdk_codedeploy::types::{
    AutoRollbackConfiguration, BlueGreenDeploymentConfiguration, BlueInstanceTerminationOption, DeploymentReadyOption, DeploymentStyle,
    EcsService, LoadBalancerInfo, Tag, TargetGroupInfo, TargetGroupPairInfo, TrafficRoute,
};
use slipway_core::resource::codedeploy::{
    ApplicationSpec, AutoRollbackEvent, ComputePlatform, DeploymentOption, DeploymentType, GroupSpec, InstanceAction, ReadyAction,
    sort_events,
};
use slipway_core::resource::{Live, Spec, Tags};

fn split(name: &str) -> (&str, &str) {
    name.split_once('/').expect("deployment group keys are application/group")
}

fn application_arn(aws: &Aws, app: &str) -> String {
    aws.arn("codedeploy", &format!("application:{app}"))
}

fn group_arn(aws: &Aws, name: &str) -> String {
    aws.arn("codedeploy", &format!("deploymentgroup:{name}"))
}

fn sdk_tags(tags: &Tags) -> Vec<Tag> {
    tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

async fn read_tags(aws: &Aws, arn: &str) -> Result<Tags, AwsError> {
    let got =
        aws.codedeploy.list_tags_for_resource().resource_arn(arn).send().await.map_err(aws_err("codedeploy", "ListTagsForResource"))?;
    Ok(got.tags.unwrap_or_default().into_iter().filter_map(|t| Some((t.key?, t.value.unwrap_or_default()))).collect())
}

pub(crate) async fn read_application(aws: &Aws, name: &str, ahead: Option<&ReadAhead>) -> Result<Option<Live>, AwsError> {
    let got = ahead_or(ahead.and_then(|a| a.application(name)), async {
        let got = absent_if_not_found(
            aws.codedeploy.get_application().application_name(name).send().await.map_err(aws_err("codedeploy", "GetApplication")),
        )?;
        Ok(got.and_then(|g| g.application))
    });
    let Some(info) = got.await? else {
        return Ok(None);
    };
    Ok(Some(Live {
        spec: Spec::App(ApplicationSpec {
            compute_platform: info.compute_platform.map(|p| ComputePlatform::parse(p.as_str())).unwrap_or(ComputePlatform::Server),
        }),
        tags: {
            let arn = application_arn(aws, name);
            swept_or(ahead.and_then(ReadAhead::tags), &arn, read_tags(aws, &arn)).await?
        },
    }))
}

pub(crate) async fn create_application(aws: &Aws, name: &str, spec: &ApplicationSpec, tags: &Tags) -> Result<(), AwsError> {
    aws.codedeploy
        .create_application()
        .application_name(name)
        .compute_platform(sdk::ComputePlatform::from(spec.compute_platform.as_str()))
        .set_tags(Some(sdk_tags(tags)))
        .send()
        .await
        .map_err(aws_err("codedeploy", "CreateApplication"))?;
    Ok(())
}

/// The compute platform cannot change in place.
pub(crate) fn update_application(want: &ApplicationSpec, have: &ApplicationSpec) -> Result<(), AwsError> {
    if want.compute_platform != have.compute_platform {
        return Err(AwsError::refused(
            "codedeploy",
            "UpdateApplication",
            format!(
                "the application's compute platform is {} and cannot become {}: delete the application or choose another name",
                have.compute_platform, want.compute_platform
            ),
        ));
    }
    Ok(())
}

pub(crate) async fn tag_application(aws: &Aws, name: &str, tags: &Tags) -> Result<(), AwsError> {
    aws.codedeploy
        .tag_resource()
        .resource_arn(application_arn(aws, name))
        .set_tags(Some(sdk_tags(tags)))
        .send()
        .await
        .map_err(aws_err("codedeploy", "TagResource"))?;
    Ok(())
}

/// Deleting the application deletes its deployment groups too.
pub(crate) async fn delete_application(aws: &Aws, name: &str) -> Result<(), AwsError> {
    aws.codedeploy.delete_application().application_name(name).send().await.map_err(aws_err("codedeploy", "DeleteApplication"))?;
    Ok(())
}

pub(crate) async fn read_group(aws: &Aws, name: &str, ahead: Option<&ReadAhead>) -> Result<Option<Live>, AwsError> {
    let (app, group) = split(name);
    let got = absent_if_not_found(
        aws.codedeploy
            .get_deployment_group()
            .application_name(app)
            .deployment_group_name(group)
            .send()
            .await
            .map_err(aws_err("codedeploy", "GetDeploymentGroup")),
    )?;
    let Some(info) = got.and_then(|g| g.deployment_group_info) else {
        return Ok(None);
    };
    let style = info.deployment_style.unwrap_or_else(|| DeploymentStyle::builder().build());
    let blue_green = info.blue_green_deployment_configuration.unwrap_or_else(|| BlueGreenDeploymentConfiguration::builder().build());
    let termination = blue_green.terminate_blue_instances_on_deployment_success;
    let ready = blue_green.deployment_ready_option;
    let rollback = info.auto_rollback_configuration;
    let mut events: Vec<AutoRollbackEvent> =
        rollback.as_ref().and_then(|r| r.events.clone()).unwrap_or_default().iter().map(|e| AutoRollbackEvent::parse(e.as_str())).collect();
    sort_events(&mut events);
    let service = info.ecs_services.unwrap_or_default().into_iter().next();
    let pair = info.load_balancer_info.and_then(|l| l.target_group_pair_info_list).unwrap_or_default().into_iter().next();
    let mut target_groups: Vec<String> =
        pair.as_ref().and_then(|p| p.target_groups.clone()).unwrap_or_default().into_iter().filter_map(|t| t.name).collect();
    target_groups.sort();
    let listeners = |route: Option<TrafficRoute>| {
        let mut arns = route.and_then(|r| r.listener_arns).unwrap_or_default();
        arns.sort();
        arns
    };
    let spec = GroupSpec {
        service_role_arn: info.service_role_arn.unwrap_or_default(),
        deployment_config_name: info.deployment_config_name.unwrap_or_else(|| "CodeDeployDefault.OneAtATime".into()),
        deployment_type: style.deployment_type.map(|t| DeploymentType::parse(t.as_str())).unwrap_or(DeploymentType::InPlace),
        deployment_option: style
            .deployment_option
            .map(|o| DeploymentOption::parse(o.as_str()))
            .unwrap_or(DeploymentOption::WithoutTrafficControl),
        termination_action: termination
            .as_ref()
            .and_then(|t| t.action.as_ref())
            .map(|a| InstanceAction::parse(a.as_str()))
            .unwrap_or(InstanceAction::Terminate),
        termination_wait_minutes: termination.map(|t| t.termination_wait_time_in_minutes).unwrap_or(0),
        ready_action: ready
            .as_ref()
            .and_then(|r| r.action_on_timeout.as_ref())
            .map(|a| ReadyAction::parse(a.as_str()))
            .unwrap_or(ReadyAction::ContinueDeployment),
        ready_wait_minutes: ready.map(|r| r.wait_time_in_minutes).unwrap_or(0),
        auto_rollback_enabled: rollback.map(|r| r.enabled).unwrap_or(false),
        auto_rollback_events: events,
        cluster: service.as_ref().and_then(|s| s.cluster_name.clone()).unwrap_or_default(),
        service: service.and_then(|s| s.service_name).unwrap_or_default(),
        target_groups,
        prod_listener_arns: listeners(pair.as_ref().and_then(|p| p.prod_traffic_route.clone())),
        test_listener_arns: listeners(pair.and_then(|p| p.test_traffic_route)),
        listener_refs: None,
    };
    let arn = group_arn(aws, name);
    Ok(Some(Live { spec: Spec::Group(Box::new(spec)), tags: swept_or(ahead.and_then(ReadAhead::tags), &arn, read_tags(aws, &arn)).await? }))
}

struct GroupParts {
    style: DeploymentStyle,
    blue_green: BlueGreenDeploymentConfiguration,
    rollback: AutoRollbackConfiguration,
    service: EcsService,
    load_balancer: LoadBalancerInfo,
}

fn group_parts(spec: &GroupSpec) -> GroupParts {
    let route = |arns: &[String]| TrafficRoute::builder().set_listener_arns(Some(arns.to_vec())).build();
    let mut pair = TargetGroupPairInfo::builder()
        .set_target_groups(Some(spec.target_groups.iter().map(|t| TargetGroupInfo::builder().name(t).build()).collect()))
        .prod_traffic_route(route(&spec.prod_listener_arns));
    if !spec.test_listener_arns.is_empty() {
        pair = pair.test_traffic_route(route(&spec.test_listener_arns));
    }
    GroupParts {
        style: DeploymentStyle::builder()
            .deployment_type(sdk::DeploymentType::from(spec.deployment_type.as_str()))
            .deployment_option(sdk::DeploymentOption::from(spec.deployment_option.as_str()))
            .build(),
        blue_green: BlueGreenDeploymentConfiguration::builder()
            .terminate_blue_instances_on_deployment_success(
                BlueInstanceTerminationOption::builder()
                    .action(sdk::InstanceAction::from(spec.termination_action.as_str()))
                    .termination_wait_time_in_minutes(spec.termination_wait_minutes)
                    .build(),
            )
            .deployment_ready_option(
                DeploymentReadyOption::builder()
                    .action_on_timeout(sdk::DeploymentReadyAction::from(spec.ready_action.as_str()))
                    .wait_time_in_minutes(spec.ready_wait_minutes)
                    .build(),
            )
            .build(),
        rollback: AutoRollbackConfiguration::builder()
            .enabled(spec.auto_rollback_enabled)
            .set_events(Some(spec.auto_rollback_events.iter().map(|e| sdk::AutoRollbackEvent::from(e.as_str())).collect()))
            .build(),
        service: EcsService::builder().cluster_name(&spec.cluster).service_name(&spec.service).build(),
        load_balancer: LoadBalancerInfo::builder().target_group_pair_info_list(pair.build()).build(),
    }
}

pub(crate) async fn create_group(aws: &Aws, name: &str, spec: &GroupSpec, tags: &Tags) -> Result<(), AwsError> {
    let (app, group) = split(name);
    let parts = group_parts(spec);
    aws.codedeploy
        .create_deployment_group()
        .application_name(app)
        .deployment_group_name(group)
        .service_role_arn(&spec.service_role_arn)
        .deployment_config_name(&spec.deployment_config_name)
        .deployment_style(parts.style)
        .blue_green_deployment_configuration(parts.blue_green)
        .auto_rollback_configuration(parts.rollback)
        .ecs_services(parts.service)
        .load_balancer_info(parts.load_balancer)
        .set_tags(Some(sdk_tags(tags)))
        .send()
        .await
        .map_err(aws_err("codedeploy", "CreateDeploymentGroup"))?;
    Ok(())
}

pub(crate) async fn update_group(aws: &Aws, name: &str, want: &GroupSpec, _have: &GroupSpec) -> Result<(), AwsError> {
    let (app, group) = split(name);
    let parts = group_parts(want);
    aws.codedeploy
        .update_deployment_group()
        .application_name(app)
        .current_deployment_group_name(group)
        .service_role_arn(&want.service_role_arn)
        .deployment_config_name(&want.deployment_config_name)
        .deployment_style(parts.style)
        .blue_green_deployment_configuration(parts.blue_green)
        .auto_rollback_configuration(parts.rollback)
        .ecs_services(parts.service)
        .load_balancer_info(parts.load_balancer)
        .send()
        .await
        .map_err(aws_err("codedeploy", "UpdateDeploymentGroup"))?;
    Ok(())
}

pub(crate) async fn tag_group(aws: &Aws, name: &str, tags: &Tags) -> Result<(), AwsError> {
    aws.codedeploy
        .tag_resource()
        .resource_arn(group_arn(aws, name))
        .set_tags(Some(sdk_tags(tags)))
        .send()
        .await
        .map_err(aws_err("codedeploy", "TagResource"))?;
    Ok(())
}

pub(crate) async fn delete_group(aws: &Aws, name: &str) -> Result<(), AwsError> {
    let (app, group) = split(name);
    aws.codedeploy
        .delete_deployment_group()
        .application_name(app)
        .deployment_group_name(group)
        .send()
        .await
        .map_err(aws_err("codedeploy", "DeleteDeploymentGroup"))?;
    Ok(())
}
