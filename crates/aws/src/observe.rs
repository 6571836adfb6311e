//! Observe: read the live state of exactly the resources a pipeline names, and check the
//! resources it references. Reads only; never a write.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use futures::future::join_all;

use aws_sdk_ecs::types::{DeploymentControllerType, Service};
use aws_sdk_elasticloadbalancingv2::types::TargetGroup;
use slipway_core::compile::DesiredPipeline;
use slipway_core::plan::{Observed, RefState};
use slipway_core::resource::reference::{ListenerKey, Reference};

use crate::ahead::ReadAhead;
use crate::{Aws, AwsError, absent_if_not_found, aws_err, resource};

/// Reads one pipeline's resources and references concurrently, taking what was read ahead for the
/// pass from `ahead`. Any failed read fails the pipeline's observation: a plan from half the facts could
/// delete or duplicate things.
pub async fn observe_pipeline(aws: &Aws, desired: &DesiredPipeline, ahead: Option<&ReadAhead>) -> Result<Observed, AwsError> {
    let reads = join_all(desired.resources.iter().map(|d| async move { (d.key.clone(), resource::read(aws, &d.key, ahead).await) }));
    let (reads, refs) = futures::join!(reads, observe_references(aws, &desired.references, ahead));
    let mut observed = Observed { refs: refs?, ..Observed::default() };
    for (key, live) in reads {
        observed.live.insert(key, live?);
    }
    Ok(observed)
}

/// Reads the references: the target groups in one call, each load balancer and its listeners
/// once however many of its listeners are named (a pipeline's prod and test listeners are
/// usually on one), the rest one by one; what was read ahead for the pass is not read again.
async fn observe_references(
    aws: &Aws,
    references: &[Reference],
    ahead: Option<&ReadAhead>,
) -> Result<HashMap<Reference, RefState>, AwsError> {
    let target_groups: Vec<&str> =
        references.iter().filter_map(|r| if let Reference::TargetGroup(name) = r { Some(name.as_str()) } else { None }).collect();
    let balancers: BTreeSet<&str> = references
        .iter()
        .filter_map(|r| match r {
            Reference::Listener(ListenerKey::ByPort { load_balancer, .. }) => Some(load_balancer.as_str()),
            _ => None,
        })
        .collect();
    let singles = references.iter().filter(|r| !matches!(r, Reference::TargetGroup(_) | Reference::Listener(ListenerKey::ByPort { .. })));
    let (groups, listeners, singles) = futures::join!(
        observe_target_groups(aws, &target_groups, ahead),
        join_all(balancers.iter().map(|lb| async move { (*lb, listeners_by_port(aws, lb, ahead).await) })),
        join_all(singles.map(|r| async move { (r.clone(), observe_reference(aws, r, ahead).await) })),
    );
    let mut refs: HashMap<Reference, RefState> = groups?.into_iter().map(|(name, state)| (Reference::TargetGroup(name), state)).collect();
    let mut ports = HashMap::new();
    for (lb, found) in listeners {
        ports.insert(lb, found?);
    }
    for reference in references {
        if let Reference::Listener(ListenerKey::ByPort { load_balancer, port }) = reference {
            let state = match &ports[load_balancer.as_str()] {
                None => RefState::Problem(format!("load balancer `{load_balancer}` does not exist")),
                Some(listeners) => match listeners.get(port) {
                    Some(arn) => RefState::Found(arn.clone()),
                    None => RefState::Problem(format!("load balancer `{load_balancer}` has no listener on port {port}")),
                },
            };
            refs.insert(reference.clone(), state);
        }
    }
    for (reference, state) in singles {
        refs.insert(reference, state?);
    }
    Ok(refs)
}

/// Target groups by name, in one call. AWS answers `TargetGroupNotFound` for the whole call when
/// one is missing; then each is read alone to say which.
async fn observe_target_groups(aws: &Aws, names: &[&str], ahead: Option<&ReadAhead>) -> Result<Vec<(String, RefState)>, AwsError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let read_ahead: Option<Vec<TargetGroup>> = names.iter().map(|n| ahead.and_then(|a| a.target_group(n)).cloned()).collect();
    let read = match read_ahead {
        Some(found) => Some(found),
        None => describe_target_groups(aws, names).await?,
    };
    let found = match read {
        Some(found) => found,
        None if names.len() > 1 => {
            let mut found = Vec::new();
            for name in names {
                found.extend(describe_target_groups(aws, &[name]).await?.unwrap_or_default());
            }
            found
        }
        None => Vec::new(),
    };
    Ok(names
        .iter()
        .map(|name| {
            let state = match found.iter().find(|tg| tg.target_group_name.as_deref() == Some(name)) {
                Some(tg) => RefState::Found(tg.target_group_arn.clone()),
                None => RefState::Problem("does not exist (slipway references target groups, it does not create them)".into()),
            };
            (name.to_string(), state)
        })
        .collect())
}

/// `None` when any of them does not exist.
async fn describe_target_groups(aws: &Aws, names: &[&str]) -> Result<Option<Vec<TargetGroup>>, AwsError> {
    let described = aws
        .elb
        .describe_target_groups()
        .set_names(Some(names.iter().map(|n| n.to_string()).collect()))
        .send()
        .await
        .map_err(aws_err("elasticloadbalancing", "DescribeTargetGroups"));
    Ok(absent_if_not_found(described)?.map(|found| found.target_groups.unwrap_or_default()))
}

/// A load balancer's listeners by port; `None` when the load balancer does not exist.
async fn listeners_by_port(
    aws: &Aws,
    load_balancer: &str,
    ahead: Option<&ReadAhead>,
) -> Result<Option<HashMap<u16, Option<String>>>, AwsError> {
    let lb_arn = match ahead.and_then(|a| a.load_balancer(load_balancer)) {
        Some(read) => read.load_balancer_arn.clone(),
        None => {
            let found = absent_if_not_found(
                aws.elb
                    .describe_load_balancers()
                    .names(load_balancer)
                    .send()
                    .await
                    .map_err(aws_err("elasticloadbalancing", "DescribeLoadBalancers")),
            )?;
            found.and_then(|f| f.load_balancers.unwrap_or_default().into_iter().next()).and_then(|lb| lb.load_balancer_arn)
        }
    };
    let Some(lb_arn) = lb_arn else {
        return Ok(None);
    };
    let listeners = aws
        .elb
        .describe_listeners()
        .load_balancer_arn(lb_arn)
        .send()
        .await
        .map_err(aws_err("elasticloadbalancing", "DescribeListeners"))?;
    Ok(Some(
        listeners.listeners.unwrap_or_default().into_iter().filter_map(|l| Some((u16::try_from(l.port?).ok()?, l.listener_arn))).collect(),
    ))
}

/// A reference read on its own: the ECS service, a listener by ARN, CloudTrail's log bucket.
async fn observe_reference(aws: &Aws, reference: &Reference, ahead: Option<&ReadAhead>) -> Result<RefState, AwsError> {
    match reference {
        Reference::EcsService { cluster, service } => match ahead.and_then(|a| a.service(cluster, service)) {
            Some(found) => Ok(usable_service(aws, cluster, service, found.clone(), ahead.map_or_else(Instant::now, ReadAhead::read_at))),
            None => ecs_service(aws, cluster, service).await,
        },
        Reference::Listener(ListenerKey::Arn(arn)) => {
            let found = absent_if_not_found(
                aws.elb.describe_listeners().listener_arns(arn).send().await.map_err(aws_err("elasticloadbalancing", "DescribeListeners")),
            )?;
            Ok(match found.and_then(|f| f.listeners.unwrap_or_default().into_iter().next()) {
                Some(_) => RefState::Found(Some(arn.clone())),
                None => RefState::Problem("does not exist".into()),
            })
        }
        Reference::Bucket(name) => {
            let found = absent_if_not_found(aws.s3.head_bucket().bucket(name).send().await.map_err(aws_err("s3", "HeadBucket")))?;
            Ok(match found {
                Some(_) => RefState::Found(None),
                None => RefState::Problem("does not exist (CloudTrail needs it for its logs)".into()),
            })
        }
        Reference::TargetGroup(_) | Reference::Listener(ListenerKey::ByPort { .. }) => {
            unreachable!("target groups and listeners by port are read together, in observe_references")
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
    Ok(usable_service(aws, cluster, service, found, Instant::now()))
}

/// A service found (read at `read_at`): usable when CodeDeploy controls its deployments.
/// Remembered for the delivery check that follows in the same pass, while fresh.
fn usable_service(aws: &Aws, cluster: &str, service: &str, found: Service, read_at: Instant) -> RefState {
    let controller = found.deployment_controller.map(|c| c.r#type).unwrap_or(DeploymentControllerType::Ecs);
    if controller != DeploymentControllerType::CodeDeploy {
        return RefState::Problem(format!(
            "uses the {} deployment controller; CodeDeploy blue/green needs a service created with `deploymentController: CODE_DEPLOY` (it cannot be changed on an existing service)",
            controller.as_str()
        ));
    }
    aws.recent_services.remember(cluster, service, found.task_definition, read_at);
    RefState::Found(found.service_arn)
}
