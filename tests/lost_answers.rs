//! A write whose answer is lost, or an apply killed right after one of its writes, leaves nothing
//! the next pass cannot finish, and nothing that exists outside the inventory (so a pipeline
//! removed from Git right after can still be pruned whole). Against moto, through a fault proxy
//! (tests/common/proxy.rs) that lets each mutating call of a create through in turn and loses its
//! answer. Each case creates both example pipelines under names of its own, so one emulator
//! serves every case. The state bucket's writes are not counted: they are idempotent PUTs of
//! inventory entries, and what matters is that each is done before the create it records.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::proxy::{Fault, FaultProxy};
use common::{Moto, edit, example_repo};
use slipway::engine::{ApplyReport, apply, plan, prepare};
use slipway_aws::Aws;
use slipway_core::inventory::Entry;
use slipway_core::plan::Operation;

/// The example repository with every name slipway creates suffixed by `case`.
fn case_repo(case: usize) -> tempfile::TempDir {
    let repo = example_repo();
    for (file, pipeline, repository, bucket) in [
        ("pipelines/web.yaml", "web", "demo-web", "slipway-demo-web-settings"),
        ("pipelines/nginx.yaml", "nginx", "demo-nginx", "slipway-demo-code-pipeline"),
    ] {
        edit(repo.path(), file, &format!("  name: {pipeline}\n"), &format!("  name: {pipeline}{case}\n"));
        edit(repo.path(), file, &format!("repository: {repository} "), &format!("repository: {repository}{case} "));
        edit(repo.path(), file, &format!("bucket: {bucket}\n"), &format!("bucket: {bucket}-{case}\n"));
    }
    // A trail of its own too: the shared one would exist from the case before.
    edit(
        repo.path(),
        "pipelines/nginx.yaml",
        "      via: cloudtrail\n",
        &format!("      via: cloudtrail\n      trail: slipway-s3-writes-{case}\n"),
    );
    repo
}

fn names(case: usize) -> Vec<String> {
    vec![format!("nginx{case}"), format!("web{case}")]
}

/// One pass over the case's two pipelines, one pipeline at a time so the order of writes is
/// the same in every case.
async fn apply_case(aws: &Aws, repo: &Path, case: usize) -> ApplyReport {
    let plan = plan(aws, &prepare(repo, &Default::default()).unwrap(), &names(case), 1, &Default::default()).await.unwrap();
    apply(aws, &plan, false, 1).await
}

/// What a plan of the case still wants to do, `kind name action` per step; empty when converged.
async fn pending(aws: &Aws, repo: &Path, case: usize) -> Vec<String> {
    let plan = plan(aws, &prepare(repo, &Default::default()).unwrap(), &names(case), 1, &Default::default()).await.unwrap();
    let mut out: Vec<String> = plan.invalid.iter().map(|d| format!("invalid: {d}")).collect();
    for p in &plan.pipelines {
        out.extend(p.blocked_reasons().into_iter().map(|r| format!("{}: blocked: {r}", p.pipeline)));
        for s in p.steps.iter().filter(|s| s.action != Operation::Noop) {
            let action = match &s.action {
                Operation::Conflict { .. } => "conflict",
                Operation::Create => "create",
                _ => "update",
            };
            out.push(format!("{} {} {action}", s.key.kind.label(), s.key.name));
        }
    }
    out
}

/// Resources of the case that exist but that the inventory does not record.
async fn unrecorded(aws: &Aws, repo: &Path, case: usize) -> Vec<String> {
    let inventory = slipway_aws::inventory::list(aws).await.unwrap();
    let plan = plan(aws, &prepare(repo, &Default::default()).unwrap(), &names(case), 1, &Default::default()).await.unwrap();
    let mut out = Vec::new();
    for p in &plan.pipelines {
        for s in p.steps.iter().filter(|s| s.action != Operation::Create && Entry::recorded(s.key.kind)) {
            if !inventory.contains(&Entry::new(&p.pipeline, s.key.clone())) {
                out.push(s.key.to_string());
            }
        }
    }
    out
}

#[tokio::test]
async fn a_lost_answer_to_any_write_of_a_create_is_finished_by_the_next_pass() {
    let moto = Moto::start_bootstrapped();
    let proxy = FaultProxy::start(&moto.endpoint);
    let aws = moto.aws_via(&proxy.endpoint).await;
    proxy.uncounted(&aws.inventory.bucket);

    // Case 0 loses nothing: it counts the writes of creating both pipelines.
    proxy.arm(None);
    let repo = case_repo(0);
    let report = apply_case(&aws, repo.path(), 0).await;
    assert!(report.succeeded(), "{}", slipway::report::render_apply(&report));
    let writes = proxy.writes();
    assert!(writes.len() >= 30, "a create of both examples makes dozens of writes: {writes:?}");

    let mut stranded = Vec::new();
    for n in 1..=writes.len() {
        let repo = case_repo(n);
        proxy.arm(Some((n, Fault::DropAnswer)));
        apply_case(&aws, repo.path(), n).await;
        let lost = proxy.hit().unwrap_or_else(|| panic!("case {n}: the create made fewer than {n} writes"));
        proxy.arm(None);
        let outside = unrecorded(&aws, repo.path(), n).await;
        if !outside.is_empty() {
            stranded.push(format!("answer of write {n} ({lost}) lost: {outside:?} exist outside the inventory"));
        }
        apply_case(&aws, repo.path(), n).await;
        let left = pending(&aws, repo.path(), n).await;
        if !left.is_empty() {
            stranded.push(format!("answer of write {n} ({lost}) lost: after the next pass, still {left:?}"));
        }
    }
    assert!(stranded.is_empty(), "{} of {} cases stranded a resource:\n{}", stranded.len(), writes.len(), stranded.join("\n"));
}

#[tokio::test]
async fn an_apply_killed_after_any_write_is_finished_by_the_next_one() {
    let moto = Moto::start_bootstrapped();
    let proxy = FaultProxy::start(&moto.endpoint);
    let aws = moto.aws().await;
    proxy.uncounted(&aws.inventory.bucket);
    let mut env = moto.env();
    env.retain(|(k, _)| *k != "AWS_ENDPOINT_URL");
    env.push(("AWS_ENDPOINT_URL", proxy.endpoint.clone()));
    let slipway = |repo: &Path, args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_slipway"));
        cmd.args(args).args(["--repo", repo.to_str().unwrap(), "--concurrency", "1"]).envs(env.iter().cloned());
        cmd.env_remove("SLIPWAY_LOG").stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd
    };

    proxy.arm(None);
    let repo = case_repo(0);
    let out = slipway(repo.path(), &["apply"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let writes = proxy.writes().len();

    // A kill after every third write: the process dies with the write done and unanswered.
    let mut stranded = Vec::new();
    for n in (1..=writes).step_by(3) {
        let repo = case_repo(n);
        let child = slipway(repo.path(), &["apply"]).spawn().unwrap();
        proxy.arm(Some((n, Fault::Kill { pid: child.id() })));
        let killed = child.wait_with_output().unwrap();
        let lost = proxy.hit();
        assert!(lost.is_some() && !killed.status.success(), "case {n}: the apply was not killed at write {n}");
        proxy.arm(None);
        let outside = unrecorded(&aws, repo.path(), n).await;
        if !outside.is_empty() {
            stranded.push(format!("killed after write {n} ({lost:?}): {outside:?} exist outside the inventory"));
        }
        let again = slipway(repo.path(), &["apply"]).output().unwrap();
        let left = pending(&aws, repo.path(), n).await;
        if !again.status.success() || !left.is_empty() {
            stranded.push(format!(
                "killed after write {n} ({lost:?}): the next apply said {}{}; still {left:?}",
                String::from_utf8_lossy(&again.stdout),
                String::from_utf8_lossy(&again.stderr)
            ));
        }
    }
    assert!(stranded.is_empty(), "{} kills stranded a resource:\n{}", stranded.len(), stranded.join("\n"));
}
