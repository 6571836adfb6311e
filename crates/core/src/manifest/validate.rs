//! Checks a loaded pipeline and every file it references, reporting all problems at once.
//!
//! Reading the referenced files happens here, once: the contents travel on in
//! [`ValidPipeline`] so nothing downstream touches the disk again.

use std::collections::HashMap;
use std::fs;
use std::path::{Component, Path, PathBuf};

use super::budget::ValueError;
use super::types::{
    Deploy, DeployStrategy, HookSettings, HookTarget, LISTENER_EXPECTED, MAX_BUCKET_LENGTH, MAX_BUILD_TIMEOUT_MINUTES,
    MAX_ECS_BAKE_MINUTES, MAX_HOOK_TIMEOUT_MINUTES, MAX_NAME_LENGTH, MAX_REPOSITORY_LENGTH, MAX_TAG_LENGTH, MAX_WAIT_MINUTES,
    MIN_BUCKET_LENGTH, MIN_BUILD_TIMEOUT_MINUTES, MIN_REPOSITORY_LENGTH,
};
use super::{Diagnostic, ExecutionMode, ListenerRef, Loaded, Pipeline, PipelineSettings, PipelineType, S3EventRoute, jsonc};
use crate::quota::{self, Admission};
use crate::trigger::TriggerRoute;

/// The placeholder CodeDeployToECS replaces with the image from the image artifact.
pub(crate) const IMAGE_PLACEHOLDER: &str = "<IMAGE1_NAME>";
/// The placeholder CodeDeploy replaces with the registered task definition ARN.
pub(crate) const TASK_DEFINITION_PLACEHOLDER: &str = "<TASK_DEFINITION>";

/// A file that goes into the source zip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Path inside the zip, `/`-separated.
    pub name: String,
    pub contents: Vec<u8>,
    pub executable: bool,
}

/// A pipeline that passed validation, with the files it publishes.
#[derive(Debug, Clone)]
pub struct ValidPipeline {
    pub pipeline: Pipeline,
    pub file: PathBuf,
    /// Sorted by name. The task definition is already clean JSON (comments dropped).
    pub source_files: Vec<SourceFile>,
}

impl ValidPipeline {
    pub fn name(&self) -> &str {
        self.pipeline.name()
    }

    /// The task definition template, parsed.
    pub(crate) fn task_definition(&self) -> Option<serde_json::Value> {
        let file = self.source_files.iter().find(|f| f.name == self.pipeline.spec.deploy.task_definition)?;
        serde_json::from_slice(&file.contents).ok()
    }

    /// The container whose image is `<IMAGE1_NAME>` in the task definition template.
    pub(crate) fn image_container(&self) -> Option<String> {
        crate::delivery::decide::image_container(&self.task_definition()?)
    }
}

/// Validates each pipeline on its own, then the names pipelines must not share, the files they
/// publish, and last the account quotas the valid ones would pass ([`quota::admit`]). Returns the
/// valid pipelines and every diagnostic; a pipeline with any error is left out.
pub fn validate(root: &Path, loaded: &[Loaded], admission: &Admission) -> (Vec<ValidPipeline>, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let mut failed = vec![false; loaded.len()];
    for (i, doc) in loaded.iter().enumerate() {
        let errors = check_fields(doc, admission.triggers);
        failed[i] = !errors.is_empty();
        diagnostics.extend(errors);
    }
    for (i, diag) in check_unique_names(loaded).into_iter().chain(check_shared_trails(loaded)) {
        failed[i] = true;
        diagnostics.push(diag);
    }
    let mut sources = HashMap::new();
    for (i, doc) in loaded.iter().enumerate() {
        if failed[i] {
            continue;
        }
        match read_source_files(root, doc) {
            Ok(files) => drop(sources.insert(i, files)),
            Err(errors) => {
                failed[i] = true;
                diagnostics.extend(errors);
            }
        }
    }
    for (i, diag) in check_quotas(loaded, &failed, admission) {
        failed[i] = true;
        diagnostics.push(diag);
    }
    let valid = (0..loaded.len())
        .filter(|&i| !failed[i])
        .map(|i| {
            let doc = &loaded[i];
            ValidPipeline { pipeline: doc.pipeline.clone(), file: doc.file.clone(), source_files: sources.remove(&i).unwrap_or_default() }
        })
        .collect();
    (valid, diagnostics)
}

fn check_fields(doc: &Loaded, triggers: TriggerRoute) -> Vec<Diagnostic> {
    let p = &doc.pipeline;
    let s = &p.spec;
    let mut errors = Vec::new();
    let mut err = |path: &[&str], message: String| errors.push(doc.diagnostic(path, message));

    if let Err(why) = check_pipeline_name(p.name()) {
        err(&["metadata", "name"], format!("invalid metadata.name `{}`: {why}", p.name()));
    }
    if p.metadata.labels.len() > MAX_LABELS {
        let message = format!(
            "{} labels: AWS allows 50 tags per resource and slipway sets {} of its own, so at most {MAX_LABELS} labels",
            p.metadata.labels.len(),
            50 - MAX_LABELS
        );
        err(&["metadata", "labels"], message);
    }
    for (key, value) in &p.metadata.labels {
        if let Err(why) = check_label(key, value) {
            err(&["metadata", "labels", key], format!("label `{key}`: {why}"));
        }
    }
    if let Err(why) = check_ecr_name(&s.image.repository) {
        err(&["spec", "image", "repository"], format!("invalid ECR repository name `{}`: {why}", s.image.repository));
    }
    if s.image.tag.is_empty() || s.image.tag.len() > MAX_TAG_LENGTH {
        err(&["spec", "image", "tag"], format!("image.tag must be 1 to {MAX_TAG_LENGTH} characters"));
    }
    if s.image.untagged_expiry_days == 0 {
        err(&["spec", "image", "untaggedExpiryDays"], "image.untaggedExpiryDays must be at least 1".into());
    }
    if let Err(why) = check_bucket_name(&s.source.bucket) {
        err(&["spec", "source", "bucket"], format!("invalid S3 bucket name `{}`: {why}", s.source.bucket));
    }
    if let Some(bucket) = s.pipeline.as_ref().and_then(|p| p.artifact_bucket.as_ref())
        && let Err(why) = check_bucket_name(bucket)
    {
        err(&["spec", "pipeline", "artifactBucket"], format!("invalid S3 bucket name `{bucket}`: {why}"));
    }
    if let Some(Err(why)) = s.pipeline.as_ref().map(check_execution_mode) {
        err(&["spec", "pipeline", "executionMode"], why);
    }
    if s.source.key.is_empty() || s.source.key.starts_with('/') || !s.source.key.ends_with(".zip") {
        err(&["spec", "source", "key"], format!("source.key `{}` must be a relative object key ending in .zip", s.source.key));
    }
    if let Err(why) = check_relative_path(&s.source.path) {
        err(&["spec", "source", "path"], format!("source.path `{}` {why}", s.source.path));
    }
    for (field, path) in [("taskDefinition", s.deploy.task_definition.as_str()), ("appSpec", s.deploy.app_spec())] {
        if let Err(why) = check_relative_path(path) {
            err(&["spec", "deploy", field], format!("deploy.{field} `{path}` {why}"));
        }
    }
    let roles: [(&[&str], Option<&String>); 5] = [
        (&["spec", "deploy", "serviceRoleArn"], s.deploy.service_role_arn.as_ref()),
        (&["spec", "deploy", "infrastructureRoleArn"], s.deploy.infrastructure_role_arn.as_ref()),
        (&["spec", "pipeline", "roleArn"], s.pipeline.as_ref().map(|p| &p.role_arn)),
        (&["spec", "build", "serviceRoleArn"], s.build.as_ref().map(|b| &b.service_role_arn)),
        (&["spec", "triggers", "roleArn"], s.triggers.role_arn.as_ref()),
    ];
    for (path, arn) in roles {
        if let Some(arn) = arn
            && !is_role_arn(arn)
        {
            err(path, format!("`{arn}` is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)"));
        }
    }
    for (field, minutes) in
        [("terminationWaitMinutes", s.deploy.termination_wait_minutes()), ("readyWaitMinutes", s.deploy.ready_wait_minutes())]
    {
        if minutes > MAX_WAIT_MINUTES {
            err(&["spec", "deploy", field], format!("deploy.{field} must be at most {MAX_WAIT_MINUTES} (2 days)"));
        }
    }
    let listeners = [("prodListener", s.deploy.prod_listener.as_ref()), ("testListener", s.deploy.test_listener.as_ref())];
    for (field, listener) in listeners {
        if let Some(ListenerRef::ByPort(by_port)) = listener
            && by_port.port == 0
        {
            err(&["spec", "deploy", field, "port"], format!("deploy.{field}: {LISTENER_EXPECTED}"));
        }
    }
    if s.deploy.target_groups[0] == s.deploy.target_groups[1] {
        err(&["spec", "deploy", "targetGroups"], "deploy.targetGroups must name two different target groups (blue and green)".into());
    }
    for (path, message) in check_strategy(&s.deploy) {
        err(&path, message);
    }
    if let Some(build) = &s.build {
        if !(MIN_BUILD_TIMEOUT_MINUTES..=MAX_BUILD_TIMEOUT_MINUTES).contains(&build.timeout_minutes) {
            let message = format!("build.timeoutMinutes must be between {MIN_BUILD_TIMEOUT_MINUTES} and {MAX_BUILD_TIMEOUT_MINUTES}");
            err(&["spec", "build", "timeoutMinutes"], message);
        }
        if let Err(why) = check_relative_path(&build.buildspec) {
            err(&["spec", "build", "buildspec"], format!("build.buildspec `{}` {why}", build.buildspec));
        }
    }
    match (p.uses_codepipeline(), &s.pipeline, &s.build) {
        (true, None, _) => err(
            &["spec"],
            "spec.pipeline (with roleArn) is required: new images go through CodePipeline (or set deploy.mode: direct)".into(),
        ),
        (false, Some(_), _) => err(&["spec", "pipeline"], "spec.pipeline has no effect with deploy.mode: direct: remove it".into()),
        (false, _, Some(_)) => {
            err(&["spec", "build"], "spec.build needs deploy.mode: pipeline (CodeBuild runs as a CodePipeline stage)".into())
        }
        _ => {}
    }
    if let Some(pin) = &s.image.pin {
        if p.uses_codepipeline() {
            err(&["spec", "image", "pin"], "image.pin needs deploy.mode: direct (CodePipeline's ECR source follows a tag)".into());
        }
        if let Err(why) = check_pin(pin, &s.image.repository) {
            err(&["spec", "image", "pin"], format!("image.pin `{pin}` {why}"));
        }
    }
    // On the queue route slipway starts the pipeline itself: EventBridge needs no role.
    let needs_role = (p.watches_ecr_push() || p.watches_s3()) && triggers == TriggerRoute::Rules;
    if needs_role && s.triggers.role_arn.is_none() {
        err(
            &["spec", "triggers"],
            "triggers.roleArn is required: EventBridge needs a role to start the pipeline (or turn the triggers off with `ecrPush: false` and no `s3`, or let `slipway run` start it: --trigger-route queue)".into(),
        );
    }
    if let Some(trigger) = &s.triggers.s3 {
        match (&trigger.log_bucket, trigger.via) {
            (None, S3EventRoute::Cloudtrail) => err(
                &["spec", "triggers", "s3", "via"],
                "triggers.s3.logBucket is required with `via: cloudtrail`: the trail needs a bucket for its logs (or drop `via` to use S3's EventBridge notifications, which need none)".into(),
            ),
            (Some(bucket), _) => {
                if let Err(why) = check_bucket_name(bucket) {
                    err(&["spec", "triggers", "s3", "logBucket"], format!("invalid S3 bucket name `{bucket}`: {why}"));
                }
            }
            (None, S3EventRoute::Eventbridge) => {}
        }
    }
    errors
}

/// The settings of the deploy strategy: what it needs, what belongs to another strategy, and
/// the ranges AWS accepts. Each finding names its field under `spec.deploy`.
pub(crate) fn check_strategy(d: &Deploy) -> Vec<(Vec<&'static str>, String)> {
    let mut out: Vec<(Vec<&'static str>, String)> = Vec::new();
    let mut err = |path: &[&'static str], message: String| {
        let mut full = vec!["spec", "deploy"];
        full.extend_from_slice(path);
        out.push((full, message));
    };
    let strategy = d.strategy.as_str();
    let codedeploy_only: [(&'static str, bool); 10] = [
        ("application", d.application.is_some()),
        ("deploymentGroup", d.deployment_group.is_some()),
        ("serviceRoleArn", d.service_role_arn.is_some()),
        ("prodListener", d.prod_listener.is_some()),
        ("testListener", d.test_listener.is_some()),
        ("appSpec", d.app_spec.is_some()),
        ("terminationWaitMinutes", d.termination_wait_minutes.is_some()),
        ("readyWaitMinutes", d.ready_wait_minutes.is_some()),
        ("autoRollbackOn", d.auto_rollback_on.is_some()),
        ("deploymentConfig", d.deployment_config.is_some()),
    ];
    let ecs_only: [(&'static str, bool); 8] = [
        ("prodListenerRule", d.prod_listener_rule.is_some()),
        ("testListenerRule", d.test_listener_rule.is_some()),
        ("infrastructureRoleArn", d.infrastructure_role_arn.is_some()),
        ("bakeTimeMinutes", d.bake_time_minutes.is_some()),
        ("linear", d.linear.is_some()),
        ("canary", d.canary.is_some()),
        ("alarms", d.alarms.is_some()),
        ("hooks", !d.hooks.is_empty()),
    ];
    if !d.strategy.is_ecs() {
        if d.service_role_arn.is_none() {
            err(&[], "deploy.serviceRoleArn is required with strategy `codedeploy`: the role CodeDeploy assumes".into());
        }
        if d.prod_listener.is_none() {
            err(
                &[],
                "deploy.prodListener is required with strategy `codedeploy`: the listener CodeDeploy moves production traffic on".into(),
            );
        }
        for (field, set) in ecs_only {
            if set {
                err(
                    &[field],
                    format!("deploy.{field} belongs to the ECS strategies (ecs-blue-green, ecs-linear, ecs-canary), not `codedeploy`"),
                );
            }
        }
        return out;
    }
    for (field, set) in codedeploy_only {
        if set {
            err(
                &[field],
                format!(
                    "deploy.{field} belongs to strategy `codedeploy`; with `{strategy}` ECS shifts traffic itself (README: Deploy strategies)"
                ),
            );
        }
    }
    if d.prod_listener_rule.is_none() {
        err(
            &[],
            format!(
                "deploy.prodListenerRule is required with `{strategy}`: the ARN of the listener rule that forwards production traffic to both target groups"
            ),
        );
    }
    if d.infrastructure_role_arn.is_none() {
        err(
            &[],
            format!("deploy.infrastructureRoleArn is required with `{strategy}`: the role ECS assumes to move the listener rule's weights"),
        );
    }
    for (field, arn) in [("prodListenerRule", &d.prod_listener_rule), ("testListenerRule", &d.test_listener_rule)] {
        if let Some(arn) = arn
            && !is_listener_rule_arn(arn)
        {
            err(
                &[field],
                format!("`{arn}` is not a listener rule ARN (arn:aws:elasticloadbalancing:<region>:<account>:listener-rule/app/…)"),
            );
        }
    }
    if d.prod_listener_rule.is_some() && d.prod_listener_rule == d.test_listener_rule {
        err(&["testListenerRule"], "deploy.testListenerRule must differ from prodListenerRule".into());
    }
    if let Some(minutes) = d.bake_time_minutes
        && minutes > MAX_ECS_BAKE_MINUTES
    {
        err(&["bakeTimeMinutes"], format!("deploy.bakeTimeMinutes must be at most {MAX_ECS_BAKE_MINUTES} (24 hours)"));
    }
    match (d.strategy, &d.linear, &d.canary) {
        (DeployStrategy::EcsLinear, _, Some(_)) | (DeployStrategy::EcsBlueGreen, _, Some(_)) => {
            err(&["canary"], format!("deploy.canary is for `ecs-canary`, not `{strategy}`"))
        }
        (DeployStrategy::EcsCanary, Some(_), _) | (DeployStrategy::EcsBlueGreen, Some(_), _) => {
            err(&["linear"], format!("deploy.linear is for `ecs-linear`, not `{strategy}`"))
        }
        _ => {}
    }
    if let Some(linear) = &d.linear {
        if let Err(why) = check_percent(linear.step_percent, 3.0) {
            err(&["linear", "stepPercent"], format!("deploy.linear.stepPercent {why}"));
        }
        if linear.step_bake_time_minutes > MAX_ECS_BAKE_MINUTES {
            err(
                &["linear", "stepBakeTimeMinutes"],
                format!("deploy.linear.stepBakeTimeMinutes must be at most {MAX_ECS_BAKE_MINUTES} (24 hours)"),
            );
        }
    }
    if let Some(canary) = &d.canary {
        if let Err(why) = check_percent(canary.percent, 0.1) {
            err(&["canary", "percent"], format!("deploy.canary.percent {why}"));
        }
        if canary.bake_time_minutes > MAX_ECS_BAKE_MINUTES {
            err(&["canary", "bakeTimeMinutes"], format!("deploy.canary.bakeTimeMinutes must be at most {MAX_ECS_BAKE_MINUTES} (24 hours)"));
        }
    }
    if let Some(alarms) = &d.alarms
        && !(1..=MAX_ALARMS).contains(&alarms.names.len())
    {
        err(&["alarms", "names"], format!("deploy.alarms.names takes 1 to {MAX_ALARMS} alarm names"));
    }
    for (i, hook) in d.hooks.iter().enumerate() {
        // The line is found by the field's name; the message names the hook by its position.
        for (field, text) in check_hook(hook) {
            err(&["hooks", field], format!("deploy.hooks[{i}].{field}: {text}"));
        }
    }
    out
}

/// AWS's most alarms on one service's deployments.
const MAX_ALARMS: usize = 10;

/// One hook's problems, by field.
fn check_hook(hook: &HookSettings) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if hook.stages.is_empty() {
        out.push(("stages", "name at least one stage".to_string()));
    }
    match hook.target {
        HookTarget::Pause => {
            if let Some(stage) = hook.stages.iter().find(|s| !s.takes_pause()) {
                out.push((
                    "stages",
                    format!("a PAUSE hook cannot run at {} (traffic is moving then; AWS allows Lambda hooks only there)", stage.as_aws()),
                ));
            }
            if hook.function.is_some() || hook.role_arn.is_some() {
                out.push(("function", "a PAUSE hook calls nothing: remove function and roleArn".to_string()));
            }
        }
        HookTarget::AwsLambda => {
            match &hook.function {
                None => out.push(("function", "an AWS_LAMBDA hook needs the function's ARN".to_string())),
                Some(arn) if !arn.starts_with("arn:") || !arn.contains(":lambda:") || !arn.contains(":function:") => out.push((
                    "function",
                    format!("`{arn}` is not a Lambda function ARN (arn:aws:lambda:<region>:<account>:function:<name>)"),
                )),
                Some(_) => {}
            }
            match &hook.role_arn {
                None => out.push(("roleArn", "an AWS_LAMBDA hook needs the role ECS assumes to call the function".to_string())),
                Some(arn) if !is_role_arn(arn) => {
                    out.push(("roleArn", format!("`{arn}` is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)")))
                }
                Some(_) => {}
            }
        }
    }
    if !(1..=MAX_HOOK_TIMEOUT_MINUTES).contains(&hook.timeout_minutes) {
        out.push(("timeoutMinutes", format!("must be 1 to {MAX_HOOK_TIMEOUT_MINUTES} (14 days)")));
    }
    out
}

/// A traffic percentage as ECS takes it: a multiple of 0.1 from `min` to 100.0.
fn check_percent(value: f64, min: f64) -> Result<(), String> {
    let tenths = value * 10.0;
    if !(min..=100.0).contains(&value) || (tenths - tenths.round()).abs() > 1e-6 {
        return Err(format!("must be a multiple of 0.1 from {min:.1} to 100.0 (got {value})"));
    }
    Ok(())
}

/// `arn:<partition>:elasticloadbalancing:<region>:<account>:listener-rule/…`
pub(crate) fn is_listener_rule_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    parts.len() == 6 && parts[0] == "arn" && parts[2] == "elasticloadbalancing" && parts[5].starts_with("listener-rule/")
}

/// The pipelines that would pass an account quota, among those valid so far ([`quota::admit`]).
fn check_quotas(loaded: &[Loaded], failed: &[bool], admission: &Admission) -> Vec<(usize, Diagnostic)> {
    let candidates: Vec<usize> = (0..loaded.len()).filter(|&i| !failed[i]).collect();
    let pipelines: Vec<&Pipeline> = candidates.iter().map(|&i| &loaded[i].pipeline).collect();
    quota::admit(&pipelines, admission)
        .into_iter()
        .map(|breach| {
            let doc = &loaded[candidates[breach.index]];
            (candidates[breach.index], doc.diagnostic(breach.quota.field(), breach.message()))
        })
        .collect()
}

/// Two pipelines must never claim the same AWS resource: each would undo the other's changes.
fn check_unique_names(loaded: &[Loaded]) -> Vec<(usize, Diagnostic)> {
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    let mut out = Vec::new();
    for (i, doc) in loaded.iter().enumerate() {
        let p = &doc.pipeline;
        let mut claims: Vec<(&str, String, Vec<&str>)> = vec![
            ("pipeline", p.name().to_string(), vec!["metadata", "name"]),
            ("ECR repository", p.spec.image.repository.clone(), vec!["spec", "image", "repository"]),
            ("S3 bucket", p.spec.source.bucket.clone(), vec!["spec", "source", "bucket"]),
        ];
        if p.spec.deploy.strategy.is_ecs() {
            // Its deployment settings are the pipeline's: two would set them by turns.
            claims.push(("ECS service", format!("{}/{}", p.spec.deploy.cluster, p.spec.deploy.service), vec!["spec", "deploy", "service"]));
        } else {
            claims.push(("CodeDeploy application", p.application_name().to_string(), vec!["spec", "deploy"]));
        }
        if p.uses_codepipeline() {
            claims.push(("CodePipeline", p.codepipeline_name().to_string(), vec!["spec", "pipeline"]));
        }
        if let Some(project) = p.build_project_name() {
            claims.push(("CodeBuild project", project, vec!["spec", "build"]));
        }
        if p.artifact_bucket() != p.spec.source.bucket {
            claims.push(("S3 bucket", p.artifact_bucket().to_string(), vec!["spec", "pipeline", "artifactBucket"]));
        }
        for (what, name, path) in claims {
            match seen.get(&(what.to_string(), name.clone())) {
                Some(&first) => {
                    let other = &loaded[first];
                    out.push((
                        i,
                        doc.diagnostic(
                            &path,
                            format!(
                                "{what} `{name}` is already used by pipeline `{}` ({}); each resource belongs to one pipeline",
                                other.pipeline.name(),
                                other.file.display()
                            ),
                        ),
                    ));
                }
                None => {
                    seen.insert((what.to_string(), name), i);
                }
            }
        }
    }
    out
}

/// Pipelines naming one trail share it, so they must agree on where it writes its logs.
fn check_shared_trails(loaded: &[Loaded]) -> Vec<(usize, Diagnostic)> {
    let mut first: HashMap<String, (usize, Option<&str>, Option<&str>)> = HashMap::new();
    let mut out = Vec::new();
    for (i, doc) in loaded.iter().enumerate() {
        let (Some(trail), Some(trigger)) = (doc.pipeline.trail_name(), &doc.pipeline.spec.triggers.s3) else {
            continue;
        };
        let prefix = trigger.log_prefix.as_deref().filter(|p| !p.is_empty());
        let (j, bucket, other_prefix) = *first.entry(trail.clone()).or_insert((i, trigger.log_bucket.as_deref(), prefix));
        let (field, mine, theirs) = if bucket != trigger.log_bucket.as_deref() {
            ("logBucket", trigger.log_bucket.as_deref(), bucket)
        } else if other_prefix != prefix {
            ("logPrefix", prefix, other_prefix)
        } else {
            continue;
        };
        let other = &loaded[j];
        out.push((
            i,
            doc.diagnostic(
                &["spec", "triggers", "s3", field],
                format!(
                    "triggers.s3.{field} is {} but pipeline `{}` ({}) has {} for the same trail `{trail}`: pipelines naming one trail share it, so they must agree (or name another with `triggers.s3.trail`)",
                    shown(mine),
                    other.pipeline.name(),
                    other.file.display(),
                    shown(theirs)
                ),
            ),
        ));
    }
    out
}

fn shown(value: Option<&str>) -> String {
    value.map_or_else(|| "not set".to_string(), |v| format!("`{v}`"))
}

fn read_source_files(root: &Path, doc: &Loaded) -> Result<Vec<SourceFile>, Vec<Diagnostic>> {
    let s = &doc.pipeline.spec;
    let mut errors = Vec::new();
    let root_real = match root.canonicalize() {
        Ok(p) => p,
        Err(e) => {
            return Err(vec![doc.diagnostic(&["spec", "source", "path"], format!("failed to read repository root: {e}"))]);
        }
    };
    let source_dir = root.join(&s.source.path);
    match inside(&root_real, &source_dir) {
        Ok(real) if real.is_dir() => {}
        Ok(_) => {
            return Err(vec![doc.diagnostic(&["spec", "source", "path"], format!("source.path `{}` is not a directory", s.source.path))]);
        }
        Err(why) => {
            return Err(vec![doc.diagnostic(&["spec", "source", "path"], format!("source.path `{}` {why}", s.source.path))]);
        }
    }
    // Which files the zip holds: the two templates (seed 000), or the whole directory (seed 002).
    let mut names: Vec<String> = if s.build.is_some() {
        let mut all = Vec::new();
        if let Err(e) = walk(&source_dir, &source_dir, &mut all) {
            return Err(vec![doc.diagnostic(&["spec", "source", "path"], format!("failed to read source.path `{}`: {e}", s.source.path))]);
        }
        all
    } else if s.deploy.strategy.is_ecs() {
        // ECS deploys the task definition itself: no AppSpec.
        vec![s.deploy.task_definition.clone()]
    } else {
        vec![s.deploy.task_definition.clone(), s.deploy.app_spec().to_string()]
    };
    names.sort();
    names.dedup();
    let required: Vec<(&[&str], &str)> = {
        let mut r: Vec<(&[&str], &str)> = vec![(&["spec", "deploy", "taskDefinition"], &s.deploy.task_definition)];
        if !s.deploy.strategy.is_ecs() {
            r.push((&["spec", "deploy", "appSpec"], s.deploy.app_spec()));
        }
        if let Some(build) = &s.build {
            r.push((&["spec", "build", "buildspec"], &build.buildspec));
        }
        r
    };
    for (path, name) in &required {
        let present = names.iter().any(|n| n == *name) && source_dir.join(name).exists();
        if !present {
            errors.push(doc.diagnostic(path, format!("`{}` not found in source.path `{}`", name, s.source.path)));
        }
    }
    let mut files = Vec::new();
    for name in names {
        let path = source_dir.join(&name);
        if !path.exists() {
            continue; // a required file: reported above
        }
        let real = match inside(&root_real, &path) {
            Ok(real) => real,
            Err(why) => {
                errors.push(doc.diagnostic(&["spec", "source", "path"], format!("`{}/{name}` {why}", s.source.path)));
                continue;
            }
        };
        let contents = match fs::read(&real) {
            Ok(c) => c,
            Err(e) => {
                if real.exists() {
                    errors.push(doc.diagnostic(&["spec", "source", "path"], format!("failed to read `{}/{name}`: {e}", s.source.path)));
                }
                continue;
            }
        };
        let executable = is_executable(&real);
        let rel_display = Path::new(&s.source.path).join(&name);
        let contents = if name == s.deploy.task_definition {
            match check_task_definition(&contents) {
                Ok(clean) => clean,
                Err((line, column, message)) => {
                    errors.push(Diagnostic { file: rel_display, line, column, message, pipeline: Some(doc.pipeline.name().to_string()) });
                    continue;
                }
            }
        } else if name == s.deploy.app_spec() && !s.deploy.strategy.is_ecs() {
            if let Err((line, column, message)) = check_app_spec(&contents) {
                errors.push(Diagnostic { file: rel_display, line, column, message, pipeline: Some(doc.pipeline.name().to_string()) });
                continue;
            }
            contents
        } else {
            contents
        };
        files.push(SourceFile { name, contents, executable });
    }
    if errors.is_empty() { Ok(files) } else { Err(errors) }
}

/// Parses a task definition template (comments allowed) and returns it as clean JSON.
pub(crate) fn check_task_definition(bytes: &[u8]) -> Result<Vec<u8>, (usize, usize, String)> {
    let text = std::str::from_utf8(bytes).map_err(|e| (1, 1, format!("task definition is not UTF-8: {e}")))?;
    let value =
        jsonc::parse(text).map_err(|e| (e.line(), e.column(), format!("invalid JSON in task definition: {}", strip_json_position(&e))))?;
    let containers = value.get("containerDefinitions").and_then(|c| c.as_array());
    let Some(containers) = containers else {
        return Err((1, 1, "task definition has no `containerDefinitions` list".into()));
    };
    if !containers.iter().any(|c| c.get("image").and_then(|i| i.as_str()) == Some(IMAGE_PLACEHOLDER)) {
        return Err((
            1,
            1,
            format!(
                "no container in the task definition has `\"image\": \"{IMAGE_PLACEHOLDER}\"`; CodeDeployToECS substitutes the new image there"
            ),
        ));
    }
    let mut clean = serde_json::to_vec_pretty(&value).expect("a JSON value serialises");
    clean.push(b'\n');
    Ok(clean)
}

/// Checks that an AppSpec template is YAML and leaves the task definition to CodeDeploy.
pub(crate) fn check_app_spec(bytes: &[u8]) -> Result<(), (usize, usize, String)> {
    let text = std::str::from_utf8(bytes).map_err(|e| (1, 1, format!("AppSpec is not UTF-8: {e}")))?;
    super::budget::parse_value(text).map_err(|e| {
        let (line, column, message) = match e {
            ValueError::Syntax(e) => super::syntax::explain(text, &e),
            ValueError::Budget { exceeded, line, column } => (line, column, exceeded.to_string()),
            ValueError::DuplicateKey { key, line, column } => (line, column, format!("`{key}` is given twice in the same map")),
        };
        (line, column, format!("invalid YAML in AppSpec: {message}"))
    })?;
    if !text.contains(TASK_DEFINITION_PLACEHOLDER) {
        return Err((
            1,
            1,
            format!("the AppSpec's TaskDefinition must be `{TASK_DEFINITION_PLACEHOLDER}`; CodeDeploy fills in the registered revision"),
        ));
    }
    Ok(())
}

fn strip_json_position(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.find(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// Lists regular files below `dir` as `/`-separated names, skipping `.git`.
fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_name() == ".git" {
            continue;
        }
        let meta = fs::metadata(&path)?;
        if meta.is_dir() {
            walk(base, &path, out)?;
        } else {
            let rel = path.strip_prefix(base).expect("below base");
            out.push(rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/"));
        }
    }
    Ok(())
}

/// Resolves `path` (following links) and insists it stays inside the repository.
fn inside(root_real: &Path, path: &Path) -> Result<PathBuf, String> {
    let real = path.canonicalize().map_err(|_| "does not exist".to_string())?;
    if real.starts_with(root_real) { Ok(real) } else { Err("leads outside the repository (through a symbolic link)".into()) }
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).map(|m| m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}
#[cfg(not(unix))]
fn is_executable(_: &Path) -> bool {
    false
}

/// A path in the repository: relative, no `..`.
pub(crate) fn check_relative_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("must not be empty");
    }
    for component in Path::new(path).components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => {
                return Err("must not contain `..`: paths stay inside the repository");
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err("must be relative to the repository root");
            }
        }
    }
    Ok(())
}

/// `repository@sha256:<64 hex>` or `repository:tag`, naming the pipeline's repository (a full
/// registry URI ending in it is fine).
pub(crate) fn check_pin(pin: &str, repository: &str) -> Result<(), String> {
    let (repo, rest_ok) = match pin.split_once("@sha256:") {
        Some((repo, digest)) => (repo, digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit())),
        None => match pin.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, !tag.is_empty() && tag.len() <= 128),
            _ => return Err("must be <repository>@sha256:<digest> or <repository>:<tag>".into()),
        },
    };
    if !rest_ok {
        return Err("has a malformed digest or tag".into());
    }
    if repo != repository && !repo.ends_with(&format!("/{repository}")) {
        return Err(format!("names repository `{repo}`, not image.repository `{repository}`"));
    }
    Ok(())
}

/// A V1 pipeline runs only SUPERSEDED; QUEUED and PARALLEL need V2 (CodePipeline User Guide,
/// "How pipeline executions work").
pub(crate) fn check_execution_mode(settings: &PipelineSettings) -> Result<(), String> {
    match (settings.pipeline_type, settings.execution_mode) {
        (PipelineType::V1, ExecutionMode::Queued | ExecutionMode::Parallel) => Err(format!(
            "pipeline.executionMode: {} needs pipeline.type V2; a V1 pipeline runs only SUPERSEDED (remove `type: V1` or `executionMode`)",
            settings.execution_mode.as_aws()
        )),
        _ => Ok(()),
    }
}

/// Labels become tags on every resource: AWS allows 50 per resource, and slipway sets three
/// (managed-by, pipeline, deletion-policy).
pub(crate) const MAX_LABELS: usize = 47;

/// A label as AWS takes a tag: key 1–128 and value 0–256 characters of letters, numbers,
/// spaces and `_ . : / = + - @`, neither starting with `aws:` (reserved); and no key in
/// slipway's own `slipway.dev/` namespace.
pub(crate) fn check_label(key: &str, value: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_alphanumeric() || (c.is_whitespace() && !c.is_control()) || "_.:/=+-@".contains(c);
    let length = key.chars().count();
    if length == 0 || length > 128 {
        return Err(format!("a tag key must be 1 to 128 characters, this one has {length}"));
    }
    if value.chars().count() > 256 {
        return Err(format!("a tag value must be at most 256 characters, this one has {}", value.chars().count()));
    }
    for (what, text) in [("key", key), ("value", value)] {
        if text.to_ascii_lowercase().starts_with("aws:") {
            return Err(format!("a tag {what} must not start with `aws:` (reserved by AWS)"));
        }
        if let Some(bad) = text.chars().find(|c| !allowed(*c)) {
            return Err(format!("`{bad}` is not allowed in a tag {what} (letters, numbers, spaces and _ . : / = + - @ are)"));
        }
    }
    if key.starts_with("slipway.dev/") {
        return Err("the `slipway.dev/` keys are slipway's own (ownership and deletion policy)".into());
    }
    Ok(())
}

pub(crate) fn check_pipeline_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LENGTH {
        return Err(format!("must be 1 to {MAX_NAME_LENGTH} characters, this one has {}", name.chars().count()));
    }
    if let Some(bad) = name.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
        return Err(format!("`{bad}` is not allowed: only lower-case letters, digits and `-` are"));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err("must start and end with a letter or digit".into());
    }
    Ok(())
}

pub(crate) fn check_ecr_name(name: &str) -> Result<(), &'static str> {
    if !(MIN_REPOSITORY_LENGTH..=MAX_REPOSITORY_LENGTH).contains(&name.len()) {
        return Err("must be 2 to 256 characters");
    }
    for part in name.split('/') {
        if part.is_empty() {
            return Err("has an empty path segment");
        }
        let bytes = part.as_bytes();
        if !bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')) {
            return Err("only lower-case letters, digits, `.`, `_`, `-` and `/` are allowed");
        }
        let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        if !alnum(&bytes[0]) || !alnum(&bytes[bytes.len() - 1]) {
            return Err("each segment must start and end with a letter or digit");
        }
    }
    Ok(())
}

pub(crate) fn check_bucket_name(name: &str) -> Result<(), &'static str> {
    if !(MIN_BUCKET_LENGTH..=MAX_BUCKET_LENGTH).contains(&name.len()) {
        return Err("must be 3 to 63 characters");
    }
    let bytes = name.as_bytes();
    if !bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-')) {
        return Err("only lower-case letters, digits, `.` and `-` are allowed");
    }
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !alnum(&bytes[0]) || !alnum(&bytes[bytes.len() - 1]) {
        return Err("must start and end with a letter or digit");
    }
    if name.contains("..") {
        return Err("must not contain `..`");
    }
    Ok(())
}

pub(crate) fn is_role_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "iam"
        && parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && parts[5].strip_prefix("role/").is_some_and(|r| !r.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_aws_rules() {
        assert!(check_bucket_name("pj-web.settings").is_ok());
        assert!(check_bucket_name("Pj").is_err());
        assert!(check_ecr_name("team/web-app").is_ok());
        assert!(check_ecr_name("web//app").is_err());
        assert!(check_pipeline_name("web-1").is_ok());
        assert!(check_label("team", "platform").is_ok());
        assert!(check_label("cost center", "").is_ok(), "spaces, and an empty value, are allowed");
        assert!(check_label("équipe", "données").is_ok(), "letters are not only ASCII");
        for (key, value, says) in [
            ("", "x", "1 to 128"),
            (&"k".repeat(129), "x", "1 to 128"),
            ("team", &"v".repeat(257), "at most 256"),
            ("AWS:team", "x", "aws:"),
            ("team", "aws:x", "aws:"),
            ("team#1", "x", "`#`"),
            ("team", "a,b", "`,`"),
            ("slipway.dev/pipeline", "x", "slipway's own"),
        ] {
            let why = check_label(key, value).unwrap_err();
            assert!(why.contains(says), "{key:?}={value:?}: {why}");
        }
        assert!(check_pipeline_name("Web").is_err());
        assert!(is_role_arn("arn:aws:iam::123456789012:role/x"));
        assert!(!is_role_arn("arn:aws:iam::1234:role/x"));
    }

    #[test]
    fn paths_may_not_climb_out_of_the_repository() {
        assert!(check_relative_path("apps/web").is_ok());
        assert!(check_relative_path("../secrets").is_err());
        assert!(check_relative_path("/etc").is_err());
    }

    #[test]
    fn task_definitions_with_comments_are_published_clean() {
        let text =
            b"{\n  // role\n  \"family\": \"web\",\n  \"containerDefinitions\": [{\"name\": \"app\", \"image\": \"<IMAGE1_NAME>\"}]\n}\n";
        let clean = check_task_definition(text).unwrap();
        let clean = String::from_utf8(clean).unwrap();
        assert!(!clean.contains("//"));
        assert!(clean.find("family").unwrap() < clean.find("containerDefinitions").unwrap(), "key order is kept");
    }

    #[test]
    fn malformed_task_definitions_name_line_and_column() {
        let (line, column, message) = check_task_definition(b"{\n  \"family\": \"web\"\n  \"cpu\": 1\n}").unwrap_err();
        assert_eq!((line, column), (3, 3), "{message}");
        assert!(message.starts_with("invalid JSON"));
    }

    #[test]
    fn a_task_definition_without_the_image_placeholder_is_refused() {
        let err = check_task_definition(br#"{"containerDefinitions": [{"image": "nginx"}]}"#).unwrap_err();
        assert!(err.2.contains("<IMAGE1_NAME>"));
    }
}

#[cfg(test)]
mod repository_tests {
    use super::*;
    use crate::manifest::load_repository;

    use crate::manifest::TEST_MANIFEST as MANIFEST;

    fn repo_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, body) in files {
            let path = dir.path().join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, body).unwrap();
        }
        dir
    }

    const TASKDEF: &str = r#"{"containerDefinitions": [{"name": "app", "image": "<IMAGE1_NAME>"}]}"#;
    const APPSPEC: &str = "TaskDefinition: <TASK_DEFINITION>\n";

    #[test]
    fn a_valid_pipeline_carries_its_two_templates() {
        let dir = repo_with(&[
            ("p.yaml", MANIFEST),
            ("app/taskdef.json", TASKDEF),
            ("app/appspec.yaml", APPSPEC),
            ("app/other.txt", "not zipped"),
        ]);
        let loaded = load_repository(dir.path()).unwrap();
        let (valid, errors) = validate(dir.path(), &loaded.pipelines, &Admission::default());
        assert!(errors.is_empty(), "{errors:?}");
        let names: Vec<&str> = valid[0].source_files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["appspec.yaml", "taskdef.json"]);
    }

    #[test]
    fn a_label_aws_would_refuse_as_a_tag_is_reported_at_its_line() {
        let manifest = MANIFEST.replace("  name: web\n", "  name: web\n  labels:\n    team: platform\n    \"aws:owner\": me\n");
        let dir = repo_with(&[("p.yaml", &manifest), ("app/taskdef.json", TASKDEF), ("app/appspec.yaml", APPSPEC)]);
        let loaded = load_repository(dir.path()).unwrap();
        let (valid, errors) = validate(dir.path(), &loaded.pipelines, &Admission::default());
        assert!(valid.is_empty());
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].to_string().starts_with("p.yaml:7:5: label `aws:owner`: a tag key must not start with `aws:`"), "{}", errors[0]);

        let many: String = (0..48).map(|i| format!("    l{i}: v\n")).collect();
        let manifest = MANIFEST.replace("  name: web\n", &format!("  name: web\n  labels:\n{many}"));
        let dir = repo_with(&[("p.yaml", &manifest), ("app/taskdef.json", TASKDEF), ("app/appspec.yaml", APPSPEC)]);
        let loaded = load_repository(dir.path()).unwrap();
        assert!(loaded.pipelines.is_empty(), "the schema's maxProperties refuses it while loading");
        assert_eq!(loaded.errors[0].to_string(), "p.yaml:5:3: metadata.labels: 48 entries, at most 47 are allowed");
    }

    #[test]
    fn a_v1_pipeline_with_a_v2_execution_mode_is_refused_at_the_mode() {
        for mode in ["QUEUED", "PARALLEL"] {
            let manifest = MANIFEST.replace(
                "    roleArn: arn:aws:iam::123456789012:role/pipeline\n",
                &format!("    roleArn: arn:aws:iam::123456789012:role/pipeline\n    type: V1\n    executionMode: {mode}\n"),
            );
            let dir = repo_with(&[("p.yaml", &manifest), ("app/taskdef.json", TASKDEF), ("app/appspec.yaml", APPSPEC)]);
            let loaded = load_repository(dir.path()).unwrap();
            let (valid, errors) = validate(dir.path(), &loaded.pipelines, &Admission::default());
            assert!(valid.is_empty(), "{mode}");
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert_eq!(
                errors[0].to_string(),
                format!(
                    "p.yaml:20:5: pipeline.executionMode: {mode} needs pipeline.type V2; a V1 pipeline runs only SUPERSEDED (remove `type: V1` or `executionMode`)"
                )
            );
        }
        for (setting, mode) in [("type: V1", "SUPERSEDED"), ("type: V2", "QUEUED"), ("type: V2", "PARALLEL")] {
            let manifest = MANIFEST.replace(
                "    roleArn: arn:aws:iam::123456789012:role/pipeline\n",
                &format!("    roleArn: arn:aws:iam::123456789012:role/pipeline\n    {setting}\n    executionMode: {mode}\n"),
            );
            let dir = repo_with(&[("p.yaml", &manifest), ("app/taskdef.json", TASKDEF), ("app/appspec.yaml", APPSPEC)]);
            let loaded = load_repository(dir.path()).unwrap();
            let (valid, errors) = validate(dir.path(), &loaded.pipelines, &Admission::default());
            assert!(errors.is_empty() && valid.len() == 1, "{setting} with {mode}: {errors:?}");
        }
    }

    #[test]
    fn missing_templates_are_reported_at_the_field_that_names_them() {
        let dir = repo_with(&[("p.yaml", MANIFEST), ("app/taskdef.json", TASKDEF)]);
        let loaded = load_repository(dir.path()).unwrap();
        let (valid, errors) = validate(dir.path(), &loaded.pipelines, &Admission::default());
        assert!(valid.is_empty());
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].to_string(), "p.yaml:11:3: `appspec.yaml` not found in source.path `app`");
    }

    #[cfg(unix)]
    #[test]
    fn a_symbolic_link_out_of_the_repository_is_refused() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret.json"), TASKDEF).unwrap();
        let dir = repo_with(&[("p.yaml", MANIFEST), ("app/appspec.yaml", APPSPEC)]);
        std::os::unix::fs::symlink(outside.path().join("secret.json"), dir.path().join("app/taskdef.json")).unwrap();
        let loaded = load_repository(dir.path()).unwrap();
        let (valid, errors) = validate(dir.path(), &loaded.pipelines, &Admission::default());
        assert!(valid.is_empty());
        assert!(errors[0].message.contains("leads outside the repository"), "{errors:?}");
    }

    #[test]
    fn two_pipelines_may_not_claim_the_same_bucket() {
        let second = MANIFEST.replace("name: web", "name: api").replace("repository: demo-web", "repository: demo-api");
        let dir =
            repo_with(&[("p.yaml", &format!("{MANIFEST}---\n{second}")), ("app/taskdef.json", TASKDEF), ("app/appspec.yaml", APPSPEC)]);
        let loaded = load_repository(dir.path()).unwrap();
        let (valid, errors) = validate(dir.path(), &loaded.pipelines, &Admission::default());
        assert_eq!(valid.len(), 1);
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].to_string().starts_with("p.yaml:31:5: S3 bucket `demo-web-settings` is already used by pipeline `web`"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn pipelines_sharing_a_trail_must_agree_on_its_log_bucket_and_the_one_that_does_not_is_refused_at_the_field() {
        let via = |logs: &str| {
            format!(
                "    ecrPush: false\n    roleArn: arn:aws:iam::123456789012:role/events\n    s3: {{via: cloudtrail, logBucket: {logs}}}\n"
            )
        };
        let web = MANIFEST.replace("    ecrPush: false\n", &via("trail-logs"));
        let api = web.replace("name: web", "name: api").replace("demo-web", "demo-api");
        let other = api.replace("name: api", "name: zed").replace("demo-api", "demo-zed").replace("trail-logs", "other-logs");
        let own = other
            .replace("name: zed", "name: own")
            .replace("demo-zed", "demo-own")
            .replace("via: cloudtrail", "via: cloudtrail, trail: own");
        let dir =
            repo_with(&[("p.yaml", &[web, api, other, own].join("---\n")), ("app/taskdef.json", TASKDEF), ("app/appspec.yaml", APPSPEC)]);
        let loaded = load_repository(dir.path()).unwrap();
        let (valid, errors) = validate(dir.path(), &loaded.pipelines, &Admission::default());
        assert_eq!(valid.iter().map(ValidPipeline::name).collect::<Vec<_>>(), ["web", "api", "own"], "{errors:?}");
        assert_eq!(errors.len(), 1);
        let text = errors[0].to_string();
        assert!(
            text.contains(
                "triggers.s3.logBucket is `other-logs` but pipeline `web` (p.yaml) has `trail-logs` for the same trail `slipway-s3-writes`"
            ),
            "{text}"
        );
        assert_eq!(errors[0].pipeline.as_deref(), Some("zed"));
    }

    #[test]
    fn the_events_role_is_needed_only_when_rules_start_the_pipeline() {
        let dir = repo_with(&[
            ("p.yaml", &MANIFEST.replace("    ecrPush: false\n", "    ecrPush: true\n")),
            ("app/taskdef.json", TASKDEF),
            ("app/appspec.yaml", APPSPEC),
        ]);
        let loaded = load_repository(dir.path()).unwrap();
        let (_, errors) = validate(dir.path(), &loaded.pipelines, &Admission::default());
        assert!(errors.len() == 1 && errors[0].message.contains("triggers.roleArn is required"), "{errors:?}");
        let queue = Admission { triggers: TriggerRoute::Queue, ..Default::default() };
        let (valid, errors) = validate(dir.path(), &loaded.pipelines, &queue);
        assert!(errors.is_empty() && valid.len() == 1, "{errors:?}");
    }
}

#[cfg(test)]
mod strategy_tests {
    //! The deploy strategies: what each needs, what belongs to another, and AWS's ranges, each
    //! reported at its field.
    use super::*;
    use crate::manifest::TEST_MANIFEST as MANIFEST;
    use crate::manifest::load_repository;

    const ECS: &str = "  deploy:
    strategy: ecs-linear
    cluster: demo
    service: web
    targetGroups: [blue, green]
    prodListenerRule: arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener-rule/app/alb/1/2/3
    infrastructureRoleArn: arn:aws:iam::123456789012:role/ecs-infra
    linear: {stepPercent: 20, stepBakeTimeMinutes: 3}
    hooks:
      - {type: PAUSE, stages: [POST_TEST_TRAFFIC_SHIFT]}
";
    const CODEDEPLOY: &str = "  deploy:
    serviceRoleArn: arn:aws:iam::123456789012:role/deploy
    cluster: demo
    service: web
    targetGroups: [blue, green]
    prodListener: {loadBalancer: alb, port: 80}
";

    /// Errors of the manifest with `deploy` replaced, as (line, message); the repository has no
    /// AppSpec, which an ECS strategy does not read.
    fn errors(deploy: &str) -> Vec<(usize, String)> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("app")).unwrap();
        std::fs::write(dir.path().join("app/taskdef.json"), r#"{"containerDefinitions": [{"name": "app", "image": "<IMAGE1_NAME>"}]}"#)
            .unwrap();
        std::fs::write(dir.path().join("p.yaml"), MANIFEST.replace(CODEDEPLOY, deploy)).unwrap();
        let loaded = load_repository(dir.path()).unwrap();
        let (_, errors) = validate(dir.path(), &loaded.pipelines, &Admission::default());
        // The schema's ranges are checked as the file loads, the rest by validate.
        loaded.errors.into_iter().chain(errors).map(|e| (e.line, e.message)).collect()
    }

    /// The 1-based line of the first line of the manifest (with `deploy` replaced) containing `text`.
    fn line_of(deploy: &str, text: &str) -> usize {
        MANIFEST.replace(CODEDEPLOY, deploy).lines().position(|l| l.contains(text)).unwrap() + 1
    }

    #[test]
    fn an_ecs_strategy_needs_its_rule_and_role_and_no_appspec() {
        assert!(MANIFEST.contains(CODEDEPLOY));
        assert_eq!(errors(ECS), []);
        let found = errors(&ECS.replace("    infrastructureRoleArn: arn:aws:iam::123456789012:role/ecs-infra\n", ""));
        assert!(found.len() == 1 && found[0].1.contains("deploy.infrastructureRoleArn is required with `ecs-linear`"), "{found:?}");
        // The CodeDeploy strategy still needs its AppSpec (none in this repository) and its role.
        let found = errors(&CODEDEPLOY.replace("    serviceRoleArn: arn:aws:iam::123456789012:role/deploy\n", ""));
        assert!(found.len() == 1 && found[0].1.contains("deploy.serviceRoleArn is required with strategy `codedeploy`"), "{found:?}");
        let found = errors(CODEDEPLOY);
        assert!(found.len() == 1 && found[0].1.contains("appspec.yaml") && found[0].1.contains("not found"), "{found:?}");
    }

    #[test]
    fn settings_of_another_strategy_are_refused_at_their_line() {
        let deploy = format!("{ECS}    prodListener: {{loadBalancer: alb, port: 80}}\n    canary: {{percent: 5}}\n");
        let found = errors(&deploy);
        let at = |field: &str| found.iter().find(|(_, m)| m.starts_with(&format!("deploy.{field} "))).map(|(line, _)| *line);
        assert_eq!(at("prodListener"), Some(line_of(&deploy, "prodListener:")), "{found:?}");
        assert_eq!(at("canary"), Some(line_of(&deploy, "canary:")), "{found:?}");
        assert_eq!(found.len(), 2, "{found:?}");
        let codedeploy_with_bake = errors(&format!("{CODEDEPLOY}    bakeTimeMinutes: 5\n"));
        assert!(codedeploy_with_bake[0].1.contains("belongs to the ECS strategies"), "{codedeploy_with_bake:?}");
        // A CodeDeploy setting with a default is refused too when written: it would do nothing.
        let ecs_with_wait = errors(&format!("{ECS}    terminationWaitMinutes: 5\n"));
        assert!(
            ecs_with_wait.len() == 1 && ecs_with_wait[0].1.starts_with("deploy.terminationWaitMinutes belongs to strategy `codedeploy`"),
            "{ecs_with_wait:?}"
        );
    }

    #[test]
    fn ranges_and_hook_stages_are_awss() {
        let cases = [
            ("linear: {stepPercent: 20, stepBakeTimeMinutes: 3}", "linear: {stepPercent: 2.5}", "from 3.0 to 100.0"),
            ("linear: {stepPercent: 20, stepBakeTimeMinutes: 3}", "linear: {stepPercent: 10.05}", "multiple of 0.1"),
            (
                "linear: {stepPercent: 20, stepBakeTimeMinutes: 3}",
                "linear: {stepBakeTimeMinutes: 1441}",
                "stepBakeTimeMinutes: must be between 0 and 1440",
            ),
            (
                "stages: [POST_TEST_TRAFFIC_SHIFT]}",
                "stages: [PRODUCTION_TRAFFIC_SHIFT]}",
                "a PAUSE hook cannot run at PRODUCTION_TRAFFIC_SHIFT",
            ),
            (
                "{type: PAUSE, stages: [POST_TEST_TRAFFIC_SHIFT]}",
                "{type: AWS_LAMBDA, stages: [POST_SCALE_UP], roleArn: 'arn:aws:iam::123456789012:role/hook'}",
                "needs the function's ARN",
            ),
            ("{type: PAUSE, stages: [POST_TEST_TRAFFIC_SHIFT]}", "{type: PAUSE, stages: [PRE_SCALE_UP], timeoutMinutes: 20161}", "20160"),
            (
                "prodListenerRule: arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener-rule/app/alb/1/2/3",
                "prodListenerRule: arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/alb/1/2",
                "is not a listener rule ARN",
            ),
        ];
        for (from, to, expected) in cases {
            let found = errors(&ECS.replace(from, to));
            assert!(found.len() == 1 && found[0].1.contains(expected), "{to}: {found:?}");
        }
        let found = errors(&format!("{ECS}    bakeTimeMinutes: 1441\n"));
        assert!(found.len() == 1 && found[0].1.contains("bakeTimeMinutes") && found[0].1.contains("1440"), "{found:?}");
    }
}
