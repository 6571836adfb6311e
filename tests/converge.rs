//! The converge engine against a real AWS emulator (moto): create, no-op, drift repair,
//! conflict, adopt and prune, for every resource kind moto implements.
//!
//! moto 5.2.5 lacks CodeBuild `UpdateProject` and CodeDeploy `UpdateDeploymentGroup`,
//! `DeleteDeploymentGroup` and `DeleteApplication`; those paths are covered in
//! tests/adapters_mocked.rs with aws-smithy-mocks. It stores an ECS service's deployment
//! controller, deployment configuration and load balancer wiring as `UpdateService` sets them
//! (checked with boto3), so the ECS strategies' settings converge here.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use common::{Moto, edit, example_repo};
use slipway::engine::{ApplyReport, Plan, apply, plan, prepare};
use slipway_aws::Aws;
use slipway_aws::calls::is_read_only;
use slipway_core::plan::Operation;
use slipway_core::prune::PrunePolicy;
use slipway_core::resource::Kind;

// Boxed: a test awaiting many of these inline would otherwise hold them all in one future, which
// overflows a test thread's stack in a debug build.
async fn plan_repo(aws: &Aws, repo: &Path) -> Plan {
    Box::pin(plan(aws, &prepare(repo, &Default::default()).unwrap(), &[], 4, &Default::default())).await.unwrap()
}

async fn apply_repo(aws: &Aws, repo: &Path, prune: bool) -> ApplyReport {
    let plan = plan_repo(aws, repo).await;
    Box::pin(apply(aws, &plan, prune, 4)).await
}

/// `(pipeline, kind label, name, action)` for every step that is not a no-op.
fn pending(plan: &Plan) -> BTreeSet<(String, String, String, String)> {
    plan.pipelines
        .iter()
        .flat_map(|p| {
            p.steps.iter().filter(|s| s.action != Operation::Noop).map(|s| {
                let action = match &s.action {
                    Operation::Create => "create".to_string(),
                    Operation::Update { changes } => {
                        format!("update {}", changes.iter().map(|c| c.path.as_str()).collect::<Vec<_>>().join(","))
                    }
                    Operation::Conflict { .. } => "conflict".to_string(),
                    Operation::Noop => unreachable!(),
                };
                (p.pipeline.clone(), s.key.kind.label().to_string(), s.key.name.clone(), action)
            })
        })
        .collect()
}

fn assert_in_sync(plan: &Plan) {
    assert!(pending(plan).is_empty(), "expected no changes, got {:#?}", pending(plan));
    assert!(!plan.has_errors(), "plan has errors: {}", slipway::report::render_plan(plan));
}

#[tokio::test]
async fn both_seed_pipelines_are_created_and_a_second_apply_makes_no_mutating_call() {
    let moto = Moto::start_bootstrapped();
    let aws = moto.aws().await;
    let repo = example_repo();

    let first = plan_repo(&aws, repo.path()).await;
    let creates: Vec<_> = pending(&first).into_iter().map(|(p, kind, _, action)| (p, kind, action)).collect();
    assert_eq!(creates.len(), 17, "{creates:#?}");
    assert!(creates.iter().all(|(_, _, a)| a == "create"));
    let kinds: BTreeSet<&str> = creates.iter().map(|(_, k, _)| k.as_str()).collect();
    assert_eq!(kinds.len(), 9, "every resource kind is planned: {kinds:?}");

    let report = apply(&aws, &first, false, 4).await;
    assert!(report.succeeded(), "{}", slipway::report::render_apply(&report));

    let before = aws.calls.snapshot();
    let second = plan_repo(&aws, repo.path()).await;
    assert_in_sync(&second);
    assert_eq!(second.orphans.as_deref(), Some(&[][..]));
    // Two pipelines' tagged resources: one page of the Tagging API beats a tag read each. moto's
    // Tagging API covers buckets, CodeDeploy and (patched) EventBridge rules; ECR, CodePipeline,
    // CodeBuild and CloudTrail tags are read on their own, as for a resource a sweep missed.
    let reads = aws.calls.since(&before);
    let count = |op: &str| reads.iter().filter(|c| c.as_str() == op).count();
    assert_eq!(count("Resource Groups Tagging API:GetResources"), 1, "{reads:?}");
    for swept in ["EventBridge:ListTagsForResource", "CodeDeploy:ListTagsForResource", "S3:GetBucketTagging"] {
        assert_eq!(count(swept), 0, "{swept} comes from the sweep: {reads:?}");
    }
    assert_eq!(count("ECR:ListTagsForResource"), 2, "not in moto's Tagging API: read on their own");
    assert_eq!(count("CodePipeline:ListTagsForResource"), 2);
    // The rules' patterns come from one ListRules page, both repositories from one call.
    assert_eq!((count("EventBridge:ListRules"), count("EventBridge:DescribeRule")), (1, 0), "{reads:?}");
    assert_eq!(count("ECR:DescribeRepositories"), 1, "{reads:?}");
    // And the references and applications of both pipelines, one call each.
    for batched in [
        "CodeDeploy:BatchGetApplications",
        "ECS:DescribeServices",
        "Elastic Load Balancing v2:DescribeTargetGroups",
        "Elastic Load Balancing v2:DescribeLoadBalancers",
    ] {
        assert_eq!(count(batched), 1, "{batched}: {reads:?}");
    }
    assert_eq!(count("CodeDeploy:GetApplication"), 0, "{reads:?}");
    // Delivery's check right after takes the service observe just read, once; then reads it.
    use slipway_core::delivery::api::Delivery;
    let before_delivery = aws.calls.snapshot();
    for _ in 0..2 {
        assert!(aws.service_task_definition("demo", "web").await.unwrap().is_some());
    }
    let described = aws.calls.since(&before_delivery).into_iter().filter(|c| c == "ECS:DescribeServices").count();
    assert_eq!(described, 1, "the first check took observe's reading, the second read AWS");

    let before = aws.calls.snapshot();
    let again = apply(&aws, &second, false, 4).await;
    assert!(again.succeeded());
    let writes: Vec<String> = aws.calls.since(&before).into_iter().filter(|c| !is_read_only(c.split(':').nth(1).unwrap())).collect();
    assert!(writes.is_empty(), "a second apply must not write: {writes:?}");

    // What AWS now holds is what the seeds describe.
    let pipeline = aws.codepipeline.get_pipeline().name("web").send().await.unwrap().pipeline.unwrap();
    let stages: Vec<&str> = pipeline.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(stages, ["Source", "Deploy"]);
    let settings = &pipeline.stages[0].actions[0];
    assert_eq!(settings.configuration.as_ref().unwrap()["PollForSourceChanges"], "false");
    let deploy = pipeline.stages[1].actions[0].configuration.clone().unwrap();
    assert_eq!(deploy["Image1ArtifactName"], "images");
    assert_eq!(deploy["TaskDefinitionTemplateArtifact"], "settings");
    let nginx = aws.codepipeline.get_pipeline().name("nginx").send().await.unwrap().pipeline.unwrap();
    let stages: Vec<&str> = nginx.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(stages, ["Source", "Build", "Deploy"]);

    let policy = aws.ecr.get_lifecycle_policy().repository_name("demo-web").send().await.unwrap().lifecycle_policy_text.unwrap();
    let policy: serde_json::Value = serde_json::from_str(&policy).unwrap();
    assert_eq!(policy["rules"][0]["selection"]["tagStatus"], "untagged");
    assert_eq!(policy["rules"][0]["selection"]["countNumber"], 1);

    let group = aws
        .codedeploy
        .get_deployment_group()
        .application_name("web")
        .deployment_group_name("web")
        .send()
        .await
        .unwrap()
        .deployment_group_info
        .unwrap();
    let wait = group
        .blue_green_deployment_configuration
        .unwrap()
        .terminate_blue_instances_on_deployment_success
        .unwrap()
        .termination_wait_time_in_minutes;
    assert_eq!(wait, 5);

    let project = aws.codebuild.batch_get_projects().names("nginx-build").send().await.unwrap().projects.unwrap().remove(0);
    assert_eq!(project.environment.unwrap().privileged_mode, Some(true));

    let zip = aws.s3.get_object().bucket("slipway-demo-code-pipeline").key("docker-image/docker_image.zip").send().await.unwrap();
    let bytes = zip.body.collect().await.unwrap().into_bytes();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let mut names: Vec<String> = archive.file_names().map(|n| n.unwrap().to_string()).collect();
    names.sort();
    assert_eq!(names, ["Dockerfile", "appspec.yml", "buildspec.yml", "git-commit-hash.txt", "index.html", "taskdef.json"]);
    let mut taskdef = String::new();
    std::io::Read::read_to_string(&mut archive.by_name("taskdef.json").unwrap(), &mut taskdef).unwrap();
    assert!(serde_json::from_str::<serde_json::Value>(&taskdef).is_ok());
}

#[tokio::test]
async fn changes_made_behind_slipways_back_show_as_field_diffs_and_are_repaired() {
    let moto = Moto::start_bootstrapped();
    let aws = moto.aws().await;
    let repo = example_repo();
    assert!(apply_repo(&aws, repo.path(), false).await.succeeded());

    // ECR: lifecycle policy replaced, scanning off.
    aws.ecr.put_lifecycle_policy().repository_name("demo-web").lifecycle_policy_text(
        r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":5},"action":{"type":"expire"}}]}"#,
    ).send().await.unwrap();
    // S3: versioning suspended.
    aws.s3
        .put_bucket_versioning()
        .bucket("slipway-demo-web-settings")
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder().status(aws_sdk_s3::types::BucketVersioningStatus::Suspended).build(),
        )
        .send()
        .await
        .unwrap();
    // S3: EventBridge notifications turned off (the S3 trigger needs them).
    aws.s3
        .put_bucket_notification_configuration()
        .bucket("slipway-demo-web-settings")
        .notification_configuration(aws_sdk_s3::types::NotificationConfiguration::builder().build())
        .send()
        .await
        .unwrap();
    // S3: the zip overwritten.
    aws.s3.put_object().bucket("slipway-demo-web-settings").key("settings.zip").body(b"not a zip".to_vec().into()).send().await.unwrap();
    // EventBridge: the rule's target removed.
    aws.events.remove_targets().rule("slipway-web-ecr").ids("codepipeline").send().await.unwrap();
    // CloudTrail: the shared trail's selector pointed at another object (nginx's S3 trigger goes
    // through it).
    let field =
        |field: &str, value: &str| aws_sdk_cloudtrail::types::AdvancedFieldSelector::builder().field(field).equals(value).build().unwrap();
    aws.cloudtrail
        .put_event_selectors()
        .trail_name("slipway-s3-writes")
        .advanced_event_selectors(
            aws_sdk_cloudtrail::types::AdvancedEventSelector::builder()
                .name(slipway_core::resource::trail::SELECTOR_NAME)
                .field_selectors(field("eventCategory", "Data"))
                .field_selectors(field("readOnly", "false"))
                .field_selectors(field("resources.type", "AWS::S3::Object"))
                .field_selectors(field("resources.ARN", "arn:aws:s3:::elsewhere/other.zip"))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    // CodeBuild is left out: moto has no UpdateProject (tests/adapters_mocked.rs covers it).
    // CodePipeline: the source action set to poll.
    let mut pipeline = aws.codepipeline.get_pipeline().name("web").send().await.unwrap().pipeline.unwrap();
    pipeline.stages[0].actions[0].configuration.as_mut().unwrap().insert("PollForSourceChanges".into(), "true".into());
    aws.codepipeline.update_pipeline().pipeline(pipeline).send().await.unwrap();

    let drifted = plan_repo(&aws, repo.path()).await;
    let changes = pending(&drifted);
    let expect = |pipeline: &str, kind: &str, name: &str, paths: &str| {
        (pipeline.to_string(), kind.to_string(), name.to_string(), format!("update {paths}"))
    };
    assert!(changes.contains(&expect("web", "ecr-repository", "demo-web", "lifecyclePolicy.rules[0].selection.countNumber,lifecyclePolicy.rules[0].selection.countType,lifecyclePolicy.rules[0].selection.countUnit,lifecyclePolicy.rules[0].selection.tagStatus")), "{changes:#?}");
    assert!(changes.contains(&expect("web", "s3-bucket", "slipway-demo-web-settings", "eventbridge,versioning")), "{changes:#?}");
    assert!(changes.contains(&expect("web", "source-artifact", "slipway-demo-web-settings/settings.zip", "md5")), "{changes:#?}");
    assert!(changes.contains(&expect("web", "eventbridge-rule", "slipway-web-ecr", "targets")), "{changes:#?}");
    assert!(
        changes.contains(&expect(
            "nginx",
            "cloudtrail-trail",
            "slipway-s3-writes",
            // nginx's object put back; the one added in a bucket no manifest names is kept until
            // prune, as a removed pipeline's would be.
            "advancedEventSelectors[0].fieldSelectors[2].equals"
        )),
        "{changes:#?}"
    );
    assert!(
        changes.contains(&expect("web", "codepipeline", "web", "stages[0].actions[0].configuration.PollForSourceChanges")),
        "{changes:#?}"
    );
    assert_eq!(changes.len(), 6, "nothing else drifted: {changes:#?}");

    let report = apply(&aws, &drifted, false, 4).await;
    assert!(report.succeeded(), "{}", slipway::report::render_apply(&report));
    assert_in_sync(&plan_repo(&aws, repo.path()).await);
}

/// `(path, before, after)` of each field the plan changes on the pipeline's CodePipeline.
fn codepipeline_changes(plan: &Plan, pipeline: &str) -> Vec<(String, serde_json::Value, serde_json::Value)> {
    let steps = &plan.pipelines.iter().find(|p| p.pipeline == pipeline).expect("the pipeline is planned").steps;
    let step = steps.iter().find(|s| s.key.kind == Kind::CodePipeline).expect("a CodePipeline step");
    let Operation::Update { changes } = &step.action else { return Vec::new() };
    changes.iter().map(|c| (c.path.clone(), c.before.clone().unwrap_or_default(), c.after.clone().unwrap_or_default())).collect()
}

/// A live pipeline's `pipelineType` and `executionMode`, as AWS (here moto) returns them.
fn type_and_mode(declaration: &aws_sdk_codepipeline::types::PipelineDeclaration) -> (Option<&str>, Option<&str>) {
    (declaration.pipeline_type.as_ref().map(|t| t.as_str()), declaration.execution_mode.as_ref().map(|m| m.as_str()))
}

#[tokio::test]
async fn an_execution_mode_changed_by_hand_is_drift_even_when_unknown_and_apply_puts_it_back() {
    let moto = Moto::start_bootstrapped();
    let aws = moto.aws().await;
    let repo = example_repo();
    assert!(apply_repo(&aws, repo.path(), false).await.succeeded());
    let live = aws.codepipeline.get_pipeline().name("web").send().await.unwrap().pipeline.unwrap();
    assert_eq!(type_and_mode(&live), (Some("V2"), Some("SUPERSEDED")), "created as the manifest says");

    let mut edited = live;
    edited.execution_mode = Some("QUEUED".into());
    aws.codepipeline.update_pipeline().pipeline(edited).send().await.unwrap();

    let drifted = plan_repo(&aws, repo.path()).await;
    let only = ("web".to_string(), "codepipeline".to_string(), "web".to_string(), "update executionMode".to_string());
    assert_eq!(pending(&drifted), BTreeSet::from([only]));
    assert_eq!(codepipeline_changes(&drifted, "web"), [("executionMode".to_string(), "QUEUED".into(), "SUPERSEDED".into())]);
    let text = slipway::report::render_plan(&drifted);
    assert!(text.contains(r#"executionMode: "QUEUED" → "SUPERSEDED""#), "{text}");

    let report = apply(&aws, &drifted, false, 4).await;
    assert!(report.succeeded(), "{}", slipway::report::render_apply(&report));
    let live = aws.codepipeline.get_pipeline().name("web").send().await.unwrap().pipeline.unwrap();
    assert_eq!(type_and_mode(&live), (Some("V2"), Some("SUPERSEDED")));
    assert_in_sync(&plan_repo(&aws, repo.path()).await);

    // A mode slipway does not know (one AWS might add) is drift too, shown as AWS wrote it.
    let mut edited = live;
    edited.execution_mode = Some("BATCHED".into());
    aws.codepipeline.update_pipeline().pipeline(edited).send().await.unwrap();
    let drifted = plan_repo(&aws, repo.path()).await;
    assert_eq!(codepipeline_changes(&drifted, "web"), [("executionMode".to_string(), "BATCHED".into(), "SUPERSEDED".into())]);
    assert!(apply(&aws, &drifted, false, 4).await.succeeded());
    assert_in_sync(&plan_repo(&aws, repo.path()).await);
}

#[tokio::test]
async fn a_pipeline_made_without_a_type_is_v1_and_becomes_v2_unless_the_manifest_keeps_v1() {
    let moto = Moto::start_bootstrapped();
    let aws = moto.aws().await;
    let repo = example_repo();
    assert!(apply_repo(&aws, repo.path(), false).await.succeeded());
    // Declared as an older slipway did: without a type or mode. moto then returns neither (for
    // AWS such a pipeline is V1 and SUPERSEDED), so the read's defaults are what is tested.
    let mut older = aws.codepipeline.get_pipeline().name("nginx").send().await.unwrap().pipeline.unwrap();
    (older.pipeline_type, older.execution_mode) = (None, None);
    aws.codepipeline.update_pipeline().pipeline(older).send().await.unwrap();
    let live = aws.codepipeline.get_pipeline().name("nginx").send().await.unwrap().pipeline.unwrap();
    assert_eq!(type_and_mode(&live), (None, None));

    let role = "    roleArn: arn:aws:iam::123456789012:role/slipway-demo-codepipeline\n";
    edit(repo.path(), "pipelines/nginx.yaml", role, &format!("{role}    type: V1\n"));
    assert_in_sync(&plan_repo(&aws, repo.path()).await);

    edit(repo.path(), "pipelines/nginx.yaml", "    type: V1\n", "");
    let upgrade = plan_repo(&aws, repo.path()).await;
    let only = ("nginx".to_string(), "codepipeline".to_string(), "nginx".to_string(), "update pipelineType".to_string());
    assert_eq!(pending(&upgrade), BTreeSet::from([only]));
    assert_eq!(codepipeline_changes(&upgrade, "nginx"), [("pipelineType".to_string(), "V1".into(), "V2".into())]);
    let text = slipway::report::render_plan(&upgrade);
    assert!(text.contains(r#"pipelineType: "V1" → "V2""#), "{text}");

    let report = apply(&aws, &upgrade, false, 4).await;
    assert!(report.succeeded(), "{}", slipway::report::render_apply(&report));
    let live = aws.codepipeline.get_pipeline().name("nginx").send().await.unwrap().pipeline.unwrap();
    assert_eq!(type_and_mode(&live), (Some("V2"), Some("SUPERSEDED")));
    assert_in_sync(&plan_repo(&aws, repo.path()).await);
}

#[tokio::test]
async fn a_resource_without_slipways_tags_is_a_conflict_and_is_left_alone_until_adopted() {
    let moto = Moto::start_bootstrapped();
    let aws = moto.aws().await;
    let repo = example_repo();
    // Someone created the repository by hand, with their own tag.
    aws.ecr
        .create_repository()
        .repository_name("demo-web")
        .tags(aws_sdk_ecr::types::Tag::builder().key("owner").value("alice").build().unwrap())
        .send()
        .await
        .unwrap();

    let planned = plan_repo(&aws, repo.path()).await;
    let web = planned.pipelines.iter().find(|p| p.pipeline == "web").unwrap();
    assert!(web.is_blocked());
    let conflict = web.steps.iter().find(|s| s.key.name == "demo-web").unwrap();
    let Operation::Conflict { reason } = &conflict.action else { panic!("expected a conflict, got {:?}", conflict.action) };
    assert!(reason.contains("adopt"), "{reason}");

    let report = apply(&aws, &planned, false, 4).await;
    assert!(!report.succeeded());
    let web_outcome = report.pipelines.iter().find(|p| p.pipeline == "web").unwrap();
    assert!(web_outcome.done.is_empty() && web_outcome.skipped.is_some());
    let nginx = report.pipelines.iter().find(|p| p.pipeline == "nginx").unwrap();
    assert!(nginx.error.is_none() && nginx.skipped.is_none() && !nginx.done.is_empty(), "the other pipeline converges");
    let policy = aws.ecr.get_lifecycle_policy().repository_name("demo-web").send().await;
    assert!(policy.is_err(), "the foreign repository was not changed");
    assert!(aws.codepipeline.get_pipeline().name("web").send().await.is_err(), "nothing of the blocked pipeline was created");

    edit(repo.path(), "pipelines/web.yaml", "spec:\n", "spec:\n  adopt: true\n");
    let adopted = plan_repo(&aws, repo.path()).await;
    let step = adopted.pipelines.iter().find(|p| p.pipeline == "web").unwrap().steps.iter().find(|s| s.key.name == "demo-web").unwrap();
    let Operation::Update { changes } = &step.action else { panic!("adopt updates: {:?}", step.action) };
    assert!(changes.iter().any(|c| c.path == "tags.slipway.dev/managed-by"));
    assert!(apply(&aws, &adopted, false, 4).await.succeeded());
    assert_in_sync(&plan_repo(&aws, repo.path()).await);
    let arn = aws.ecr.describe_repositories().repository_names("demo-web").send().await.unwrap().repositories.unwrap()[0]
        .repository_arn
        .clone()
        .unwrap();
    let tags = aws.ecr.list_tags_for_resource().resource_arn(arn).send().await.unwrap().tags.unwrap();
    assert!(tags.iter().any(|t| t.key == "owner" && t.value == "alice"), "tags others set are kept");
}

#[tokio::test]
async fn a_pipeline_removed_from_git_is_orphaned_and_prune_deletes_only_what_slipway_owns() {
    let moto = Moto::start_bootstrapped();
    let aws = moto.aws().await;
    let repo = example_repo();
    // Everything of nginx may go, its repository and bucket included.
    edit(repo.path(), "pipelines/nginx.yaml", "spec:\n", "spec:\n  deletionPolicy: Delete\n");
    assert!(apply_repo(&aws, repo.path(), false).await.succeeded());

    // A broken manifest protects its pipeline: never an orphan.
    edit(repo.path(), "pipelines/nginx.yaml", "  source:\n", "  sauce:\n");
    let broken = plan_repo(&aws, repo.path()).await;
    let errors: Vec<String> = broken.invalid.iter().map(ToString::to_string).collect();
    assert!(!errors.is_empty() && errors.iter().all(|e| e.contains("nginx.yaml")), "{errors:?}");
    assert_eq!(broken.orphans.as_deref(), Some(&[][..]), "a typo must not orphan a pipeline");

    std::fs::remove_file(repo.path().join("pipelines/nginx.yaml")).unwrap();
    let orphaned = plan_repo(&aws, repo.path()).await;
    let orphans: BTreeSet<(String, String)> =
        orphaned.orphans.clone().unwrap().into_iter().map(|o| (o.key.kind.label().to_string(), o.key.name)).collect();
    let expected: BTreeSet<(String, String)> = [
        ("ecr-repository", "demo-nginx"),
        ("s3-bucket", "slipway-demo-code-pipeline"),
        ("cloudtrail-trail", "slipway-s3-writes"),
        ("codebuild-project", "nginx-build"),
        ("codedeploy-application", "nginx"),
        ("codepipeline", "nginx"),
        ("eventbridge-rule", "slipway-nginx-s3"),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_string(), n.to_string()))
    .collect();
    assert_eq!(orphans, expected);

    // Without --prune nothing is deleted.
    let kept = apply(&aws, &orphaned, false, 4).await;
    assert_eq!(kept.orphans_kept, 7);
    assert!(aws.codepipeline.get_pipeline().name("nginx").send().await.is_ok());

    let pruned = apply(&aws, &orphaned, true, 4).await;
    let deleted: BTreeSet<String> = pruned.pruned.iter().map(|d| d.key.name.clone()).collect();
    // moto has no DeleteApplication: that deletion fails here and is tested with mocks instead.
    assert_eq!(pruned.prune_errors.len(), 1, "{:?}", pruned.prune_errors);
    assert!(pruned.prune_errors[0].contains("codedeploy-application nginx"), "{:?}", pruned.prune_errors);
    assert_eq!(deleted.len(), 6, "{deleted:?}");
    assert!(aws.codepipeline.get_pipeline().name("nginx").send().await.is_err());
    assert!(aws.s3.head_bucket().bucket("slipway-demo-code-pipeline").send().await.is_err());
    assert!(aws.ecr.describe_repositories().repository_names("demo-nginx").send().await.is_err());
    // Unowned resources in the same account are untouched.
    assert!(aws.s3.head_bucket().bucket("slipway-demo-trail-logs").send().await.is_ok());
    assert!(aws.codepipeline.get_pipeline().name("web").send().await.is_ok());
}

#[tokio::test]
async fn by_default_prune_keeps_the_repository_and_the_bucket_of_a_removed_pipeline() {
    let moto = Moto::start_bootstrapped();
    let aws = moto.aws().await;
    let repo = example_repo();
    assert!(apply_repo(&aws, repo.path(), false).await.succeeded());
    std::fs::remove_file(repo.path().join("pipelines/nginx.yaml")).unwrap();

    let plan = plan_repo(&aws, repo.path()).await;
    let retained: BTreeSet<String> = plan.orphans.as_deref().unwrap().iter().filter(|o| !o.prunable()).map(|o| o.key.to_string()).collect();
    assert_eq!(retained, ["ecr-repository demo-nginx", "s3-bucket slipway-demo-code-pipeline"].map(String::from).into());
    let text = slipway::report::render_plan(&plan);
    assert!(text.contains("RETAIN ecr-repository demo-nginx (pipeline nginx, deletionPolicy: Retain)"), "{text}");
    assert!(text.contains("DELETE codepipeline nginx"), "{text}");

    let report = apply(&aws, &plan, true, 4).await;
    assert_eq!(report.orphans_retained, 2);
    assert!(report.pruned.iter().all(|d| !matches!(d.key.kind, Kind::EcrRepository | Kind::S3Bucket)), "{:?}", report.pruned);
    assert!(aws.codepipeline.get_pipeline().name("nginx").send().await.is_err(), "the rest is deleted");
    assert!(aws.ecr.describe_repositories().repository_names("demo-nginx").send().await.is_ok());
    assert!(aws.s3.head_bucket().bucket("slipway-demo-code-pipeline").send().await.is_ok());
    // Retained orphans stay listed, marked RETAIN, until deleted by hand.
    let after = plan_repo(&aws, repo.path()).await;
    assert!(after.orphans.as_deref().unwrap().iter().filter(|o| !o.prunable()).count() == 2);
}

/// The inventory entries of `pipeline` in the default state bucket, as object keys.
async fn recorded(aws: &Aws, pipeline: &str) -> BTreeSet<String> {
    let listed = aws.s3.list_objects_v2().bucket(&aws.inventory.bucket).prefix(format!("inventory/v1/{pipeline}/")).send().await.unwrap();
    listed.contents().iter().filter_map(|o| o.key.clone()).collect()
}

#[tokio::test]
async fn prune_deletes_only_what_this_installations_inventory_records_and_a_fresh_process_finds_it() {
    let moto = Moto::start_bootstrapped();
    let aws = moto.aws().await;
    let repo = example_repo();
    edit(repo.path(), "pipelines/nginx.yaml", "spec:\n", "spec:\n  deletionPolicy: Delete\n");
    assert!(apply_repo(&aws, repo.path(), false).await.succeeded());

    // The inventory is in the state bucket: an object per resource prune may delete, and each
    // pipeline's last applied revision.
    let before = recorded(&aws, "nginx").await;
    assert_eq!(before.len(), 7, "{before:?}");
    assert!(before.contains("inventory/v1/nginx/codepipeline/nginx"), "{before:?}");
    let state = &aws.inventory.bucket;
    assert_eq!(*state, slipway_aws::default_state_bucket(common::ACCOUNT, common::REGION));
    let versioning = aws.s3.get_bucket_versioning().bucket(state).send().await.unwrap();
    assert_eq!(versioning.status().map(|s| s.as_str()), Some("Enabled"), "the state bucket keeps every change");
    let block = aws.s3.get_public_access_block().bucket(state).send().await.unwrap().public_access_block_configuration.unwrap();
    assert_eq!(block.block_public_acls().zip(block.restrict_public_buckets()), Some((true, true)));
    let applied = slipway_aws::inventory::read_applied(&aws, "nginx").await.unwrap().expect("the apply is recorded");
    assert_eq!((applied.pipeline.as_str(), applied.revision), ("nginx", None), "examples/ is not a Git work tree");

    // As after an upgrade from a slipway without the inventory: the entries are gone, and the
    // next apply, with nothing to change, records what the pipeline already has.
    for key in &before {
        aws.s3.delete_object().bucket(&aws.inventory.bucket).key(key).send().await.unwrap();
    }
    assert!(recorded(&aws, "nginx").await.is_empty());
    let fresh = moto.aws().await;
    let report = apply_repo(&fresh, repo.path(), false).await;
    assert!(report.succeeded() && report.pipelines.iter().all(|p| p.done.is_empty()), "nothing to change");
    assert_eq!(recorded(&aws, "nginx").await, before, "what the pipeline has is recorded again");

    // A rule tagged as nginx's by hand: no slipway created it, so none prunes it.
    let tag = |k: &str, v: &str| aws_sdk_eventbridge::types::Tag::builder().key(k).value(v).build().unwrap();
    aws.events
        .put_rule()
        .name("hand-made")
        .event_pattern(r#"{"source":["aws.s3"]}"#)
        .tags(tag("slipway.dev/managed-by", "slipway"))
        .tags(tag("slipway.dev/pipeline", "nginx"))
        .send()
        .await
        .unwrap();

    // Another installation, with its own state bucket, pruning from an empty revision: its
    // inventory is empty, so nothing of this one is touched (a tag sweep would have taken all).
    let other = moto.aws().await.with_state_bucket(Some("other-installation-state".into()));
    let empty = tempfile::tempdir().unwrap();
    let (report, alive) =
        prune_with(&other, empty.path(), &PrunePolicy { allow_empty: true, max_pipelines: 10, ..Default::default() }).await;
    assert!(report.pruned.is_empty() && alive == [true, true], "{:?}", report.pruned);

    // nginx's bucket, handed by hand to another pipeline: recorded, but no longer tagged as
    // nginx's, so prune leaves it (and its entry).
    let bucket_entry = before.iter().find(|k| k.contains("/s3-bucket/")).expect("the bucket is recorded").clone();
    let bucket = bucket_entry.rsplit('/').next().unwrap();
    let s3_tag = |k: &str, v: &str| aws_sdk_s3::types::Tag::builder().key(k).value(v).build().unwrap();
    let tagging = aws_sdk_s3::types::Tagging::builder()
        .tag_set(s3_tag("slipway.dev/managed-by", "slipway"))
        .tag_set(s3_tag("slipway.dev/pipeline", "someone-else"))
        .build()
        .unwrap();
    aws.s3.put_bucket_tagging().bucket(bucket).tagging(tagging).send().await.unwrap();

    // A fresh process of this installation finds the inventory and prunes the removed pipeline.
    std::fs::remove_file(repo.path().join("pipelines/nginx.yaml")).unwrap();
    let fresh = moto.aws().await;
    let (report, alive) = prune_with(&fresh, repo.path(), &PrunePolicy::default()).await;
    assert_eq!(alive, [false, true], "{:?} {:?}", report.pruned, report.prune_errors);
    assert!(aws.events.describe_rule().name("hand-made").send().await.is_ok(), "a resource outside the inventory is never pruned");
    assert!(aws.s3.head_bucket().bucket(bucket).send().await.is_ok(), "a resource tagged as another pipeline's is never pruned");
    // What was deleted left the inventory; the application moto cannot delete stays in it, and
    // so does the bucket prune left.
    let after = recorded(&aws, "nginx").await;
    let kept: BTreeSet<String> = ["inventory/v1/nginx/codedeploy-application/nginx".to_string(), bucket_entry.clone()].into();
    assert_eq!(after, kept, "{:?}", report.prune_errors);
}

/// Plans with `policy` and applies with --prune; returns the report and whether both pipelines'
/// CodePipelines still exist.
async fn prune_with(aws: &Aws, repo: &Path, policy: &PrunePolicy) -> (ApplyReport, [bool; 2]) {
    let plan = plan(aws, &prepare(repo, &Default::default()).unwrap(), &[], 4, policy).await.unwrap();
    let report = apply(aws, &plan, true, 4).await;
    let mut alive = [false; 2];
    for (i, name) in ["nginx", "web"].into_iter().enumerate() {
        alive[i] = aws.codepipeline.get_pipeline().name(name).send().await.is_ok();
    }
    (report, alive)
}

#[tokio::test]
async fn prune_deletes_nothing_from_a_broken_or_empty_revision_or_beyond_its_budget() {
    let moto = Moto::start_bootstrapped();
    let aws = moto.aws().await;
    let repo = example_repo();
    assert!(apply_repo(&aws, repo.path(), false).await.succeeded());
    let web = repo.path().join("pipelines/web.yaml");
    let good_web = std::fs::read(&web).unwrap();
    let policy = PrunePolicy::default();
    std::fs::remove_file(repo.path().join("pipelines/nginx.yaml")).unwrap();

    // One Latin-1 byte in a comment: the file cannot be read, so web's resources look unwanted
    // and nginx's are orphans, but nothing is deleted; the error names the file and the line.
    let mut latin1 = good_web.clone();
    latin1.splice(0..0, b"# caf\xe9\n".iter().copied());
    std::fs::write(&web, &latin1).unwrap();
    let (report, alive) = prune_with(&aws, repo.path(), &policy).await;
    assert_eq!(alive, [true, true], "{:?}", report.pruned);
    assert!(report.pruned.is_empty());
    assert_eq!((report.invalid[0].file.as_path(), report.invalid[0].line), (Path::new("pipelines/web.yaml"), 1));
    assert!(report.prune_errors.iter().any(|e| e.contains("pipelines/web.yaml")), "{:?}", report.prune_errors);

    // A misspelt apiVersion is an error, not "not a manifest".
    std::fs::write(&web, String::from_utf8(good_web.clone()).unwrap().replace("slipway.dev/", "slipwy.dev/")).unwrap();
    let (report, alive) = prune_with(&aws, repo.path(), &policy).await;
    assert_eq!(alive, [true, true]);
    assert!(report.invalid[0].message.contains("did you mean"), "{}", report.invalid[0]);

    // Any YAML file that does not parse holds prune, even one that is not a manifest.
    std::fs::write(&web, &good_web).unwrap();
    std::fs::write(repo.path().join("notes.yaml"), "a: [1, 2\n").unwrap();
    let (report, alive) = prune_with(&aws, repo.path(), &policy).await;
    assert_eq!(alive, [true, true]);
    assert!(report.prune_errors.iter().any(|e| e.contains("notes.yaml")), "{:?}", report.prune_errors);
    std::fs::remove_file(repo.path().join("notes.yaml")).unwrap();

    // A manifest truncated to nothing holds prune too.
    std::fs::write(repo.path().join("pipelines/nginx.yaml"), "").unwrap();
    let (report, alive) = prune_with(&aws, repo.path(), &policy).await;
    assert_eq!(alive, [true, true]);
    assert!(report.prune_errors.iter().any(|e| e.contains("pipelines/nginx.yaml")), "{:?}", report.prune_errors);

    // A revision with no pipeline at all (a wrong --repo) deletes nothing without --allow-empty.
    std::fs::remove_dir_all(repo.path().join("pipelines")).unwrap();
    let (report, alive) = prune_with(&aws, repo.path(), &policy).await;
    assert_eq!(alive, [true, true]);
    assert!(report.prune_errors.iter().any(|e| e.contains("--allow-empty")), "{:?}", report.prune_errors);

    // Two pipelines' resources are more than a budget of one.
    let one = PrunePolicy { allow_empty: true, max_pipelines: 1, ..Default::default() };
    let (report, alive) = prune_with(&aws, repo.path(), &one).await;
    assert_eq!(alive, [true, true]);
    assert!(report.prune_errors.iter().any(|e| e.contains("--prune-max 1")), "{:?}", report.prune_errors);

    // Allowed and within budget, prune does delete.
    let (report, alive) = prune_with(&aws, repo.path(), &PrunePolicy { allow_empty: true, max_pipelines: 2, ..Default::default() }).await;
    assert_eq!(alive, [false, false], "{:?}", report.prune_errors);
}

#[tokio::test]
async fn a_broken_manifest_is_reported_and_the_other_pipeline_still_converges() {
    let moto = Moto::start_bootstrapped();
    let aws = moto.aws().await;
    let repo = example_repo();
    edit(repo.path(), "apps/nginx/taskdef.json", "\"cpu\": \"256\",", "\"cpu\": \"256\"");

    let report = apply_repo(&aws, repo.path(), false).await;
    assert!(!report.succeeded());
    assert_eq!(report.invalid.len(), 1);
    let diag = &report.invalid[0];
    assert_eq!(diag.file, Path::new("apps/nginx/taskdef.json"));
    // The missing comma ends line 13; the parser notices at the next key.
    assert_eq!((diag.line, diag.column), (14, 3), "{diag}");
    assert_eq!(report.pipelines.len(), 1);
    assert_eq!(report.pipelines[0].pipeline, "web");
    assert!(report.pipelines[0].error.is_none() && report.pipelines[0].done.len() == 8);
}

#[tokio::test]
async fn missing_references_and_a_service_without_the_codedeploy_controller_block_the_pipeline() {
    let moto = Moto::start_bootstrapped();
    let aws = moto.aws().await;
    let repo = example_repo();
    // A service created with the default (ECS) deployment controller, like most services.
    let existing = aws.ecs.describe_services().cluster("demo").services("web").send().await.unwrap().services.unwrap().remove(0);
    aws.ecs
        .create_service()
        .cluster("demo")
        .service_name("rolling")
        .task_definition("web:1")
        .desired_count(1)
        .launch_type(aws_sdk_ecs::types::LaunchType::Fargate)
        .set_network_configuration(existing.network_configuration)
        .send()
        .await
        .unwrap();
    edit(repo.path(), "pipelines/web.yaml", "service: web ", "service: rolling ");
    edit(repo.path(), "pipelines/nginx.yaml", "nginx-green]", "nginx-grene]");

    let planned = plan_repo(&aws, repo.path()).await;
    let problems = |name: &str| planned.pipelines.iter().find(|p| p.pipeline == name).unwrap().problems.clone();
    let web = problems("web");
    assert_eq!(web.len(), 1, "{web:?}");
    assert!(web[0].starts_with("ECS service demo/rolling: uses the ECS deployment controller"), "{web:?}");
    let nginx = problems("nginx");
    assert_eq!(nginx, ["target group nginx-grene: does not exist (slipway references target groups, it does not create them)"]);
    // The summary counts what apply will do: nothing is created in a blocked pipeline.
    let summary = slipway::report::render_plan(&planned);
    assert!(summary.contains("Plan: 0 to create, 0 to change, 0 orphaned (0 to delete), 2 pipeline(s) blocked,"), "{summary}");
    let report = apply(&aws, &planned, false, 4).await;
    assert!(report.pipelines.iter().all(|p| p.skipped.is_some() && p.done.is_empty()));
}

#[tokio::test]
async fn every_kind_without_slipways_tags_is_a_conflict_and_adopt_takes_each_back() {
    let moto = Moto::start_bootstrapped();
    let aws = moto.aws().await;
    let repo = example_repo();
    // web with a trail of its own too, so that it has a resource of every tagged kind.
    edit(
        repo.path(),
        "pipelines/web.yaml",
        "via: eventbridge",
        "via: cloudtrail\n      trail: slipway-web\n      logBucket: slipway-demo-trail-logs",
    );
    assert!(apply_repo(&aws, repo.path(), false).await.succeeded());

    // Strip the ownership tags from every resource of `web`, as if someone else had made them.
    let keys = ["slipway.dev/managed-by", "slipway.dev/pipeline"];
    let arn = |service: &str, resource: &str| aws.arn(service, resource);
    aws.ecr
        .untag_resource()
        .resource_arn(arn("ecr", "repository/demo-web"))
        .set_tag_keys(Some(keys.map(String::from).to_vec()))
        .send()
        .await
        .unwrap();
    aws.s3.delete_bucket_tagging().bucket("slipway-demo-web-settings").send().await.unwrap();
    aws.cloudtrail
        .remove_tags()
        .resource_id(arn("cloudtrail", "trail/slipway-web"))
        .set_tags_list(Some(keys.iter().map(|k| aws_sdk_cloudtrail::types::Tag::builder().key(*k).build().unwrap()).collect()))
        .send()
        .await
        .unwrap();
    for resource in ["application:web", "deploymentgroup:web/web"] {
        aws.codedeploy
            .untag_resource()
            .resource_arn(arn("codedeploy", resource))
            .set_tag_keys(Some(keys.map(String::from).to_vec()))
            .send()
            .await
            .unwrap();
    }
    aws.codepipeline
        .untag_resource()
        .resource_arn(arn("codepipeline", "web"))
        .set_tag_keys(Some(keys.map(String::from).to_vec()))
        .send()
        .await
        .unwrap();
    for rule in ["rule/slipway-web-ecr", "rule/slipway-web-s3"] {
        aws.events
            .untag_resource()
            .resource_arn(arn("events", rule))
            .set_tag_keys(Some(keys.map(String::from).to_vec()))
            .send()
            .await
            .unwrap();
    }

    let planned = plan_repo(&aws, repo.path()).await;
    let conflicts: BTreeSet<String> =
        pending(&planned).into_iter().filter(|(_, _, _, a)| a == "conflict").map(|(_, kind, _, _)| kind).collect();
    let expected: BTreeSet<String> = [
        "ecr-repository",
        "s3-bucket",
        "cloudtrail-trail",
        "codedeploy-application",
        "codedeploy-deployment-group",
        "codepipeline",
        "eventbridge-rule",
    ]
    .map(String::from)
    .into();
    assert_eq!(conflicts, expected);
    assert_eq!(pending(&planned).iter().filter(|(_, _, _, a)| a == "conflict").count(), 8);
    // The stripped resources are not orphans either: they are not slipway's any more.
    assert_eq!(planned.orphans.as_deref(), Some(&[][..]));

    edit(repo.path(), "pipelines/web.yaml", "spec:\n", "spec:\n  adopt: true\n");
    let report = apply_repo(&aws, repo.path(), false).await;
    assert!(report.succeeded(), "{}", slipway::report::render_apply(&report));
    assert_eq!(report.pipelines.iter().find(|p| p.pipeline == "web").unwrap().done.len(), 8, "each adopted resource is re-tagged");
    assert_in_sync(&plan_repo(&aws, repo.path()).await);
}

/// Every AWS operation, in the order the calls end.
#[derive(Default)]
struct CallOrder(std::sync::Mutex<Vec<String>>);

impl slipway_aws::calls::CallObserver for CallOrder {
    fn observe(&self, _: &str, operation: &str, _: bool, _: Option<std::time::Duration>) {
        self.0.lock().unwrap().push(operation.to_string());
    }
}

async fn executions(aws: &Aws, pipeline: &str) -> usize {
    let listed = aws.codepipeline.list_pipeline_executions().pipeline_name(pipeline).send().await.unwrap();
    listed.pipeline_execution_summaries.unwrap_or_default().len()
}

/// The default S3 trigger: the source bucket's own EventBridge notifications, no trail. moto
/// sends the bucket's events to EventBridge; starting a CodePipeline target is patch 6 of
/// scripts/patch-moto.py, and reading the setting back is patch 5.
#[tokio::test]
async fn a_write_to_the_source_object_starts_its_pipeline_through_s3s_eventbridge_notifications() {
    let moto = Moto::start_bootstrapped();
    let aws = moto.aws().await;
    let repo = example_repo();
    assert!(apply_repo(&aws, repo.path(), false).await.succeeded());
    assert!(aws.cloudtrail.get_trail().name("slipway-web").send().await.is_err(), "no trail for web");

    let started = executions(&aws, "web").await;
    assert_eq!(started, 1, "uploading the zip, the last step of apply, started the pipeline");
    let put = |key: &'static str| aws.s3.put_object().bucket("slipway-demo-web-settings").key(key).body(b"zip".to_vec().into()).send();
    put("settings.zip").await.unwrap();
    assert_eq!(executions(&aws, "web").await, started + 1);
    put("settings.zip.tmp").await.unwrap();
    put("other/settings.zip").await.unwrap();
    assert_eq!(executions(&aws, "web").await, started + 1, "only the source object starts it");

    // Someone adds their own destination and, in the same call, drops EventBridge: slipway
    // repairs the one setting it needs and keeps theirs.
    let queue = "arn:aws:sqs:ap-northeast-1:123456789012:someone-elses-queue";
    let theirs = aws_sdk_s3::types::QueueConfiguration::builder()
        .queue_arn(queue)
        .events(aws_sdk_s3::types::Event::S3ObjectRemovedDelete)
        .build()
        .unwrap();
    aws.s3
        .put_bucket_notification_configuration()
        .bucket("slipway-demo-web-settings")
        .notification_configuration(aws_sdk_s3::types::NotificationConfiguration::builder().queue_configurations(theirs).build())
        .send()
        .await
        .unwrap();
    let drifted = plan_repo(&aws, repo.path()).await;
    let web = |kind: &str, name: &str, action: &str| ("web".to_string(), kind.to_string(), name.to_string(), action.to_string());
    let expected = BTreeSet::from([
        web("s3-bucket", "slipway-demo-web-settings", "update eventbridge"),
        web("source-artifact", "slipway-demo-web-settings/settings.zip", "update md5"),
    ]);
    assert_eq!(pending(&drifted), expected, "the bucket's setting, and the zip written above");
    assert!(apply(&aws, &drifted, false, 4).await.succeeded());
    assert_in_sync(&plan_repo(&aws, repo.path()).await);
    let config = aws.s3.get_bucket_notification_configuration().bucket("slipway-demo-web-settings").send().await.unwrap();
    assert!(config.event_bridge_configuration.is_some());
    let queues: Vec<String> = config.queue_configurations.unwrap_or_default().into_iter().map(|q| q.queue_arn).collect();
    assert_eq!(queues, [queue], "the bucket's other destinations are kept");

    // A bucket no trigger needs keeps EventBridge as it is: nginx's goes through its trail, and
    // turning notifications on by hand there is not drift.
    aws.s3
        .put_bucket_notification_configuration()
        .bucket("slipway-demo-code-pipeline")
        .notification_configuration(
            aws_sdk_s3::types::NotificationConfiguration::builder()
                .event_bridge_configuration(aws_sdk_s3::types::EventBridgeConfiguration::builder().build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_in_sync(&plan_repo(&aws, repo.path()).await);
}

/// Moving a pipeline from its own trail to S3's notifications: the bucket starts sending
/// events and the rule matches them before the trail is deleted, so no write goes unseen; the
/// trail goes only with prune, as the orphan it now is.
#[tokio::test]
async fn a_pipeline_moves_from_its_trail_to_s3_notifications_with_no_window_where_writes_go_unseen() {
    let moto = Moto::start_bootstrapped();
    let order = Arc::new(CallOrder::default());
    let aws = moto.aws_observed(order.clone()).await;
    let repo = example_repo();
    let via_trail = "via: cloudtrail\n      trail: slipway-web\n      logBucket: slipway-demo-trail-logs";
    edit(repo.path(), "pipelines/web.yaml", "via: eventbridge", via_trail);
    assert!(apply_repo(&aws, repo.path(), false).await.succeeded());
    assert!(aws.cloudtrail.get_trail().name("slipway-web").send().await.is_ok());

    edit(repo.path(), "pipelines/web.yaml", via_trail, "via: eventbridge");
    let moving = plan_repo(&aws, repo.path()).await;
    let changes: BTreeSet<(String, String)> = pending(&moving).into_iter().map(|(_, kind, _, action)| (kind, action)).collect();
    assert_eq!(
        changes,
        BTreeSet::from([
            ("s3-bucket".to_string(), "update eventbridge".to_string()),
            ("eventbridge-rule".to_string(), "update eventPattern.detail.bucket,eventPattern.detail.eventName,eventPattern.detail.eventSource,eventPattern.detail.object,eventPattern.detail.requestParameters,eventPattern.detail-type[0]".to_string()),
        ])
    );
    let orphans: Vec<String> = moving.orphans.clone().unwrap().into_iter().map(|o| o.key.to_string()).collect();
    assert_eq!(orphans, ["cloudtrail-trail slipway-web"]);

    order.0.lock().unwrap().clear();
    let report = apply(&aws, &moving, true, 4).await;
    assert!(report.succeeded(), "{}", slipway::report::render_apply(&report));
    let writes: Vec<String> = order.0.lock().unwrap().iter().filter(|op| !is_read_only(op)).cloned().collect();
    let at = |op: &str| writes.iter().position(|c| c == op).unwrap_or_else(|| panic!("no {op} in {writes:?}"));
    assert!(at("PutBucketNotificationConfiguration") < at("DeleteTrail"), "{writes:?}");
    assert!(at("PutRule") < at("DeleteTrail"), "{writes:?}");
    assert!(aws.cloudtrail.get_trail().name("slipway-web").send().await.is_err());
    assert_in_sync(&plan_repo(&aws, repo.path()).await);
}

/// The watched objects of a trail.
async fn watched(aws: &Aws, trail: &str) -> Vec<String> {
    let key = slipway_core::resource::Key::new(Kind::CloudTrailTrail, trail);
    let Some(live) = slipway_aws::resource::read(aws, &key, None).await.unwrap() else { panic!("no trail {trail}") };
    let slipway_core::resource::Spec::Trail(spec) = live.spec else { panic!("a trail spec") };
    spec.watched().into_iter().cloned().collect()
}

const WEB_OBJECT: &str = "arn:aws:s3:::slipway-demo-web-settings/settings.zip";
const NGINX_OBJECT: &str = "arn:aws:s3:::slipway-demo-code-pipeline/docker-image/docker_image.zip";

/// Pipelines on the CloudTrail route share one trail: applied together they create it once; a
/// broken manifest keeps the object it may watch; a pipeline leaving the route is dropped from
/// the trail without anything becoming an orphan.
#[tokio::test]
async fn pipelines_on_the_cloudtrail_route_share_one_trail_and_a_broken_manifest_keeps_its_object() {
    let moto = Moto::start_bootstrapped();
    let order = Arc::new(CallOrder::default());
    let aws = moto.aws_observed(order.clone()).await;
    let repo = example_repo();
    let via_trail = "via: cloudtrail\n      logBucket: slipway-demo-trail-logs\n      logPrefix: slipway";
    edit(repo.path(), "pipelines/web.yaml", "via: eventbridge", via_trail);
    let creating = plan_repo(&aws, repo.path()).await;
    let shown = slipway::report::render_plan(&creating);
    assert_eq!(shown.matches("+ create cloudtrail-trail slipway-s3-writes (shared)").count(), 2, "{shown}");
    let distinct: BTreeSet<String> =
        pending(&creating).into_iter().filter(|(_, _, _, a)| a == "create").map(|(_, k, n, _)| k + &n).collect();
    assert!(shown.contains(&format!("Plan: {} to create,", distinct.len())), "the shared trail counted once: {shown}");
    let report = apply(&aws, &creating, false, 4).await;
    assert!(report.succeeded(), "{}", slipway::report::render_apply(&report));
    let calls = order.0.lock().unwrap().clone();
    assert_eq!(calls.iter().filter(|c| *c == "CreateTrail").count(), 1, "web and nginx applied together create it once: {calls:?}");
    let trails = aws.cloudtrail.list_trails().send().await.unwrap().trails.unwrap_or_default();
    assert_eq!(trails.iter().filter_map(|t| t.name.as_deref()).collect::<Vec<_>>(), ["slipway-s3-writes"]);
    assert_eq!(watched(&aws, "slipway-s3-writes").await, [NGINX_OBJECT, WEB_OBJECT]);
    let tags = aws.cloudtrail.list_tags().resource_id_list(aws.arn("cloudtrail", "trail/slipway-s3-writes")).send().await.unwrap();
    let tags: BTreeSet<(String, String)> =
        tags.resource_tag_list.unwrap()[0].tags_list.clone().unwrap().into_iter().map(|t| (t.key, t.value.unwrap_or_default())).collect();
    assert!(tags.contains(&("slipway.dev/installation".into(), aws.inventory.bucket.clone())), "{tags:?}");
    assert!(!tags.iter().any(|(k, _)| k == "slipway.dev/pipeline"), "the installation's, no pipeline's: {tags:?}");
    order.0.lock().unwrap().clear();
    assert_in_sync(&plan_repo(&aws, repo.path()).await);
    let reads = order.0.lock().unwrap().iter().filter(|c| *c == "GetTrail").count();
    assert_eq!(reads, 1, "a pass reads the trail once for both pipelines");

    // web's manifest breaks: nginx's pass must not drop web's object from the trail.
    edit(repo.path(), "pipelines/web.yaml", "logPrefix: slipway", "logPrefix: slipway\n      logPrefx: typo");
    let broken = plan_repo(&aws, repo.path()).await;
    assert!(broken.invalid.iter().all(|d| d.file.ends_with("web.yaml")) && !broken.invalid.is_empty());
    assert!(pending(&broken).is_empty(), "{:#?}", pending(&broken));
    assert!(apply(&aws, &broken, true, 4).await.pipelines.iter().all(|p| p.error.is_none()));
    assert_eq!(watched(&aws, "slipway-s3-writes").await, [NGINX_OBJECT, WEB_OBJECT]);

    // Fixed and moved to S3's notifications: the trail stops watching web's object.
    edit(repo.path(), "pipelines/web.yaml", "\n      logPrefx: typo", "");
    edit(repo.path(), "pipelines/web.yaml", via_trail, "via: eventbridge");
    let moved = plan_repo(&aws, repo.path()).await;
    let trail_steps: Vec<_> = pending(&moved).into_iter().filter(|(_, kind, _, _)| kind == "cloudtrail-trail").collect();
    assert_eq!(
        trail_steps,
        [(
            "nginx".to_string(),
            "cloudtrail-trail".to_string(),
            "slipway-s3-writes".to_string(),
            "update advancedEventSelectors[0].fieldSelectors[2].equals".to_string()
        )]
    );
    assert_eq!(moved.orphans.as_deref(), Some(&[][..]), "the trail is still nginx's");
    assert!(apply(&aws, &moved, false, 4).await.succeeded());
    assert_eq!(watched(&aws, "slipway-s3-writes").await, [NGINX_OBJECT]);
    assert_in_sync(&plan_repo(&aws, repo.path()).await);
}

/// A pipeline removed from Git keeps its trigger on the shared trail, as its other resources
/// stay, until prune.
#[tokio::test]
async fn a_pipeline_removed_from_git_stays_on_the_shared_trail_until_prune() {
    let moto = Moto::start_bootstrapped();
    let aws = moto.aws().await;
    let repo = example_repo();
    let via_trail = "via: cloudtrail\n      logBucket: slipway-demo-trail-logs\n      logPrefix: slipway";
    edit(repo.path(), "pipelines/web.yaml", "via: eventbridge", via_trail);
    assert!(apply_repo(&aws, repo.path(), false).await.succeeded());
    std::fs::remove_file(repo.path().join("pipelines/web.yaml")).unwrap();
    let removed = plan_repo(&aws, repo.path()).await;
    assert!(pending(&removed).is_empty(), "{:#?}", pending(&removed));
    assert!(apply(&aws, &removed, false, 4).await.succeeded());
    assert_eq!(watched(&aws, "slipway-s3-writes").await, [NGINX_OBJECT, WEB_OBJECT]);
    let pruning = PrunePolicy { prune: true, ..Default::default() };
    let pruned = plan(&aws, &prepare(repo.path(), &Default::default()).unwrap(), &[], 4, &pruning).await.unwrap();
    let trail_steps: Vec<_> = pending(&pruned).into_iter().map(|(p, kind, _, action)| (p, kind, action)).collect();
    assert_eq!(
        trail_steps,
        [("nginx".into(), "cloudtrail-trail".into(), "update advancedEventSelectors[0].fieldSelectors[2].equals".into())]
    );
    // (moto has no DeleteApplication: that one deletion of web's fails here.)
    apply(&aws, &pruned, true, 4).await;
    assert_eq!(watched(&aws, "slipway-s3-writes").await, [NGINX_OBJECT]);
}

/// A trail an older slipway made for one pipeline (`slipway-<pipeline>`, a basic selector, the
/// pipeline's tags) gives way to the shared trail: the shared one records the object before the
/// old one is deleted, and the old one is deleted by prune only because its tags say it is
/// slipway's, for that pipeline.
#[tokio::test]
async fn a_trail_of_an_older_slipway_gives_way_to_the_shared_trail_with_no_window_where_writes_go_unseen() {
    let moto = Moto::start_bootstrapped();
    let order = Arc::new(CallOrder::default());
    let aws = moto.aws_observed(order.clone()).await;
    let repo = example_repo();
    edit(repo.path(), "pipelines/nginx.yaml", "via: cloudtrail", "via: cloudtrail\n      trail: slipway-nginx");
    assert!(apply_repo(&aws, repo.path(), false).await.succeeded());
    // As an older slipway left it.
    let arn = aws.arn("cloudtrail", "trail/slipway-nginx");
    let tag = |k: &str, v: &str| aws_sdk_cloudtrail::types::Tag::builder().key(k).value(v).build().unwrap();
    aws.cloudtrail.remove_tags().resource_id(&arn).tags_list(tag("slipway.dev/installation", "")).send().await.unwrap();
    aws.cloudtrail.add_tags().resource_id(&arn).tags_list(tag("slipway.dev/pipeline", "nginx")).send().await.unwrap();
    let data = aws_sdk_cloudtrail::types::DataResource::builder().r#type("AWS::S3::Object").values(NGINX_OBJECT).build();
    let basic = aws_sdk_cloudtrail::types::EventSelector::builder()
        .read_write_type(aws_sdk_cloudtrail::types::ReadWriteType::WriteOnly)
        .include_management_events(false)
        .data_resources(data)
        .build();
    aws.cloudtrail.put_event_selectors().trail_name("slipway-nginx").event_selectors(basic).send().await.unwrap();

    edit(repo.path(), "pipelines/nginx.yaml", "\n      trail: slipway-nginx", "");
    let moving = plan_repo(&aws, repo.path()).await;
    let changes: Vec<_> = pending(&moving).into_iter().map(|(_, kind, name, action)| (kind, name, action)).collect();
    assert_eq!(changes, [("cloudtrail-trail".to_string(), "slipway-s3-writes".to_string(), "create".to_string())]);
    let orphans: Vec<String> = moving.orphans.clone().unwrap().into_iter().map(|o| format!("{} of {}", o.key, o.pipeline)).collect();
    assert_eq!(orphans, ["cloudtrail-trail slipway-nginx of nginx"]);

    order.0.lock().unwrap().clear();
    let report = apply(&aws, &moving, true, 4).await;
    assert!(report.succeeded(), "{}", slipway::report::render_apply(&report));
    let writes: Vec<String> = order.0.lock().unwrap().iter().filter(|op| !is_read_only(op)).cloned().collect();
    let at = |op: &str| writes.iter().position(|c| c == op).unwrap_or_else(|| panic!("no {op} in {writes:?}"));
    assert!(at("StartLogging") < at("DeleteTrail") && at("PutEventSelectors") < at("DeleteTrail"), "{writes:?}");
    assert!(aws.cloudtrail.get_trail().name("slipway-nginx").send().await.is_err());
    assert_eq!(watched(&aws, "slipway-s3-writes").await, [NGINX_OBJECT]);
    assert_in_sync(&plan_repo(&aws, repo.path()).await);
}

/// The change feed (`--change-events`): set up once, after which a restart only reads; repaired
/// when someone changes it; never taken over from another installation; and an event put on the
/// bus reaches the queue through the rule (moto routes EventBridge events to SQS targets).
#[tokio::test]
async fn the_change_feed_is_set_up_once_repaired_when_changed_and_another_installations_is_refused() {
    use slipway_aws::changes;
    let moto = Moto::start();
    let aws = moto.aws().await;
    let feed = changes::ensure(&aws, "slipway-changes", changes::Purpose::Changes).await.unwrap();
    let before = aws.calls.snapshot();
    assert_eq!(changes::ensure(&aws, "slipway-changes", changes::Purpose::Changes).await.unwrap(), feed);
    let writes: Vec<String> = aws.calls.since(&before).into_iter().filter(|c| !is_read_only(c.split(':').nth(1).unwrap())).collect();
    assert!(writes.is_empty(), "a second start wrote: {writes:?}");

    // Someone removes the rule's target and shortens the queue's retention: put back.
    aws.events.remove_targets().rule("slipway-changes").ids("slipway-changes-queue").send().await.unwrap();
    let retention = aws_sdk_sqs::types::QueueAttributeName::MessageRetentionPeriod;
    aws.sqs.set_queue_attributes().queue_url(&feed.queue_url).attributes(retention.clone(), "60").send().await.unwrap();
    changes::ensure(&aws, "slipway-changes", changes::Purpose::Changes).await.unwrap();
    let targets = aws.events.list_targets_by_rule().rule("slipway-changes").send().await.unwrap().targets.unwrap();
    assert_eq!(targets.iter().map(|t| t.arn.as_str()).collect::<Vec<_>>(), [feed.queue_arn.as_str()]);
    let attributes = aws.sqs.get_queue_attributes().queue_url(&feed.queue_url).attribute_names(retention.clone()).send().await.unwrap();
    assert_eq!(attributes.attributes.unwrap()[&retention], "86400");

    // Another installation (another state bucket) in the same account: refused, nothing changed.
    let other = moto.aws().await.with_state_bucket(Some("another-installations-state".into()));
    let err = changes::ensure(&other, "slipway-changes", changes::Purpose::Changes).await.unwrap_err();
    assert!(err.to_string().contains("--change-events-name"), "{err}");
    let tags = aws.sqs.list_queue_tags().queue_url(&feed.queue_url).send().await.unwrap().tags.unwrap();
    assert_eq!(tags["slipway.dev/installation"], aws.inventory.bucket);

    // An API call event on the bus arrives in the queue, and is gone once deleted.
    let detail = serde_json::json!({
        "eventName": "UpdatePipeline",
        "userIdentity": {"arn": "arn:aws:iam::123456789012:user/alice"},
        "requestParameters": {"pipeline": {"name": "web"}},
    });
    let event = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
        .source("aws.codepipeline")
        .detail_type(slipway_core::change::DETAIL_TYPE)
        .detail(detail.to_string())
        .build();
    aws.events.put_events().entries(event).send().await.unwrap();
    let messages = changes::receive(&aws, &feed).await.unwrap();
    assert_eq!(messages.len(), 1);
    let change = slipway_core::change::read(&messages[0].body).unwrap().unwrap();
    assert_eq!(change.keys, [slipway_core::resource::Key::new(Kind::CodePipeline, "web")]);
    changes::delete(&aws, &feed, &messages).await.unwrap();
    let left = aws
        .sqs
        .get_queue_attributes()
        .queue_url(&feed.queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap();
    assert_eq!(left.attributes.unwrap()[&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages], "0");
}

/// The production listener rule ECS moves traffic on: on demo-web-alb's port 80 listener,
/// forwarding to `target_groups` (weights 100, 0, …). Returns its ARN.
async fn listener_rule(aws: &Aws, target_groups: &[&str]) -> String {
    use aws_sdk_elasticloadbalancingv2::types::{Action, ActionTypeEnum, ForwardActionConfig, RuleCondition, TargetGroupTuple};
    let lb = aws.elb.describe_load_balancers().names("demo-web-alb").send().await.unwrap().load_balancers.unwrap().remove(0);
    let listeners = aws.elb.describe_listeners().load_balancer_arn(lb.load_balancer_arn.unwrap()).send().await.unwrap().listeners.unwrap();
    let listener = listeners.into_iter().find(|l| l.port == Some(80)).unwrap().listener_arn.unwrap();
    let groups =
        aws.elb.describe_target_groups().set_names(Some(target_groups.iter().map(|t| t.to_string()).collect())).send().await.unwrap();
    let tuples: Vec<TargetGroupTuple> = groups
        .target_groups
        .unwrap()
        .into_iter()
        .enumerate()
        .map(|(i, tg)| {
            TargetGroupTuple::builder().target_group_arn(tg.target_group_arn.unwrap()).weight(if i == 0 { 100 } else { 0 }).build()
        })
        .collect();
    let forward = Action::builder()
        .r#type(ActionTypeEnum::Forward)
        .forward_config(ForwardActionConfig::builder().set_target_groups(Some(tuples)).build())
        .build();
    let created = aws
        .elb
        .create_rule()
        .listener_arn(listener)
        .priority(10 + target_groups.len() as i32)
        .conditions(RuleCondition::builder().field("path-pattern").values("/*").build())
        .actions(forward)
        .send()
        .await
        .unwrap();
    created.rules.unwrap().remove(0).rule_arn.unwrap()
}

#[tokio::test]
async fn a_codedeploy_pipeline_moves_to_each_ecs_strategy_and_the_service_converges_to_it() {
    let moto = Moto::start_bootstrapped();
    let aws = moto.aws().await;
    let repo = example_repo();
    assert!(apply_repo(&aws, repo.path(), false).await.succeeded());

    // web moves to ECS blue/green, with a rule that forwards to one target group only: refused
    // at the reference, nothing changed.
    let one = listener_rule(&aws, &["web-blue"]).await;
    let deploy = "    serviceRoleArn: arn:aws:iam::123456789012:role/slipway-demo-codedeploy\n";
    let ecs = |rule: &str| {
        format!(
            "    strategy: ecs-blue-green\n    prodListenerRule: {rule}\n    infrastructureRoleArn: arn:aws:iam::123456789012:role/slipway-demo-ecs-infra\n    bakeTimeMinutes: 10\n    hooks:\n      - {{type: PAUSE, stages: [POST_TEST_TRAFFIC_SHIFT], timeoutMinutes: 60}}\n"
        )
    };
    edit(repo.path(), "pipelines/web.yaml", deploy, &ecs(&one));
    edit(repo.path(), "pipelines/web.yaml", "    prodListener: {loadBalancer: demo-web-alb, port: 80}\n", "");
    edit(repo.path(), "pipelines/web.yaml", "    testListener: {loadBalancer: demo-web-alb, port: 8080}\n", "");
    // The CodeDeploy settings would do nothing with ECS: validate refuses them, so they go too.
    for line in ["appSpec: appspec.yaml", "terminationWaitMinutes: 5", "autoRollbackOn: [DEPLOYMENT_FAILURE]"] {
        let text = std::fs::read_to_string(repo.path().join("pipelines/web.yaml")).unwrap();
        let kept: Vec<&str> = text.lines().filter(|l| !l.trim_start().starts_with(line)).collect();
        std::fs::write(repo.path().join("pipelines/web.yaml"), kept.join("\n") + "\n").unwrap();
    }
    let planned = plan_repo(&aws, repo.path()).await;
    assert!(planned.invalid.is_empty(), "{:?}", planned.invalid);
    let web = planned.pipelines.iter().find(|p| p.pipeline == "web").unwrap();
    assert_eq!(web.problems.len(), 1, "{:?}", web.problems);
    assert!(web.problems[0].contains("does not forward to web-green"), "{:?}", web.problems);
    assert_eq!(planned.orphans.as_deref(), Some(&[][..]), "a blocked pipeline keeps its CodeDeploy application");

    // With a rule on both target groups: the plan shows the controller switch, the ECS action,
    // the settings zip with imagedefinitions.json, and the CodeDeploy application left to prune.
    let both = listener_rule(&aws, &["web-blue", "web-green"]).await;
    edit(repo.path(), "pipelines/web.yaml", &one, &both);
    let planned = plan_repo(&aws, repo.path()).await;
    let changes: BTreeSet<(String, String, String, String)> = pending(&planned).into_iter().filter(|c| c.0 == "web").collect();
    let kinds: Vec<(&str, &str)> = changes.iter().map(|c| (c.1.as_str(), c.2.as_str())).collect();
    assert_eq!(
        kinds,
        [("codepipeline", "web"), ("ecs-service-settings", "demo/web"), ("source-artifact", "slipway-demo-web-settings/settings.zip")],
        "{changes:#?}"
    );
    let settings = &changes.iter().find(|c| c.1 == "ecs-service-settings").unwrap().3;
    for field in [
        "deploymentController",
        "strategy",
        "bakeTimeInMinutes",
        "lifecycleHooks",
        "targetGroups",
        "productionListenerRule",
        "infrastructureRoleArn",
    ] {
        assert!(settings.contains(field), "{field} in {settings}");
    }
    let orphans: Vec<(String, String)> =
        planned.orphans.clone().unwrap().into_iter().map(|o| (o.key.kind.label().to_string(), o.key.name)).collect();
    assert_eq!(orphans, [("codedeploy-application".to_string(), "web".to_string())]);
    assert!(Box::pin(apply(&aws, &planned, false, 4)).await.succeeded());

    let service = aws.ecs.describe_services().cluster("demo").services("web").send().await.unwrap().services.unwrap().remove(0);
    assert_eq!(service.deployment_controller.unwrap().r#type.as_str(), "ECS");
    let config = service.deployment_configuration.unwrap();
    assert_eq!((config.strategy.unwrap().as_str(), config.bake_time_in_minutes), ("BLUE_GREEN", Some(10)));
    assert_eq!(config.lifecycle_hooks.unwrap()[0].target_type.as_ref().unwrap().as_str(), "PAUSE");
    let lb = &service.load_balancers.unwrap()[0];
    let advanced = lb.advanced_configuration.as_ref().unwrap();
    assert!(lb.target_group_arn.as_ref().unwrap().contains("/web-blue/"), "the service keeps the target group it uses");
    assert!(advanced.alternate_target_group_arn.as_ref().unwrap().contains("/web-green/"));
    assert_eq!(advanced.production_listener_rule.as_deref(), Some(both.as_str()));
    assert_eq!((lb.container_name.as_deref(), lb.container_port), (Some("application"), Some(80)), "kept from the service");
    let Some(pipeline) = aws.codepipeline.get_pipeline().name("web").send().await.unwrap().pipeline else { panic!() };
    let deploy_action = &pipeline.stages.last().unwrap().actions[0];
    assert_eq!(deploy_action.action_type_id.as_ref().unwrap().provider, "ECS");
    assert_in_sync(&plan_repo(&aws, repo.path()).await);

    // Linear, then canary: each converges and is then in sync.
    edit(
        repo.path(),
        "pipelines/web.yaml",
        "strategy: ecs-blue-green\n",
        "strategy: ecs-linear\n    linear: {stepPercent: 25, stepBakeTimeMinutes: 2}\n",
    );
    assert!(apply_repo(&aws, repo.path(), false).await.succeeded());
    assert_in_sync(&plan_repo(&aws, repo.path()).await);
    let config = |aws: Aws| async move {
        aws.ecs
            .describe_services()
            .cluster("demo")
            .services("web")
            .send()
            .await
            .unwrap()
            .services
            .unwrap()
            .remove(0)
            .deployment_configuration
            .unwrap()
    };
    let linear = config(aws.clone()).await;
    assert_eq!((linear.strategy.unwrap().as_str(), linear.linear_configuration.unwrap().step_percent), ("LINEAR", Some(25.0)));
    edit(
        repo.path(),
        "pipelines/web.yaml",
        "strategy: ecs-linear\n    linear: {stepPercent: 25, stepBakeTimeMinutes: 2}\n",
        "strategy: ecs-canary\n    canary: {percent: 12.5}\n    alarms: {names: [web-5xx]}\n",
    );
    assert!(apply_repo(&aws, repo.path(), false).await.succeeded());
    assert_in_sync(&plan_repo(&aws, repo.path()).await);
    let canary = config(aws.clone()).await;
    assert_eq!((canary.strategy.unwrap().as_str(), canary.canary_configuration.unwrap().canary_percent), ("CANARY", Some(12.5)));
    assert_eq!(canary.alarms.unwrap().alarm_names, ["web-5xx"]);
}
