//! When orphans may be deleted. Prune is the most dangerous thing slipway does, so it runs only
//! from a revision that is whole, and only within a budget:
//!
//! - every YAML file was read and parsed, none is empty, nothing looks like a manifest without
//!   being a valid one, and every manifest is valid ([`PruneHold::UnsafeRevision`]): a broken
//!   file could be the definition of any pipeline that now looks removed;
//! - the revision defines at least one pipeline ([`PruneHold::Empty`]), unless allowed: a wrong
//!   `--repo` or a failed checkout must not read as "delete everything";
//! - the orphans belong to at most [`PrunePolicy::max_pipelines`] pipelines
//!   ([`PruneHold::OverBudget`]).
//!
//! When any hold applies, nothing is deleted and every hold is reported.

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::plan::Orphan;

/// Pipelines whose resources one pass may delete, unless told otherwise.
pub const DEFAULT_MAX_PIPELINES: usize = 3;

/// What the operator allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrunePolicy {
    /// Prune is asked for (`apply --prune`, `run --prune`): besides deleting orphans, a shared
    /// trail then stops watching the objects of pipelines removed from Git.
    pub prune: bool,
    /// Prune even when the revision defines no pipeline at all (`--allow-empty`).
    pub allow_empty: bool,
    /// At most this many pipelines lose resources in one pass (`--prune-max`).
    pub max_pipelines: usize,
}

impl Default for PrunePolicy {
    fn default() -> Self {
        PrunePolicy { prune: false, allow_empty: false, max_pipelines: DEFAULT_MAX_PIPELINES }
    }
}

/// What the revision looks like, as far as prune cares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevisionHealth {
    /// Pipelines the revision defines, valid or not.
    pub pipelines: usize,
    /// Files that failed to read or parse, are empty, look like a manifest without being one,
    /// or hold an invalid manifest.
    pub unsafe_files: BTreeSet<PathBuf>,
}

/// Why the orphans of a revision are kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum PruneHold {
    /// These files may define pipelines that only look removed.
    UnsafeRevision { files: Vec<PathBuf> },
    /// The revision defines no pipeline (`--allow-empty` overrides).
    Empty,
    /// More pipelines would lose resources than `--prune-max` allows.
    OverBudget { pipelines: Vec<String>, max: usize },
}

impl fmt::Display for PruneHold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PruneHold::UnsafeRevision { files } => {
                let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
                write!(
                    f,
                    "not pruning: {} could not be read as valid (it may define a pipeline that only looks removed); fix it first",
                    files.join(", ")
                )
            }
            PruneHold::Empty => f.write_str(
                "not pruning: this revision defines no pipeline (a wrong --repo?); pass --allow-empty to delete everything slipway owns",
            ),
            PruneHold::OverBudget { pipelines, max } => write!(
                f,
                "not pruning: resources of {} pipelines ({}) would be deleted, more than --prune-max {max}",
                pipelines.len(),
                pipelines.join(", ")
            ),
        }
    }
}

/// Every reason to keep `orphans`; empty when they may be deleted. Only the orphans whose
/// deletion policy is `Delete` count: with none of those there is nothing to hold.
pub fn holds(orphans: &[Orphan], revision: &RevisionHealth, policy: &PrunePolicy) -> Vec<PruneHold> {
    let orphans: Vec<&Orphan> = orphans.iter().filter(|o| o.prunable()).collect();
    if orphans.is_empty() {
        return Vec::new();
    }
    let mut holds = Vec::new();
    if !revision.unsafe_files.is_empty() {
        holds.push(PruneHold::UnsafeRevision { files: revision.unsafe_files.iter().cloned().collect() });
    }
    if revision.pipelines == 0 && !policy.allow_empty {
        holds.push(PruneHold::Empty);
    }
    let pipelines: BTreeSet<&str> = orphans.iter().map(|o| o.pipeline.as_str()).collect();
    if pipelines.len() > policy.max_pipelines {
        holds.push(PruneHold::OverBudget { pipelines: pipelines.into_iter().map(str::to_string).collect(), max: policy.max_pipelines });
    }
    holds
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::{DeletionPolicy, Key, Kind};

    fn orphans(pipelines: &[&str]) -> Vec<Orphan> {
        let orphan =
            |p: &&str| Orphan { key: Key::new(Kind::CodePipeline, p.to_string()), pipeline: p.to_string(), policy: DeletionPolicy::Delete };
        pipelines.iter().map(orphan).collect()
    }

    fn healthy(pipelines: usize) -> RevisionHealth {
        RevisionHealth { pipelines, unsafe_files: BTreeSet::new() }
    }

    #[test]
    fn a_whole_revision_within_budget_may_prune() {
        assert!(holds(&orphans(&["old", "older", "old"]), &healthy(2), &PrunePolicy::default()).is_empty());
        assert!(holds(&[], &RevisionHealth::default(), &PrunePolicy::default()).is_empty(), "nothing to hold");
    }

    #[test]
    fn retained_orphans_are_never_held_nor_counted() {
        let retained = Orphan { key: Key::new(Kind::S3Bucket, "data"), pipeline: "a".into(), policy: DeletionPolicy::Retain };
        assert!(holds(std::slice::from_ref(&retained), &healthy(0), &PrunePolicy::default()).is_empty());
        let mut four = orphans(&["b", "c", "d"]);
        four.push(retained);
        assert!(holds(&four, &healthy(1), &PrunePolicy::default()).is_empty(), "three pipelines to delete from, within budget");
    }

    #[test]
    fn an_unreadable_or_invalid_file_holds_every_orphan_and_is_named() {
        let revision = RevisionHealth { pipelines: 2, unsafe_files: ["pipelines/web.yaml".into()].into() };
        let found = holds(&orphans(&["old"]), &revision, &PrunePolicy::default());
        assert_eq!(found, [PruneHold::UnsafeRevision { files: vec!["pipelines/web.yaml".into()] }]);
        assert!(found[0].to_string().contains("pipelines/web.yaml"), "{}", found[0]);
    }

    #[test]
    fn an_empty_revision_prunes_only_when_allowed() {
        let found = holds(&orphans(&["web"]), &healthy(0), &PrunePolicy::default());
        assert_eq!(found, [PruneHold::Empty]);
        assert!(found[0].to_string().contains("--allow-empty"));
        assert!(holds(&orphans(&["web"]), &healthy(0), &PrunePolicy { allow_empty: true, ..PrunePolicy::default() }).is_empty());
    }

    #[test]
    fn more_pipelines_than_the_budget_hold_them_all() {
        let many = orphans(&["a", "b", "c", "d"]);
        let found = holds(&many, &healthy(1), &PrunePolicy::default());
        assert_eq!(found, [PruneHold::OverBudget { pipelines: ["a", "b", "c", "d"].map(String::from).into(), max: 3 }]);
        assert!(holds(&many, &healthy(1), &PrunePolicy { max_pipelines: 4, ..PrunePolicy::default() }).is_empty());
    }

    #[test]
    fn every_hold_is_reported_and_serialised_with_its_reason() {
        let revision = RevisionHealth { pipelines: 0, unsafe_files: ["a.yaml".into()].into() };
        let found = holds(&orphans(&["a", "b", "c", "d"]), &revision, &PrunePolicy::default());
        assert_eq!(found.len(), 3);
        let json = serde_json::to_value(&found).unwrap();
        assert_eq!(json[0], serde_json::json!({"reason": "unsafeRevision", "files": ["a.yaml"]}));
        assert_eq!(json[1], serde_json::json!({"reason": "empty"}));
        assert_eq!(json[2]["reason"], "overBudget");
    }
}
