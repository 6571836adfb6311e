//! When the loop fetches Git next. Pure. (When a pipeline is reconciled next is decided by
//! `slipway_core::reconcile`.)

use std::time::Duration;

/// `interval` ± 10%, so replicas and restarts do not poll the Git server in step.
pub(crate) fn jittered(interval: Duration) -> Duration {
    let spread = interval.as_secs_f64() * 0.1;
    Duration::from_secs_f64((interval.as_secs_f64() + (fastrand::f64() * 2.0 - 1.0) * spread).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_jitter_stays_within_ten_percent() {
        for _ in 0..100 {
            let d = jittered(Duration::from_secs(60));
            assert!(d >= Duration::from_secs(54) && d <= Duration::from_secs(66), "{d:?}");
        }
    }
}
