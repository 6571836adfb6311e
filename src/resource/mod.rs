//! The AWS resources slipway manages, one module per kind. Each module holds the kind's
//! normalised spec (the fields slipway sets, in a shape both the manifest side and the live
//! side are converted into) and its adapter: read, create, update, delete.
//!
//! Comparing normalised specs is what makes "apply, then plan is empty" hold: server-side
//! defaults are filled in or left out, unordered lists are sorted, JSON documents are compared
//! as values rather than text.

pub mod artifact;
pub mod codebuild;
pub mod codedeploy;
pub mod codepipeline;
pub mod ecr;
pub mod rule;
pub mod s3;
pub mod trail;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;

pub use crate::aws::{Aws, AwsError};

/// Tag that marks a resource as created (or adopted) by slipway.
pub const TAG_MANAGED_BY: &str = "slipway.dev/managed-by";
pub const MANAGED_BY_VALUE: &str = "slipway";
/// Tag naming the pipeline a resource belongs to.
pub const TAG_PIPELINE: &str = "slipway.dev/pipeline";

pub type Tags = BTreeMap<String, String>;

/// Resource kinds, in the order they are created (each may refer to the ones before it).
/// Deletion runs in the reverse order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Kind {
    EcrRepository,
    S3Bucket,
    CloudTrailTrail,
    CodeBuildProject,
    CodeDeployApplication,
    CodeDeployDeploymentGroup,
    CodePipeline,
    EventRule,
    /// The zip in the source bucket. Uploaded last: writing it starts the pipeline.
    SourceArtifact,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::EcrRepository,
        Kind::S3Bucket,
        Kind::CloudTrailTrail,
        Kind::CodeBuildProject,
        Kind::CodeDeployApplication,
        Kind::CodeDeployDeploymentGroup,
        Kind::CodePipeline,
        Kind::EventRule,
        Kind::SourceArtifact,
    ];

    /// Human name, as used in plan output and metrics labels.
    pub fn label(self) -> &'static str {
        match self {
            Kind::EcrRepository => "ecr-repository",
            Kind::S3Bucket => "s3-bucket",
            Kind::CloudTrailTrail => "cloudtrail-trail",
            Kind::CodeBuildProject => "codebuild-project",
            Kind::CodeDeployApplication => "codedeploy-application",
            Kind::CodeDeployDeploymentGroup => "codedeploy-deployment-group",
            Kind::CodePipeline => "codepipeline",
            Kind::EventRule => "eventbridge-rule",
            Kind::SourceArtifact => "source-artifact",
        }
    }

    /// Whether the kind carries ownership tags. The artifact belongs to whoever owns its bucket.
    pub fn is_tagged(self) -> bool {
        self != Kind::SourceArtifact
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Identifies one resource. Names are unique per kind within an account and region, except
/// deployment groups (`application/group`) and artifacts (`bucket/key`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Key {
    pub kind: Kind,
    pub name: String,
}

impl Key {
    pub fn new(kind: Kind, name: impl Into<String>) -> Key {
        Key { kind, name: name.into() }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.name)
    }
}

/// A normalised spec of any kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Spec {
    Ecr(ecr::EcrSpec),
    Bucket(s3::BucketSpec),
    Trail(trail::TrailSpec),
    Build(codebuild::ProjectSpec),
    App(codedeploy::ApplicationSpec),
    Group(codedeploy::GroupSpec),
    Pipeline(codepipeline::PipelineSpec),
    Rule(rule::RuleSpec),
    Artifact(artifact::ArtifactSpec),
}

/// What Git says a resource should be.
#[derive(Debug, Clone)]
pub struct Desired {
    pub key: Key,
    pub spec: Spec,
    /// Ownership tags and the pipeline's labels. Live tags outside this set are left alone.
    pub tags: Tags,
    /// Bytes to upload, for artifacts.
    pub payload: Option<Arc<Vec<u8>>>,
}

/// What AWS has now, normalised into the same shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Live {
    pub spec: Spec,
    pub tags: Tags,
}

/// Who owns a live resource, judged from its tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// Tagged by slipway for this pipeline.
    Ours,
    /// Tagged by slipway for another pipeline.
    OtherPipeline(String),
    /// No slipway tags: created by someone else.
    Foreign,
}

pub fn ownership(tags: &Tags, pipeline: &str) -> Ownership {
    if tags.get(TAG_MANAGED_BY).map(String::as_str) != Some(MANAGED_BY_VALUE) {
        return Ownership::Foreign;
    }
    match tags.get(TAG_PIPELINE) {
        Some(p) if p == pipeline => Ownership::Ours,
        Some(p) => Ownership::OtherPipeline(p.clone()),
        None => Ownership::Foreign,
    }
}

/// The tags every resource of `pipeline` carries.
pub fn ownership_tags(pipeline: &str, labels: &BTreeMap<String, String>) -> Tags {
    let mut tags: Tags = labels.clone();
    tags.insert(TAG_MANAGED_BY.into(), MANAGED_BY_VALUE.into());
    tags.insert(TAG_PIPELINE.into(), pipeline.into());
    tags
}

/// Reads one resource. `Ok(None)` when it does not exist.
pub async fn read(aws: &Aws, key: &Key) -> Result<Option<Live>, AwsError> {
    match key.kind {
        Kind::EcrRepository => ecr::read(aws, &key.name).await,
        Kind::S3Bucket => s3::read(aws, &key.name).await,
        Kind::CloudTrailTrail => trail::read(aws, &key.name).await,
        Kind::CodeBuildProject => codebuild::read(aws, &key.name).await,
        Kind::CodeDeployApplication => codedeploy::read_application(aws, &key.name).await,
        Kind::CodeDeployDeploymentGroup => codedeploy::read_group(aws, &key.name).await,
        Kind::CodePipeline => codepipeline::read(aws, &key.name).await,
        Kind::EventRule => rule::read(aws, &key.name).await,
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
        Spec::Pipeline(spec) => codepipeline::create(aws, &desired.key.name, spec, &desired.tags).await,
        Spec::Rule(spec) => rule::create(aws, &desired.key.name, spec, &desired.tags).await,
        Spec::Artifact(_) => {
            artifact::upload(aws, &desired.key.name, desired.payload.as_deref().expect("artifacts carry their bytes")).await
        }
    }
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
    match (&desired.spec, &live.spec) {
        (Spec::Ecr(want), Spec::Ecr(have)) => ecr::update(aws, name, want, have).await,
        (Spec::Bucket(want), Spec::Bucket(have)) => s3::update(aws, name, want, have).await,
        (Spec::Trail(want), Spec::Trail(have)) => trail::update(aws, name, want, have).await,
        (Spec::Build(want), Spec::Build(have)) => codebuild::update(aws, name, want, have).await,
        (Spec::App(want), Spec::App(have)) => codedeploy::update_application(want, have),
        (Spec::Group(want), Spec::Group(have)) => codedeploy::update_group(aws, name, want, have).await,
        (Spec::Pipeline(want), Spec::Pipeline(have)) => codepipeline::update(aws, name, want, have).await,
        (Spec::Rule(want), Spec::Rule(have)) => rule::update(aws, name, want, have).await,
        (Spec::Artifact(_), Spec::Artifact(_)) => {
            artifact::upload(aws, name, desired.payload.as_deref().expect("artifacts carry their bytes")).await
        }
        _ => unreachable!("a key's desired and live specs are of the same kind"),
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
        Kind::SourceArtifact => Ok(()),
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
        Kind::CodePipeline => codepipeline::delete(aws, &key.name).await,
        Kind::EventRule => rule::delete(aws, &key.name).await,
        Kind::SourceArtifact => artifact::delete(aws, &key.name).await,
    }
}

/// Every resource of `kind` in the account that carries slipway's tags, with the pipeline
/// each belongs to. Used to find orphans: owned resources no manifest asks for any more.
pub async fn discover_owned(aws: &Aws, kind: Kind) -> Result<Vec<(Key, String)>, AwsError> {
    let found = match kind {
        Kind::EcrRepository => ecr::list_tagged(aws).await?,
        Kind::S3Bucket => s3::list_tagged(aws).await?,
        Kind::CloudTrailTrail => trail::list_tagged(aws).await?,
        Kind::CodeBuildProject => codebuild::list_tagged(aws).await?,
        Kind::CodeDeployApplication => codedeploy::list_tagged_applications(aws).await?,
        // Deployment groups and artifacts go with their application and bucket.
        Kind::CodeDeployDeploymentGroup | Kind::SourceArtifact => Vec::new(),
        Kind::CodePipeline => codepipeline::list_tagged(aws).await?,
        Kind::EventRule => rule::list_tagged(aws).await?,
    };
    Ok(found
        .into_iter()
        .filter(|(_, tags)| tags.get(TAG_MANAGED_BY).map(String::as_str) == Some(MANAGED_BY_VALUE))
        .filter_map(|(name, tags)| tags.get(TAG_PIPELINE).map(|p| (Key::new(kind, name), p.clone())))
        .collect())
}
