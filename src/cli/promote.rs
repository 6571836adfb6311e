use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;

use super::{RepoArgs, delivery_target};
use slipway_aws::Aws;
use slipway_aws::calls::Unobserved;
use slipway_core::delivery::api::HookAnswer;
use slipway_core::delivery::{Promoted, RollbackError, promote};

#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// Pipeline name (metadata.name).
    pub pipeline: String,
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Answer the hook with ROLLBACK instead: ECS sends traffic back to the running revision.
    #[arg(long)]
    pub rollback: bool,
}

pub async fn run(args: PromoteArgs) -> anyhow::Result<ExitCode> {
    let target = delivery_target(&args.repo, &args.pipeline)?;
    let aws = Aws::from_env(Arc::new(Unobserved)).await?;
    let answer = if args.rollback { HookAnswer::Rollback } else { HookAnswer::Continue };
    match promote(&aws, &target, answer).await {
        Ok(Promoted { deployment, hook_id, answer: HookAnswer::Continue }) => {
            println!("deployment {deployment} goes on past hook {hook_id}: ECS moves to the next stage");
        }
        Ok(Promoted { deployment, hook_id, answer: HookAnswer::Rollback }) => {
            println!("deployment {deployment} answered ROLLBACK at hook {hook_id}: ECS sends traffic back to the running revision");
        }
        Err(RollbackError::Refused(why)) => {
            eprintln!("refusing to promote {}: {why}", args.pipeline);
            return Ok(ExitCode::FAILURE);
        }
        Err(RollbackError::Aws(e)) => return Err(e.into()),
    }
    Ok(ExitCode::SUCCESS)
}
