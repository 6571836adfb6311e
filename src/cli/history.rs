use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;

use super::{OutputFormat, RepoArgs, delivery_target};
use slipway_aws::Aws;
use slipway_aws::calls::Unobserved;
use slipway_core::delivery::history;

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Pipeline name (metadata.name).
    pub pipeline: String,
    #[command(flatten)]
    pub repo: RepoArgs,
    /// How many deployments to show, newest first.
    #[arg(long, default_value_t = 10)]
    pub limit: usize,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

pub async fn run(args: HistoryArgs) -> anyhow::Result<ExitCode> {
    let target = delivery_target(&args.repo, &args.pipeline)?;
    let aws = Aws::from_env(Arc::new(Unobserved)).await?;
    let entries = history(&aws, &aws, &target, args.limit).await?;
    if args.output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(ExitCode::SUCCESS);
    }
    if entries.is_empty() {
        println!("no deployments yet for {} ({}/{})", args.pipeline, target.application, target.group);
        return Ok(ExitCode::SUCCESS);
    }
    let short = |s: &Option<String>, n: usize| {
        s.as_deref().map(|s| s.trim_start_matches("sha256:").chars().take(n).collect()).unwrap_or_else(|| "-".to_string())
    };
    println!(
        "{:<14} {:<12} {:<21} {:>9} {:<14} {:<9} {:<26} ROLLBACK",
        "DEPLOYMENT", "OUTCOME", "STARTED", "DURATION", "IMAGE", "REVISION", "TASK DEFINITION"
    );
    for e in entries {
        let td = e.deployment.task_definition.as_deref().and_then(|a| a.rsplit('/').next()).unwrap_or("-").to_string();
        let rollback = match (e.rollback, &e.deployment.rolled_back_by, &e.deployment.rollback_of) {
            (Some(trigger), Some(by), _) => format!("{} → {by}", trigger.as_str()),
            (Some(trigger), None, _) => trigger.as_str().to_string(),
            (None, _, Some(of)) => format!("rollback of {of}"),
            _ => String::new(),
        };
        println!(
            "{:<14} {:<12} {:<21} {:>9} {:<14} {:<9} {:<26} {}",
            e.deployment.id,
            e.outcome.as_str(),
            e.started.as_deref().unwrap_or("-"),
            e.duration_seconds.map(|s| format!("{s:.0}s")).unwrap_or_else(|| "-".into()),
            short(&e.image_digest, 12),
            short(&e.git_revision, 8),
            td,
            rollback
        );
    }
    Ok(ExitCode::SUCCESS)
}
