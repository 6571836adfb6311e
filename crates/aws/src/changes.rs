//! Adapter: the installation's queues, each fed by one EventBridge rule on the default bus
//! ([`Purpose`]): the change feed (`--change-events`, what and why: `slipway_core::change`) and
//! the trigger queue (`--trigger-route queue`, `slipway_core::trigger`). A queue and its rule
//! share one name (`--change-events-name`, default [`DEFAULT_NAME`]; `--trigger-queue`) and are
//! owned by this installation: tagged as slipway's and with [`TAG_INSTALLATION`] naming the
//! inventory's state bucket, so two installations in one account never read each other's queue,
//! and a queue or rule of that name that someone else made is refused, never changed. They belong
//! to no pipeline and are not in the inventory: prune never deletes them. Nothing here deletes
//! them either (`aws sqs delete-queue` and `aws events delete-rule` do, once unused).
//!
//! [`ensure`] reads both and writes only what differs (so a restart costs reads, not writes). A
//! queue encrypts at rest with SQS-managed keys and lets only its rule send to it
//! (`aws:SourceArn`); the change queue keeps a message a day (a restarted controller checks
//! everything anyway), the trigger queue 4 days (a trigger waits while slipway is down).

use std::collections::HashMap;

use aws_sdk_eventbridge::types::{RuleState, Tag, Target};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, QueueAttributeName};
use serde_json::{Value, json};
use slipway_core::change::rule_pattern;
use slipway_core::resource::rule::canonical_pattern;
use slipway_core::resource::{MANAGED_BY_VALUE, TAG_INSTALLATION, TAG_MANAGED_BY};

use crate::{Aws, AwsError, absent_if_not_found, aws_err};

/// The queue's and the rule's name unless told otherwise.
pub const DEFAULT_NAME: &str = "slipway-changes";
/// The rule's one target.
const TARGET_ID: &str = "slipway-changes-queue";

/// What a queue carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Write calls on the resources slipway manages (`--change-events`).
    Changes,
    /// The events that start pipelines (`--trigger-route queue`).
    Triggers,
}

impl Purpose {
    fn pattern(self) -> Value {
        match self {
            Purpose::Changes => rule_pattern(),
            Purpose::Triggers => slipway_core::trigger::rule_pattern(),
        }
    }

    fn description(self) -> &'static str {
        match self {
            Purpose::Changes => DESCRIPTION,
            Purpose::Triggers => "slipway --trigger-route queue: ECR pushes and S3 writes that may start a pipeline, to its queue",
        }
    }

    fn retention_seconds(self) -> u32 {
        match self {
            Purpose::Changes => RETENTION_SECONDS,
            Purpose::Triggers => 4 * RETENTION_SECONDS,
        }
    }

    /// The policy statement's id.
    fn sid(self) -> &'static str {
        match self {
            Purpose::Changes => "TheChangeRuleSendsToThisQueue",
            Purpose::Triggers => "TheTriggerRuleSendsToThisQueue",
        }
    }

    /// The setting that names the queue.
    fn setting(self) -> &'static str {
        match self {
            Purpose::Changes => "--change-events-name",
            Purpose::Triggers => "--trigger-queue",
        }
    }
}
/// The longest long poll SQS allows.
pub const WAIT_SECONDS: i32 = 20;
/// How long an unread message is kept: a day.
const RETENTION_SECONDS: u32 = 86_400;
const DESCRIPTION: &str = "slipway --change-events: write calls on the resources slipway manages, to its queue";

/// The feed as [`ensure`] left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feed {
    pub queue_url: String,
    pub queue_arn: String,
    pub rule: String,
    pub rule_arn: String,
}

/// One message of the queue.
#[derive(Debug, Clone)]
pub struct Message {
    pub id: String,
    pub receipt: String,
    pub body: String,
}

/// The tags that make the feed this installation's.
fn ownership(aws: &Aws) -> HashMap<String, String> {
    HashMap::from([(TAG_MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()), (TAG_INSTALLATION.to_owned(), aws.inventory.bucket.clone())])
}

/// Refuses a queue or rule that exists without this installation's tags.
fn check_owned(
    what: &'static str,
    operation: &'static str,
    name: &str,
    tags: &HashMap<String, String>,
    aws: &Aws,
    purpose: Purpose,
) -> Result<(), AwsError> {
    let ours = ownership(aws).iter().all(|(k, v)| tags.get(k) == Some(v));
    if ours {
        return Ok(());
    }
    let service = if what == "queue" { "sqs" } else { "events" };
    Err(AwsError::refused(
        service,
        operation,
        format!(
            "the {what} {name} exists but is not this installation's (its {TAG_INSTALLATION} tag is {:?}, this installation's state bucket is {}); slipway changes nothing it does not own: pass another {}",
            tags.get(TAG_INSTALLATION),
            aws.inventory.bucket,
            purpose.setting()
        ),
    ))
}

/// Creates or repairs the queue and the rule; reads both, writes only what differs.
pub async fn ensure(aws: &Aws, name: &str, purpose: Purpose) -> Result<Feed, AwsError> {
    let queue_arn = aws.arn("sqs", name);
    let rule_arn = aws.arn("events", &format!("rule/{name}"));
    let queue_url = ensure_queue(aws, name, &queue_arn, &rule_arn, purpose).await?;
    ensure_rule(aws, name, &queue_arn, purpose).await?;
    Ok(Feed { queue_url, queue_arn, rule: name.to_owned(), rule_arn })
}

/// The attributes slipway sets on the queue.
fn queue_attributes(queue_arn: &str, rule_arn: &str, purpose: Purpose) -> HashMap<QueueAttributeName, String> {
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": purpose.sid(),
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
        }],
    });
    HashMap::from([
        (QueueAttributeName::Policy, policy.to_string()),
        (QueueAttributeName::MessageRetentionPeriod, purpose.retention_seconds().to_string()),
        (QueueAttributeName::ReceiveMessageWaitTimeSeconds, WAIT_SECONDS.to_string()),
        (QueueAttributeName::SqsManagedSseEnabled, "true".to_owned()),
    ])
}

/// Whether a live attribute holds what slipway sets: the policy compared as JSON.
fn same_attribute(name: &QueueAttributeName, want: &str, have: Option<&String>) -> bool {
    let Some(have) = have else { return false };
    if *name == QueueAttributeName::Policy {
        return serde_json::from_str::<Value>(want).ok() == serde_json::from_str::<Value>(have).ok();
    }
    want == have
}

async fn ensure_queue(aws: &Aws, name: &str, queue_arn: &str, rule_arn: &str, purpose: Purpose) -> Result<String, AwsError> {
    let want = queue_attributes(queue_arn, rule_arn, purpose);
    let found = absent_if_not_found(aws.sqs.get_queue_url().queue_name(name).send().await.map_err(aws_err("sqs", "GetQueueUrl")))?;
    let Some(url) = found.and_then(|f| f.queue_url) else {
        let created = aws
            .sqs
            .create_queue()
            .queue_name(name)
            .set_attributes(Some(want))
            .set_tags(Some(ownership(aws)))
            .send()
            .await
            .map_err(aws_err("sqs", "CreateQueue"))?;
        return created.queue_url.ok_or_else(|| AwsError::refused("sqs", "CreateQueue", "SQS answered without the queue's URL"));
    };
    let tags = aws.sqs.list_queue_tags().queue_url(&url).send().await.map_err(aws_err("sqs", "ListQueueTags"))?;
    check_owned("queue", "ListQueueTags", name, &tags.tags.unwrap_or_default(), aws, purpose)?;
    let live = aws
        .sqs
        .get_queue_attributes()
        .queue_url(&url)
        .set_attribute_names(Some(want.keys().cloned().collect()))
        .send()
        .await
        .map_err(aws_err("sqs", "GetQueueAttributes"))?
        .attributes
        .unwrap_or_default();
    let differing: HashMap<QueueAttributeName, String> =
        want.into_iter().filter(|(attribute, value)| !same_attribute(attribute, value, live.get(attribute))).collect();
    if !differing.is_empty() {
        aws.sqs
            .set_queue_attributes()
            .queue_url(&url)
            .set_attributes(Some(differing))
            .send()
            .await
            .map_err(aws_err("sqs", "SetQueueAttributes"))?;
    }
    Ok(url)
}

async fn ensure_rule(aws: &Aws, name: &str, queue_arn: &str, purpose: Purpose) -> Result<(), AwsError> {
    let pattern = purpose.pattern();
    let found = absent_if_not_found(aws.events.describe_rule().name(name).send().await.map_err(aws_err("events", "DescribeRule")))?;
    let same = match &found {
        None => false,
        Some(rule) => {
            let arn = rule.arn.clone().unwrap_or_else(|| aws.arn("events", &format!("rule/{name}")));
            let listed =
                aws.events.list_tags_for_resource().resource_arn(&arn).send().await.map_err(aws_err("events", "ListTagsForResource"))?;
            let tags: HashMap<String, String> = listed.tags.unwrap_or_default().into_iter().map(|t| (t.key, t.value)).collect();
            check_owned("rule", "ListTagsForResource", name, &tags, aws, purpose)?;
            let live = rule.event_pattern.as_deref().and_then(|p| serde_json::from_str(p).ok()).map(canonical_pattern);
            live == Some(canonical_pattern(pattern.clone()))
                && rule.state == Some(RuleState::Enabled)
                && rule.description.as_deref() == Some(purpose.description())
        }
    };
    if !same {
        let tags = found
            .is_none()
            .then(|| ownership(aws).into_iter().map(|(k, v)| Tag::builder().key(k).value(v).build().expect("key and value set")).collect());
        aws.events
            .put_rule()
            .name(name)
            .event_pattern(pattern.to_string())
            .state(RuleState::Enabled)
            .description(purpose.description())
            .set_tags(tags)
            .send()
            .await
            .map_err(aws_err("events", "PutRule"))?;
    }
    let targets = aws.events.list_targets_by_rule().rule(name).send().await.map_err(aws_err("events", "ListTargetsByRule"))?;
    let targets = targets.targets.unwrap_or_default();
    if targets.len() == 1 && targets[0].id == TARGET_ID && targets[0].arn == queue_arn {
        return Ok(());
    }
    let stale: Vec<String> = targets.into_iter().map(|t| t.id).filter(|id| id != TARGET_ID).collect();
    if !stale.is_empty() {
        aws.events.remove_targets().rule(name).set_ids(Some(stale)).send().await.map_err(aws_err("events", "RemoveTargets"))?;
    }
    let target = Target::builder().id(TARGET_ID).arn(queue_arn).build().expect("id and arn set");
    let out = aws.events.put_targets().rule(name).targets(target).send().await.map_err(aws_err("events", "PutTargets"))?;
    if out.failed_entry_count > 0 {
        let why = out.failed_entries.unwrap_or_default().into_iter().filter_map(|e| e.error_message).collect::<Vec<_>>().join("; ");
        return Err(AwsError::refused("events", "PutTargets", format!("the queue target was refused: {why}")));
    }
    Ok(())
}

/// Waits up to [`WAIT_SECONDS`] for up to 10 messages.
pub async fn receive(aws: &Aws, feed: &Feed) -> Result<Vec<Message>, AwsError> {
    let out = aws
        .sqs
        .receive_message()
        .queue_url(&feed.queue_url)
        .wait_time_seconds(WAIT_SECONDS)
        .max_number_of_messages(10)
        .send()
        .await
        .map_err(aws_err("sqs", "ReceiveMessage"))?;
    Ok(out
        .messages
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| Some(Message { id: m.message_id?, receipt: m.receipt_handle?, body: m.body.unwrap_or_default() }))
        .collect())
}

/// Deletes messages once their changes are handed over.
pub async fn delete(aws: &Aws, feed: &Feed, messages: &[Message]) -> Result<(), AwsError> {
    if messages.is_empty() {
        return Ok(());
    }
    let entries: Vec<DeleteMessageBatchRequestEntry> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            DeleteMessageBatchRequestEntry::builder().id(i.to_string()).receipt_handle(&m.receipt).build().expect("id and handle")
        })
        .collect();
    let out = aws
        .sqs
        .delete_message_batch()
        .queue_url(&feed.queue_url)
        .set_entries(Some(entries))
        .send()
        .await
        .map_err(aws_err("sqs", "DeleteMessageBatch"))?;
    match out.failed.first() {
        // Delivered again after the visibility timeout: the pipeline is re-checked once more.
        Some(failed) => {
            Err(AwsError::refused("sqs", "DeleteMessageBatch", format!("{} message(s) not deleted: {}", out.failed.len(), failed.code)))
        }
        None => Ok(()),
    }
}
