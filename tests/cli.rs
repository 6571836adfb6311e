//! The `slipway` binary as a person runs it: output, exit codes, and the plan → apply → plan
//! cycle against moto.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Moto, edit, example_repo};

fn slipway(args: &[&str], env: &[(&'static str, String)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(args)
        .envs(env.iter().cloned())
        .env_remove("SLIPWAY_LOG")
        .output()
        .expect("slipway runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn repo_arg(path: &Path) -> String {
    path.to_str().unwrap().to_string()
}

#[test]
fn validate_accepts_the_examples() {
    let out = slipway(&["validate", "--repo", &repo_arg(&common::repo_root().join("examples"))], &[]);
    assert!(out.status.success(), "{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    assert!(stdout(&out).contains("2 pipeline(s) valid"));
    // One pipeline per ECS strategy, in a config repository of its own (the quickstart applies
    // all of examples/, and the emulator runs no ECS deployments).
    let out = slipway(&["validate", "--repo", &repo_arg(&common::repo_root().join("examples-strategies"))], &[]);
    assert!(out.status.success(), "{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    assert!(stdout(&out).contains("3 pipeline(s) valid"));
    for strategy in ["ecs-blue-green", "ecs-linear", "ecs-canary"] {
        let found = std::fs::read_dir(common::repo_root().join("examples-strategies/pipelines"))
            .unwrap()
            .any(|f| std::fs::read_to_string(f.unwrap().path()).unwrap().contains(&format!("strategy: {strategy}")));
        assert!(found, "an example of {strategy}");
    }
}

#[test]
fn validate_lists_every_error_with_file_line_and_column_and_suggests_the_field_meant() {
    let repo = example_repo();
    edit(repo.path(), "pipelines/web.yaml", "    scanOnPush: true", "    scanOnPsuh: true");
    edit(repo.path(), "pipelines/nginx.yaml", "path: apps/nginx ", "path: ../outside ");
    let out = slipway(&["validate", "--repo", &repo_arg(repo.path())], &[]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.contains(&"pipelines/nginx.yaml:15:5: source.path `../outside` must not contain `..`: paths stay inside the repository"),
        "{text}"
    );
    let typo = lines.iter().find(|l| l.starts_with("pipelines/web.yaml:24:5: ")).unwrap_or_else(|| panic!("{text}"));
    assert!(typo.contains("unknown field `scanOnPsuh`") && typo.ends_with("(did you mean field `scanOnPush`?)"), "{typo}");
    assert!(text.contains("2 errors in 2 manifests; 0 pipelines valid"), "{text}");
}

#[test]
fn validate_reports_every_error_of_a_manifest_at_once_and_counts_manifests_not_errors() {
    let repo = example_repo();
    edit(repo.path(), "pipelines/web.yaml", "    scanOnPush: true", "    scanOnPsuh: true");
    edit(
        repo.path(),
        "pipelines/web.yaml",
        "prodListener: {loadBalancer: demo-web-alb, port: 80}",
        "prodListener: {loadBalancer: demo-web-alb, port: 80000}",
    );
    edit(repo.path(), "pipelines/web.yaml", "terminationWaitMinutes: 5 ", "terminationWaitMinutes: 5000 ");
    let out = slipway(&["validate", "--repo", &repo_arg(repo.path())], &[]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("pipelines/web.yaml:24:5: image.scanOnPsuh: unknown field `scanOnPsuh`"), "{text}");
    assert_eq!(
        lines[1],
        "pipelines/web.yaml:35:5: deploy.prodListener: expected a listener ARN or `{loadBalancer, port}`; port must be 1–65535 \
         (deploy.prodListener.port: must be between 1 and 65535, not 80000)"
    );
    assert_eq!(lines[2], "pipelines/web.yaml:39:5: deploy.terminationWaitMinutes: must be between 0 and 2880, not 5000");
    assert_eq!(lines[3], "3 errors in 1 manifest; 1 pipeline valid", "{text}");
}

#[test]
fn validate_fails_on_a_repository_without_manifests_and_says_so_for_a_missing_one() {
    let empty = tempfile::tempdir().unwrap();
    let out = slipway(&["validate", "--repo", &repo_arg(empty.path())], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).starts_with("no slipway manifest in "), "{}", stdout(&out));

    let missing = empty.path().join("no-such-dir");
    let out = slipway(&["validate", "--repo", &repo_arg(&missing)], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("does not exist (check --repo / SLIPWAY_REPO)"), "{err}");
}

#[test]
fn plan_apply_plan_with_detailed_exit_codes() {
    let moto = Moto::start_bootstrapped();
    let env = moto.env();
    let repo = example_repo();
    let repo = repo_arg(repo.path());

    let first = slipway(&["plan", "--repo", &repo, "--detailed-exitcode"], &env);
    assert_eq!(first.status.code(), Some(2), "{}", stdout(&first));
    assert!(stdout(&first).contains("+ create codepipeline web"), "{}", stdout(&first));
    assert!(stdout(&first).contains("Plan: 17 to create, 0 to change"), "{}", stdout(&first));

    let applied = slipway(&["apply", "--repo", &repo], &env);
    assert!(applied.status.success(), "{}", stdout(&applied));
    assert!(stdout(&applied).contains("uploaded source-artifact slipway-demo-web-settings/settings.zip"));

    let second = slipway(&["plan", "--repo", &repo, "--detailed-exitcode", "--output", "json"], &env);
    assert_eq!(second.status.code(), Some(0), "{}", stdout(&second));
    let json: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    let actions: Vec<&str> = json["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["steps"].as_array().unwrap())
        .map(|s| s["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions.len(), 17);
    assert!(actions.iter().all(|a| *a == "noop"), "{actions:?}");

    let unknown = slipway(&["plan", "--repo", &repo, "--pipeline", "nope"], &env);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown pipeline `nope`"));
}

/// The trail quota (5 per Region in AWS, never raised) held to 1 here, with both examples on
/// the CloudTrail route and web naming a trail of its own (pipelines naming one trail share
/// it): the second pipeline is refused before anything is created, at its manifest's `via` line. validate, which reads no AWS, counts in name order; plan and apply count
/// the pipelines already applied first, so the one added later is the one refused.
#[test]
fn a_pipeline_past_an_aws_quota_is_refused_at_its_field_and_the_ones_already_applied_keep_their_room() {
    let moto = Moto::start_bootstrapped();
    let env = moto.env();
    let repo = example_repo();
    edit(
        repo.path(),
        "pipelines/web.yaml",
        "via: eventbridge",
        "via: cloudtrail\n      trail: slipway-web-writes\n      logBucket: slipway-demo-trail-logs",
    );
    let path = repo_arg(repo.path());
    let one_trail = ["--quota", "cloudtrail-trails=1"];

    let raised = slipway(&["validate", "--repo", &path, "--quota", "cloudtrail-trails=6"], &[]);
    assert_eq!(raised.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&raised.stderr).contains("cloudtrail-trails: AWS allows 5 and does not raise it"));

    let validated = slipway(&[&["validate", "--repo", &path][..], &one_trail].concat(), &[]);
    assert_eq!(validated.status.code(), Some(1), "{}", stdout(&validated));
    let text = stdout(&validated);
    assert!(
        text.starts_with("pipelines/web.yaml:49:7: this pipeline would bring the CloudTrail trails per Region to 2, past the quota of 1"),
        "{text}"
    );
    assert!(text.contains("`via: eventbridge`"), "{text}");
    // Sharing nginx's trail, web fits.
    edit(repo.path(), "pipelines/web.yaml", "      trail: slipway-web-writes\n", "      logPrefix: slipway\n");
    let shared = slipway(&[&["validate", "--repo", &path][..], &one_trail].concat(), &[]);
    assert!(shared.status.success(), "{}", stdout(&shared));
    edit(repo.path(), "pipelines/web.yaml", "      logPrefix: slipway\n", "      trail: slipway-web-writes\n");

    // web alone is applied first; then nginx comes back and is the one refused.
    let nginx = std::fs::read(repo.path().join("pipelines/nginx.yaml")).unwrap();
    std::fs::remove_file(repo.path().join("pipelines/nginx.yaml")).unwrap();
    let applied = slipway(&[&["apply", "--repo", &path][..], &one_trail].concat(), &env);
    assert!(applied.status.success(), "{}", stdout(&applied));
    std::fs::write(repo.path().join("pipelines/nginx.yaml"), nginx).unwrap();
    let planned = slipway(&[&["plan", "--repo", &path, "--output", "json"][..], &one_trail].concat(), &env);
    let json: serde_json::Value = serde_json::from_slice(&planned.stdout).unwrap();
    let invalid: Vec<&str> = json["invalid"].as_array().unwrap().iter().map(|d| d["file"].as_str().unwrap()).collect();
    assert_eq!(invalid, ["pipelines/nginx.yaml"], "{json:#}");
    let planned: Vec<&str> = json["pipelines"].as_array().unwrap().iter().map(|p| p["pipeline"].as_str().unwrap()).collect();
    assert_eq!(planned, ["web"]);
    assert_eq!(json["orphans"], serde_json::json!([]), "a refused pipeline's resources are never orphans");
}

#[test]
fn help_never_shows_a_password_given_in_the_repository_url() {
    let env = [("SLIPWAY_REPO", "https://bot:s3cret-token@git.example.com/platform/pipelines.git".to_string())];
    for command in ["run", "apply", "plan", "validate"] {
        let out = slipway(&[command, "--help"], &env);
        let help = stdout(&out);
        assert!(out.status.success() && help.contains("SLIPWAY_REPO"), "{command} --help: {help}");
        assert!(!help.contains("s3cret"), "{command} --help shows the password: {help}");
    }
}
