//! The command line: one file per subcommand. Results go to stdout, logs to stderr.

mod apply;
mod history;
mod plan;
mod promote;
mod rollback;
mod run;
mod status;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "slipway",
    version,
    about = "Keep AWS container delivery pipelines exactly as a Git repository describes them",
    long_about = "slipway reads pipeline manifests (apiVersion: slipway.dev/v1alpha1, kind: Pipeline) from a config \
repository and converges the AWS resources they need: ECR repository, S3 source bucket (with its EventBridge \
notifications for an S3 trigger) and zip, EventBridge rules, one CloudTrail trail shared by the pipelines on the \
`via: cloudtrail` route, \
CodeBuild project, CodePipeline, and either a CodeDeploy application and blue/green deployment group \
(`deploy.strategy: codedeploy`) or the deployment settings of the referenced ECS service (`ecs-blue-green`, \
`ecs-linear`, `ecs-canary`: ECS shifts traffic itself).\n\n\
Typical use:\n  slipway validate --repo config/\n  slipway plan --repo config/ --detailed-exitcode\n  slipway apply --repo config/\n\n\
AWS credentials and region come from the SDK's standard chain (environment, profile, ECS task role, IRSA); \
AWS_ENDPOINT_URL points every client at an emulator."
)]
pub struct Cli {
    /// Log filter, as RUST_LOG (`warn`, `info`, `slipway=debug`, …). Logs go to stderr; plan and
    /// apply print their results to stdout, so `warn` keeps the terminal readable.
    #[arg(long, global = true, env = "SLIPWAY_LOG", default_value = "warn")]
    pub log: String,
    /// Log format.
    #[arg(long, global = true, env = "SLIPWAY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check every manifest and every file it references; print all errors as FILE:LINE:COL.
    ///
    /// Exit status: 0 valid, 1 invalid. Reads no AWS state.
    Validate(RepoArgs),
    /// Read live AWS state and show what apply would change, field by field.
    ///
    /// Exit status: 0 success (1 on error); with --detailed-exitcode 0 no changes, 2 changes,
    /// 1 error (an invalid manifest, a conflict, a missing reference, a failed read).
    Plan(PlanArgs),
    /// Converge AWS to the manifests, in dependency order, and print what was done.
    ///
    /// A pipeline with a conflict or a missing reference is skipped whole; a failure in one
    /// pipeline never stops the others. Exit status: 0 all applied, 1 anything failed.
    Apply(ApplyArgs),
    /// Run the GitOps controller: follow a Git repository (or watch a directory) and keep AWS
    /// converged, serving /healthz, /readyz, /status and webhooks.
    ///
    /// Every option also comes from the environment (SLIPWAY_*), so a container needs no
    /// arguments. Exit status with --once: 0 when every pipeline converged, 1 otherwise.
    Run(Box<run::RunArgs>),
    /// Print the status of a running controller as a table.
    Status(status::StatusArgs),
    /// List a pipeline's last deployments: image digest, Git revision, outcome, duration, and
    /// who or what rolled back. Reads AWS directly; no controller needed.
    History(history::HistoryArgs),
    /// Roll a pipeline back: stop a deployment in progress (CodeDeploy or ECS restores the previous
    /// revision) or, when none is running, deploy the last successful task definition (or --to).
    ///
    /// Refuses when there is nothing to roll back to. Works without a running controller.
    Rollback(rollback::RollbackArgs),
    /// Let a deployment waiting at a PAUSE hook go on (ECS strategies), or with --rollback send
    /// it back.
    ///
    /// Answers the hook with ContinueServiceDeployment. Refuses when no deployment of the
    /// pipeline's service waits at a PAUSE hook. Works without a running controller.
    Promote(promote::PromoteArgs),
    /// Print the JSON Schema of the manifest format (for editors).
    Schema,
}

#[derive(Debug, Args)]
pub struct RepoArgs {
    /// Config repository: a local directory (a Git work tree or not).
    #[arg(long, env = "SLIPWAY_REPO", default_value = ".", hide_env_values = true)]
    pub repo: PathBuf,
    #[command(flatten)]
    pub quotas: QuotaArgs,
}

/// The AWS quotas the manifests are counted against (see README, "AWS quotas").
#[derive(Debug, Clone, Args)]
pub struct QuotaArgs {
    /// Hold an AWS quota of this account and Region to another value, as NAME=N (repeatable, or
    /// comma-separated in the variable). Defaults are AWS's: cloudtrail-trails=5 (AWS does not
    /// raise it; lower it when the account has trails of its own), cloudtrail-selector-values=500
    /// (per trail, not raised either: 497 pipelines per trail), eventbridge-rules=300 and
    /// codepipeline-pipelines=1000 (raise them once AWS has raised yours). A pipeline that would
    /// pass one is refused before apply, at the manifest field that needs it.
    #[arg(long = "quota", env = "SLIPWAY_QUOTAS", value_delimiter = ',', value_name = "NAME=N")]
    pub quotas: Vec<String>,
    /// How triggers start pipelines. `rules` (default): one EventBridge rule per trigger,
    /// targeting its pipeline; nothing of slipway needs to run, but each seed-000 pipeline takes 2
    /// of the 300 rules a bus allows. `queue`: one rule and one SQS queue for the whole
    /// installation; `slipway run` reads the queue and starts the pipelines whose triggers match
    /// (events wait in the queue up to 4 days while it is down). Give every slipway command of an
    /// installation the same route (the variable does): switching creates the one side and leaves
    /// the other's rules as orphans for `apply --prune`.
    #[arg(long, env = "SLIPWAY_TRIGGER_ROUTE", default_value = "rules", value_name = "rules|queue", value_parser = trigger_route)]
    pub trigger_route: slipway_core::trigger::TriggerRoute,
    /// With --trigger-route queue: the name of the queue and of its rule (slipway-*, at most 64
    /// characters). Another installation in the same account and Region needs another.
    #[arg(long, env = "SLIPWAY_TRIGGER_QUEUE", default_value = slipway_core::trigger::DEFAULT_QUEUE, value_name = "NAME", value_parser = feed_name)]
    pub trigger_queue: String,
}

/// A name both SQS (80 characters) and EventBridge (64) take, under the shipped IAM policy's
/// `slipway-*`: the change feed's and the trigger queue's.
pub(crate) fn feed_name(s: &str) -> Result<String, String> {
    let valid = s.starts_with("slipway-") && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid { Ok(s.to_owned()) } else { Err("a name starting with slipway- of at most 64 letters, digits, - and _".into()) }
}

fn trigger_route(value: &str) -> Result<slipway_core::trigger::TriggerRoute, String> {
    slipway_core::trigger::TriggerRoute::parse(value).ok_or_else(|| format!("`{value}`: expected `rules` or `queue`"))
}

impl QuotaArgs {
    pub(crate) fn limits(&self) -> anyhow::Result<slipway_core::quota::Limits> {
        let mut limits = slipway_core::quota::Limits::default();
        for setting in &self.quotas {
            limits.set(setting).map_err(|why| anyhow::anyhow!("--quota {why}"))?;
        }
        Ok(limits)
    }

    /// The admission of plan and apply: the pipelines already applied first ([`crate::engine::admission`]).
    pub(crate) async fn admission(&self, aws: &slipway_aws::Aws) -> anyhow::Result<slipway_core::quota::Admission> {
        Ok(crate::engine::admission(aws, self.limits()?, self.trigger_route).await)
    }

    /// The admission without AWS (`validate`): in name order.
    pub(crate) fn offline_admission(&self) -> anyhow::Result<slipway_core::quota::Admission> {
        Ok(slipway_core::quota::Admission { limits: self.limits()?, applied: Default::default(), triggers: self.trigger_route })
    }
}

#[derive(Debug, Args)]
pub struct Selection {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Only these pipelines (repeatable). Orphans are looked for only without it.
    #[arg(long = "pipeline", value_name = "NAME")]
    pub pipelines: Vec<String>,
    /// How many pipelines are read or applied at once.
    #[arg(long, env = "SLIPWAY_CONCURRENCY", default_value_t = 8)]
    pub concurrency: usize,
}

/// The guards on prune (see README, "Ownership, conflicts and pruning").
#[derive(Debug, Clone, Args)]
pub struct PruneArgs {
    /// Prune even when the revision defines no pipeline at all, deleting everything this
    /// installation's inventory records. Without it, an empty revision (a wrong --repo, a failed
    /// checkout) deletes nothing.
    #[arg(long, env = "SLIPWAY_ALLOW_EMPTY", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub allow_empty: bool,
    /// Delete resources of at most this many pipelines in one pass; beyond it nothing is deleted
    /// and the plan says why.
    #[arg(long, env = "SLIPWAY_PRUNE_MAX", default_value_t = slipway_core::prune::DEFAULT_MAX_PIPELINES)]
    pub prune_max: usize,
    /// S3 bucket holding the inventory of what this installation created (prune deletes only
    /// what it records); created on the first apply. Default: slipway-state-<account>-<region>.
    /// Give each installation in an account and region its own.
    #[arg(long, env = "SLIPWAY_STATE_BUCKET", value_name = "BUCKET")]
    pub state_bucket: Option<String>,
}

impl PruneArgs {
    /// The guards, and whether prune is asked for.
    pub(crate) fn policy(&self, prune: bool) -> slipway_core::prune::PrunePolicy {
        slipway_core::prune::PrunePolicy { prune, allow_empty: self.allow_empty, max_pipelines: self.prune_max }
    }
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// What `apply --prune` would be allowed: the plan says when it would keep the orphans.
    #[command(flatten)]
    pub prune: PruneArgs,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Exit 0 when there is nothing to change, 2 when there is, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// Also delete the resources this installation's inventory records whose pipeline is no
    /// longer in Git. Never touches resources without slipway's tags, and deletes nothing when a manifest or any YAML file is
    /// broken, the revision is empty, or more pipelines than --prune-max would lose resources.
    #[arg(long)]
    pub prune: bool,
    #[command(flatten)]
    pub prune_guards: PruneArgs,
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate(args) => validate::run(args),
        Command::Plan(args) => plan::run(args).await,
        Command::Apply(args) => apply::run(args).await,
        Command::Run(args) => run::run(*args).await,
        Command::Status(args) => status::run(args).await,
        Command::History(args) => history::run(args).await,
        Command::Rollback(args) => rollback::run(args).await,
        Command::Promote(args) => promote::run(args).await,
        Command::Schema => {
            print!("{}", slipway_core::manifest::schema::pipeline_schema_json());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The delivery target of one pipeline, from a validated manifest in the repository.
fn delivery_target(repo: &RepoArgs, pipeline: &str) -> anyhow::Result<slipway_core::delivery::DeployTarget> {
    let admission = repo.quotas.offline_admission()?;
    let prepared = crate::engine::prepare(&repo.repo, &admission)?;
    let Some((valid, _)) = prepared.pipelines.iter().find(|(v, _)| v.name() == pipeline) else {
        let broken: Vec<String> =
            prepared.diagnostics.iter().filter(|d| d.pipeline.as_deref() == Some(pipeline)).map(|d| d.to_string()).collect();
        anyhow::ensure!(broken.is_empty(), "pipeline `{pipeline}` has invalid manifests:\n{}", broken.join("\n"));
        anyhow::bail!("no pipeline `{pipeline}` in {}", prepared.root.display());
    };
    slipway_core::delivery::DeployTarget::from_valid(valid)
        .ok_or_else(|| anyhow::anyhow!("pipeline `{pipeline}`: its task definition has no `<IMAGE1_NAME>` container"))
}
