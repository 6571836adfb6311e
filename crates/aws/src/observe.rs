//! Observe: read the live state of exactly the resources a pipeline names, and check the
//! resources it references. Reads only; never a write.

use futures::future::join_all;

use aws_sdk_ecs::types::DeploymentControllerType;
use slipway_core::compile::DesiredPipeline;
use slipway_core::plan::{Observed, RefState};
use slipway_core::resource::reference::{ListenerKey, Reference};

use crate::{Aws, AwsError, absent_if_not_found, aws_err, resource};

/// Reads one pipeline's resources and references concurrently. Any failed read fails the
/// pipeline's observation: a plan from half the facts could delete or duplicate things.
pub async fn observe_pipeline(aws: &Aws, desired: &DesiredPipeline) -> Result<Observed, AwsError> {
    let reads = join_all(desired.resources.iter().map(|d| async move { (d.key.clone(), resource::read(aws, &d.key).await) }));
    let refs = join_all(desired.references.iter().map(|r| async move { (r.clone(), observe_reference(aws, r).await) }));
    let (reads, refs) = futures::join!(reads, refs);
    let mut observed = Observed::default();
    for (key, live) in reads {
        observed.live.insert(key, live?);
    }
    for (reference, state) in refs {
        observed.refs.insert(reference, state?);
    }
    Ok(observed)
}

pub(crate) async fn observe_reference(aws: &Aws, reference: &Reference) -> Result<RefState, AwsError> {
    match reference {
        Reference::EcsService { cluster, service } => ecs_service(aws, cluster, service).await,
        Reference::TargetGroup(name) => {
            let found = absent_if_not_found(
                aws.elb.describe_target_groups().names(name).send().await.map_err(aws_err("elasticloadbalancing", "DescribeTargetGroups")),
            )?;
            Ok(match found.and_then(|f| f.target_groups.unwrap_or_default().into_iter().next()) {
                Some(tg) => RefState::Found(tg.target_group_arn),
                None => RefState::Problem("does not exist (slipway references target groups, it does not create them)".into()),
            })
        }
        Reference::Listener(ListenerKey::Arn(arn)) => {
            let found = absent_if_not_found(
                aws.elb.describe_listeners().listener_arns(arn).send().await.map_err(aws_err("elasticloadbalancing", "DescribeListeners")),
            )?;
            Ok(match found.and_then(|f| f.listeners.unwrap_or_default().into_iter().next()) {
                Some(_) => RefState::Found(Some(arn.clone())),
                None => RefState::Problem("does not exist".into()),
            })
        }
        Reference::Listener(ListenerKey::ByPort { load_balancer, port }) => {
            let found = absent_if_not_found(
                aws.elb
                    .describe_load_balancers()
                    .names(load_balancer)
                    .send()
                    .await
                    .map_err(aws_err("elasticloadbalancing", "DescribeLoadBalancers")),
            )?;
            let Some(lb_arn) =
                found.and_then(|f| f.load_balancers.unwrap_or_default().into_iter().next()).and_then(|lb| lb.load_balancer_arn)
            else {
                return Ok(RefState::Problem(format!("load balancer `{load_balancer}` does not exist")));
            };
            let listeners = aws
                .elb
                .describe_listeners()
                .load_balancer_arn(lb_arn)
                .send()
                .await
                .map_err(aws_err("elasticloadbalancing", "DescribeListeners"))?;
            Ok(match listeners.listeners.unwrap_or_default().into_iter().find(|l| l.port == Some(i32::from(*port))) {
                Some(listener) => RefState::Found(listener.listener_arn),
                None => RefState::Problem(format!("load balancer `{load_balancer}` has no listener on port {port}")),
            })
        }
        Reference::Bucket(name) => {
            let found = absent_if_not_found(aws.s3.head_bucket().bucket(name).send().await.map_err(aws_err("s3", "HeadBucket")))?;
            Ok(match found {
                Some(_) => RefState::Found(None),
                None => RefState::Problem("does not exist (CloudTrail needs it for its logs)".into()),
            })
        }
    }
}

async fn ecs_service(aws: &Aws, cluster: &str, service: &str) -> Result<RefState, AwsError> {
    let described =
        match aws.ecs.describe_services().cluster(cluster).services(service).send().await.map_err(aws_err("ecs", "DescribeServices")) {
            Ok(d) => d,
            Err(e) if e.code.as_deref() == Some("ClusterNotFoundException") => {
                return Ok(RefState::Problem(format!("cluster `{cluster}` does not exist")));
            }
            Err(e) => return Err(e),
        };
    let Some(found) = described.services.unwrap_or_default().into_iter().find(|s| s.status.as_deref() != Some("INACTIVE")) else {
        return Ok(RefState::Problem(format!(
            "does not exist in cluster `{cluster}` (slipway references the service, it does not create it)"
        )));
    };
    let controller = found.deployment_controller.map(|c| c.r#type).unwrap_or(DeploymentControllerType::Ecs);
    if controller != DeploymentControllerType::CodeDeploy {
        return Ok(RefState::Problem(format!(
            "uses the {} deployment controller; CodeDeploy blue/green needs a service created with `deploymentController: CODE_DEPLOY` (it cannot be changed on an existing service)",
            controller.as_str()
        )));
    }
    Ok(RefState::Found(found.service_arn))
}
