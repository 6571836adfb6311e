//! Resources a pipeline uses but slipway does not create: observed, never changed.

use std::fmt;

/// Something a pipeline uses but slipway does not create.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reference {
    /// Must exist and use the CODE_DEPLOY deployment controller.
    EcsService {
        cluster: String,
        service: String,
    },
    TargetGroup(String),
    Listener(ListenerKey),
    /// CloudTrail's log bucket.
    Bucket(String),
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
            Reference::EcsService { cluster, service } => write!(f, "ECS service {cluster}/{service}"),
            Reference::TargetGroup(name) => write!(f, "target group {name}"),
            Reference::Listener(ListenerKey::Arn(arn)) => write!(f, "listener {arn}"),
            Reference::Listener(ListenerKey::ByPort { load_balancer, port }) => {
                write!(f, "listener on port {port} of load balancer {load_balancer}")
            }
            Reference::Bucket(name) => write!(f, "S3 bucket {name}"),
        }
    }
}
