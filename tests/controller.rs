//! `slipway run` end to end: a real Git server (git daemon), the AWS emulator, the HTTP
//! endpoints, webhooks and a graceful stop.

mod common;

use std::future::Future;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::git::{GitDaemon, Remote};
use common::http::{get, request};
use common::proxy::FaultProxy;
use common::{Moto, edit, repo_root};
use serde_json::{Value, json};

struct Slipway {
    child: Child,
    port: u16,
    _workdir: tempfile::TempDir,
}

impl Slipway {
    fn start(moto: &Moto, repo: &str, extra: &[&str]) -> Slipway {
        Slipway::start_via(moto, &moto.endpoint, repo, extra)
    }

    /// Started with AWS at `endpoint` (a proxy in front of `moto`).
    fn start_via(moto: &Moto, endpoint: &str, repo: &str, extra: &[&str]) -> Slipway {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let workdir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(workdir.path().join("slipway.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_slipway"))
            .arg("run")
            .args(["--repo", repo, "--listen", &format!("127.0.0.1:{port}")])
            .arg("--workdir")
            .arg(workdir.path().join("checkout"))
            .args(extra)
            .envs(moto.env())
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("SLIPWAY_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Slipway { child, port, _workdir: workdir }
    }

    fn status(&self) -> Value {
        let (code, body) = get(self.port, "/status").expect("slipway answers /status");
        assert_eq!(code, 200);
        serde_json::from_str(&body).unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._workdir.path().join("slipway.log")).unwrap_or_default()
    }

    /// Sends SIGTERM and returns how long the process took to exit, and whether it succeeded.
    fn terminate(&mut self) -> (Duration, bool) {
        let started = Instant::now();
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        loop {
            if let Some(exit) = self.child.try_wait().unwrap() {
                return (started.elapsed(), exit.success());
            }
            assert!(started.elapsed() < Duration::from_secs(40), "slipway did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Slipway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it holds or `limit` passes.
async fn eventually<F, Fut>(what: &str, limit: Duration, slipway: &Slipway, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}\n--- slipway log ---\n{}", slipway.log());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn pipeline<'a>(status: &'a Value, name: &str) -> Option<&'a Value> {
    status["pipelines"].as_array()?.iter().find(|p| p["name"] == name)
}

fn condition(status: &Value, name: &str, kind: &str) -> Option<(String, String, String)> {
    let c = pipeline(status, name)?["conditions"].as_array()?.iter().find(|c| c["type"] == kind)?.clone();
    Some((c["status"].as_str()?.to_string(), c["reason"].as_str()?.to_string(), c["message"].as_str()?.to_string()))
}

/// The examples without the nginx pipeline, as a Git repository served by git daemon.
fn config_remote() -> (Remote, tempfile::TempDir) {
    let seed = tempfile::tempdir().unwrap();
    common::copy_dir(&repo_root().join("examples"), seed.path());
    std::fs::remove_file(seed.path().join("pipelines/nginx.yaml")).unwrap();
    (Remote::with_contents(seed.path()), seed)
}

fn restore_nginx(work: &Path) {
    std::fs::copy(repo_root().join("examples/pipelines/nginx.yaml"), work.join("pipelines/nginx.yaml")).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_controller_follows_git_isolates_a_broken_manifest_repairs_drift_and_stops_gracefully() {
    let moto = Moto::start_bootstrapped();
    let aws = moto.aws().await;
    let (remote, _seed) = config_remote();
    let daemon = GitDaemon::serve(remote.dir.path());
    let url = format!("git://127.0.0.1:{}/config.git", daemon.port);
    let mut slipway = Slipway::start(&moto, &url, &["--interval", "1s", "--drift-interval", "3s"]);
    let limit = Duration::from_secs(60);

    eventually("ready", limit, &slipway, || async { get(slipway.port, "/readyz").is_some_and(|(c, _)| c == 200) }).await;
    assert_eq!(get(slipway.port, "/healthz").unwrap().0, 200);
    let status: serde_json::Value = serde_json::from_str(&get(slipway.port, "/status").unwrap().1).unwrap();
    assert_eq!(status["ready"], true, "/status and /readyz tell one truth");
    assert!(aws.codepipeline.get_pipeline().name("web").send().await.is_ok());

    // A new pipeline committed: it exists in AWS within seconds.
    restore_nginx(&remote.work());
    remote.commit_and_push("add nginx");
    eventually("the nginx pipeline exists", limit, &slipway, || async {
        aws.codepipeline.get_pipeline().name("nginx").send().await.is_ok()
    })
    .await;

    // A change committed: it converges.
    edit(&remote.work(), "pipelines/web.yaml", "scanOnPush: true", "scanOnPush: false");
    remote.commit_and_push("no scanning");
    let scan_on_push = || async {
        let repos = aws.ecr.describe_repositories().repository_names("demo-web").send().await.unwrap().repositories.unwrap();
        repos[0].image_scanning_configuration.as_ref().unwrap().scan_on_push
    };
    eventually("scanOnPush is off", limit, &slipway, || async { !scan_on_push().await }).await;

    // A broken manifest: the other pipeline keeps converging and /status names the error.
    edit(&remote.work(), "pipelines/nginx.yaml", "  source:\n", "  sauce:\n");
    edit(&remote.work(), "pipelines/web.yaml", "untaggedExpiryDays: 1", "untaggedExpiryDays: 3");
    let broken = remote.commit_and_push("break nginx, change web");
    let expiry = || async {
        let text = aws.ecr.get_lifecycle_policy().repository_name("demo-web").send().await.unwrap().lifecycle_policy_text.unwrap();
        serde_json::from_str::<Value>(&text).unwrap()["rules"][0]["selection"]["countNumber"].as_u64()
    };
    eventually("web converges despite nginx", limit, &slipway, || async { expiry().await == Some(3) }).await;
    eventually("/status names nginx's error", limit, &slipway, || async {
        condition(&slipway.status(), "nginx", "Stalled")
            .is_some_and(|(s, reason, message)| s == "True" && reason == "InvalidManifest" && message.contains("sauce"))
    })
    .await;
    // The lifecycle policy is written mid-apply; the revision is recorded when the apply ends.
    eventually("web records the broken revision as applied", limit, &slipway, || async {
        pipeline(&slipway.status(), "web").is_some_and(|p| p["lastAppliedRevision"] == broken)
    })
    .await;
    let status = slipway.status();
    assert_eq!(status["source"]["revision"], broken);
    assert_eq!(status["invalid"][0]["file"], "pipelines/nginx.yaml");

    // Fixed: it recovers.
    edit(&remote.work(), "pipelines/nginx.yaml", "  sauce:\n", "  source:\n");
    remote.commit_and_push("fix nginx");
    eventually("nginx is ready again", limit, &slipway, || async {
        condition(&slipway.status(), "nginx", "Ready").is_some_and(|(s, _, _)| s == "True")
    })
    .await;

    // A managed resource deleted behind slipway's back: restored within the drift interval.
    aws.events.remove_targets().rule("slipway-web-ecr").ids("codepipeline").send().await.unwrap();
    aws.events.delete_rule().name("slipway-web-ecr").send().await.unwrap();
    let deleted_at = Instant::now();
    eventually("the deleted rule is restored", Duration::from_secs(30), &slipway, || async {
        let targets = aws.events.list_targets_by_rule().rule("slipway-web-ecr").send().await;
        targets.is_ok_and(|t| t.targets.is_some_and(|t| t.len() == 1))
    })
    .await;
    println!("rule restored {:?} after deletion (drift interval 3s)", deleted_at.elapsed());
    // Ready again only once a later observation finds the repair in place.
    eventually("web is ready once the repair is verified", limit, &slipway, || async {
        condition(&slipway.status(), "web", "Ready").is_some_and(|(s, _, _)| s == "True")
    })
    .await;

    // `slipway status` shows it as a table.
    let out = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(["status", "--server", &format!("http://127.0.0.1:{}", slipway.port)])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}");
    let web_row = table.lines().find(|l| l.starts_with("web ")).unwrap_or_else(|| panic!("{table}"));
    assert!(web_row.split_whitespace().collect::<Vec<_>>()[..4] == ["web", "auto", "True", "True"], "{table}");

    let (elapsed, ok) = slipway.terminate();
    assert!(elapsed < Duration::from_secs(30), "stopped in {elapsed:?}");
    assert!(ok, "{}", slipway.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_trigger_a_fetch_only_for_authenticated_callers() {
    let moto = Moto::start_bootstrapped();
    let aws = moto.aws().await;
    let (remote, _seed) = config_remote();
    let token = "gl-token-123";
    let secret = "gh-secret-456";
    // Polling is hourly: only a webhook can make slipway see the next commit quickly.
    let mut slipway = Slipway::start(
        &moto,
        &remote.file_url(),
        &["--interval", "1h", "--drift-interval", "1h", "--gitlab-webhook-token", token, "--github-webhook-secret", secret],
    );
    let limit = Duration::from_secs(60);
    eventually("ready", limit, &slipway, || async { get(slipway.port, "/readyz").is_some_and(|(c, _)| c == 200) }).await;
    let first = slipway.status()["source"]["revision"].clone();

    edit(&remote.work(), "pipelines/web.yaml", "scanOnPush: true", "scanOnPush: false");
    let second = remote.commit_and_push("no scanning");
    let body = br#"{"ref":"refs/heads/main"}"#;

    // Wrong or missing secrets: 401, and nothing is fetched.
    let bad_sig = slipway::webhook::github_signature("wrong", body);
    let calls: [Vec<(&str, &str)>; 3] = [
        vec![("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &bad_sig)],
        vec![("X-GitHub-Event", "push")],
        vec![("X-Gitlab-Event", "Push Hook"), ("X-Gitlab-Token", "nope")],
    ];
    for (i, headers) in calls.iter().enumerate() {
        let path = if i < 2 { "/webhooks/github" } else { "/webhooks/gitlab" };
        assert_eq!(request(slipway.port, "POST", path, headers, body).unwrap().0, 401, "{headers:?}");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(slipway.status()["source"]["revision"], first, "a rejected webhook triggers nothing");

    // Too large: refused before it is read.
    let huge = vec![b' '; slipway::http::MAX_WEBHOOK_BODY + 1];
    let good_huge = slipway::webhook::github_signature(secret, &huge);
    let (code, _) =
        request(slipway.port, "POST", "/webhooks/github", &[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &good_huge)], &huge)
            .unwrap();
    assert_eq!(code, 413);

    // A signed GitHub push: fetched at once and converged.
    let good = slipway::webhook::github_signature(secret, body);
    let (code, _) =
        request(slipway.port, "POST", "/webhooks/github", &[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &good)], body).unwrap();
    assert_eq!(code, 202);
    eventually("the pushed revision is seen", limit, &slipway, || async { slipway.status()["source"]["revision"] == second }).await;
    eventually("and applied", limit, &slipway, || async {
        let repos = aws.ecr.describe_repositories().repository_names("demo-web").send().await.unwrap().repositories.unwrap();
        !repos[0].image_scanning_configuration.as_ref().unwrap().scan_on_push
    })
    .await;

    // A GitLab push with the right token works the same way.
    edit(&remote.work(), "pipelines/web.yaml", "scanOnPush: false", "scanOnPush: true");
    let third = remote.commit_and_push("scan again");
    let (code, _) =
        request(slipway.port, "POST", "/webhooks/gitlab", &[("X-Gitlab-Event", "Push Hook"), ("X-Gitlab-Token", token)], body).unwrap();
    assert_eq!(code, 202);
    eventually("the GitLab-pushed revision is seen", limit, &slipway, || async { slipway.status()["source"]["revision"] == third }).await;

    let log = slipway.log();
    for secret_value in [token, secret] {
        assert!(!log.contains(secret_value), "a webhook secret reached the log");
        assert!(!slipway.status().to_string().contains(secret_value), "a webhook secret reached /status");
    }
    let (_, ok) = slipway.terminate();
    assert!(ok, "{}", slipway.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watched_local_directory_is_applied_on_change_and_once_reports_the_pass_result() {
    let moto = Moto::start_bootstrapped();
    let aws = moto.aws().await;
    let repo = common::example_repo();
    let dir = repo.path().to_str().unwrap().to_string();

    // --once: one pass, exit status tells whether everything converged.
    let once = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(["run", "--once", "--repo", &dir, "--listen", "127.0.0.1:0"])
        .envs(moto.env())
        .output()
        .unwrap();
    assert!(once.status.success(), "{}", String::from_utf8_lossy(&once.stderr));
    assert!(aws.codepipeline.get_pipeline().name("nginx").send().await.is_ok());

    // Watching: polling is hourly, so only the file watch can pick the edit up quickly.
    let slipway = Slipway::start(&moto, &dir, &["--interval", "1h", "--drift-interval", "1h"]);
    let limit = Duration::from_secs(60);
    eventually("ready", limit, &slipway, || async { get(slipway.port, "/readyz").is_some_and(|(c, _)| c == 200) }).await;
    edit(repo.path(), "pipelines/web.yaml", "scanOnPush: true", "scanOnPush: false");
    eventually("the edit is applied", limit, &slipway, || async {
        let repos = aws.ecr.describe_repositories().repository_names("demo-web").send().await.unwrap().repositories.unwrap();
        !repos[0].image_scanning_configuration.as_ref().unwrap().scan_on_push
    })
    .await;

    // sync: observe reports drift and changes nothing; suspend leaves the pipeline alone.
    edit(repo.path(), "pipelines/web.yaml", "spec:\n", "spec:\n  sync: observe\n");
    edit(repo.path(), "pipelines/nginx.yaml", "spec:\n", "spec:\n  suspend: true\n");
    eventually("web is in observe mode", limit, &slipway, || async {
        pipeline(&slipway.status(), "web").is_some_and(|p| p["sync"] == "observe")
    })
    .await;
    aws.events.remove_targets().rule("slipway-web-ecr").ids("codepipeline").send().await.unwrap();
    aws.events.remove_targets().rule("slipway-nginx-s3").ids("codepipeline").send().await.unwrap();
    // Any edit makes the watcher re-read the repository and the changed pipeline re-check.
    edit(repo.path(), "pipelines/web.yaml", "untaggedExpiryDays: 1", "untaggedExpiryDays: 2");
    eventually("web reports the drift", limit, &slipway, || async {
        condition(&slipway.status(), "web", "Drifted")
            .is_some_and(|(s, _, m)| s == "True" && m.contains("eventbridge-rule slipway-web-ecr"))
    })
    .await;
    let status = slipway.status();
    assert_eq!(condition(&status, "nginx", "Ready").unwrap().1, "Suspended");
    for rule in ["slipway-web-ecr", "slipway-nginx-s3"] {
        let targets = aws.events.list_targets_by_rule().rule(rule).send().await.unwrap().targets.unwrap_or_default();
        assert!(targets.is_empty(), "{rule} was changed although its pipeline only observes or is suspended");
    }
    drop(slipway);

    edit(repo.path(), "pipelines/nginx.yaml", "  suspend: true\n", "");
    edit(repo.path(), "pipelines/web.yaml", "  sync: observe\n", "");
    edit(repo.path(), "pipelines/nginx.yaml", "  source:\n", "  sauce:\n");
    let once = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(["run", "--once", "--repo", &dir, "--listen", "127.0.0.1:0"])
        .envs(moto.env())
        .output()
        .unwrap();
    assert_eq!(once.status.code(), Some(1), "a pass with an invalid manifest fails");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_controller_deploys_a_pushed_image_once_and_follows_the_deployment() {
    let moto = Moto::start_bootstrapped();
    let aws = moto.aws().await;
    let repo = common::example_repo();
    // web deploys directly: slipway registers the task definition and creates the deployment.
    // The whole `pipeline:` section goes (it has no effect in direct mode).
    let path = repo.path().join("pipelines/web.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let (head, rest) = text.split_once("  pipeline:\n").expect("web.yaml has a pipeline section");
    let (_, tail) = rest.split_once("  triggers:\n").expect("followed by triggers");
    std::fs::write(&path, format!("{head}  triggers:\n{tail}")).unwrap();
    edit(
        repo.path(),
        "pipelines/web.yaml",
        "    autoRollbackOn: [DEPLOYMENT_FAILURE]\n",
        "    autoRollbackOn: [DEPLOYMENT_FAILURE]\n    mode: direct\n",
    );
    let dir = repo.path().to_str().unwrap().to_string();
    let slipway = Slipway::start(&moto, &dir, &["--interval", "1h", "--drift-interval", "2s", "--watch-interval", "1s"]);
    let limit = Duration::from_secs(60);
    eventually("ready", limit, &slipway, || async { get(slipway.port, "/readyz").is_some_and(|(c, _)| c == 200) }).await;
    assert!(aws.codepipeline.get_pipeline().name("web").send().await.is_err(), "direct mode creates no CodePipeline");

    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1, "digest": format!("sha256:{:0>64}", 1)},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 1, "digest": format!("sha256:{:a>64}", 1)}]
    });
    let pushed =
        aws.ecr.put_image().repository_name("demo-web").image_manifest(manifest.to_string()).image_tag("latest").send().await.unwrap();
    let digest = pushed.image.unwrap().image_id.unwrap().image_digest.unwrap();

    let deployments = || async {
        aws.codedeploy
            .list_deployments()
            .application_name("web")
            .deployment_group_name("web")
            .send()
            .await
            .unwrap()
            .deployments
            .unwrap_or_default()
    };
    eventually("a deployment is created", limit, &slipway, || async { !deployments().await.is_empty() }).await;
    let id = deployments().await[0].clone();
    // The deployment is created mid-pass; /status catches up when the pass ends.
    eventually("the deployment is followed", limit, &slipway, || async {
        pipeline(&slipway.status(), "web").is_some_and(|p| p["delivery"]["activeDeployment"] == id.as_str())
    })
    .await;
    let status = slipway.status();
    let web = pipeline(&status, "web").unwrap();
    assert_eq!(web["delivery"]["trackedDigest"], digest);
    assert!(
        web["events"].as_array().unwrap().iter().any(|e| e["reason"] == "Deploying" && e["message"].as_str().unwrap().contains(&digest))
    );
    // moto keeps the deployment `Created` forever: slipway keeps watching and starts no second one.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(deployments().await.len(), 1, "one deployment per digest, never a second while one runs");
    let info = aws.codedeploy.get_deployment().deployment_id(&id).send().await.unwrap().deployment_info.unwrap();
    let content = info.revision.unwrap().app_spec_content.unwrap().content.unwrap();
    assert!(content.contains("task-definition/web:"), "{content}");
}

/// An API call as CloudTrail delivers it to EventBridge (`AWS API Call via CloudTrail`), made by
/// `actor`. moto emits none: the test puts the same shape on the bus, and moto's rule sends it on.
fn api_call_event(source: &str, call: &str, params: Value, actor: &str) -> aws_sdk_eventbridge::types::PutEventsRequestEntry {
    let detail = json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "arn": actor},
        "eventSource": format!("{}.amazonaws.com", source.trim_start_matches("aws.")),
        "eventName": call,
        "requestParameters": params,
        "readOnly": false,
    });
    aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
        .source(source)
        .detail_type("AWS API Call via CloudTrail")
        .detail(detail.to_string())
        .build()
}

/// Reconciles of `pipeline` so far, whatever their result.
fn reconciles(metrics: &str, pipeline: &str) -> u64 {
    let series = format!("slipway_reconcile_total{{pipeline=\"{pipeline}\"");
    metrics.lines().filter(|l| l.starts_with(&series)).filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok()).sum()
}

async fn tag_mutability(aws: &slipway_aws::Aws, repository: &str) -> String {
    let repos = aws.ecr.describe_repositories().repository_names(repository).send().await.unwrap().repositories.unwrap();
    repos[0].image_tag_mutability.as_ref().unwrap().as_str().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn with_change_events_a_console_edit_is_repaired_in_seconds_reading_only_its_pipeline() {
    let moto = Moto::start_bootstrapped();
    let aws = moto.aws().await;
    let proxy = FaultProxy::start(&moto.endpoint);
    let repo = common::example_repo();
    let slipway = Slipway::start_via(
        &moto,
        &proxy.endpoint,
        repo.path().to_str().unwrap(),
        &["--change-events", "--interval", "1h", "--drift-interval", "1h"],
    );
    let metrics = || get(slipway.port, "/metrics").map(|(_, body)| body).unwrap_or_default();
    eventually("ready, with the change feed up", Duration::from_secs(60), &slipway, || async {
        get(slipway.port, "/readyz").is_some_and(|(c, _)| c == 200) && metrics().contains("slipway_change_feed_up 1")
    })
    .await;

    let feed = &slipway.status()["changeFeed"];
    assert!(feed["up"] == true && feed["queue"].as_str().is_some_and(|q| q.ends_with("/slipway-changes")), "{feed}");
    let table = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(["status", "--server", &format!("http://127.0.0.1:{}", slipway.port)])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&table.stdout).contains("change feed up ("), "{}", String::from_utf8_lossy(&table.stdout));

    // The queue and the rule are this installation's, and the rule sends to the queue.
    let url = aws.sqs.get_queue_url().queue_name("slipway-changes").send().await.unwrap().queue_url.unwrap();
    let tags = aws.sqs.list_queue_tags().queue_url(&url).send().await.unwrap().tags.unwrap();
    assert_eq!(tags.get("slipway.dev/managed-by").map(String::as_str), Some("slipway"));
    assert_eq!(tags.get("slipway.dev/installation").map(String::as_str), Some("slipway-state-123456789012-ap-northeast-1"));
    let targets = aws.events.list_targets_by_rule().rule("slipway-changes").send().await.unwrap().targets.unwrap();
    assert_eq!(targets.len(), 1);
    assert!(targets[0].arn.ends_with(":sqs:ap-northeast-1:123456789012:slipway-changes"), "{}", targets[0].arn);

    // Someone makes demo-web's tags immutable by hand; CloudTrail's event of it reaches the bus.
    aws.ecr
        .put_image_tag_mutability()
        .repository_name("demo-web")
        .image_tag_mutability(aws_sdk_ecr::types::ImageTagMutability::Immutable)
        .send()
        .await
        .unwrap();
    let reconciled = reconciles(&metrics(), "web");
    let before = proxy.seen().len();
    let started = Instant::now();
    let params = json!({"repositoryName": "demo-web", "imageTagMutability": "IMMUTABLE"});
    let event = api_call_event("aws.ecr", "PutImageTagMutability", params.clone(), "arn:aws:iam::123456789012:user/alice");
    aws.events.put_events().entries(event).send().await.unwrap();
    while tag_mutability(&aws, "demo-web").await != "MUTABLE" {
        assert!(started.elapsed() < Duration::from_secs(10), "not repaired within 10 s\n--- slipway log ---\n{}", slipway.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = started.elapsed();
    let calls: Vec<String> = proxy.seen()[before..].to_vec();
    eprintln!("repaired {took:?} after the event, with {} AWS calls", calls.len());
    assert!(calls.iter().any(|c| c.starts_with("PutImageTagMutability") && c.contains("demo-web")), "{calls:#?}");
    let others: Vec<&String> = calls.iter().filter(|c| c.contains("nginx")).collect();
    assert!(others.is_empty(), "the other pipeline was read: {others:#?}");
    assert!(slipway.log().contains("a change in AWS: re-checking the pipeline"), "{}", slipway.log());

    // slipway's own writes come back as events too (here, its repair): they re-check nothing.
    eventually("the repairing pass ends", Duration::from_secs(30), &slipway, || async { reconciles(&metrics(), "web") > reconciled }).await;
    let before = proxy.seen().len();
    let own = api_call_event("aws.ecr", "PutImageTagMutability", params, aws.caller.as_deref().unwrap());
    aws.events.put_events().entries(own).send().await.unwrap();
    eventually("its own write is counted", Duration::from_secs(30), &slipway, || async {
        metrics().contains(r#"slipway_change_events_total{outcome="own-write"} 1"#)
    })
    .await;
    let after: Vec<String> = proxy.seen()[before..].iter().filter(|c| c.contains("demo-web")).cloned().collect();
    assert!(after.is_empty(), "its own write made slipway read the pipeline again: {after:#?}");

    // The queue deleted under it: said once in the log, then set up again (its long poll ends
    // within 20 s, the next one finds no queue).
    aws.sqs.delete_queue().queue_url(&url).send().await.unwrap();
    eventually("the queue is back", Duration::from_secs(60), &slipway, || async {
        aws.sqs.get_queue_url().queue_name("slipway-changes").send().await.is_ok() && slipway.status()["changeFeed"]["up"] == true
    })
    .await;
    assert_eq!(slipway.log().matches("change feed down").count(), 1, "{}", slipway.log());
}

async fn executions(aws: &slipway_aws::Aws, pipeline: &str) -> usize {
    let listed = aws.codepipeline.list_pipeline_executions().pipeline_name(pipeline).send().await.unwrap();
    listed.pipeline_execution_summaries.unwrap_or_default().len()
}

fn event(source: &str, detail_type: &str, detail: Value) -> aws_sdk_eventbridge::types::PutEventsRequestEntry {
    aws_sdk_eventbridge::types::PutEventsRequestEntry::builder().source(source).detail_type(detail_type).detail(detail.to_string()).build()
}

/// `--trigger-route queue`: no rule per trigger, one rule and one queue for the installation,
/// and `slipway run` starts the pipelines the queued events trigger, including events sent while
/// it was not running (apply sets the queue up first).
#[tokio::test]
async fn on_the_queue_route_one_rule_carries_every_trigger_and_run_starts_the_pipelines_even_after_downtime() {
    let moto = Moto::start_bootstrapped();
    let aws = moto.aws().await;
    let repo = common::example_repo();
    let path = repo.path().to_str().unwrap();
    let applied = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(["apply", "--repo", path, "--trigger-route", "queue"])
        .envs(moto.env())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&applied.stdout);
    assert!(applied.status.success(), "{out}{}", String::from_utf8_lossy(&applied.stderr));
    assert!(out.contains("Trigger queue slipway-triggers: ready"), "{out}");
    let rules = aws.events.list_rules().name_prefix("slipway-").send().await.unwrap().rules.unwrap_or_default();
    assert_eq!(rules.iter().filter_map(|r| r.name.as_deref()).collect::<Vec<_>>(), ["slipway-triggers"], "no rule per trigger");

    // While nothing reads the queue: a push of demo-web:latest, and one of a repository no
    // pipeline watches.
    let (web, nginx) = (executions(&aws, "web").await, executions(&aws, "nginx").await);
    let push = |repository: &str| {
        event(
            "aws.ecr",
            "ECR Image Action",
            json!({"action-type": "PUSH", "result": "SUCCESS", "repository-name": repository, "image-tag": "latest"}),
        )
    };
    aws.events.put_events().entries(push("demo-web")).entries(push("someone-elses")).send().await.unwrap();

    let slipway = Slipway::start(&moto, path, &["--trigger-route", "queue", "--interval", "1h", "--drift-interval", "1h"]);
    let metrics = || get(slipway.port, "/metrics").map(|(_, body)| body).unwrap_or_default();
    eventually("web started by the queued push", Duration::from_secs(60), &slipway, || async { executions(&aws, "web").await > web }).await;
    // Three messages: web's zip written by apply (S3's notification), the push of demo-web, and
    // the other push. Both of web's start it; only the other one matches nothing.
    let count = |outcome: &str| {
        let line = format!(r#"slipway_trigger_events_total{{outcome="{outcome}"}} "#);
        metrics().lines().find_map(|l| l.strip_prefix(line.as_str()).and_then(|n| n.parse::<u64>().ok())).unwrap_or(0)
    };
    eventually("the three queued events handled", Duration::from_secs(30), &slipway, || async {
        count("started") + count("unmatched") >= 3 && metrics().contains("slipway_trigger_queue_up 1")
    })
    .await;
    assert_eq!((count("started"), count("unmatched")), (2, 1), "the push of demo-web matched web's trigger");
    assert_eq!(executions(&aws, "nginx").await, nginx, "nginx watches neither");
    assert!(slipway.log().contains("started by a trigger"), "{}", slipway.log());

    // nginx's zip written, as a trail records it (its trigger is on the CloudTrail route).
    let web = executions(&aws, "web").await;
    let started = Instant::now();
    let written = json!({
        "eventSource": "s3.amazonaws.com", "eventName": "PutObject",
        "requestParameters": {"bucketName": "slipway-demo-code-pipeline", "key": "docker-image/docker_image.zip"}
    });
    aws.events.put_events().entries(event("aws.s3", "AWS API Call via CloudTrail", written)).send().await.unwrap();
    eventually("nginx started", Duration::from_secs(30), &slipway, || async { executions(&aws, "nginx").await > nginx }).await;
    eprintln!("nginx started {:?} after the event", started.elapsed());
    assert_eq!(executions(&aws, "web").await, web, "web's trigger does not match nginx's object");
}
