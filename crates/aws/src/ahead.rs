//! Reads made ahead, once for a pass that observes many pipelines, where AWS answers for many
//! resources in one call, each made only when it costs fewer reads than the per-resource calls it
//! replaces:
//!
//! - the tags of everything slipway manages ([`crate::tags`]);
//! - its EventBridge rules: `ListRules` with the `slipway-` prefix, 100 a page, with pattern,
//!   state and description (what `DescribeRule` gives; targets are still read per rule);
//! - the ECR repositories observed: `DescribeRepositories` for up to 100 names a call;
//! - the CodeDeploy applications: `BatchGetApplications`, 100 a call;
//! - the ECS services referenced: `DescribeServices`, 10 a call per cluster;
//! - the target groups and load balancers referenced: `DescribeTargetGroups` and
//!   `DescribeLoadBalancers`, 20 names a call (listeners are still read per load balancer);
//! - a CloudTrail trail several observed pipelines share: read once for all of them (its answer,
//!   absent included, is a read of its own, made after the tags).
//!
//! The adapters take what is here and read the rest themselves. What a read ahead does not say is
//! never taken as "absent": a name missing from a batch makes the batch fail (or is left out of
//! its answer), and the adapter then reads its own; a rule missing from the listing is read with
//! `DescribeRule`.

use std::collections::HashMap;
use std::time::Instant;

use aws_sdk_codedeploy::types::ApplicationInfo;
use aws_sdk_ecr::types::Repository;
use aws_sdk_ecs::types::Service;
use aws_sdk_elasticloadbalancingv2::types::{LoadBalancer, TargetGroup};
use aws_sdk_eventbridge::types::Rule;
use slipway_core::resource::reference::{ListenerKey, Reference};
use slipway_core::resource::{Key, Kind, Live};
use tracing::{debug, warn};

use crate::tags::{self, TagSweep};
use crate::{Aws, AwsError, absent_if_not_found, aws_err};

/// The prefix of every rule slipway names (`slipway-<pipeline>-ecr`, `-s3`).
const RULE_PREFIX: &str = "slipway-";
/// Rules per `ListRules` page, and names per call of each batch read: AWS's maximums.
const RULES_PAGE: usize = 100;
const REPOSITORIES_PER_CALL: usize = 100;
const APPLICATIONS_PER_CALL: usize = 100;
const SERVICES_PER_CALL: usize = 10;
const ELB_NAMES_PER_CALL: usize = 20;

/// What was read ahead for one pass.
#[derive(Debug)]
pub struct ReadAhead {
    /// When the reads began: everything here is at least this old.
    read_at: Instant,
    tags: Option<TagSweep>,
    rules: HashMap<String, Rule>,
    repositories: HashMap<String, Repository>,
    applications: HashMap<String, ApplicationInfo>,
    /// By `(cluster, service)`.
    services: HashMap<(String, String), Service>,
    target_groups: HashMap<String, TargetGroup>,
    load_balancers: HashMap<String, LoadBalancer>,
    /// Shared trails, as `trail::read` answered.
    trails: HashMap<String, Option<Live>>,
}

impl Default for ReadAhead {
    /// Nothing read ahead.
    fn default() -> ReadAhead {
        ReadAhead {
            read_at: Instant::now(),
            tags: None,
            rules: HashMap::new(),
            repositories: HashMap::new(),
            applications: HashMap::new(),
            services: HashMap::new(),
            target_groups: HashMap::new(),
            load_balancers: HashMap::new(),
            trails: HashMap::new(),
        }
    }
}

impl ReadAhead {
    pub(crate) fn read_at(&self) -> Instant {
        self.read_at
    }

    pub(crate) fn tags(&self) -> Option<&TagSweep> {
        self.tags.as_ref()
    }

    pub(crate) fn rule(&self, name: &str) -> Option<&Rule> {
        self.rules.get(name)
    }

    pub(crate) fn repository(&self, name: &str) -> Option<&Repository> {
        self.repositories.get(name)
    }

    pub(crate) fn application(&self, name: &str) -> Option<&ApplicationInfo> {
        self.applications.get(name)
    }

    pub(crate) fn service(&self, cluster: &str, service: &str) -> Option<&Service> {
        self.services.get(&(cluster.to_string(), service.to_string()))
    }

    pub(crate) fn target_group(&self, name: &str) -> Option<&TargetGroup> {
        self.target_groups.get(name)
    }

    pub(crate) fn load_balancer(&self, name: &str) -> Option<&LoadBalancer> {
        self.load_balancers.get(name)
    }

    /// A shared trail read for the pass: `Some(None)` when it does not exist.
    pub(crate) fn trail(&self, name: &str) -> Option<&Option<Live>> {
        self.trails.get(name)
    }
}

/// What was read ahead of a resource when there is something, otherwise `read` (which says
/// `None` for a resource that does not exist).
pub(crate) async fn ahead_or<T: Clone>(
    read_ahead: Option<&T>,
    read: impl Future<Output = Result<Option<T>, AwsError>>,
) -> Result<Option<T>, AwsError> {
    match read_ahead {
        Some(found) => Ok(Some(found.clone())),
        None => read.await,
    }
}

/// What a pass will observe: its resources, and the references of its pipelines.
#[derive(Debug, Default)]
pub struct Scope {
    pub observing: Vec<Key>,
    pub references: Vec<Reference>,
    /// Every resource the valid manifests name (what a listing or a sweep would return).
    pub managed: Vec<Key>,
}

/// Reads ahead for a pass over `scope`. A failed read ahead is only a lost shortcut: logged, and
/// the adapters read for themselves.
pub async fn read_ahead(aws: &Aws, scope: &Scope) -> ReadAhead {
    let read_at = Instant::now();
    let (observing, managed) = (scope.observing.as_slice(), scope.managed.as_slice());
    let count = |keys: &[Key], pick: &dyn Fn(Kind) -> bool| keys.iter().filter(|k| pick(k.kind)).count();
    let tagged = |kind: Kind| kind.is_tagged();
    let is_rule = |kind: Kind| kind == Kind::EventRule;
    let names = |kind: Kind| observing.iter().filter(|k| k.kind == kind).map(|k| k.name.as_str()).collect::<Vec<_>>();
    let (repositories, applications) = (names(Kind::EcrRepository), names(Kind::CodeDeployApplication));
    let (groups, balancers) = (referenced(&scope.references, target_group_name), referenced(&scope.references, load_balancer_name));
    let sweep = tags::worth_sweeping(count(observing, &tagged), count(managed, &tagged)).then(|| tags::sweep(aws));
    let listing = (count(managed, &is_rule).div_ceil(RULES_PAGE) < count(observing, &is_rule)).then(|| list_rules(aws));
    let (tags, rules, repositories, applications, services, target_groups, load_balancers) = futures::join!(
        settle(sweep, "tag:GetResources"),
        settle(listing, "events:ListRules"),
        batch(&repositories, REPOSITORIES_PER_CALL, |chunk| describe_repositories(aws, chunk)),
        batch(&applications, APPLICATIONS_PER_CALL, |chunk| describe_applications(aws, chunk)),
        describe_services(aws, &scope.references),
        batch(&groups, ELB_NAMES_PER_CALL, |chunk| describe_target_groups(aws, chunk)),
        batch(&balancers, ELB_NAMES_PER_CALL, |chunk| describe_load_balancers(aws, chunk)),
    );
    let mut ahead = ReadAhead {
        read_at,
        tags,
        rules: rules.unwrap_or_default(),
        repositories,
        applications,
        services,
        target_groups,
        load_balancers,
        trails: HashMap::new(),
    };
    for name in shared(observing, Kind::CloudTrailTrail) {
        match crate::resource::read(aws, &Key::new(Kind::CloudTrailTrail, name), Some(&ahead)).await {
            Ok(live) => drop(ahead.trails.insert(name.to_owned(), live)),
            Err(err) => warn!(trail = name, error = %err, "reading a shared trail ahead failed; each pipeline reads it instead"),
        }
    }
    debug!(
        tagged = ahead.tags.as_ref().map_or(0, TagSweep::len),
        rules = ahead.rules.len(),
        repositories = ahead.repositories.len(),
        applications = ahead.applications.len(),
        services = ahead.services.len(),
        target_groups = ahead.target_groups.len(),
        load_balancers = ahead.load_balancers.len(),
        trails = ahead.trails.len(),
        "read ahead for the pass"
    );
    ahead
}

/// The names of `kind` observed more than once (a resource pipelines share).
fn shared(observing: &[Key], kind: Kind) -> Vec<&str> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for key in observing.iter().filter(|k| k.kind == kind) {
        *seen.entry(key.name.as_str()).or_default() += 1;
    }
    let mut names: Vec<&str> = seen.into_iter().filter(|(_, n)| *n > 1).map(|(name, _)| name).collect();
    names.sort_unstable();
    names
}

async fn settle<T>(read: Option<impl Future<Output = Result<T, AwsError>>>, call: &str) -> Option<T> {
    match read?.await {
        Ok(value) => Some(value),
        Err(err) => {
            warn!(error = %err, "reading ahead with {call} failed; each resource is read on its own instead");
            None
        }
    }
}

/// Every rule named `slipway-…` on the default bus. `ListRules` has no paginator in the SDK.
async fn list_rules(aws: &Aws) -> Result<HashMap<String, Rule>, AwsError> {
    let mut rules = HashMap::new();
    let mut token = None;
    loop {
        let page = aws
            .events
            .list_rules()
            .name_prefix(RULE_PREFIX)
            .limit(RULES_PAGE as i32)
            .set_next_token(token)
            .send()
            .await
            .map_err(aws_err("events", "ListRules"))?;
        rules.extend(page.rules.unwrap_or_default().into_iter().filter_map(|r| Some((r.name.clone()?, r))));
        token = page.next_token;
        if token.is_none() {
            return Ok(rules);
        }
    }
}

async fn describe_repositories(aws: &Aws, names: &[&str]) -> Result<Option<Vec<(String, Repository)>>, AwsError> {
    let names = names.iter().map(|n| n.to_string()).collect();
    let got = aws.ecr.describe_repositories().set_repository_names(Some(names)).send().await;
    Ok(absent_if_not_found(got.map_err(aws_err("ecr", "DescribeRepositories")))?
        .map(|got| got.repositories.unwrap_or_default().into_iter().filter_map(|r| Some((r.repository_name.clone()?, r))).collect()))
}

fn target_group_name(r: &Reference) -> Option<&str> {
    if let Reference::TargetGroup(name) = r { Some(name) } else { None }
}

fn load_balancer_name(r: &Reference) -> Option<&str> {
    if let Reference::Listener(ListenerKey::ByPort { load_balancer, .. }) = r { Some(load_balancer) } else { None }
}

/// The distinct names `pick` finds among the references.
fn referenced(references: &[Reference], pick: fn(&Reference) -> Option<&str>) -> Vec<&str> {
    let mut names: Vec<&str> = references.iter().filter_map(pick).collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// Reads `names` in chunks of `per_call` with `read`, when that takes fewer calls than one per
/// name. A chunk that fails (one of its names does not exist, or the call is refused) leaves its
/// names to be read one by one.
async fn batch<'a, K: std::hash::Hash + Eq, T, F, Fut>(names: &'a [&'a str], per_call: usize, read: F) -> HashMap<K, T>
where
    F: Fn(&'a [&'a str]) -> Fut,
    Fut: Future<Output = Result<Option<Vec<(K, T)>>, AwsError>>,
{
    let mut found = HashMap::new();
    if names.len().div_ceil(per_call) >= names.len() {
        return found;
    }
    for chunk in names.chunks(per_call) {
        match read(chunk).await {
            Ok(Some(items)) => found.extend(items),
            Ok(None) => debug!(names = chunk.len(), "a name of the batch does not exist (yet): each is read on its own"),
            Err(err) => warn!(error = %err, "reading ahead failed; each resource is read on its own"),
        }
    }
    found
}

async fn describe_applications(aws: &Aws, names: &[&str]) -> Result<Option<Vec<(String, ApplicationInfo)>>, AwsError> {
    let names = names.iter().map(|n| n.to_string()).collect();
    let got = aws.codedeploy.batch_get_applications().set_application_names(Some(names)).send().await;
    Ok(absent_if_not_found(got.map_err(aws_err("codedeploy", "BatchGetApplications")))?
        .map(|got| got.applications_info.unwrap_or_default().into_iter().filter_map(|a| Some((a.application_name.clone()?, a))).collect()))
}

async fn describe_target_groups(aws: &Aws, names: &[&str]) -> Result<Option<Vec<(String, TargetGroup)>>, AwsError> {
    let names = names.iter().map(|n| n.to_string()).collect();
    let got = aws.elb.describe_target_groups().set_names(Some(names)).send().await;
    Ok(absent_if_not_found(got.map_err(aws_err("elasticloadbalancing", "DescribeTargetGroups")))?
        .map(|got| got.target_groups.unwrap_or_default().into_iter().filter_map(|t| Some((t.target_group_name.clone()?, t))).collect()))
}

async fn describe_load_balancers(aws: &Aws, names: &[&str]) -> Result<Option<Vec<(String, LoadBalancer)>>, AwsError> {
    let names = names.iter().map(|n| n.to_string()).collect();
    let got = aws.elb.describe_load_balancers().set_names(Some(names)).send().await;
    Ok(absent_if_not_found(got.map_err(aws_err("elasticloadbalancing", "DescribeLoadBalancers")))?.map(|got| {
        got.load_balancers.unwrap_or_default().into_iter().filter_map(|lb| Some((lb.load_balancer_name.clone()?, lb))).collect()
    }))
}

/// The referenced services, 10 a call per cluster, when that takes fewer calls than one each.
/// A service AWS does not know is left out of the answer (it is in `failures`), and so read on
/// its own by observe, which says why it is missing.
async fn describe_services(aws: &Aws, references: &[Reference]) -> HashMap<(String, String), Service> {
    let mut by_cluster: HashMap<&str, Vec<&str>> = HashMap::new();
    for r in references {
        if let Reference::EcsService { cluster, service, .. } = r {
            by_cluster.entry(cluster).or_default().push(service);
        }
    }
    let mut found = HashMap::new();
    for (cluster, mut services) in by_cluster {
        services.sort_unstable();
        services.dedup();
        let read = |chunk: &[&str]| {
            let chunk: Vec<String> = chunk.iter().map(|s| s.to_string()).collect();
            async move {
                // A cluster that does not exist is observe's to report, at the pipeline.
                let got = aws.ecs.describe_services().cluster(cluster).set_services(Some(chunk)).send().await;
                let Some(got) = absent_if_not_found(got.map_err(aws_err("ecs", "DescribeServices")))? else {
                    return Ok(None);
                };
                Ok(Some(
                    got.services
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|s| s.status.as_deref() != Some("INACTIVE"))
                        .filter_map(|s| Some(((cluster.to_string(), s.service_name.clone()?), s)))
                        .collect(),
                ))
            }
        };
        found.extend(batch(&services, SERVICES_PER_CALL, read).await);
    }
    found
}
