//! `slipway status`: the `/status` of a running `slipway run`, as a table or as JSON. The JSON is
//! read into the same typed structs the server writes (`slipway_core::status`).

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use slipway_core::status::{ConditionType, ControllerStatus, PipelineStatus, Truth};

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Address of a running `slipway run`.
    #[arg(long, env = "SLIPWAY_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Print the raw JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let url = format!("{}/status", args.server.trim_end_matches('/'));
    let uri: hyper::Uri = url.parse().with_context(|| format!("invalid --server {}", args.server))?;
    let client: Client<_, Empty<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let response = tokio::time::timeout(std::time::Duration::from_secs(10), client.get(uri))
        .await
        .with_context(|| format!("{url} did not answer within 10s"))?
        .with_context(|| format!("failed to reach {url}"))?;
    anyhow::ensure!(response.status().is_success(), "{url} answered {}", response.status());
    let body = response.into_body().collect().await.context("failed to read the status")?.to_bytes();
    let status: ControllerStatus = serde_json::from_slice(&body).context("the status is not slipway's status JSON")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", render(&status));
    }
    Ok(ExitCode::SUCCESS)
}

fn condition(p: &PipelineStatus, kind: ConditionType) -> &'static str {
    p.truth(kind).map(|t| t.as_str()).unwrap_or("-")
}

/// The status as a table a person reads at a glance.
fn render(status: &ControllerStatus) -> String {
    let short = |v: &Option<String>| v.as_deref().map(|s| s[..s.len().min(8)].to_string()).unwrap_or_else(|| "-".into());
    let mut out = String::new();
    let source = &status.source;
    out.push_str(&format!(
        "source {} {} at {}{}\n",
        source.repo,
        source.reference.as_deref().unwrap_or(""),
        short(&source.revision),
        source.last_fetch_error.as_deref().map(|e| format!("  (fetch failing: {e})")).unwrap_or_default()
    ));
    out.push_str(&format!("ready {}\n", status.ready));
    match &status.change_feed {
        Some(feed) if feed.up => out.push_str(&format!("change feed up ({})\n", feed.queue.as_deref().unwrap_or("-"))),
        Some(feed) => out.push_str(&format!("change feed down: {}\n", feed.reason.as_deref().unwrap_or("-"))),
        None => {}
    }
    if let Some(r) = &status.replica {
        let held: Vec<String> = r.held.iter().map(u16::to_string).collect();
        out.push_str(&format!(
            "replica {} holds {} of {} shards [{}] in {}; {} live: {} (the pipelines below are its own)\n",
            r.id,
            r.held.len(),
            r.shards,
            held.join(","),
            r.table,
            r.members.len(),
            r.members.join(", ")
        ));
    }
    out.push('\n');
    let rows: Vec<[String; 9]> = status
        .pipelines
        .iter()
        .map(|p| {
            // A deployment waiting at a PAUSE hook says what to run, before any other message.
            let paused = p.condition(ConditionType::AwaitingPromotion).filter(|c| c.status == Truth::True);
            let message = p
                .last_error
                .clone()
                .or_else(|| paused.map(|c| c.message.clone()))
                .unwrap_or_else(|| p.conditions.first().map(|c| c.message.clone()).unwrap_or_default());
            [
                p.name.clone(),
                p.sync.as_str().to_string(),
                condition(p, ConditionType::Ready).into(),
                condition(p, ConditionType::Synced).into(),
                condition(p, ConditionType::Drifted).into(),
                condition(p, ConditionType::Stalled).into(),
                condition(p, ConditionType::ImageDrift).into(),
                short(&p.last_applied_revision),
                message,
            ]
        })
        .collect();
    let header = ["PIPELINE", "SYNC", "READY", "SYNCED", "DRIFTED", "STALLED", "IMAGEDRIFT", "APPLIED", "MESSAGE"].map(String::from);
    let widths: Vec<usize> = (0..8).map(|i| rows.iter().chain([&header]).map(|r| r[i].len()).max().unwrap_or(0)).collect();
    for row in [&header].into_iter().chain(rows.iter()) {
        let mut line = String::new();
        for (i, width) in widths.iter().enumerate() {
            line.push_str(&format!("{:<w$}  ", row[i], w = width));
        }
        line.push_str(&row[8]);
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if !status.invalid.is_empty() {
        out.push_str("\ninvalid manifests:\n");
        for d in &status.invalid {
            out.push_str(&format!("  {d}\n"));
        }
    }
    if !status.orphans.is_empty() {
        out.push_str(&format!("\n{} orphaned resource(s) (recorded in the inventory, no longer in Git)\n", status.orphans.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    #[test]
    fn a_deployment_waiting_at_a_pause_hook_says_what_to_run_in_the_table() {
        let mut web = PipelineStatus { name: "web".into(), ..Default::default() };
        web.set(ConditionType::Ready, Truth::True, "Synced", "in step with Git", SystemTime::UNIX_EPOCH);
        let status = |web: &PipelineStatus| ControllerStatus { pipelines: vec![web.clone()], ..Default::default() };
        assert!(render(&status(&web)).contains("in step with Git"));
        let waiting = "deployment d-1 waits at a PAUSE hook (POST_TEST_TRAFFIC_SHIFT): `slipway promote web` lets it go on";
        web.set(ConditionType::AwaitingPromotion, Truth::True, "PauseHook", waiting, SystemTime::UNIX_EPOCH);
        let table = render(&status(&web));
        assert!(table.contains(waiting) && !table.contains("in step with Git"), "{table}");
        web.set(ConditionType::AwaitingPromotion, Truth::False, "NotPaused", "", SystemTime::UNIX_EPOCH);
        assert!(render(&status(&web)).contains("in step with Git"));
    }
}
