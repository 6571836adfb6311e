use std::process::ExitCode;
use std::sync::Arc;

use super::{ApplyArgs, OutputFormat};
use crate::engine::{apply, plan, prepare};
use crate::report::render_apply;
use anyhow::Context;
use slipway_aws::Aws;
use slipway_aws::calls::Unobserved;
use slipway_aws::changes;
use slipway_core::trigger::TriggerRoute;

pub async fn run(args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let aws = Aws::from_env(Arc::new(Unobserved)).await?.with_state_bucket(args.prune_guards.state_bucket.clone());
    let prepared = prepare(&args.selection.repo.repo, &args.selection.repo.quotas.admission(&aws).await?)?;
    let plan = plan(&aws, &prepared, &args.selection.pipelines, args.selection.concurrency, &args.prune_guards.policy(args.prune)).await?;
    let quotas = &args.selection.repo.quotas;
    if quotas.trigger_route == TriggerRoute::Queue {
        // Before the pipelines: from now on their triggers wait in the queue for `slipway run`.
        changes::ensure(&aws, &quotas.trigger_queue, changes::Purpose::Triggers)
            .await
            .with_context(|| format!("setting up the trigger queue {}", quotas.trigger_queue))?;
    }
    let report = apply(&aws, &plan, args.prune, args.selection.concurrency).await;
    match args.output {
        OutputFormat::Text => {
            print!("{}", render_apply(&report));
            if quotas.trigger_route == TriggerRoute::Queue {
                println!(
                    "Trigger queue {}: ready; `slipway run --trigger-route queue` reads it and starts the pipelines.",
                    quotas.trigger_queue
                );
            }
        }
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(if report.succeeded() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
