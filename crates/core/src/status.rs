//! Status, Kubernetes-style: per pipeline the conditions `Ready`, `Synced`, `Drifted`, `Stalled`
//! and `ImageDrift`, each with status, reason, message and the time it last changed, plus the Git
//! revisions last seen and last applied and the last error. Served as JSON at `/status`, and read
//! back into the same types by `slipway status`.
//!
//! Pure: the controller hands in what happened and the time; this decides what the status says.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::delivery::api::{Creator, ExecutionStatus};
use crate::delivery::decide::{DeployOutcome, outcome, rollback_trigger};
use crate::delivery::{Report, live_tag};
use crate::manifest::{Diagnostic, SyncMode};
use crate::plan::Orphan;
use crate::prune::PruneHold;
use crate::reconcile::{Outcome, ReconcileError, Reconciled};
pub use crate::time::timestamp;

labels! {
    /// A pipeline condition's type; `ALL` is the order `/status` lists them in.
    pub enum ConditionType {
        Ready = "Ready",
        Synced = "Synced",
        Drifted = "Drifted",
        Stalled = "Stalled",
        /// The service runs another image than the one Git asks for (after a rollback, `latest`
        /// still points at the bad image).
        ImageDrift = "ImageDrift",
        /// A deployment waits at an ECS PAUSE hook for `slipway promote` (or its timeout).
        AwaitingPromotion = "AwaitingPromotion",
    }
}

/// How many events a pipeline keeps in `/status`.
const EVENTS_KEPT: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: ConditionType,
    pub status: Truth,
    pub reason: String,
    pub message: String,
    pub last_transition_time: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineStatus {
    pub name: String,
    pub file: String,
    pub sync: SyncMode,
    pub suspended: bool,
    pub conditions: Vec<Condition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_applied_revision: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen_revision: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_reconcile_time: Option<String>,
    /// Resources that differed from Git at the last check (`kind name`).
    pub drifted_resources: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliveryStatus>,
    /// Deployment ends and rollbacks, newest last.
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryStatus {
    /// The digest Git asks for (the tracked tag's, or the pin).
    pub tracked_digest: Option<String>,
    /// The digest the service runs.
    pub live_digest: Option<String>,
    /// The tag that keeps the running image from expiring.
    pub live_tag: String,
    pub active_deployment: Option<String>,
    pub last_action: Option<String>,
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub time: String,
    pub reason: EventReason,
    pub message: String,
}

/// Why a pipeline event was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventReason {
    Deploying,
    DeploymentSucceeded,
    DeploymentFailed,
    DeploymentStopped,
    RolledBack,
    PipelineSucceeded,
    PipelineFailed,
    PipelineStopped,
}

impl EventReason {
    /// Events a person should look at (logged as warnings).
    pub fn is_warning(self) -> bool {
        matches!(self, EventReason::RolledBack | EventReason::DeploymentFailed | EventReason::PipelineFailed)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceStatus {
    /// The repository, with any credential removed.
    pub repo: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_fetch_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_fetch_error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ControllerStatus {
    pub version: String,
    pub ready: bool,
    pub source: SourceStatus,
    pub pipelines: Vec<PipelineStatus>,
    /// Manifest errors, including those whose pipeline name is unknown.
    pub invalid: Vec<Diagnostic>,
    /// Owned resources no manifest names any more.
    pub orphans: Vec<Orphan>,
    /// Why `--prune` keeps the orphans; empty when it would delete them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prune_holds: Vec<PruneHold>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_orphan_check_error: Option<String>,
    /// The change feed, with `--change-events`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_feed: Option<ChangeFeedStatus>,
    /// This replica, with `--ha-table`: `pipelines` then lists only the pipelines of the shards
    /// it holds (the others are another replica's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<ReplicaStatus>,
}

/// One of several replicas (`--ha-table`, `crate::lease`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaStatus {
    pub id: String,
    pub table: String,
    /// How many shards the pipelines are spread over.
    pub shards: u16,
    /// The shards whose leases this replica holds.
    pub held: Vec<u16>,
    /// The live replicas it last read, itself included.
    pub members: Vec<String>,
}

/// Whether changes made in AWS are heard (`--change-events`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeFeedStatus {
    pub up: bool,
    /// The queue's URL, once set up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Why it is down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl ControllerStatus {
    pub fn pipeline_mut(&mut self, name: &str) -> &mut PipelineStatus {
        match self.pipelines.iter().position(|p| p.name == name) {
            Some(i) => &mut self.pipelines[i],
            None => {
                self.pipelines.push(PipelineStatus { name: name.to_string(), ..Default::default() });
                self.pipelines.sort_by(|a, b| a.name.cmp(&b.name));
                let i = self.pipelines.iter().position(|p| p.name == name).expect("just inserted");
                &mut self.pipelines[i]
            }
        }
    }

    pub fn pipeline(&self, name: &str) -> Option<&PipelineStatus> {
        self.pipelines.iter().find(|p| p.name == name)
    }
}

labels! {
    /// A condition's status.
    pub enum Truth {
        True = "True",
        False = "False",
        Unknown = "Unknown",
    }
}

impl PipelineStatus {
    /// Sets a condition; its transition time moves only when its status changes.
    pub fn set(&mut self, kind: ConditionType, status: Truth, reason: &str, message: impl Into<String>, now: SystemTime) {
        let message = message.into();
        match self.conditions.iter_mut().find(|c| c.kind == kind) {
            Some(c) => {
                if c.status != status {
                    c.status = status;
                    c.last_transition_time = timestamp(now);
                }
                c.reason = reason.into();
                c.message = message;
            }
            None => {
                self.conditions.push(Condition { kind, status, reason: reason.into(), message, last_transition_time: timestamp(now) });
                self.conditions.sort_by_key(|c| ConditionType::ALL.iter().position(|k| *k == c.kind));
            }
        }
    }

    pub fn condition(&self, kind: ConditionType) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.kind == kind)
    }

    /// The status of a condition, when it is set.
    pub fn truth(&self, kind: ConditionType) -> Option<Truth> {
        self.condition(kind).map(|c| c.status)
    }
}

/// Records a reconcile's result in the pipeline's conditions.
pub fn record(status: &mut PipelineStatus, result: &Result<Reconciled, ReconcileError>, revision: Option<&str>, now: SystemTime) {
    status.last_reconcile_time = Some(timestamp(now));
    match result {
        Ok(reconciled) => record_outcome(status, &reconciled.outcome, revision, now),
        Err(error) => record_error(status, error, now),
    }
}

fn record_outcome(status: &mut PipelineStatus, outcome: &Outcome, revision: Option<&str>, now: SystemTime) {
    use ConditionType::*;
    use Truth::*;
    match outcome {
        Outcome::Synced { repaired } if repaired.is_empty() => {
            status.set(Ready, True, "Synced", "live state matches Git", now);
            status.set(Synced, True, "InSync", "live state matches Git", now);
            status.set(Drifted, False, "NoDrift", "", now);
            status.set(Stalled, False, "Progressing", "", now);
            status.last_applied_revision = revision.map(str::to_owned);
            status.last_error = None;
            status.drifted_resources.clear();
        }
        // A pass that wrote proves only that AWS accepted the writes: Ready waits for the next
        // observation to find the live state as Git describes it.
        Outcome::Synced { repaired } => {
            let message = format!("applied: {}", repaired.join(", "));
            status.set(Ready, Unknown, "Verifying", format!("{message}; ready once the next observation finds it in place"), now);
            status.set(Synced, True, "Applied", message, now);
            status.set(Drifted, False, "NoDrift", "", now);
            status.set(Stalled, False, "Progressing", "", now);
            status.last_applied_revision = revision.map(str::to_owned);
            status.last_error = None;
            status.drifted_resources.clear();
        }
        Outcome::Observed { drift } if drift.is_empty() => {
            status.set(Ready, True, "InSync", "live state matches Git (sync: observe)", now);
            status.set(Synced, True, "InSync", "live state matches Git", now);
            status.set(Drifted, False, "NoDrift", "", now);
            status.set(Stalled, False, "Progressing", "", now);
            status.last_error = None;
            status.drifted_resources.clear();
        }
        Outcome::Observed { drift } => {
            let message = format!("differs from Git: {} (sync: observe, not applied)", drift.join(", "));
            status.set(Ready, False, "Drifted", message.clone(), now);
            status.set(Synced, False, "DriftDetected", message.clone(), now);
            status.set(Drifted, True, "DriftDetected", message, now);
            status.set(Stalled, False, "ObserveOnly", "", now);
            status.last_error = None;
            status.drifted_resources = drift.clone();
        }
        Outcome::Blocked { reasons } => {
            let message = reasons.join("; ");
            status.set(Ready, False, "Blocked", message.clone(), now);
            status.set(Synced, False, "Blocked", message.clone(), now);
            status.set(Stalled, True, "Blocked", message.clone(), now);
            status.last_error = Some(message);
        }
    }
}

fn record_error(status: &mut PipelineStatus, error: &ReconcileError, now: SystemTime) {
    use ConditionType::*;
    use Truth::*;
    let message = error.to_string();
    status.set(Ready, False, "ReconcileFailed", message.clone(), now);
    status.set(Synced, False, "ReconcileFailed", message.clone(), now);
    if error.is_retryable() {
        status.set(Stalled, False, "Retrying", "a transient error; retrying with backoff", now);
    } else {
        status.set(Stalled, True, "ReconcileFailed", message.clone(), now);
    }
    status.last_error = Some(message);
}

/// A pipeline whose manifest is invalid waits for the next commit.
pub fn record_invalid(status: &mut PipelineStatus, errors: &[String], now: SystemTime) {
    let message = errors.join("; ");
    status.set(ConditionType::Ready, Truth::False, "InvalidManifest", message.clone(), now);
    status.set(ConditionType::Stalled, Truth::True, "InvalidManifest", message.clone(), now);
    status.last_error = Some(message);
}

pub fn record_suspended(status: &mut PipelineStatus, now: SystemTime) {
    status.set(ConditionType::Ready, Truth::Unknown, "Suspended", "spec.suspend is true: slipway leaves this pipeline alone", now);
}

/// Records a delivery pass: the image condition, what is deploying, and an event per deployment
/// that ended. Returns the new events (for logs).
pub fn record_delivery(status: &mut PipelineStatus, pipeline: &str, report: &Report, now: SystemTime) -> Vec<Event> {
    let short = |d: &Option<String>| {
        d.as_deref().map(|d| d.trim_start_matches("sha256:").chars().take(12).collect::<String>()).unwrap_or_else(|| "-".into())
    };
    if report.image_drift {
        let message = format!(
            "the service runs {} but Git asks for {}; fix the app and push, or pin the running image",
            short(&report.live),
            short(&report.tracked)
        );
        status.set(ConditionType::ImageDrift, Truth::True, "RunningImageDiffers", message, now);
    } else {
        status.set(ConditionType::ImageDrift, Truth::False, if report.active.is_some() { "Deploying" } else { "InStep" }, "", now);
    }
    match report.active.as_ref().and_then(|d| Some((d, d.paused.as_ref()?))) {
        Some((d, hook)) => {
            let timeout = match (&hook.timeout_action, hook.expires) {
                (Some(action), Some(at)) => format!("; ECS answers {action} itself at {}", timestamp(at)),
                _ => String::new(),
            };
            let message = format!(
                "deployment {} waits at a PAUSE hook ({}): `slipway promote {pipeline}` lets it go on, `--rollback` sends it back{timeout}",
                d.id,
                d.stage.as_deref().unwrap_or("stage not reported")
            );
            status.set(ConditionType::AwaitingPromotion, Truth::True, "PauseHook", message, now);
        }
        None if status.condition(ConditionType::AwaitingPromotion).is_some() => {
            status.set(ConditionType::AwaitingPromotion, Truth::False, "NotPaused", "", now);
        }
        None => {}
    }
    status.delivery = Some(DeliveryStatus {
        tracked_digest: report.tracked.clone(),
        live_digest: report.live.clone(),
        live_tag: live_tag(pipeline),
        active_deployment: report.active.as_ref().map(|d| d.id.clone()),
        last_action: report.step.as_ref().map(ToString::to_string).or_else(|| status.delivery.as_ref().and_then(|d| d.last_action.clone())),
        problems: report.problems.clone(),
    });
    let mut events = Vec::new();
    if let Some(step) = report.step.as_ref().filter(|s| s.starts_deployment()) {
        events.push(Event { time: timestamp(now), reason: EventReason::Deploying, message: step.to_string() });
    }
    for d in &report.finished {
        let (reason, message) = match (outcome(d), rollback_trigger(d)) {
            (DeployOutcome::RolledBack, Some(trigger)) => {
                (EventReason::RolledBack, format!("deployment {} was rolled back ({})", d.id, trigger.as_str()))
            }
            (DeployOutcome::Rollback, _) => {
                (EventReason::RolledBack, format!("deployment {} rolled back to an earlier task definition (slipway)", d.id))
            }
            (DeployOutcome::Succeeded, _) if d.creator == Creator::CodeDeployRollback => {
                (EventReason::RolledBack, format!("CodeDeploy rollback deployment {} finished", d.id))
            }
            (DeployOutcome::Succeeded, _) => (EventReason::DeploymentSucceeded, format!("deployment {} succeeded", d.id)),
            (DeployOutcome::Stopped, _) => (EventReason::DeploymentStopped, format!("deployment {} was stopped", d.id)),
            _ => (
                EventReason::DeploymentFailed,
                format!("deployment {} failed{}", d.id, d.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default()),
            ),
        };
        events.push(Event { time: timestamp(now), reason, message });
    }
    for e in &report.finished_executions {
        let reason = match e.status {
            ExecutionStatus::Succeeded => EventReason::PipelineSucceeded,
            ExecutionStatus::Failed => EventReason::PipelineFailed,
            _ => EventReason::PipelineStopped,
        };
        events.push(Event { time: timestamp(now), reason, message: format!("pipeline execution {} ended: {}", e.id, e.status.as_str()) });
    }
    status.events.extend(events.iter().cloned());
    let excess = status.events.len().saturating_sub(EVENTS_KEPT);
    status.events.drain(..excess);
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{AwsError, ErrorKind};
    use ConditionType::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn synced(repaired: Vec<String>) -> Result<Reconciled, ReconcileError> {
        Ok(Reconciled { outcome: Outcome::Synced { repaired }, drift: vec![] })
    }

    fn failed(message: &str, kind: ErrorKind) -> Result<Reconciled, ReconcileError> {
        Err(ReconcileError::Observe(AwsError { service: "ecr", operation: "ListImages", kind, code: None, message: message.into() }))
    }

    #[test]
    fn a_condition_keeps_its_transition_time_until_its_status_changes() {
        let mut s = PipelineStatus::default();
        record(&mut s, &synced(vec![]), Some("abc"), at(100));
        record(&mut s, &synced(vec![]), Some("abc"), at(150));
        let ready = s.condition(Ready).unwrap();
        assert_eq!((ready.status, ready.last_transition_time.as_str()), (Truth::True, "1970-01-01T00:01:40Z"));
        record(&mut s, &failed("boom", ErrorKind::AccessDenied), Some("def"), at(300));
        let ready = s.condition(Ready).unwrap();
        assert_eq!((ready.status, ready.last_transition_time.as_str()), (Truth::False, "1970-01-01T00:05:00Z"));
        assert_eq!(s.truth(Stalled), Some(Truth::True));
        assert_eq!(s.last_error.as_deref(), Some("ecr:ListImages failed: boom"));
    }

    #[test]
    fn a_pass_that_wrote_is_not_ready_until_an_observation_finds_its_result() {
        let mut s = PipelineStatus::default();
        record(&mut s, &synced(vec![]), Some("abc"), at(100));
        record(&mut s, &synced(vec!["updated codepipeline web".into()]), Some("def"), at(200));
        let ready = s.condition(Ready).unwrap();
        assert_eq!((ready.status, ready.reason.as_str()), (Truth::Unknown, "Verifying"), "{ready:?}");
        assert_eq!((s.truth(Synced), s.last_applied_revision.as_deref()), (Some(Truth::True), Some("def")));
        record(&mut s, &synced(vec![]), Some("def"), at(215));
        let ready = s.condition(Ready).unwrap();
        assert_eq!((ready.status, ready.last_transition_time.as_str()), (Truth::True, "1970-01-01T00:03:35Z"));
    }

    #[test]
    fn observe_mode_reports_drift_without_claiming_sync() {
        let mut s = PipelineStatus::default();
        let observed = Reconciled { outcome: Outcome::Observed { drift: vec!["eventbridge-rule slipway-web-ecr".into()] }, drift: vec![] };
        record(&mut s, &Ok(observed), None, at(1));
        assert_eq!(s.truth(Drifted), Some(Truth::True));
        assert_eq!(s.truth(Synced), Some(Truth::False));
        assert_eq!(s.drifted_resources, ["eventbridge-rule slipway-web-ecr"]);
        let kinds: Vec<ConditionType> = s.conditions.iter().map(|c| c.kind).collect();
        assert_eq!(kinds, [Ready, Synced, Drifted, Stalled]);
    }

    #[test]
    fn transient_failures_are_not_stalled_but_permanent_ones_are() {
        let mut s = PipelineStatus::default();
        record(&mut s, &failed("throttled", ErrorKind::Throttled), None, at(1));
        assert_eq!(s.truth(Stalled), Some(Truth::False));
        record_invalid(&mut s, &["p.yaml:3:1: bad".into()], at(2));
        assert_eq!(s.condition(Stalled).unwrap().reason, "InvalidManifest");
    }
}

#[cfg(test)]
mod delivery_tests {
    use super::*;
    use crate::delivery::Report;
    use crate::delivery::api::{DeployStatus, Deployment, Execution, ExecutionStatus};
    use std::time::Duration;

    fn ended(id: &str, status: DeployStatus, rolled_back_by: Option<&str>) -> Deployment {
        Deployment { rolled_back_by: rolled_back_by.map(str::to_owned), ..Deployment::new(id, status) }
    }

    #[test]
    fn image_drift_names_both_digests_and_rollbacks_become_events() {
        let mut s = PipelineStatus::default();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(60);
        let report = Report {
            tracked: Some("sha256:bbbbbbbbbbbbbbbb".into()),
            live: Some("sha256:aaaaaaaaaaaaaaaa".into()),
            image_drift: true,
            finished: vec![ended("d-1", DeployStatus::Failed, Some("d-2"))],
            finished_executions: vec![Execution {
                id: "e-1".into(),
                status: ExecutionStatus::Failed,
                started: None,
                source_revisions: vec![],
            }],
            ..Default::default()
        };
        let events = record_delivery(&mut s, "web", &report, t0);
        let c = s.condition(ConditionType::ImageDrift).unwrap();
        assert_eq!(c.status, Truth::True);
        assert!(c.message.contains("aaaaaaaaaaaa") && c.message.contains("bbbbbbbbbbbb"), "{}", c.message);
        assert_eq!(c.last_transition_time, "1970-01-01T00:01:00Z", "the transition time says since when");
        let reasons: Vec<EventReason> = events.iter().map(|e| e.reason).collect();
        assert_eq!(reasons, [EventReason::RolledBack, EventReason::PipelineFailed]);
        assert!(events[0].message.contains("auto_failure"));
        assert_eq!(s.delivery.as_ref().unwrap().live_tag, "slipway-live-web");

        // Still drifted later: the condition keeps its first transition time.
        record_delivery(&mut s, "web", &Report { image_drift: true, ..report.clone() }, t0 + Duration::from_secs(600));
        assert_eq!(s.condition(ConditionType::ImageDrift).unwrap().last_transition_time, "1970-01-01T00:01:00Z");
        assert_eq!(s.events.len(), 4);
    }
}
