//! When a pipeline is reconciled next. Pure.
//!
//! AWS has no watch, so every success requeues after the drift interval. Transient errors retry
//! with exponential backoff and jitter, counted per pipeline and reset on success; errors a retry
//! cannot fix wait for the drift interval; an invalid manifest waits for the next commit.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use super::status::Outcome;

/// The first retry comes after about this long; each later one waits about twice as long.
pub const FIRST_RETRY: Duration = Duration::from_secs(2);

/// Delay before retry number `attempt` (0-based): exponential from [`FIRST_RETRY`], capped at
/// `max`, with jitter so that many pipelines failing together do not retry together.
pub fn backoff_delay(attempt: u32, max: Duration) -> Duration {
    ExponentialBuilder::default()
        .with_min_delay(FIRST_RETRY)
        .with_max_delay(max.max(FIRST_RETRY))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
        .nth(attempt as usize)
        .unwrap_or(max)
}

/// `interval` ± 10%, so replicas and restarts do not poll the Git server in step.
pub fn jittered(interval: Duration) -> Duration {
    let spread = interval.as_secs_f64() * 0.1;
    Duration::from_secs_f64((interval.as_secs_f64() + (fastrand::f64() * 2.0 - 1.0) * spread).max(0.0))
}

/// After `outcome`, when to reconcile again and the new retry count.
pub fn next_after(outcome: &Outcome, attempt: u32, drift_interval: Duration) -> (Duration, u32) {
    match outcome {
        Outcome::Failed { retryable: true, .. } => (backoff_delay(attempt, drift_interval), attempt + 1),
        _ => (drift_interval, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_failures_back_off_exponentially_up_to_the_drift_interval_and_reset_on_success() {
        let drift = Duration::from_secs(300);
        let failed = Outcome::Failed { error: "throttled".into(), retryable: true };
        let mut attempt = 0;
        let mut delays = Vec::new();
        for _ in 0..10 {
            let (delay, next) = next_after(&failed, attempt, drift);
            delays.push(delay);
            attempt = next;
        }
        assert_eq!(attempt, 10);
        // Jitter adds up to one more base delay, never less than the base.
        assert!(delays[0] >= Duration::from_secs(2) && delays[0] <= Duration::from_secs(4), "{delays:?}");
        assert!(delays[3] >= Duration::from_secs(16), "{delays:?}");
        assert!(delays.iter().all(|d| *d <= drift * 2), "{delays:?}");
        assert_eq!(next_after(&Outcome::Synced { repaired: vec![] }, attempt, drift), (drift, 0));
    }

    #[test]
    fn permanent_failures_and_blocks_wait_for_the_drift_interval() {
        let drift = Duration::from_secs(60);
        assert_eq!(next_after(&Outcome::Failed { error: "denied".into(), retryable: false }, 3, drift), (drift, 0));
        assert_eq!(next_after(&Outcome::Blocked { reasons: vec![] }, 0, drift), (drift, 0));
    }

    #[test]
    fn poll_jitter_stays_within_ten_percent() {
        for _ in 0..100 {
            let d = jittered(Duration::from_secs(60));
            assert!(d >= Duration::from_secs(54) && d <= Duration::from_secs(66), "{d:?}");
        }
    }
}
