//! ECR repository: tag mutability, scan on push, and the lifecycle policy that expires untagged
//! images (both seeds: `latest` moves, the old image becomes untagged and goes after a day).

use serde::Serialize;
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EcrSpec {
    pub image_tag_mutability: String,
    pub scan_on_push: bool,
    /// Compared as a JSON value, so key order and whitespace never show as a change.
    pub lifecycle_policy: Value,
}

/// The seeds' rule: untagged images expire `days` after they were pushed.
pub(crate) fn untagged_expiry_policy(days: u32) -> Value {
    json!({"rules": [{
        "rulePriority": 1,
        "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": days},
        "action": {"type": "expire"}
    }]})
}
