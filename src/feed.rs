//! The change feed's task (`slipway run --change-events`; what and why: `slipway_core::change`).
//! It sets up the queue and the rule (`slipway_aws::changes::ensure`), long-polls the queue, reads
//! each message into a [`Change`], hands the changes to the loop, and deletes the messages. Its own
//! writes come back as events too: those are dropped here (the pass that made them verifies them).
//!
//! The loop hears [`FeedSignal::Up`] when the feed works and [`FeedSignal::Down`] with the reason
//! when it does not (once per reason, not once per retry), and checks every pipeline on the
//! drift interval until it is back. A queue deleted under it is created again.

use std::sync::Arc;
use std::time::Duration;

use slipway_aws::Aws;
use slipway_aws::changes::{self, Feed, Message};
use slipway_core::change::{Change, ChangeOutcome, read};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::metrics::Metrics;

/// What the feed tells the loop.
#[derive(Debug)]
pub(crate) enum FeedSignal {
    /// The queue and the rule are in place and being read.
    Up { queue: String },
    /// The feed cannot be set up or read, and why; it keeps trying.
    Down(String),
    /// Write calls on resources some pipeline may own.
    Changes(Vec<Change>),
}

/// The first retry after a failure; doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Starts the feed; it stops when the receiver is dropped.
pub(crate) fn spawn(aws: Aws, name: String, metrics: Arc<Metrics>) -> mpsc::Receiver<FeedSignal> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move { run(&aws, &name, &metrics, &tx).await });
    rx
}

/// Whether the loop still listens.
type Sent = bool;

async fn run(aws: &Aws, name: &str, metrics: &Metrics, tx: &mpsc::Sender<FeedSignal>) {
    let mut backoff = FIRST_BACKOFF;
    let mut last_down: Option<String> = None;
    loop {
        let feed = match changes::ensure(aws, name, changes::Purpose::Changes).await {
            Ok(feed) => feed,
            Err(err) => {
                if !down(tx, &mut last_down, format!("setting up the queue and rule {name}: {err}")).await {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = FIRST_BACKOFF;
        last_down = None;
        if tx.send(FeedSignal::Up { queue: feed.queue_url.clone() }).await.is_err() {
            return;
        }
        loop {
            match changes::receive(aws, &feed).await {
                Ok(messages) => {
                    backoff = FIRST_BACKOFF;
                    // Read again after a failed read: up again.
                    if last_down.take().is_some() && tx.send(FeedSignal::Up { queue: feed.queue_url.clone() }).await.is_err() {
                        return;
                    }
                    if !hand_over(aws, &feed, metrics, tx, &messages).await {
                        return;
                    }
                }
                // The queue (or the rule's target) was deleted: set it up again.
                Err(err) if err.is_not_found() => {
                    if !down(tx, &mut last_down, format!("reading {name}: {err}")).await {
                        return;
                    }
                    break;
                }
                Err(err) => {
                    if !down(tx, &mut last_down, format!("reading {name}: {err}")).await {
                        return;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// Tells the loop the feed is down, unless it already knows this reason.
async fn down(tx: &mpsc::Sender<FeedSignal>, last: &mut Option<String>, reason: String) -> Sent {
    if last.as_deref() == Some(reason.as_str()) {
        return !tx.is_closed();
    }
    *last = Some(reason.clone());
    tx.send(FeedSignal::Down(reason)).await.is_ok()
}

/// Reads the messages, sends the loop the changes it must look at, then deletes them all: a
/// message slipway cannot use would otherwise come back forever.
async fn hand_over(aws: &Aws, feed: &Feed, metrics: &Metrics, tx: &mpsc::Sender<FeedSignal>, messages: &[Message]) -> Sent {
    let mut changes = Vec::new();
    for message in messages {
        match read(&message.body) {
            Ok(Some(change)) if change.actor.is_some() && change.actor == aws.caller => {
                debug!(call = %change.call, source = %change.source, "change event of slipway's own write");
                metrics.record_change(ChangeOutcome::OwnWrite);
            }
            Ok(Some(change)) => changes.push(change),
            Ok(None) => metrics.record_change(ChangeOutcome::Ignored),
            Err(err) => {
                warn!(message = %message.id, error = %err, "a message of the change queue that is not a change event; deleted");
                metrics.record_change(ChangeOutcome::Ignored);
            }
        }
    }
    if !changes.is_empty() && tx.send(FeedSignal::Changes(changes)).await.is_err() {
        return false;
    }
    if let Err(err) = changes::delete(aws, feed, messages).await {
        warn!(error = %err, "failed to delete messages of the change queue; they come back and re-check their pipelines once more");
    }
    true
}
