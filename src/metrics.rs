//! Every metric slipway exports, defined in one place. The names and labels are a contract
//! (dashboards and alert rules depend on them): labels carry bounded values only — pipeline
//! names, resource kinds, results — never error text. Durations are in seconds.
//!
//! A pipeline's series exist, at zero, from its first reconcile, so alerts and dashboards never
//! see gaps; a pipeline removed from Git loses its series. The label values of bounded labels
//! come from the enums they describe (`as_str`), never from a list kept by hand.
//!
//! One [`Metrics`] is made by `slipway run` and handed to whoever records (the controller, the
//! Git source, the AWS clients through [`CallObserver`], the HTTP server that renders it).

use std::time::Duration;

use prometheus::{Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};
use slipway_aws::calls::CallObserver;
use slipway_core::change::ChangeOutcome;
use slipway_core::delivery::Report;
use slipway_core::delivery::decide::{DeployOutcome, RollbackTrigger, counts_as_deployment, outcome, rollback_trigger};
use slipway_core::lease::LeaseTransition;
use slipway_core::reconcile::ReconcileResult;
use slipway_core::resource::Kind;
use slipway_core::status::{Condition, ConditionType, Truth};
use slipway_core::trigger::TriggerOutcome;

pub(crate) struct Metrics {
    registry: Registry,
    pub reconcile_total: IntCounterVec,
    pub reconcile_duration_seconds: HistogramVec,
    pub drift_resources: IntGaugeVec,
    pub drift_detected_total: IntCounterVec,
    pub deploy_duration_seconds: HistogramVec,
    pub deployments_total: IntCounterVec,
    pub rollbacks_total: IntCounterVec,
    pub image_drift: IntGaugeVec,
    pub pipeline_condition: IntGaugeVec,
    pub git_fetch_total: IntCounterVec,
    pub git_fetch_duration_seconds: Histogram,
    pub git_last_success_timestamp_seconds: Gauge,
    pub git_revision_info: IntGaugeVec,
    pub aws_requests_total: IntCounterVec,
    pub aws_request_duration_seconds: HistogramVec,
    pub change_events_total: IntCounterVec,
    pub change_feed_up: IntGaugeVec,
    pub trigger_events_total: IntCounterVec,
    pub trigger_queue_up: IntGaugeVec,
    pub lease_transitions_total: IntCounterVec,
    pub shard_pipelines: IntGaugeVec,
    pub replica_info: IntGaugeVec,
    pub build_info: IntGaugeVec,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry.register(Box::new(c.clone())).expect("registered once");
    c
}

fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry.register(Box::new(g.clone())).expect("registered once");
    g
}

fn histogram(registry: &Registry, name: &str, help: &str, labels: &[&str], buckets: Vec<f64>) -> HistogramVec {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels).expect("valid metric");
    registry.register(Box::new(h.clone())).expect("registered once");
    h
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        let fetch = Histogram::with_opts(
            HistogramOpts::new("slipway_git_fetch_duration_seconds", "Time to fetch the config repository.")
                .buckets(vec![0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]),
        )
        .expect("valid metric");
        r.register(Box::new(fetch.clone())).expect("registered once");
        let last_success =
            Gauge::with_opts(Opts::new("slipway_git_last_success_timestamp_seconds", "Unix time of the last successful fetch."))
                .expect("valid metric");
        r.register(Box::new(last_success.clone())).expect("registered once");
        let m = Metrics {
            reconcile_total: counter(&r, "slipway_reconcile_total", "Reconciles of a pipeline, by result.", &["pipeline", "result"]),
            reconcile_duration_seconds: histogram(
                &r,
                "slipway_reconcile_duration_seconds",
                "Time to observe, plan and apply one pipeline.",
                &["pipeline"],
                vec![0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0],
            ),
            drift_resources: gauge(
                &r,
                "slipway_drift_resources",
                "Resources that differed from Git at the pipeline's last check.",
                &["pipeline", "kind"],
            ),
            drift_detected_total: counter(
                &r,
                "slipway_drift_detected_total",
                "Times a resource was found to differ from Git.",
                &["pipeline", "kind"],
            ),
            // Blue/green deployments take minutes: buckets from 30 s to 2 h.
            deploy_duration_seconds: histogram(
                &r,
                "slipway_deploy_duration_seconds",
                "Duration of finished deployments, by result.",
                &["pipeline", "result"],
                vec![30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0],
            ),
            deployments_total: counter(&r, "slipway_deployments_total", "Finished deployments, by result.", &["pipeline", "result"]),
            rollbacks_total: counter(&r, "slipway_rollbacks_total", "Rollbacks, by what triggered them.", &["pipeline", "trigger"]),
            image_drift: gauge(
                &r,
                "slipway_image_drift",
                "1 while the service runs another image than the one Git asks for.",
                &["pipeline"],
            ),
            pipeline_condition: gauge(
                &r,
                "slipway_pipeline_condition",
                "1 for each pipeline condition's current status.",
                &["pipeline", "condition", "status"],
            ),
            git_fetch_total: counter(&r, "slipway_git_fetch_total", "Fetches of the config repository, by result.", &["result"]),
            git_fetch_duration_seconds: fetch,
            git_last_success_timestamp_seconds: last_success,
            git_revision_info: gauge(&r, "slipway_git_revision_info", "The revision last fetched (always 1).", &["revision"]),
            aws_requests_total: counter(
                &r,
                "slipway_aws_requests_total",
                "AWS API calls, by service, operation and result.",
                &["service", "operation", "result"],
            ),
            aws_request_duration_seconds: histogram(
                &r,
                "slipway_aws_request_duration_seconds",
                "AWS API call latency, retries included.",
                &["service"],
                vec![0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
            ),
            change_events_total: counter(
                &r,
                "slipway_change_events_total",
                "Messages read from the change queue (--change-events), by what became of them.",
                &["outcome"],
            ),
            change_feed_up: gauge(
                &r,
                "slipway_change_feed_up",
                "1 while the change feed is read; 0 while it is down (every pipeline is then read each --drift-interval).",
                &[],
            ),
            trigger_events_total: counter(
                &r,
                "slipway_trigger_events_total",
                "Messages read from the trigger queue (--trigger-route queue), by what became of them.",
                &["outcome"],
            ),
            trigger_queue_up: gauge(
                &r,
                "slipway_trigger_queue_up",
                "1 while the trigger queue is read; 0 while it is down (triggers wait in the queue, no pipeline starts).",
                &[],
            ),
            lease_transitions_total: counter(
                &r,
                "slipway_lease_transitions_total",
                "Shard leases this replica acquired, released or lost (--ha-table).",
                &["transition"],
            ),
            shard_pipelines: gauge(
                &r,
                "slipway_shard_pipelines",
                "Pipelines in each shard whose lease this replica holds (--ha-table); a shard it does not hold has no series.",
                &["shard"],
            ),
            replica_info: gauge(&r, "slipway_replica_info", "Always 1; this replica's id is the label (--ha-table).", &["replica"]),
            build_info: gauge(&r, "slipway_build_info", "Always 1; the version is the label.", &["version"]),
            registry: r,
        };
        m.build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        m
    }

    /// Creates a pipeline's series at zero.
    pub(crate) fn init_pipeline(&self, pipeline: &str, kinds: &[Kind]) {
        for result in ReconcileResult::ALL {
            self.reconcile_total.with_label_values(&[pipeline, result.as_str()]);
        }
        for kind in kinds {
            self.drift_resources.with_label_values(&[pipeline, kind.label()]);
            self.drift_detected_total.with_label_values(&[pipeline, kind.label()]);
        }
        for result in DeployOutcome::RESULTS {
            self.deployments_total.with_label_values(&[pipeline, result.as_str()]);
        }
        for trigger in RollbackTrigger::ALL {
            self.rollbacks_total.with_label_values(&[pipeline, trigger.as_str()]);
        }
        self.image_drift.with_label_values(&[pipeline]);
    }

    /// Removes every series of a pipeline that left Git.
    pub(crate) fn forget_pipeline(&self, pipeline: &str) {
        for result in ReconcileResult::ALL {
            let _ = self.reconcile_total.remove_label_values(&[pipeline, result.as_str()]);
        }
        let _ = self.reconcile_duration_seconds.remove_label_values(&[pipeline]);
        for kind in Kind::ALL {
            let _ = self.drift_resources.remove_label_values(&[pipeline, kind.label()]);
            let _ = self.drift_detected_total.remove_label_values(&[pipeline, kind.label()]);
        }
        for result in DeployOutcome::RESULTS {
            let _ = self.deployments_total.remove_label_values(&[pipeline, result.as_str()]);
            let _ = self.deploy_duration_seconds.remove_label_values(&[pipeline, result.as_str()]);
        }
        for trigger in RollbackTrigger::ALL {
            let _ = self.rollbacks_total.remove_label_values(&[pipeline, trigger.as_str()]);
        }
        let _ = self.image_drift.remove_label_values(&[pipeline]);
        for condition in ConditionType::ALL {
            for status in Truth::ALL {
                let _ = self.pipeline_condition.remove_label_values(&[pipeline, condition.as_str(), status.as_str()]);
            }
        }
    }

    /// Sets the drift gauge of every kind the pipeline has from the resources found drifted.
    pub(crate) fn set_drift(&self, pipeline: &str, kinds: &[Kind], drifted: &[Kind]) {
        for kind in kinds {
            let n = drifted.iter().filter(|k| *k == kind).count() as i64;
            self.drift_resources.with_label_values(&[pipeline, kind.label()]).set(n);
            if n > 0 {
                self.drift_detected_total.with_label_values(&[pipeline, kind.label()]).inc_by(n as u64);
            }
        }
    }

    /// Mirrors a pipeline's conditions: 1 on the current status, 0 on the others.
    pub(crate) fn set_conditions(&self, pipeline: &str, conditions: &[Condition]) {
        for c in conditions {
            for status in Truth::ALL {
                self.pipeline_condition.with_label_values(&[pipeline, c.kind.as_str(), status.as_str()]).set(i64::from(c.status == status));
            }
        }
    }

    /// Counts one reconcile of a pipeline and how long it took.
    pub(crate) fn record_reconcile(&self, pipeline: &str, result: ReconcileResult, took: Duration) {
        self.reconcile_total.with_label_values(&[pipeline, result.as_str()]).inc();
        self.reconcile_duration_seconds.with_label_values(&[pipeline]).observe(took.as_secs_f64());
    }

    /// Image drift, and every deployment that ended since the last pass: its result, duration
    /// and rollback.
    pub(crate) fn record_delivery(&self, pipeline: &str, report: &Report) {
        self.image_drift.with_label_values(&[pipeline]).set(i64::from(report.image_drift));
        for d in report.finished.iter().filter(|d| counts_as_deployment(d)) {
            let result = outcome(d).result().as_str();
            self.deployments_total.with_label_values(&[pipeline, result]).inc();
            if let (Some(start), Some(end)) = (d.created, d.completed)
                && let Ok(took) = end.duration_since(start)
            {
                self.deploy_duration_seconds.with_label_values(&[pipeline, result]).observe(took.as_secs_f64());
            }
            if let Some(trigger) = rollback_trigger(d) {
                self.rollbacks_total.with_label_values(&[pipeline, trigger.as_str()]).inc();
            }
        }
    }

    /// One fetch of the config repository.
    pub(crate) fn record_fetch(&self, succeeded: bool, took: Duration) {
        self.git_fetch_duration_seconds.observe(took.as_secs_f64());
        self.git_fetch_total.with_label_values(&[if succeeded { "success" } else { "error" }]).inc();
        if succeeded {
            let unix = std::time::SystemTime::now().duration_since(std::time::SystemTime::UNIX_EPOCH).unwrap_or_default();
            self.git_last_success_timestamp_seconds.set(unix.as_secs_f64());
        }
    }

    /// One message of the change queue.
    pub(crate) fn record_change(&self, outcome: ChangeOutcome) {
        self.change_events_total.with_label_values(&[outcome.as_str()]).inc();
    }

    /// One message of the trigger queue.
    pub(crate) fn record_trigger(&self, outcome: TriggerOutcome) {
        self.trigger_events_total.with_label_values(&[outcome.as_str()]).inc();
    }

    /// Whether the trigger queue is read.
    pub(crate) fn set_trigger_queue_up(&self, up: bool) {
        self.trigger_queue_up.with_label_values::<&str>(&[]).set(i64::from(up));
    }

    /// This replica's id, and its lease transitions' series at zero.
    pub(crate) fn set_replica(&self, id: &str) {
        self.replica_info.with_label_values(&[id]).set(1);
        for transition in LeaseTransition::ALL {
            self.lease_transitions_total.with_label_values(&[transition.as_str()]);
        }
    }

    pub(crate) fn record_lease(&self, transition: LeaseTransition) {
        self.lease_transitions_total.with_label_values(&[transition.as_str()]).inc();
    }

    /// The pipelines of each shard this replica holds; nothing else.
    pub(crate) fn set_shard_pipelines(&self, per_shard: &std::collections::BTreeMap<u16, usize>) {
        self.shard_pipelines.reset();
        for (shard, n) in per_shard {
            self.shard_pipelines.with_label_values(&[&shard.to_string()]).set(*n as i64);
        }
    }

    /// Whether the change feed is read.
    pub(crate) fn set_change_feed_up(&self, up: bool) {
        self.change_feed_up.with_label_values::<&str>(&[]).set(i64::from(up));
    }

    /// Records the revision fetched, keeping a single `slipway_git_revision_info` series.
    pub(crate) fn set_revision(&self, revision: &str) {
        self.git_revision_info.reset();
        self.git_revision_info.with_label_values(&[revision]).set(1);
    }

    /// The Prometheus text exposition of everything.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer).expect("text encoding cannot fail");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }
}

impl CallObserver for Metrics {
    fn observe(&self, service: &str, operation: &str, succeeded: bool, took: Option<Duration>) {
        self.aws_requests_total.with_label_values(&[service, operation, if succeeded { "success" } else { "error" }]).inc();
        if let Some(took) = took {
            self.aws_request_duration_seconds.with_label_values(&[service]).observe(took.as_secs_f64());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipeline_has_its_series_at_zero_from_the_start_and_loses_them_when_removed() {
        let m = Metrics::new();
        m.init_pipeline("web", &[Kind::EcrRepository, Kind::CodePipeline]);
        let text = m.render();
        assert!(text.contains(r#"slipway_reconcile_total{pipeline="web",result="error"} 0"#), "{text}");
        assert!(text.contains(r#"slipway_drift_resources{kind="codepipeline",pipeline="web"} 0"#), "{text}");
        assert!(text.contains(r#"slipway_rollbacks_total{pipeline="web",trigger="manual"} 0"#), "{text}");
        m.set_drift("web", &[Kind::EcrRepository, Kind::CodePipeline], &[Kind::CodePipeline]);
        assert!(m.render().contains(r#"slipway_drift_resources{kind="codepipeline",pipeline="web"} 1"#));
        m.forget_pipeline("web");
        assert!(!m.render().contains(r#"pipeline="web""#), "{}", m.render());
        assert!(m.render().contains("slipway_build_info{version="));
    }

    #[test]
    fn an_ecs_deployment_that_rolled_itself_back_counts_like_a_codedeploy_one() {
        use slipway_core::delivery::api::{ServiceDeployment, ServiceDeploymentStatus};
        let m = Metrics::new();
        m.init_pipeline("web", &[Kind::EcsServiceSettings]);
        assert!(
            m.render().contains(r#"slipway_rollbacks_total{pipeline="web",trigger="circuit_breaker"} 0"#),
            "every trigger from the start"
        );
        let start = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let ended = ServiceDeployment {
            arn: "arn:aws:ecs:eu-west-1:1:service-deployment/demo/web/x".into(),
            status: ServiceDeploymentStatus::RollbackSuccessful,
            status_reason: None,
            stage: None,
            created: Some(start),
            finished: Some(start + Duration::from_secs(300)),
            task_definition: None,
            hooks: Vec::new(),
            triggered_alarms: Vec::new(),
            circuit_breaker_tripped: true,
            rollback_reason: Some("circuit breaker".into()),
        };
        m.record_delivery("web", &Report { finished: vec![ended.into_deployment()], ..Report::default() });
        let text = m.render();
        assert!(text.contains(r#"slipway_rollbacks_total{pipeline="web",trigger="circuit_breaker"} 1"#), "{text}");
        assert!(text.contains(r#"slipway_deployments_total{pipeline="web",result="rolled_back"} 1"#), "{text}");
        assert!(text.contains(r#"slipway_deploy_duration_seconds_sum{pipeline="web",result="rolled_back"} 300"#), "{text}");
    }

    #[test]
    fn only_one_revision_series_exists() {
        let m = Metrics::new();
        m.set_revision("aaa");
        m.set_revision("bbb");
        let text = m.render();
        assert!(text.contains(r#"slipway_git_revision_info{revision="bbb"} 1"#) && !text.contains(r#"revision="aaa""#), "{text}");
    }
}
