//! `slipway validate`: every error of every manifest, then one line that counts them.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::ExitCode;

use slipway_core::manifest::{API_VERSION, Diagnostic};

use super::RepoArgs;
use crate::engine::prepare;

pub fn run(args: RepoArgs) -> anyhow::Result<ExitCode> {
    // No AWS here: pipelines are counted against the quotas in name order (plan and apply count
    // the ones already applied first).
    let admission = args.quotas.offline_admission()?;
    let prepared = prepare(&args.repo, &admission)?;
    for d in &prepared.diagnostics {
        println!("{d}");
    }
    for d in &prepared.suspects {
        eprintln!("warning: {d}");
    }
    for w in &prepared.warnings {
        eprintln!("warning: {w}");
    }
    let valid = prepared.pipelines.len();
    // A suspect (a YAML file that may be a broken manifest) holds prune: validate fails on it
    // too, so the file is fixed or removed before it silently stops every prune.
    let held = match prepared.suspects.len() {
        0 => String::new(),
        n => format!("; {} may be a broken manifest and holds prune (see the warnings)", plural(n, "file")),
    };
    if !prepared.diagnostics.is_empty() {
        let errors = plural(prepared.diagnostics.len(), "error");
        let manifests = plural(invalid_manifests(&prepared.diagnostics), "manifest");
        println!("{errors} in {manifests}; {} valid{held}", plural(valid, "pipeline"));
        Ok(ExitCode::FAILURE)
    } else if valid == 0 {
        println!("no slipway manifest in {} (a manifest is YAML with `apiVersion: {API_VERSION}`){held}", prepared.root.display());
        Ok(ExitCode::FAILURE)
    } else if !held.is_empty() {
        println!("{} valid{held}", plural(valid, "pipeline"));
        Ok(ExitCode::FAILURE)
    } else {
        println!("{valid} pipeline(s) valid in {}", prepared.root.display());
        Ok(ExitCode::SUCCESS)
    }
}

/// How many manifests the errors are in: one per pipeline named (its manifest, or a file it
/// references), and one per file for errors that name no pipeline (a document that cannot be
/// read as one).
fn invalid_manifests(diagnostics: &[Diagnostic]) -> usize {
    let pipelines: BTreeSet<&str> = diagnostics.iter().filter_map(|d| d.pipeline.as_deref()).collect();
    let files: BTreeSet<&Path> = diagnostics.iter().filter(|d| d.pipeline.is_none()).map(|d| d.file.as_path()).collect();
    pipelines.len() + files.len()
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}
