//! What observe has just read of an ECS service, handed to the delivery check that follows it in
//! the same pass: the service is described once per pass, not twice. Taken once, and only while
//! fresh, so every later check reads AWS again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Older than this, a reading is not used.
const FRESH: Duration = Duration::from_secs(10);

/// `(cluster, service)`.
type ServiceKey = (String, String);

/// When it was read, and the task definition it ran.
type Reading = (Instant, Option<String>);

#[derive(Debug, Default)]
pub(crate) struct RecentServices(Mutex<HashMap<ServiceKey, Reading>>);

impl RecentServices {
    pub(crate) fn remember(&self, cluster: &str, service: &str, task_definition: Option<String>) {
        let mut recent = self.0.lock().expect("not poisoned");
        recent.retain(|_, (at, _)| at.elapsed() < FRESH);
        recent.insert((cluster.to_string(), service.to_string()), (Instant::now(), task_definition));
    }

    /// The task definition the service ran when observe read it, if that was moments ago.
    pub(crate) fn take(&self, cluster: &str, service: &str) -> Option<Option<String>> {
        let (at, task_definition) = self.0.lock().expect("not poisoned").remove(&(cluster.to_string(), service.to_string()))?;
        (at.elapsed() < FRESH).then_some(task_definition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reading_is_taken_once() {
        let recent = RecentServices::default();
        recent.remember("demo", "web", Some("arn:td:1".into()));
        assert_eq!(recent.take("demo", "other"), None);
        assert_eq!(recent.take("demo", "web"), Some(Some("arn:td:1".into())));
        assert_eq!(recent.take("demo", "web"), None, "the next check reads AWS");
    }
}
