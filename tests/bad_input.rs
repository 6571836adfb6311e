//! The bad-input corpus, `tests/bad-input/NN-name/`: each case is the example repository with
//! one thing broken, the way people (and tools) break config repositories. A case holds
//! `files/` (copied over a copy of `examples/`), or a `generate` shell script run in that copy
//! (for inputs too big to commit, and removals), and `expect`: lines `FILE:LINE:COL: fragment`.
//!
//! For every case: `validate` exits 1 and prints each expected line (the position of the
//! defect and a fragment of the message); `apply --prune` against moto deletes nothing and finds
//! nothing to do for the pipelines that are still valid. `run --prune --once` is run for the
//! cases the controller reads differently (files over a budget, suspects). At the end the
//! example repository plans to nothing: no case deleted or changed anything.
//!
//! Budgets (time, memory) are not asserted here (timings flake); `scripts/bench-bad-input`
//! measures them.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{Moto, copy_dir, example_repo, repo_root};

/// Cases also run through the controller (`run --prune --once`).
const RUN_CASES: &[&str] = &["02-empty-file", "10-yaml-bomb", "35-huge-manifest", "36-huge-other-yaml", "37-many-documents"];

fn cases() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        std::fs::read_dir(repo_root().join("tests/bad-input")).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    dirs
}

fn name(case: &Path) -> String {
    case.file_name().unwrap().to_string_lossy().into_owned()
}

/// The example repository with the case applied.
fn materialise(case: &Path) -> tempfile::TempDir {
    let repo = example_repo();
    if case.join("files").is_dir() {
        copy_dir(&case.join("files"), repo.path());
    }
    if case.join("generate").exists() {
        let out = Command::new("sh").arg(case.join("generate")).current_dir(repo.path()).output().unwrap();
        assert!(out.status.success(), "{}: generate failed: {}", name(case), String::from_utf8_lossy(&out.stderr));
    }
    repo
}

fn slipway(args: &[&str], env: &[(&'static str, String)], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(args)
        .envs(env.iter().cloned())
        .env_remove("SLIPWAY_LOG")
        .current_dir(dir)
        .output()
        .expect("slipway runs")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Each `FILE:LINE:COL: fragment` of the case's `expect` appears as a diagnostic: a line
/// (an error, or a `warning: ` for a suspect) starting with the position and holding the fragment.
fn assert_expected(case: &Path, output: &str) {
    let expect = std::fs::read_to_string(case.join("expect")).unwrap();
    assert!(!expect.trim().is_empty(), "{}: empty expect", name(case));
    for wanted in expect.lines().filter(|l| !l.trim().is_empty()) {
        let (position, fragment) = wanted.split_once(": ").unwrap_or_else(|| panic!("{}: bad expect line {wanted:?}", name(case)));
        let found = output.lines().any(|line| {
            let line = line.strip_prefix("warning: ").unwrap_or(line);
            line.strip_prefix(position).and_then(|rest| rest.strip_prefix(": ")).is_some_and(|message| message.contains(fragment))
        });
        assert!(found, "{}: expected `{wanted}` in:\n{output}", name(case));
    }
}

#[test]
fn validate_reports_each_case_at_its_defect_and_fails() {
    let cases = cases();
    assert!(cases.len() >= 40, "the corpus has {} cases", cases.len());
    for case in cases {
        let repo = materialise(&case);
        let out = slipway(&["validate", "--repo", repo.path().to_str().unwrap()], &[], repo.path());
        assert_eq!(out.status.code(), Some(1), "{}: {}", name(&case), text(&out));
        assert_expected(&case, &text(&out));
    }
}

#[test]
fn no_case_deletes_anything_and_the_valid_pipelines_stay_converged() {
    let moto = Moto::start_bootstrapped();
    let env = moto.env();
    let good = example_repo();
    let good_arg = good.path().to_str().unwrap();
    let applied = slipway(&["apply", "--repo", good_arg], &env, good.path());
    assert!(applied.status.success(), "{}", text(&applied));

    for case in cases() {
        let repo = materialise(&case);
        let dir = repo.path().to_str().unwrap();
        let out = slipway(&["apply", "--repo", dir, "--prune", "--output", "json"], &env, repo.path());
        let report: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{}: {e}: {}", name(&case), text(&out)));
        assert_eq!(report["pruned"], serde_json::json!([]), "{}: prune deleted", name(&case));
        let pipelines = report["pipelines"].as_array().unwrap();
        assert!(!pipelines.is_empty(), "{}: the other pipeline was not applied: {report:#}", name(&case));
        for p in pipelines {
            assert_eq!(p["done"], serde_json::json!([]), "{}: {} was not converged", name(&case), p["pipeline"]);
            assert!(p.get("error").is_none() && p.get("skipped").is_none(), "{}: {p:#}", name(&case));
        }
        if RUN_CASES.contains(&name(&case).as_str()) {
            let run = slipway(&["run", "--once", "--prune", "--repo", dir, "--listen", "127.0.0.1:0"], &env, repo.path());
            assert!(run.status.code().is_some(), "{}: run --once did not exit: {}", name(&case), text(&run));
        }
    }

    // Nothing any case did (apply, prune, the controller) removed or changed a resource.
    let after = slipway(&["plan", "--repo", good_arg, "--detailed-exitcode"], &env, good.path());
    assert_eq!(after.status.code(), Some(0), "{}", text(&after));
}
