//! Several replicas: the lease table against moto's DynamoDB, whose conditional writes are what
//! keeps two replicas from holding one shard; the fence that keeps a replica from writing without
//! its lease; and three real `slipway run` processes sharing one repository of 30 pipelines,
//! one killed (`kill -9`) and one paused (`SIGSTOP`) past its lease, with moto's request recorder
//! showing which replica (by its access key) wrote what.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use common::http::get;
use common::proxy::operation_of;
use common::{Moto, repo_root};
use serde_json::Value;
use slipway_aws::calls::is_read_only;
use slipway_aws::fence::{self, Board, Fence};
use slipway_aws::lease::{self, Written};
use slipway_aws::{ErrorKind, aws_err};
use slipway_core::lease::{Lease, LeaseTimes, LeaseWrite, plan_lease};

const TABLE: &str = "slipway-leases";

#[tokio::test]
async fn conditional_writes_let_one_replica_hold_a_shard_and_fence_a_stale_holder() {
    let moto = Moto::start();
    let aws = moto.aws().await;
    assert!(lease::ensure_table(&aws, TABLE, false).await.unwrap_err().to_string().contains("does not exist"));
    lease::ensure_table(&aws, TABLE, true).await.unwrap();
    lease::ensure_table(&aws, TABLE, true).await.unwrap();
    let t = LeaseTimes::default();

    // Both replicas see no lease and both try to take shard 0: one wins.
    lease::heartbeat(&aws, TABLE, "a", 31_000).await.unwrap();
    lease::heartbeat(&aws, TABLE, "b", 31_000).await.unwrap();
    let take = plan_lease("a", None, true, true, 1_000, &t).unwrap();
    assert_eq!(lease::write(&aws, TABLE, 0, "a", &take, 1_000).await.unwrap(), Written::Done);
    assert_eq!(lease::write(&aws, TABLE, 0, "b", &take, 1_000).await.unwrap(), Written::Lost);
    let read = lease::read(&aws, TABLE).await.unwrap();
    assert_eq!(read.members, [("a".to_string(), 31_000), ("b".to_string(), 31_000)]);
    let held = read.leases[0].clone();
    assert_eq!((held.holder.as_str(), held.expires, held.token), ("a", 31_000, 1));

    // Only the holder renews; b cannot take an unexpired lease.
    let renew = plan_lease("a", Some(&held), true, false, 11_000, &t).unwrap();
    assert_eq!(lease::write(&aws, TABLE, 0, "b", &renew, 11_000).await.unwrap(), Written::Lost);
    assert_eq!(lease::write(&aws, TABLE, 0, "a", &renew, 11_000).await.unwrap(), Written::Done);
    let early = LeaseWrite::Acquire { token: Some(1), expires: 70_000 };
    assert_eq!(lease::write(&aws, TABLE, 0, "b", &early, 20_000).await.unwrap(), Written::Lost, "not expired yet");

    // a is paused past its lease; b takes the shard; a wakes up and its renewal is refused.
    let expired = lease::read(&aws, TABLE).await.unwrap().leases[0].clone();
    let takeover = plan_lease("b", Some(&expired), true, true, 45_000, &t).unwrap();
    assert_eq!(lease::write(&aws, TABLE, 0, "b", &takeover, 45_000).await.unwrap(), Written::Done);
    assert_eq!(lease::write(&aws, TABLE, 0, "a", &renew, 46_000).await.unwrap(), Written::Lost, "fenced by the token");
    let now_b = lease::read(&aws, TABLE).await.unwrap().leases[0].clone();
    assert_eq!((now_b.holder.as_str(), now_b.token), ("b", 2));

    // b releases it: the next assignee takes it at once.
    let release = LeaseWrite::Release { token: 2 };
    assert_eq!(lease::write(&aws, TABLE, 0, "b", &release, 50_000).await.unwrap(), Written::Done);
    let released = lease::read(&aws, TABLE).await.unwrap().leases[0].clone();
    let again = plan_lease("a", Some(&released), true, true, 50_000, &t).unwrap();
    assert_eq!(lease::write(&aws, TABLE, 0, "a", &again, 50_000).await.unwrap(), Written::Done);
    assert_eq!(lease::read(&aws, TABLE).await.unwrap().leases[0].token, 3);
}

#[tokio::test]
async fn a_write_without_the_lease_is_not_sent_while_reads_and_unfenced_calls_are() {
    let moto = Moto::start();
    let aws = moto.aws().await;
    let board = Arc::new(Board::new("a".into(), LeaseTimes::new(6_000)));
    let now = fence::now_millis();
    board.set(Lease { shard: 1, holder: "a".into(), expires: now + 6_000, token: 1 });
    let fenced = || Some(Fence { shard: 1, board: board.clone() });
    let create = |name: &str| aws.ecr.create_repository().repository_name(name).send();
    fence::scope(fenced(), create("held")).await.expect("the lease is held: sent");

    // Paused past its lease (or lost it): the write fails before it is sent.
    board.set(Lease { shard: 1, holder: "a".into(), expires: now - 1, token: 1 });
    let err = fence::scope(fenced(), create("expired")).await.map_err(aws_err("ecr", "CreateRepository")).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Fenced, "{err}");
    assert!(err.to_string().contains("no longer holds the lease of shard 1"), "{err}");
    board.drop_shard(1);
    let err = fence::scope(fenced(), create("dropped")).await.map_err(aws_err("ecr", "CreateRepository")).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Fenced);

    // Reads go through; moto never saw the refused writes.
    let listed = fence::scope(fenced(), aws.ecr.describe_repositories().send()).await.unwrap();
    let names: Vec<&str> = listed.repositories().iter().filter_map(|r| r.repository_name()).collect();
    assert_eq!(names, ["held"]);
    // Outside a scope (one replica, the CLI, the lease table's own writes) nothing is checked.
    create("unfenced").await.unwrap();
}

/// The lease of the end-to-end test: failover is due within twice this.
const LEASE: Duration = Duration::from_secs(8);
const PIPELINES: usize = 30;

/// `examples/pipelines/web.yaml` (deploying directly, without a CodePipeline) as `app-01` …
/// `app-30`, each with its own app settings; the bootstrap's apps file names them.
fn thirty_pipelines() -> (tempfile::TempDir, PathBuf) {
    let repo = tempfile::tempdir().unwrap();
    let root = repo_root().join("examples");
    let web = std::fs::read_to_string(root.join("pipelines/web.yaml")).unwrap();
    let (head, rest) = web.split_once("  pipeline:\n").expect("web.yaml has a pipeline section");
    let (_, tail) = rest.split_once("  triggers:\n").expect("followed by triggers");
    let direct = format!("{head}  triggers:\n{tail}").replacen(
        "    autoRollbackOn: [DEPLOYMENT_FAILURE]\n",
        "    autoRollbackOn: [DEPLOYMENT_FAILURE]\n    mode: direct\n",
        1,
    );
    std::fs::create_dir_all(repo.path().join("pipelines")).unwrap();
    let mut apps = String::new();
    for i in 1..=PIPELINES {
        let name = format!("app-{i:02}");
        let text = direct
            .replacen("  name: web\n", &format!("  name: {name}\n"), 1)
            .replace("demo-web", &format!("demo-{name}"))
            .replace("apps/web/settings", &format!("apps/{name}/settings"))
            .replacen("    service: web ", &format!("    service: {name} "), 1)
            .replacen("[web-blue, web-green]", &format!("[{name}-blue, {name}-green]"), 1);
        std::fs::write(repo.path().join(format!("pipelines/{name}.yaml")), text).unwrap();
        let settings = repo.path().join(format!("apps/{name}/settings"));
        std::fs::create_dir_all(&settings).unwrap();
        let taskdef = std::fs::read_to_string(root.join("apps/web/settings/taskdef.json")).unwrap();
        let taskdef =
            taskdef.replace("\"family\": \"web\"", &format!("\"family\": \"{name}\"")).replace("/ecs/web", &format!("/ecs/{name}"));
        std::fs::write(settings.join("taskdef.json"), taskdef).unwrap();
        std::fs::copy(root.join("apps/web/settings/appspec.yaml"), settings.join("appspec.yaml")).unwrap();
        apps.push_str(&format!("{name}:application\n"));
    }
    let apps_file = repo.path().join("apps.txt");
    std::fs::write(&apps_file, apps).unwrap();
    (repo, apps_file)
}

struct Replica {
    id: &'static str,
    child: Child,
    port: u16,
    workdir: tempfile::TempDir,
}

impl Replica {
    /// `slipway run` as replica `id`, signing its requests with the access key `replica-<id>`.
    fn start(moto: &Moto, repo: &Path, id: &'static str) -> Replica {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let workdir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(workdir.path().join("slipway.log")).unwrap();
        let lease = format!("{}s", LEASE.as_secs());
        let child = Command::new(env!("CARGO_BIN_EXE_slipway"))
            .arg("run")
            .args(["--repo", repo.to_str().unwrap(), "--listen", &format!("127.0.0.1:{port}")])
            .arg("--workdir")
            .arg(workdir.path().join("checkout"))
            .args(["--ha-table", "slipway-leases", "--ha-create-table", "--replica-id", id, "--lease-duration", &lease])
            .args(["--interval", "1h", "--drift-interval", "5s", "--watch-interval", "1s"])
            .envs(moto.env())
            .env("AWS_ACCESS_KEY_ID", format!("replica-{id}"))
            .env("SLIPWAY_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Replica { id, child, port, workdir }
    }

    fn status(&self) -> Option<Value> {
        let (code, body) = get(self.port, "/status")?;
        (code == 200).then(|| serde_json::from_str(&body).unwrap())
    }

    /// The pipelines this replica reports Ready=True.
    fn ready(&self) -> BTreeSet<String> {
        let Some(status) = self.status() else { return BTreeSet::new() };
        let pipelines = status["pipelines"].as_array().cloned().unwrap_or_default();
        let ready =
            |p: &Value| p["conditions"].as_array().is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
        pipelines.iter().filter(|p| ready(p)).map(|p| p["name"].as_str().unwrap().to_owned()).collect()
    }

    fn held(&self) -> usize {
        self.status().and_then(|s| s["replica"]["held"].as_array().map(Vec::len)).unwrap_or(0)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.workdir.path().join("slipway.log")).unwrap_or_default()
    }

    fn signal(&self, signal: &str) {
        assert!(Command::new("kill").args([signal, &self.child.id().to_string()]).status().unwrap().success());
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn logs(replicas: &[&Replica]) -> String {
    replicas.iter().map(|r| format!("--- replica {} ---\n{}", r.id, r.log())).collect()
}

async fn eventually(what: &str, limit: Duration, replicas: &[&Replica], mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "timed out waiting until {what}\n{}", logs(replicas));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    started.elapsed()
}

/// Who wrote what, from moto's recording: replica id → the pipelines (`app-NN`) named by the
/// mutating calls it signed. The lease table's own calls are left out (every replica writes its
/// heartbeat and tries leases there).
fn writers(recording: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in std::fs::read_to_string(recording).unwrap_or_default().lines() {
        let entry: Value = serde_json::from_str(line).unwrap();
        let header = |name: &str| {
            entry["headers"].as_object().and_then(|h| h.iter().find(|(k, _)| k.eq_ignore_ascii_case(name))).and_then(|(_, v)| v.as_str())
        };
        let body = match (entry["body"].as_str(), entry["body_encoded"].as_bool()) {
            (Some(b), Some(true)) => base64::engine::general_purpose::STANDARD.decode(b).unwrap_or_default(),
            (Some(b), _) => b.as_bytes().to_vec(),
            _ => Vec::new(),
        };
        let target = header("X-Amz-Target");
        let Some(op) = operation_of(entry["method"].as_str().unwrap_or(""), target, &body) else { continue };
        if is_read_only(&op) || target.is_some_and(|t| t.starts_with("DynamoDB")) {
            continue;
        }
        let Some(replica) = header("Authorization").and_then(|a| a.split("Credential=replica-").nth(1)).and_then(|c| c.split('/').next())
        else {
            continue;
        };
        let text = format!("{} {}", entry["url"].as_str().unwrap_or(""), String::from_utf8_lossy(&body));
        let named = text.match_indices("app-").filter_map(|(at, _)| {
            let digits = text.get(at + 4..at + 6)?;
            digits.chars().all(|c| c.is_ascii_digit()).then(|| format!("app-{digits}"))
        });
        out.entry(replica.to_owned()).or_default().extend(named);
    }
    out
}

/// Every pipeline named by at most one replica's writes.
fn assert_one_writer_each(writers: &BTreeMap<String, BTreeSet<String>>, when: &str) {
    let mut by: BTreeMap<&String, Vec<&String>> = BTreeMap::new();
    for (replica, pipelines) in writers {
        for p in pipelines {
            by.entry(p).or_default().push(replica);
        }
    }
    let shared: Vec<_> = by.iter().filter(|(_, w)| w.len() > 1).collect();
    assert!(shared.is_empty(), "{when}: pipelines written by more than one replica: {shared:?}");
}

/// An image manifest whose digest differs with `n`.
fn image(n: u32) -> String {
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1, "digest": format!("sha256:{n:0>64}")},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 1, "digest": format!("sha256:{n:a>64}")}]
    })
    .to_string()
}

async fn push(aws: &slipway_aws::Aws, pipeline: &str, n: u32) {
    aws.ecr.put_image().repository_name(format!("demo-{pipeline}")).image_manifest(image(n)).image_tag("latest").send().await.unwrap();
}

/// The pipelines whose ECR repository carries `team=<team>`.
async fn tagged(aws: &slipway_aws::Aws, team: &str) -> usize {
    let mut n = 0;
    for i in 1..=PIPELINES {
        let arn = aws.arn("ecr", &format!("repository/demo-app-{i:02}"));
        let tags = aws.ecr.list_tags_for_resource().resource_arn(arn).send().await.unwrap();
        n += usize::from(tags.tags().iter().any(|t| t.key() == "team" && t.value() == team));
    }
    n
}

async fn deployments(aws: &slipway_aws::Aws, pipeline: &str) -> Vec<String> {
    let listed = aws.codedeploy.list_deployments().application_name(pipeline).deployment_group_name(pipeline).send().await;
    listed.map(|l| l.deployments.unwrap_or_default()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn three_replicas_share_thirty_pipelines_one_writer_each_and_survive_a_kill_and_a_pause() {
    let recording_dir = tempfile::tempdir().unwrap();
    let recording = recording_dir.path().join("moto.jsonl");
    let moto = Moto::start_recording(&recording);
    let (repo, apps) = thirty_pipelines();
    let out = Command::new(repo_root().join("examples/bootstrap-emulator"))
        .arg("--apps-file")
        .arg(&apps)
        .arg("--quiet")
        .envs(moto.env())
        .output()
        .unwrap();
    assert!(out.status.success(), "bootstrap: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(&recording, "").unwrap();
    let aws = moto.aws().await;

    // 1. Three replicas converge the repository, each pipeline written by one of them only.
    let mut replicas: Vec<Replica> = ["a", "b", "c"].into_iter().map(|id| Replica::start(&moto, repo.path(), id)).collect();
    let all = || -> BTreeSet<String> { (1..=PIPELINES).map(|i| format!("app-{i:02}")).collect() };
    let refs: Vec<&Replica> = replicas.iter().collect();
    let took = eventually("30 pipelines are Ready, each on one replica", Duration::from_secs(180), &refs, || {
        let ready: Vec<BTreeSet<String>> = replicas.iter().map(Replica::ready).collect();
        ready.iter().map(BTreeSet::len).sum::<usize>() == PIPELINES && ready.iter().flatten().cloned().collect::<BTreeSet<_>>() == all()
    })
    .await;
    let owners: Vec<BTreeSet<String>> = replicas.iter().map(Replica::ready).collect();
    println!("converged in {took:?}; pipelines per replica: {:?}", owners.iter().map(BTreeSet::len).collect::<Vec<_>>());
    let written = writers(&recording);
    assert_one_writer_each(&written, "first convergence");
    assert_eq!(written.values().flatten().cloned().collect::<BTreeSet<_>>(), all(), "every pipeline was written (created)");
    for (replica, owned) in replicas.iter().zip(&owners) {
        let wrote = written.get(replica.id).cloned().unwrap_or_default();
        assert!(wrote.is_subset(owned), "replica {} wrote pipelines it does not report: {:?}", replica.id, wrote.difference(owned));
    }

    // 2. A deployment runs on the replica with the most pipelines; it is killed; a new digest is
    // pushed for another of its pipelines during the failover.
    let victim = (0..3).max_by_key(|i| owners[*i].len()).unwrap();
    let mut theirs = owners[victim].iter();
    let (running, pushed_late) = (theirs.next().unwrap().clone(), theirs.next().expect("the victim holds two pipelines").clone());
    push(&aws, &running, 1).await;
    let mut first = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while first.is_empty() {
        assert!(Instant::now() < deadline, "no deployment of the pushed image\n{}", replicas[victim].log());
        tokio::time::sleep(Duration::from_millis(200)).await;
        first = deployments(&aws, &running).await;
    }
    std::fs::write(&recording, "").unwrap();
    replicas[victim].signal("-KILL");
    let killed = Instant::now();
    push(&aws, &pushed_late, 2).await;
    let dead = replicas.remove(victim);
    let survivors: Vec<&Replica> = replicas.iter().collect();
    eventually("the survivors report every pipeline Ready", 2 * LEASE, &survivors, || {
        survivors.iter().flat_map(|r| r.ready()).collect::<BTreeSet<_>>() == all()
    })
    .await;
    let failover = killed.elapsed();
    println!(
        "failover: the killed replica's {} pipelines reconciled by the others {failover:?} after kill -9 (lease {LEASE:?})",
        owners[victim].len()
    );
    // The deployment in flight is followed by its new holder, never started again; the digest
    // pushed during the failover is deployed once.
    eventually("the new holder follows the running deployment", Duration::from_secs(30), &survivors, || {
        survivors.iter().filter_map(|r| r.status()).any(|s| {
            s["pipelines"].as_array().is_some_and(|ps| {
                ps.iter().any(|p| p["name"] == running.as_str() && p["delivery"]["activeDeployment"] == first[0].as_str())
            })
        })
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while deployments(&aws, &pushed_late).await.is_empty() {
        assert!(Instant::now() < deadline, "the digest pushed during failover was not deployed\n{}", logs(&survivors));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(deployments(&aws, &running).await, first, "the deployment in flight was not started again");
    assert_eq!(deployments(&aws, &pushed_late).await.len(), 1, "one deployment for the digest pushed during failover");
    assert_one_writer_each(&writers(&recording), "after the kill");
    drop(dead);

    // 3. One survivor is paused (SIGSTOP) while it applies a change to every pipeline, past its
    // lease; the other takes every shard and applies it. Woken (SIGCONT), the paused one writes
    // nothing: its leases are gone, and its writes in flight are fenced.
    let (paused, other) = (&replicas[0], &replicas[1]);
    for i in 1..=PIPELINES {
        common::edit(repo.path(), &format!("pipelines/app-{i:02}.yaml"), "team: platform", "team: platform-2");
    }
    tokio::time::sleep(Duration::from_millis(900)).await;
    paused.signal("-STOP");
    let both = [paused, other];
    eventually("the other replica holds every shard", 3 * LEASE, &both[1..], || other.held() == 16).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while tagged(&aws, "platform-2").await < PIPELINES {
        assert!(Instant::now() < deadline, "the change was not applied to every pipeline\n{}", other.log());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    std::fs::write(&recording, "").unwrap();
    paused.signal("-CONT");
    eventually("the woken replica sees it holds nothing", 3 * LEASE, &both, || paused.held() == 0).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let written = writers(&recording);
    assert_eq!(written.get(paused.id), None, "the paused replica wrote after waking: {written:?}\n{}", paused.log());
    let fenced = paused.log().matches("no longer holds the lease").count();
    println!("after SIGCONT: no write from replica {}; {fenced} of its writes refused by the fence", paused.id);
}
