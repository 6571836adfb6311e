use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args};
use tokio::sync::watch;
use tracing::{error, info};

use slipway_aws::Aws;
use slipway_aws::changes;
use slipway_core::lease::LeaseTimes;
use slipway_core::quota::Quota;
use slipway_core::trigger::TriggerRoute;

use crate::controller::{Controller, RealWorld, Settings, Shared, SourceSettings};
use crate::http::{WebhookSecrets, router};
use crate::metrics::Metrics;
use crate::replica::ReplicaSettings;
use crate::source::git::{self, GitAuth, GitRef, GitSettings, KnownHosts, Secret, SshKey};

/// Durations as `500ms`, `2s`, `5m`, `1h`.
fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 500ms, 30s, 5m, 1h)"))
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("revision").args(["branch", "tag", "commit"]).multiple(false)))]
pub struct RunArgs {
    /// Config repository: a Git URL (https://, ssh://, git@host:path, file://, git://) or a local
    /// directory (watched for changes).
    /// A password in an https:// URL is never shown (not by --help, not in logs, not in /status),
    /// but prefer --git-token from a secret store.
    #[arg(long, env = "SLIPWAY_REPO", hide_env_values = true)]
    pub repo: String,
    #[command(flatten)]
    pub quotas: super::QuotaArgs,
    /// Branch to follow (default: main).
    #[arg(long, env = "SLIPWAY_BRANCH")]
    pub branch: Option<String>,
    /// Tag to deploy instead of a branch.
    #[arg(long, env = "SLIPWAY_TAG")]
    pub tag: Option<String>,
    /// Commit to deploy instead of a branch.
    #[arg(long, env = "SLIPWAY_COMMIT")]
    pub commit: Option<String>,
    /// Subdirectory of the repository holding the manifests.
    #[arg(long, env = "SLIPWAY_PATH")]
    pub path: Option<PathBuf>,
    /// How often to poll Git for new commits.
    #[arg(long, env = "SLIPWAY_INTERVAL", default_value = "1m", value_parser = duration)]
    pub interval: Duration,
    /// How often every pipeline's live AWS state is checked again (AWS has no watch).
    #[arg(long, env = "SLIPWAY_DRIFT_INTERVAL", default_value = "5m", value_parser = duration)]
    pub drift_interval: Duration,
    /// See changes made in AWS in seconds instead of reading every pipeline each --drift-interval:
    /// slipway creates (and owns) one EventBridge rule matching the write API calls CloudTrail
    /// records for ECR, S3 bucket settings, CloudTrail, CodeBuild, CodeDeploy, CodePipeline and
    /// EventBridge, and one SQS queue it sends them to; slipway long-polls the queue and re-checks
    /// only the pipeline that owns the changed resource. AWS delivers these events only while a
    /// CloudTrail trail logs management events in the Region (most accounts have one).
    #[arg(long, env = "SLIPWAY_CHANGE_EVENTS", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new(), conflicts_with = "once")]
    pub change_events: bool,
    /// With --change-events, how often every pipeline is still read in full, a safety net for an
    /// event lost (CloudTrail delivers them best effort). While the feed is down, --drift-interval
    /// applies.
    #[arg(long, env = "SLIPWAY_FULL_CHECK_INTERVAL", default_value = "2h", value_parser = duration, requires = "change_events")]
    pub full_check_interval: Duration,
    /// With --change-events, the name of its queue and rule (slipway-*, as the shipped IAM policy
    /// allows). A second installation in the same account and Region needs its own.
    #[arg(long, env = "SLIPWAY_CHANGE_EVENTS_NAME", default_value = slipway_aws::changes::DEFAULT_NAME, value_parser = super::feed_name, requires = "change_events")]
    pub change_events_name: String,
    /// Run as one of several replicas: the DynamoDB table (slipway-*, as the shipped IAM policy
    /// allows) holding their heartbeats and one lease per shard. Pipelines are spread over the
    /// live replicas by shard; each pipeline is written by the holder of its shard's lease only,
    /// and a replica that dies or stops has its shards taken over within about 1.3 times
    /// --lease-duration. Every replica must be given the same table and --ha-shards.
    #[arg(long, env = "SLIPWAY_HA_TABLE", value_parser = super::feed_name, conflicts_with_all = ["once", "change_events"])]
    pub ha_table: Option<String>,
    /// Create the --ha-table table (on-demand billing, partition key `pk` of type S) when it is
    /// missing. Without it a missing table is an error, retried every few seconds.
    #[arg(long, env = "SLIPWAY_HA_CREATE_TABLE", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new(), requires = "ha_table")]
    pub ha_create_table: bool,
    /// How many shards the pipelines are spread over (the same on every replica; changing it
    /// moves most pipelines once). More shards than replicas spreads them evenly.
    #[arg(long, env = "SLIPWAY_HA_SHARDS", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024), requires = "ha_table")]
    pub ha_shards: u16,
    /// How long a shard lease lasts without renewal: a dead replica's pipelines are taken over
    /// within about 1.3 times this. Renewed every third of it; a replica stops writing for a
    /// shard in its lease's last sixth.
    #[arg(long, env = "SLIPWAY_LEASE_DURATION", default_value = "30s", value_parser = lease_duration, requires = "ha_table")]
    pub lease_duration: Duration,
    /// This replica's id in the lease table (default: the host name, the pod's name on EKS, plus
    /// a random suffix, so a restarted process is a new member).
    #[arg(long, env = "SLIPWAY_REPLICA_ID", value_parser = replica_id, requires = "ha_table")]
    pub replica_id: Option<String>,
    /// Address for /healthz, /readyz, /status and the webhooks.
    #[arg(long, env = "SLIPWAY_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// One full pass (fetch, reconcile every pipeline, look for orphans), then exit with its result.
    #[arg(long, env = "SLIPWAY_ONCE", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub once: bool,
    /// Pipelines reconciled at once.
    #[arg(long, env = "SLIPWAY_CONCURRENCY", default_value_t = 4)]
    pub concurrency: usize,
    /// Delete the resources the inventory records whose pipeline left Git: never when a manifest
    /// or any YAML file is broken, the revision is empty, or more pipelines than --prune-max would
    /// lose resources.
    #[arg(long, env = "SLIPWAY_PRUNE", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub prune: bool,
    #[command(flatten)]
    pub prune_guards: super::PruneArgs,
    /// Where the repository is cloned (must be writable).
    #[arg(long, env = "SLIPWAY_WORKDIR", default_value = ".slipway/checkout")]
    pub workdir: PathBuf,
    /// A fetch that takes longer is abandoned and retried on the next poll.
    #[arg(long, env = "SLIPWAY_FETCH_TIMEOUT", default_value = "60s", value_parser = duration)]
    pub fetch_timeout: Duration,
    /// How long reconciles in progress may finish after SIGTERM (ECS kills after 30s).
    #[arg(long, env = "SLIPWAY_SHUTDOWN_GRACE", default_value = "20s", value_parser = duration)]
    pub shutdown_grace: Duration,
    /// How often a pipeline is looked at while a deployment runs, and how soon a pass that wrote
    /// is verified by reading AWS again (Ready waits for it).
    #[arg(long, env = "SLIPWAY_WATCH_INTERVAL", default_value = "15s", value_parser = duration)]
    pub watch_interval: Duration,
    /// HTTPS user name (defaults to the URL's, or x-access-token with a token).
    #[arg(long, env = "SLIPWAY_GIT_USERNAME")]
    pub git_username: Option<String>,
    /// HTTPS password (basic auth).
    #[arg(long, env = "SLIPWAY_GIT_PASSWORD", hide_env_values = true)]
    pub git_password: Option<String>,
    /// HTTPS access token (GitLab/GitHub personal or project token).
    #[arg(long, env = "SLIPWAY_GIT_TOKEN", hide_env_values = true)]
    pub git_token: Option<String>,
    /// SSH private key file.
    #[arg(long, env = "SLIPWAY_GIT_SSH_KEY_FILE")]
    pub git_ssh_key_file: Option<PathBuf>,
    /// SSH private key itself (PEM/OpenSSH text), as the seeds' SSH_PRIVATE_KEY; never logged.
    #[arg(long, env = "SLIPWAY_GIT_SSH_KEY", hide_env_values = true, hide = true)]
    pub git_ssh_key: Option<String>,
    /// Passphrase of the SSH key.
    #[arg(long, env = "SLIPWAY_GIT_SSH_KEY_PASSPHRASE", hide_env_values = true)]
    pub git_ssh_key_passphrase: Option<String>,
    /// known_hosts file that SSH host keys are checked against (default ~/.ssh/known_hosts).
    /// Unknown or changed host keys are refused.
    #[arg(long, env = "SLIPWAY_KNOWN_HOSTS", conflicts_with = "known_hosts_data")]
    pub known_hosts: Option<PathBuf>,
    /// The known_hosts lines themselves instead of a file, e.g. from a secret store on ECS.
    #[arg(long, env = "SLIPWAY_KNOWN_HOSTS_DATA", value_name = "LINES")]
    pub known_hosts_data: Option<String>,
    /// Accept any SSH host key. Dangerous: only for throw-away setups.
    #[arg(long, env = "SLIPWAY_INSECURE_SKIP_HOST_KEY_CHECK", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub insecure_skip_host_key_check: bool,
    /// Shared token GitLab sends in X-Gitlab-Token to POST /webhooks/gitlab.
    #[arg(long, env = "SLIPWAY_GITLAB_WEBHOOK_TOKEN", hide_env_values = true)]
    pub gitlab_webhook_token: Option<String>,
    /// Secret GitHub signs POST /webhooks/github with (X-Hub-Signature-256).
    #[arg(long, env = "SLIPWAY_GITHUB_WEBHOOK_SECRET", hide_env_values = true)]
    pub github_webhook_secret: Option<String>,
}

fn lease_duration(s: &str) -> Result<Duration, String> {
    let d = duration(s)?;
    if d < Duration::from_secs(3) || d > Duration::from_secs(600) {
        return Err("between 3s and 10m".into());
    }
    Ok(d)
}

fn replica_id(s: &str) -> Result<String, String> {
    let valid = !s.is_empty() && s.len() <= 128 && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
    if valid { Ok(s.to_owned()) } else { Err("at most 128 letters, digits, - _ . and :".into()) }
}

/// The host name (a pod's name on EKS, the task's on ECS) and a random suffix.
fn default_replica_id() -> String {
    let host = std::env::var("HOSTNAME").ok().filter(|h| replica_id(h).is_ok()).unwrap_or_else(|| "slipway".into());
    format!("{host}-{:06x}", fastrand::u32(..1 << 24))
}

/// A local directory when it exists and is not a URL; otherwise a Git URL.
fn source(args: &RunArgs) -> anyhow::Result<SourceSettings> {
    let looks_like_url = args.repo.contains("://") || (args.repo.contains('@') && args.repo.contains(':'));
    if !looks_like_url {
        let dir = PathBuf::from(&args.repo);
        anyhow::ensure!(dir.is_dir(), "--repo {}: no such directory (and not a Git URL)", args.repo);
        return Ok(SourceSettings::Dir(dir));
    }
    let reference = match (&args.branch, &args.tag, &args.commit) {
        (_, Some(tag), _) => GitRef::Tag(tag.clone()),
        (_, _, Some(commit)) => GitRef::Commit(commit.clone()),
        (branch, _, _) => GitRef::Branch(branch.clone().unwrap_or_else(|| "main".into())),
    };
    // The seeds hand the key over as SSH_PRIVATE_KEY; accept it too.
    let inline_key = args.git_ssh_key.clone().or_else(|| std::env::var("SSH_PRIVATE_KEY").ok().filter(|k| !k.trim().is_empty()));
    let ssh_key = match (&args.git_ssh_key_file, inline_key) {
        (Some(path), _) => Some(SshKey::File(path.clone())),
        (None, Some(key)) => Some(SshKey::Inline(Secret::new(key))),
        (None, None) => None,
    };
    Ok(SourceSettings::Git(GitSettings {
        url: args.repo.clone(),
        reference,
        workdir: args.workdir.clone(),
        timeout: args.fetch_timeout,
        auth: GitAuth {
            username: args.git_username.clone(),
            password: args.git_password.clone().map(Secret::new),
            token: args.git_token.clone().map(Secret::new),
            ssh_key,
            ssh_key_passphrase: args.git_ssh_key_passphrase.clone().map(Secret::new),
            known_hosts: match (&args.known_hosts, &args.known_hosts_data) {
                (Some(path), _) => KnownHosts::File(path.clone()),
                (None, Some(lines)) => KnownHosts::Inline(lines.clone()),
                (None, None) => KnownHosts::Home,
            },
            insecure_skip_host_key_check: args.insecure_skip_host_key_check,
        },
    }))
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let source = source(&args)?;
    git::set_network_timeouts(args.fetch_timeout);
    let settings = Settings {
        interval: args.interval,
        drift_interval: args.drift_interval,
        concurrency: args.concurrency,
        prune: args.prune,
        prune_policy: args.prune_guards.policy(args.prune),
        once: args.once,
        shutdown_grace: args.shutdown_grace,
        watch_interval: args.watch_interval,
        full_check_interval: args.change_events.then_some(args.full_check_interval),
    };
    let shared = Arc::new(Shared::default());
    let metrics = Arc::new(Metrics::new());
    let secrets = WebhookSecrets {
        gitlab_token: args.gitlab_webhook_token.map(Secret::new),
        github_secret: args.github_webhook_secret.map(Secret::new),
    };
    let (stop_tx, mut stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        info!("shutdown signal received: finishing work in progress");
        let _ = stop_tx.send(true);
    });

    // Serve first: /healthz answers (and /readyz says why not ready) even while AWS is unreachable.
    let listener = tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("failed to listen on {}", args.listen))?;
    info!(address = %listener.local_addr()?, "serving /healthz, /readyz, /status, /metrics and webhooks");
    let mut http_stop = stop_rx.clone();
    let serve = axum::serve(listener, router(shared.clone(), metrics.clone(), secrets)).with_graceful_shutdown(async move {
        let _ = http_stop.wait_for(|stop| *stop).await;
    });
    let server = tokio::spawn(async move { serve.await });

    let aws = loop {
        match Aws::from_env(metrics.clone()).await {
            Ok(aws) => break aws.with_state_bucket(args.prune_guards.state_bucket.clone()),
            Err(err) if args.once => return Err(err.into()),
            Err(err) => {
                let delay = Duration::from_secs(10);
                error!(error = %err, retry_in = ?delay, "failed to set up AWS access; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop_rx.wait_for(|stop| *stop) => return Ok(ExitCode::SUCCESS),
                }
            }
        }
    };
    let feed = args.change_events.then(|| args.change_events_name.clone());
    let mut limits = args.quotas.limits()?;
    if feed.is_some() {
        // The change feed's rule is on the same bus as the pipelines' rules.
        limits.reserve(Quota::EventRules, 1);
    }
    let route = args.quotas.trigger_route;
    let mut controller_triggers = None;
    if route == TriggerRoute::Queue {
        if args.once {
            // Nothing reads the queue after this pass: make sure triggers wait in it.
            changes::ensure(&aws, &args.quotas.trigger_queue, changes::Purpose::Triggers)
                .await
                .with_context(|| format!("setting up the trigger queue {}", args.quotas.trigger_queue))?;
        } else {
            let (tx, rx) = tokio::sync::watch::channel(None);
            crate::triggers::spawn(aws.clone(), args.quotas.trigger_queue.clone(), metrics.clone(), rx);
            controller_triggers = Some(tx);
        }
    }
    let aws_for_leases = aws.clone();
    let world = Arc::new(
        RealWorld::new(aws, metrics.clone(), source, args.path.clone(), args.fetch_timeout, limits)
            .with_change_feed(feed)
            .with_trigger_route(route),
    );
    let mut controller = Controller::new(settings, world, shared, metrics.clone());
    if let Some(tx) = controller_triggers {
        controller = controller.with_trigger_index(tx);
    }
    let mut replica = None;
    if let Some(table) = &args.ha_table {
        let settings = ReplicaSettings {
            table: table.clone(),
            create_table: args.ha_create_table,
            id: args.replica_id.clone().unwrap_or_else(default_replica_id),
            shards: args.ha_shards,
            times: LeaseTimes::new(args.lease_duration.as_millis() as u64),
        };
        let (task, sharding) = crate::replica::spawn(aws_for_leases.clone(), settings, metrics);
        controller = controller.with_sharding(sharding);
        replica = Some(task);
    }
    let ok = controller.run(stop_rx).await;
    // Every reconcile has ended: the leases can go to the other replicas.
    if let Some(replica) = replica {
        replica.stop().await;
    }
    // The loop ended (signal or --once): stop the HTTP server too.
    server.abort();
    info!(ok, "stopped");
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("installing a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
