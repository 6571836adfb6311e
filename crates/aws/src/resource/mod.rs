//! The adapters, one module per resource kind: read, create, update, tag, delete, and list what
//! slipway owns. The specs they convert to and from are in `slipway_core::resource`; the
//! functions here dispatch on the kind, so the compiler names every place a new kind must fill.

mod artifact;
mod codebuild;
mod codedeploy;
mod codepipeline;
mod ecr;
pub(crate) mod ecs;
mod rule;
pub(crate) mod s3;
mod trail;

use slipway_core::plan::{Operation, decide};
use slipway_core::resource::{Desired, Key, Kind, Live, Spec, Tags};

use crate::ahead::ReadAhead;
use crate::{Aws, AwsError};

/// Reads one resource. `Ok(None)` when it does not exist. What was read ahead for the pass is
/// taken from `ahead` ([`crate::ahead`]).
pub async fn read(aws: &Aws, key: &Key, ahead: Option<&ReadAhead>) -> Result<Option<Live>, AwsError> {
    match key.kind {
        Kind::EcrRepository => ecr::read(aws, &key.name, ahead).await,
        Kind::S3Bucket => s3::read(aws, &key.name, ahead).await,
        Kind::CloudTrailTrail => trail::read(aws, &key.name, ahead).await,
        Kind::CodeBuildProject => codebuild::read(aws, &key.name).await,
        Kind::CodeDeployApplication => codedeploy::read_application(aws, &key.name, ahead).await,
        Kind::CodeDeployDeploymentGroup => codedeploy::read_group(aws, &key.name, ahead).await,
        Kind::EcsServiceSettings => ecs::read(aws, &key.name, ahead).await,
        Kind::CodePipeline => codepipeline::read(aws, &key.name, ahead).await,
        Kind::EventRule => rule::read(aws, &key.name, ahead).await,
        Kind::SourceArtifact => artifact::read(aws, &key.name).await,
    }
}

/// Creates a resource that does not exist.
pub async fn create(aws: &Aws, desired: &Desired) -> Result<(), AwsError> {
    match &desired.spec {
        Spec::Ecr(spec) => ecr::create(aws, &desired.key.name, spec, &desired.tags).await,
        Spec::Bucket(spec) => s3::create(aws, &desired.key.name, spec, &desired.tags).await,
        Spec::Trail(spec) => trail::create(aws, &desired.key.name, spec, &desired.tags).await,
        Spec::Build(spec) => codebuild::create(aws, &desired.key.name, spec, &desired.tags).await,
        Spec::App(spec) => codedeploy::create_application(aws, &desired.key.name, spec, &desired.tags).await,
        Spec::Group(spec) => codedeploy::create_group(aws, &desired.key.name, spec, &desired.tags).await,
        Spec::Service(_) => ecs::create(&desired.key.name),
        Spec::Pipeline(spec) => codepipeline::create(aws, &desired.key.name, spec, &desired.tags).await,
        Spec::Rule(spec) => rule::create(aws, &desired.key.name, spec, &desired.tags).await,
        Spec::Artifact(_) => {
            artifact::upload(aws, &desired.key.name, desired.payload.as_deref().expect("artifacts carry their bytes")).await
        }
    }
}

/// Brings a resource the pipelines share (a trail) to `want`, decided again from a fresh read
/// while this process holds its lock for shared writes: pipelines applied together would
/// otherwise both create it, or write from reads another one has made stale. Another process
/// (a CLI apply beside the controller) is not held off; the next drift check repairs what it
/// changed. Returns what was done: `Create`, `Update` or `Noop`.
pub async fn apply_shared(aws: &Aws, want: &Desired, adopt: bool) -> Result<Operation, AwsError> {
    let _one_at_a_time = aws.shared_writes.lock().await;
    let live = read(aws, &want.key, None).await?;
    let step = decide(want.clone(), live, adopt);
    match &step.action {
        Operation::Create => create(aws, &step.desired).await?,
        Operation::Update { .. } => update(aws, &step.desired, step.live.as_ref().expect("updates have a live resource")).await?,
        Operation::Noop => {}
        Operation::Conflict { reason } => {
            return Err(AwsError::refused("slipway", "ApplyShared", format!("{}: {reason}", want.key)));
        }
    }
    Ok(step.action)
}

/// Brings an existing resource to the desired spec and tags. Only called when they differ;
/// the spec is written only when it differs, and each adapter calls only the APIs for the parts
/// that differ.
pub async fn update(aws: &Aws, desired: &Desired, live: &Live) -> Result<(), AwsError> {
    if desired.spec != live.spec {
        update_spec(aws, desired, live).await?;
    }
    if desired.tags.iter().any(|(k, v)| live.tags.get(k) != Some(v)) {
        // Some services replace the whole tag set, so always send the tags others added too.
        let mut merged = live.tags.clone();
        merged.extend(desired.tags.clone());
        tag(aws, &desired.key, &merged).await?;
    }
    Ok(())
}

async fn update_spec(aws: &Aws, desired: &Desired, live: &Live) -> Result<(), AwsError> {
    let name = &desired.key.name;
    // The live spec of the same variant: a key's desired and live specs are of one kind.
    macro_rules! have {
        ($variant:ident) => {
            match &live.spec {
                Spec::$variant(have) => have,
                _ => unreachable!("{name}: the live spec is not a {}", desired.key.kind),
            }
        };
    }
    // Exhaustive on the desired spec: a new kind does not compile until it can be updated.
    match &desired.spec {
        Spec::Ecr(want) => ecr::update(aws, name, want, have!(Ecr)).await,
        Spec::Bucket(want) => s3::update(aws, name, want, have!(Bucket)).await,
        Spec::Trail(want) => trail::update(aws, name, want, have!(Trail)).await,
        Spec::Build(want) => codebuild::update(aws, name, want, have!(Build)).await,
        Spec::App(want) => codedeploy::update_application(want, have!(App)),
        Spec::Group(want) => codedeploy::update_group(aws, name, want, have!(Group)).await,
        Spec::Service(want) => ecs::update(aws, name, want, have!(Service)).await,
        Spec::Pipeline(want) => codepipeline::update(aws, name, want, have!(Pipeline)).await,
        Spec::Rule(want) => rule::update(aws, name, want, have!(Rule)).await,
        Spec::Artifact(_) => artifact::upload(aws, name, desired.payload.as_deref().expect("artifacts carry their bytes")).await,
    }
}

async fn tag(aws: &Aws, key: &Key, tags: &Tags) -> Result<(), AwsError> {
    match key.kind {
        Kind::EcrRepository => ecr::tag(aws, &key.name, tags).await,
        Kind::S3Bucket => s3::tag(aws, &key.name, tags).await,
        Kind::CloudTrailTrail => trail::tag(aws, &key.name, tags).await,
        Kind::CodeBuildProject => codebuild::tag(aws, &key.name, tags).await,
        Kind::CodeDeployApplication => codedeploy::tag_application(aws, &key.name, tags).await,
        Kind::CodeDeployDeploymentGroup => codedeploy::tag_group(aws, &key.name, tags).await,
        Kind::CodePipeline => codepipeline::tag(aws, &key.name, tags).await,
        Kind::EventRule => rule::tag(aws, &key.name, tags).await,
        // Untagged kinds: the service is the user's, the artifact its bucket's.
        Kind::EcsServiceSettings | Kind::SourceArtifact => Ok(()),
    }
}

/// Deletes a resource slipway owns. Refuses where deleting would destroy data people may
/// still need (an ECR repository with images).
pub async fn delete(aws: &Aws, key: &Key) -> Result<(), AwsError> {
    match key.kind {
        Kind::EcrRepository => ecr::delete(aws, &key.name).await,
        Kind::S3Bucket => s3::delete(aws, &key.name).await,
        Kind::CloudTrailTrail => trail::delete(aws, &key.name).await,
        Kind::CodeBuildProject => codebuild::delete(aws, &key.name).await,
        Kind::CodeDeployApplication => codedeploy::delete_application(aws, &key.name).await,
        Kind::CodeDeployDeploymentGroup => codedeploy::delete_group(aws, &key.name).await,
        Kind::EcsServiceSettings => ecs::refuse_delete(&key.name),
        Kind::CodePipeline => codepipeline::delete(aws, &key.name).await,
        Kind::EventRule => rule::delete(aws, &key.name).await,
        Kind::SourceArtifact => artifact::delete(aws, &key.name).await,
    }
}
