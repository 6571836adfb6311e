//! Adapter calls moto 5.2.5 cannot answer — CodeDeploy `UpdateDeploymentGroup`,
//! `DeleteDeploymentGroup`, `DeleteApplication`, CodeBuild `UpdateProject`, ECS service
//! deployments (`ListServiceDeployments`, `DescribeServiceDeployments`,
//! `DescribeServiceRevisions`, `StopServiceDeployment`, `ContinueServiceDeployment`) —, the
//! whole shape of the ECS strategies' `UpdateService`, what moto ignores (S3's expected bucket
//! owner), and error mapping,
//! tested with aws-smithy-mocks (the SDK's own test utility): the request slipway builds is
//! checked field by field and the response is scripted.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_codebuild::operation::batch_get_projects::BatchGetProjectsOutput;
use aws_sdk_codebuild::operation::update_project::UpdateProjectOutput;
use aws_sdk_codedeploy::operation::delete_application::DeleteApplicationOutput;
use aws_sdk_codedeploy::operation::delete_deployment_group::DeleteDeploymentGroupOutput;
use aws_sdk_codedeploy::operation::update_deployment_group::{UpdateDeploymentGroupError, UpdateDeploymentGroupOutput};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_runtime_api::http::{Response as HttpResponse, StatusCode};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::error::ErrorMetadata;
use std::sync::Arc;

use slipway_aws::calls::Unobserved;
use slipway_aws::{Aws, ErrorKind, resource};
use slipway_core::resource::codebuild::ProjectSpec;
use slipway_core::resource::codedeploy::{AutoRollbackEvent, DeploymentOption, DeploymentType, GroupSpec, InstanceAction, ReadyAction};
use slipway_core::resource::{Desired, Key, Kind, Live, Spec, Tags, ownership_tags};

fn aws() -> Aws {
    let config = SdkConfig::builder().behavior_version(BehaviorVersion::latest()).region(aws_config::Region::new("ap-northeast-1")).build();
    Aws::new(&config, "123456789012".into(), "aws".into(), Arc::new(Unobserved))
}

fn group(wait: i32) -> GroupSpec {
    GroupSpec {
        service_role_arn: "arn:aws:iam::123456789012:role/deploy".into(),
        deployment_config_name: "CodeDeployDefault.ECSAllAtOnce".into(),
        deployment_type: DeploymentType::BlueGreen,
        deployment_option: DeploymentOption::WithTrafficControl,
        termination_action: InstanceAction::Terminate,
        termination_wait_minutes: wait,
        ready_action: ReadyAction::ContinueDeployment,
        ready_wait_minutes: 0,
        auto_rollback_enabled: true,
        auto_rollback_events: vec![AutoRollbackEvent::DeploymentFailure],
        cluster: "demo".into(),
        service: "web".into(),
        target_groups: vec!["web-blue".into(), "web-green".into()],
        prod_listener_arns: vec!["arn:listener/80".into()],
        test_listener_arns: vec!["arn:listener/8080".into()],
        listener_refs: None,
    }
}

fn tags() -> Tags {
    ownership_tags("web", &Default::default())
}

#[tokio::test]
async fn a_drifted_deployment_group_is_updated_with_its_whole_blue_green_configuration() {
    let update = mock!(aws_sdk_codedeploy::Client::update_deployment_group)
        .match_requests(|r| {
            let bg = r.blue_green_deployment_configuration().unwrap();
            let pair = &r.load_balancer_info().unwrap().target_group_pair_info_list()[0];
            r.application_name() == Some("web")
                && r.current_deployment_group_name() == Some("web")
                && bg.terminate_blue_instances_on_deployment_success().unwrap().termination_wait_time_in_minutes() == 5
                && pair.target_groups().iter().filter_map(|t| t.name()).collect::<Vec<_>>() == ["web-blue", "web-green"]
                && pair.prod_traffic_route().unwrap().listener_arns() == ["arn:listener/80"]
                && pair.test_traffic_route().unwrap().listener_arns() == ["arn:listener/8080"]
                && r.ecs_services()[0].service_name() == Some("web")
                && r.auto_rollback_configuration().unwrap().enabled()
        })
        .then_output(|| UpdateDeploymentGroupOutput::builder().build());
    let mut aws = aws();
    aws.codedeploy = mock_client!(aws_sdk_codedeploy, [&update]);

    let desired = Desired {
        key: Key::new(Kind::CodeDeployDeploymentGroup, "web/web"),
        spec: Spec::Group(Box::new(group(5))),
        tags: tags(),
        payload: None,
    };
    let live = Live { spec: Spec::Group(Box::new(group(60))), tags: tags() };
    resource::update(&aws, &desired, &live).await.unwrap();
    assert_eq!(update.num_calls(), 1, "one UpdateDeploymentGroup and no tagging call: the tags were already right");
}

#[tokio::test]
async fn pruning_deletes_the_application_and_a_group_by_name() {
    let delete_app = mock!(aws_sdk_codedeploy::Client::delete_application)
        .match_requests(|r| r.application_name() == Some("old"))
        .then_output(|| DeleteApplicationOutput::builder().build());
    let delete_group = mock!(aws_sdk_codedeploy::Client::delete_deployment_group)
        .match_requests(|r| r.application_name() == Some("old") && r.deployment_group_name() == Some("blue-green"))
        .then_output(|| DeleteDeploymentGroupOutput::builder().build());
    let mut aws = aws();
    aws.codedeploy = mock_client!(aws_sdk_codedeploy, RuleMode::MatchAny, [&delete_app, &delete_group]);

    resource::delete(&aws, &Key::new(Kind::CodeDeployDeploymentGroup, "old/blue-green")).await.unwrap();
    resource::delete(&aws, &Key::new(Kind::CodeDeployApplication, "old")).await.unwrap();
    assert_eq!((delete_app.num_calls(), delete_group.num_calls()), (1, 1));
}

#[tokio::test]
async fn a_missing_deployment_group_reads_as_absent_and_access_denied_is_not_retryable() {
    // The error as CodeDeploy puts it on the wire, so the SDK's own deserialiser reads it.
    let missing = mock!(aws_sdk_codedeploy::Client::get_deployment_group).then_http_response(|| {
        HttpResponse::new(
            StatusCode::try_from(400).unwrap(),
            SdkBody::from(r#"{"__type":"DeploymentGroupDoesNotExistException","message":"no such group"}"#),
        )
    });
    let denied = mock!(aws_sdk_codedeploy::Client::update_deployment_group).then_error(|| {
        UpdateDeploymentGroupError::generic(ErrorMetadata::builder().code("AccessDeniedException").message("not allowed").build())
    });
    let mut aws = aws();
    aws.codedeploy = mock_client!(aws_sdk_codedeploy, RuleMode::MatchAny, [&missing, &denied]);

    assert_eq!(resource::read(&aws, &Key::new(Kind::CodeDeployDeploymentGroup, "web/web"), None).await.unwrap(), None);

    let desired = Desired {
        key: Key::new(Kind::CodeDeployDeploymentGroup, "web/web"),
        spec: Spec::Group(Box::new(group(5))),
        tags: tags(),
        payload: None,
    };
    let live = Live { spec: Spec::Group(Box::new(group(60))), tags: tags() };
    let err = resource::update(&aws, &desired, &live).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::AccessDenied);
    assert!(!err.is_retryable());
    assert_eq!(err.to_string(), "codedeploy:UpdateDeploymentGroup failed (AccessDeniedException): not allowed");
}

#[tokio::test]
async fn throttling_is_classified_as_retryable() {
    let throttled = mock!(aws_sdk_codedeploy::Client::delete_application).then_error(|| {
        aws_sdk_codedeploy::operation::delete_application::DeleteApplicationError::generic(
            ErrorMetadata::builder().code("ThrottlingException").build(),
        )
    });
    let mut aws = aws();
    // No SDK retries here: the classification itself is under test.
    aws.codedeploy =
        mock_client!(aws_sdk_codedeploy, RuleMode::MatchAny, [&throttled], |c| c.retry_config(aws_config::retry::RetryConfig::disabled()));
    let err = resource::delete(&aws, &Key::new(Kind::CodeDeployApplication, "web")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Throttled);
    assert!(err.is_retryable());
}

fn project(privileged: bool) -> ProjectSpec {
    ProjectSpec {
        service_role: "arn:aws:iam::123456789012:role/build".into(),
        buildspec: "buildspec.yml".into(),
        environment_type: "LINUX_CONTAINER".into(),
        image: "aws/codebuild/standard:7.0".into(),
        compute_type: "BUILD_GENERAL1_SMALL".into(),
        privileged_mode: privileged,
        environment_variables: [("IMAGE_TAG".to_string(), "latest".to_string())].into(),
        timeout_in_minutes: 60,
    }
}

#[tokio::test]
async fn a_drifted_build_project_is_updated_and_adopting_keeps_the_tags_others_set() {
    let update = mock!(aws_sdk_codebuild::Client::update_project)
        .match_requests(|r| {
            r.name() == Some("web-build") && r.environment().is_some_and(|e| e.privileged_mode() == Some(true)) && r.tags().is_empty()
        })
        .then_output(|| UpdateProjectOutput::builder().build());
    let retag = mock!(aws_sdk_codebuild::Client::update_project)
        .match_requests(|r| {
            let keys: Vec<&str> = r.tags().iter().filter_map(|t| t.key()).collect();
            r.environment().is_none() && keys == ["owner", "slipway.dev/managed-by", "slipway.dev/pipeline"]
        })
        .then_output(|| UpdateProjectOutput::builder().build());
    let unused = mock!(aws_sdk_codebuild::Client::batch_get_projects).then_output(|| BatchGetProjectsOutput::builder().build());
    let mut aws = aws();
    aws.codebuild = mock_client!(aws_sdk_codebuild, RuleMode::MatchAny, [&update, &retag, &unused]);

    let desired =
        Desired { key: Key::new(Kind::CodeBuildProject, "web-build"), spec: Spec::Build(project(true)), tags: tags(), payload: None };
    let live = Live { spec: Spec::Build(project(false)), tags: [("owner".to_string(), "alice".to_string())].into() };
    resource::update(&aws, &desired, &live).await.unwrap();
    assert_eq!((update.num_calls(), retag.num_calls(), unused.num_calls()), (1, 1, 0));
}

#[tokio::test]
async fn deployments_are_created_with_the_app_spec_content_and_stopped_with_rollback() {
    use slipway_core::delivery::api::Delivery;
    let create = mock!(aws_sdk_codedeploy::Client::create_deployment)
        .match_requests(|r| {
            let revision = r.revision().unwrap();
            r.application_name() == Some("web")
                && r.deployment_group_name() == Some("web")
                && revision.revision_type().map(|t| t.as_str()) == Some("AppSpecContent")
                && revision.app_spec_content().and_then(|c| c.content()).is_some_and(|c| c.contains("arn:td:7"))
                && r.description() == Some("slipway rollback to d-1")
        })
        .then_output(|| aws_sdk_codedeploy::operation::create_deployment::CreateDeploymentOutput::builder().deployment_id("d-9").build());
    let stop = mock!(aws_sdk_codedeploy::Client::stop_deployment)
        .match_requests(|r| r.deployment_id() == Some("d-8") && r.auto_rollback_enabled() == Some(true))
        .then_output(|| aws_sdk_codedeploy::operation::stop_deployment::StopDeploymentOutput::builder().build());
    let mut aws = aws();
    aws.codedeploy = mock_client!(aws_sdk_codedeploy, RuleMode::MatchAny, [&create, &stop]);
    let id = aws
        .create_deployment(
            "web",
            "web",
            "Resources:\n  - TargetService:\n      Properties:\n        TaskDefinition: arn:td:7\n",
            "slipway rollback to d-1",
        )
        .await
        .unwrap();
    assert_eq!(id, "d-9");
    aws.stop_deployment("d-8", true).await.unwrap();
    assert_eq!((create.num_calls(), stop.num_calls()), (1, 1));
}

/// The state bucket's name is predictable (`slipway-state-<account>-<region>`): anyone may create
/// it in their own account. Every inventory call names this account as the expected owner, so S3
/// refuses a bucket of another account (moto ignores the header, hence the mock).
#[tokio::test]
async fn the_inventory_only_uses_a_state_bucket_of_this_account() {
    let owned_by_us = |owner: Option<&str>| owner == Some("123456789012");
    let list = mock!(aws_sdk_s3::Client::list_objects_v2)
        .match_requests(move |r| owned_by_us(r.expected_bucket_owner()) && r.bucket() == Some("slipway-state-123456789012-ap-northeast-1"))
        .then_output(|| aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output::builder().build());
    let put = mock!(aws_sdk_s3::Client::put_object)
        .match_requests(move |r| owned_by_us(r.expected_bucket_owner()))
        .then_output(|| aws_sdk_s3::operation::put_object::PutObjectOutput::builder().build());
    let delete = mock!(aws_sdk_s3::Client::delete_object)
        .match_requests(move |r| owned_by_us(r.expected_bucket_owner()))
        .then_output(|| aws_sdk_s3::operation::delete_object::DeleteObjectOutput::builder().build());
    let mut aws = aws();
    aws.s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&list, &put, &delete]);

    let entry = slipway_core::inventory::Entry::new("web", Key::new(Kind::CodePipeline, "web"));
    slipway_aws::inventory::ensure(&aws, vec![entry.clone()], Vec::new()).await.unwrap();
    slipway_aws::inventory::ensure(&aws, vec![entry.clone()], Vec::new()).await.unwrap();
    assert_eq!((list.num_calls(), put.num_calls()), (1, 1), "an entry the process knows is not written again");
    // About to be created: written even though this process thinks it is recorded (another
    // process's prune may have removed it since).
    slipway_aws::inventory::ensure(&aws, Vec::new(), vec![entry.clone()]).await.unwrap();
    slipway_aws::inventory::forget(&aws, &entry).await.unwrap();
    assert_eq!((list.num_calls(), put.num_calls(), delete.num_calls()), (1, 2, 1));
}

/// A CodeDeploy service migrating to ECS canary: what `DescribeServices` shows before.
fn code_deploy_service() -> aws_sdk_ecs::types::Service {
    use aws_sdk_ecs::types::{DeploymentConfiguration, DeploymentController, DeploymentControllerType, LoadBalancer, Service};
    Service::builder()
        .service_name("web")
        .status("ACTIVE")
        .deployment_controller(DeploymentController::builder().r#type(DeploymentControllerType::CodeDeploy).build().unwrap())
        .deployment_configuration(DeploymentConfiguration::builder().maximum_percent(200).minimum_healthy_percent(100).build())
        .load_balancers(LoadBalancer::builder().target_group_arn("arn:tg/web-blue").container_name("app").container_port(80).build())
        .build()
}

fn canary_settings() -> slipway_core::resource::ecs::ServiceSpec {
    use slipway_core::resource::ecs::{Alarms, Canary, Controller, Hook, ServiceSpec, Strategy};
    ServiceSpec {
        deployment_controller: Controller::Ecs,
        strategy: Some(Strategy::Canary),
        bake_time_in_minutes: Some(5),
        linear: None,
        canary: Some(Canary { canary_percent: 12.5, canary_bake_time_in_minutes: 10 }),
        alarms: Some(Alarms { alarm_names: vec!["web-5xx".into()], rollback: true }),
        lifecycle_hooks: vec![Hook {
            lifecycle_stages: vec!["POST_TEST_TRAFFIC_SHIFT".into()],
            target_type: "PAUSE".into(),
            hook_target_arn: None,
            role_arn: None,
            timeout_in_minutes: 60,
            timeout_action: "ROLLBACK".into(),
        }],
        target_groups: vec!["arn:tg/web-blue".into(), "arn:tg/web-green".into()],
        production_listener_rule: Some("arn:rule/prod".into()),
        test_listener_rule: None,
        infrastructure_role_arn: Some("arn:aws:iam::123456789012:role/ecs-infra".into()),
        running_deployment: None,
        target_group_names: None,
    }
}

#[tokio::test]
async fn an_ecs_strategy_is_set_on_the_service_with_one_update_service_that_keeps_what_slipway_does_not_manage() {
    use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
    use aws_sdk_ecs::operation::update_service::UpdateServiceOutput;
    use slipway_core::resource::ecs::Controller;
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .match_requests(|r| r.cluster() == Some("demo") && r.services() == ["web"])
        .then_output(|| DescribeServicesOutput::builder().services(code_deploy_service()).build());
    let update = mock!(aws_sdk_ecs::Client::update_service)
        .match_requests(|r| {
            let c = r.deployment_configuration().unwrap();
            let hook = &c.lifecycle_hooks()[0];
            let lb = &r.load_balancers()[0];
            let advanced = lb.advanced_configuration().unwrap();
            r.cluster() == Some("demo")
                && r.service() == Some("web")
                && r.task_definition().is_none()
                && r.deployment_controller().map(|d| d.r#type().as_str()) == Some("ECS")
                && c.strategy().map(|s| s.as_str()) == Some("CANARY")
                && c.bake_time_in_minutes() == Some(5)
                && c.canary_configuration().and_then(|k| k.canary_percent()) == Some(12.5)
                && c.canary_configuration().and_then(|k| k.canary_bake_time_in_minutes()) == Some(10)
                && c.linear_configuration().is_none()
                && c.alarms().is_some_and(|a| a.alarm_names() == ["web-5xx"] && a.rollback() && a.enable())
                && (c.maximum_percent(), c.minimum_healthy_percent()) == (Some(200), Some(100))
                && hook.target_type().map(|t| t.as_str()) == Some("PAUSE")
                && hook.lifecycle_stages().iter().map(|s| s.as_str()).collect::<Vec<_>>() == ["POST_TEST_TRAFFIC_SHIFT"]
                && hook.timeout_configuration().and_then(|t| t.timeout_in_minutes()) == Some(60)
                && hook.timeout_configuration().and_then(|t| t.action()).map(|a| a.as_str()) == Some("ROLLBACK")
                && (lb.target_group_arn(), lb.container_name(), lb.container_port()) == (Some("arn:tg/web-blue"), Some("app"), Some(80))
                && advanced.alternate_target_group_arn() == Some("arn:tg/web-green")
                && advanced.production_listener_rule() == Some("arn:rule/prod")
                && advanced.test_listener_rule().is_none()
                && advanced.role_arn() == Some("arn:aws:iam::123456789012:role/ecs-infra")
        })
        .then_output(|| UpdateServiceOutput::builder().build());
    let mut aws = aws();
    aws.ecs = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&describe, &update]);

    let desired = Desired {
        key: Key::new(Kind::EcsServiceSettings, "demo/web"),
        spec: Spec::Service(Box::new(canary_settings())),
        tags: Tags::new(),
        payload: None,
    };
    let Some(live) = resource::read(&aws, &desired.key, None).await.unwrap() else { panic!("the service reads") };
    let Spec::Service(before) = &live.spec else { panic!("a service spec") };
    assert_eq!(
        (before.deployment_controller.clone(), before.target_groups.clone()),
        (Controller::CodeDeploy, vec!["arn:tg/web-blue".to_string()])
    );
    resource::update(&aws, &desired, &live).await.unwrap();
    assert_eq!(
        (describe.num_calls(), update.num_calls()),
        (2, 1),
        "a fresh read for what UpdateService would reset, one update, no tagging"
    );
    assert!(resource::delete(&aws, &desired.key).await.is_err(), "a referenced service is never deleted");
}

#[tokio::test]
async fn ecs_service_deployments_are_read_with_their_task_definition_stopped_with_rollback_and_continued_past_a_pause() {
    use aws_sdk_ecs::operation::continue_service_deployment::ContinueServiceDeploymentOutput;
    use aws_sdk_ecs::operation::describe_service_deployments::DescribeServiceDeploymentsOutput;
    use aws_sdk_ecs::operation::describe_service_revisions::DescribeServiceRevisionsOutput;
    use aws_sdk_ecs::operation::list_service_deployments::ListServiceDeploymentsOutput;
    use aws_sdk_ecs::operation::stop_service_deployment::StopServiceDeploymentOutput;
    use aws_sdk_ecs::types::{
        DeploymentLifecycleHookDetail, DeploymentLifecycleHookStatus, DeploymentLifecycleHookTargetType, ServiceDeployment,
        ServiceDeploymentBrief, ServiceDeploymentLifecycleStage, ServiceDeploymentStatus, ServiceRevision, ServiceRevisionSummary,
    };
    use slipway_core::delivery::api::{Delivery, DeployStatus, HookAnswer};
    const ARN: &str = "arn:aws:ecs:ap-northeast-1:123456789012:service-deployment/demo/web/abc";
    // The latest page, and those not yet ended (a running one is never missed, whatever the order).
    let running = mock!(aws_sdk_ecs::Client::list_service_deployments)
        .match_requests(|r| {
            r.status().iter().map(|s| s.as_str()).collect::<Vec<_>>()
                == ["PENDING", "IN_PROGRESS", "STOP_REQUESTED", "ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS"]
        })
        .then_output(|| {
            ListServiceDeploymentsOutput::builder()
                .service_deployments(ServiceDeploymentBrief::builder().service_deployment_arn(ARN).build())
                .build()
        });
    let list = mock!(aws_sdk_ecs::Client::list_service_deployments)
        .match_requests(|r| {
            r.cluster() == Some("demo") && r.service() == Some("web") && r.max_results() == Some(20) && r.status().is_empty()
        })
        .then_output(|| {
            ListServiceDeploymentsOutput::builder()
                .service_deployments(ServiceDeploymentBrief::builder().service_deployment_arn(ARN).build())
                .build()
        });
    let describe = mock!(aws_sdk_ecs::Client::describe_service_deployments)
        .match_requests(|r| r.service_deployment_arns() == [ARN])
        .then_output(|| {
            let hook = DeploymentLifecycleHookDetail::builder()
                .hook_id("ecs-pause-1")
                .target_type(DeploymentLifecycleHookTargetType::Pause)
                .status(DeploymentLifecycleHookStatus::AwaitingAction)
                .build();
            DescribeServiceDeploymentsOutput::builder()
                .service_deployments(
                    ServiceDeployment::builder()
                        .service_deployment_arn(ARN)
                        .status(ServiceDeploymentStatus::InProgress)
                        .lifecycle_stage(ServiceDeploymentLifecycleStage::PostTestTrafficShift)
                        .target_service_revision(ServiceRevisionSummary::builder().arn("arn:revision/2").build())
                        .lifecycle_hook_details(hook)
                        .build(),
                )
                .build()
        });
    let revisions = mock!(aws_sdk_ecs::Client::describe_service_revisions)
        .match_requests(|r| r.service_revision_arns() == ["arn:revision/2"])
        .then_output(|| {
            DescribeServiceRevisionsOutput::builder()
                .service_revisions(
                    ServiceRevision::builder().service_revision_arn("arn:revision/2").task_definition("arn:td/web:2").build(),
                )
                .build()
        });
    let stop = mock!(aws_sdk_ecs::Client::stop_service_deployment)
        .match_requests(|r| r.service_deployment_arn() == Some(ARN) && r.stop_type().map(|t| t.as_str()) == Some("ROLLBACK"))
        .then_output(|| StopServiceDeploymentOutput::builder().build());
    let answer = mock!(aws_sdk_ecs::Client::continue_service_deployment)
        .match_requests(|r| {
            r.service_deployment_arn() == Some(ARN)
                && r.hook_id() == Some("ecs-pause-1")
                && r.action().map(|a| a.as_str()) == Some("CONTINUE")
        })
        .then_output(|| ContinueServiceDeploymentOutput::builder().build());
    let mut aws = aws();
    aws.ecs = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&running, &list, &describe, &revisions, &stop, &answer]);

    let found = aws.service_deployments("demo", "web", 20).await.unwrap();
    let d = found[0].clone().into_deployment();
    assert_eq!(
        (d.status, d.task_definition.as_deref(), d.stage.as_deref()),
        (DeployStatus::InProgress, Some("arn:td/web:2"), Some("POST_TEST_TRAFFIC_SHIFT"))
    );
    assert_eq!(d.paused.map(|h| h.hook_id).as_deref(), Some("ecs-pause-1"));
    aws.continue_service_deployment(ARN, "ecs-pause-1", HookAnswer::Continue).await.unwrap();
    aws.stop_service_deployment(ARN, true).await.unwrap();
    assert_eq!(found.len(), 1, "one deployment, listed twice, described once");
    assert_eq!(
        (running.num_calls(), list.num_calls(), describe.num_calls(), revisions.num_calls(), stop.num_calls(), answer.num_calls()),
        (1, 1, 1, 1, 1, 1)
    );
}
