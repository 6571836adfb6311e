//! The AWS resources slipway manages: the kind registry, resource identity and ownership, and one
//! module per kind with its normalised spec (the fields slipway sets, in a shape both the manifest
//! side and the live side are converted into). The adapters that read and write them live in the
//! `slipway-aws` crate.
//!
//! Comparing normalised specs is what makes "apply, then plan is empty" hold: server-side
//! defaults are filled in or left out, unordered lists are sorted, JSON documents are compared
//! as values rather than text.

#[macro_use]
mod values;

pub mod artifact;
pub mod codebuild;
pub mod codedeploy;
pub mod codepipeline;
pub mod ecr;
pub mod ecs;
pub mod reference;
pub mod rule;
pub mod s3;
pub mod trail;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Tag that marks a resource as created (or adopted) by slipway.
pub const TAG_MANAGED_BY: &str = "slipway.dev/managed-by";
pub const MANAGED_BY_VALUE: &str = "slipway";
/// Tag naming the pipeline a resource belongs to.
pub(crate) const TAG_PIPELINE: &str = "slipway.dev/pipeline";
/// Tag naming the installation (its state bucket) a shared resource belongs to: the CloudTrail
/// trail of the `via: cloudtrail` route, the change feed. Shared resources carry no pipeline tag.
pub const TAG_INSTALLATION: &str = "slipway.dev/installation";
/// What prune does with the resource once its pipeline leaves Git: [`DeletionPolicy`].
pub(crate) const TAG_DELETION_POLICY: &str = "slipway.dev/deletion-policy";

labels! {
    /// What prune does with a resource whose pipeline left Git. Recorded on the resource as a
    /// tag, so it is known after the manifest that set it is gone.
    #[derive(PartialOrd, Ord, schemars::JsonSchema)]
    pub enum DeletionPolicy {
        /// Keep it, with its data; it stays listed as a retained orphan until deleted by hand.
        Retain = "Retain",
        /// Delete it.
        Delete = "Delete",
    }
}

impl DeletionPolicy {
    /// The policy a resource's tags record. Without the tag (a resource tagged by an older
    /// slipway) it is the kind's default; an unknown value retains.
    pub fn of(kind: Kind, tags: &Tags) -> DeletionPolicy {
        match tags.get(TAG_DELETION_POLICY) {
            None => kind.default_deletion_policy(),
            Some(label) => DeletionPolicy::parse(label).unwrap_or(DeletionPolicy::Retain),
        }
    }
}

pub type Tags = BTreeMap<String, String>;

/// A resource kind. What each kind declares (its label, its place in the creation order, whether
/// it carries tags and is discovered for orphans) is in [`Kind::REGISTRY`], in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    EcrRepository,
    S3Bucket,
    CloudTrailTrail,
    CodeBuildProject,
    CodeDeployApplication,
    CodeDeployDeploymentGroup,
    /// The deployment settings of a referenced ECS service (ECS strategies).
    EcsServiceSettings,
    CodePipeline,
    EventRule,
    /// The zip in the source bucket. Uploaded last: writing it starts the pipeline.
    SourceArtifact,
}

/// What a kind declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindInfo {
    pub kind: Kind,
    /// As used in plan output and metric labels.
    pub label: &'static str,
    /// Carries ownership tags. The artifact belongs to whoever owns its bucket.
    pub tagged: bool,
    /// Recorded in the inventory, and pruned by itself when its pipeline leaves Git. Deployment
    /// groups go with their application, artifacts with their bucket.
    pub inventoried: bool,
    /// Holds data a person would miss (images, object versions): retained by default when its
    /// pipeline leaves Git.
    pub holds_data: bool,
}

const fn info(kind: Kind, label: &'static str, tagged: bool, inventoried: bool, holds_data: bool) -> KindInfo {
    KindInfo { kind, label, tagged, inventoried, holds_data }
}

impl Kind {
    /// Every kind, in creation order: each may refer to the ones before it (a rule targets the
    /// pipeline, the pipeline deploys with the group). Deletion runs in the reverse order.
    pub(crate) const REGISTRY: [KindInfo; 10] = [
        // kind, label, tagged, inventoried, holds_data
        info(Kind::EcrRepository, "ecr-repository", true, true, true),
        info(Kind::S3Bucket, "s3-bucket", true, true, true),
        info(Kind::CloudTrailTrail, "cloudtrail-trail", true, true, false),
        info(Kind::CodeBuildProject, "codebuild-project", true, true, false),
        info(Kind::CodeDeployApplication, "codedeploy-application", true, true, false),
        info(Kind::CodeDeployDeploymentGroup, "codedeploy-deployment-group", true, false, false),
        // Settings of a service slipway references: never tagged, listed or deleted.
        info(Kind::EcsServiceSettings, "ecs-service-settings", false, false, false),
        info(Kind::CodePipeline, "codepipeline", true, true, false),
        info(Kind::EventRule, "eventbridge-rule", true, true, false),
        info(Kind::SourceArtifact, "source-artifact", false, false, false),
    ];

    /// Every kind, in creation order.
    pub const ALL: [Kind; 10] = {
        let mut all = [Kind::EcrRepository; 10];
        let mut i = 0;
        while i < all.len() {
            all[i] = Kind::REGISTRY[i].kind;
            i += 1;
        }
        all
    };

    pub fn info(self) -> &'static KindInfo {
        Kind::REGISTRY.iter().find(|i| i.kind == self).expect("every kind is in the registry")
    }

    /// Position in the creation order.
    pub fn order(self) -> usize {
        Kind::REGISTRY.iter().position(|i| i.kind == self).expect("every kind is in the registry")
    }

    /// Human name, as used in plan output and metric labels.
    pub fn label(self) -> &'static str {
        self.info().label
    }

    /// Whether the kind carries ownership tags.
    pub fn is_tagged(self) -> bool {
        self.info().tagged
    }

    /// Retain what holds data, delete the rest, unless the manifest says otherwise.
    pub fn default_deletion_policy(self) -> DeletionPolicy {
        if self.info().holds_data { DeletionPolicy::Retain } else { DeletionPolicy::Delete }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Identifies one resource. Names are unique per kind within an account and region, except
/// deployment groups (`application/group`), service settings (`cluster/service`) and artifacts
/// (`bucket/key`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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
    /// Boxed: the largest spec by far, and every resource of every pipeline carries a `Spec`.
    Group(Box<codedeploy::GroupSpec>),
    Service(Box<ecs::ServiceSpec>),
    Pipeline(codepipeline::PipelineSpec),
    Rule(rule::RuleSpec),
    Artifact(artifact::ArtifactSpec),
}

impl Spec {
    /// The spec to converge to, given the live one: fields slipway only ever turns on (a
    /// bucket's EventBridge notifications) keep their live value where Git does not need them,
    /// and a shared trail keeps the objects it watches while a manifest is broken.
    pub(crate) fn settle(&self, live: &Spec) -> Spec {
        match (self, live) {
            (Spec::Bucket(want), Spec::Bucket(have)) => Spec::Bucket(want.settle(have)),
            (Spec::Trail(want), Spec::Trail(have)) => Spec::Trail(want.settle(have)),
            _ => self.clone(),
        }
    }
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

impl Desired {
    /// Whether the pipelines of the installation share it (a trail), rather than one owning it.
    pub fn is_shared(&self) -> bool {
        matches!(owner(&self.tags), Some(Owner::Installation(_)))
    }
}

/// What AWS has now for one resource, normalised into the same shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Live {
    pub spec: Spec,
    pub tags: Tags,
}

/// Who a resource belongs to, as slipway's tags say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// One pipeline's resource.
    Pipeline(String),
    /// Shared by the pipelines of one installation, named by its state bucket.
    Installation(String),
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::Pipeline(name) => write!(f, "pipeline `{name}`"),
            Owner::Installation(bucket) => write!(f, "installation with state bucket `{bucket}`"),
        }
    }
}

/// Who owns a live resource, judged from its tags against the tags slipway would set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// Tagged by slipway for the same owner.
    Ours,
    /// Tagged by slipway for another pipeline or installation.
    Other(Owner),
    /// No slipway tags: created by someone else.
    Foreign,
}

/// Whether the `live` tags name the owner the `want` tags name.
pub fn ownership(live: &Tags, want: &Tags) -> Ownership {
    match (owner(live), owner(want)) {
        (None, _) => Ownership::Foreign,
        (Some(have), Some(ours)) if have == ours => Ownership::Ours,
        (Some(have), _) => Ownership::Other(have),
    }
}

/// The owner slipway's tags name: a pipeline, or for a shared resource an installation.
pub fn owner(tags: &Tags) -> Option<Owner> {
    if tags.get(TAG_MANAGED_BY).map(String::as_str) != Some(MANAGED_BY_VALUE) {
        return None;
    }
    match (tags.get(TAG_PIPELINE), tags.get(TAG_INSTALLATION)) {
        (Some(pipeline), _) => Some(Owner::Pipeline(pipeline.clone())),
        (None, Some(installation)) => Some(Owner::Installation(installation.clone())),
        (None, None) => None,
    }
}

/// The tags of a resource the pipelines of `installation` share. Shared resources hold no data:
/// prune deletes them once no pipeline uses them.
pub fn installation_tags(installation: &str) -> Tags {
    Tags::from([
        (TAG_MANAGED_BY.into(), MANAGED_BY_VALUE.into()),
        (TAG_INSTALLATION.into(), installation.into()),
        (TAG_DELETION_POLICY.into(), DeletionPolicy::Delete.as_str().into()),
    ])
}

/// The tags every resource of `pipeline` carries.
pub fn ownership_tags(pipeline: &str, labels: &BTreeMap<String, String>) -> Tags {
    let mut tags: Tags = labels.clone();
    tags.insert(TAG_MANAGED_BY.into(), MANAGED_BY_VALUE.into());
    tags.insert(TAG_PIPELINE.into(), pipeline.into());
    tags
}

/// The ownership tags plus the deletion policy of one resource of `kind`: the manifest's
/// `deletionPolicy` when it sets one, else the kind's default.
pub fn resource_tags(ownership: &Tags, kind: Kind, policy: Option<DeletionPolicy>) -> Tags {
    let mut tags = ownership.clone();
    tags.insert(TAG_DELETION_POLICY.into(), policy.unwrap_or(kind.default_deletion_policy()).as_str().into());
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_lists_every_kind_once_in_creation_order() {
        let mut seen = std::collections::HashSet::new();
        for (i, info) in Kind::REGISTRY.iter().enumerate() {
            assert!(seen.insert(info.kind), "{:?} is listed twice", info.kind);
            assert_eq!(info.kind.order(), i);
        }
        assert_eq!(Kind::ALL.len(), Kind::REGISTRY.len());
        // The artifact is uploaded last: writing it starts the pipeline.
        assert_eq!(Kind::ALL.last(), Some(&Kind::SourceArtifact));
        let labels: std::collections::HashSet<&str> = Kind::ALL.iter().map(|k| k.label()).collect();
        assert_eq!(labels.len(), Kind::ALL.len(), "labels are unique");
    }

    #[test]
    fn every_kind_is_in_the_registry() {
        // Exhaustive on purpose: a new variant does not compile here until it is listed, and the
        // assertion fails until the registry has its entry.
        let every = |kind: Kind| match kind {
            Kind::EcrRepository
            | Kind::S3Bucket
            | Kind::CloudTrailTrail
            | Kind::CodeBuildProject
            | Kind::CodeDeployApplication
            | Kind::CodeDeployDeploymentGroup
            | Kind::EcsServiceSettings
            | Kind::CodePipeline
            | Kind::EventRule
            | Kind::SourceArtifact => kind,
        };
        for kind in Kind::ALL {
            assert_eq!(every(kind), kind);
        }
        let listed: std::collections::HashSet<Kind> = Kind::ALL.into_iter().collect();
        for kind in [
            Kind::EcrRepository,
            Kind::S3Bucket,
            Kind::CloudTrailTrail,
            Kind::CodeBuildProject,
            Kind::CodeDeployApplication,
            Kind::CodeDeployDeploymentGroup,
            Kind::EcsServiceSettings,
            Kind::CodePipeline,
            Kind::EventRule,
            Kind::SourceArtifact,
        ] {
            assert!(listed.contains(&every(kind)), "{kind:?} has no entry in Kind::REGISTRY");
        }
    }

    #[test]
    fn what_holds_data_is_retained_unless_the_manifest_says_delete() {
        let ours = ownership_tags("web", &BTreeMap::new());
        let retained: Vec<Kind> =
            Kind::ALL.into_iter().filter(|k| DeletionPolicy::of(*k, &resource_tags(&ours, *k, None)) == DeletionPolicy::Retain).collect();
        assert_eq!(retained, [Kind::EcrRepository, Kind::S3Bucket]);
        for kind in Kind::ALL {
            assert_eq!(DeletionPolicy::of(kind, &resource_tags(&ours, kind, Some(DeletionPolicy::Delete))), DeletionPolicy::Delete);
            assert_eq!(DeletionPolicy::of(kind, &resource_tags(&ours, kind, Some(DeletionPolicy::Retain))), DeletionPolicy::Retain);
        }
        // Tagged by an older slipway: the kind's default. A value this slipway does not know: kept.
        assert_eq!(DeletionPolicy::of(Kind::S3Bucket, &ours), DeletionPolicy::Retain);
        assert_eq!(DeletionPolicy::of(Kind::CodePipeline, &ours), DeletionPolicy::Delete);
        let mut odd = ours.clone();
        odd.insert(TAG_DELETION_POLICY.into(), "delete".into());
        assert_eq!(DeletionPolicy::of(Kind::CodePipeline, &odd), DeletionPolicy::Retain);
    }

    #[test]
    fn ownership_is_read_from_both_tags() {
        let ours = ownership_tags("web", &BTreeMap::from([("team".to_string(), "a".to_string())]));
        assert_eq!(ownership(&ours, &ownership_tags("web", &BTreeMap::new())), Ownership::Ours);
        assert_eq!(ownership(&ours, &ownership_tags("api", &BTreeMap::new())), Ownership::Other(Owner::Pipeline("web".into())));
        let mut foreign = ours.clone();
        foreign.remove(TAG_MANAGED_BY);
        assert_eq!(ownership(&foreign, &ours), Ownership::Foreign);
    }

    #[test]
    fn a_shared_resource_is_the_installations_not_a_pipelines() {
        let shared = installation_tags("state-a");
        assert_eq!(owner(&shared), Some(Owner::Installation("state-a".into())));
        assert_eq!(ownership(&shared, &installation_tags("state-a")), Ownership::Ours);
        assert_eq!(ownership(&shared, &installation_tags("state-b")), Ownership::Other(Owner::Installation("state-a".into())));
        // A pipeline's resource of the same name is not the installation's to change, nor the reverse.
        let web = ownership_tags("web", &BTreeMap::new());
        assert_eq!(ownership(&web, &shared), Ownership::Other(Owner::Pipeline("web".into())));
        assert_eq!(ownership(&shared, &web), Ownership::Other(Owner::Installation("state-a".into())));
        assert_eq!(DeletionPolicy::of(Kind::CloudTrailTrail, &shared), DeletionPolicy::Delete);
    }
}
