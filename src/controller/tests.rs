//! The loop's timing on a paused tokio clock: polling with jitter, drift re-checks, backoff,
//! webhooks, broken manifests, watching a deployment, bounded concurrency and shutdown.
//!
//! The world here is scripted (a hand-written fake, on purpose): real Git and AWS calls cannot run
//! on a paused clock. It reads the real example manifests from a temporary copy the tests edit,
//! and answers each reconcile from a per-pipeline script. tests/controller.rs runs the same loop
//! end to end against git servers and moto in real time.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::task::JoinHandle;

use slipway_aws::{AwsError, ErrorKind};
use slipway_core::compile::Placement;
use slipway_core::delivery::Report;
use slipway_core::plan::Orphan;
use slipway_core::prune::PruneHold;
use slipway_core::reconcile::{ReconcileError, Reconciled};
use slipway_core::resource::DeletionPolicy;

use super::*;
use crate::engine;
use crate::source::git::GitError;
use world::FetchError;

/// One scripted reconcile: how long it takes and how it ends.
struct Turn {
    takes: Duration,
    result: Result<Reconciled, ReconcileError>,
    delivery: Option<Report>,
}

impl Turn {
    fn synced() -> Turn {
        Turn {
            takes: Duration::ZERO,
            result: Ok(Reconciled { outcome: Outcome::Synced { repaired: vec![] }, drift: vec![] }),
            delivery: None,
        }
    }
    fn failed(retryable: bool) -> Turn {
        let kind = if retryable { ErrorKind::Throttled } else { ErrorKind::AccessDenied };
        let error = AwsError { service: "ecr", operation: "DescribeRepositories", kind, code: None, message: "scripted failure".into() };
        Turn { result: Err(ReconcileError::Observe(error)), ..Turn::synced() }
    }
    fn wrote(what: &str) -> Turn {
        Turn { result: Ok(Reconciled { outcome: Outcome::Synced { repaired: vec![what.into()] }, drift: vec![] }), ..Turn::synced() }
    }
    fn taking(secs: u64) -> Turn {
        Turn { takes: Duration::from_secs(secs), ..Turn::synced() }
    }
}

struct Scripted {
    /// A copy of examples/ that the tests edit as if they committed to Git.
    repo: tempfile::TempDir,
    start: Instant,
    /// (seconds since start, what happened)
    events: Mutex<Vec<(f64, String)>>,
    /// Per pipeline, what its next reconciles do; an empty script reconciles at once, in sync.
    steps: Mutex<HashMap<String, VecDeque<Turn>>>,
    fail_fetch: AtomicBool,
    /// What the orphan sweep finds.
    orphans: Mutex<Vec<Orphan>>,
    /// The change feed the loop reads (taken by `changes`); the test sends through `feed_tx`.
    feed: Mutex<Option<mpsc::Receiver<FeedSignal>>>,
    feed_tx: mpsc::Sender<FeedSignal>,
}

impl Scripted {
    fn new() -> Arc<Scripted> {
        let repo = tempfile::tempdir().unwrap();
        let (feed_tx, feed) = mpsc::channel(16);
        copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples"), repo.path());
        Arc::new(Scripted {
            repo,
            start: Instant::now(),
            events: Mutex::default(),
            steps: Mutex::default(),
            fail_fetch: AtomicBool::new(false),
            orphans: Mutex::default(),
            feed: Mutex::new(Some(feed)),
            feed_tx,
        })
    }

    fn script(&self, pipeline: &str, steps: impl IntoIterator<Item = Turn>) {
        self.steps.lock().unwrap().entry(pipeline.to_string()).or_default().extend(steps);
    }

    fn log(&self, what: String) {
        self.events.lock().unwrap().push((self.start.elapsed().as_secs_f64(), what));
    }

    /// When `what` happened, in seconds since the start.
    fn times(&self, what: &str) -> Vec<f64> {
        self.events.lock().unwrap().iter().filter(|(_, w)| w == what).map(|(t, _)| *t).collect()
    }

    /// Changes a pipeline manifest, as a commit would.
    fn edit(&self, file: &str, from: &str, to: &str) {
        let path = self.repo.path().join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} does not contain {from:?}");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    }
}

impl World for Scripted {
    fn source(&self) -> (String, Option<String>) {
        ("scripted".into(), None)
    }

    fn watch(&self) -> Option<mpsc::Receiver<()>> {
        None
    }

    fn changes(&self) -> Option<mpsc::Receiver<FeedSignal>> {
        self.feed.lock().unwrap().take()
    }

    async fn fetch(&self) -> Result<Prepared, FetchError> {
        self.log("fetch".into());
        if self.fail_fetch.load(Ordering::SeqCst) {
            let message = "scripted: the Git server is unreachable".to_string();
            return Err(FetchError::Git(GitError::Fetch { url: "scripted".into(), reference: "main".into(), message }));
        }
        Ok(engine::prepare(self.repo.path(), &Default::default())?)
    }

    fn placement(&self) -> Placement {
        Placement {
            partition: "aws".into(),
            region: "eu-west-1".into(),
            account: "123456789012".into(),
            installation: "slipway-state".into(),
        }
    }

    async fn read_ahead(&self, _scope: slipway_aws::ahead::Scope) -> Arc<slipway_aws::ahead::ReadAhead> {
        Arc::default()
    }

    async fn reconcile(&self, job: Job) -> Pass {
        let name = job.desired.name.clone();
        self.log(format!("reconcile {name}"));
        let step = self.steps.lock().unwrap().get_mut(&name).and_then(VecDeque::pop_front).unwrap_or_else(Turn::synced);
        tokio::time::sleep(step.takes).await;
        Pass { result: step.result, memory: job.memory, delivery: step.delivery.map(Ok) }
    }

    async fn find_orphans(&self, _desired: &HashSet<Key>, protected: &HashSet<String>) -> Result<Vec<Orphan>, AwsError> {
        self.log("sweep".into());
        // As the inventory does: a protected pipeline's resources are never orphans.
        Ok(self.orphans.lock().unwrap().iter().filter(|o| !protected.contains(&o.pipeline)).cloned().collect())
    }

    async fn prune(&self, orphans: &[Orphan]) -> (Vec<Key>, Vec<String>) {
        self.log("prune".into());
        self.orphans.lock().unwrap().clear();
        (orphans.iter().map(|o| o.key.clone()).collect(), vec![])
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target: PathBuf = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn settings() -> Settings {
    Settings {
        interval: Duration::from_secs(60),
        drift_interval: Duration::from_secs(300),
        concurrency: 4,
        prune: false,
        prune_policy: Default::default(),
        once: false,
        shutdown_grace: Duration::from_secs(20),
        watch_interval: Duration::from_secs(10),
        full_check_interval: None,
    }
}

struct Running {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    handle: JoinHandle<bool>,
}

impl Running {
    /// Signals shutdown and returns the run's result once the loop has ended.
    async fn stop(self) -> bool {
        self.stop.send(true).unwrap();
        self.handle.await.unwrap()
    }
}

fn start(settings: Settings, world: &Arc<Scripted>) -> Running {
    let shared = Arc::new(Shared::default());
    let (stop, stop_rx) = watch::channel(false);
    let handle = tokio::spawn(Controller::new(settings, world.clone(), shared.clone(), Arc::new(Metrics::new())).run(stop_rx));
    Running { shared, stop, handle }
}

/// Lets the paused clock run until `secs` after the world's start.
async fn until(world: &Scripted, secs: u64) {
    tokio::time::sleep_until(world.start + Duration::from_secs(secs)).await;
}

/// Runs a scenario on a paused clock, and fails (instead of hanging) when it makes no progress in
/// real time: a loop that never goes idle never lets a paused clock advance.
fn on_paused_clock(scenario: impl Future<Output = ()> + Send + 'static) {
    let runner = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap().block_on(scenario)
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !runner.is_finished() {
        assert!(
            std::time::Instant::now() < deadline,
            "no progress on the paused clock after 30 s of real time: the loop never goes idle (is it spinning?)"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    if let Err(panic) = runner.join() {
        std::panic::resume_unwind(panic);
    }
}

#[track_caller]
fn assert_times(actual: Vec<f64>, expected: &[f64]) {
    let close = actual.len() == expected.len() && actual.iter().zip(expected).all(|(a, e)| (a - e).abs() < 0.01);
    assert!(close, "happened at {actual:?}, expected {expected:?}");
}

async fn ready_condition(shared: &Shared, pipeline: &str) -> Option<(String, String)> {
    let st = shared.status.read().await;
    let c = st.pipelines.iter().find(|p| p.name == pipeline)?.condition(ConditionType::Ready)?;
    Some((c.status.as_str().to_string(), c.reason.clone()))
}

#[test]
fn polls_with_jitter_and_rechecks_every_pipeline_each_drift_interval() {
    on_paused_clock(async {
        let world = Scripted::new();
        let run = start(settings(), &world);
        until(&world, 1000).await;

        let fetches = world.times("fetch");
        assert_eq!(fetches[0], 0.0);
        for gap in fetches.windows(2).map(|w| w[1] - w[0]) {
            assert!((54.0..=66.0).contains(&gap), "poll interval 60s ± 10%, got gaps {fetches:?}");
        }
        assert!((15..=19).contains(&fetches.len()), "{fetches:?}");
        // Nothing changes in Git, so each pipeline is looked at once per drift interval, not per poll.
        for pipeline in ["web", "nginx"] {
            assert_times(world.times(&format!("reconcile {pipeline}")), &[0.0, 300.0, 600.0, 900.0]);
        }
        // Orphans are looked for once every pipeline has had its pass, then each drift interval.
        assert_times(world.times("sweep"), &[0.0, 300.0, 600.0, 900.0]);
        assert!(run.shared.status.read().await.ready);
        assert!(run.stop().await);
    });
}

#[test]
fn transient_failures_back_off_without_delaying_other_pipelines_and_permanent_ones_wait() {
    on_paused_clock(async {
        let world = Scripted::new();
        world.script("web", [Turn::failed(true), Turn::failed(true), Turn::failed(true)]);
        world.script("nginx", [Turn::taking(100), Turn::failed(false)]);
        let run = start(settings(), &world);
        until(&world, 999).await;

        let web = world.times("reconcile web");
        assert_eq!(web.len(), 7, "{web:?}");
        let gaps: Vec<f64> = web.windows(2).map(|w| w[1] - w[0]).collect();
        // Exponential from 2s with jitter of up to one more delay...
        assert!((2.0..=4.0).contains(&gaps[0]) && (4.0..=8.0).contains(&gaps[1]) && (8.0..=16.0).contains(&gaps[2]), "{web:?}");
        // ...all while nginx's slow pass (0 → 100s) was still running...
        assert!(web[3] < 100.0, "{web:?}");
        // ...and reset by the success: from then on, one look per drift interval.
        assert!(gaps[3..].iter().all(|g| (g - 300.0).abs() < 0.01), "{web:?}");
        // nginx: done at 100s, due again at 400s, where a permanent failure waits a full drift interval.
        assert_times(world.times("reconcile nginx"), &[0.0, 400.0, 700.0]);
        assert_eq!(ready_condition(&run.shared, "web").await.unwrap().0, "True");
        run.stop().await;
    });
}

#[test]
fn concurrency_is_bounded() {
    on_paused_clock(async {
        let world = Scripted::new();
        world.script("nginx", [Turn::taking(100)]);
        let run = start(Settings { concurrency: 1, ..settings() }, &world);
        until(&world, 150).await;
        // Pipelines go in name order; with one slot, web waits for nginx's 100-second pass.
        assert_times(world.times("reconcile nginx"), &[0.0]);
        assert_times(world.times("reconcile web"), &[100.0]);
        run.stop().await;
    });
}

#[test]
fn a_webhook_fetches_at_once_only_changed_pipelines_reconcile_and_a_broken_one_waits_for_a_fix() {
    on_paused_clock(async {
        let world = Scripted::new();
        let hour = Duration::from_secs(3600);
        let run = start(Settings { interval: hour, drift_interval: hour, ..settings() }, &world);

        // A commit and its webhook at 10s: fetched at once; only the changed pipeline reconciles.
        until(&world, 10).await;
        world.edit("pipelines/web.yaml", "scanOnPush: true", "scanOnPush: false");
        run.shared.refresh.notify_one();
        until(&world, 20).await;
        assert_times(world.times("fetch"), &[0.0, 10.0]);
        assert_times(world.times("reconcile web"), &[0.0, 10.0]);
        assert_times(world.times("reconcile nginx"), &[0.0]);

        // A broken manifest at 20s is reported and left alone, past its drift interval, until fixed.
        world.edit("pipelines/nginx.yaml", "  source:\n", "  sauce:\n");
        run.shared.refresh.notify_one();
        until(&world, 30).await;
        assert_eq!(ready_condition(&run.shared, "nginx").await.unwrap(), ("False".into(), "InvalidManifest".into()));
        until(&world, 3700).await;
        assert_times(world.times("reconcile nginx"), &[0.0]);
        assert_times(world.times("reconcile web"), &[0.0, 10.0, 3610.0]);
        world.edit("pipelines/nginx.yaml", "  sauce:\n", "  source:\n");
        run.shared.refresh.notify_one();
        until(&world, 3710).await;
        assert_times(world.times("reconcile nginx"), &[0.0, 3700.0]);
        assert_eq!(ready_condition(&run.shared, "nginx").await.unwrap().0, "True");

        // A failed fetch keeps the last good revision: the pipelines stay as they were.
        world.fail_fetch.store(true, Ordering::SeqCst);
        run.shared.refresh.notify_one();
        until(&world, 3720).await;
        let st = run.shared.status.read().await;
        assert!(st.source.last_fetch_error.as_deref().is_some_and(|e| e.contains("unreachable")), "{:?}", st.source);
        assert_eq!(st.pipelines.len(), 2);
        drop(st);
        assert!(!run.stop().await, "a failing fetch makes the run's result a failure");
    });
}

#[test]
fn a_commit_during_a_reconcile_is_applied_right_after_it() {
    on_paused_clock(async {
        let world = Scripted::new();
        world.script("web", [Turn::taking(50)]);
        let hour = Duration::from_secs(3600);
        let run = start(Settings { interval: hour, drift_interval: hour, ..settings() }, &world);
        until(&world, 10).await;
        world.edit("pipelines/web.yaml", "scanOnPush: true", "scanOnPush: false");
        run.shared.refresh.notify_one();
        until(&world, 100).await;
        // Never two passes of one pipeline at once: the new revision waits for the running pass.
        assert_times(world.times("reconcile web"), &[0.0, 50.0]);
        run.stop().await;
    });
}

#[test]
fn a_deployment_in_flight_is_looked_at_every_watch_interval() {
    on_paused_clock(async {
        let world = Scripted::new();
        let waiting =
            Report { step: Some(Step::AwaitingEvent { pipeline: "web".into(), digest: "sha256:abc".into() }), ..Default::default() };
        world.script(
            "web",
            [Turn { delivery: Some(waiting.clone()), ..Turn::synced() }, Turn { delivery: Some(waiting), ..Turn::synced() }],
        );
        let run = start(settings(), &world);
        until(&world, 400).await;
        // Twice 10s apart while waiting; then the drift interval again.
        assert_times(world.times("reconcile web"), &[0.0, 10.0, 20.0, 320.0]);
        run.stop().await;
    });
}

#[test]
fn a_pass_that_wrote_is_verified_by_an_observation_before_the_pipeline_is_ready() {
    on_paused_clock(async {
        let world = Scripted::new();
        // The first pass writes; so does the second (AWS did not keep the first write); the
        // third finds everything in place.
        world.script("web", [Turn::wrote("updated s3-bucket b"), Turn::wrote("updated s3-bucket b")]);
        let run = start(settings(), &world);
        until(&world, 5).await;
        assert_eq!(ready_condition(&run.shared, "web").await, Some(("Unknown".into(), "Verifying".into())));
        until(&world, 15).await;
        assert_eq!(ready_condition(&run.shared, "web").await, Some(("Unknown".into(), "Verifying".into())));
        until(&world, 25).await;
        assert_eq!(ready_condition(&run.shared, "web").await, Some(("True".into(), "Synced".into())));
        // Verified on the watch interval, then the drift interval again.
        assert_times(world.times("reconcile web"), &[0.0, 10.0, 20.0]);
        run.stop().await;
    });
}

#[test]
fn shutdown_lets_a_pass_in_progress_finish_within_the_grace_period() {
    on_paused_clock(async {
        let world = Scripted::new();
        world.script("nginx", [Turn::taking(10)]);
        let run = start(settings(), &world);
        until(&world, 5).await;
        let shared = run.shared.clone();
        assert!(run.stop().await);
        assert!((world.start.elapsed().as_secs_f64() - 10.0).abs() < 0.01, "stopped at {:?}", world.start.elapsed());
        assert_eq!(ready_condition(&shared, "nginx").await.unwrap().0, "True", "the finished pass is recorded");
    });
}

#[test]
fn shutdown_abandons_a_pass_that_outlasts_the_grace_period() {
    on_paused_clock(async {
        let world = Scripted::new();
        world.script("nginx", [Turn::taking(100)]);
        let run = start(settings(), &world);
        until(&world, 5).await;
        run.stop().await;
        // 5s + the 20s grace, well inside the 30s ECS gives a task to stop.
        assert!((world.start.elapsed().as_secs_f64() - 25.0).abs() < 0.01, "stopped at {:?}", world.start.elapsed());
    });
}

#[test]
fn prune_waits_while_any_yaml_file_is_broken_and_says_why_in_status() {
    on_paused_clock(async {
        let world = Scripted::new();
        let old = Orphan { key: Key::new(Kind::CodePipeline, "old"), pipeline: "old".into(), policy: DeletionPolicy::Delete };
        world.orphans.lock().unwrap().push(old);
        std::fs::write(world.repo.path().join("pipelines/notes.yaml"), "a: [1, 2\n").unwrap();
        let run = start(Settings { prune: true, ..settings() }, &world);

        until(&world, 130).await;
        assert!(world.times("prune").is_empty(), "a broken YAML file holds prune");
        let st = run.shared.status.read().await;
        let files = match st.prune_holds.as_slice() {
            [PruneHold::UnsafeRevision { files }] => files.clone(),
            other => panic!("expected one hold naming the file, got {other:?}"),
        };
        assert_eq!(files, [PathBuf::from("pipelines/notes.yaml")]);
        assert_eq!(st.orphans.len(), 1);
        drop(st);

        // Fixed in the next commit: the orphan goes at the next sweep (one per drift interval).
        std::fs::remove_file(world.repo.path().join("pipelines/notes.yaml")).unwrap();
        run.shared.refresh.notify_one();
        until(&world, 310).await;
        assert_eq!(world.times("prune").len(), 1);
        let st = run.shared.status.read().await;
        assert!(st.prune_holds.is_empty() && st.orphans.is_empty(), "{:?}", st.prune_holds);
        drop(st);
        run.stop().await;
    });
}

#[test]
fn what_a_blocked_pipeline_no_longer_wants_is_not_pruned_until_it_applies() {
    on_paused_clock(async {
        let world = Scripted::new();
        // web moved to an ECS strategy: its CodeDeploy application is what it no longer wants,
        // and its first pass is blocked (the controller switch waits for a deployment).
        let left = Orphan { key: Key::new(Kind::CodeDeployApplication, "web"), pipeline: "web".into(), policy: DeletionPolicy::Delete };
        world.orphans.lock().unwrap().push(left);
        let blocked = Turn {
            result: Ok(Reconciled { outcome: Outcome::Blocked { reasons: vec!["conflict: a deployment runs".into()] }, drift: vec![] }),
            ..Turn::synced()
        };
        world.script("web", [blocked]);
        let run = start(Settings { prune: true, ..settings() }, &world);

        until(&world, 130).await;
        assert!(!world.times("sweep").is_empty(), "the sweep ran");
        assert!(world.times("prune").is_empty(), "a blocked pipeline keeps its CodeDeploy application");
        // Its next pass applies (one drift interval later): the sweep after it prunes.
        until(&world, 610).await;
        assert_eq!(world.times("prune").len(), 1);
        assert!(world.times("prune")[0] >= 300.0);
        run.stop().await;
    });
}

#[test]
fn a_repository_warning_is_logged_once_not_on_every_fetch() {
    let world = Scripted::new();
    let first = engine::prepare(world.repo.path(), &Default::default()).unwrap();
    let warnings = fresh_warnings(None, &first);
    assert!(!warnings.is_empty(), "the copy of examples/ is not a Git work tree: nginx's source is in no commit");
    let again = engine::prepare(world.repo.path(), &Default::default()).unwrap();
    assert_eq!(fresh_warnings(Some(&first), &again), Vec::<String>::new(), "nothing new, nothing said");
    std::fs::write(world.repo.path().join("notes.yaml"), "a: [1, 2\n").unwrap();
    let suspect = engine::prepare(world.repo.path(), &Default::default()).unwrap();
    let new = fresh_warnings(Some(&again), &suspect);
    assert_eq!(new.len(), 1, "{new:?}");
    assert!(new[0].starts_with("notes.yaml:"), "{new:?}");
}

/// A change event naming pipeline `web`'s CodePipeline.
fn change_to_web() -> FeedSignal {
    FeedSignal::Changes(vec![Change {
        source: slipway_core::change::EventSource::CodePipeline,
        call: "UpdatePipeline".into(),
        actor: Some("arn:aws:sts::123456789012:assumed-role/Admin/alice".into()),
        keys: vec![Key::new(Kind::CodePipeline, "web")],
    }])
}

#[test]
fn a_change_in_aws_rechecks_only_its_pipeline_at_once_and_the_full_check_runs_rarely_while_the_feed_works() {
    on_paused_clock(async {
        let world = Scripted::new();
        let settings = Settings { full_check_interval: Some(Duration::from_secs(3600)), ..settings() };
        world.feed_tx.send(FeedSignal::Up { queue: "q".into() }).await.unwrap();
        let run = start(settings, &world);
        until(&world, 100).await;
        world.feed_tx.send(change_to_web()).await.unwrap();
        // A change to nothing a pipeline owns re-checks nothing.
        let mut foreign = change_to_web();
        if let FeedSignal::Changes(changes) = &mut foreign {
            changes[0].keys = vec![Key::new(Kind::CodePipeline, "someone-elses")];
        }
        world.feed_tx.send(foreign).await.unwrap();
        until(&world, 1000).await;
        assert_times(world.times("reconcile web"), &[0.0, 100.0]);
        assert_times(world.times("reconcile nginx"), &[0.0]);

        // The feed goes down at 1000: nothing waits longer than the drift interval (300 s) from then.
        assert!(run.shared.status.read().await.change_feed.as_ref().is_some_and(|f| f.up));
        world.feed_tx.send(FeedSignal::Down("scripted: the queue is gone".into())).await.unwrap();
        until(&world, 1700).await;
        let feed = run.shared.status.read().await.change_feed.clone().unwrap();
        assert_eq!((feed.up, feed.queue.as_deref(), feed.reason.as_deref()), (false, Some("q"), Some("scripted: the queue is gone")));
        assert_times(world.times("reconcile web"), &[0.0, 100.0, 1300.0, 1600.0]);
        assert_times(world.times("reconcile nginx"), &[0.0, 1300.0, 1600.0]);
        assert!(run.stop().await);
    });
}

#[test]
fn a_change_during_a_reconcile_checks_the_pipeline_again_right_after_it() {
    on_paused_clock(async {
        let world = Scripted::new();
        world.script("web", [Turn::synced(), Turn::taking(30)]);
        let settings = Settings { full_check_interval: Some(Duration::from_secs(3600)), ..settings() };
        world.feed_tx.send(FeedSignal::Up { queue: "q".into() }).await.unwrap();
        let run = start(settings, &world);
        until(&world, 100).await;
        world.feed_tx.send(change_to_web()).await.unwrap();
        until(&world, 110).await;
        // web is being reconciled (100 to 130) when a second change arrives: it may have read before it.
        world.feed_tx.send(change_to_web()).await.unwrap();
        until(&world, 200).await;
        assert_times(world.times("reconcile web"), &[0.0, 100.0, 130.0]);
        assert!(run.stop().await);
    });
}

#[test]
fn with_several_replicas_only_the_held_shards_pipelines_are_reconciled_taken_over_at_once_and_handed_over() {
    use crate::replica::{Held, Sharding};
    use slipway_aws::fence::Board;
    use slipway_core::lease::{LeaseTimes, shard_of};

    on_paused_clock(async {
        // Enough shards that web and nginx fall in different ones.
        let shards = (2..64).find(|n| shard_of("web", *n) != shard_of("nginx", *n)).unwrap();
        let (web, nginx) = (shard_of("web", shards), shard_of("nginx", shards));
        let world = Scripted::new();
        world.script("nginx", [Turn::taking(50)]);
        let (held_tx, held) = watch::channel(None);
        let (busy, busy_rx) = watch::channel(BTreeSet::new());
        let board = Arc::new(Board::new("me".into(), LeaseTimes::default()));
        let sharding = Sharding { id: "me".into(), table: "slipway-leases".into(), shards, held, busy, board };
        let shared = Arc::new(Shared::default());
        let (stop, stop_rx) = watch::channel(false);
        let controller = Controller::new(settings(), world.clone(), shared.clone(), Arc::new(Metrics::new())).with_sharding(sharding);
        let handle = tokio::spawn(controller.run(stop_rx));
        let hold = |shards: &[u16]| Some(Held { shards: shards.iter().copied().collect(), members: vec!["me".into(), "other".into()] });

        // Until the lease table is read, nothing is reconciled and the replica is not ready.
        until(&world, 10).await;
        assert!(world.times("reconcile web").is_empty() && world.times("reconcile nginx").is_empty());
        assert!(!shared.status.read().await.ready);
        held_tx.send_replace(hold(&[web]));
        until(&world, 20).await;
        {
            let st = shared.status.read().await;
            assert!(st.ready, "ready once its own pipelines are reconciled");
            let names: Vec<&str> = st.pipelines.iter().map(|p| p.name.as_str()).collect();
            assert_eq!(names, ["web"], "only its own pipelines in /status");
            let replica = st.replica.as_ref().unwrap();
            assert_eq!((replica.id.as_str(), replica.held.clone(), replica.members.len()), ("me", vec![web], 2));
        }
        // nginx's shard comes: taken over at once, and its lease kept while its pass runs.
        until(&world, 100).await;
        held_tx.send_replace(hold(&[web, nginx]));
        until(&world, 120).await;
        assert_eq!(*busy_rx.borrow(), BTreeSet::from([nginx]), "a pass in flight keeps its shard busy");
        until(&world, 160).await;
        assert!(busy_rx.borrow().is_empty());
        // web's shard goes to another replica: it is no longer reconciled or reported here.
        until(&world, 200).await;
        held_tx.send_replace(hold(&[nginx]));
        until(&world, 800).await;
        assert_times(world.times("reconcile web"), &[10.0]);
        assert_times(world.times("reconcile nginx"), &[100.0, 450.0, 750.0]);
        let names: Vec<String> = shared.status.read().await.pipelines.iter().map(|p| p.name.clone()).collect();
        assert_eq!(names, ["nginx"]);
        stop.send(true).unwrap();
        handle.await.unwrap();
    });
}
