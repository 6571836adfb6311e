//! Readings kept so they are not made twice: what observe has just read of an ECS service, for
//! the delivery check that follows it in the same pass (taken once, and only while fresh, so
//! every later check reads AWS again); and task definitions by revision ARN, which never change.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use slipway_core::delivery::api::TaskDefinition;

/// Older than this, a reading is not used.
const FRESH: Duration = Duration::from_secs(10);

/// `(cluster, service)`.
type ServiceKey = (String, String);

/// When it was read, and the task definition it ran.
type Reading = (Instant, Option<String>);

#[derive(Debug, Default)]
pub(crate) struct RecentServices(Mutex<HashMap<ServiceKey, Reading>>);

impl RecentServices {
    /// Keeps what a read made at `read_at` found (a read ahead for a long pass may be older than
    /// the observe that passes it on; it is then not used).
    pub(crate) fn remember(&self, cluster: &str, service: &str, task_definition: Option<String>, read_at: Instant) {
        let mut recent = self.0.lock().expect("not poisoned");
        recent.retain(|_, (at, _)| at.elapsed() < FRESH);
        if read_at.elapsed() < FRESH {
            recent.insert((cluster.to_string(), service.to_string()), (read_at, task_definition));
        }
    }

    /// The task definition the service ran when observe read it, if that was moments ago.
    pub(crate) fn take(&self, cluster: &str, service: &str) -> Option<Option<String>> {
        let (at, task_definition) = self.0.lock().expect("not poisoned").remove(&(cluster.to_string(), service.to_string()))?;
        (at.elapsed() < FRESH).then_some(task_definition)
    }
}

/// Task definitions read, by ARN with its revision (`family:3`): their containers never change.
#[derive(Debug, Default)]
pub(crate) struct KnownTaskDefinitions(Mutex<HashMap<String, TaskDefinition>>);

/// More than this many, and the memory starts over (a few per pipeline are ever looked at).
const MAX_TASK_DEFINITIONS: usize = 4096;

impl KnownTaskDefinitions {
    pub(crate) fn get(&self, arn: &str) -> Option<TaskDefinition> {
        self.0.lock().expect("not poisoned").get(arn).cloned()
    }

    pub(crate) fn remember(&self, definition: &TaskDefinition) {
        // Only a revision ARN names one immutable definition; a bare family moves.
        let revision = definition.arn.rsplit_once(':').map(|(_, r)| r);
        if revision.is_none_or(|r| r.parse::<u32>().is_err()) {
            return;
        }
        let mut known = self.0.lock().expect("not poisoned");
        if known.len() >= MAX_TASK_DEFINITIONS {
            known.clear();
        }
        known.insert(definition.arn.clone(), definition.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_revision_arn_is_remembered() {
        let known = KnownTaskDefinitions::default();
        let td = |arn: &str| TaskDefinition { arn: arn.into(), images: Vec::new(), revision: None };
        known.remember(&td("arn:aws:ecs:eu-west-1:1:task-definition/web:3"));
        known.remember(&td("arn:aws:ecs:eu-west-1:1:task-definition/web"));
        assert!(known.get("arn:aws:ecs:eu-west-1:1:task-definition/web:3").is_some());
        assert!(known.get("arn:aws:ecs:eu-west-1:1:task-definition/web").is_none());
    }

    #[test]
    fn a_reading_is_taken_once() {
        let recent = RecentServices::default();
        recent.remember("demo", "web", Some("arn:td:1".into()), Instant::now());
        assert_eq!(recent.take("demo", "other"), None);
        assert_eq!(recent.take("demo", "web"), Some(Some("arn:td:1".into())));
        assert_eq!(recent.take("demo", "web"), None, "the next check reads AWS");
        let Some(long_ago) = Instant::now().checked_sub(FRESH) else { return };
        recent.remember("demo", "web", Some("arn:td:1".into()), long_ago);
        assert_eq!(recent.take("demo", "web"), None, "a reading older than FRESH is not passed on");
    }
}
