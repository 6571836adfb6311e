//! Adapter calls moto 5.2.5 cannot answer — CodeDeploy `UpdateDeploymentGroup`,
//! `DeleteDeploymentGroup`, `DeleteApplication`, CodeBuild `UpdateProject` —, what moto ignores
//! (S3's expected bucket owner), and error mapping,
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
