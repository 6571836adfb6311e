//! Compile: a validated manifest → the AWS resources it needs, with the resources it only
//! references. Pure: the same manifest, zip and placement give the same result.
//!
//! One function per resource kind; [`compile`] calls them and puts the result in the registry's
//! creation order ([`Kind::REGISTRY`]), so no function has to know where its kind stands.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::artifact::{md5_hex, with_file};
use crate::manifest::validate::ValidPipeline;
use crate::manifest::{DeployStrategy, ListenerRef, Pipeline, PipelineSettings, S3EventRoute};
use crate::resource::artifact::ArtifactSpec;
use crate::resource::codebuild::ProjectSpec;
use crate::resource::codedeploy::{
    ApplicationSpec, AutoRollbackEvent, ComputePlatform, DeploymentOption, DeploymentType, GroupSpec, InstanceAction, ReadyAction,
    sort_events,
};
use crate::resource::codepipeline::{ActionSpec, ExecutionMode, PipelineSpec, PipelineType, StageSpec};
use crate::resource::ecr::{EcrSpec, untagged_expiry_policy};
use crate::resource::ecs::{self, Controller, ServiceSpec};
use crate::resource::reference::{ListenerKey, Reference, ServiceUse};
use crate::resource::rule::{RuleSpec, TargetSpec, canonical_pattern};
use crate::resource::s3::{BucketSpec, PublicAccessBlock};
use crate::resource::trail::{AdvancedSelectorSpec, Keep, TrailSpec};
use crate::resource::{Desired, Key, Kind, Spec, Tags, installation_tags, ownership_tags, resource_tags};
use crate::trigger::{QueuedTrigger, TriggerRoute};

/// Where resources live (needed to write the ARNs one resource uses to point at another), and
/// the installation that owns what its pipelines share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub partition: String,
    pub region: String,
    pub account: String,
    /// The installation's state bucket: shared resources are tagged with it.
    pub installation: String,
}

/// Everything one pipeline needs.
#[derive(Debug, Clone)]
pub struct DesiredPipeline {
    pub name: String,
    /// Manifest file, relative to the repository root.
    pub file: PathBuf,
    pub adopt: bool,
    /// In creation order.
    pub resources: Vec<Desired>,
    pub references: Vec<Reference>,
    /// With `--trigger-route queue`, the triggers the installation's queue carries instead of
    /// rules of their own ([`route_triggers`]).
    pub queued: Vec<QueuedTrigger>,
}

impl DesiredPipeline {
    /// A digest of everything slipway would do for this pipeline. The controller reconciles a
    /// pipeline at once when a new revision changes it, and otherwise on the drift interval.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        hasher.update([u8::from(self.adopt)]);
        for r in &self.resources {
            let entry = json!([r.key, r.spec, r.tags]);
            hasher.update(entry.to_string().as_bytes());
            hasher.update([0]);
        }
        hasher.update(format!("{:?}", self.references).as_bytes());
        hex::encode(hasher.finalize())
    }

    /// The kinds of the pipeline's resources, one entry per resource.
    pub fn kinds(&self) -> Vec<Kind> {
        self.resources.iter().map(|r| r.key.kind).collect()
    }
}

impl From<&ListenerRef> for ListenerKey {
    fn from(r: &ListenerRef) -> Self {
        match r {
            ListenerRef::Arn(arn) => ListenerKey::Arn(arn.clone()),
            ListenerRef::ByPort(p) => ListenerKey::ByPort { load_balancer: p.load_balancer.clone(), port: p.port },
        }
    }
}

const SOURCE_ARTIFACT: &str = "source";
const SETTINGS_ARTIFACT: &str = "settings";
const IMAGES_ARTIFACT: &str = "images";
const BUILD_ARTIFACT: &str = "build";
/// The container name CodeDeployToECS matches against `<IMAGE1_NAME>` in taskdef.json.
const IMAGE1_CONTAINER_NAME: &str = "IMAGE1_NAME";

/// Compiles one validated pipeline and its zip for `placement`.
pub fn compile(valid: &ValidPipeline, zip: Arc<Vec<u8>>, placement: &Placement) -> DesiredPipeline {
    let p = &valid.pipeline;
    let tags = ownership_tags(p.name(), &p.metadata.labels);
    let mut specs: Vec<(Key, Spec)> = vec![ecr_repository(p)];
    specs.extend(s3_buckets(p));
    specs.extend(cloudtrail_trail(p, placement));
    specs.extend(codebuild_project(p, placement));
    if p.spec.deploy.strategy.is_ecs() {
        specs.push(ecs_service_settings(p));
    } else {
        specs.push(codedeploy_application(p));
        specs.push(codedeploy_group(p));
    }
    specs.extend(codepipeline(p));
    specs.extend(event_rules(p, placement));
    let policy = p.spec.deletion_policy;
    let tags_of = |key: &Key| match key.kind {
        Kind::CloudTrailTrail => installation_tags(&placement.installation),
        kind if !kind.is_tagged() => Tags::new(),
        kind => resource_tags(&tags, kind, policy),
    };
    let mut resources: Vec<Desired> =
        specs.into_iter().map(|(key, spec)| Desired { tags: tags_of(&key), key, spec, payload: None }).collect();
    resources.push(source_artifact(p, with_image_definitions(valid, zip, placement)));
    resources.sort_by_key(|r| r.key.kind.order());
    DesiredPipeline {
        name: p.name().to_string(),
        file: valid.file.clone(),
        adopt: p.spec.adopt,
        resources,
        references: references(p),
        queued: Vec::new(),
    }
}

fn ecr_repository(p: &Pipeline) -> (Key, Spec) {
    let image = &p.spec.image;
    let spec = EcrSpec {
        image_tag_mutability: image.tag_mutability.as_aws().into(),
        scan_on_push: image.scan_on_push,
        lifecycle_policy: untagged_expiry_policy(image.untagged_expiry_days),
    };
    (Key::new(Kind::EcrRepository, &image.repository), Spec::Ecr(spec))
}

/// The source bucket, and the artifact bucket when it is another one. The source bucket sends
/// its events to EventBridge when the S3 trigger is routed that way.
fn s3_buckets(p: &Pipeline) -> Vec<(Key, Spec)> {
    let bucket = |eventbridge: bool| {
        Spec::Bucket(BucketSpec {
            versioning: "Enabled".into(),
            public_access_block: PublicAccessBlock::ALL,
            encryption: "AES256".into(),
            eventbridge,
        })
    };
    let notifies = p.s3_route() == Some(S3EventRoute::Eventbridge);
    let mut out = vec![(Key::new(Kind::S3Bucket, &p.spec.source.bucket), bucket(notifies))];
    if p.artifact_bucket() != p.spec.source.bucket {
        out.push((Key::new(Kind::S3Bucket, p.artifact_bucket()), bucket(false)));
    }
    out
}

/// The trail recording writes to the source object, when the S3 trigger is routed through
/// CloudTrail: shared with the other pipelines naming it, so this pipeline's compile lists only
/// its own object; [`share_trails`] gives every sharer the whole list.
fn cloudtrail_trail(p: &Pipeline, placement: &Placement) -> Option<(Key, Spec)> {
    let (trigger, name) = (p.spec.triggers.s3.as_ref()?, p.trail_name()?);
    let source = &p.spec.source;
    let object_arn = format!("arn:{}:s3:::{}/{}", placement.partition, source.bucket, source.key);
    let spec = TrailSpec {
        s3_bucket_name: trigger.log_bucket.clone().expect("validate requires logBucket with via: cloudtrail"),
        s3_key_prefix: trigger.log_prefix.clone().filter(|p| !p.is_empty()),
        is_multi_region_trail: false,
        logging: true,
        event_selectors: Vec::new(),
        advanced_event_selectors: vec![AdvancedSelectorSpec::watching([object_arn])],
        keep: Keep::Nothing,
    };
    Some((Key::new(Kind::CloudTrailTrail, name), Spec::Trail(spec)))
}

/// Which objects a shared trail keeps watching besides those the manifests name ([`Keep`]):
/// every one while a file of the revision is broken; none when pruning a whole revision;
/// otherwise those of pipelines removed from Git (in buckets no valid manifest names).
pub fn trail_keep(pipelines: &[DesiredPipeline], revision_whole: bool, pruning: bool) -> Keep {
    match (revision_whole, pruning) {
        (false, _) => Keep::Watched,
        (true, true) => Keep::Nothing,
        (true, false) => {
            let claimed = pipelines.iter().flat_map(|p| &p.resources).filter(|r| r.key.kind == Kind::S3Bucket);
            Keep::Unclaimed(Arc::new(claimed.map(|r| r.key.name.clone()).collect()))
        }
    }
}

/// Gives every pipeline sharing a trail the same trail: watching the objects of all of them
/// (validate has made sure they agree on its log bucket and prefix), and keeping what `keep`
/// keeps of what it watches now.
pub fn share_trails(pipelines: &mut [DesiredPipeline], keep: &Keep) {
    let mut watched: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in pipelines.iter().flat_map(|p| &p.resources) {
        if let Spec::Trail(trail) = &r.spec {
            watched.entry(r.key.name.clone()).or_default().extend(trail.watched().into_iter().cloned());
        }
    }
    for r in pipelines.iter_mut().flat_map(|p| &mut p.resources) {
        if let Spec::Trail(trail) = &mut r.spec {
            trail.advanced_event_selectors = vec![AdvancedSelectorSpec::watching(watched[&r.key.name].iter().cloned())];
            trail.keep = keep.clone();
        }
    }
}

/// With [`TriggerRoute::Queue`], takes the trigger rules out of every pipeline and keeps their
/// patterns as the triggers the installation's queue carries; with `Rules`, leaves them.
pub fn route_triggers(pipelines: &mut [DesiredPipeline], route: TriggerRoute) {
    if route == TriggerRoute::Rules {
        return;
    }
    for p in pipelines {
        let Some(codepipeline) = p.resources.iter().find(|r| r.key.kind == Kind::CodePipeline).map(|r| r.key.name.clone()) else {
            continue;
        };
        let (rules, rest): (Vec<Desired>, Vec<Desired>) = p.resources.drain(..).partition(|r| r.key.kind == Kind::EventRule);
        p.resources = rest;
        p.queued = rules
            .into_iter()
            .filter_map(|r| match r.spec {
                Spec::Rule(rule) => {
                    Some(QueuedTrigger { rule: r.key.name, codepipeline: codepipeline.clone(), pattern: rule.event_pattern })
                }
                _ => None,
            })
            .collect();
    }
}

/// The build project of a pipeline that builds its image (seed 002).
fn codebuild_project(p: &Pipeline, placement: &Placement) -> Option<(Key, Spec)> {
    let s = &p.spec;
    let (build, project) = (s.build.as_ref()?, p.build_project_name()?);
    if !p.uses_codepipeline() {
        return None;
    }
    let mut variables = BTreeMap::from([
        ("IMAGE_REPO_NAME".to_string(), s.image.repository.clone()),
        ("IMAGE_TAG".to_string(), s.image.tag.clone()),
        ("AWS_ACCOUNT_ID".to_string(), placement.account.clone()),
    ]);
    variables.extend(build.environment.clone());
    let spec = ProjectSpec {
        service_role: build.service_role_arn.clone(),
        buildspec: build.buildspec.clone(),
        environment_type: "LINUX_CONTAINER".into(),
        image: build.image.clone(),
        compute_type: build.compute_type.clone(),
        privileged_mode: build.privileged,
        environment_variables: variables,
        timeout_in_minutes: build.timeout_minutes,
    };
    Some((Key::new(Kind::CodeBuildProject, project), Spec::Build(spec)))
}

fn codedeploy_application(p: &Pipeline) -> (Key, Spec) {
    (Key::new(Kind::CodeDeployApplication, p.application_name()), Spec::App(ApplicationSpec { compute_platform: ComputePlatform::Ecs }))
}

/// The blue/green deployment group with traffic control; listeners are bound to ARNs at plan time.
fn codedeploy_group(p: &Pipeline) -> (Key, Spec) {
    let deploy = &p.spec.deploy;
    let mut target_groups = deploy.target_groups.to_vec();
    target_groups.sort();
    let mut rollback_events: Vec<AutoRollbackEvent> =
        deploy.auto_rollback_on().iter().map(|e| AutoRollbackEvent::parse(e.as_aws())).collect();
    sort_events(&mut rollback_events);
    let (ready_action, ready_wait_minutes) = match deploy.ready_wait_minutes() {
        0 => (ReadyAction::ContinueDeployment, 0),
        minutes => (ReadyAction::StopDeployment, minutes as i32),
    };
    let spec = GroupSpec {
        service_role_arn: deploy.service_role_arn.clone().unwrap_or_default(),
        deployment_config_name: deploy.deployment_config().to_string(),
        deployment_type: DeploymentType::BlueGreen,
        deployment_option: DeploymentOption::WithTrafficControl,
        termination_action: InstanceAction::Terminate,
        termination_wait_minutes: deploy.termination_wait_minutes() as i32,
        ready_action,
        ready_wait_minutes,
        auto_rollback_enabled: !rollback_events.is_empty(),
        auto_rollback_events: rollback_events,
        cluster: deploy.cluster.clone(),
        service: deploy.service.clone(),
        target_groups,
        prod_listener_arns: Vec::new(),
        test_listener_arns: Vec::new(),
        listener_refs: deploy.prod_listener.as_ref().map(|prod| (prod.into(), deploy.test_listener.as_ref().map(ListenerKey::from))),
    };
    let name = format!("{}/{}", p.application_name(), p.deployment_group_name());
    (Key::new(Kind::CodeDeployDeploymentGroup, name), Spec::Group(Box::new(spec)))
}

/// An ECS strategy's settings on the referenced service: the ECS deployment controller, the
/// strategy with its bake times, alarms and hooks, and the load balancer's alternate target group
/// and listener rules. Target groups are bound to ARNs at plan time.
fn ecs_service_settings(p: &Pipeline) -> (Key, Spec) {
    let deploy = &p.spec.deploy;
    let strategy = match deploy.strategy {
        DeployStrategy::EcsLinear => ecs::Strategy::Linear,
        DeployStrategy::EcsCanary => ecs::Strategy::Canary,
        DeployStrategy::EcsBlueGreen | DeployStrategy::Codedeploy => ecs::Strategy::BlueGreen,
    };
    // The step or canary settings are always sent, the manifest's defaults filled in: AWS's
    // defaults are not slipway's to guess.
    let linear = (strategy == ecs::Strategy::Linear).then(|| {
        let l = deploy.linear.clone().unwrap_or_default();
        ecs::Linear { step_percent: l.step_percent, step_bake_time_in_minutes: l.step_bake_time_minutes as i32 }
    });
    let canary = (strategy == ecs::Strategy::Canary).then(|| {
        let c = deploy.canary.clone().unwrap_or_default();
        ecs::Canary { canary_percent: c.percent, canary_bake_time_in_minutes: c.bake_time_minutes as i32 }
    });
    let alarms = deploy.alarms.as_ref().map(|a| {
        let mut alarm_names = a.names.clone();
        alarm_names.sort();
        alarm_names.dedup();
        ecs::Alarms { alarm_names, rollback: a.rollback }
    });
    let mut lifecycle_hooks: Vec<ecs::Hook> = deploy
        .hooks
        .iter()
        .map(|h| {
            let mut lifecycle_stages: Vec<String> = h.stages.iter().map(|s| s.as_aws().to_string()).collect();
            lifecycle_stages.sort();
            lifecycle_stages.dedup();
            ecs::Hook {
                lifecycle_stages,
                target_type: h.target.as_aws().to_string(),
                hook_target_arn: h.function.clone(),
                role_arn: h.role_arn.clone(),
                timeout_in_minutes: h.timeout_minutes as i32,
                timeout_action: h.on_timeout.as_aws().to_string(),
            }
        })
        .collect();
    lifecycle_hooks.sort();
    let spec = ServiceSpec {
        deployment_controller: Controller::Ecs,
        strategy: Some(strategy),
        bake_time_in_minutes: Some(deploy.bake_time_minutes.unwrap_or(DEFAULT_BAKE_MINUTES) as i32),
        linear,
        canary,
        alarms,
        lifecycle_hooks,
        target_groups: Vec::new(),
        production_listener_rule: deploy.prod_listener_rule.clone(),
        test_listener_rule: deploy.test_listener_rule.clone(),
        infrastructure_role_arn: deploy.infrastructure_role_arn.clone(),
        running_deployment: None,
        target_group_names: Some(deploy.target_groups.clone()),
    };
    (Key::new(Kind::EcsServiceSettings, format!("{}/{}", deploy.cluster, deploy.service)), Spec::Service(Box::new(spec)))
}

/// The bake time of an ECS strategy when the manifest sets none.
pub(crate) const DEFAULT_BAKE_MINUTES: u32 = 5;

/// The file CodePipeline's ECS deploy action reads the image from.
pub(crate) const IMAGE_DEFINITIONS: &str = "imagedefinitions.json";

/// With an ECS strategy, CodePipeline deploys with the ECS action, which reads the image from
/// `imagedefinitions.json`. When the image is pushed from elsewhere (seed 000) slipway writes it
/// into the settings zip: the tracked tag's full URI, which ECS resolves to a digest when it
/// deploys. A pipeline that builds its image (seed 002) writes the file in its buildspec.
fn with_image_definitions(valid: &ValidPipeline, zip: Arc<Vec<u8>>, placement: &Placement) -> Arc<Vec<u8>> {
    let (p, s) = (&valid.pipeline, &valid.pipeline.spec);
    if !s.deploy.strategy.is_ecs() || !p.uses_codepipeline() || s.build.is_some() {
        return zip;
    }
    let Some(container) = valid.image_container() else { return zip };
    let uri = format!(
        "{}.dkr.ecr.{}.{}/{}:{}",
        placement.account,
        placement.region,
        if placement.partition == "aws-cn" { "amazonaws.com.cn" } else { "amazonaws.com" },
        s.image.repository,
        s.image.tag
    );
    let definitions = json!([{"name": container, "imageUri": uri}]);
    Arc::new(with_file(&zip, IMAGE_DEFINITIONS, format!("{definitions}\n").as_bytes()))
}

/// The pipeline itself, unless slipway deploys directly (`deploy.mode: direct`).
fn codepipeline(p: &Pipeline) -> Option<(Key, Spec)> {
    let settings = p.spec.pipeline.as_ref().filter(|_| p.uses_codepipeline())?;
    Some((Key::new(Kind::CodePipeline, p.codepipeline_name()), Spec::Pipeline(pipeline_spec(p, settings))))
}

/// The rules that start the pipeline: on a push of the watched tag, and on a write to the source
/// object.
fn event_rules(p: &Pipeline, placement: &Placement) -> Vec<(Key, Spec)> {
    let s = &p.spec;
    let name = p.name();
    let pipeline_arn =
        format!("arn:{}:codepipeline:{}:{}:{}", placement.partition, placement.region, placement.account, p.codepipeline_name());
    let rule = |pattern: Value, description: String| {
        Spec::Rule(RuleSpec {
            event_pattern: canonical_pattern(pattern),
            state: "ENABLED".into(),
            description,
            targets: vec![TargetSpec { id: "codepipeline".into(), arn: pipeline_arn.clone(), role_arn: s.triggers.role_arn.clone() }],
        })
    };
    let mut out = Vec::new();
    if p.watches_ecr_push() {
        let pattern = json!({
            "source": ["aws.ecr"],
            "detail-type": ["ECR Image Action"],
            "detail": {"action-type": ["PUSH"], "result": ["SUCCESS"], "repository-name": [s.image.repository], "image-tag": [s.image.tag]}
        });
        let description = format!("slipway: start {} on a push of {}:{}", p.codepipeline_name(), s.image.repository, s.image.tag);
        out.push((Key::new(Kind::EventRule, format!("slipway-{name}-ecr")), rule(pattern, description)));
    }
    if let Some(route) = p.s3_route() {
        let description = format!("slipway: start {} when s3://{}/{} is written", p.codepipeline_name(), s.source.bucket, s.source.key);
        out.push((Key::new(Kind::EventRule, format!("slipway-{name}-s3")), rule(source_written_pattern(p, route), description)));
    }
    out
}

/// The events of a write to the source object: S3's own `Object Created` notification, or the
/// API call a trail recorded.
fn source_written_pattern(p: &Pipeline, route: S3EventRoute) -> Value {
    let source = &p.spec.source;
    match route {
        S3EventRoute::Eventbridge => json!({
            "source": ["aws.s3"],
            "detail-type": ["Object Created"],
            "detail": {"bucket": {"name": [source.bucket]}, "object": {"key": [source.key]}}
        }),
        S3EventRoute::Cloudtrail => json!({
            "source": ["aws.s3"],
            "detail-type": ["AWS API Call via CloudTrail"],
            "detail": {
                "eventSource": ["s3.amazonaws.com"],
                "eventName": ["PutObject", "CompleteMultipartUpload", "CopyObject"],
                "requestParameters": {"bucketName": [source.bucket], "key": [source.key]}
            }
        }),
    }
}

/// The zip in the source bucket. Carries no tags: it belongs to whoever owns its bucket.
fn source_artifact(p: &Pipeline, zip: Arc<Vec<u8>>) -> Desired {
    let source = &p.spec.source;
    Desired {
        key: Key::new(Kind::SourceArtifact, format!("{}/{}", source.bucket, source.key)),
        spec: Spec::Artifact(ArtifactSpec { md5: md5_hex(&zip) }),
        tags: Tags::new(),
        payload: Some(zip),
    }
}

/// What the pipeline uses but slipway does not create.
fn references(p: &Pipeline) -> Vec<Reference> {
    let deploy = &p.spec.deploy;
    let used_by = if deploy.strategy.is_ecs() { ServiceUse::Ecs } else { ServiceUse::CodeDeploy };
    let mut references = vec![
        Reference::EcsService { cluster: deploy.cluster.clone(), service: deploy.service.clone(), used_by },
        Reference::TargetGroup(deploy.target_groups[0].clone()),
        Reference::TargetGroup(deploy.target_groups[1].clone()),
    ];
    references.extend(deploy.prod_listener.iter().map(|l| Reference::Listener(l.into())));
    references.extend(deploy.test_listener.iter().map(|l| Reference::Listener(l.into())));
    let alone = deploy.test_listener_rule.is_none();
    let rules = [(&deploy.prod_listener_rule, true), (&deploy.test_listener_rule, false)];
    for (arn, production) in rules {
        if let Some(arn) = arn {
            let target_groups = deploy.target_groups.clone();
            references.push(Reference::ListenerRule { arn: arn.clone(), target_groups, production, alone: production && alone });
        }
    }
    if let (Some(trigger), Some(S3EventRoute::Cloudtrail)) = (&p.spec.triggers.s3, p.s3_route()) {
        references.extend(trigger.log_bucket.clone().map(Reference::Bucket));
    }
    references
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
fn pipeline_spec(p: &Pipeline, settings: &PipelineSettings) -> PipelineSpec {
    let s = &p.spec;
    // With the S3 event trigger on, polling would start every execution twice.
    let poll = if s.triggers.s3.is_some() { "false" } else { "true" };
    let deploy = |taskdef_artifact: &str, appspec_artifact: &str, image_artifact: &str, inputs: &[&str]| {
        if s.deploy.strategy.is_ecs() {
            // ECS shifts traffic itself: the ECS action updates the service with the image in
            // imagedefinitions.json (in the settings zip, or written by the build).
            let input = if s.build.is_some() { BUILD_ARTIFACT } else { SETTINGS_ARTIFACT };
            return action(
                "Deploy",
                "Deploy",
                "ECS",
                &[("ClusterName", &s.deploy.cluster), ("ServiceName", &s.deploy.service), ("FileName", IMAGE_DEFINITIONS)],
                &[input],
                &[],
            );
        }
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
                ("AppSpecTemplatePath", s.deploy.app_spec()),
                ("Image1ArtifactName", image_artifact),
                ("Image1ContainerName", IMAGE1_CONTAINER_NAME),
            ],
            inputs,
            &[],
        )
    };
    let s3_source = |name: &str, output: &str| {
        action(
            name,
            "Source",
            "S3",
            &[("S3Bucket", &s.source.bucket), ("S3ObjectKey", &s.source.key), ("PollForSourceChanges", poll)],
            &[],
            &[output],
        )
    };
    let stages = match (&s.build, p.build_project_name()) {
        (Some(_), Some(project)) => vec![
            StageSpec { name: "Source".into(), actions: vec![s3_source("Source", SOURCE_ARTIFACT)] },
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
                    s3_source("Settings", SETTINGS_ARTIFACT),
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
    PipelineSpec {
        pipeline_type: PipelineType::parse(settings.pipeline_type.as_aws()),
        execution_mode: ExecutionMode::parse(settings.execution_mode.as_aws()),
        role_arn: settings.role_arn.clone(),
        artifact_bucket: p.artifact_bucket().to_string(),
        stages,
    }
}

#[cfg(test)]
mod tests {
    //! One test per compile function, on manifests written here (the defaults a manifest leaves
    //! out are serde's), plus the order and tags `compile` gives the whole.
    use super::*;
    use crate::resource::DeletionPolicy;

    /// Seed 000's shape: the image is built elsewhere; settings come from S3, the image from ECR.
    const SEED_000: &str = r#"
apiVersion: slipway.dev/v1alpha1
kind: Pipeline
metadata: {name: web, labels: {team: platform}}
spec:
  image: {repository: demo-web, scanOnPush: false, untaggedExpiryDays: 3}
  source: {path: apps/web, bucket: web-settings}
  deploy:
    serviceRoleArn: arn:aws:iam::123456789012:role/deploy
    cluster: demo
    service: web
    targetGroups: [web-green, web-blue]
    prodListener: {loadBalancer: web-alb, port: 80}
    autoRollbackOn: [DEPLOYMENT_STOP_ON_ALARM, DEPLOYMENT_FAILURE]
  pipeline: {roleArn: arn:aws:iam::123456789012:role/pipeline}
  triggers: {roleArn: arn:aws:iam::123456789012:role/events}
"#;

    fn pipeline(yaml: &str) -> Pipeline {
        serde_yaml_ng::from_str(yaml).expect("the test manifest parses")
    }

    /// Seed 002's shape: CodeBuild builds the image from the zipped source; S3 writes start it,
    /// through the bucket's EventBridge notifications.
    fn seed_002() -> Pipeline {
        pipeline(&seed_002_yaml())
    }

    /// Seed 002 as the seed built it: a trail records the writes.
    fn seed_002_via_trail() -> Pipeline {
        pipeline(&seed_002_yaml().replace("s3: {}", "s3: {via: cloudtrail, logBucket: trail-logs, logPrefix: ''}"))
    }

    fn seed_002_yaml() -> String {
        SEED_000
            .replace("name: web, labels: {team: platform}", "name: nginx")
            .replace(
                "  pipeline: {roleArn",
                "  build: {serviceRoleArn: arn:aws:iam::123456789012:role/build, environment: {IMAGE_TAG: v2, STAGE: prod}}\n  pipeline: {roleArn",
            )
            .replace("role/events}", "role/events, s3: {}}")
    }

    fn placement() -> Placement {
        Placement {
            partition: "aws".into(),
            region: "eu-west-1".into(),
            account: "123456789012".into(),
            installation: "slipway-state".into(),
        }
    }

    #[test]
    fn the_ecr_repository_takes_the_image_settings() {
        let (key, Spec::Ecr(spec)) = ecr_repository(&pipeline(SEED_000)) else { panic!("an ECR spec") };
        assert_eq!(key, Key::new(Kind::EcrRepository, "demo-web"));
        assert_eq!(spec.image_tag_mutability, "MUTABLE");
        assert!(!spec.scan_on_push);
        assert_eq!(spec.lifecycle_policy, untagged_expiry_policy(3));
    }

    #[test]
    fn the_artifact_bucket_is_a_second_bucket_only_when_it_differs_from_the_source_bucket() {
        let p = pipeline(SEED_000);
        let buckets = s3_buckets(&p);
        assert_eq!(buckets.iter().map(|(k, _)| k.name.as_str()).collect::<Vec<_>>(), ["web-settings"]);
        let Spec::Bucket(spec) = &buckets[0].1 else { panic!("a bucket spec") };
        assert_eq!((spec.versioning.as_str(), spec.encryption.as_str()), ("Enabled", "AES256"));
        assert_eq!(spec.public_access_block, PublicAccessBlock::ALL);
        assert!(!spec.eventbridge, "no trigger needs S3's events");
        let p = pipeline(&SEED_000.replace("role/pipeline}", "role/pipeline, artifactBucket: web-artifacts}"));
        assert_eq!(s3_buckets(&p).iter().map(|(k, _)| k.name.as_str()).collect::<Vec<_>>(), ["web-settings", "web-artifacts"]);
    }

    #[test]
    fn the_s3_trigger_turns_on_the_source_buckets_eventbridge_notifications_unless_a_trail_records_writes() {
        let notifies =
            |p: &Pipeline| s3_buckets(p).into_iter().map(|(_, s)| matches!(s, Spec::Bucket(b) if b.eventbridge)).collect::<Vec<_>>();
        assert_eq!(notifies(&seed_002()), [true]);
        assert_eq!(notifies(&seed_002_via_trail()), [false]);
        let separate = pipeline(&seed_002_yaml().replace("role/pipeline}", "role/pipeline, artifactBucket: nginx-artifacts}"));
        assert_eq!(notifies(&separate), [true, false], "only the source bucket");
    }

    #[test]
    fn a_trail_records_writes_to_the_source_object_only_with_the_s3_trigger_via_cloudtrail() {
        assert_eq!(cloudtrail_trail(&pipeline(SEED_000), &placement()), None);
        assert_eq!(cloudtrail_trail(&seed_002(), &placement()), None, "S3's own notifications need no trail");
        let china = Placement {
            partition: "aws-cn".into(),
            region: "cn-north-1".into(),
            account: "1".into(),
            installation: "slipway-state".into(),
        };
        let (key, Spec::Trail(spec)) = cloudtrail_trail(&seed_002_via_trail(), &china).expect("a trail") else { panic!("a trail spec") };
        assert_eq!(key, Key::new(Kind::CloudTrailTrail, "slipway-s3-writes"), "the shared trail, unless the manifest names one");
        assert_eq!(spec.s3_bucket_name, "trail-logs");
        assert_eq!(spec.s3_key_prefix, None, "an empty prefix is no prefix");
        assert!(spec.logging && !spec.is_multi_region_trail);
        assert!(spec.event_selectors.is_empty(), "advanced selectors only");
        assert_eq!(spec.watched(), BTreeSet::from([&"arn:aws-cn:s3:::web-settings/settings.zip".to_string()]));
    }

    #[test]
    fn on_the_queue_route_the_trigger_rules_become_the_patterns_the_queue_matches() {
        let valid = ValidPipeline {
            pipeline: pipeline(&SEED_000.replace("role/events}", "role/events, s3: {}}")),
            file: "p.yaml".into(),
            source_files: Vec::new(),
        };
        let mut rules = vec![compile(&valid, Arc::new(Vec::new()), &placement())];
        let mut queued = rules.clone();
        route_triggers(&mut rules, TriggerRoute::Rules);
        assert_eq!(rules[0].kinds().iter().filter(|k| **k == Kind::EventRule).count(), 2);
        assert!(rules[0].queued.is_empty());
        route_triggers(&mut queued, TriggerRoute::Queue);
        assert!(!queued[0].kinds().contains(&Kind::EventRule), "no rule of its own");
        let names: Vec<(&str, &str)> = queued[0].queued.iter().map(|t| (t.rule.as_str(), t.codepipeline.as_str())).collect();
        assert_eq!(names, [("slipway-web-ecr", "web"), ("slipway-web-s3", "web")]);
        let index = crate::trigger::TriggerIndex { triggers: [("web".to_string(), queued[0].queued.clone())].into(), incomplete: false };
        let push = json!({"source": "aws.ecr", "detail-type": "ECR Image Action",
            "detail": {"action-type": "PUSH", "result": "SUCCESS", "repository-name": "demo-web", "image-tag": "latest"}});
        assert_eq!(index.starts(&push), BTreeSet::from(["web"]));
        let written = json!({"source": "aws.s3", "detail-type": "Object Created",
            "detail": {"bucket": {"name": "web-settings"}, "object": {"key": "settings.zip"}}});
        assert_eq!(index.starts(&written), BTreeSet::from(["web"]));
        assert!(
            crate::trigger::matches(&crate::trigger::rule_pattern(), &push)
                && crate::trigger::matches(&crate::trigger::rule_pattern(), &written)
        );
    }

    #[test]
    fn pipelines_naming_one_trail_share_it_and_it_is_the_installations() {
        let valid = |yaml: &str| ValidPipeline { pipeline: pipeline(yaml), file: "p.yaml".into(), source_files: Vec::new() };
        let nginx = seed_002_yaml().replace("s3: {}", "s3: {via: cloudtrail, logBucket: trail-logs, logPrefix: ''}");
        let other = nginx.replace("name: nginx", "name: api").replace("bucket: web-settings", "bucket: api-settings");
        let own = seed_002_yaml().replace("s3: {}", "s3: {via: cloudtrail, trail: own-trail, logBucket: trail-logs}");
        let mut desired: Vec<DesiredPipeline> = [valid(&nginx), valid(&other), valid(&own), valid(SEED_000)]
            .iter()
            .map(|v| compile(v, Arc::new(Vec::new()), &placement()))
            .collect();
        share_trails(&mut desired, &Keep::Nothing);
        let trails: Vec<(&str, &str, Vec<String>, &Keep, &Tags)> = desired
            .iter()
            .flat_map(|d| d.resources.iter().map(move |r| (d, r)))
            .filter_map(|(d, r)| match &r.spec {
                Spec::Trail(t) => {
                    Some((d.name.as_str(), r.key.name.as_str(), t.watched().into_iter().cloned().collect(), &t.keep, &r.tags))
                }
                _ => None,
            })
            .collect();
        let both = ["arn:aws:s3:::api-settings/settings.zip", "arn:aws:s3:::web-settings/settings.zip"].map(String::from).to_vec();
        assert_eq!(trails.len(), 3, "seed 000 has no S3 trigger");
        assert_eq!((trails[0].0, trails[0].1, &trails[0].2), ("nginx", "slipway-s3-writes", &both));
        assert_eq!((trails[1].0, trails[1].1, &trails[1].2), ("api", "slipway-s3-writes", &both));
        assert_eq!((trails[2].0, trails[2].1, &trails[2].2), ("nginx", "own-trail", &both[1..].to_vec()));
        for (_, _, _, keep, tags) in &trails {
            assert_eq!(**keep, Keep::Nothing);
            assert_eq!(crate::resource::owner(tags), Some(crate::resource::Owner::Installation("slipway-state".into())));
        }
        // What the trails keep: decided from the whole repository.
        assert_eq!(trail_keep(&desired, false, true), Keep::Watched, "a broken file: everything, even when pruning");
        assert_eq!(trail_keep(&desired, true, true), Keep::Nothing);
        let Keep::Unclaimed(claimed) = trail_keep(&desired, true, false) else { panic!("unclaimed") };
        assert!(claimed.contains("web-settings") && claimed.contains("api-settings"), "{claimed:?}");
        share_trails(&mut desired, &Keep::Watched);
        let keeps = |r: &Desired| match &r.spec {
            Spec::Trail(t) => t.keep == Keep::Watched,
            _ => true,
        };
        assert!(desired.iter().flat_map(|d| &d.resources).all(keeps));
    }

    #[test]
    fn the_build_project_sets_the_image_variables_and_lets_the_manifest_override_them() {
        assert_eq!(codebuild_project(&pipeline(SEED_000), &placement()), None);
        let (key, Spec::Build(spec)) = codebuild_project(&seed_002(), &placement()).expect("a project") else { panic!("a project spec") };
        assert_eq!(key, Key::new(Kind::CodeBuildProject, "nginx-build"));
        let vars: Vec<(&str, &str)> = spec.environment_variables.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(vars, [("AWS_ACCOUNT_ID", "123456789012"), ("IMAGE_REPO_NAME", "demo-web"), ("IMAGE_TAG", "v2"), ("STAGE", "prod")]);
        assert_eq!((spec.environment_type.as_str(), spec.privileged_mode, spec.timeout_in_minutes), ("LINUX_CONTAINER", true, 60));
        let direct = pipeline(&seed_002_yaml().replace("    prodListener", "    mode: direct\n    prodListener"));
        assert_eq!(codebuild_project(&direct, &placement()), None, "nothing builds without CodePipeline");
    }

    #[test]
    fn the_deployment_group_is_blue_green_with_traffic_control_and_sorted_lists() {
        assert_eq!(codedeploy_application(&pipeline(SEED_000)).1, Spec::App(ApplicationSpec { compute_platform: ComputePlatform::Ecs }));
        let (key, Spec::Group(spec)) = codedeploy_group(&pipeline(SEED_000)) else { panic!("a group spec") };
        assert_eq!(key, Key::new(Kind::CodeDeployDeploymentGroup, "web/web"));
        assert_eq!((spec.deployment_type, spec.deployment_option), (DeploymentType::BlueGreen, DeploymentOption::WithTrafficControl));
        assert_eq!(spec.target_groups, ["web-blue", "web-green"]);
        assert_eq!(spec.auto_rollback_events, [AutoRollbackEvent::DeploymentFailure, AutoRollbackEvent::DeploymentStopOnAlarm]);
        assert!(spec.auto_rollback_enabled);
        assert_eq!((spec.ready_action, spec.ready_wait_minutes), (ReadyAction::ContinueDeployment, 0));
        assert_eq!((spec.termination_action, spec.termination_wait_minutes), (InstanceAction::Terminate, 5));
        let by_port = ListenerKey::ByPort { load_balancer: "web-alb".into(), port: 80 };
        assert_eq!(spec.listener_refs, Some((by_port, None)));
        assert!(spec.prod_listener_arns.is_empty(), "listener ARNs are bound at plan time");

        let manual = pipeline(&SEED_000.replace(
            "    autoRollbackOn: [DEPLOYMENT_STOP_ON_ALARM, DEPLOYMENT_FAILURE]",
            "    readyWaitMinutes: 30\n    autoRollbackOn: []",
        ));
        let (_, Spec::Group(spec)) = codedeploy_group(&manual) else { panic!("a group spec") };
        assert_eq!((spec.ready_action, spec.ready_wait_minutes), (ReadyAction::StopDeployment, 30));
        assert!(!spec.auto_rollback_enabled && spec.auto_rollback_events.is_empty());
    }

    fn stages(spec: &PipelineSpec) -> Vec<(String, Vec<String>)> {
        spec.stages.iter().map(|s| (s.name.clone(), s.actions.iter().map(|a| a.name.clone()).collect())).collect()
    }

    #[test]
    fn the_pipeline_has_the_seed_topologies_and_polls_only_without_the_s3_trigger() {
        let (key, Spec::Pipeline(web)) = codepipeline(&pipeline(SEED_000)).expect("a pipeline") else { panic!("a pipeline spec") };
        assert_eq!(key, Key::new(Kind::CodePipeline, "web"));
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(stages(&web), [("Source".into(), s(&["Settings", "Image"])), ("Deploy".into(), s(&["Deploy"]))]);
        assert_eq!(web.stages[0].actions[0].configuration["PollForSourceChanges"], "true");
        assert_eq!(web.artifact_bucket, "web-settings");

        let (_, Spec::Pipeline(nginx)) = codepipeline(&seed_002()).expect("a pipeline") else { panic!("a pipeline spec") };
        assert_eq!(stages(&nginx), [("Source".into(), s(&["Source"])), ("Build".into(), s(&["Build"])), ("Deploy".into(), s(&["Deploy"]))]);
        assert_eq!(nginx.stages[0].actions[0].configuration["PollForSourceChanges"], "false", "the S3 rule starts it");
        assert_eq!(nginx.stages[1].actions[0].configuration["ProjectName"], "nginx-build");

        assert_eq!(codepipeline(&pipeline(&SEED_000.replace("    prodListener", "    mode: direct\n    prodListener"))), None);
    }

    #[test]
    fn the_pipeline_is_v2_superseded_unless_the_manifest_says_otherwise() {
        let compiled = |yaml: &str| match codepipeline(&pipeline(yaml)) {
            Some((_, Spec::Pipeline(spec))) => (spec.pipeline_type, spec.execution_mode),
            other => panic!("a pipeline spec, got {other:?}"),
        };
        assert_eq!(compiled(SEED_000), (PipelineType::V2, ExecutionMode::Superseded));
        let queued = SEED_000.replace("role/pipeline}", "role/pipeline, executionMode: QUEUED}");
        assert_eq!(compiled(&queued), (PipelineType::V2, ExecutionMode::Queued));
        let parallel = SEED_000.replace("role/pipeline}", "role/pipeline, type: V2, executionMode: PARALLEL}");
        assert_eq!(compiled(&parallel), (PipelineType::V2, ExecutionMode::Parallel));
        let v1 = SEED_000.replace("role/pipeline}", "role/pipeline, type: V1}");
        assert_eq!(compiled(&v1), (PipelineType::V1, ExecutionMode::Superseded));
    }

    #[test]
    fn every_type_and_mode_the_manifest_takes_is_one_aws_knows_by_the_same_word() {
        use crate::manifest::{ExecutionMode as Mode, PipelineType as Type};
        for t in [Type::V1, Type::V2] {
            assert!(!matches!(PipelineType::parse(t.as_aws()), PipelineType::Other(_)), "{t:?}");
            assert_eq!(serde_json::to_value(t).unwrap(), json!(t.as_aws()), "the manifest writes it as AWS does");
        }
        for m in [Mode::Superseded, Mode::Queued, Mode::Parallel] {
            assert!(!matches!(ExecutionMode::parse(m.as_aws()), ExecutionMode::Other(_)), "{m:?}");
            assert_eq!(serde_json::to_value(m).unwrap(), json!(m.as_aws()), "the manifest writes it as AWS does");
        }
    }

    #[test]
    fn rules_start_the_pipeline_on_an_image_push_or_a_source_write() {
        let rules = event_rules(&pipeline(SEED_000), &placement());
        assert_eq!(rules.iter().map(|(k, _)| k.name.as_str()).collect::<Vec<_>>(), ["slipway-web-ecr"]);
        let Spec::Rule(rule) = &rules[0].1 else { panic!("a rule spec") };
        assert_eq!(rule.targets[0].arn, "arn:aws:codepipeline:eu-west-1:123456789012:web");
        assert_eq!(rule.targets[0].role_arn.as_deref(), Some("arn:aws:iam::123456789012:role/events"));
        assert_eq!(rule.event_pattern["detail"]["image-tag"], json!(["latest"]));

        // A pipeline that builds its own image is not started by its own push.
        let rules = event_rules(&seed_002(), &placement());
        assert_eq!(rules.iter().map(|(k, _)| k.name.as_str()).collect::<Vec<_>>(), ["slipway-nginx-s3"]);
        let Spec::Rule(rule) = &rules[0].1 else { panic!("a rule spec") };
        assert_eq!(rule.event_pattern["detail-type"], json!(["Object Created"]));
        assert_eq!(rule.event_pattern["detail"], json!({"bucket": {"name": ["web-settings"]}, "object": {"key": ["settings.zip"]}}));

        let rules = event_rules(&seed_002_via_trail(), &placement());
        let Spec::Rule(rule) = &rules[0].1 else { panic!("a rule spec") };
        assert_eq!(rule.event_pattern["detail-type"], json!(["AWS API Call via CloudTrail"]));
        assert_eq!(rule.event_pattern["detail"]["requestParameters"]["key"], json!(["settings.zip"]));
    }

    #[test]
    fn the_source_artifact_is_untagged_and_identified_by_its_md5() {
        let zip = Arc::new(b"zip bytes".to_vec());
        let artifact = source_artifact(&pipeline(SEED_000), zip.clone());
        assert_eq!(artifact.key, Key::new(Kind::SourceArtifact, "web-settings/settings.zip"));
        assert_eq!(artifact.spec, Spec::Artifact(ArtifactSpec { md5: md5_hex(&zip) }));
        assert!(artifact.tags.is_empty());
        assert_eq!(artifact.payload, Some(zip));
    }

    #[test]
    fn references_name_what_the_pipeline_uses_but_does_not_own() {
        let web = references(&pipeline(SEED_000));
        let by_port = ListenerKey::ByPort { load_balancer: "web-alb".into(), port: 80 };
        assert_eq!(
            web,
            [
                Reference::EcsService { cluster: "demo".into(), service: "web".into(), used_by: ServiceUse::CodeDeploy },
                Reference::TargetGroup("web-green".into()),
                Reference::TargetGroup("web-blue".into()),
                Reference::Listener(by_port),
            ]
        );
        assert_eq!(references(&seed_002()).len(), 4, "S3's notifications need no log bucket");
        assert_eq!(references(&seed_002_via_trail()).last(), Some(&Reference::Bucket("trail-logs".into())));
    }

    const ECS_CANARY: &str = r#"
  deploy:
    strategy: ecs-canary
    cluster: demo
    service: web
    targetGroups: [web-green, web-blue]
    prodListenerRule: arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener-rule/app/web-alb/1/2/3
    infrastructureRoleArn: arn:aws:iam::123456789012:role/ecs-infra
    canary: {percent: 12.5}
    alarms: {names: [web-5xx, web-latency]}
    hooks:
      - {type: PAUSE, stages: [POST_TEST_TRAFFIC_SHIFT], timeoutMinutes: 60}
  pipeline:"#;

    fn ecs_canary() -> ValidPipeline {
        let yaml = SEED_000.replace(
            "\n  deploy:\n    serviceRoleArn: arn:aws:iam::123456789012:role/deploy\n    cluster: demo\n    service: web\n    targetGroups: [web-green, web-blue]\n    prodListener: {loadBalancer: web-alb, port: 80}\n    autoRollbackOn: [DEPLOYMENT_STOP_ON_ALARM, DEPLOYMENT_FAILURE]\n  pipeline:",
            ECS_CANARY,
        );
        let taskdef = br#"{"family": "web", "containerDefinitions": [{"name": "app", "image": "<IMAGE1_NAME>"}]}"#;
        let files =
            vec![crate::manifest::validate::SourceFile { name: "taskdef.json".into(), contents: taskdef.to_vec(), executable: false }];
        ValidPipeline { pipeline: pipeline(&yaml), file: "pipelines/web.yaml".into(), source_files: files }
    }

    #[test]
    fn an_ecs_strategy_sets_the_services_deployment_settings_instead_of_a_codedeploy_application_and_group() {
        let valid = ecs_canary();
        assert_eq!(valid.pipeline.spec.deploy.strategy, DeployStrategy::EcsCanary);
        let zip = crate::artifact::build_zip(&valid.source_files, Some("0123abcd"));
        let desired = compile(&valid, Arc::new(zip), &placement());
        let kinds = desired.kinds();
        assert!(kinds.contains(&Kind::EcsServiceSettings));
        assert!(!kinds.contains(&Kind::CodeDeployApplication) && !kinds.contains(&Kind::CodeDeployDeploymentGroup));
        let settings = desired.resources.iter().find(|r| r.key.kind == Kind::EcsServiceSettings).unwrap();
        assert_eq!(settings.key.name, "demo/web");
        assert!(settings.tags.is_empty(), "the service is the user's: never tagged");
        let Spec::Service(spec) = &settings.spec else { panic!("a service spec") };
        assert_eq!(spec.deployment_controller, Controller::Ecs);
        assert_eq!(spec.strategy, Some(ecs::Strategy::Canary));
        assert_eq!(spec.bake_time_in_minutes, Some(DEFAULT_BAKE_MINUTES as i32));
        assert_eq!(spec.canary, Some(ecs::Canary { canary_percent: 12.5, canary_bake_time_in_minutes: 10 }));
        assert_eq!(spec.linear, None);
        assert_eq!(
            spec.alarms.as_ref().map(|a| (a.alarm_names.clone(), a.rollback)),
            Some((vec!["web-5xx".into(), "web-latency".into()], true))
        );
        let hook = &spec.lifecycle_hooks[0];
        assert_eq!(
            (hook.target_type.as_str(), hook.lifecycle_stages.clone(), hook.timeout_in_minutes, hook.timeout_action.as_str()),
            ("PAUSE", vec!["POST_TEST_TRAFFIC_SHIFT".to_string()], 60, "ROLLBACK")
        );
        // Target groups are bound to ARNs from the references at plan time, sorted.
        let bound = spec.bind(|name| Some(format!("arn:tg/{name}"))).unwrap();
        assert_eq!(bound.target_groups, ["arn:tg/web-blue", "arn:tg/web-green"]);
        assert!(spec.bind(|name| (name == "web-blue").then(|| "arn".to_string())).is_none(), "unresolved: no spec to diff");
        // The references: the service (which may still be CodeDeploy's: migration) and the rule,
        // which must forward to both target groups.
        assert!(desired.references.contains(&Reference::EcsService {
            cluster: "demo".into(),
            service: "web".into(),
            used_by: ServiceUse::Ecs
        }));
        assert!(desired.references.contains(&Reference::ListenerRule {
            arn: "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener-rule/app/web-alb/1/2/3".into(),
            target_groups: ["web-green".into(), "web-blue".into()],
            production: true,
            alone: true,
        }));
        assert!(!desired.references.iter().any(|r| matches!(r, Reference::Listener(_))));
        // CodePipeline deploys with the ECS action, reading the image from imagedefinitions.json,
        // which slipway wrote into the settings zip: the tracked tag's full URI for the container.
        let Spec::Pipeline(pipeline) = &desired.resources.iter().find(|r| r.key.kind == Kind::CodePipeline).unwrap().spec else { panic!() };
        let deploy = &pipeline.stages.last().unwrap().actions[0];
        assert_eq!((deploy.provider.as_str(), deploy.input_artifacts.clone()), ("ECS", vec![SETTINGS_ARTIFACT.to_string()]));
        assert_eq!(deploy.configuration.get("FileName").map(String::as_str), Some(IMAGE_DEFINITIONS));
        let artifact = desired.resources.iter().find(|r| r.key.kind == Kind::SourceArtifact).unwrap();
        let zip = artifact.payload.as_ref().unwrap();
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip.as_slice())).unwrap();
        let mut definitions = String::new();
        std::io::Read::read_to_string(&mut archive.by_name(IMAGE_DEFINITIONS).unwrap(), &mut definitions).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&definitions).unwrap(),
            json!([{"name": "app", "imageUri": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/demo-web:latest"}])
        );
        assert!(archive.by_name(crate::artifact::COMMIT_FILE).is_ok(), "the commit file is kept");
        // A strategy whose settings the manifest leaves out gets the manifest's defaults, sent.
        let mut linear = ecs_canary();
        linear.pipeline.spec.deploy.strategy = DeployStrategy::EcsLinear;
        linear.pipeline.spec.deploy.canary = None;
        let desired = compile(&linear, Arc::new(crate::artifact::build_zip(&linear.source_files, None)), &placement());
        let Spec::Service(spec) = &desired.resources.iter().find(|r| r.key.kind == Kind::EcsServiceSettings).unwrap().spec else {
            panic!()
        };
        assert_eq!(
            (spec.linear.clone(), spec.canary.clone()),
            (Some(ecs::Linear { step_percent: 10.0, step_bake_time_in_minutes: 6 }), None)
        );
    }

    #[test]
    fn compile_orders_resources_by_the_registry_and_tags_all_but_the_artifact() {
        let valid = ValidPipeline { pipeline: seed_002_via_trail(), file: "pipelines/nginx.yaml".into(), source_files: Vec::new() };
        let desired = compile(&valid, Arc::new(Vec::new()), &placement());
        // Seed 002 with the S3 trigger through CloudTrail needs one resource of every kind but the
        // ECS strategies' service settings.
        let codedeploy_kinds: Vec<Kind> = Kind::ALL.into_iter().filter(|k| *k != Kind::EcsServiceSettings).collect();
        assert_eq!(desired.kinds(), codedeploy_kinds);
        for r in &desired.resources {
            assert_eq!(r.tags.is_empty(), r.key.kind == Kind::SourceArtifact, "{}", r.key);
        }
        let ours = ownership_tags("nginx", &BTreeMap::new());
        assert_eq!(desired.resources[0].tags, resource_tags(&ours, Kind::EcrRepository, None));
        let policy = |r: &Desired| DeletionPolicy::of(r.key.kind, &r.tags);
        let retained: Vec<Kind> = desired
            .resources
            .iter()
            .filter(|r| r.key.kind.is_tagged() && policy(r) == DeletionPolicy::Retain)
            .map(|r| r.key.kind)
            .collect();
        assert_eq!(retained, [Kind::EcrRepository, Kind::S3Bucket], "what holds data is retained by default");
        let mut deleting = valid.clone();
        deleting.pipeline.spec.deletion_policy = Some(DeletionPolicy::Delete);
        let all = compile(&deleting, Arc::new(Vec::new()), &placement());
        assert!(all.resources.iter().filter(|r| r.key.kind.is_tagged()).all(|r| policy(r) == DeletionPolicy::Delete));
        // The fingerprint follows what would be applied.
        let again = compile(&valid, Arc::new(Vec::new()), &placement());
        assert_eq!(desired.fingerprint(), again.fingerprint());
        let other = compile(&valid, Arc::new(b"changed".to_vec()), &placement());
        assert_ne!(desired.fingerprint(), other.fingerprint());
    }
}
