use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;

use super::{RepoArgs, delivery_target};
use slipway_aws::Aws;
use slipway_aws::calls::Unobserved;
use slipway_core::delivery::{RollbackDone, RollbackError, live_tag, rollback};

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Pipeline name (metadata.name).
    pub pipeline: String,
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Deploy the task definition of this earlier successful deployment (see `slipway history`)
    /// instead of the last good one.
    #[arg(long, value_name = "DEPLOYMENT")]
    pub to: Option<String>,
}

pub async fn run(args: RollbackArgs) -> anyhow::Result<ExitCode> {
    let target = delivery_target(&args.repo, &args.pipeline)?;
    let aws = Aws::from_env(Arc::new(Unobserved)).await?;
    match rollback(&aws, &target, args.to.as_deref()).await {
        Ok(RollbackDone::Stopped { deployment }) => {
            let who = if target.strategy.is_ecs() {
                "ECS shifts traffic back to the previous revision"
            } else {
                "CodeDeploy shifts traffic back to the previous task set"
            };
            println!("stopped deployment {deployment} with rollback: {who}");
        }
        Ok(RollbackDone::Redeployed { deployment, of, task_definition }) => {
            println!("created deployment {deployment}: back to {task_definition} (from deployment {of})");
        }
        Err(RollbackError::Refused(why)) => {
            eprintln!("refusing to roll back {}: {why}", args.pipeline);
            return Ok(ExitCode::FAILURE);
        }
        Err(RollbackError::Aws(e)) => return Err(e.into()),
    }
    println!(
        "note: ECR's {} tag still points at the image you rolled back from; fix the app and push again (slipway keeps the running image tagged {})",
        target.tag,
        live_tag(&target.pipeline)
    );
    Ok(ExitCode::SUCCESS)
}
