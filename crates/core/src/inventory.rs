//! The inventory: what this slipway installation created, kept in AWS (an S3 state bucket of its
//! own, see `slipway_aws::inventory`) so that a fresh controller finds it. Prune deletes only
//! what the inventory records, never a resource merely because it carries slipway's tags: two
//! installations in one account (two config repositories, two state buckets) never prune each
//! other's pipelines, and a resource tagged by hand is never taken for an orphan.
//!
//! One S3 object per resource, named `inventory/v1/<pipeline>/<kind>/<name>`, so one listing
//! reads the whole inventory (1,000 keys per call). An entry is written *before* the create it
//! records: a create whose answer is lost, or an apply killed mid-create, leaves an entry the
//! next pass finishes or prunes. Each pipeline also has `revisions/v1/<pipeline>.json`: the
//! revision it was last applied at, and when.
//!
//! Only the kinds prune deletes by themselves are recorded (`KindInfo::inventoried`); deployment
//! groups and source artifacts go with their application and bucket.

use std::collections::{BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

use crate::resource::{Key, Kind};

/// The prefix of every inventory entry's object key.
pub const ENTRY_PREFIX: &str = "inventory/v1/";

/// One resource this installation created (or is about to create) for a pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Entry {
    pub pipeline: String,
    pub key: Key,
}

impl Entry {
    pub fn new(pipeline: &str, key: Key) -> Entry {
        Entry { pipeline: pipeline.to_string(), key }
    }

    /// Whether entries of this resource's kind are kept (see the module doc).
    pub fn recorded(kind: Kind) -> bool {
        kind.info().inventoried
    }

    /// The S3 object key of this entry. Resource names may hold `/` (ECR namespaces): the name
    /// is the rest of the key.
    pub fn object_key(&self) -> String {
        format!("{ENTRY_PREFIX}{}/{}/{}", self.pipeline, self.key.kind.label(), self.key.name)
    }

    /// The entry an object key names; `None` for a key that is not one (not written by this
    /// version of slipway), which is then left alone.
    pub fn parse(object_key: &str) -> Option<Entry> {
        let mut parts = object_key.strip_prefix(ENTRY_PREFIX)?.splitn(3, '/');
        let (pipeline, label, name) = (parts.next()?, parts.next()?, parts.next()?);
        let kind = Kind::ALL.into_iter().find(|k| k.label() == label)?;
        if pipeline.is_empty() || name.is_empty() {
            return None;
        }
        Some(Entry::new(pipeline, Key::new(kind, name)))
    }
}

/// The record of a pipeline's last apply: `revisions/v1/<pipeline>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    pub pipeline: String,
    /// The Git commit, or `None` for a directory that is not a work tree.
    pub revision: Option<String>,
    /// RFC 3339.
    pub applied_at: String,
}

impl Applied {
    pub fn object_key(pipeline: &str) -> String {
        format!("revisions/v1/{pipeline}.json")
    }
}

/// The entries recording a pipeline's resources (those of the recorded kinds).
pub fn entries<'a>(pipeline: &str, keys: impl IntoIterator<Item = &'a Key>) -> Vec<Entry> {
    keys.into_iter().filter(|key| Entry::recorded(key.kind)).map(|key| Entry::new(pipeline, key.clone())).collect()
}

/// Recorded resources that no valid manifest of this revision wants, sparing the pipelines
/// whose manifests are broken (`protected`): the candidates for prune, in deletion order
/// (dependents first). Whether each still exists, is still owned, and may be deleted is for the
/// caller to read from AWS.
pub fn orphans(recorded: &HashSet<Entry>, desired: &HashSet<Key>, protected: &HashSet<String>) -> Vec<Entry> {
    let found: BTreeSet<&Entry> = recorded.iter().filter(|e| !desired.contains(&e.key) && !protected.contains(&e.pipeline)).collect();
    let mut out: Vec<Entry> = found.into_iter().cloned().collect();
    out.sort_by(|a, b| b.key.kind.order().cmp(&a.key.kind.order()).then(a.key.name.cmp(&b.key.name)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_round_trips_through_its_object_key_even_with_a_slash_in_the_name() {
        let entry = Entry::new("web", Key::new(Kind::EcrRepository, "team/web"));
        assert_eq!(entry.object_key(), "inventory/v1/web/ecr-repository/team/web");
        assert_eq!(Entry::parse(&entry.object_key()), Some(entry));
        for key in Kind::ALL.map(|k| Entry::new("p", Key::new(k, "n")).object_key()) {
            assert!(Entry::parse(&key).is_some(), "{key}");
        }
        for foreign in ["inventory/v1/web", "inventory/v1/web/no-such-kind/x", "inventory/v2/web/s3-bucket/b", "other/web/s3-bucket/b"] {
            assert_eq!(Entry::parse(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn only_kinds_prune_deletes_by_themselves_are_recorded() {
        let wanted =
            [Key::new(Kind::S3Bucket, "b"), Key::new(Kind::SourceArtifact, "b/k"), Key::new(Kind::CodeDeployDeploymentGroup, "a/g")];
        assert_eq!(entries("web", &wanted), [Entry::new("web", Key::new(Kind::S3Bucket, "b"))]);
    }

    #[test]
    fn orphans_are_recorded_resources_no_manifest_wants_sparing_broken_pipelines() {
        let entry = |p: &str, kind, name: &str| Entry::new(p, Key::new(kind, name));
        let recorded: HashSet<Entry> = [
            entry("web", Kind::S3Bucket, "web-src"),
            entry("web", Kind::EventRule, "slipway-web-s3"),
            entry("old", Kind::CodePipeline, "old"),
            entry("old", Kind::EventRule, "slipway-old-ecr"),
            entry("broken", Kind::CodePipeline, "broken"),
        ]
        .into();
        let desired: HashSet<Key> = [Key::new(Kind::S3Bucket, "web-src")].into();
        let protected: HashSet<String> = ["broken".to_string()].into();
        let names: Vec<String> = orphans(&recorded, &desired, &protected).iter().map(|e| e.key.to_string()).collect();
        // Rules before the pipeline they start.
        assert_eq!(names, ["eventbridge-rule slipway-old-ecr", "eventbridge-rule slipway-web-s3", "codepipeline old"]);
    }
}
