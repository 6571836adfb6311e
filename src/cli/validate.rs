use std::process::ExitCode;

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
    if prepared.diagnostics.is_empty() {
        println!("{valid} pipeline(s) valid in {}", prepared.root.display());
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{} error(s); {valid} pipeline(s) valid", prepared.diagnostics.len());
        Ok(ExitCode::FAILURE)
    }
}
