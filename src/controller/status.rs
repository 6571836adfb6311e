//! Status, Kubernetes-style: per pipeline the conditions `Ready`, `Synced`, `Drifted` and
//! `Stalled`, each with status, reason, message and the time it last changed, plus the Git
//! revisions last seen and last applied and the last error. Served as JSON at `/status`.
//!
//! Pure: the controller hands in what happened and the time; this decides what the status says.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::manifest::Diagnostic;
use crate::plan::Orphan;

pub const READY: &str = "Ready";
pub const SYNCED: &str = "Synced";
pub const DRIFTED: &str = "Drifted";
pub const STALLED: &str = "Stalled";
/// The service runs another image than the one Git asks for (after a rollback, `latest` still
/// points at the bad image).
pub const IMAGE_DRIFT: &str = "ImageDrift";

/// How many events a pipeline keeps in `/status`.
const EVENTS_KEPT: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    pub reason: String,
    pub message: String,
    pub last_transition_time: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineStatus {
    pub name: String,
    pub file: String,
    pub sync: String,
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

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub time: String,
    /// `Deploying`, `DeploymentSucceeded`, `DeploymentFailed`, `DeploymentStopped`, `RolledBack`,
    /// `PipelineSucceeded`, `PipelineFailed`, `PipelineStopped`.
    pub reason: String,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
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

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_orphan_check_error: Option<String>,
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

pub fn timestamp(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

/// `True` / `False` / `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truth {
    True,
    False,
    Unknown,
}

impl Truth {
    fn as_str(self) -> &'static str {
        match self {
            Truth::True => "True",
            Truth::False => "False",
            Truth::Unknown => "Unknown",
        }
    }
}

impl PipelineStatus {
    /// Sets a condition; its transition time moves only when its status changes.
    pub fn set(&mut self, kind: &str, status: Truth, reason: &str, message: impl Into<String>, now: SystemTime) {
        let message = message.into();
        match self.conditions.iter_mut().find(|c| c.kind == kind) {
            Some(c) => {
                if c.status != status.as_str() {
                    c.status = status.as_str().into();
                    c.last_transition_time = timestamp(now);
                }
                c.reason = reason.into();
                c.message = message;
            }
            None => {
                self.conditions.push(Condition {
                    kind: kind.into(),
                    status: status.as_str().into(),
                    reason: reason.into(),
                    message,
                    last_transition_time: timestamp(now),
                });
                let order = |k: &str| [READY, SYNCED, DRIFTED, STALLED, IMAGE_DRIFT].iter().position(|x| *x == k).unwrap_or(9);
                self.conditions.sort_by_key(|c| order(&c.kind));
            }
        }
    }

    pub fn condition(&self, kind: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.kind == kind)
    }
}

/// What one reconcile of a pipeline came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Live state equals Git; `repaired` lists what apply changed to get there.
    Synced { repaired: Vec<String> },
    /// `sync: observe`: differences found (possibly none), nothing changed.
    Observed { drift: Vec<String> },
    /// A conflict or a missing reference: nothing was changed.
    Blocked { reasons: Vec<String> },
    /// An AWS call failed.
    Failed { error: String, retryable: bool },
}

/// Records a reconcile's outcome in the pipeline's conditions.
pub fn record(status: &mut PipelineStatus, outcome: &Outcome, revision: Option<&str>, now: SystemTime) {
    use Truth::*;
    status.last_reconcile_time = Some(timestamp(now));
    match outcome {
        Outcome::Synced { repaired } => {
            let message =
                if repaired.is_empty() { "live state matches Git".to_string() } else { format!("applied: {}", repaired.join(", ")) };
            status.set(READY, True, "Synced", message.clone(), now);
            status.set(SYNCED, True, if repaired.is_empty() { "InSync" } else { "Applied" }, message, now);
            status.set(DRIFTED, False, "NoDrift", "", now);
            status.set(STALLED, False, "Progressing", "", now);
            status.last_applied_revision = revision.map(str::to_owned);
            status.last_error = None;
            status.drifted_resources.clear();
        }
        Outcome::Observed { drift } if drift.is_empty() => {
            status.set(READY, True, "InSync", "live state matches Git (sync: observe)", now);
            status.set(SYNCED, True, "InSync", "live state matches Git", now);
            status.set(DRIFTED, False, "NoDrift", "", now);
            status.set(STALLED, False, "Progressing", "", now);
            status.last_error = None;
            status.drifted_resources.clear();
        }
        Outcome::Observed { drift } => {
            let message = format!("differs from Git: {} (sync: observe, not applied)", drift.join(", "));
            status.set(READY, False, "Drifted", message.clone(), now);
            status.set(SYNCED, False, "DriftDetected", message.clone(), now);
            status.set(DRIFTED, True, "DriftDetected", message, now);
            status.set(STALLED, False, "ObserveOnly", "", now);
            status.last_error = None;
            status.drifted_resources = drift.clone();
        }
        Outcome::Blocked { reasons } => {
            let message = reasons.join("; ");
            status.set(READY, False, "Blocked", message.clone(), now);
            status.set(SYNCED, False, "Blocked", message.clone(), now);
            status.set(STALLED, True, "Blocked", message.clone(), now);
            status.last_error = Some(message);
        }
        Outcome::Failed { error, retryable } => {
            status.set(READY, False, "ReconcileFailed", error.clone(), now);
            status.set(SYNCED, False, "ReconcileFailed", error.clone(), now);
            if *retryable {
                status.set(STALLED, False, "Retrying", "a transient error; retrying with backoff", now);
            } else {
                status.set(STALLED, True, "ReconcileFailed", error.clone(), now);
            }
            status.last_error = Some(error.clone());
        }
    }
}

/// A pipeline whose manifest is invalid waits for the next commit.
pub fn record_invalid(status: &mut PipelineStatus, errors: &[String], now: SystemTime) {
    let message = errors.join("; ");
    status.set(READY, Truth::False, "InvalidManifest", message.clone(), now);
    status.set(STALLED, Truth::True, "InvalidManifest", message.clone(), now);
    status.last_error = Some(message);
}

pub fn record_suspended(status: &mut PipelineStatus, now: SystemTime) {
    status.set(READY, Truth::Unknown, "Suspended", "spec.suspend is true: slipway leaves this pipeline alone", now);
}

/// Records a delivery pass: the image condition, what is deploying, and an event per deployment
/// that ended. Returns the new events (for logs).
pub fn record_delivery(status: &mut PipelineStatus, pipeline: &str, report: &crate::deploy::Report, now: SystemTime) -> Vec<Event> {
    use crate::deploy::state::{outcome, rollback_trigger};
    let short = |d: &Option<String>| {
        d.as_deref().map(|d| d.trim_start_matches("sha256:").chars().take(12).collect::<String>()).unwrap_or_else(|| "-".into())
    };
    if report.image_drift {
        let message = format!(
            "the service runs {} but Git asks for {}; fix the app and push, or pin the running image",
            short(&report.live),
            short(&report.tracked)
        );
        status.set(IMAGE_DRIFT, Truth::True, "RunningImageDiffers", message, now);
    } else {
        status.set(IMAGE_DRIFT, Truth::False, if report.active.is_some() { "Deploying" } else { "InStep" }, "", now);
    }
    status.delivery = Some(DeliveryStatus {
        tracked_digest: report.tracked.clone(),
        live_digest: report.live.clone(),
        live_tag: crate::deploy::live_tag(pipeline),
        active_deployment: report.active.as_ref().map(|d| d.id.clone()),
        last_action: report.action.clone().or_else(|| status.delivery.as_ref().and_then(|d| d.last_action.clone())),
        problems: report.problems.clone(),
    });
    let mut events = Vec::new();
    if let Some(action) = &report.action
        && (action.starts_with("created deployment") || action.contains("started"))
    {
        events.push(Event { time: timestamp(now), reason: "Deploying".into(), message: action.clone() });
    }
    for d in &report.finished {
        let (reason, message) = match (outcome(d), rollback_trigger(d)) {
            ("rolled_back", Some(trigger)) => ("RolledBack", format!("deployment {} was rolled back ({})", d.id, trigger.label())),
            ("rollback", _) => ("RolledBack", format!("deployment {} rolled back to an earlier task definition (slipway)", d.id)),
            ("succeeded", _) if d.creator == "codeDeployRollback" => {
                ("RolledBack", format!("CodeDeploy rollback deployment {} finished", d.id))
            }
            ("succeeded", _) => ("DeploymentSucceeded", format!("deployment {} succeeded", d.id)),
            ("stopped", _) => ("DeploymentStopped", format!("deployment {} was stopped", d.id)),
            _ => (
                "DeploymentFailed",
                format!("deployment {} failed{}", d.id, d.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default()),
            ),
        };
        events.push(Event { time: timestamp(now), reason: reason.into(), message });
    }
    for e in &report.finished_executions {
        let reason = match e.status.as_str() {
            "Succeeded" => "PipelineSucceeded",
            "Failed" => "PipelineFailed",
            _ => "PipelineStopped",
        };
        events.push(Event {
            time: timestamp(now),
            reason: reason.into(),
            message: format!("pipeline execution {} ended: {}", e.id, e.status),
        });
    }
    status.events.extend(events.iter().cloned());
    let excess = status.events.len().saturating_sub(EVENTS_KEPT);
    status.events.drain(..excess);
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn a_condition_keeps_its_transition_time_until_its_status_changes() {
        let mut s = PipelineStatus::default();
        record(&mut s, &Outcome::Synced { repaired: vec![] }, Some("abc"), at(100));
        record(&mut s, &Outcome::Synced { repaired: vec!["codepipeline web".into()] }, Some("def"), at(200));
        let ready = s.condition(READY).unwrap();
        assert_eq!((ready.status.as_str(), ready.last_transition_time.as_str()), ("True", "1970-01-01T00:01:40Z"));
        assert_eq!(s.last_applied_revision.as_deref(), Some("def"));
        record(&mut s, &Outcome::Failed { error: "boom".into(), retryable: false }, Some("def"), at(300));
        let ready = s.condition(READY).unwrap();
        assert_eq!((ready.status.as_str(), ready.last_transition_time.as_str()), ("False", "1970-01-01T00:05:00Z"));
        assert_eq!(s.condition(STALLED).unwrap().status, "True");
        assert_eq!(s.last_error.as_deref(), Some("boom"));
    }

    #[test]
    fn observe_mode_reports_drift_without_claiming_sync() {
        let mut s = PipelineStatus::default();
        record(&mut s, &Outcome::Observed { drift: vec!["eventbridge-rule slipway-web-ecr".into()] }, None, at(1));
        assert_eq!(s.condition(DRIFTED).unwrap().status, "True");
        assert_eq!(s.condition(SYNCED).unwrap().status, "False");
        assert_eq!(s.drifted_resources, ["eventbridge-rule slipway-web-ecr"]);
        let kinds: Vec<&str> = s.conditions.iter().map(|c| c.kind.as_str()).collect();
        assert_eq!(kinds, [READY, SYNCED, DRIFTED, STALLED]);
    }

    #[test]
    fn transient_failures_are_not_stalled_but_permanent_ones_are() {
        let mut s = PipelineStatus::default();
        record(&mut s, &Outcome::Failed { error: "throttled".into(), retryable: true }, None, at(1));
        assert_eq!(s.condition(STALLED).unwrap().status, "False");
        record_invalid(&mut s, &["p.yaml:3:1: bad".into()], at(2));
        assert_eq!(s.condition(STALLED).unwrap().reason, "InvalidManifest");
    }
}

#[cfg(test)]
mod delivery_tests {
    use super::*;
    use crate::deploy::Report;
    use crate::deploy::api::{DeployStatus, Deployment, Execution};
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
            finished_executions: vec![Execution { id: "e-1".into(), status: "Failed".into(), started: None, source_revisions: vec![] }],
            ..Default::default()
        };
        let events = record_delivery(&mut s, "web", &report, t0);
        let c = s.condition(IMAGE_DRIFT).unwrap();
        assert_eq!(c.status, "True");
        assert!(c.message.contains("aaaaaaaaaaaa") && c.message.contains("bbbbbbbbbbbb"), "{}", c.message);
        assert_eq!(c.last_transition_time, "1970-01-01T00:01:00Z", "the transition time says since when");
        let reasons: Vec<&str> = events.iter().map(|e| e.reason.as_str()).collect();
        assert_eq!(reasons, ["RolledBack", "PipelineFailed"]);
        assert!(events[0].message.contains("auto_failure"));
        assert_eq!(s.delivery.as_ref().unwrap().live_tag, "slipway-live-web");

        // Still drifted later: the condition keeps its first transition time.
        record_delivery(&mut s, "web", &Report { image_drift: true, ..report.clone() }, t0 + Duration::from_secs(600));
        assert_eq!(s.condition(IMAGE_DRIFT).unwrap().last_transition_time, "1970-01-01T00:01:00Z");
        assert_eq!(s.events.len(), 4);
    }
}
