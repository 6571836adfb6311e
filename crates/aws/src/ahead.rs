//! Reads made ahead, once for a pass that observes many pipelines, where AWS answers for many
//! resources in one call, each made only when it costs fewer reads than the per-resource calls it
//! replaces:
//!
//! - the tags of everything slipway manages ([`crate::tags`]);
//! - its EventBridge rules: `ListRules` with the `slipway-` prefix, 100 a page, with pattern,
//!   state and description (what `DescribeRule` gives; targets are still read per rule);
//! - the ECR repositories observed: `DescribeRepositories` for up to 100 names a call.
//!
//! The adapters take what is here and read the rest themselves. What a read ahead does not say is
//! never taken as "absent": a repository missing from a batch makes the batch fail, and the
//! adapter then reads its own; a rule missing from the listing is read with `DescribeRule`.

use std::collections::HashMap;

use aws_sdk_ecr::types::Repository;
use aws_sdk_eventbridge::types::Rule;
use slipway_core::resource::{Key, Kind};
use tracing::{debug, warn};

use crate::tags::{self, TagSweep};
use crate::{Aws, AwsError, absent_if_not_found, aws_err};

/// The prefix of every rule slipway names (`slipway-<pipeline>-ecr`, `-s3`).
const RULE_PREFIX: &str = "slipway-";
/// Rules per `ListRules` page and repositories per `DescribeRepositories` call: AWS's maximums.
const RULES_PAGE: usize = 100;
const REPOSITORIES_PER_CALL: usize = 100;

/// What was read ahead for one pass.
#[derive(Debug, Default)]
pub struct ReadAhead {
    tags: Option<TagSweep>,
    rules: HashMap<String, Rule>,
    repositories: HashMap<String, Repository>,
}

impl ReadAhead {
    pub(crate) fn tags(&self) -> Option<&TagSweep> {
        self.tags.as_ref()
    }

    pub(crate) fn rule(&self, name: &str) -> Option<&Rule> {
        self.rules.get(name)
    }

    pub(crate) fn repository(&self, name: &str) -> Option<&Repository> {
        self.repositories.get(name)
    }
}

/// Reads ahead for a pass that will observe the resources `observing`, out of `managed` (every
/// resource the valid manifests name). A failed read ahead is only a lost shortcut: logged, and
/// the adapters read for themselves.
pub async fn read_ahead(aws: &Aws, observing: &[Key], managed: &[Key]) -> ReadAhead {
    let count = |keys: &[Key], pick: &dyn Fn(Kind) -> bool| keys.iter().filter(|k| pick(k.kind)).count();
    let tagged = |kind: Kind| kind.is_tagged();
    let is_rule = |kind: Kind| kind == Kind::EventRule;
    let repositories: Vec<&str> = observing.iter().filter(|k| k.kind == Kind::EcrRepository).map(|k| k.name.as_str()).collect();
    let (tags, rules, repositories) = futures::join!(
        async { tags::worth_sweeping(count(observing, &tagged), count(managed, &tagged)).then(|| tags::sweep(aws)) },
        async { (count(managed, &is_rule).div_ceil(RULES_PAGE) < count(observing, &is_rule)).then(|| list_rules(aws)) },
        async { (repositories.len() > 1).then(|| describe_repositories(aws, &repositories)) },
    );
    let (tags, rules, repositories) = futures::join!(settle(tags, "tag:GetResources"), settle(rules, "events:ListRules"), async {
        match repositories {
            Some(read) => read.await,
            None => HashMap::new(),
        }
    });
    let ahead = ReadAhead { tags, rules: rules.unwrap_or_default(), repositories };
    debug!(
        tagged = ahead.tags.as_ref().map_or(0, TagSweep::len),
        rules = ahead.rules.len(),
        repositories = ahead.repositories.len(),
        "read ahead for the pass"
    );
    ahead
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

/// The repositories by name, 100 a call. A call naming one that does not exist fails whole; its
/// names are then left to the adapter.
async fn describe_repositories(aws: &Aws, names: &[&str]) -> HashMap<String, Repository> {
    let mut found = HashMap::new();
    for chunk in names.chunks(REPOSITORIES_PER_CALL) {
        let names = chunk.iter().map(|n| n.to_string()).collect();
        let described = aws.ecr.describe_repositories().set_repository_names(Some(names)).send().await;
        match absent_if_not_found(described.map_err(aws_err("ecr", "DescribeRepositories"))) {
            Ok(Some(page)) => {
                found.extend(page.repositories.unwrap_or_default().into_iter().filter_map(|r| Some((r.repository_name.clone()?, r))))
            }
            Ok(None) => debug!("a repository of the batch does not exist (yet): each is described on its own"),
            Err(err) => warn!(error = %err, "reading repositories ahead failed; each is described on its own"),
        }
    }
    found
}
