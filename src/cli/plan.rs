use std::process::ExitCode;
use std::sync::Arc;

use super::{OutputFormat, PlanArgs};
use crate::engine::{plan, prepare};
use crate::report::render_plan;
use slipway_aws::Aws;
use slipway_aws::calls::Unobserved;

pub async fn run(args: PlanArgs) -> anyhow::Result<ExitCode> {
    let aws = Aws::from_env(Arc::new(Unobserved)).await?.with_state_bucket(args.prune.state_bucket.clone());
    let prepared = prepare(&args.selection.repo.repo, &args.selection.repo.quotas.admission(&aws).await?)?;
    let plan = plan(&aws, &prepared, &args.selection.pipelines, args.selection.concurrency, &args.prune.policy(false)).await?;
    match args.output {
        OutputFormat::Text => print!("{}", render_plan(&plan)),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&plan)?),
    }
    Ok(match (plan.has_errors(), plan.has_changes(), args.detailed_exitcode) {
        (true, _, _) => ExitCode::FAILURE,
        (false, true, true) => ExitCode::from(2),
        _ => ExitCode::SUCCESS,
    })
}
