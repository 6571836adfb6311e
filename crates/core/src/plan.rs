//! Plan: desired resources vs their live state → what apply will do. Pure.
//!
//! The decision for each resource is a match on (desired, live, ownership):
//! absent → create; ours (or foreign with `adopt`) and different → update; ours and equal →
//! nothing; foreign or another pipeline's → conflict, never touched. A pipeline with any
//! conflict or missing reference is blocked as a whole: half a pipeline is worse than none.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::compile::DesiredPipeline;
use crate::diff::{FieldChange, diff};
use crate::error::AwsError;
use crate::resource::reference::Reference;
use crate::resource::{DeletionPolicy, Desired, Key, Live, Ownership, Spec, Tags, ownership};

/// What observe found for a referenced resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefState {
    /// Exists and is usable; carries the resolved ARN where the reference was by name.
    Found(Option<String>),
    /// Missing or unusable, with the reason a person can act on.
    Problem(String),
}

/// Live state of one pipeline's resources and references.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub live: HashMap<Key, Option<Live>>,
    pub refs: HashMap<Reference, RefState>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum Operation {
    Create,
    Update { changes: Vec<FieldChange> },
    Noop,
    Conflict { reason: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub key: Key,
    #[serde(flatten)]
    pub action: Operation,
    #[serde(skip)]
    pub desired: Desired,
    #[serde(skip)]
    pub live: Option<Live>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PipelinePlan {
    pub pipeline: String,
    pub file: std::path::PathBuf,
    /// The manifest's `spec.adopt`, for deciding a shared resource again at apply time.
    #[serde(skip)]
    pub adopt: bool,
    pub steps: Vec<Step>,
    /// Missing or unusable references.
    pub problems: Vec<String>,
    /// Observing failed: nothing is known, nothing will be done. Keeps its kind for the retry
    /// policy; serialised as its message.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "as_message")]
    pub error: Option<AwsError>,
}

fn as_message<S: serde::Serializer>(error: &Option<AwsError>, serializer: S) -> Result<S::Ok, S::Error> {
    match error {
        Some(e) => serializer.collect_str(e),
        None => serializer.serialize_none(),
    }
}

impl PipelinePlan {
    pub fn failed(desired: &DesiredPipeline, error: AwsError) -> PipelinePlan {
        PipelinePlan {
            pipeline: desired.name.clone(),
            file: desired.file.clone(),
            adopt: desired.adopt,
            steps: Vec::new(),
            problems: Vec::new(),
            error: Some(error),
        }
    }

    /// Resources whose live state differs from Git (to create or update).
    pub fn drifted(&self) -> Vec<Key> {
        self.steps.iter().filter(|s| matches!(s.action, Operation::Create | Operation::Update { .. })).map(|s| s.key.clone()).collect()
    }

    /// Why apply skips this pipeline, when it does.
    pub fn blocked_reasons(&self) -> Vec<String> {
        let mut reasons: Vec<String> = self.error.iter().map(AwsError::to_string).collect();
        reasons.extend(self.problems.iter().map(|p| format!("missing reference: {p}")));
        reasons.extend(self.steps.iter().filter_map(|s| match &s.action {
            Operation::Conflict { reason } => Some(format!("conflict: {}: {reason}", s.key)),
            _ => None,
        }));
        reasons
    }

    /// Apply skips a blocked pipeline entirely.
    pub fn is_blocked(&self) -> bool {
        self.error.is_some() || !self.problems.is_empty() || self.steps.iter().any(|s| matches!(s.action, Operation::Conflict { .. }))
    }

    pub fn has_changes(&self) -> bool {
        self.steps.iter().any(|s| matches!(s.action, Operation::Create | Operation::Update { .. }))
    }
}

pub fn plan_pipeline(desired: &DesiredPipeline, observed: &Observed) -> PipelinePlan {
    let mut problems = Vec::new();
    for reference in &desired.references {
        match observed.refs.get(reference) {
            Some(RefState::Found(_)) => {}
            Some(RefState::Problem(why)) => problems.push(format!("{reference}: {why}")),
            None => problems.push(format!("{reference}: not observed")),
        }
    }
    let mut steps = Vec::new();
    for want in &desired.resources {
        let Some(want) = bind(want, &observed.refs) else {
            continue;
        };
        let live = observed.live.get(&want.key).cloned().flatten();
        steps.push(decide(want, live, desired.adopt));
    }
    PipelinePlan { pipeline: desired.name.clone(), file: desired.file.clone(), adopt: desired.adopt, steps, problems, error: None }
}

/// What to do with one resource given its live state: the spec settled against it, then the
/// action. Apply decides a shared resource again this way, from a fresh read.
pub fn decide(mut want: Desired, live: Option<Live>, adopt: bool) -> Step {
    if let Some(live) = &live {
        want.spec = want.spec.settle(&live.spec);
    }
    let action = action_for(&want, live.as_ref(), adopt);
    Step { key: want.key.clone(), action, desired: want, live }
}

/// Resolves listener references into ARNs. `None` when one is unresolved; the missing
/// reference is then reported as a problem.
fn bind(want: &Desired, refs: &HashMap<Reference, RefState>) -> Option<Desired> {
    if let Spec::Service(service) = &want.spec {
        let bound = service.bind(|name| match refs.get(&Reference::TargetGroup(name.to_string())) {
            Some(RefState::Found(Some(arn))) => Some(arn.clone()),
            _ => None,
        })?;
        return Some(Desired { spec: Spec::Service(Box::new(bound)), ..want.clone() });
    }
    let Spec::Group(group) = &want.spec else {
        return Some(want.clone());
    };
    let bound = group.bind(|listener| match refs.get(&Reference::Listener(listener.clone())) {
        Some(RefState::Found(Some(arn))) => Some(arn.clone()),
        _ => None,
    })?;
    Some(Desired { spec: Spec::Group(Box::new(bound)), ..want.clone() })
}

/// What to do with one resource, from what Git wants, what AWS has and who owns it.
pub(crate) fn action_for(want: &Desired, live: Option<&Live>, adopt: bool) -> Operation {
    let Some(live) = live else {
        return Operation::Create;
    };
    if want.key.kind.is_tagged() {
        match ownership(&live.tags, &want.tags) {
            Ownership::Ours => {}
            Ownership::Foreign if adopt => {}
            Ownership::Foreign => {
                return Operation::Conflict {
                    reason: "exists without slipway's tags; slipway leaves it alone unless the manifest sets `spec.adopt: true`".into(),
                };
            }
            Ownership::Other(owner) => {
                return Operation::Conflict { reason: format!("belongs to slipway {owner}") };
            }
        }
    }
    if let (Spec::Service(want), Spec::Service(have)) = (&want.spec, &live.spec)
        && let Some(reason) = want.switch_refused(have)
    {
        return Operation::Conflict { reason };
    }
    let changes = changes(want, live);
    if changes.is_empty() { Operation::Noop } else { Operation::Update { changes } }
}

/// Spec fields that differ, then tags slipway sets that are missing or different. Tags others
/// added are not slipway's business.
pub fn changes(want: &Desired, live: &Live) -> Vec<FieldChange> {
    let before = serde_json::to_value(&live.spec).expect("specs serialise");
    let after = serde_json::to_value(&want.spec).expect("specs serialise");
    let mut changes = diff(&before, &after);
    let relevant: Tags = live.tags.iter().filter(|(k, _)| want.tags.contains_key(*k)).map(|(k, v)| (k.clone(), v.clone())).collect();
    for change in
        diff(&serde_json::to_value(&relevant).expect("tags serialise"), &serde_json::to_value(&want.tags).expect("tags serialise"))
    {
        changes.push(FieldChange { path: format!("tags.{}", change.path), ..change });
    }
    changes
}

/// A resource slipway owns (one found in the account with its tags); an orphan when no manifest
/// asks for it any more.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Orphan {
    pub key: Key,
    pub pipeline: String,
    /// From the resource's tags: prune deletes it only when this says `Delete`.
    pub policy: DeletionPolicy,
}

impl Orphan {
    /// Whether `--prune` deletes it (its deletion policy is `Delete`).
    pub fn prunable(&self) -> bool {
        self.policy == DeletionPolicy::Delete
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::Kind;
    use crate::resource::codedeploy::{ApplicationSpec, ComputePlatform};

    fn app(platform: &str) -> Spec {
        Spec::App(ApplicationSpec { compute_platform: ComputePlatform::parse(platform) })
    }

    fn desired(tags: &[(&str, &str)]) -> Desired {
        Desired {
            key: Key::new(Kind::CodeDeployApplication, "web"),
            spec: app("ECS"),
            tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            payload: None,
        }
    }

    fn live(spec: Spec, tags: &[(&str, &str)]) -> Live {
        Live { spec, tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() }
    }

    const OURS: [(&str, &str); 2] = [("slipway.dev/managed-by", "slipway"), ("slipway.dev/pipeline", "web")];

    #[test]
    fn a_missing_resource_is_created() {
        assert_eq!(action_for(&desired(&OURS), None, false), Operation::Create);
    }

    #[test]
    fn an_owned_equal_resource_needs_nothing_even_with_extra_tags() {
        let mut tags = OURS.to_vec();
        tags.push(("team", "platform"));
        assert_eq!(action_for(&desired(&OURS), Some(&live(app("ECS"), &tags)), false), Operation::Noop);
    }

    #[test]
    fn a_foreign_resource_is_a_conflict_unless_adopted() {
        let foreign = live(app("ECS"), &[]);
        assert!(matches!(action_for(&desired(&OURS), Some(&foreign), false), Operation::Conflict { .. }));
        let Operation::Update { changes } = action_for(&desired(&OURS), Some(&foreign), true) else { panic!("adopt updates") };
        let paths: Vec<&str> = changes.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["tags.slipway.dev/managed-by", "tags.slipway.dev/pipeline"]);
    }

    #[test]
    fn another_pipelines_resource_is_a_conflict_even_with_adopt() {
        let other = live(app("ECS"), &[("slipway.dev/managed-by", "slipway"), ("slipway.dev/pipeline", "api")]);
        let Operation::Conflict { reason } = action_for(&desired(&OURS), Some(&other), true) else { panic!("conflict expected") };
        assert!(reason.contains("`api`"));
    }

    #[test]
    fn the_services_controller_is_not_switched_while_a_deployment_runs() {
        use crate::resource::ecs::{Controller, ServiceSpec};
        let spec = |controller: Controller, running: Option<&str>| ServiceSpec {
            deployment_controller: controller,
            strategy: None,
            bake_time_in_minutes: Some(5),
            linear: None,
            canary: None,
            alarms: None,
            lifecycle_hooks: Vec::new(),
            target_groups: Vec::new(),
            production_listener_rule: None,
            test_listener_rule: None,
            infrastructure_role_arn: None,
            running_deployment: running.map(str::to_owned),
            target_group_names: None,
        };
        let want = Desired {
            key: Key::new(Kind::EcsServiceSettings, "demo/web"),
            spec: Spec::Service(Box::new(spec(Controller::Ecs, None))),
            tags: Tags::new(),
            payload: None,
        };
        let live = |controller, running| Live { spec: Spec::Service(Box::new(spec(controller, running))), tags: Tags::new() };
        let Operation::Update { changes } = action_for(&want, Some(&live(Controller::CodeDeploy, None)), false) else {
            panic!("the switch")
        };
        assert_eq!((changes[0].path.as_str(), changes.len()), ("deploymentController", 1), "untagged: no ownership, no tag changes");
        let Operation::Conflict { reason } =
            action_for(&want, Some(&live(Controller::CodeDeploy, Some("task sets ecs-svc/1, ecs-svc/2"))), false)
        else {
            panic!("refused while a deployment runs")
        };
        assert!(reason.contains("from CODE_DEPLOY to ECS while a deployment runs (task sets ecs-svc/1, ecs-svc/2)"), "{reason}");
        // A running deployment does not hold back settings that do not switch the controller.
        let mut other = live(Controller::Ecs, Some("deployments ecs-svc/3"));
        if let Spec::Service(s) = &mut other.spec {
            s.bake_time_in_minutes = Some(10);
        }
        assert!(matches!(action_for(&want, Some(&other), false), Operation::Update { .. }));
    }

    #[test]
    fn a_changed_field_is_an_update_naming_it() {
        let Operation::Update { changes } = action_for(&desired(&OURS), Some(&live(app("Server"), &OURS)), false) else {
            panic!("update expected")
        };
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].path, "computePlatform");
    }
}
