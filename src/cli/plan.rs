use std::process::ExitCode;

use super::{OutputFormat, PlanArgs};
use crate::aws::Aws;
use crate::engine::{plan, prepare};
use crate::report::render_plan;

pub async fn run(args: PlanArgs) -> anyhow::Result<ExitCode> {
    let prepared = prepare(&args.selection.repo.repo)?;
    let aws = Aws::from_env().await?;
    let plan = plan(&aws, &prepared, &args.selection.pipelines, args.selection.concurrency).await?;
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
