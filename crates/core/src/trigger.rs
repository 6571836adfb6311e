//! How a trigger reaches its pipeline. With the default route, [`TriggerRoute::Rules`], each
//! trigger is an EventBridge rule of its own targeting the pipeline: simple, and nothing of
//! slipway has to run, but a seed-000 pipeline takes 2 of the 300 rules a bus allows (100 in some
//! Regions), and one rule cannot carry more pipelines (5 targets per rule). Past ~150 pipelines,
//! [`TriggerRoute::Queue`]: one rule of the installation ([`rule_pattern`]) sends every event a
//! trigger could match to one SQS queue, and `slipway run` reads it and starts the pipelines
//! whose triggers match ([`TriggerIndex`]). Durable: events wait in the queue (4 days) while
//! slipway is down. The triggers keep the patterns their rules would have had, matched here as
//! EventBridge would ([`matches`]).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

labels! {
    /// How triggers reach their pipelines (`--trigger-route`).
    #[derive(Default)]
    pub enum TriggerRoute {
        /// One EventBridge rule per trigger, targeting the pipeline.
        #[default]
        Rules = "rules",
        /// One rule of the installation to one queue that `slipway run` reads.
        Queue = "queue",
    }
}

/// The queue's and its rule's name unless told otherwise.
pub const DEFAULT_QUEUE: &str = "slipway-triggers";

/// The installation rule's pattern: every event some trigger can match (a push to ECR, an object
/// written as S3 tells it, an object written as a trail records it). Which pipeline it starts,
/// if any, is decided by [`TriggerIndex`]: the pattern names no repository or bucket, so it
/// stays far below EventBridge's 2,048 characters at any number of pipelines.
pub fn rule_pattern() -> Value {
    json!({"$or": [
        {"source": ["aws.ecr"], "detail-type": ["ECR Image Action"], "detail": {"action-type": ["PUSH"], "result": ["SUCCESS"]}},
        {"source": ["aws.s3"], "detail-type": ["Object Created"]},
        {
            "source": ["aws.s3"],
            "detail-type": ["AWS API Call via CloudTrail"],
            "detail": {"eventSource": ["s3.amazonaws.com"], "eventName": ["PutObject", "CompleteMultipartUpload", "CopyObject"]}
        }
    ]})
}

/// A pipeline's trigger carried by the queue: the pattern its own rule would have had.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedTrigger {
    /// The rule it replaces (`slipway-<pipeline>-ecr`): its name on the rules route.
    pub rule: String,
    /// The CodePipeline it starts.
    pub codepipeline: String,
    pub pattern: Value,
}

/// Which pipelines an event starts: the queued triggers of a revision's valid pipelines.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TriggerIndex {
    /// By slipway pipeline.
    pub triggers: BTreeMap<String, Vec<QueuedTrigger>>,
    /// Some manifest of the revision is broken: an event no trigger matches may be its pipeline's,
    /// so it is kept in the queue rather than dropped.
    pub incomplete: bool,
}

impl TriggerIndex {
    /// The CodePipelines `event` starts, each once.
    pub fn starts(&self, event: &Value) -> BTreeSet<&str> {
        self.triggers.values().flatten().filter(|t| matches(&t.pattern, event)).map(|t| t.codepipeline.as_str()).collect()
    }
}

/// Whether `event` matches an EventBridge `pattern` made of exact values: every field the
/// pattern names is in the event with one of the listed values (or, for a list in the event,
/// holds one of them), objects match field by field, and `$or` matches when one of its patterns
/// does. Other filters (`prefix`, `anything-but`, …) slipway's patterns never use; they never
/// match here.
pub fn matches(pattern: &Value, event: &Value) -> bool {
    let Value::Object(fields) = pattern else {
        return false;
    };
    fields.iter().all(|(key, want)| match (key.as_str(), want) {
        ("$or", Value::Array(any)) => any.iter().any(|p| matches(p, event)),
        (_, Value::Object(_)) => event.get(key).is_some_and(|have| matches(want, have)),
        (_, Value::Array(allowed)) => match event.get(key) {
            Some(Value::Array(values)) => values.iter().any(|v| allowed.contains(v)),
            Some(value) => allowed.contains(value),
            None => false,
        },
        _ => false,
    })
}

labels! {
    /// What became of one message of the trigger queue (the `outcome` label of
    /// `slipway_trigger_events_total`).
    pub enum TriggerOutcome {
        /// It started one or more pipelines.
        Started = "started",
        /// No trigger matches it (another repository's push, another object).
        Unmatched = "unmatched",
        /// No trigger matches it while a manifest is broken: left in the queue for later.
        Held = "held",
        /// Starting a pipeline failed: left in the queue, delivered again.
        Failed = "failed",
        /// Not an event.
        Invalid = "invalid",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(repository: &str, tag: &str) -> Value {
        json!({
            "version": "0", "source": "aws.ecr", "detail-type": "ECR Image Action", "account": "123456789012",
            "detail": {"action-type": "PUSH", "result": "SUCCESS", "repository-name": repository, "image-tag": tag}
        })
    }

    fn written(bucket: &str, key: &str) -> Value {
        json!({"source": "aws.s3", "detail-type": "Object Created", "detail": {"bucket": {"name": bucket}, "object": {"key": key}}})
    }

    #[test]
    fn exact_values_nested_fields_lists_and_or_match_as_eventbridge_matches_them() {
        let pattern = json!({"source": ["aws.ecr"], "detail": {"repository-name": ["web", "api"], "image-tag": ["latest"]}});
        assert!(matches(&pattern, &push("web", "latest")));
        assert!(matches(&pattern, &push("api", "latest")));
        assert!(!matches(&pattern, &push("web", "v2")), "one field differs");
        assert!(!matches(&pattern, &json!({"source": "aws.ecr"})), "a field the pattern names is missing");
        assert!(matches(&json!({"resources": ["b"]}), &json!({"resources": ["a", "b"]})), "a list in the event holds one");
        assert!(!matches(&json!({"detail": {"size": [{"numeric": [">", 1]}]}}), &json!({"detail": {"size": 2}})), "other filters");
        assert!(matches(&rule_pattern(), &push("anything", "any")));
        assert!(matches(&rule_pattern(), &written("any", "thing")));
        let cloudtrail = json!({"source": "aws.s3", "detail-type": "AWS API Call via CloudTrail",
            "detail": {"eventSource": "s3.amazonaws.com", "eventName": "PutObject"}});
        assert!(matches(&rule_pattern(), &cloudtrail));
        let failed =
            json!({"source": "aws.ecr", "detail-type": "ECR Image Action", "detail": {"action-type": "PUSH", "result": "FAILURE"}});
        assert!(!matches(&rule_pattern(), &failed));
        assert!(!matches(&rule_pattern(), &json!({"source": "aws.codepipeline", "detail-type": "Object Created"})));
        assert_eq!(rule_pattern().to_string().len(), 356, "the README says so; EventBridge allows 2,048");
    }

    #[test]
    fn an_event_starts_each_pipeline_whose_trigger_matches_once() {
        let trigger = |codepipeline: &str, pattern: Value| QueuedTrigger {
            rule: format!("slipway-{codepipeline}"),
            codepipeline: codepipeline.into(),
            pattern,
        };
        let index = TriggerIndex {
            triggers: BTreeMap::from([
                (
                    "web".to_string(),
                    vec![
                        trigger("web", json!({"source": ["aws.ecr"], "detail": {"repository-name": ["web"], "image-tag": ["latest"]}})),
                        trigger(
                            "web",
                            json!({"source": ["aws.s3"], "detail": {"bucket": {"name": ["web-src"]}, "object": {"key": ["s.zip"]}}}),
                        ),
                    ],
                ),
                ("api".to_string(), vec![trigger("api", json!({"source": ["aws.ecr"], "detail": {"repository-name": ["api"]}}))]),
            ]),
            incomplete: false,
        };
        assert_eq!(index.starts(&push("web", "latest")), BTreeSet::from(["web"]));
        assert_eq!(index.starts(&written("web-src", "s.zip")), BTreeSet::from(["web"]));
        assert_eq!(index.starts(&push("api", "anything")), BTreeSet::from(["api"]));
        assert!(index.starts(&push("other", "latest")).is_empty());
    }
}
