//! Observability: the alert rules pass promtool's checks and unit tests, the rules and the
//! dashboard use only metrics slipway exports, and a real Prometheus scraping a running slipway
//! sees drift rise when a resource is changed behind slipway's back and fall once it is repaired.

mod common;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::http::get;
use common::{Moto, repo_root};
use serde_json::Value;

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(repo_root().join("manifests/monitoring"))
        .output()
        .expect("promtool is installed (scripts/setup installs prometheus)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn the_alert_rules_are_valid_and_pass_their_unit_tests() {
    assert!(promtool(&["check", "rules", "alerts.yaml"]).contains("SUCCESS: 9 rules found"));
    promtool(&["test", "rules", "alerts.test.yaml"]);
    // Every alert has a unit test.
    let rules = std::fs::read_to_string(repo_root().join("manifests/monitoring/alerts.yaml")).unwrap();
    let tests = std::fs::read_to_string(repo_root().join("manifests/monitoring/alerts.test.yaml")).unwrap();
    for alert in rules.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")) {
        assert!(tests.contains(&format!("alertname: {alert}")), "alert {alert} has no promtool test");
    }
}

/// `slipway_…` names used in a text, with histogram suffixes removed.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("slipway_") {
        let name: String = rest[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        rest = &rest[i + name.len()..];
        let base = ["_bucket", "_sum", "_count"].iter().fold(name.clone(), |n, s| n.strip_suffix(s).map(str::to_owned).unwrap_or(n));
        names.insert(base);
    }
    names
}

#[test]
fn rules_and_dashboard_use_only_exported_metrics() {
    let defined = metric_names(&std::fs::read_to_string(repo_root().join("src/metrics.rs")).unwrap());
    for file in ["alerts.yaml", "dashboard.json"] {
        let used = metric_names(&std::fs::read_to_string(repo_root().join("manifests/monitoring").join(file)).unwrap());
        assert!(!used.is_empty());
        let unknown: Vec<&String> = used.difference(&defined).filter(|n| !n.starts_with("slipway_live")).collect();
        assert!(unknown.is_empty(), "{file} uses metrics slipway does not export: {unknown:?}");
    }
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(repo_root().join("manifests/monitoring/dashboard.json")).unwrap()).unwrap();
    assert!(dashboard["panels"].as_array().unwrap().len() >= 10);
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn encode(query: &str) -> String {
    query
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// The first value of an instant query, when there is one.
fn query(port: u16, q: &str) -> Option<f64> {
    let (code, body) = get(port, &format!("/api/v1/query?query={}", encode(q)))?;
    if code != 200 {
        return None;
    }
    let v: Value = serde_json::from_str(&body).ok()?;
    v["data"]["result"].as_array()?.first()?["value"][1].as_str()?.parse().ok()
}

async fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_prometheus_sees_drift_rise_and_fall() {
    let moto = Moto::start_bootstrapped();
    let aws = moto.aws().await;
    let repo = common::example_repo();
    let slipway_port = free_port();
    let _slipway = Killed(
        Command::new(env!("CARGO_BIN_EXE_slipway"))
            .args([
                "run",
                "--repo",
                repo.path().to_str().unwrap(),
                "--interval",
                "1h",
                "--drift-interval",
                "3s",
                "--listen",
                &format!("127.0.0.1:{slipway_port}"),
            ])
            .envs(moto.env())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let prom_dir = tempfile::tempdir().unwrap();
    let prom_port = free_port();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: slipway\n    static_configs:\n      - targets: ['127.0.0.1:{slipway_port}']\n"
    );
    std::fs::write(prom_dir.path().join("prometheus.yml"), config).unwrap();
    let _prometheus = Killed(
        Command::new("prometheus")
            .arg(format!("--config.file={}", prom_dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", prom_dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus is installed (scripts/setup installs it)"),
    );
    let limit = Duration::from_secs(60);
    wait_for("prometheus is ready", limit, || get(prom_port, "/-/ready").is_some_and(|(c, _)| c == 200)).await;
    let drift = r#"slipway_drift_resources{pipeline="web",kind="eventbridge-rule"}"#;
    wait_for("slipway is scraped and the drift series exists", limit, || {
        query(prom_port, r#"up{job="slipway"}"#) == Some(1.0) && query(prom_port, drift).is_some()
    })
    .await;
    assert_eq!(query(prom_port, r#"slipway_build_info"#), Some(1.0));
    // The first pass creates everything (which counts as drift); the one after it finds none.
    wait_for("a second reconcile found no drift", limit, || {
        query(prom_port, r#"sum(slipway_reconcile_total{pipeline="web"})"#).is_some_and(|v| v >= 2.0)
            && query(prom_port, drift) == Some(0.0)
    })
    .await;

    // Behind slipway's back: the rule loses its target.
    aws.events.remove_targets().rule("slipway-web-ecr").ids("codepipeline").send().await.unwrap();
    let removed = Instant::now();
    // Only samples scraped after the removal count.
    wait_for("drift rises", limit, || {
        let since = removed.elapsed().as_secs();
        since >= 1 && query(prom_port, &format!("max_over_time({drift}[{since}s])")) == Some(1.0)
    })
    .await;
    assert!(query(prom_port, r#"sum(slipway_drift_detected_total{pipeline="web",kind="eventbridge-rule"})"#).is_some_and(|v| v >= 1.0));
    wait_for("drift falls after the repair", limit, || query(prom_port, drift) == Some(0.0)).await;
    let targets = aws.events.list_targets_by_rule().rule("slipway-web-ecr").send().await.unwrap().targets.unwrap_or_default();
    assert_eq!(targets.len(), 1, "slipway put the target back");
    assert!(
        query(prom_port, r#"sum(slipway_aws_requests_total{service="eventbridge",operation="PutTargets",result="success"})"#)
            .is_some_and(|v| v >= 2.0)
    );
}

#[test]
fn the_helm_chart_installs_the_same_alerts() {
    let ours = std::fs::read_to_string(repo_root().join("manifests/monitoring/alerts.yaml")).unwrap();
    let chart_copy = std::fs::read_to_string(repo_root().join("charts/slipway/files/alerts.yaml")).unwrap();
    assert!(ours == chart_copy, "charts/slipway/files/alerts.yaml must be a copy of manifests/monitoring/alerts.yaml");
    let out = Command::new(repo_root().join(".venv/bin/helm"))
        .args([
            "template",
            "slipway",
            "charts/slipway",
            "--set",
            "prometheusRule.enabled=true",
            "--show-only",
            "templates/prometheusrule.yaml",
        ])
        .current_dir(repo_root())
        .output()
        .expect("helm is installed (scripts/install-helm)");
    let rendered = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rule: serde_yaml_ng::Value = serde_yaml_ng::from_str(&rendered).unwrap();
    let alerts: Vec<&str> = rule["spec"]["groups"][0]["rules"].as_sequence().unwrap().iter().filter_map(|r| r["alert"].as_str()).collect();
    assert_eq!(alerts.len(), 9, "{alerts:?}");
    assert!(rendered.contains("{{ $labels.pipeline }}"), "Prometheus templates pass through Helm untouched");
}
