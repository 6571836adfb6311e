//! Observe: read the live state of exactly the resources a pipeline names, and check the
//! resources it references. Reads only; never a write.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use futures::future::join_all;

use aws_sdk_ecs::types::{DeploymentControllerType, Service};
use aws_sdk_elasticloadbalancingv2::types::TargetGroup;
use slipway_core::compile::DesiredPipeline;
use slipway_core::plan::{Observed, RefState};
use slipway_core::resource::reference::{ListenerKey, Reference, ServiceUse};

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
        Reference::EcsService { cluster, service, used_by } => match ahead.and_then(|a| a.service(cluster, service)) {
            Some(found) => {
                Ok(usable_service(aws, cluster, service, *used_by, found.clone(), ahead.map_or_else(Instant::now, ReadAhead::read_at)))
            }
            None => ecs_service(aws, cluster, service, *used_by).await,
        },
        Reference::ListenerRule { arn, target_groups, alone, .. } => listener_rule(aws, arn, target_groups, *alone).await,
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

/// A listener rule ECS moves traffic on: it must exist and forward to both target groups (the
/// production rule with no test rule) or to at least one of them. Target groups are matched by
/// the name in their ARN (`…:targetgroup/<name>/<id>`).
async fn listener_rule(aws: &Aws, arn: &str, target_groups: &[String; 2], alone: bool) -> Result<RefState, AwsError> {
    let found = absent_if_not_found(
        aws.elb.describe_rules().rule_arns(arn).send().await.map_err(aws_err("elasticloadbalancing", "DescribeRules")),
    )?;
    let Some(rule) = found.and_then(|f| f.rules.unwrap_or_default().into_iter().next()) else {
        return Ok(RefState::Problem("does not exist".into()));
    };
    let mut forwards_to: Vec<String> = Vec::new();
    for action in rule.actions.unwrap_or_default().into_iter().filter(|a| a.r#type.as_ref().is_some_and(|t| t.as_str() == "forward")) {
        forwards_to.extend(action.target_group_arn.clone());
        let weighted = action.forward_config.and_then(|f| f.target_groups).unwrap_or_default();
        forwards_to.extend(weighted.into_iter().filter_map(|t| t.target_group_arn));
    }
    let names: Vec<&str> = forwards_to.iter().filter_map(|a| a.split("targetgroup/").nth(1)?.split('/').next()).collect();
    let missing: Vec<&str> = target_groups.iter().map(String::as_str).filter(|tg| !names.contains(tg)).collect();
    let problem = match (alone, missing.len()) {
        (true, 0) | (false, 0 | 1) => None,
        (true, _) => Some(format!(
            "does not forward to {}: with no test listener rule ECS moves production traffic by weight between both target groups, so the rule must forward to {} and {} (weights 100 and 0)",
            missing.join(" and "),
            target_groups[0],
            target_groups[1]
        )),
        (false, _) => Some(format!("forwards to neither {} nor {}", target_groups[0], target_groups[1])),
    };
    Ok(match problem {
        Some(problem) => RefState::Problem(problem),
        None => RefState::Found(Some(arn.to_string())),
    })
}

async fn ecs_service(aws: &Aws, cluster: &str, service: &str, used_by: ServiceUse) -> Result<RefState, AwsError> {
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
    Ok(usable_service(aws, cluster, service, used_by, found, Instant::now()))
}

/// A service found (read at `read_at`): usable by CodeDeploy when CodeDeploy controls its
/// deployments; by ECS when ECS does, or CodeDeploy does (slipway migrates it: plan shows the
/// switch). Remembered for the delivery check that follows in the same pass, while fresh.
fn usable_service(aws: &Aws, cluster: &str, service: &str, used_by: ServiceUse, found: Service, read_at: Instant) -> RefState {
    let controller = found.deployment_controller.as_ref().map(|c| c.r#type.clone()).unwrap_or(DeploymentControllerType::Ecs);
    let problem = match (used_by, &controller) {
        (ServiceUse::CodeDeploy, DeploymentControllerType::CodeDeploy) => None,
        (ServiceUse::CodeDeploy, other) => Some(format!(
            "uses the {} deployment controller; strategy `codedeploy` needs a service with `deploymentController: CODE_DEPLOY` (or deploy it with an ECS strategy: README, Deploy strategies)",
            other.as_str()
        )),
        (ServiceUse::Ecs, DeploymentControllerType::Ecs | DeploymentControllerType::CodeDeploy) => None,
        (ServiceUse::Ecs, other) => Some(format!(
            "uses the {} deployment controller; an ECS strategy needs the ECS (or CODE_DEPLOY, to migrate) controller",
            other.as_str()
        )),
    };
    if let Some(problem) = problem {
        return RefState::Problem(problem);
    }
    aws.recent_services.remember(cluster, service, found.task_definition, read_at);
    RefState::Found(found.service_arn)
}
