//! AWS quotas that grow with the number of pipelines, checked before apply.
//!
//! moto enforces none of them; real AWS refuses the resource past a quota (`LimitExceeded`) in
//! the middle of an apply. So validation counts what the valid manifests need, in a stable order
//! (pipelines this installation already applied first, then the others by name), and refuses
//! each pipeline that would pass a quota, at the manifest field that needs it, naming the setting
//! that avoids it. A refused pipeline gets nothing, so its needs do not count against the ones
//! after it: half a pipeline is worse than none.
//!
//! Quotas per resource are held elsewhere: 50 tags per resource (the schema allows 47 labels
//! beside slipway's 3 tags) and 5 targets per rule (every rule slipway makes has one; a test in
//! `compile` keeps it so).

use std::collections::{BTreeSet, HashMap};

use crate::manifest::Pipeline;
use crate::resource::trail::{FIXED_SELECTOR_VALUES, MAX_SELECTOR_VALUES};
use crate::trigger::TriggerRoute;

labels! {
    /// A quota of the account and Region that pipelines use up.
    pub enum Quota {
        /// CloudTrail trails per Region: 5, not adjustable. Pipelines naming one trail share it.
        Trails = "cloudtrail-trails",
        /// Values in one trail's advanced event selectors: 500, not adjustable. slipway's selector
        /// spends 3 and one per watched object.
        TrailSelectorValues = "cloudtrail-selector-values",
        /// EventBridge rules per event bus: 300 by default (100 in some Regions), adjustable.
        EventRules = "eventbridge-rules",
        /// CodePipeline pipelines per Region: 1,000 by default, adjustable.
        Pipelines = "codepipeline-pipelines",
    }
}

impl Quota {
    /// AWS's default value.
    pub fn aws_default(self) -> u32 {
        match self {
            Quota::Trails => 5,
            Quota::TrailSelectorValues => MAX_SELECTOR_VALUES,
            Quota::EventRules => 300,
            Quota::Pipelines => 1000,
        }
    }

    /// Whether AWS raises it on request. A hard quota can be lowered here (to leave room for the
    /// account's own resources), never raised.
    pub fn adjustable(self) -> bool {
        !matches!(self, Quota::Trails | Quota::TrailSelectorValues)
    }

    /// How many a pipeline needs on its own. What it adds to a trail other pipelines share
    /// already is counted by [`admit`].
    pub fn used_by(self, p: &Pipeline) -> u32 {
        match self {
            Quota::Trails => u32::from(p.trail_name().is_some()),
            Quota::TrailSelectorValues => p.trail_name().map_or(0, |_| FIXED_SELECTOR_VALUES + 1),
            Quota::EventRules => u32::from(p.watches_ecr_push()) + u32::from(p.watches_s3()),
            Quota::Pipelines => u32::from(p.uses_codepipeline() && p.spec.pipeline.is_some()),
        }
    }

    /// The manifest field that makes a pipeline need it.
    pub(crate) fn field(self) -> &'static [&'static str] {
        match self {
            Quota::Trails | Quota::TrailSelectorValues => &["spec", "triggers", "s3", "via"],
            Quota::EventRules => &["spec", "triggers"],
            Quota::Pipelines => &["spec", "pipeline"],
        }
    }

    fn what(self) -> &'static str {
        match self {
            Quota::Trails => "CloudTrail trails per Region",
            Quota::TrailSelectorValues => "values in its trail's advanced event selectors",
            Quota::EventRules => "EventBridge rules on the default event bus",
            Quota::Pipelines => "CodePipeline pipelines per Region",
        }
    }

    fn remedy(self) -> &'static str {
        match self {
            Quota::Trails => {
                "the S3 trigger's default route, `via: eventbridge`, needs no trail, and pipelines naming the same `triggers.s3.trail` share one; the account's own trails count too, so lower this with `--quota cloudtrail-trails=N` if it has some"
            }
            Quota::TrailSelectorValues => {
                "a trail watches at most 497 source objects: name another trail with `triggers.s3.trail` (AWS allows 5 per Region), or use the default route, `via: eventbridge`, which needs no trail"
            }
            Quota::EventRules => {
                "pass `--trigger-route queue` (one rule for every pipeline's triggers, read by `slipway run`), turn a trigger off (`triggers.ecrPush: false`, or no `triggers.s3`), or, once AWS has raised the quota (the account's own rules count too), pass `--quota eventbridge-rules=N`"
            }
            Quota::Pipelines => {
                "`deploy.mode: direct` needs no pipeline; once AWS has raised the quota, pass `--quota codepipeline-pipelines=N`"
            }
        }
    }
}

/// The value slipway holds each quota to: AWS's default unless `--quota NAME=N` says otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Limits(HashMap<Quota, u32>);

impl Limits {
    pub fn get(&self, quota: Quota) -> u32 {
        self.0.get(&quota).copied().unwrap_or_else(|| quota.aws_default())
    }

    /// Sets a quota from `NAME=N`. A hard quota cannot be raised.
    pub fn set(&mut self, setting: &str) -> Result<(), String> {
        let names = || Quota::ALL.map(Quota::as_str).join(", ");
        let (name, value) = setting.split_once('=').ok_or_else(|| format!("`{setting}`: expected NAME=N, with NAME one of {}", names()))?;
        let quota = Quota::parse(name.trim()).ok_or_else(|| format!("`{name}`: unknown quota; one of {}", names()))?;
        let value: u32 = value.trim().parse().map_err(|_| format!("`{setting}`: `{value}` is not a whole number"))?;
        if !quota.adjustable() && value > quota.aws_default() {
            return Err(format!("{quota}: AWS allows {} and does not raise it; it can only be lowered", quota.aws_default()));
        }
        self.0.insert(quota, value);
        Ok(())
    }
    /// Leaves room for `n` of slipway's own that no pipeline counts (the change feed's rule).
    pub fn reserve(&mut self, quota: Quota, n: u32) {
        self.0.insert(quota, self.get(quota).saturating_sub(n));
    }
}

/// Who gets a quota's room first, and how much there is.
#[derive(Debug, Clone, Default)]
pub struct Admission {
    pub limits: Limits,
    /// Pipelines this installation has applied (its inventory names them): counted first, so a
    /// pipeline added to Git never pushes out one that already runs.
    pub applied: BTreeSet<String>,
    /// How triggers reach pipelines: on the queue route they take no rule of their own, and the
    /// installation's one rule is held back from the quota.
    pub triggers: TriggerRoute,
}

impl Admission {
    /// The room a quota leaves the pipelines.
    fn limit(&self, quota: Quota) -> u32 {
        let own = u32::from(quota == Quota::EventRules && self.triggers == TriggerRoute::Queue);
        self.limits.get(quota).saturating_sub(own)
    }
}

/// One pipeline that would pass a quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breach {
    /// Index of the pipeline in the slice given to [`admit`].
    pub index: usize,
    pub quota: Quota,
    /// The count with this pipeline's needs, and the limit it passes.
    pub total: u32,
    pub limit: u32,
}

impl Breach {
    pub fn message(&self) -> String {
        format!(
            "this pipeline would bring the {} to {}, past the quota of {} ({}): {}",
            self.quota.what(),
            self.total,
            self.limit,
            if self.quota.adjustable() { "adjustable with AWS" } else { "AWS does not raise it" },
            self.quota.remedy()
        )
    }
}

/// Walks the pipelines in admission order and returns those that would pass a quota (the first
/// quota each passes). Pipelines past no quota are admitted, with their needs counted.
pub fn admit(pipelines: &[&Pipeline], admission: &Admission) -> Vec<Breach> {
    let mut order: Vec<usize> = (0..pipelines.len()).collect();
    order.sort_by_key(|&i| (!admission.applied.contains(pipelines[i].name()), pipelines[i].name()));
    let mut usage = Usage::default();
    let mut breaches = Vec::new();
    for i in order {
        let p = pipelines[i];
        let passed = Quota::ALL.into_iter().find_map(|quota| {
            let (total, limit) = (usage.with(quota, p, admission.triggers)?, admission.limit(quota));
            (total > limit).then_some(Breach { index: i, quota, total, limit })
        });
        match passed {
            Some(breach) => breaches.push(breach),
            None => usage.admit(p),
        }
    }
    breaches.sort_by_key(|b| b.index);
    breaches
}

/// What the pipelines admitted so far use.
#[derive(Default)]
struct Usage {
    counted: HashMap<Quota, u32>,
    /// Objects each trail watches.
    watched: HashMap<String, u32>,
}

impl Usage {
    /// The count `quota` would reach with `p` admitted too; `None` when `p` does not use it. A
    /// trail is counted once however many pipelines share it, and its selector values per trail.
    fn with(&self, quota: Quota, p: &Pipeline, triggers: TriggerRoute) -> Option<u32> {
        match quota {
            Quota::Trails => {
                let trail = p.trail_name()?;
                Some(self.watched.len() as u32 + u32::from(!self.watched.contains_key(&trail)))
            }
            Quota::TrailSelectorValues => {
                let trail = p.trail_name()?;
                Some(FIXED_SELECTOR_VALUES + self.watched.get(&trail).copied().unwrap_or(0) + 1)
            }
            Quota::EventRules if triggers == TriggerRoute::Queue => None,
            Quota::EventRules | Quota::Pipelines => {
                let n = quota.used_by(p);
                (n > 0).then(|| self.counted.get(&quota).copied().unwrap_or(0) + n)
            }
        }
    }

    fn admit(&mut self, p: &Pipeline) {
        // On the queue route nothing asks for EventRules' count again.
        for quota in [Quota::EventRules, Quota::Pipelines] {
            *self.counted.entry(quota).or_insert(0) += quota.used_by(p);
        }
        if let Some(trail) = p.trail_name() {
            *self.watched.entry(trail).or_insert(0) += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::TEST_MANIFEST;

    fn pipeline(name: &str, s3: &str) -> Pipeline {
        let yaml = TEST_MANIFEST.replace("name: web", &format!("name: {name}"));
        let mut p: Pipeline = serde_yaml_ng::from_str(&yaml).expect("the test manifest parses");
        p.spec.triggers.ecr_push = true;
        p.spec.triggers.s3 = match s3 {
            "" => None,
            route => Some(serde_yaml_ng::from_str(route).expect("a trigger")),
        };
        p
    }

    const VIA_TRAIL: &str = "{via: cloudtrail, logBucket: logs}";

    fn own_trail(n: usize) -> String {
        format!("{{via: cloudtrail, trail: trail-{n}, logBucket: logs}}")
    }

    #[test]
    fn a_pipeline_needs_a_trail_only_on_the_cloudtrail_route_and_a_rule_per_trigger() {
        let usage = |p: &Pipeline| Quota::ALL.map(|q| q.used_by(p));
        assert_eq!(usage(&pipeline("a", "")), [0, 0, 1, 1], "the ECR push rule and the pipeline");
        assert_eq!(usage(&pipeline("a", "{}")), [0, 0, 2, 1]);
        assert_eq!(usage(&pipeline("a", VIA_TRAIL)), [1, 4, 2, 1]);
    }

    #[test]
    fn the_pipeline_past_a_quota_is_refused_and_later_ones_that_fit_are_not() {
        let mut ps: Vec<Pipeline> = (0..7).map(|i| pipeline(&format!("p{i}"), &own_trail(i))).collect();
        ps[6] = pipeline("p6", "{}");
        let refs: Vec<&Pipeline> = ps.iter().collect();
        let breaches = admit(&refs, &Admission::default());
        assert_eq!(breaches.iter().map(|b| b.index).collect::<Vec<_>>(), [5], "p5 names the 6th trail; p6 needs none");
        assert_eq!((breaches[0].quota, breaches[0].total, breaches[0].limit), (Quota::Trails, 6, 5));
        assert!(breaches[0].message().contains("`via: eventbridge`"), "{}", breaches[0].message());
    }

    #[test]
    fn pipelines_sharing_a_trail_count_it_once_and_one_trail_watches_497_objects() {
        let mut ps: Vec<Pipeline> = (0..498).map(|i| pipeline(&format!("p{i:03}"), VIA_TRAIL)).collect();
        ps.push(pipeline("q", &own_trail(1)));
        let refs: Vec<&Pipeline> = ps.iter().collect();
        let mut admission = Admission::default();
        admission.limits.set("eventbridge-rules=2000").unwrap();
        let breaches = admit(&refs, &admission);
        assert_eq!(breaches.len(), 1, "the shared trail and trail-1 are 2 trails");
        assert_eq!((breaches[0].index, breaches[0].quota, breaches[0].total), (497, Quota::TrailSelectorValues, 501));
        assert!(breaches[0].message().contains("`triggers.s3.trail`"), "{}", breaches[0].message());
    }

    #[test]
    fn pipelines_already_applied_keep_their_room_when_a_new_one_sorts_before_them() {
        let ps: Vec<Pipeline> = ["a-new", "b", "c", "d", "e", "f"].iter().enumerate().map(|(i, n)| pipeline(n, &own_trail(i))).collect();
        let refs: Vec<&Pipeline> = ps.iter().collect();
        let by_name = admit(&refs, &Admission::default());
        assert_eq!(by_name.iter().map(|b| b.index).collect::<Vec<_>>(), [5], "by name, f is the sixth");
        let applied = Admission { applied: ["b", "c", "d", "e", "f"].map(String::from).into(), ..Default::default() };
        assert_eq!(admit(&refs, &applied).iter().map(|b| b.index).collect::<Vec<_>>(), [0], "the new one waits");
    }

    #[test]
    fn limits_come_from_aws_defaults_and_a_hard_quota_is_only_lowered() {
        let mut limits = Limits::default();
        assert_eq!(Quota::ALL.map(|q| limits.get(q)), [5, 500, 300, 1000]);
        limits.set("eventbridge-rules=2000").unwrap();
        limits.set("cloudtrail-trails=4").unwrap();
        assert_eq!(Quota::ALL.map(|q| limits.get(q)), [4, 500, 2000, 1000]);
        assert!(limits.set("cloudtrail-trails=6").unwrap_err().contains("does not raise it"));
        assert!(limits.set("cloudtrail-selector-values=501").unwrap_err().contains("does not raise it"));
        assert!(
            limits
                .set("rules=3")
                .unwrap_err()
                .contains("unknown quota; one of cloudtrail-trails, cloudtrail-selector-values, eventbridge-rules")
        );
        assert!(limits.set("eventbridge-rules").unwrap_err().contains("NAME=N"));
        assert!(limits.set("eventbridge-rules=many").unwrap_err().contains("not a whole number"));
    }

    #[test]
    fn rules_and_pipelines_are_counted_across_pipelines() {
        let ps: Vec<Pipeline> = (0..3).map(|i| pipeline(&format!("p{i}"), "{}")).collect();
        let refs: Vec<&Pipeline> = ps.iter().collect();
        let mut admission = Admission::default();
        admission.limits.set("eventbridge-rules=5").unwrap();
        let breaches = admit(&refs, &admission);
        assert_eq!(breaches.len(), 1);
        assert_eq!((breaches[0].index, breaches[0].quota, breaches[0].total), (2, Quota::EventRules, 6));
        admission.limits.set("codepipeline-pipelines=1").unwrap();
        assert_eq!(
            admit(&refs, &admission).iter().map(|b| (b.index, b.quota)).collect::<Vec<_>>(),
            [(1, Quota::Pipelines), (2, Quota::Pipelines)]
        );
    }

    #[test]
    fn the_counts_match_what_compile_makes_and_no_rule_has_more_than_five_targets() {
        use crate::compile::{Placement, compile};
        use crate::manifest::validate::ValidPipeline;
        use crate::resource::{Kind, Spec};
        let placement = Placement {
            partition: "aws".into(),
            region: "eu-west-1".into(),
            account: "123456789012".into(),
            installation: "slipway-state".into(),
        };
        for s3 in ["", "{}", VIA_TRAIL] {
            let valid = ValidPipeline { pipeline: pipeline("a", s3), file: "a.yaml".into(), source_files: Vec::new() };
            let desired = compile(&valid, std::sync::Arc::new(Vec::new()), &placement);
            let count = |kind: Kind| desired.kinds().into_iter().filter(|k| *k == kind).count() as u32;
            let made = [count(Kind::CloudTrailTrail), count(Kind::EventRule), count(Kind::CodePipeline)];
            let used = [Quota::Trails, Quota::EventRules, Quota::Pipelines].map(|q| q.used_by(&valid.pipeline));
            assert_eq!(made, used, "s3: {s3:?}");
            let values: usize = desired
                .resources
                .iter()
                .filter_map(|r| match &r.spec {
                    Spec::Trail(t) => {
                        Some(t.advanced_event_selectors.iter().flat_map(|s| &s.field_selectors).map(|f| f.equals.len()).sum::<usize>())
                    }
                    _ => None,
                })
                .sum();
            assert_eq!(values as u32, Quota::TrailSelectorValues.used_by(&valid.pipeline), "s3: {s3:?}");
            for r in &desired.resources {
                if let Spec::Rule(rule) = &r.spec {
                    assert!(rule.targets.len() <= 5, "{}: AWS allows 5 targets per rule", r.key);
                }
            }
        }
    }

    #[test]
    fn on_the_queue_route_pipelines_take_no_rule_and_the_installations_one_is_held_back() {
        let ps: Vec<Pipeline> = (0..400).map(|i| pipeline(&format!("p{i:03}"), "{}")).collect();
        let refs: Vec<&Pipeline> = ps.iter().collect();
        let by_rules = admit(&refs, &Admission::default());
        assert_eq!(by_rules.len(), 250, "2 rules each: 150 fit in 300");
        assert!(by_rules[0].message().contains("--trigger-route queue"), "{}", by_rules[0].message());
        let queue = Admission { triggers: TriggerRoute::Queue, ..Default::default() };
        assert!(admit(&refs, &queue).is_empty());
        assert_eq!(queue.limit(Quota::EventRules), 299);
        assert_eq!(queue.limit(Quota::Pipelines), 1000);
    }

    #[test]
    fn a_reservation_leaves_room_below_the_quota_in_force() {
        let mut limits = Limits::default();
        limits.reserve(Quota::EventRules, 1);
        assert_eq!(limits.get(Quota::EventRules), 299);
        limits.set("eventbridge-rules=2000").unwrap();
        limits.reserve(Quota::EventRules, 1);
        assert_eq!(limits.get(Quota::EventRules), 1999);
        assert_eq!(limits.get(Quota::Trails), 5, "other quotas are untouched");
    }
}
