//! The deployment assets checked against the code they deploy, so the two cannot drift apart:
//! the Dockerfile (its build command, run here for real), the ECS task and service definitions,
//! the IAM policy (against every AWS call in src/ and crates/), the plain Kubernetes manifests
//! and the Helm chart (linted and rendered with a real helm v4 from `scripts/install-helm`).
//!
//! The release build takes several minutes on a small machine; it reuses the shared target
//! directory, so later runs only rebuild what changed.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use serde::Deserialize;
use serde_json::Value as Json;
use serde_yaml_ng::Value as Yaml;

use common::rust_files;

/// The one build command the Dockerfile runs, and this test with it.
const BUILD_COMMAND: &str = "cargo build --release --locked --bin slipway";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("failed to read {rel}: {e}"))
}

fn text(out: &Output) -> String {
    format!("status {}\nstdout:\n{}\nstderr:\n{}", out.status, String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

// ---- what the binary reads -------------------------------------------------------------------

/// `env = "SLIPWAY_…"` of every `slipway run` flag (src/cli/run.rs, and `QuotaArgs` in
/// src/cli/mod.rs, which it flattens) and of the global flags (`global = true` in src/cli/mod.rs:
/// the log settings), which `slipway run` reads too.
fn run_env_vars() -> BTreeSet<String> {
    let mut vars = env_attrs(&read("src/cli/run.rs"), |_| true);
    let cli = read("src/cli/mod.rs");
    vars.extend(env_attrs(&cli, |attr| attr.contains("global = true")));
    assert!(read("src/cli/run.rs").contains("pub quotas: super::QuotaArgs"), "slipway run no longer flattens QuotaArgs");
    let quota_args = &cli[cli.find("pub struct QuotaArgs").expect("QuotaArgs")..];
    vars.extend(env_attrs(&quota_args[..quota_args.find("\n}\n").expect("its end")], |_| true));
    assert!(vars.contains("SLIPWAY_REPO") && vars.contains("SLIPWAY_LOG"), "could not read the flags: {vars:?}");
    assert!(vars.contains("SLIPWAY_TRIGGER_ROUTE") && vars.contains("SLIPWAY_QUOTAS"), "could not read QuotaArgs: {vars:?}");
    vars
}

/// The variables whose values are secrets (`hide_env_values = true`): never given as plain values.
/// `SLIPWAY_REPO` is hidden from `--help` too, because a URL *may* carry a password; the assets
/// give it without one (`repository_urls_in_the_assets_carry_no_password`), credentials apart.
fn secret_env_vars() -> BTreeSet<String> {
    let mut vars = env_attrs(&read("src/cli/run.rs"), |attr| attr.contains("hide_env_values = true"));
    assert!(vars.contains("SLIPWAY_GIT_TOKEN") && vars.remove("SLIPWAY_REPO"), "could not read the secret flags: {vars:?}");
    vars
}

#[test]
fn repository_urls_in_the_assets_carry_no_password() {
    for file in [
        "manifests/k8s/deployment.yaml",
        "manifests/ecs/task-definition.json",
        "manifests/ecs/task-definition-ssh.json",
        "charts/slipway/values.yaml",
    ] {
        let text = read(file);
        for url in text.split(|c: char| c.is_whitespace() || c == '"').filter(|w| w.starts_with("https://") || w.starts_with("http://")) {
            let authority = url.split("://").nth(1).unwrap().split('/').next().unwrap();
            assert!(!authority.contains('@'), "{file}: {url} carries credentials; give them by SLIPWAY_GIT_TOKEN from a secret store");
        }
    }
}

/// The `env = "…"` values of the `#[arg(…)]` attributes in `source` that `keep` accepts.
fn env_attrs(source: &str, keep: impl Fn(&str) -> bool) -> BTreeSet<String> {
    source
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("#[arg("))
        .filter(|attr| keep(attr))
        .filter_map(|attr| {
            let rest = &attr[attr.find("env = \"")? + "env = \"".len()..];
            Some(rest[..rest.find('"')?].to_string())
        })
        .collect()
}

fn assert_known_env(names: impl IntoIterator<Item = String>, what: &str) {
    let known = run_env_vars();
    let unknown: Vec<String> = names.into_iter().filter(|n| n.starts_with("SLIPWAY_") && !known.contains(n)).collect();
    assert!(unknown.is_empty(), "{what} sets {unknown:?}, which `slipway run` does not read (known: {known:?})");
}

// ---- Dockerfile ------------------------------------------------------------------------------

/// Dockerfile instructions: continuation lines joined, comments dropped.
fn dockerfile() -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in read("Dockerfile").lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
        } else {
            current.push_str(trimmed);
            out.push(std::mem::take(&mut current));
        }
    }
    out
}

fn words(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The `cargo` command of the Dockerfile: the only one, as its words.
fn dockerfile_build_command() -> String {
    let mut commands = Vec::new();
    for instruction in dockerfile() {
        let Some(run) = instruction.strip_prefix("RUN ") else { continue };
        // `RUN --mount=… --mount=… cmd && cmd`: flags first.
        let shell: Vec<&str> = run.split_whitespace().skip_while(|w| w.starts_with("--")).collect();
        for segment in shell.join(" ").split("&&") {
            if segment.split_whitespace().any(|w| w == "cargo") {
                commands.push(words(segment));
            }
        }
    }
    assert_eq!(commands.len(), 1, "the Dockerfile should run cargo exactly once, found {commands:?}");
    commands.remove(0)
}

#[test]
fn dockerfile_builds_the_release_binary_with_exactly_the_command_this_test_runs() {
    assert_eq!(dockerfile_build_command(), BUILD_COMMAND);
}

/// The final stage: the instructions after the last FROM.
fn final_stage() -> Vec<String> {
    let all = dockerfile();
    let last_from = all.iter().rposition(|i| i.starts_with("FROM ")).expect("a FROM");
    all[last_from..].to_vec()
}

#[test]
fn the_image_runs_slipway_run_as_a_non_root_user_configured_by_environment() {
    let stage = final_stage();
    let find = |prefix: &str| stage.iter().filter(|i| i.starts_with(prefix)).cloned().collect::<Vec<_>>();
    assert_eq!(find("ENTRYPOINT "), vec![r#"ENTRYPOINT ["slipway", "run"]"#.to_string()]);
    assert_eq!(find("USER "), vec!["USER 10001:10001".to_string()]);
    assert_eq!(find("EXPOSE "), vec!["EXPOSE 8080".to_string()]);
    assert!(dockerfile().iter().all(|i| !i.starts_with("HEALTHCHECK")), "orchestrators probe /healthz; no HEALTHCHECK");
    let installs = find("RUN ").join(" ");
    for package in ["ca-certificates", "libssl3"] {
        assert!(installs.split_whitespace().any(|w| w == package), "the final image must install {package}: {installs}");
    }
    for unwanted in ["openssh-client", "git", "curl"] {
        assert!(!installs.split_whitespace().any(|w| w == unwanted), "the final image does not need {unwanted}");
    }

    let env = dockerfile_env();
    assert_eq!(env.get("SLIPWAY_WORKDIR").map(String::as_str), Some("/var/lib/slipway"));
    assert_eq!(env.get("SLIPWAY_LISTEN").map(String::as_str), Some("0.0.0.0:8080"));
    assert_eq!(env.get("SLIPWAY_LOG").map(String::as_str), Some("info"));
    assert_eq!(env.get("SLIPWAY_LOG_FORMAT").map(String::as_str), Some("json"));
    assert_known_env(env.keys().cloned(), "the Dockerfile");
    // The work directory is a VOLUME owned by the user: ECS copies that ownership into the
    // task's bind mount (otherwise root-owned 0755, unwritable for uid 10001).
    assert!(dockerfile_volumes().contains("/var/lib/slipway"), "{:?}", dockerfile_volumes());
    assert!(installs.contains("-o 10001 -g 10001") && installs.contains("/var/lib/slipway"), "{installs}");
}

/// `ENV K=V K=V` of the final stage.
fn dockerfile_env() -> BTreeMap<String, String> {
    final_stage()
        .iter()
        .filter_map(|i| i.strip_prefix("ENV "))
        .flat_map(|kvs| kvs.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect()
}

fn dockerfile_volumes() -> BTreeSet<String> {
    final_stage()
        .iter()
        .filter_map(|i| i.strip_prefix("VOLUME "))
        .flat_map(|v| serde_json::from_str::<Vec<String>>(v).expect("VOLUME in JSON form"))
        .collect()
}

/// `COPY src… dest` of the build stage (the first), as (sources, destination); no `--from`.
fn build_stage_copies() -> (String, Vec<(Vec<String>, String)>) {
    let mut workdir = "/".to_string();
    let mut copies = Vec::new();
    for instruction in dockerfile().iter().skip(1).take_while(|i| !i.starts_with("FROM ")) {
        if let Some(dir) = instruction.strip_prefix("WORKDIR ") {
            workdir = dir.trim().to_string();
        } else if let Some(args) = instruction.strip_prefix("COPY ") {
            let mut parts: Vec<String> = args.split_whitespace().map(str::to_owned).collect();
            assert!(!parts.iter().any(|p| p.starts_with("--")), "unexpected COPY flags in the build stage: {instruction}");
            let dest = parts.pop().expect("a destination");
            copies.push((parts, dest));
        }
    }
    (workdir, copies)
}

/// Whether `.dockerignore` lets `path` into the build context (last matching pattern wins).
fn in_build_context(path: &str) -> bool {
    let mut included = true;
    for line in read(".dockerignore").lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (negated, pattern) = match line.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, line),
        };
        let pattern = pattern.trim_end_matches('/');
        if pattern == "*" || pattern == path || path.starts_with(&format!("{pattern}/")) {
            included = negated;
        }
    }
    included
}

/// Makes `dest` hold exactly what `src` holds, rewriting only files whose bytes differ (so
/// cargo's fingerprints, which look at modification times, stay valid between runs).
fn sync(src: &Path, dest: &Path) {
    if src.is_dir() {
        std::fs::create_dir_all(dest).unwrap();
        let mut wanted = BTreeSet::new();
        for entry in std::fs::read_dir(src).unwrap() {
            let name = entry.unwrap().file_name();
            sync(&src.join(&name), &dest.join(&name));
            wanted.insert(name);
        }
        for entry in std::fs::read_dir(dest).unwrap() {
            let entry = entry.unwrap();
            if !wanted.contains(&entry.file_name()) {
                let path = entry.path();
                if path.is_dir() { std::fs::remove_dir_all(path).unwrap() } else { std::fs::remove_file(path).unwrap() }
            }
        }
    } else {
        let bytes = std::fs::read(src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        if std::fs::read(dest).ok().as_deref() != Some(&bytes[..]) {
            std::fs::write(dest, bytes).unwrap();
        }
    }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"))
}

#[test]
fn the_release_binary_built_as_the_dockerfile_builds_it_reports_its_version_and_validates_the_examples() {
    // The build context as Docker sees it: only what the build stage COPYs, if .dockerignore
    // lets it through, laid out under the stage's WORKDIR. Building from that copy proves the
    // image build needs nothing else from the repository.
    let (workdir, copies) = build_stage_copies();
    assert_eq!(workdir, "/src");
    // Outside the repository (cargo would look for a workspace above it), at a path fixed per
    // checkout so that cargo's fingerprints stay valid and a second run rebuilds nothing.
    let context = std::env::temp_dir().join(format!("slipway-docker-build-context-{:016x}", {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        root().hash(&mut h);
        h.finish()
    }));
    let mut copied = BTreeSet::new();
    for (sources, dest) in &copies {
        for source in sources {
            assert!(in_build_context(source), ".dockerignore keeps `{source}` out of the build context, but the Dockerfile copies it");
            let into = if dest.ends_with('/') || sources.len() > 1 || dest == "." || dest == "./" {
                Path::new(dest).join(Path::new(source).file_name().unwrap())
            } else {
                PathBuf::from(dest)
            };
            let into = into.strip_prefix("./").unwrap_or(&into).to_path_buf();
            sync(&root().join(source), &context.join(&into));
            copied.insert(into);
        }
    }
    for stale in std::fs::read_dir(&context).unwrap().map(|e| PathBuf::from(e.unwrap().file_name())) {
        if !copied.contains(&stale) {
            let path = context.join(&stale);
            if path.is_dir() { std::fs::remove_dir_all(path).unwrap() } else { std::fs::remove_file(path).unwrap() }
        }
    }

    let command = dockerfile_build_command();
    assert_eq!(command, BUILD_COMMAND);
    let mut args = command.split_whitespace();
    assert_eq!(args.next(), Some("cargo"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let started = Instant::now();
    let build = Command::new(cargo).args(args).current_dir(&context).env("CARGO_TARGET_DIR", target_dir()).output().expect("cargo runs");
    eprintln!("`{BUILD_COMMAND}` took {:.0?}", started.elapsed());
    assert!(build.status.success(), "the image's build command failed:\n{}", text(&build));

    let binary = target_dir().join("release/slipway");
    let version = Command::new(&binary).arg("--version").output().unwrap();
    assert!(version.status.success(), "{}", text(&version));
    assert_eq!(String::from_utf8_lossy(&version.stdout).trim(), format!("slipway {}", env!("CARGO_PKG_VERSION")));

    let validate =
        Command::new(&binary).args(["validate", "--repo", "examples"]).current_dir(root()).env_remove("SLIPWAY_REPO").output().unwrap();
    assert!(validate.status.success(), "{}", text(&validate));
    assert!(String::from_utf8_lossy(&validate.stdout).contains("2 pipeline(s) valid"), "{}", text(&validate));

    assert_runtime_libraries_are_in_the_final_image(&binary);
}

/// Every shared library the binary loads is in debian:bookworm-slim or a package the final
/// stage installs (libssl3 for git2's HTTPS and SSH back ends).
#[cfg(target_os = "linux")]
fn assert_runtime_libraries_are_in_the_final_image(binary: &Path) {
    const BASE: &[&str] =
        &["linux-vdso.so.1", "libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0", "librt.so.1", "libgcc_s.so.1", "libz.so.1"];
    const BY_PACKAGE: &[(&str, &[&str])] = &[("libssl3", &["libssl.so.3", "libcrypto.so.3"])];
    let ldd = Command::new("ldd").arg(binary).output().expect("ldd runs");
    assert!(ldd.status.success(), "{}", text(&ldd));
    let installs = final_stage().iter().filter(|i| i.starts_with("RUN ")).cloned().collect::<Vec<_>>().join(" ");
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let lib = line.split_whitespace().next().unwrap_or_default();
        if lib.is_empty() || lib.contains("ld-linux") || BASE.contains(&lib) {
            continue;
        }
        let package = BY_PACKAGE.iter().find(|(_, libs)| libs.contains(&lib)).map(|(p, _)| *p);
        let Some(package) = package else {
            panic!("the binary needs {lib}, which the final image is not known to provide:\n{}", text(&ldd))
        };
        assert!(installs.split_whitespace().any(|w| w == package), "the binary needs {lib}: the final stage must install {package}");
    }
}

#[cfg(not(target_os = "linux"))]
fn assert_runtime_libraries_are_in_the_final_image(_: &Path) {}

// ---- IAM policy ------------------------------------------------------------------------------

/// What each `aws_err("service", "Operation")` call needs from IAM. `iam:PassRole@svc` means the
/// call passes a role to that service principal. Tag-on-create needs the tagging action too.
const IAM_ACTIONS: &[(&str, &str, &[&str])] = &[
    ("sts", "GetCallerIdentity", &["sts:GetCallerIdentity"]),
    ("ecs", "DescribeServices", &["ecs:DescribeServices"]),
    ("ecs", "DescribeTaskDefinition", &["ecs:DescribeTaskDefinition"]),
    // Registers with tags (tag-on-create) and hands the task definition's roles to ECS tasks.
    ("ecs", "RegisterTaskDefinition", &["ecs:RegisterTaskDefinition", "ecs:TagResource", "iam:PassRole@ecs-tasks.amazonaws.com"]),
    // ECS strategies: the service's settings in one UpdateService (which hands the infrastructure
    // role and Lambda hooks' roles to ECS), and its service deployments: watched, stopped, continued.
    ("ecs", "UpdateService", &["ecs:UpdateService", "iam:PassRole@ecs.amazonaws.com"]),
    ("ecs", "ListServiceDeployments", &["ecs:ListServiceDeployments"]),
    ("ecs", "DescribeServiceDeployments", &["ecs:DescribeServiceDeployments"]),
    ("ecs", "DescribeServiceRevisions", &["ecs:DescribeServiceRevisions"]),
    ("ecs", "StopServiceDeployment", &["ecs:StopServiceDeployment"]),
    ("ecs", "ContinueServiceDeployment", &["ecs:ContinueServiceDeployment"]),
    ("elasticloadbalancing", "DescribeTargetGroups", &["elasticloadbalancing:DescribeTargetGroups"]),
    ("elasticloadbalancing", "DescribeListeners", &["elasticloadbalancing:DescribeListeners"]),
    ("elasticloadbalancing", "DescribeLoadBalancers", &["elasticloadbalancing:DescribeLoadBalancers"]),
    ("elasticloadbalancing", "DescribeRules", &["elasticloadbalancing:DescribeRules"]),
    ("ecr", "DescribeRepositories", &["ecr:DescribeRepositories"]),
    ("ecr", "GetLifecyclePolicy", &["ecr:GetLifecyclePolicy"]),
    ("ecr", "ListTagsForResource", &["ecr:ListTagsForResource"]),
    ("ecr", "CreateRepository", &["ecr:CreateRepository", "ecr:TagResource"]),
    ("ecr", "PutLifecyclePolicy", &["ecr:PutLifecyclePolicy"]),
    ("ecr", "PutImageTagMutability", &["ecr:PutImageTagMutability"]),
    ("ecr", "PutImageScanningConfiguration", &["ecr:PutImageScanningConfiguration"]),
    ("ecr", "TagResource", &["ecr:TagResource"]),
    ("ecr", "DeleteRepository", &["ecr:DeleteRepository"]),
    ("ecr", "DescribeImages", &["ecr:DescribeImages"]),
    ("ecr", "BatchGetImage", &["ecr:BatchGetImage"]),
    ("ecr", "PutImage", &["ecr:PutImage"]),
    ("resourcegroupstaggingapi", "GetResources", &["tag:GetResources"]),
    ("s3", "HeadBucket", &["s3:ListBucket"]),
    // Tags travel in the create call (no moment without ownership tags); AWS asks for TagResource.
    ("s3", "CreateBucket", &["s3:CreateBucket", "s3:TagResource"]),
    ("s3", "DeleteBucket", &["s3:DeleteBucket"]),
    ("s3", "GetBucketVersioning", &["s3:GetBucketVersioning"]),
    ("s3", "GetBucketNotificationConfiguration", &["s3:GetBucketNotification"]),
    ("s3", "PutBucketNotificationConfiguration", &["s3:PutBucketNotification"]),
    ("s3", "PutBucketVersioning", &["s3:PutBucketVersioning"]),
    ("s3", "GetPublicAccessBlock", &["s3:GetBucketPublicAccessBlock"]),
    ("s3", "PutPublicAccessBlock", &["s3:PutBucketPublicAccessBlock"]),
    ("s3", "GetBucketEncryption", &["s3:GetEncryptionConfiguration"]),
    ("s3", "PutBucketEncryption", &["s3:PutEncryptionConfiguration"]),
    ("s3", "GetBucketTagging", &["s3:GetBucketTagging"]),
    ("s3", "PutBucketTagging", &["s3:PutBucketTagging"]),
    ("s3", "ListObjectVersions", &["s3:ListBucketVersions"]),
    ("s3", "DeleteObjects", &["s3:DeleteObject", "s3:DeleteObjectVersion"]),
    ("s3", "HeadObject", &["s3:GetObject"]),
    ("s3", "GetObject", &["s3:GetObject"]),
    ("s3", "ListObjectsV2", &["s3:ListBucket"]),
    ("s3", "PutObject", &["s3:PutObject"]),
    ("s3", "DeleteObject", &["s3:DeleteObject"]),
    ("cloudtrail", "GetTrail", &["cloudtrail:GetTrail"]),
    ("cloudtrail", "GetTrailStatus", &["cloudtrail:GetTrailStatus"]),
    ("cloudtrail", "GetEventSelectors", &["cloudtrail:GetEventSelectors"]),
    ("cloudtrail", "ListTags", &["cloudtrail:ListTags"]),
    ("cloudtrail", "CreateTrail", &["cloudtrail:CreateTrail", "cloudtrail:AddTags"]),
    ("cloudtrail", "UpdateTrail", &["cloudtrail:UpdateTrail"]),
    ("cloudtrail", "PutEventSelectors", &["cloudtrail:PutEventSelectors"]),
    ("cloudtrail", "StartLogging", &["cloudtrail:StartLogging"]),
    ("cloudtrail", "StopLogging", &["cloudtrail:StopLogging"]),
    ("cloudtrail", "AddTags", &["cloudtrail:AddTags"]),
    ("cloudtrail", "DeleteTrail", &["cloudtrail:DeleteTrail"]),
    ("events", "DescribeRule", &["events:DescribeRule"]),
    ("events", "ListRules", &["events:ListRules"]),
    ("events", "ListTargetsByRule", &["events:ListTargetsByRule"]),
    ("events", "ListTagsForResource", &["events:ListTagsForResource"]),
    ("events", "PutRule", &["events:PutRule", "events:TagResource"]),
    ("events", "PutTargets", &["events:PutTargets", "iam:PassRole@events.amazonaws.com"]),
    ("events", "RemoveTargets", &["events:RemoveTargets"]),
    ("events", "TagResource", &["events:TagResource"]),
    ("events", "DeleteRule", &["events:DeleteRule"]),
    // The change feed (--change-events): tags travel in CreateQueue; a batch delete is DeleteMessage.
    ("sqs", "GetQueueUrl", &["sqs:GetQueueUrl"]),
    ("sqs", "CreateQueue", &["sqs:CreateQueue", "sqs:TagQueue"]),
    ("sqs", "ListQueueTags", &["sqs:ListQueueTags"]),
    ("sqs", "GetQueueAttributes", &["sqs:GetQueueAttributes"]),
    ("sqs", "SetQueueAttributes", &["sqs:SetQueueAttributes"]),
    ("sqs", "ReceiveMessage", &["sqs:ReceiveMessage"]),
    ("sqs", "DeleteMessageBatch", &["sqs:DeleteMessage"]),
    // The lease table of several replicas (--ha-table).
    ("dynamodb", "DescribeTable", &["dynamodb:DescribeTable"]),
    ("dynamodb", "CreateTable", &["dynamodb:CreateTable"]),
    ("dynamodb", "Scan", &["dynamodb:Scan"]),
    ("dynamodb", "PutItem", &["dynamodb:PutItem"]),
    ("dynamodb", "UpdateItem", &["dynamodb:UpdateItem"]),
    ("dynamodb", "DeleteItem", &["dynamodb:DeleteItem"]),
    ("codebuild", "BatchGetProjects", &["codebuild:BatchGetProjects"]),
    ("codebuild", "CreateProject", &["codebuild:CreateProject", "iam:PassRole@codebuild.amazonaws.com"]),
    ("codebuild", "UpdateProject", &["codebuild:UpdateProject", "iam:PassRole@codebuild.amazonaws.com"]),
    ("codebuild", "DeleteProject", &["codebuild:DeleteProject"]),
    ("codedeploy", "GetApplication", &["codedeploy:GetApplication"]),
    ("codedeploy", "BatchGetApplications", &["codedeploy:BatchGetApplications"]),
    ("codedeploy", "CreateApplication", &["codedeploy:CreateApplication", "codedeploy:TagResource"]),
    ("codedeploy", "DeleteApplication", &["codedeploy:DeleteApplication"]),
    ("codedeploy", "GetDeploymentGroup", &["codedeploy:GetDeploymentGroup"]),
    (
        "codedeploy",
        "CreateDeploymentGroup",
        &["codedeploy:CreateDeploymentGroup", "codedeploy:TagResource", "iam:PassRole@codedeploy.amazonaws.com"],
    ),
    ("codedeploy", "UpdateDeploymentGroup", &["codedeploy:UpdateDeploymentGroup", "iam:PassRole@codedeploy.amazonaws.com"]),
    ("codedeploy", "DeleteDeploymentGroup", &["codedeploy:DeleteDeploymentGroup"]),
    ("codedeploy", "ListTagsForResource", &["codedeploy:ListTagsForResource"]),
    ("codedeploy", "TagResource", &["codedeploy:TagResource"]),
    ("codedeploy", "ListDeployments", &["codedeploy:ListDeployments"]),
    ("codedeploy", "BatchGetDeployments", &["codedeploy:BatchGetDeployments"]),
    // CodeDeploy also authorises the deployment configuration and registers the revision.
    (
        "codedeploy",
        "CreateDeployment",
        &["codedeploy:CreateDeployment", "codedeploy:GetDeploymentConfig", "codedeploy:RegisterApplicationRevision"],
    ),
    ("codedeploy", "StopDeployment", &["codedeploy:StopDeployment"]),
    ("codepipeline", "GetPipeline", &["codepipeline:GetPipeline"]),
    (
        "codepipeline",
        "CreatePipeline",
        &["codepipeline:CreatePipeline", "codepipeline:TagResource", "iam:PassRole@codepipeline.amazonaws.com"],
    ),
    ("codepipeline", "UpdatePipeline", &["codepipeline:UpdatePipeline", "iam:PassRole@codepipeline.amazonaws.com"]),
    ("codepipeline", "DeletePipeline", &["codepipeline:DeletePipeline"]),
    ("codepipeline", "ListTagsForResource", &["codepipeline:ListTagsForResource"]),
    ("codepipeline", "TagResource", &["codepipeline:TagResource"]),
    ("codepipeline", "ListPipelineExecutions", &["codepipeline:ListPipelineExecutions"]),
    ("codepipeline", "StartPipelineExecution", &["codepipeline:StartPipelineExecution"]),
];

/// Each source file of the workspace (src/ and crates/) with its `//` comment lines blanked (doc
/// examples are not calls).
fn sources() -> Vec<(String, String)> {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    rust_files(&root().join("crates"), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|path| (path.strip_prefix(root()).unwrap().display().to_string(), without_comments(&std::fs::read_to_string(&path).unwrap())))
        .collect()
}

/// The code with `//` comment lines blanked (doc examples are not calls); lines keep their numbers.
fn without_comments(text: &str) -> String {
    text.lines().map(|l| if l.trim_start().starts_with("//") { "" } else { l }).collect::<Vec<_>>().join("\n")
}

fn line_of(code: &str, at: usize) -> usize {
    code[..at].matches('\n').count() + 1
}

/// A string literal at the start of `s` (after whitespace): its content and the rest.
fn literal(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start().strip_prefix('"')?;
    let end = s.find('"')?;
    Some((&s[..end], &s[end + 1..]))
}

/// Every `aws_err("service", "Operation")` in the workspace's sources, with where it is.
fn aws_calls() -> BTreeMap<(String, String), Vec<String>> {
    let calls = scan_aws_calls(&sources()).unwrap_or_else(|e| panic!("{e}"));
    assert!(calls.len() > 50, "found only {} AWS calls; is the scan broken?", calls.len());
    calls
}

/// The `aws_err("service", "Operation")` calls in `files` (name, code without comments).
fn scan_aws_calls(files: &[(String, String)]) -> Result<BTreeMap<(String, String), Vec<String>>, String> {
    let mut calls: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (file, code) in files {
        for (at, _) in code.match_indices("aws_err(") {
            let place = format!("{file}:{}", line_of(code, at));
            let args = &code[at + "aws_err(".len()..];
            let parsed = literal(args).and_then(|(service, rest)| {
                let rest = rest.trim_start().strip_prefix(',')?;
                let (operation, rest) = literal(rest)?;
                let rest = rest.trim_start();
                // rustfmt puts a trailing comma after the last argument of a vertical call.
                let rest = rest.strip_prefix(',').unwrap_or(rest);
                rest.trim_start().starts_with(')').then(|| (service.to_string(), operation.to_string()))
            });
            let Some(key) = parsed else {
                return Err(format!(
                    "{place}: aws_err(…) without two string literals; this test reads the service and operation from them"
                ));
            };
            calls.entry(key).or_default().push(place);
        }
    }
    Ok(calls)
}

fn policy(name: &str) -> Json {
    serde_json::from_str(&read(&format!("manifests/iam/{name}"))).unwrap_or_else(|e| panic!("manifests/iam/{name}: {e}"))
}

fn as_list(v: &Json) -> Vec<String> {
    match v {
        Json::String(s) => vec![s.clone()],
        Json::Array(items) => items.iter().map(|i| i.as_str().expect("a string").to_string()).collect(),
        Json::Null => vec![],
        other => panic!("expected a string or a list, got {other}"),
    }
}

fn statements(policy: &Json) -> Vec<Json> {
    assert_eq!(policy["Version"], "2012-10-17");
    policy["Statement"].as_array().expect("Statement is a list").clone()
}

/// The services a PassRole statement lets roles be passed to.
fn passed_to(statement: &Json) -> Vec<String> {
    as_list(&statement["Condition"]["StringEquals"]["iam:PassedToService"])
}

/// Whether the policy grants `action` (`iam:PassRole@service` for a role passed to a service).
fn grants(policy: &Json, action: &str) -> bool {
    let (action, service) = match action.split_once('@') {
        Some((a, s)) => (a, Some(s)),
        None => (action, None),
    };
    statements(policy).iter().any(|s| {
        s["Effect"] == "Allow"
            && as_list(&s["Action"]).iter().any(|a| a == action)
            && service.is_none_or(|svc| passed_to(s).iter().any(|p| p == svc))
    })
}

#[test]
fn the_iam_policy_grants_every_aws_call_the_code_makes() {
    let policy = policy("slipway-policy.json");
    let table: BTreeMap<(&str, &str), &[&str]> = IAM_ACTIONS.iter().map(|(s, o, a)| ((*s, *o), *a)).collect();
    assert_eq!(table.len(), IAM_ACTIONS.len(), "IAM_ACTIONS lists a call twice");
    let mut unmapped = Vec::new();
    let mut missing = Vec::new();
    for ((service, operation), places) in aws_calls() {
        let Some(actions) = table.get(&(service.as_str(), operation.as_str())) else {
            unmapped.push(format!("{service}:{operation} (at {})", places.join(", ")));
            continue;
        };
        for action in actions.iter().filter(|a| !grants(&policy, a)) {
            missing.push(format!("{action} for {service}:{operation} (at {})", places[0]));
        }
    }
    assert!(
        unmapped.is_empty(),
        "new AWS calls: add them to IAM_ACTIONS in tests/deploy_assets.rs with the IAM actions they need, and grant those in manifests/iam/slipway-policy.json:\n  {}",
        unmapped.join("\n  ")
    );
    assert!(missing.is_empty(), "manifests/iam/slipway-policy.json does not grant:\n  {}", missing.join("\n  "));
}

#[test]
fn the_iam_policy_grants_nothing_the_code_does_not_call() {
    let calls = aws_calls();
    let needed: BTreeSet<String> = IAM_ACTIONS
        .iter()
        .filter(|(s, o, _)| calls.contains_key(&(s.to_string(), o.to_string())))
        .flat_map(|(_, _, actions)| actions.iter().map(|a| a.split('@').next().unwrap().to_string()))
        .collect();
    let granted: BTreeSet<String> = statements(&policy("slipway-policy.json")).iter().flat_map(|s| as_list(&s["Action"])).collect();
    let unused: Vec<&String> = granted.difference(&needed).collect();
    assert!(unused.is_empty(), "manifests/iam/slipway-policy.json grants actions no call in the code needs: {unused:?}");
    // And the table has no entries for calls that are gone.
    let stale: Vec<String> = IAM_ACTIONS
        .iter()
        .filter(|(s, o, _)| !calls.contains_key(&(s.to_string(), o.to_string())))
        .map(|(s, o, _)| format!("{s}:{o}"))
        .collect();
    assert!(stale.is_empty(), "IAM_ACTIONS maps calls the code no longer makes: {stale:?}");
}

#[test]
fn the_iam_policies_have_no_wildcard_actions_and_no_iam_writes_but_pass_role() {
    for name in ["slipway-policy.json", "slipway-execution-policy.json"] {
        for s in statements(&policy(name)) {
            assert_eq!(s["Effect"], "Allow", "{name}: {s}");
            assert!(s.get("NotAction").is_none() && s.get("NotResource").is_none(), "{name}: {s}");
            assert!(s["Sid"].as_str().is_some_and(|sid| !sid.is_empty()), "{name}: every statement has a Sid: {s}");
            for action in as_list(&s["Action"]) {
                let (service, name_part) = action.split_once(':').unwrap_or_else(|| panic!("{name}: malformed action {action}"));
                assert!(!service.is_empty() && !name_part.is_empty(), "{name}: malformed action {action}");
                assert!(!action.contains('*') && !action.contains('?'), "{name}: wildcard action {action}");
                if service == "iam" {
                    assert_eq!(action, "iam:PassRole", "{name}: the only IAM action allowed is iam:PassRole");
                }
            }
        }
    }
}

#[test]
fn pass_role_is_scoped_to_the_roles_the_example_manifests_name_and_to_their_service() {
    let policy = policy("slipway-policy.json");
    let mut granted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in statements(&policy).into_iter().filter(|s| as_list(&s["Action"]).contains(&"iam:PassRole".to_string())) {
        assert_eq!(as_list(&s["Action"]), vec!["iam:PassRole"], "PassRole gets statements of its own: {s}");
        let services = passed_to(&s);
        assert!(!services.is_empty(), "PassRole without an iam:PassedToService condition: {s}");
        for role in as_list(&s["Resource"]) {
            let name = role.strip_prefix("arn:aws:iam::123456789012:role/").unwrap_or_else(|| panic!("PassRole on {role}: name roles"));
            assert!(!name.is_empty() && !name.contains('*'), "PassRole on {role}: name roles");
            for service in &services {
                granted.entry(service.clone()).or_default().insert(role.clone());
            }
        }
    }
    // The roles the example config repositories (examples/ and examples-strategies/) name, by the
    // service each is handed to.
    let mut wanted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for repo in ["examples", "examples-strategies"] {
        for entry in std::fs::read_dir(root().join(repo).join("pipelines")).unwrap() {
            for manifest in yaml_documents(&std::fs::read_to_string(entry.unwrap().path()).unwrap()) {
                let spec = &manifest["spec"];
                for (value, service) in [
                    (&spec["build"]["serviceRoleArn"], "codebuild.amazonaws.com"),
                    (&spec["deploy"]["serviceRoleArn"], "codedeploy.amazonaws.com"),
                    (&spec["deploy"]["infrastructureRoleArn"], "ecs.amazonaws.com"),
                    (&spec["pipeline"]["roleArn"], "codepipeline.amazonaws.com"),
                    (&spec["triggers"]["roleArn"], "events.amazonaws.com"),
                ] {
                    if let Some(role) = value.as_str() {
                        wanted.entry(service.to_string()).or_default().insert(role.to_string());
                    }
                }
                // A Lambda hook's role goes to ECS with the service's settings, as the
                // infrastructure role does.
                for hook in spec["deploy"]["hooks"].as_sequence().into_iter().flatten() {
                    if let Some(role) = hook["roleArn"].as_str() {
                        wanted.entry("ecs.amazonaws.com".to_string()).or_default().insert(role.to_string());
                    }
                }
                // The task definition template's roles go to ECS when slipway registers it. The
                // template may carry `//` comments, so the ARNs are read as text.
                let template = root()
                    .join(repo)
                    .join(str_of(&spec["source"]["path"]))
                    .join(spec["deploy"]["taskDefinition"].as_str().unwrap_or("taskdef.json"));
                let path = template;
                let template = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                for field in ["\"taskRoleArn\"", "\"executionRoleArn\""] {
                    for (at, _) in template.match_indices(field) {
                        let value =
                            template[at + field.len()..].trim_start().strip_prefix(':').and_then(literal).map(|(v, _)| v.to_string());
                        let role = value.unwrap_or_else(|| panic!("{field} in {} is not a string", path.display()));
                        wanted.entry("ecs-tasks.amazonaws.com".to_string()).or_default().insert(role);
                    }
                }
            }
        }
    }
    assert_eq!(wanted.len(), 6, "{wanted:?}");
    assert_eq!(granted, wanted, "iam:PassRole should cover exactly the example roles, each only to its service");
}

#[test]
fn every_aws_sdk_request_in_the_code_maps_its_error_through_aws_err() {
    // The policy test sees only calls that name themselves in aws_err; a request sent without
    // it would need permissions nobody checks.
    let unnamed = unnamed_sends(&sources());
    assert!(unnamed.is_empty(), "requests sent without .map_err(aws_err(\"service\", \"Operation\")): {unnamed:?}");
}

/// `.send().await` requests in `files` whose error is not mapped with aws_err: either the
/// sending statement maps it (`.send().await.map_err(aws_err(…))`), or it binds the result to a
/// name mapped later (`let put = ….send().await; … put.map_err(aws_err(…))`).
fn unnamed_sends(files: &[(String, String)]) -> Vec<String> {
    let mut unnamed = Vec::new();
    for (file, code) in files {
        for (at, _) in code.match_indices(".send()") {
            let rest = &code[at..];
            let statement = &rest[..rest.find(';').unwrap_or(rest.len())];
            if !statement.contains(".await") || statement.contains("aws_err(") {
                continue;
            }
            let start = code[..at].rfind([';', '{', '}']).map_or(0, |i| i + 1);
            let binding = code[start..at]
                .trim_start()
                .strip_prefix("let ")
                .map(|b| b.trim_start().strip_prefix("mut ").unwrap_or(b).trim_start())
                .and_then(|b| b.split(|c: char| !(c.is_alphanumeric() || c == '_')).next())
                .filter(|name| !name.is_empty());
            let mapped_later = binding.is_some_and(|name| rest.contains(&format!("{name}.map_err(aws_err(")));
            if !mapped_later {
                unnamed.push(format!("{file}:{}", line_of(code, at)));
            }
        }
    }
    unnamed
}

#[test]
fn the_source_scans_read_calls_across_lines_and_flag_what_they_cannot_check() {
    let file = |code: &str| vec![("src/x.rs".to_string(), without_comments(code))];
    let calls = scan_aws_calls(&file(
        "let a = c.get().send().await.map_err(aws_err(\"ecr\", \"GetThing\"))?;\n\
         let b = c\n    .put()\n    .send()\n    .await\n    .map_err(aws_err(\n        \"s3\",\n        \"PutThing\",\n    ))?;\n\
         /// .map_err(aws_err(\"doc\", \"Example\"))\n",
    ))
    .unwrap();
    let keys: Vec<(&str, &str)> = calls.keys().map(|(s, o)| (s.as_str(), o.as_str())).collect();
    assert_eq!(keys, [("ecr", "GetThing"), ("s3", "PutThing")]);
    assert_eq!(calls[&("s3".to_string(), "PutThing".to_string())], ["src/x.rs:6"]);
    assert!(scan_aws_calls(&file("x.map_err(aws_err(SERVICE, \"Op\"))")).is_err(), "a call it cannot read is an error");

    assert!(unnamed_sends(&file("let put = c.put().send().await;\nmatch put.map_err(aws_err(\"ecr\", \"PutImage\")) {}")).is_empty());
    assert_eq!(unnamed_sends(&file("fn f() {\n    let out = c.get().send().await?;\n}")), ["src/x.rs:2"]);
    assert_eq!(unnamed_sends(&file("c.get().send().await.map_err(other)?;")), ["src/x.rs:1"]);
    assert!(unnamed_sends(&file("tx.send().unwrap();")).is_empty(), "not an awaited request");
}

// ---- ECS ------------------------------------------------------------------------------------

fn ecs(name: &str) -> Json {
    serde_json::from_str(&read(&format!("manifests/ecs/{name}"))).unwrap_or_else(|e| panic!("manifests/ecs/{name}: {e}"))
}

fn named(list: &Json) -> BTreeMap<String, Json> {
    list.as_array().into_iter().flatten().map(|e| (e["name"].as_str().expect("a name").to_string(), e.clone())).collect()
}

/// "20s", "1m" → seconds (the forms the manifests use).
fn seconds(duration: &str) -> u64 {
    let (n, unit) = duration.split_at(duration.find(|c: char| !c.is_ascii_digit()).expect("a unit"));
    let n: u64 = n.parse().unwrap();
    match unit {
        "s" => n,
        "m" => n * 60,
        other => panic!("unexpected unit {other} in {duration}"),
    }
}

#[test]
fn the_ecs_task_definitions_configure_slipway_by_environment_with_secrets_from_aws() {
    let known = run_env_vars();
    let secret = secret_env_vars();
    for (file, credential, store) in [
        ("task-definition.json", "SLIPWAY_GIT_TOKEN", "arn:aws:secretsmanager:"),
        ("task-definition-ssh.json", "SLIPWAY_GIT_SSH_KEY", "arn:aws:ssm:"),
    ] {
        let task = ecs(file);
        assert_eq!(task["requiresCompatibilities"], serde_json::json!(["FARGATE"]), "{file}");
        assert_eq!(task["networkMode"], "awsvpc", "{file}");
        for role in ["taskRoleArn", "executionRoleArn"] {
            assert!(task[role].as_str().is_some_and(|r| r.starts_with("arn:aws:iam::123456789012:role/")), "{file}: {role}");
        }
        let volumes = named(&task["volumes"]);
        let containers = named(&task["containerDefinitions"]);
        let slipway = &containers["slipway"];
        assert_eq!(slipway["essential"], true);
        for (name, container) in &containers {
            let env = named(&container["environment"]);
            let secrets = named(&container["secrets"]);
            assert_known_env(env.keys().chain(secrets.keys()).cloned(), &format!("{file} ({name})"));
            let exposed: Vec<&String> = env.keys().filter(|k| secret.contains(*k)).collect();
            assert!(exposed.is_empty(), "{file}: {exposed:?} are secrets: pass them in `secrets`, not `environment`");
            assert_eq!(container["readonlyRootFilesystem"], true, "{file} ({name})");
            assert_eq!(container["user"], "10001:10001", "{file} ({name})");
            assert_eq!(container["logConfiguration"]["logDriver"], "awslogs", "{file} ({name})");
            for mount in container["mountPoints"].as_array().into_iter().flatten() {
                let volume = mount["sourceVolume"].as_str().unwrap();
                assert!(volumes.contains_key(volume), "{file} ({name}): no volume {volume}");
                // A Fargate bind mount is writable for uid 10001 only where the image has a VOLUME.
                if mount["readOnly"] != true {
                    let path = mount["containerPath"].as_str().unwrap();
                    assert!(dockerfile_volumes().contains(path), "{file} ({name}): {path} is not a VOLUME of the image");
                }
            }
        }

        let env = named(&slipway["environment"]);
        let value = |k: &str| env.get(k).and_then(|e| e["value"].as_str()).unwrap_or_else(|| panic!("{file}: {k} not set")).to_string();
        assert!(known.contains("SLIPWAY_REPO") && !value("SLIPWAY_REPO").is_empty());
        let workdir = value("SLIPWAY_WORKDIR");
        let mounts: Vec<&str> = slipway["mountPoints"].as_array().unwrap().iter().filter_map(|m| m["containerPath"].as_str()).collect();
        assert!(
            mounts.contains(&workdir.as_str()),
            "{file}: the work directory {workdir} needs a volume (the root filesystem is read-only)"
        );
        assert_eq!(value("SLIPWAY_LISTEN"), "0.0.0.0:8080", "{file}");
        assert_eq!(slipway["portMappings"][0]["containerPort"], 8080, "{file}");

        // ECS sends SIGTERM, waits stopTimeout, then SIGKILL: the grace must fit, with room to exit.
        let stop = slipway["stopTimeout"].as_u64().expect("stopTimeout");
        assert_eq!(stop, 30, "{file}");
        assert!(seconds(&value("SLIPWAY_SHUTDOWN_GRACE")) + 5 <= stop, "{file}: shutdown grace does not fit stopTimeout {stop}");

        let secrets = named(&slipway["secrets"]);
        let from =
            secrets.get(credential).and_then(|s| s["valueFrom"].as_str()).unwrap_or_else(|| panic!("{file}: {credential} from a secret"));
        assert!(from.starts_with(store), "{file}: {credential} should come from {store}…, not {from}");
        assert!(secrets.keys().any(|k| k.contains("WEBHOOK")), "{file}: a webhook secret");

        let check = as_list(&slipway["healthCheck"]["command"]);
        assert_eq!(check[..3], ["CMD", "slipway", "status"], "{file}: health check");

        // SSH checks host keys: the known_hosts lines come from Parameter Store like the key
        // (ECS has no config files to mount), and checking is never turned off.
        let repo = value("SLIPWAY_REPO");
        if repo.starts_with("ssh://") || repo.contains('@') {
            let hosts = secrets.get("SLIPWAY_KNOWN_HOSTS_DATA").and_then(|s| s["valueFrom"].as_str());
            assert!(hosts.is_some_and(|h| h.starts_with("arn:aws:ssm:")), "{file}: SLIPWAY_KNOWN_HOSTS_DATA from Parameter Store");
            assert!(!env.contains_key("SLIPWAY_INSECURE_SKIP_HOST_KEY_CHECK"), "{file}: host key checking stays on");
        }
    }
}

#[test]
fn the_ecs_health_check_passes_while_slipway_answers_and_fails_when_it_does_not() {
    // The image has no curl: the health check is `slipway status`, which exits 0 only when
    // /status answers. Run the exact command against a stand-in server, then a closed port.
    let command = as_list(&named(&ecs("task-definition.json")["containerDefinitions"])["slipway"]["healthCheck"]["command"]);
    let args: Vec<String> = command[2..].to_vec();
    assert!(args.contains(&"http://127.0.0.1:8080".to_string()), "{args:?}");

    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = server.local_addr().unwrap();
    let answering = std::thread::spawn(move || {
        let (mut stream, _) = server.accept().unwrap();
        let mut request = [0u8; 4096];
        let n = stream.read(&mut request).unwrap();
        // What slipway's /status serves: the struct the server and `slipway status` share.
        let status = slipway_core::status::ControllerStatus { ready: true, ..Default::default() };
        let body = serde_json::to_string(&status).unwrap();
        write!(
            stream,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        String::from_utf8_lossy(&request[..n]).into_owned()
    });
    let with = |url: &str| -> Vec<String> {
        args.iter().map(|a| if a == "http://127.0.0.1:8080" { url.to_string() } else { a.clone() }).collect()
    };
    let up =
        Command::new(env!("CARGO_BIN_EXE_slipway")).args(with(&format!("http://{address}"))).env_remove("SLIPWAY_SERVER").output().unwrap();
    assert!(up.status.success(), "{}", text(&up));
    assert!(answering.join().unwrap().starts_with("GET /status "), "the health check should ask /status");

    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap(); // bound, then dropped
    let down =
        Command::new(env!("CARGO_BIN_EXE_slipway")).args(with(&format!("http://{closed}"))).env_remove("SLIPWAY_SERVER").output().unwrap();
    assert!(!down.status.success(), "the health check must fail when nothing answers:\n{}", text(&down));
}

#[test]
fn the_ecs_service_runs_two_replicas_sharing_a_lease_table_the_policy_grants_with_a_rolling_deployment() {
    let service = ecs("service.json");
    let task = ecs("task-definition.json");
    assert_eq!(service["desiredCount"], 2);
    assert_eq!(service["taskDefinition"], task["family"]);
    assert_eq!(service["launchType"], "FARGATE");
    // A rolling deployment: one replica keeps working (and takes the leaving one's shards).
    assert_eq!(service["deploymentConfiguration"]["maximumPercent"], 200);
    assert_eq!(service["deploymentConfiguration"]["minimumHealthyPercent"], 50);
    for file in ["task-definition.json", "task-definition-ssh.json"] {
        let env = named(&ecs(file)["containerDefinitions"][0]["environment"]);
        let table = env["SLIPWAY_HA_TABLE"]["value"].as_str().unwrap_or_else(|| panic!("{file}: two replicas need SLIPWAY_HA_TABLE"));
        let lease_statement =
            statements(&policy("slipway-policy.json")).into_iter().find(|s| s["Sid"] == "LeaseTable").expect("a LeaseTable statement");
        let resource = lease_statement["Resource"].as_str().unwrap();
        assert!(resource.ends_with(":table/slipway-*") && table.starts_with("slipway-"), "{file}: {table} is outside {resource}");
    }
    for lb in service["loadBalancers"].as_array().into_iter().flatten() {
        assert_eq!(lb["containerName"], "slipway");
        assert_eq!(lb["containerPort"], 8080);
    }
}

// ---- Kubernetes -----------------------------------------------------------------------------

fn yaml_documents(text: &str) -> Vec<Yaml> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|doc| Yaml::deserialize(doc).unwrap_or_else(|e| panic!("invalid YAML: {e}\n{text}")))
        .filter(|doc| !doc.is_null())
        .collect()
}

fn kind<'a>(docs: &'a [Yaml], kind: &str) -> Vec<&'a Yaml> {
    docs.iter().filter(|d| d["kind"].as_str() == Some(kind)).collect()
}

fn one<'a>(docs: &'a [Yaml], wanted: &str) -> &'a Yaml {
    let found = kind(docs, wanted);
    assert_eq!(found.len(), 1, "expected one {wanted}");
    found[0]
}

fn str_of(v: &Yaml) -> &str {
    v.as_str().unwrap_or_else(|| panic!("expected a string, got {v:?}"))
}

/// What a slipway Deployment must be, plain or from the chart; returns the env var names.
fn check_deployment(deployment: &Yaml, secret_source: bool) -> BTreeSet<String> {
    let spec = &deployment["spec"];
    if spec["replicas"].as_u64() == Some(1) {
        assert_eq!(str_of(&spec["strategy"]["type"]), "Recreate", "never two controllers without leases during a rollout");
    } else {
        assert_eq!(str_of(&spec["strategy"]["type"]), "RollingUpdate", "replicas with leases roll");
        assert_eq!(spec["strategy"]["rollingUpdate"]["maxUnavailable"].as_u64(), Some(0), "a new replica joins before an old leaves");
    }
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["enableServiceLinks"].as_bool(), Some(false), "service links would add SLIPWAY_* variables");
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(str_of(&pod["securityContext"]["seccompProfile"]["type"]), "RuntimeDefault");
    let containers = pod["containers"].as_sequence().expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];

    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"].as_bool(), Some(true), "runAsNonRoot");
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true), "readOnlyRootFilesystem");
    assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false), "allowPrivilegeEscalation");
    assert_eq!(sc["capabilities"]["drop"].as_sequence().map(|d| d.iter().map(str_of).collect::<Vec<_>>()), Some(vec!["ALL"]));
    assert_eq!(str_of(&sc["seccompProfile"]["type"]), "RuntimeDefault");
    assert_eq!(sc["runAsUser"].as_u64(), Some(10001));

    assert_eq!(str_of(&c["livenessProbe"]["httpGet"]["path"]), "/healthz");
    assert_eq!(str_of(&c["readinessProbe"]["httpGet"]["path"]), "/readyz");
    let port = &c["ports"][0];
    assert_eq!(port["containerPort"].as_u64(), Some(8080));
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(str_of(&c[probe]["httpGet"]["port"]), str_of(&port["name"]), "{probe} port");
    }
    assert!(c["resources"]["requests"].is_mapping() && c["resources"]["limits"]["memory"].is_string(), "resources");

    let env: BTreeMap<String, &Yaml> = c["env"].as_sequence().expect("env").iter().map(|e| (str_of(&e["name"]).to_string(), e)).collect();
    for name in secret_env_vars() {
        if let Some(e) = env.get(&name) {
            assert!(e.get("value").is_none(), "{name} is a secret: read it from a Secret, not a value");
            assert!(e["valueFrom"]["secretKeyRef"]["name"].is_string(), "{name} from a Secret");
            // A Secret holds only the credentials in use (a token or an SSH key, one webhook).
            assert_eq!(e["valueFrom"]["secretKeyRef"]["optional"].as_bool(), Some(true), "{name}: every Secret key is optional");
        }
    }
    if secret_source {
        assert!(
            env.get("SLIPWAY_GIT_TOKEN").is_some_and(|e| e["valueFrom"]["secretKeyRef"].is_mapping()),
            "SLIPWAY_GIT_TOKEN from the Secret"
        );
    }
    // The work directory is a writable emptyDir (the root filesystem is read-only).
    let workdir = str_of(&env["SLIPWAY_WORKDIR"]["value"]);
    let mount =
        c["volumeMounts"].as_sequence().unwrap().iter().find(|m| str_of(&m["mountPath"]) == workdir).expect("a volume at the work dir");
    assert_ne!(mount["readOnly"].as_bool(), Some(true));
    let volume = pod["volumes"].as_sequence().unwrap().iter().find(|v| v["name"] == mount["name"]).expect("the work dir volume");
    assert!(volume["emptyDir"].is_mapping(), "the work dir is an emptyDir: {volume:?}");
    assert_eq!(str_of(&env["SLIPWAY_LISTEN"]["value"]), "0.0.0.0:8080");
    assert!(!str_of(&env["SLIPWAY_REPO"]["value"]).is_empty());
    env.into_keys().collect()
}

#[test]
fn the_plain_kubernetes_manifests_run_slipway_restricted_with_irsa() {
    let mut docs = Vec::new();
    for entry in std::fs::read_dir(root().join("manifests/k8s")).unwrap() {
        docs.extend(yaml_documents(&std::fs::read_to_string(entry.unwrap().path()).unwrap()));
    }
    let names = check_deployment(one(&docs, "Deployment"), true);
    assert_known_env(names, "manifests/k8s/deployment.yaml");
    let sa = one(&docs, "ServiceAccount");
    assert!(str_of(&sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]).starts_with("arn:aws:iam::123456789012:role/"));
    let deployment = one(&docs, "Deployment");
    assert_eq!(deployment["spec"]["template"]["spec"]["serviceAccountName"], sa["metadata"]["name"]);
    let service = one(&docs, "Service");
    assert_eq!(service["spec"]["ports"][0]["port"].as_u64(), Some(8080));
    assert_eq!(service["spec"]["selector"], deployment["spec"]["template"]["metadata"]["labels"]);
}

// ---- Helm chart -----------------------------------------------------------------------------

fn helm(args: &[&str]) -> Output {
    let helm = root().join(".venv/bin/helm");
    assert!(helm.exists(), "{} is missing: run scripts/install-helm (scripts/setup does)", helm.display());
    Command::new(helm).args(args).current_dir(root()).output().expect("helm runs")
}

fn render(set: &[&str]) -> Vec<Yaml> {
    let mut args = vec!["template", "slipway", "charts/slipway", "--namespace", "platform"];
    for s in set {
        args.extend(["--set", s]);
    }
    let out = helm(&args);
    assert!(out.status.success(), "helm template {set:?}:\n{}", text(&out));
    yaml_documents(&String::from_utf8_lossy(&out.stdout))
}

#[test]
fn helm_is_version_4() {
    let out = helm(&["version", "--short"]);
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).starts_with("v4."), "{}", text(&out));
}

#[test]
fn the_chart_passes_helm_lint() {
    let out = helm(&["lint", "--strict", "charts/slipway"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 chart(s) linted, 0 chart(s) failed"), "{}", text(&out));
    let monitored =
        helm(&["lint", "--strict", "charts/slipway", "--set", "serviceMonitor.enabled=true", "--set", "prometheusRule.enabled=true"]);
    assert!(monitored.status.success(), "{}", text(&monitored));
}

#[test]
fn the_chart_with_default_values_renders_a_restricted_deployment_without_monitoring() {
    let docs = render(&[]);
    let kinds: BTreeSet<&str> = docs.iter().map(|d| str_of(&d["kind"])).collect();
    assert_eq!(kinds, BTreeSet::from(["Deployment", "Service", "ServiceAccount"]));
    let names = check_deployment(one(&docs, "Deployment"), false);
    assert_known_env(names, "the chart (default values)");
    assert!(one(&docs, "ServiceAccount")["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].is_null(), "no IRSA role unless set");
    assert_eq!(one(&docs, "Service")["spec"]["ports"][0]["port"].as_u64(), Some(8080));
}

#[test]
fn the_chart_renders_irsa_credentials_and_monitoring_when_asked() {
    let role = "arn:aws:iam::123456789012:role/slipway";
    let docs = render(&[
        "serviceMonitor.enabled=true",
        "prometheusRule.enabled=true",
        &format!("serviceAccount.irsaRoleArn={role}"),
        "git.token=glpat-example",
        "webhooks.gitlabToken=hook-secret",
        "config.knownHosts=gitlab.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample",
        "config.path=pipelines",
        "aws.region=eu-west-1",
    ]);
    let sa = one(&docs, "ServiceAccount");
    assert_eq!(str_of(&sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]), role);
    let deployment = one(&docs, "Deployment");
    assert_eq!(deployment["spec"]["template"]["spec"]["serviceAccountName"], sa["metadata"]["name"]);
    let names = check_deployment(deployment, true);
    assert!(
        names.contains("SLIPWAY_KNOWN_HOSTS") && names.contains("SLIPWAY_PATH") && names.contains("SLIPWAY_GITLAB_WEBHOOK_TOKEN"),
        "{names:?}"
    );
    assert_known_env(names, "the chart (all options)");

    let secret = one(&docs, "Secret");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let token = container["env"].as_sequence().unwrap().iter().find(|e| e["name"] == "SLIPWAY_GIT_TOKEN").unwrap();
    assert_eq!(token["valueFrom"]["secretKeyRef"]["name"], secret["metadata"]["name"]);
    let key = str_of(&token["valueFrom"]["secretKeyRef"]["key"]);
    assert!(secret["data"][key].is_string(), "the Secret holds the token under {key}");

    let monitor = one(&docs, "ServiceMonitor");
    assert_eq!(str_of(&monitor["apiVersion"]), "monitoring.coreos.com/v1");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], container["ports"][0]["name"]);
    let service = one(&docs, "Service");
    for (k, v) in monitor["spec"]["selector"]["matchLabels"].as_mapping().unwrap() {
        assert_eq!(&service["metadata"]["labels"][str_of(k)], v, "the ServiceMonitor selects the Service");
    }
    let rule = one(&docs, "PrometheusRule");
    assert_eq!(str_of(&rule["apiVersion"]), "monitoring.coreos.com/v1");
    let alerts: Vec<&str> = rule["spec"]["groups"][0]["rules"].as_sequence().unwrap().iter().filter_map(|r| r["alert"].as_str()).collect();
    assert!(alerts.contains(&"SlipwayDriftPersisting") && alerts.contains(&"SlipwayDown"), "slipway's own alerts by default: {alerts:?}");
}

#[test]
fn the_chart_takes_prometheus_rules_from_values_and_credentials_from_an_existing_secret() {
    let values = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("slipway-chart-rules.yaml");
    std::fs::write(
        &values,
        "prometheusRule:\n  enabled: true\n  groups:\n    - name: slipway\n      rules:\n        - alert: SlipwayDown\n          expr: up{job=\"slipway\"} == 0\ngit:\n  existingSecret: platform-git\n",
    )
    .unwrap();
    let out = helm(&["template", "slipway", "charts/slipway", "-f", values.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let docs = yaml_documents(&String::from_utf8_lossy(&out.stdout));
    let rule = one(&docs, "PrometheusRule");
    assert_eq!(str_of(&rule["spec"]["groups"][0]["rules"][0]["alert"]), "SlipwayDown");
    assert!(kind(&docs, "Secret").is_empty(), "an existing Secret is used, not created");
    let env = docs.iter().find(|d| d["kind"] == "Deployment").unwrap()["spec"]["template"]["spec"]["containers"][0]["env"].clone();
    let refs: BTreeSet<&str> = env.as_sequence().unwrap().iter().filter_map(|e| e["valueFrom"]["secretKeyRef"]["name"].as_str()).collect();
    assert_eq!(refs, BTreeSet::from(["platform-git"]));
}

#[test]
fn the_chart_runs_several_replicas_only_with_a_lease_table_spread_over_nodes_under_a_disruption_budget() {
    let docs = render(&["replicaCount=3", "config.haTable=slipway-leases"]);
    let deployment = one(&docs, "Deployment");
    assert_eq!(deployment["spec"]["replicas"].as_u64(), Some(3));
    let names = check_deployment(deployment, false);
    assert!(names.contains("SLIPWAY_HA_TABLE") && names.contains("SLIPWAY_LEASE_DURATION"), "{names:?}");
    assert_known_env(names, "the chart (several replicas)");
    let selector = &deployment["spec"]["selector"]["matchLabels"];
    let pdb = one(&docs, "PodDisruptionBudget");
    assert_eq!(&pdb["spec"]["selector"]["matchLabels"], selector);
    assert_eq!(pdb["spec"]["maxUnavailable"].as_u64(), Some(1));
    let anti = &deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(&anti["podAffinityTerm"]["labelSelector"]["matchLabels"], selector, "replicas prefer different nodes");
    assert!(kind(&render(&[]), "PodDisruptionBudget").is_empty(), "no budget for one replica");

    for (set, why) in [
        (vec!["replicaCount=2"], "needs config.haTable"),
        (vec!["config.haTable=slipway-leases", "config.changeEvents=true"], "do not go together"),
        (vec!["config.haTable=leases"], "config/haTable"),
    ] {
        let mut args = vec!["template", "slipway", "charts/slipway"];
        set.iter().for_each(|s| args.extend(["--set", s]));
        let out = helm(&args);
        assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains(why), "{set:?}:\n{}", text(&out));
    }
}

#[test]
fn the_chart_refuses_values_it_does_not_know() {
    for (set, why) in [
        ("replicas=2", "replicas"),
        ("config.interval=5", "config/interval"),
        ("config.logFormat=yaml", "config/logFormat"),
        ("serviceAccount.irsaRoleArn=slipway", "serviceAccount/irsaRoleArn"),
    ] {
        let out = helm(&["template", "slipway", "charts/slipway", "--set", set]);
        assert!(!out.status.success(), "--set {set} should be refused:\n{}", text(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains(why), "{}", text(&out));
    }
    let both = helm(&["template", "slipway", "charts/slipway", "--set", "config.tag=v1", "--set", "config.commit=0123abcd"]);
    assert!(!both.status.success() && String::from_utf8_lossy(&both.stderr).contains("exclusive"), "{}", text(&both));
}

#[test]
fn the_chart_deploys_a_tag_or_commit_instead_of_the_branch() {
    for (set, var, value) in [("config.tag=v1.2.0", "SLIPWAY_TAG", "v1.2.0"), ("config.commit=0123abcd", "SLIPWAY_COMMIT", "0123abcd")] {
        let docs = render(&[set]);
        let env = one(&docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"].clone();
        let names: BTreeMap<&str, Option<&str>> =
            env.as_sequence().unwrap().iter().map(|e| (str_of(&e["name"]), e["value"].as_str())).collect();
        assert_eq!(names.get(var), Some(&Some(value)), "{set}");
        assert!(!names.contains_key("SLIPWAY_BRANCH"), "{set}: branch, tag and commit are exclusive flags");
    }
}

#[test]
fn the_chart_notes_say_what_is_missing() {
    let notes = |set: &[&str]| {
        let mut args = vec!["install", "slipway", "charts/slipway", "--dry-run=client", "--namespace", "platform"];
        for s in set {
            args.extend(["--set", s]);
        }
        let out = helm(&args);
        assert!(out.status.success(), "{}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        stdout[stdout.find("NOTES:").unwrap_or_else(|| panic!("no NOTES:\n{stdout}"))..].to_string()
    };
    let bare = notes(&[]);
    assert!(bare.contains("https://gitlab.example.com/platform/pipelines.git on branch main"), "{bare}");
    assert!(bare.contains("No serviceAccount.irsaRoleArn") && bare.contains("No Git credentials"), "{bare}");
    let complete = notes(&["serviceAccount.irsaRoleArn=arn:aws:iam::123456789012:role/slipway", "git.existingSecret=platform-git"]);
    assert!(!complete.contains("No serviceAccount.irsaRoleArn") && !complete.contains("No Git credentials"), "{complete}");
}

#[test]
fn the_deployment_guide_explains_every_action_the_policy_grants() {
    let guide = read("README.md");
    let granted: BTreeSet<String> = statements(&policy("slipway-policy.json")).iter().flat_map(|s| as_list(&s["Action"])).collect();
    let unexplained: Vec<&String> = granted.iter().filter(|a| !guide.contains(&format!("`{a}`"))).collect();
    assert!(unexplained.is_empty(), "README.md does not say why the policy grants {unexplained:?}");
}
