//! Resources a pipeline uses but slipway does not create: observed, never changed.

use std::fmt;

/// Something a pipeline uses but slipway does not create.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reference {
    /// Must exist; with `codedeploy` it must use the CODE_DEPLOY deployment controller.
    EcsService {
        cluster: String,
        service: String,
        used_by: ServiceUse,
    },
    TargetGroup(String),
    Listener(ListenerKey),
    /// An ALB listener rule, by ARN (ECS strategies). Without a test rule the production rule
    /// must forward to both target groups (ECS moves the weights between them); with one, each
    /// rule must forward to at least one of them (AWS's migration guide).
    ListenerRule {
        arn: String,
        target_groups: [String; 2],
        production: bool,
        /// The production rule with no test rule beside it.
        alone: bool,
    },
    /// CloudTrail's log bucket.
    Bucket(String),
}

/// Who deploys to a referenced ECS service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceUse {
    /// CodeDeploy: the service must have been created with the CODE_DEPLOY controller.
    CodeDeploy,
    /// ECS itself: slipway switches the controller to ECS (a CODE_DEPLOY service migrates).
    Ecs,
}

/// A load balancer listener, by ARN or by load balancer name and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ListenerKey {
    Arn(String),
    ByPort { load_balancer: String, port: u16 },
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::EcsService { cluster, service, .. } => write!(f, "ECS service {cluster}/{service}"),
            Reference::TargetGroup(name) => write!(f, "target group {name}"),
            Reference::Listener(ListenerKey::Arn(arn)) => write!(f, "listener {arn}"),
            Reference::Listener(ListenerKey::ByPort { load_balancer, port }) => {
                write!(f, "listener on port {port} of load balancer {load_balancer}")
            }
            Reference::ListenerRule { arn, production, .. } => {
                write!(f, "{} listener rule {arn}", if *production { "production" } else { "test" })
            }
            Reference::Bucket(name) => write!(f, "S3 bucket {name}"),
        }
    }
}
