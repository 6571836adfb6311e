//! Compile: a validated manifest → the AWS resources it needs, with the resources it only
//! references. Pure: the same manifest, zip and account give the same result.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::manifest::ListenerRef;
use crate::manifest::validate::ValidPipeline;
use crate::resource::artifact::ArtifactSpec;
use crate::resource::codebuild::ProjectSpec;
use crate::resource::codedeploy::{ApplicationSpec, GroupSpec};
use crate::resource::codepipeline::{ActionSpec, PipelineSpec, StageSpec};
use crate::resource::ecr::{EcrSpec, untagged_expiry_policy};
use crate::resource::rule::{RuleSpec, TargetSpec, canonical_pattern};
use crate::resource::s3::{BucketSpec, PublicAccessBlock};
use crate::resource::trail::{DataResourceSpec, SelectorSpec, TrailSpec};
use crate::resource::{Desired, Key, Kind, Spec, ownership_tags};

/// Where resources live: needed to write the ARNs one resource uses to point at another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub partition: String,
    pub region: String,
    pub account: String,
}

/// Something a pipeline uses but slipway does not create. Observed, never changed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reference {
    /// Must exist and use the CODE_DEPLOY deployment controller.
    EcsService {
        cluster: String,
        service: String,
    },
    TargetGroup(String),
    Listener(ListenerRefKey),
    /// CloudTrail's log bucket.
    Bucket(String),
}

/// `ListenerRef` made orderable for use as a map key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ListenerRefKey {
    Arn(String),
    ByPort { load_balancer: String, port: u16 },
}

impl From<&ListenerRef> for ListenerRefKey {
    fn from(r: &ListenerRef) -> Self {
        match r {
            ListenerRef::Arn(arn) => ListenerRefKey::Arn(arn.clone()),
            ListenerRef::ByPort(p) => ListenerRefKey::ByPort { load_balancer: p.load_balancer.clone(), port: p.port },
        }
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reference::EcsService { cluster, service } => {
                write!(f, "ECS service {cluster}/{service}")
            }
            Reference::TargetGroup(name) => write!(f, "target group {name}"),
            Reference::Listener(ListenerRefKey::Arn(arn)) => write!(f, "listener {arn}"),
            Reference::Listener(ListenerRefKey::ByPort { load_balancer, port }) => {
                write!(f, "listener on port {port} of load balancer {load_balancer}")
            }
            Reference::Bucket(name) => write!(f, "S3 bucket {name}"),
        }
    }
}

/// Everything one pipeline needs.
#[derive(Debug, Clone)]
pub struct DesiredPipeline {
    pub name: String,
    /// Manifest file, relative to the repository root.
    pub file: std::path::PathBuf,
    pub adopt: bool,
    /// In creation order.
    pub resources: Vec<Desired>,
    pub references: Vec<Reference>,
}

impl DesiredPipeline {
    /// A digest of everything slipway would do for this pipeline. The controller reconciles a
    /// pipeline at once when a new revision changes it, and otherwise on the drift interval.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        hasher.update([u8::from(self.adopt)]);
        for r in &self.resources {
            let entry = serde_json::json!([r.key, r.spec, r.tags]);
            hasher.update(entry.to_string().as_bytes());
            hasher.update([0]);
        }
        hasher.update(format!("{:?}", self.references).as_bytes());
        hex::encode(hasher.finalize())
    }
}

const SOURCE_ARTIFACT: &str = "source";
const SETTINGS_ARTIFACT: &str = "settings";
const IMAGES_ARTIFACT: &str = "images";
const BUILD_ARTIFACT: &str = "build";
/// The container name CodeDeployToECS matches against `<IMAGE1_NAME>` in taskdef.json.
const IMAGE1_CONTAINER_NAME: &str = "IMAGE1_NAME";

pub fn compile(valid: &ValidPipeline, zip: Arc<Vec<u8>>, target: &Target) -> DesiredPipeline {
    let p = &valid.pipeline;
    let s = &p.spec;
    let name = p.name();
    let tags = ownership_tags(name, &p.metadata.labels);
    let mut resources = Vec::new();
    let mut add =
        |kind: Kind, key: String, spec: Spec| resources.push(Desired { key: Key::new(kind, key), spec, tags: tags.clone(), payload: None });

    add(
        Kind::EcrRepository,
        s.image.repository.clone(),
        Spec::Ecr(EcrSpec {
            image_tag_mutability: s.image.tag_mutability.as_aws().into(),
            scan_on_push: s.image.scan_on_push,
            lifecycle_policy: untagged_expiry_policy(s.image.untagged_expiry_days),
        }),
    );
    let bucket = || BucketSpec { versioning: "Enabled".into(), public_access_block: PublicAccessBlock::ALL, encryption: "AES256".into() };
    add(Kind::S3Bucket, s.source.bucket.clone(), Spec::Bucket(bucket()));
    if p.artifact_bucket() != s.source.bucket {
        add(Kind::S3Bucket, p.artifact_bucket().to_string(), Spec::Bucket(bucket()));
    }
    let object_arn = format!("arn:{}:s3:::{}/{}", target.partition, s.source.bucket, s.source.key);
    if let (Some(trail), Some(trail_name)) = (&s.triggers.s3, p.trail_name()) {
        add(
            Kind::CloudTrailTrail,
            trail_name,
            Spec::Trail(TrailSpec {
                s3_bucket_name: trail.log_bucket.clone(),
                s3_key_prefix: trail.log_prefix.clone().filter(|p| !p.is_empty()),
                is_multi_region_trail: false,
                logging: true,
                event_selectors: vec![SelectorSpec {
                    read_write_type: "WriteOnly".into(),
                    include_management_events: false,
                    data_resources: vec![DataResourceSpec { kind: "AWS::S3::Object".into(), values: vec![object_arn] }],
                }],
            }),
        );
    }
    let via_pipeline = p.uses_codepipeline();
    if let (Some(build), Some(project), true) = (&s.build, p.build_project_name(), via_pipeline) {
        let mut variables = BTreeMap::from([
            ("IMAGE_REPO_NAME".to_string(), s.image.repository.clone()),
            ("IMAGE_TAG".to_string(), s.image.tag.clone()),
            ("AWS_ACCOUNT_ID".to_string(), target.account.clone()),
        ]);
        variables.extend(build.environment.clone());
        add(
            Kind::CodeBuildProject,
            project,
            Spec::Build(ProjectSpec {
                service_role: build.service_role_arn.clone(),
                buildspec: build.buildspec.clone(),
                environment_type: "LINUX_CONTAINER".into(),
                image: build.image.clone(),
                compute_type: build.compute_type.clone(),
                privileged_mode: build.privileged,
                environment_variables: variables,
                timeout_in_minutes: build.timeout_minutes,
            }),
        );
    }
    add(Kind::CodeDeployApplication, p.application_name().to_string(), Spec::App(ApplicationSpec { compute_platform: "ECS".into() }));
    let mut target_groups = s.deploy.target_groups.to_vec();
    target_groups.sort();
    let mut rollback_events: Vec<String> = s.deploy.auto_rollback_on.iter().map(|e| e.as_aws().to_string()).collect();
    rollback_events.sort();
    rollback_events.dedup();
    let (ready_action, ready_wait) =
        if s.deploy.ready_wait_minutes == 0 { ("CONTINUE_DEPLOYMENT", 0) } else { ("STOP_DEPLOYMENT", s.deploy.ready_wait_minutes as i32) };
    add(
        Kind::CodeDeployDeploymentGroup,
        format!("{}/{}", p.application_name(), p.deployment_group_name()),
        Spec::Group(GroupSpec {
            service_role_arn: s.deploy.service_role_arn.clone(),
            deployment_config_name: s.deploy.deployment_config.clone(),
            deployment_type: "BLUE_GREEN".into(),
            deployment_option: "WITH_TRAFFIC_CONTROL".into(),
            termination_action: "TERMINATE".into(),
            termination_wait_minutes: s.deploy.termination_wait_minutes as i32,
            ready_action: ready_action.into(),
            ready_wait_minutes: ready_wait,
            auto_rollback_enabled: !rollback_events.is_empty(),
            auto_rollback_events: rollback_events,
            cluster: s.deploy.cluster.clone(),
            service: s.deploy.service.clone(),
            target_groups,
            prod_listener_arns: Vec::new(),
            test_listener_arns: Vec::new(),
            listener_refs: Some((s.deploy.prod_listener.clone(), s.deploy.test_listener.clone())),
        }),
    );
    if let (true, Some(settings)) = (via_pipeline, &s.pipeline) {
        add(Kind::CodePipeline, p.codepipeline_name().to_string(), Spec::Pipeline(pipeline_spec(valid, settings)));
    }
    let pipeline_arn = format!("arn:{}:codepipeline:{}:{}:{}", target.partition, target.region, target.account, p.codepipeline_name());
    let rule = |pattern: Value, description: String| {
        Spec::Rule(RuleSpec {
            event_pattern: canonical_pattern(pattern),
            state: "ENABLED".into(),
            description,
            targets: vec![TargetSpec { id: "codepipeline".into(), arn: pipeline_arn.clone(), role_arn: s.triggers.role_arn.clone() }],
        })
    };
    if p.watches_ecr_push() {
        let pattern = serde_json::json!({
            "source": ["aws.ecr"],
            "detail-type": ["ECR Image Action"],
            "detail": {"action-type": ["PUSH"], "result": ["SUCCESS"], "repository-name": [s.image.repository], "image-tag": [s.image.tag]}
        });
        add(
            Kind::EventRule,
            format!("slipway-{name}-ecr"),
            rule(pattern, format!("slipway: start {} on a push of {}:{}", p.codepipeline_name(), s.image.repository, s.image.tag)),
        );
    }
    if p.watches_s3() {
        let pattern = serde_json::json!({
            "source": ["aws.s3"],
            "detail-type": ["AWS API Call via CloudTrail"],
            "detail": {
                "eventSource": ["s3.amazonaws.com"],
                "eventName": ["PutObject", "CompleteMultipartUpload", "CopyObject"],
                "requestParameters": {"bucketName": [s.source.bucket], "key": [s.source.key]}
            }
        });
        add(
            Kind::EventRule,
            format!("slipway-{name}-s3"),
            rule(pattern, format!("slipway: start {} when s3://{}/{} is written", p.codepipeline_name(), s.source.bucket, s.source.key)),
        );
    }
    resources.push(Desired {
        key: Key::new(Kind::SourceArtifact, format!("{}/{}", s.source.bucket, s.source.key)),
        spec: Spec::Artifact(ArtifactSpec { md5: crate::artifact::md5_hex(&zip) }),
        tags: Default::default(),
        payload: Some(zip),
    });

    let mut references = vec![
        Reference::EcsService { cluster: s.deploy.cluster.clone(), service: s.deploy.service.clone() },
        Reference::TargetGroup(s.deploy.target_groups[0].clone()),
        Reference::TargetGroup(s.deploy.target_groups[1].clone()),
        Reference::Listener((&s.deploy.prod_listener).into()),
    ];
    if let Some(test) = &s.deploy.test_listener {
        references.push(Reference::Listener(test.into()));
    }
    if let (Some(trail), true) = (&s.triggers.s3, p.watches_s3()) {
        references.push(Reference::Bucket(trail.log_bucket.clone()));
    }
    DesiredPipeline { name: name.to_string(), file: valid.file.clone(), adopt: s.adopt, resources, references }
}

fn action(name: &str, category: &str, provider: &str, configuration: &[(&str, &str)], inputs: &[&str], outputs: &[&str]) -> ActionSpec {
    ActionSpec {
        name: name.into(),
        category: category.into(),
        owner: "AWS".into(),
        provider: provider.into(),
        version: "1".into(),
        run_order: 1,
        configuration: configuration.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        input_artifacts: inputs.iter().map(|s| s.to_string()).collect(),
        output_artifacts: outputs.iter().map(|s| s.to_string()).collect(),
    }
}

/// Seed 000: Source (S3 settings + ECR images) → Deploy.
/// Seed 002: Source (S3 app source) → Build (CodeBuild) → Deploy.
fn pipeline_spec(valid: &ValidPipeline, settings: &crate::manifest::PipelineSettings) -> PipelineSpec {
    let p = &valid.pipeline;
    let s = &p.spec;
    // With the S3 event trigger on, polling would start every execution twice.
    let poll = if s.triggers.s3.is_some() { "false" } else { "true" };
    let deploy = |taskdef_artifact: &str, appspec_artifact: &str, image_artifact: &str, inputs: &[&str]| {
        action(
            "Deploy",
            "Deploy",
            "CodeDeployToECS",
            &[
                ("ApplicationName", p.application_name()),
                ("DeploymentGroupName", p.deployment_group_name()),
                ("TaskDefinitionTemplateArtifact", taskdef_artifact),
                ("TaskDefinitionTemplatePath", &s.deploy.task_definition),
                ("AppSpecTemplateArtifact", appspec_artifact),
                ("AppSpecTemplatePath", &s.deploy.app_spec),
                ("Image1ArtifactName", image_artifact),
                ("Image1ContainerName", IMAGE1_CONTAINER_NAME),
            ],
            inputs,
            &[],
        )
    };
    let s3_source = |output: &str| {
        action(
            "Source",
            "Source",
            "S3",
            &[("S3Bucket", &s.source.bucket), ("S3ObjectKey", &s.source.key), ("PollForSourceChanges", poll)],
            &[],
            &[output],
        )
    };
    let stages = match (&s.build, p.build_project_name()) {
        (Some(_), Some(project)) => vec![
            StageSpec { name: "Source".into(), actions: vec![s3_source(SOURCE_ARTIFACT)] },
            StageSpec {
                name: "Build".into(),
                actions: vec![action("Build", "Build", "CodeBuild", &[("ProjectName", &project)], &[SOURCE_ARTIFACT], &[BUILD_ARTIFACT])],
            },
            StageSpec { name: "Deploy".into(), actions: vec![deploy(BUILD_ARTIFACT, BUILD_ARTIFACT, BUILD_ARTIFACT, &[BUILD_ARTIFACT])] },
        ],
        _ => vec![
            StageSpec {
                name: "Source".into(),
                actions: vec![
                    {
                        let mut a = s3_source(SETTINGS_ARTIFACT);
                        a.name = "Settings".into();
                        a
                    },
                    action(
                        "Image",
                        "Source",
                        "ECR",
                        &[("RepositoryName", &s.image.repository), ("ImageTag", &s.image.tag)],
                        &[],
                        &[IMAGES_ARTIFACT],
                    ),
                ],
            },
            StageSpec {
                name: "Deploy".into(),
                actions: vec![deploy(SETTINGS_ARTIFACT, SETTINGS_ARTIFACT, IMAGES_ARTIFACT, &[SETTINGS_ARTIFACT, IMAGES_ARTIFACT])],
            },
        ],
    };
    PipelineSpec { role_arn: settings.role_arn.clone(), artifact_bucket: p.artifact_bucket().to_string(), stages }
}
