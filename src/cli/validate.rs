use std::collections::BTreeSet;
use std::path::Path;
use std::process::ExitCode;

use slipway_core::manifest::API_VERSION;

use super::RepoArgs;
use crate::engine::prepare;

pub fn run(args: RepoArgs) -> anyhow::Result<ExitCode> {
    let prepared = prepare(&args.repo)?;
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
    let files: BTreeSet<&Path> = prepared.diagnostics.iter().map(|d| d.file.as_path()).collect();
    if !prepared.diagnostics.is_empty() {
        println!("{} error(s) in {} file(s); {valid} pipeline(s) valid", prepared.diagnostics.len(), files.len());
        Ok(ExitCode::FAILURE)
    } else if valid == 0 {
        println!("no slipway manifest in {} (a manifest is YAML with `apiVersion: {API_VERSION}`)", prepared.root.display());
        Ok(ExitCode::FAILURE)
    } else {
        println!("{valid} pipeline(s) valid in {}", prepared.root.display());
        Ok(ExitCode::SUCCESS)
    }
}
