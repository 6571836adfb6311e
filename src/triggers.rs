//! The trigger queue's task (`slipway run --trigger-route queue`; what and why:
//! `slipway_core::trigger`). It sets up the queue and its rule (`slipway_aws::changes::ensure`),
//! waits for the loop's first revision (an event read before it would match nothing), then
//! long-polls the queue and starts each pipeline a batch's events trigger, once per batch. The
//! queue and its rule are looked at again every 5 minutes (a few reads), and repaired.
//!
//! A message is deleted once every pipeline it starts has started, or when no trigger matches
//! it; it stays in the queue (and comes back after SQS's visibility timeout) when a start fails,
//! or when nothing matches while a manifest of the revision is broken (it may be that pipeline's).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use slipway_aws::Aws;
use slipway_aws::changes::{self, Feed, Message, Purpose};
use slipway_core::delivery::api::Delivery;
use slipway_core::trigger::{TriggerIndex, TriggerOutcome};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::metrics::Metrics;

/// The first retry after a failure; doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How often the queue and its rule are set up again (read, and repaired where they differ).
const ENSURE_EVERY: Duration = Duration::from_secs(300);

/// The index the loop publishes: `None` until its first revision.
pub(crate) type IndexRx = watch::Receiver<Option<Arc<TriggerIndex>>>;

/// Starts the task; it ends when the loop drops the index's sender.
pub(crate) fn spawn(aws: Aws, name: String, metrics: Arc<Metrics>, index: IndexRx) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move { run(&aws, &name, &metrics, index).await })
}

async fn run(aws: &Aws, name: &str, metrics: &Metrics, mut index: IndexRx) {
    let mut backoff = FIRST_BACKOFF;
    let mut last_down: Option<String> = None;
    let mut reading = false;
    loop {
        let feed = match changes::ensure(aws, name, Purpose::Triggers).await {
            Ok(feed) => feed,
            Err(err) => {
                reading = false;
                down(&mut last_down, format!("setting up the queue and rule {name}: {err}"), metrics);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let ensured = Instant::now();
        if index.wait_for(Option::is_some).await.is_err() {
            return;
        }
        backoff = FIRST_BACKOFF;
        last_down = None;
        metrics.set_trigger_queue_up(true);
        if !reading {
            info!(queue = %feed.queue_url, "reading the trigger queue");
            reading = true;
        }
        // Until the queue and its rule are looked at again: a rule whose target someone removed
        // would otherwise deliver nothing, with no error to notice.
        while ensured.elapsed() < ENSURE_EVERY {
            match changes::receive(aws, &feed).await {
                Ok(messages) => {
                    if last_down.take().is_some() {
                        metrics.set_trigger_queue_up(true);
                        info!(queue = %feed.queue_url, "reading the trigger queue again");
                    }
                    let current = index.borrow().clone().unwrap_or_default();
                    start(aws, &feed, metrics, &current, &messages).await;
                }
                Err(err) => {
                    let gone = err.is_not_found();
                    down(&mut last_down, format!("reading {name}: {err}"), metrics);
                    if gone {
                        // The queue (or the rule's target) was deleted: set it up again.
                        reading = false;
                        break;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
            if index.has_changed().is_err() {
                return;
            }
        }
    }
}

/// Says the queue is down, once per reason.
fn down(last: &mut Option<String>, reason: String, metrics: &Metrics) {
    metrics.set_trigger_queue_up(false);
    if last.as_deref() != Some(reason.as_str()) {
        warn!(reason = %reason, "trigger queue down: triggers wait in the queue, no pipeline starts");
        *last = Some(reason);
    }
}

/// Starts what the messages trigger, each CodePipeline once, and deletes the messages that are done.
async fn start(aws: &Aws, feed: &Feed, metrics: &Metrics, index: &TriggerIndex, messages: &[Message]) {
    let mut wanted: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut done: Vec<Message> = Vec::new();
    let mut outcomes: Vec<(usize, BTreeSet<&str>)> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(&message.body) else {
            warn!(message = %message.id, "a message of the trigger queue that is not an event; deleted");
            metrics.record_trigger(TriggerOutcome::Invalid);
            done.push(message.clone());
            continue;
        };
        let starts = index.starts(&event);
        if starts.is_empty() {
            if index.incomplete {
                debug!(message = %message.id, "no trigger matches while a manifest is broken: left in the queue");
                metrics.record_trigger(TriggerOutcome::Held);
            } else {
                debug!(message = %message.id, "no trigger matches");
                metrics.record_trigger(TriggerOutcome::Unmatched);
                done.push(message.clone());
            }
            continue;
        }
        for pipeline in &starts {
            wanted.entry(pipeline).or_default().push(&message.id);
        }
        outcomes.push((i, starts));
    }
    let mut failed: BTreeSet<&str> = BTreeSet::new();
    for (pipeline, ids) in &wanted {
        match aws.start_execution(pipeline).await {
            Ok(execution) => info!(pipeline, execution = %execution, events = ids.len(), "started by a trigger"),
            Err(err) => {
                warn!(pipeline, error = %err, "failed to start the pipeline; its trigger stays in the queue and comes back");
                failed.insert(pipeline);
            }
        }
    }
    for (i, starts) in outcomes {
        if starts.iter().any(|p| failed.contains(p)) {
            metrics.record_trigger(TriggerOutcome::Failed);
        } else {
            metrics.record_trigger(TriggerOutcome::Started);
            done.push(messages[i].clone());
        }
    }
    if let Err(err) = changes::delete(aws, feed, &done).await {
        warn!(error = %err, "failed to delete messages of the trigger queue; they come back and may start their pipelines again");
    }
}
