//! Delivery: image tracking and the live-image tag against moto's ECR; the deployment state
//! machine, rollback detection and the rollback command against an in-memory fake of CodeDeploy,
//! CodePipeline and ECS driven through scripted state sequences — moto keeps CodeDeploy
//! deployments `Created` forever and has no StopDeployment, so it cannot show a deployment end,
//! and it implements none of ECS's service deployment calls (ListServiceDeployments,
//! DescribeServiceDeployments, StopServiceDeployment, ContinueServiceDeployment answer 500), so
//! the ECS strategies' deployments (states, lifecycle stages, PAUSE hooks, in-place rollbacks)
//! are the fake's too.

mod common;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use common::Moto;
use serde_json::{Value, json};
use slipway_aws::{Aws, AwsError};
use slipway_core::delivery::api::{
    Creator, Delivery, DeployStatus, Deployment, Execution, ExecutionStatus, HookAnswer, HookDetail, HookStatus, Registry,
    ServiceDeployment, ServiceDeploymentStatus, StopCode, TaskDefinition,
};
use slipway_core::delivery::decide::{DeployOutcome, RollbackTrigger, Route, outcome, rollback_trigger};
use slipway_core::delivery::{DeployTarget, Memory, Step, live_tag, pass};
use slipway_core::manifest::DeployStrategy;

/// In-memory CodeDeploy + CodePipeline + ECS service (hand-written: see the file comment).
#[derive(Default)]
struct Fake {
    state: Mutex<FakeState>,
}

#[derive(Default)]
struct FakeState {
    /// Newest first.
    deployments: Vec<Deployment>,
    task_definitions: HashMap<String, TaskDefinition>,
    service_task_definition: Option<String>,
    executions: Vec<Execution>,
    created: Vec<(String, String)>,
    stopped: Vec<(String, bool)>,
    started: Vec<String>,
    counter: u32,
    /// ECS strategies: the service's deployments, newest first.
    service_deployments: Vec<ServiceDeployment>,
    /// Task definitions the service was pointed at (UpdateService).
    updated: Vec<String>,
    /// Hooks answered: (deployment, hook, answer).
    answered: Vec<(String, String, HookAnswer)>,
}

impl Fake {
    fn with_service_image(image: &str) -> Fake {
        let fake = Fake::default();
        let arn = fake.register(image, None);
        fake.state.lock().unwrap().service_task_definition = Some(arn);
        fake
    }

    fn register(&self, image: &str, revision: Option<&str>) -> String {
        let mut st = self.state.lock().unwrap();
        st.counter += 1;
        let arn = format!("arn:aws:ecs:ap-northeast-1:123456789012:task-definition/web:{}", st.counter);
        st.task_definitions.insert(
            arn.clone(),
            TaskDefinition { arn: arn.clone(), images: vec![("application".into(), image.into())], revision: revision.map(str::to_owned) },
        );
        arn
    }

    /// Moves a deployment to `status`, as CodeDeploy would. Success switches the service to its
    /// task definition; a rollback adds CodeDeploy's rollback deployment and leaves the service.
    fn settle(&self, id: &str, status: DeployStatus, error_code: Option<&str>, rollback: bool) {
        let mut st = self.state.lock().unwrap();
        st.counter += 1;
        let rollback_id = format!("d-RB{}", st.counter);
        let previous = st.service_task_definition.clone();
        let d = st.deployments.iter_mut().find(|d| d.id == id).unwrap();
        d.status = status;
        d.error_code = error_code.map(StopCode::parse);
        if rollback {
            d.rolled_back_by = Some(rollback_id.clone());
        }
        let task_definition = d.task_definition.clone();
        if status == DeployStatus::Succeeded {
            st.service_task_definition = task_definition;
        }
        if rollback {
            let mut rb = deployment(&rollback_id, DeployStatus::Succeeded, previous);
            rb.creator = Creator::CodeDeployRollback;
            rb.rollback_of = Some(id.to_string());
            st.deployments.insert(0, rb);
        }
    }

    fn active_count(&self) -> usize {
        self.state.lock().unwrap().deployments.iter().filter(|d| d.status.is_active()).count()
    }

    /// Moves an ECS service deployment, as ECS would: to `status` at `stage`, with what tripped.
    /// Success switches the service to its task definition; an in-place rollback leaves it.
    fn ecs(&self, arn: &str, status: &str, stage: Option<&str>, change: impl FnOnce(&mut ServiceDeployment)) {
        let mut st = self.state.lock().unwrap();
        let d = st.service_deployments.iter_mut().find(|d| d.arn == arn).unwrap();
        d.status = ServiceDeploymentStatus::parse(status);
        d.stage = stage.map(str::to_owned);
        change(d);
        let ended = matches!(
            d.status,
            ServiceDeploymentStatus::Successful
                | ServiceDeploymentStatus::Stopped
                | ServiceDeploymentStatus::RollbackSuccessful
                | ServiceDeploymentStatus::RollbackFailed
        );
        if ended {
            d.finished = Some(SystemTime::now());
        }
        let task_definition = d.task_definition.clone();
        if d.status == ServiceDeploymentStatus::Successful {
            st.service_task_definition = task_definition;
        }
    }

    fn newest_service_deployment(&self) -> String {
        self.state.lock().unwrap().service_deployments[0].arn.clone()
    }
}

fn pause_hook(status: HookStatus) -> HookDetail {
    HookDetail {
        hook_id: "ecs-pause-1".into(),
        pause: true,
        status,
        timeout_action: Some("ROLLBACK".into()),
        expires: Some(SystemTime::now() + Duration::from_secs(3600)),
    }
}

fn deployment(id: &str, status: DeployStatus, task_definition: Option<String>) -> Deployment {
    Deployment { created: Some(SystemTime::now()), task_definition, ..Deployment::new(id, status) }
}

impl Delivery for Fake {
    async fn deployments(&self, _app: &str, _group: &str, limit: usize) -> Result<Vec<Deployment>, AwsError> {
        Ok(self.state.lock().unwrap().deployments.iter().take(limit).cloned().collect())
    }
    async fn create_deployment(&self, _app: &str, _group: &str, app_spec: &str, description: &str) -> Result<String, AwsError> {
        let task_definition = slipway_aws::delivery::task_definition_in_app_spec(app_spec);
        let mut st = self.state.lock().unwrap();
        st.counter += 1;
        let id = format!("d-{}", st.counter);
        let mut d = deployment(&id, DeployStatus::Created, task_definition);
        d.description = Some(description.to_string());
        st.deployments.insert(0, d);
        st.created.push((app_spec.to_string(), description.to_string()));
        Ok(id)
    }
    async fn stop_deployment(&self, id: &str, rollback: bool) -> Result<(), AwsError> {
        self.state.lock().unwrap().stopped.push((id.to_string(), rollback));
        Ok(())
    }
    async fn register_task_definition(&self, definition: &Value, revision: Option<&str>) -> Result<String, AwsError> {
        Ok(self.register(definition["containerDefinitions"][0]["image"].as_str().unwrap(), revision))
    }
    async fn task_definition(&self, arn: &str) -> Result<TaskDefinition, AwsError> {
        Ok(self.state.lock().unwrap().task_definitions[arn].clone())
    }
    async fn service_task_definition(&self, _cluster: &str, _service: &str) -> Result<Option<String>, AwsError> {
        Ok(self.state.lock().unwrap().service_task_definition.clone())
    }
    async fn service_deployments(&self, _cluster: &str, _service: &str, limit: usize) -> Result<Vec<ServiceDeployment>, AwsError> {
        Ok(self.state.lock().unwrap().service_deployments.iter().take(limit).cloned().collect())
    }
    async fn update_service(&self, _cluster: &str, _service: &str, task_definition: &str) -> Result<String, AwsError> {
        let mut st = self.state.lock().unwrap();
        st.counter += 1;
        let arn = format!("arn:aws:ecs:ap-northeast-1:123456789012:service-deployment/demo/web/sd-{}", st.counter);
        st.updated.push(task_definition.to_string());
        st.service_deployments.insert(
            0,
            ServiceDeployment {
                arn: arn.clone(),
                status: ServiceDeploymentStatus::Pending,
                status_reason: None,
                stage: None,
                created: Some(SystemTime::now() - Duration::from_secs(90)),
                finished: None,
                task_definition: Some(task_definition.to_string()),
                hooks: vec![],
                triggered_alarms: vec![],
                circuit_breaker_tripped: false,
                rollback_reason: None,
            },
        );
        Ok(arn)
    }
    async fn stop_service_deployment(&self, arn: &str, rollback: bool) -> Result<(), AwsError> {
        self.state.lock().unwrap().stopped.push((arn.to_string(), rollback));
        let status = if rollback { "ROLLBACK_REQUESTED" } else { "STOP_REQUESTED" };
        self.ecs(arn, status, None, |_| {});
        Ok(())
    }
    async fn continue_service_deployment(&self, arn: &str, hook_id: &str, answer: HookAnswer) -> Result<(), AwsError> {
        self.state.lock().unwrap().answered.push((arn.to_string(), hook_id.to_string(), answer));
        let (status, stage) = match answer {
            HookAnswer::Continue => ("IN_PROGRESS", Some("PRE_PRODUCTION_TRAFFIC_SHIFT")),
            HookAnswer::Rollback => ("ROLLBACK_REQUESTED", None),
        };
        self.ecs(arn, status, stage, |d| d.hooks.iter_mut().for_each(|h| h.status = HookStatus::Succeeded));
        Ok(())
    }
    async fn executions(&self, _pipeline: &str, _limit: usize) -> Result<Vec<Execution>, AwsError> {
        Ok(self.state.lock().unwrap().executions.clone())
    }
    async fn start_execution(&self, pipeline: &str) -> Result<String, AwsError> {
        let mut st = self.state.lock().unwrap();
        st.started.push(pipeline.to_string());
        let id = format!("e-{}", st.started.len());
        st.executions.insert(
            0,
            Execution { id: id.clone(), status: ExecutionStatus::InProgress, started: Some(SystemTime::now()), source_revisions: vec![] },
        );
        Ok(id)
    }
}

fn target(route: Route) -> DeployTarget {
    DeployTarget {
        pipeline: "web".into(),
        repository: "demo-web".into(),
        tag: "latest".into(),
        pin: None,
        route,
        strategy: DeployStrategy::Codedeploy,
        codepipeline: "web".into(),
        application: "web".into(),
        group: "web".into(),
        cluster: "demo".into(),
        service: "web".into(),
        grace: Duration::from_secs(120),
        task_definition: json!({"family": "web", "containerDefinitions": [{"name": "application", "image": "<IMAGE1_NAME>"}]}),
        app_spec: "version: 0.0\nResources:\n  - TargetService:\n      Type: AWS::ECS::Service\n      Properties:\n        TaskDefinition: \"<TASK_DEFINITION>\"\n".into(),
        container: "application".into(),
    }
}

/// Pushes an image manifest to moto's ECR under `tag`; returns its digest. (moto derives the
/// digest from the layer digests, so each image gets its own layer.)
async fn push(aws: &Aws, tag: &str, seed: &str) -> String {
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7023, "digest": format!("sha256:{:0>64}", seed)},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 100, "digest": format!("sha256:{:f>64}", seed)}]
    });
    let put = aws.ecr.put_image().repository_name("demo-web").image_manifest(manifest.to_string()).image_tag(tag).send().await.unwrap();
    put.image.unwrap().image_id.unwrap().image_digest.unwrap()
}

async fn tags_of(aws: &Aws, digest: &str) -> Vec<String> {
    aws.image_by_digest("demo-web", digest).await.unwrap().unwrap_or_else(|| panic!("{digest} is not in demo-web")).tags
}

/// moto with an empty `demo-web` repository, and a service running an image from elsewhere.
async fn setup() -> (Moto, Aws, Fake) {
    let moto = Moto::start();
    let aws = moto.aws().await;
    aws.ecr.create_repository().repository_name("demo-web").send().await.unwrap();
    (moto, aws, Fake::with_service_image("public.ecr.aws/nginx/nginx:latest"))
}

#[tokio::test]
async fn a_pushed_image_is_deployed_once_watched_to_its_end_and_a_rolled_back_one_never_again() {
    let (_moto, aws, fake) = setup().await;
    let t = target(Route::Direct);
    let mut memory = Memory::default();
    let now = SystemTime::now();

    // Nothing pushed yet: nothing to do.
    let report = pass(&aws, &fake, &t, &mut memory, Some("abc123"), true, now).await.unwrap();
    assert_eq!((report.tracked.as_deref(), report.step.as_ref()), (None, None));

    // A push to ECR: exactly one deployment, of that digest, with the Git revision recorded.
    let first = push(&aws, "latest", "1").await;
    let report = pass(&aws, &fake, &t, &mut memory, Some("abc123"), true, now).await.unwrap();
    assert!(matches!(&report.step, Some(Step::CreatedDeployment { deployment, .. }) if deployment.starts_with("d-")), "{report:?}");
    let (app_spec, description) = fake.state.lock().unwrap().created[0].clone();
    assert!(app_spec.contains("task-definition/web:2"), "{app_spec}");
    assert!(description.contains(&first) && description.contains("abc123"), "{description}");
    let registered = fake.state.lock().unwrap().task_definitions["arn:aws:ecs:ap-northeast-1:123456789012:task-definition/web:2"].clone();
    assert!(registered.images[0].1.ends_with(&format!("/demo-web@{first}")), "{registered:?}");
    assert_eq!(registered.revision.as_deref(), Some("abc123"));

    // While it runs: followed, nothing new started, however often we look.
    for _ in 0..3 {
        let report = pass(&aws, &fake, &t, &mut memory, Some("abc123"), true, now).await.unwrap();
        assert!(report.active.is_some() && report.step.is_none());
    }
    assert_eq!(fake.state.lock().unwrap().created.len(), 1);
    let id = fake.state.lock().unwrap().deployments[0].id.clone();

    // It succeeds: reported finished, the running digest gets the live tag.
    fake.settle(&id, DeployStatus::Succeeded, None, false);
    let report = pass(&aws, &fake, &t, &mut memory, Some("abc123"), true, now).await.unwrap();
    assert_eq!(report.finished.iter().map(|d| d.status).collect::<Vec<_>>(), [DeployStatus::Succeeded]);
    assert_eq!(report.live.as_deref(), Some(first.as_str()));
    assert!(!report.image_drift);
    assert!(tags_of(&aws, &first).await.contains(&live_tag("web")));

    // A bad image: deployed once, fails, CodeDeploy rolls back automatically.
    let second = push(&aws, "latest", "2").await;
    pass(&aws, &fake, &t, &mut memory, Some("def456"), true, now).await.unwrap();
    let id = fake.state.lock().unwrap().deployments[0].id.clone();
    fake.settle(&id, DeployStatus::Failed, Some("HEALTH_CONSTRAINTS"), true);
    let report = pass(&aws, &fake, &t, &mut memory, Some("def456"), true, now).await.unwrap();
    // Both ends are reported: the failed deployment and CodeDeploy's rollback deployment.
    assert_eq!(report.finished.len(), 2, "{report:#?}");
    assert_eq!(rollback_trigger(&report.finished[0]), Some(RollbackTrigger::AutoFailure));
    assert_eq!(report.finished[1].creator, Creator::CodeDeployRollback);
    // The seed's trap: `latest` now points at the bad image, the service runs the old one.
    assert!(report.image_drift);
    assert_eq!((report.tracked.as_deref(), report.live.as_deref()), (Some(second.as_str()), Some(first.as_str())));
    // The running image keeps its live tag, so "expire untagged" can never delete it.
    assert!(tags_of(&aws, &first).await.contains(&live_tag("web")));
    assert!(!tags_of(&aws, &second).await.contains(&live_tag("web")));

    // Never the same digest twice, not even after a restart (a fresh memory).
    for memory in [&mut memory, &mut Memory::default()] {
        pass(&aws, &fake, &t, memory, Some("def456"), true, now).await.unwrap();
    }
    assert_eq!(fake.state.lock().unwrap().created.len(), 2);
    assert_eq!(fake.active_count(), 0);

    // A fixed image: deployed, succeeds, and the live tag moves to it.
    let third = push(&aws, "latest", "3").await;
    pass(&aws, &fake, &t, &mut memory, Some("0a0b0c"), true, now).await.unwrap();
    let id = fake.state.lock().unwrap().deployments[0].id.clone();
    fake.settle(&id, DeployStatus::Succeeded, None, false);
    pass(&aws, &fake, &t, &mut memory, Some("0a0b0c"), true, now).await.unwrap();
    assert!(tags_of(&aws, &third).await.contains(&live_tag("web")));
    // The tag moved off the previous image. (AWS leaves that image untagged, for the lifecycle
    // rule to expire; moto deletes an image whose last tag moves, so it may be gone.)
    let previous = aws.image_by_digest("demo-web", &first).await.unwrap();
    assert!(!previous.is_some_and(|i| i.tags.contains(&live_tag("web"))), "the tag moved off the previous image");
}

#[tokio::test]
async fn pipeline_mode_leaves_the_start_to_eventbridge_and_starts_it_itself_only_after_the_grace_period() {
    let (_moto, aws, fake) = setup().await;
    let t = target(Route::PipelineOnPush);
    let mut memory = Memory::default();
    push(&aws, "latest", "1").await;
    let now = SystemTime::now();

    let report = pass(&aws, &fake, &t, &mut memory, None, true, now).await.unwrap();
    assert!(matches!(report.step, Some(Step::AwaitingEvent { .. })), "{report:?}");
    assert!(fake.state.lock().unwrap().started.is_empty());

    let later = now + Duration::from_secs(300);
    let report = pass(&aws, &fake, &t, &mut memory, None, true, later).await.unwrap();
    assert!(
        matches!(&report.step, Some(Step::StartedPipeline { pipeline, .. }) if pipeline == "web"),
        "slipway starts the pipeline itself"
    );
    for _ in 0..3 {
        pass(&aws, &fake, &t, &mut memory, None, true, later).await.unwrap();
        pass(&aws, &fake, &t, &mut Memory::default(), None, true, later).await.unwrap();
    }
    assert_eq!(fake.state.lock().unwrap().started.len(), 1, "never both, never twice");

    // When the event did start it, slipway starts nothing.
    let fake = Fake::with_service_image("public.ecr.aws/nginx/nginx:latest");
    push(&aws, "latest", "2").await;
    fake.state.lock().unwrap().executions.push(Execution {
        id: "e-event".into(),
        status: ExecutionStatus::InProgress,
        started: Some(SystemTime::now()),
        source_revisions: vec![],
    });
    let report = pass(&aws, &fake, &t, &mut Memory::default(), None, true, SystemTime::now() + Duration::from_secs(600)).await.unwrap();
    assert!(matches!(report.step, Some(Step::PipelineStarted { .. })), "{report:?}");
    assert!(fake.state.lock().unwrap().started.is_empty());
}

#[tokio::test]
async fn observe_mode_reports_a_new_image_without_deploying_or_tagging() {
    let (_moto, aws, fake) = setup().await;
    push(&aws, "latest", "1").await;
    let report = pass(&aws, &fake, &target(Route::Direct), &mut Memory::default(), None, false, SystemTime::now()).await.unwrap();
    assert!(matches!(report.step, Some(Step::WouldDeploy { .. })), "{report:?}");
    assert!(report.image_drift);
    assert!(fake.state.lock().unwrap().created.is_empty());
}

#[tokio::test]
async fn rollback_stops_a_running_deployment_or_redeploys_the_last_good_task_definition_and_history_says_who_rolled_back() {
    use slipway_core::delivery::{RollbackDone, RollbackError, history, rollback};
    let (_moto, aws, fake) = setup().await;
    let t = target(Route::Direct);
    let mut memory = Memory::default();
    let now = SystemTime::now();

    // Nothing deployed yet: nothing to roll back to.
    let refused = rollback(&fake, &t, None).await.unwrap_err();
    assert!(matches!(refused, RollbackError::Refused(ref why) if why.starts_with("nothing to roll back to")), "{refused}");

    // Two good deployments.
    let good = push(&aws, "latest", "1").await;
    pass(&aws, &fake, &t, &mut memory, Some("rev1"), true, now).await.unwrap();
    let first = fake.state.lock().unwrap().deployments[0].clone();
    fake.settle(&first.id, DeployStatus::Succeeded, None, false);
    pass(&aws, &fake, &t, &mut memory, Some("rev1"), true, now).await.unwrap();
    push(&aws, "latest", "2").await;
    pass(&aws, &fake, &t, &mut memory, Some("rev2"), true, now).await.unwrap();
    let second = fake.state.lock().unwrap().deployments[0].id.clone();

    // In progress: stopped with rollback, nothing created.
    assert_eq!(rollback(&fake, &t, None).await.unwrap(), RollbackDone::Stopped { deployment: second.clone() });
    assert_eq!(fake.state.lock().unwrap().stopped, [(second.clone(), true)]);
    fake.settle(&second, DeployStatus::Stopped, Some("MANUAL_STOP"), true);

    // Later the bad image succeeds after all, then someone wants the good one back.
    push(&aws, "latest", "3").await;
    pass(&aws, &fake, &t, &mut memory, Some("rev3"), true, now).await.unwrap();
    let third = fake.state.lock().unwrap().deployments[0].id.clone();
    fake.settle(&third, DeployStatus::Succeeded, None, false);
    let done = rollback(&fake, &t, None).await.unwrap();
    // Back to the last good task definition: the first deployment's, which CodeDeploy's own
    // rollback deployment rolled out again most recently.
    let RollbackDone::Redeployed { of, task_definition, .. } = &done else { panic!("{done:?}") };
    assert_eq!(task_definition, first.task_definition.as_ref().unwrap());
    assert!(of.starts_with("d-RB"), "{of}");
    let (app_spec, description) = fake.state.lock().unwrap().created.last().cloned().unwrap();
    assert!(app_spec.contains(first.task_definition.as_deref().unwrap()) && description.starts_with("slipway rollback to "));
    assert!(matches!(rollback(&fake, &t, Some(&second)).await, Err(RollbackError::Refused(_))), "an unsuccessful deployment is no target");

    // History: newest first, with image, revision, outcome and who rolled back.
    let newest = fake.state.lock().unwrap().deployments[0].id.clone();
    fake.settle(&newest, DeployStatus::Succeeded, None, false);
    let rows = history(&aws, &fake, &t, 10).await.unwrap();
    let summary: Vec<(&str, Option<&str>)> = rows.iter().map(|r| (r.outcome.as_str(), r.rollback.map(|t| t.as_str()))).collect();
    assert_eq!(
        summary,
        [("rollback", Some("slipway")), ("succeeded", None), ("succeeded", None), ("rolled_back", Some("manual")), ("succeeded", None)]
    );
    let oldest = rows.last().unwrap();
    assert_eq!((oldest.image_digest.as_deref(), oldest.git_revision.as_deref()), (Some(good.as_str()), Some("rev1")));
}

fn ecs_target() -> DeployTarget {
    DeployTarget { strategy: DeployStrategy::EcsBlueGreen, app_spec: String::new(), ..target(Route::Direct) }
}

#[tokio::test]
async fn an_ecs_deployment_is_started_with_update_service_waits_at_its_pause_hook_for_promote_and_is_reported_once() {
    use slipway_core::delivery::promote;
    use slipway_core::status::{ConditionType, PipelineStatus, Truth, record_delivery};
    let (_moto, aws, fake) = setup().await;
    let t = ecs_target();
    let mut memory = Memory::default();
    let mut status = PipelineStatus::default();
    let now = SystemTime::now();
    pass(&aws, &fake, &t, &mut memory, Some("rev1"), true, now).await.unwrap();

    // A push: one task definition registered, the service pointed at it; no CodeDeploy call.
    let first = push(&aws, "latest", "1").await;
    let report = pass(&aws, &fake, &t, &mut memory, Some("rev1"), true, now).await.unwrap();
    let Some(Step::CreatedDeployment { deployment, task_definition, .. }) = &report.step else { panic!("{report:?}") };
    assert!(deployment.contains(":service-deployment/"), "{deployment}");
    assert_eq!(fake.state.lock().unwrap().updated, std::slice::from_ref(task_definition));
    assert!(fake.state.lock().unwrap().created.is_empty(), "no CodeDeploy deployment");
    let arn = fake.newest_service_deployment();

    // ECS shifts test traffic, then waits at the PAUSE hook: watched, nothing new started, and a
    // condition says what to run.
    fake.ecs(&arn, "IN_PROGRESS", Some("TEST_TRAFFIC_SHIFT"), |_| {});
    let report = pass(&aws, &fake, &t, &mut memory, Some("rev1"), true, now).await.unwrap();
    assert_eq!(report.active.as_ref().map(|d| d.status), Some(DeployStatus::InProgress));
    assert!(report.step.is_none() && report.finished.is_empty());
    fake.ecs(&arn, "IN_PROGRESS", Some("POST_TEST_TRAFFIC_SHIFT"), |d| d.hooks = vec![pause_hook(HookStatus::AwaitingAction)]);
    let report = pass(&aws, &fake, &t, &mut memory, Some("rev1"), true, now).await.unwrap();
    assert_eq!(report.active.as_ref().and_then(|d| d.paused.as_ref()).map(|h| h.hook_id.as_str()), Some("ecs-pause-1"));
    record_delivery(&mut status, "web", &report, now);
    let waiting = status.condition(ConditionType::AwaitingPromotion).unwrap();
    assert_eq!((waiting.status, waiting.reason.as_str()), (Truth::True, "PauseHook"));
    assert!(waiting.message.contains("slipway promote web") && waiting.message.contains("POST_TEST_TRAFFIC_SHIFT"), "{}", waiting.message);

    // `slipway promote`: the hook is answered CONTINUE; a second promote finds nothing waiting.
    let promoted = promote(&fake, &t, HookAnswer::Continue).await.unwrap();
    assert_eq!((promoted.deployment.as_str(), promoted.hook_id.as_str()), (arn.as_str(), "ecs-pause-1"));
    assert_eq!(fake.state.lock().unwrap().answered, [(arn.clone(), "ecs-pause-1".to_string(), HookAnswer::Continue)]);
    assert!(promote(&fake, &t, HookAnswer::Continue).await.is_err(), "nothing waits any more");

    // Bake time reads as Baking; success is reported once, with its duration, and the live tag moves.
    fake.ecs(&arn, "IN_PROGRESS", Some("BAKE_TIME"), |_| {});
    let report = pass(&aws, &fake, &t, &mut memory, Some("rev1"), true, now).await.unwrap();
    assert_eq!(report.active.as_ref().map(|d| d.status), Some(DeployStatus::Baking));
    record_delivery(&mut status, "web", &report, now);
    assert_eq!(status.condition(ConditionType::AwaitingPromotion).unwrap().status, Truth::False);
    fake.ecs(&arn, "SUCCESSFUL", Some("CLEAN_UP"), |_| {});
    let report = pass(&aws, &fake, &t, &mut memory, Some("rev1"), true, now).await.unwrap();
    assert_eq!(report.finished.len(), 1);
    let done = &report.finished[0];
    assert_eq!((outcome(done), rollback_trigger(done)), (DeployOutcome::Succeeded, None));
    assert!(done.completed.unwrap().duration_since(done.created.unwrap()).unwrap() >= Duration::from_secs(90));
    assert_eq!(report.live.as_deref(), Some(first.as_str()));
    assert!(tags_of(&aws, &first).await.contains(&live_tag("web")));
    let again = pass(&aws, &fake, &t, &mut memory, Some("rev1"), true, now).await.unwrap();
    assert!(again.finished.is_empty() && again.step.is_none(), "reported once, deployed once");
}

#[tokio::test]
async fn ecs_rollbacks_are_told_apart_by_what_tripped_and_a_rolled_back_image_is_never_deployed_again() {
    let (_moto, aws, fake) = setup().await;
    let t = ecs_target();
    let mut memory = Memory::default();
    let now = SystemTime::now();
    pass(&aws, &fake, &t, &mut memory, None, true, now).await.unwrap();
    type Trip = fn(&mut ServiceDeployment);
    let cases: [(&str, Trip, RollbackTrigger); 4] = [
        ("1", |d| d.triggered_alarms = vec!["web-5xx".into()], RollbackTrigger::Alarm),
        ("2", |d| d.circuit_breaker_tripped = true, RollbackTrigger::CircuitBreaker),
        ("3", |d| d.hooks = vec![pause_hook(HookStatus::TimedOut)], RollbackTrigger::LifecycleHook),
        ("4", |_| {}, RollbackTrigger::Manual),
    ];
    for (seed, trip, trigger) in cases {
        push(&aws, "latest", seed).await;
        pass(&aws, &fake, &t, &mut memory, None, true, now).await.unwrap();
        let arn = fake.newest_service_deployment();
        fake.ecs(&arn, "ROLLBACK_IN_PROGRESS", Some("PRODUCTION_TRAFFIC_SHIFT"), trip);
        let report = pass(&aws, &fake, &t, &mut memory, None, true, now).await.unwrap();
        assert!(report.active.is_some() && report.finished.is_empty(), "a rollback under way is still running");
        fake.ecs(&arn, "ROLLBACK_SUCCESSFUL", None, |_| {});
        let report = pass(&aws, &fake, &t, &mut memory, None, true, now).await.unwrap();
        assert_eq!(report.finished.len(), 1, "{report:#?}");
        assert_eq!((outcome(&report.finished[0]), rollback_trigger(&report.finished[0])), (DeployOutcome::RolledBack, Some(trigger)));
        assert!(report.image_drift, "the service still runs the previous image");
    }
    // Four pushes, four deployments: none redeployed, not even after a restart.
    pass(&aws, &fake, &t, &mut Memory::default(), None, true, now).await.unwrap();
    assert_eq!(fake.state.lock().unwrap().updated.len(), 4);
}

#[tokio::test]
async fn ecs_rollback_stops_a_running_deployment_with_stop_service_deployment_or_points_the_service_back() {
    use slipway_core::delivery::{RollbackDone, rollback};
    let (_moto, aws, fake) = setup().await;
    let t = ecs_target();
    let mut memory = Memory::default();
    let now = SystemTime::now();
    pass(&aws, &fake, &t, &mut memory, None, true, now).await.unwrap();
    push(&aws, "latest", "1").await;
    pass(&aws, &fake, &t, &mut memory, None, true, now).await.unwrap();
    let good = fake.newest_service_deployment();
    fake.ecs(&good, "SUCCESSFUL", None, |_| {});
    let good_task_definition = fake.state.lock().unwrap().service_task_definition.clone().unwrap();
    push(&aws, "latest", "2").await;
    pass(&aws, &fake, &t, &mut memory, None, true, now).await.unwrap();
    let bad = fake.newest_service_deployment();
    fake.ecs(&bad, "IN_PROGRESS", Some("BAKE_TIME"), |_| {});

    // Running: StopServiceDeployment with ROLLBACK, and ECS rolls it back in place.
    assert_eq!(rollback(&fake, &t, None).await.unwrap(), RollbackDone::Stopped { deployment: bad.clone() });
    assert_eq!(fake.state.lock().unwrap().stopped, [(bad.clone(), true)]);
    fake.ecs(&bad, "ROLLBACK_SUCCESSFUL", None, |_| {});
    let report = pass(&aws, &fake, &t, &mut memory, None, true, now).await.unwrap();
    assert_eq!(rollback_trigger(&report.finished[0]), Some(RollbackTrigger::Manual));

    // The bad one succeeds on a later push; with none running, the service is pointed back at
    // the last good task definition.
    push(&aws, "latest", "3").await;
    pass(&aws, &fake, &t, &mut memory, None, true, now).await.unwrap();
    let third = fake.newest_service_deployment();
    fake.ecs(&third, "SUCCESSFUL", None, |_| {});
    let done = rollback(&fake, &t, None).await.unwrap();
    let RollbackDone::Redeployed { of, task_definition, .. } = &done else { panic!("{done:?}") };
    assert_eq!((of.as_str(), task_definition.as_str()), (good.as_str(), good_task_definition.as_str()));
    assert_eq!(fake.state.lock().unwrap().updated.last(), Some(&good_task_definition));
    assert!(fake.state.lock().unwrap().created.is_empty(), "never a CodeDeploy call");
}
