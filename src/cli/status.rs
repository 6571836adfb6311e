use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

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
    let status: Value = serde_json::from_slice(&body).context("the status is not JSON")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", render(&status));
    }
    Ok(ExitCode::SUCCESS)
}

fn condition(p: &Value, kind: &str) -> String {
    p["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind))
        .and_then(|c| c["status"].as_str())
        .unwrap_or("-")
        .to_string()
}

/// The status as a table a person reads at a glance.
pub fn render(status: &Value) -> String {
    let short = |v: &Value| v.as_str().map(|s| s[..s.len().min(8)].to_string()).unwrap_or_else(|| "-".into());
    let mut out = String::new();
    let source = &status["source"];
    out.push_str(&format!(
        "source {} {} at {}{}\n",
        source["repo"].as_str().unwrap_or("-"),
        source["reference"].as_str().unwrap_or(""),
        short(&source["revision"]),
        source["lastFetchError"].as_str().map(|e| format!("  (fetch failing: {e})")).unwrap_or_default()
    ));
    out.push_str(&format!("ready {}\n\n", status["ready"]));
    let rows: Vec<[String; 9]> = status["pipelines"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let message = p["lastError"].as_str().map(str::to_owned).unwrap_or_else(|| {
                p["conditions"].as_array().and_then(|cs| cs.first()).and_then(|c| c["message"].as_str()).unwrap_or("").to_string()
            });
            [
                p["name"].as_str().unwrap_or("-").to_string(),
                p["sync"].as_str().unwrap_or("-").to_string(),
                condition(p, "Ready"),
                condition(p, "Synced"),
                condition(p, "Drifted"),
                condition(p, "Stalled"),
                condition(p, "ImageDrift"),
                short(&p["lastAppliedRevision"]),
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
    if let Some(invalid) = status["invalid"].as_array().filter(|i| !i.is_empty()) {
        out.push_str("\ninvalid manifests:\n");
        for d in invalid {
            out.push_str(&format!(
                "  {}:{}:{}: {}\n",
                d["file"].as_str().unwrap_or("?"),
                d["line"],
                d["column"],
                d["message"].as_str().unwrap_or("")
            ));
        }
    }
    if let Some(orphans) = status["orphans"].as_array().filter(|o| !o.is_empty()) {
        out.push_str(&format!("\n{} orphaned resource(s) (owned by slipway, no longer in Git)\n", orphans.len()));
    }
    out
}
