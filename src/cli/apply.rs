use std::process::ExitCode;
use std::sync::Arc;

use super::{ApplyArgs, OutputFormat};
use crate::engine::{apply, plan, prepare};
use crate::report::render_apply;
use slipway_aws::Aws;
use slipway_aws::calls::Unobserved;

pub async fn run(args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let aws = Aws::from_env(Arc::new(Unobserved)).await?.with_state_bucket(args.prune_guards.state_bucket.clone());
    let prepared = prepare(&args.selection.repo.repo, &args.selection.repo.quotas.admission(&aws).await?)?;
    let plan = plan(&aws, &prepared, &args.selection.pipelines, args.selection.concurrency, &args.prune_guards.policy(args.prune)).await?;
    let report = apply(&aws, &plan, args.prune, args.selection.concurrency).await;
    match args.output {
        OutputFormat::Text => print!("{}", render_apply(&report)),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(if report.succeeded() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
