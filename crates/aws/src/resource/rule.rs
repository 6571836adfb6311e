//! Adapter: EventBridge rule and its target: starts the pipeline on an ECR push of the watched tag, or
//! on a CloudTrail-recorded write to the source object.

use serde_json::Value;

use crate::ahead::ReadAhead;
use crate::tags::swept_or;
use crate::{Aws, AwsError, absent_if_not_found, aws_err};
use aws_sdk_eventbridge::types::{RuleState, Tag, Target};
use slipway_core::resource::rule::{RuleSpec, TargetSpec, canonical_pattern};
use slipway_core::resource::{Live, Spec, Tags};

/// The rule's pattern, state and description: from the pass's listing when it holds the rule,
/// otherwise `DescribeRule`. Either answer is read into the same shape.
async fn describe(aws: &Aws, name: &str, ahead: Option<&ReadAhead>) -> Result<Option<Described>, AwsError> {
    if let Some(listed) = ahead.and_then(|a| a.rule(name)) {
        return Ok(Some(Described {
            arn: listed.arn.clone(),
            event_pattern: listed.event_pattern.clone(),
            state: listed.state.clone(),
            description: listed.description.clone(),
        }));
    }
    let described = absent_if_not_found(aws.events.describe_rule().name(name).send().await.map_err(aws_err("events", "DescribeRule")))?;
    Ok(described.map(|r| Described { arn: r.arn, event_pattern: r.event_pattern, state: r.state, description: r.description }))
}

/// What `DescribeRule` and `ListRules` both say of a rule.
struct Described {
    arn: Option<String>,
    event_pattern: Option<String>,
    state: Option<RuleState>,
    description: Option<String>,
}

pub(crate) async fn read(aws: &Aws, name: &str, ahead: Option<&ReadAhead>) -> Result<Option<Live>, AwsError> {
    let Some(rule) = describe(aws, name, ahead).await? else {
        return Ok(None);
    };
    let targets = aws.events.list_targets_by_rule().rule(name).send().await.map_err(aws_err("events", "ListTargetsByRule"))?;
    let mut targets: Vec<TargetSpec> =
        targets.targets.unwrap_or_default().into_iter().map(|t| TargetSpec { id: t.id, arn: t.arn, role_arn: t.role_arn }).collect();
    targets.sort_by(|a, b| a.id.cmp(&b.id));
    let arn = rule.arn.clone().unwrap_or_else(|| aws.arn("events", &format!("rule/{name}")));
    let tags = swept_or(ahead.and_then(ReadAhead::tags), &arn, async {
        let listed =
            aws.events.list_tags_for_resource().resource_arn(&arn).send().await.map_err(aws_err("events", "ListTagsForResource"))?;
        Ok(listed.tags.unwrap_or_default().into_iter().map(|t| (t.key, t.value)).collect())
    })
    .await?;
    let pattern = rule
        .event_pattern
        .as_deref()
        .map(|p| serde_json::from_str(p).unwrap_or_else(|_| Value::String(p.to_owned())))
        .unwrap_or(Value::Null);
    Ok(Some(Live {
        spec: Spec::Rule(RuleSpec {
            event_pattern: canonical_pattern(pattern),
            state: rule.state.map(|s| s.as_str().to_owned()).unwrap_or_default(),
            description: rule.description.unwrap_or_default(),
            targets,
        }),
        tags,
    }))
}

fn sdk_tags(tags: &Tags) -> Vec<Tag> {
    tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build().expect("key and value set")).collect()
}

async fn put_rule(aws: &Aws, name: &str, spec: &RuleSpec, tags: Option<&Tags>) -> Result<(), AwsError> {
    aws.events
        .put_rule()
        .name(name)
        .event_pattern(spec.event_pattern.to_string())
        .state(RuleState::from(spec.state.as_str()))
        .description(&spec.description)
        .set_tags(tags.map(sdk_tags))
        .send()
        .await
        .map_err(aws_err("events", "PutRule"))?;
    Ok(())
}

async fn put_targets(aws: &Aws, name: &str, targets: &[TargetSpec]) -> Result<(), AwsError> {
    let targets: Vec<Target> = targets
        .iter()
        .map(|t| Target::builder().id(&t.id).arn(&t.arn).set_role_arn(t.role_arn.clone()).build().expect("id and arn set"))
        .collect();
    let out = aws.events.put_targets().rule(name).set_targets(Some(targets)).send().await.map_err(aws_err("events", "PutTargets"))?;
    if out.failed_entry_count > 0 {
        let why = out.failed_entries.unwrap_or_default().into_iter().filter_map(|e| e.error_message).collect::<Vec<_>>().join("; ");
        return Err(AwsError::refused("events", "PutTargets", format!("{} target(s) were refused: {why}", out.failed_entry_count)));
    }
    Ok(())
}

pub(crate) async fn create(aws: &Aws, name: &str, spec: &RuleSpec, tags: &Tags) -> Result<(), AwsError> {
    put_rule(aws, name, spec, Some(tags)).await?;
    put_targets(aws, name, &spec.targets).await
}

pub(crate) async fn update(aws: &Aws, name: &str, want: &RuleSpec, have: &RuleSpec) -> Result<(), AwsError> {
    if (&want.event_pattern, &want.state, &want.description) != (&have.event_pattern, &have.state, &have.description) {
        put_rule(aws, name, want, None).await?;
    }
    if want.targets != have.targets {
        let stale: Vec<String> = have.targets.iter().filter(|t| !want.targets.iter().any(|w| w.id == t.id)).map(|t| t.id.clone()).collect();
        if !stale.is_empty() {
            aws.events.remove_targets().rule(name).set_ids(Some(stale)).send().await.map_err(aws_err("events", "RemoveTargets"))?;
        }
        put_targets(aws, name, &want.targets).await?;
    }
    Ok(())
}

pub(crate) async fn tag(aws: &Aws, name: &str, tags: &Tags) -> Result<(), AwsError> {
    let arn = aws.arn("events", &format!("rule/{name}"));
    aws.events.tag_resource().resource_arn(arn).set_tags(Some(sdk_tags(tags))).send().await.map_err(aws_err("events", "TagResource"))?;
    Ok(())
}

pub(crate) async fn delete(aws: &Aws, name: &str) -> Result<(), AwsError> {
    let targets = aws.events.list_targets_by_rule().rule(name).send().await.map_err(aws_err("events", "ListTargetsByRule"))?;
    let ids: Vec<String> = targets.targets.unwrap_or_default().into_iter().map(|t| t.id).collect();
    if !ids.is_empty() {
        aws.events.remove_targets().rule(name).set_ids(Some(ids)).send().await.map_err(aws_err("events", "RemoveTargets"))?;
    }
    aws.events.delete_rule().name(name).send().await.map_err(aws_err("events", "DeleteRule"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patterns_compare_equal_whatever_the_order_of_keys_and_values() {
        let a = canonical_pattern(json!({"detail": {"eventName": ["PutObject", "CopyObject"]}, "source": ["aws.s3"]}));
        let b = canonical_pattern(
            serde_json::from_str(r#"{ "source":["aws.s3"], "detail":{"eventName":["CopyObject","PutObject"]} }"#).unwrap(),
        );
        assert_eq!(a, b);
    }
}
