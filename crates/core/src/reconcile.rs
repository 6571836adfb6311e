//! The reconcile contract, after kube-runtime's: a reconcile of one pipeline ends in
//! `Result<`[`Reconciled`]`, `[`ReconcileError`]`>`; the loop asks [`requeue`] (success) or
//! [`error_policy`] (failure) for the [`Action`] that says when to look at the pipeline again.
//! The error keeps the [`ErrorKind`] of the call that failed until here, where the retry is
//! decided; nothing on the way turns it into text.
//!
//! AWS has no watch, so every success requeues after the drift interval (sooner while a
//! deployment runs, a push awaits its pipeline, or a pass that wrote awaits the observation that
//! verifies it: only an observation that finds AWS as Git describes it makes a pipeline Ready). Throttling and transient errors retry with
//! exponential backoff and jitter, counted per pipeline and reset on success; errors a retry
//! cannot fix wait for the drift interval. (An invalid manifest is never reconciled: it waits for
//! the next commit.)

use std::time::Duration;

use crate::error::{AwsError, ErrorKind};
use crate::resource::{Key, Kind};

/// What a reconcile that ran to its end found and did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Live state equalled Git when observed (`repaired` empty), or apply wrote `repaired` to
    /// make it so: verified only by the next observation.
    Synced { repaired: Vec<String> },
    /// `sync: observe`: differences found (possibly none), nothing changed.
    Observed { drift: Vec<String> },
    /// A conflict or a missing reference: nothing was changed.
    Blocked { reasons: Vec<String> },
}

impl Outcome {
    /// Whether this pass wrote to AWS: its result is not verified until observed again.
    pub fn wrote(&self) -> bool {
        matches!(self, Outcome::Synced { repaired } if !repaired.is_empty())
    }

    /// The `result` label of `slipway_reconcile_total` for this outcome.
    pub fn result(&self) -> ReconcileResult {
        match self {
            Outcome::Synced { .. } => ReconcileResult::Success,
            Outcome::Observed { .. } => ReconcileResult::Observed,
            Outcome::Blocked { .. } => ReconcileResult::Blocked,
        }
    }
}

/// A reconcile that finished, with the kinds of the resources that differed from Git when
/// observed (before any repair), for the drift metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Reconciled {
    pub outcome: Outcome,
    pub drift: Vec<Kind>,
}

/// Why a reconcile could not finish.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReconcileError {
    /// Reading the live state failed: nothing is known, nothing was done.
    #[error("{0}")]
    Observe(AwsError),
    /// A write failed; the pipeline's later steps were not attempted.
    #[error("{resource}: {source}")]
    Apply { resource: Key, source: AwsError },
    /// The inventory could not record what the pipeline has or is about to create: nothing was
    /// created, since a resource the inventory does not record could never be pruned.
    #[error("recording the inventory: {0}")]
    Inventory(AwsError),
}

impl ReconcileError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ReconcileError::Observe(e) | ReconcileError::Apply { source: e, .. } | ReconcileError::Inventory(e) => e.kind,
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.kind().is_retryable()
    }
}

labels! {
    /// The `result` label values of `slipway_reconcile_total`.
    pub enum ReconcileResult {
        Success = "success",
        Observed = "observed",
        Blocked = "blocked",
        Error = "error",
    }
}

impl ReconcileResult {
    pub fn of(result: &Result<Reconciled, ReconcileError>) -> ReconcileResult {
        match result {
            Ok(r) => r.outcome.result(),
            Err(_) => ReconcileResult::Error,
        }
    }
}

/// When to look at a pipeline again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    pub requeue_after: Duration,
    /// The retry count to remember: grows with each retried failure, 0 after anything else.
    pub attempt: u32,
}

/// The loop's intervals the policies decide with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How often a pipeline is compared with AWS when nothing else happens.
    pub drift_interval: Duration,
    /// How often it is looked at while a deployment runs or a push awaits its pipeline.
    pub watch_interval: Duration,
}

/// After a reconcile that finished: the drift interval, or the watch interval while something
/// awaits a look: delivery waits for something (`delivery_busy`), or the pass wrote and the next
/// observation is to verify it.
pub fn requeue(outcome: &Outcome, delivery_busy: bool, timing: &Timing) -> Action {
    let soon = delivery_busy || outcome.wrote();
    let after = if soon { timing.drift_interval.min(timing.watch_interval) } else { timing.drift_interval };
    Action { requeue_after: after, attempt: 0 }
}

/// After a reconcile that failed: throttling and transient errors back off from `attempt` (the
/// retries so far), everything else waits for the drift interval. `jitter` in `[0, 1)` spreads
/// pipelines that failed together.
pub fn error_policy(error: &ReconcileError, attempt: u32, timing: &Timing, jitter: f64) -> Action {
    match error.kind() {
        ErrorKind::Throttled | ErrorKind::Transient => {
            Action { requeue_after: backoff_delay(attempt, timing.drift_interval, jitter), attempt: attempt + 1 }
        }
        ErrorKind::NotFound
        | ErrorKind::Conflict
        | ErrorKind::AccessDenied
        | ErrorKind::Invalid
        | ErrorKind::Refused
        | ErrorKind::Fenced => Action { requeue_after: timing.drift_interval, attempt: 0 },
    }
}

/// The first retry comes after about this long; each later one waits about twice as long.
pub(crate) const FIRST_RETRY: Duration = Duration::from_secs(2);

/// Delay before retry number `attempt` (0-based): exponential from [`FIRST_RETRY`], capped at
/// `max`, plus up to as much again by `jitter` (in `[0, 1)`).
pub(crate) fn backoff_delay(attempt: u32, max: Duration, jitter: f64) -> Duration {
    let base = FIRST_RETRY.as_secs_f64() * 2f64.powi(attempt.min(62) as i32);
    let capped = base.min(max.max(FIRST_RETRY).as_secs_f64());
    Duration::from_secs_f64(capped * (1.0 + jitter.clamp(0.0, 1.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMING: Timing = Timing { drift_interval: Duration::from_secs(300), watch_interval: Duration::from_secs(15) };

    fn failed(kind: ErrorKind) -> ReconcileError {
        ReconcileError::Observe(AwsError { service: "ecr", operation: "DescribeRepositories", kind, code: None, message: String::new() })
    }

    #[test]
    fn transient_failures_back_off_exponentially_up_to_the_drift_interval_and_reset_on_success() {
        let mut attempt = 0;
        let mut delays = Vec::new();
        for i in 0..10 {
            let action = error_policy(&failed(ErrorKind::Throttled), attempt, &TIMING, (i % 3) as f64 / 3.0);
            delays.push(action.requeue_after);
            attempt = action.attempt;
        }
        assert_eq!(attempt, 10);
        // Jitter adds up to one more base delay, never less than the base.
        assert!(delays[0] >= Duration::from_secs(2) && delays[0] <= Duration::from_secs(4), "{delays:?}");
        assert!(delays[3] >= Duration::from_secs(16), "{delays:?}");
        assert!(delays.iter().all(|d| *d <= TIMING.drift_interval * 2), "{delays:?}");
        assert_eq!(requeue(&IN_SYNC, false, &TIMING), Action { requeue_after: TIMING.drift_interval, attempt: 0 });
    }

    #[test]
    fn every_kind_has_a_policy_and_only_throttling_and_transient_errors_retry_soon() {
        for kind in ErrorKind::ALL {
            let action = error_policy(&failed(kind), 3, &TIMING, 0.0);
            if kind.is_retryable() {
                assert_eq!(action, Action { requeue_after: Duration::from_secs(16), attempt: 4 }, "{kind}");
            } else {
                assert_eq!(action, Action { requeue_after: TIMING.drift_interval, attempt: 0 }, "{kind}");
            }
        }
    }

    const IN_SYNC: Outcome = Outcome::Synced { repaired: Vec::new() };

    #[test]
    fn a_busy_delivery_is_looked_at_on_the_watch_interval() {
        assert_eq!(requeue(&IN_SYNC, true, &TIMING).requeue_after, TIMING.watch_interval);
        let slow_watch = Timing { watch_interval: Duration::from_secs(600), ..TIMING };
        assert_eq!(requeue(&IN_SYNC, true, &slow_watch).requeue_after, TIMING.drift_interval, "never later than the drift interval");
    }

    #[test]
    fn a_pass_that_wrote_is_verified_on_the_watch_interval() {
        let wrote = Outcome::Synced { repaired: vec!["updated s3-bucket b".into()] };
        assert_eq!(requeue(&wrote, false, &TIMING).requeue_after, TIMING.watch_interval);
        let observed = Outcome::Observed { drift: vec!["s3-bucket b".into()] };
        assert_eq!(requeue(&observed, false, &TIMING).requeue_after, TIMING.drift_interval, "observe mode writes nothing");
    }

    #[test]
    fn an_apply_error_keeps_the_kind_of_the_call_that_failed() {
        let source = AwsError { service: "s3", operation: "PutObject", kind: ErrorKind::Transient, code: None, message: "timeout".into() };
        let error = ReconcileError::Apply { resource: Key::new(Kind::SourceArtifact, "b/k"), source };
        assert_eq!(error.kind(), ErrorKind::Transient);
        assert_eq!(error.to_string(), "source-artifact b/k: s3:PutObject failed: timeout");
    }
}
