//! ECS service deployments (the ECS strategies): listed, described with their target revision's
//! task definition, stopped, continued past a PAUSE hook, and started by pointing the service at a
//! task definition. What each becomes for delivery is decided in core
//! (`ServiceDeployment::into_deployment`); this module only reads and writes.

use aws_sdk_ecs::types::{DeploymentLifecycleHookAction, ServiceDeploymentStatus as Status, StopServiceDeploymentStopType};
use slipway_core::delivery::api::{HookAnswer, HookDetail, HookStatus, ServiceDeployment, ServiceDeploymentStatus};
use std::collections::HashMap;

use crate::delivery::time;
use crate::{Aws, AwsError, aws_err};

/// The service's deployments, newest first, at most `limit` (ECS keeps 90 days of them).
/// Two `ListServiceDeployments` (the latest page, and those not yet ended: AWS does not document
/// the order of a page, and a running deployment must never be missed), one
/// `DescribeServiceDeployments` and one `DescribeServiceRevisions` (each takes at most 20 ARNs).
pub(crate) async fn list(aws: &Aws, cluster: &str, service: &str, limit: usize) -> Result<Vec<ServiceDeployment>, AwsError> {
    let page = limit.clamp(1, 20) as i32;
    let latest = aws.ecs.list_service_deployments().cluster(cluster).service(service).max_results(page).send();
    let running = aws
        .ecs
        .list_service_deployments()
        .cluster(cluster)
        .service(service)
        .set_status(Some(vec![
            Status::Pending,
            Status::InProgress,
            Status::StopRequested,
            Status::RollbackRequested,
            Status::RollbackInProgress,
        ]))
        .max_results(page)
        .send();
    let (latest, running) = futures::join!(latest, running);
    let (latest, running) =
        (latest.map_err(aws_err("ecs", "ListServiceDeployments"))?, running.map_err(aws_err("ecs", "ListServiceDeployments"))?);
    let mut arns: Vec<String> = Vec::new();
    for brief in running.service_deployments.unwrap_or_default().into_iter().chain(latest.service_deployments.unwrap_or_default()) {
        if let Some(arn) = brief.service_deployment_arn.filter(|a| !arns.contains(a)) {
            arns.push(arn);
        }
    }
    arns.truncate(limit.min(20));
    if arns.is_empty() {
        return Ok(Vec::new());
    }
    let described = aws
        .ecs
        .describe_service_deployments()
        .set_service_deployment_arns(Some(arns))
        .send()
        .await
        .map_err(aws_err("ecs", "DescribeServiceDeployments"))?;
    let found = described.service_deployments.unwrap_or_default();
    let revisions: Vec<String> =
        found.iter().filter_map(|d| d.target_service_revision.as_ref().and_then(|r| r.arn.clone())).collect::<Vec<_>>();
    let task_definitions = task_definitions_of(aws, revisions).await?;
    let mut out: Vec<ServiceDeployment> = found
        .into_iter()
        .map(|d| {
            let revision = d.target_service_revision.as_ref().and_then(|r| r.arn.clone());
            ServiceDeployment {
                arn: d.service_deployment_arn.unwrap_or_default(),
                status: ServiceDeploymentStatus::parse(d.status.as_ref().map(Status::as_str).unwrap_or_default()),
                status_reason: d.status_reason,
                stage: d.lifecycle_stage.map(|s| s.as_str().to_string()),
                created: time(d.created_at.as_ref()),
                finished: time(d.finished_at.as_ref().or(d.stopped_at.as_ref())),
                task_definition: revision.and_then(|r| task_definitions.get(&r).cloned()),
                hooks: d
                    .lifecycle_hook_details
                    .unwrap_or_default()
                    .into_iter()
                    .map(|h| HookDetail {
                        hook_id: h.hook_id.unwrap_or_default(),
                        pause: h.target_type.as_ref().is_some_and(|t| t.as_str() == "PAUSE"),
                        status: HookStatus::parse(h.status.as_ref().map(|s| s.as_str()).unwrap_or_default()),
                        timeout_action: h.timeout_action.map(|a| a.as_str().to_string()),
                        expires: time(h.expires_at.as_ref()),
                    })
                    .collect(),
                triggered_alarms: d.alarms.and_then(|a| a.triggered_alarm_names).unwrap_or_default(),
                circuit_breaker_tripped: d.deployment_circuit_breaker.and_then(|c| c.status).is_some_and(|s| s.as_str() == "TRIGGERED"),
                rollback_reason: d.rollback.and_then(|r| r.reason),
            }
        })
        .collect();
    out.sort_by(|a, b| b.created.cmp(&a.created).then(b.arn.cmp(&a.arn)));
    Ok(out)
}

/// Service revision ARN → its task definition.
async fn task_definitions_of(aws: &Aws, mut revisions: Vec<String>) -> Result<HashMap<String, String>, AwsError> {
    revisions.sort();
    revisions.dedup();
    let mut out = HashMap::new();
    for chunk in revisions.chunks(20) {
        let got = aws
            .ecs
            .describe_service_revisions()
            .set_service_revision_arns(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(aws_err("ecs", "DescribeServiceRevisions"))?;
        for r in got.service_revisions.unwrap_or_default() {
            if let (Some(arn), Some(task_definition)) = (r.service_revision_arn, r.task_definition) {
                out.insert(arn, task_definition);
            }
        }
    }
    Ok(out)
}

/// Points the service at `task_definition`: ECS deploys it under the service's strategy. The
/// deployment's ARN when ECS names it in the answer, else the id of its newest deployment.
pub(crate) async fn update_service(aws: &Aws, cluster: &str, service: &str, task_definition: &str) -> Result<String, AwsError> {
    let updated = aws
        .ecs
        .update_service()
        .cluster(cluster)
        .service(service)
        .task_definition(task_definition)
        .send()
        .await
        .map_err(aws_err("ecs", "UpdateService"))?;
    let service = updated.service.ok_or_else(|| AwsError::refused("ecs", "UpdateService", "no service in the answer"))?;
    let newest = service.deployments.unwrap_or_default().into_iter().find(|d| d.status.as_deref() == Some("PRIMARY")).and_then(|d| d.id);
    Ok(service.current_service_deployment.or(newest).unwrap_or_default())
}

pub(crate) async fn stop(aws: &Aws, arn: &str, rollback: bool) -> Result<(), AwsError> {
    let stop_type = if rollback { StopServiceDeploymentStopType::Rollback } else { StopServiceDeploymentStopType::Abort };
    aws.ecs
        .stop_service_deployment()
        .service_deployment_arn(arn)
        .stop_type(stop_type)
        .send()
        .await
        .map_err(aws_err("ecs", "StopServiceDeployment"))?;
    Ok(())
}

pub(crate) async fn answer(aws: &Aws, arn: &str, hook_id: &str, answer: HookAnswer) -> Result<(), AwsError> {
    let action = match answer {
        HookAnswer::Continue => DeploymentLifecycleHookAction::Continue,
        HookAnswer::Rollback => DeploymentLifecycleHookAction::Rollback,
    };
    aws.ecs
        .continue_service_deployment()
        .service_deployment_arn(arn)
        .hook_id(hook_id)
        .action(action)
        .send()
        .await
        .map_err(aws_err("ecs", "ContinueServiceDeployment"))?;
    Ok(())
}
