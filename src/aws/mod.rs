//! The AWS clients and the one place SDK errors are mapped into kinds.
//!
//! Configuration comes from the SDK's standard chain (environment, profile, ECS task role,
//! IRSA); `AWS_ENDPOINT_URL` and `AWS_REGION` work as the SDK defines them. S3 uses path-style
//! addressing when an endpoint is overridden, as emulators need.

pub mod calls;

use std::fmt;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;

/// All the service clients, plus the account and region resources live in.
#[derive(Clone)]
pub struct Aws {
    pub region: String,
    pub account: String,
    pub partition: String,
    pub ecr: aws_sdk_ecr::Client,
    pub s3: aws_sdk_s3::Client,
    pub cloudtrail: aws_sdk_cloudtrail::Client,
    pub events: aws_sdk_eventbridge::Client,
    pub codebuild: aws_sdk_codebuild::Client,
    pub codedeploy: aws_sdk_codedeploy::Client,
    pub codepipeline: aws_sdk_codepipeline::Client,
    pub ecs: aws_sdk_ecs::Client,
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    /// Every call made through these clients.
    pub calls: calls::CallLog,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no AWS region is configured: set AWS_REGION or a profile region")]
    NoRegion,
    #[error("failed to identify the AWS account (sts:GetCallerIdentity): {0}")]
    Identity(AwsError),
}

impl Aws {
    /// Builds clients from the standard configuration chain and looks up the account once.
    pub async fn from_env() -> Result<Aws, ConfigError> {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self::from_config(&config).await
    }

    pub async fn from_config(config: &aws_config::SdkConfig) -> Result<Aws, ConfigError> {
        if config.region().is_none() {
            return Err(ConfigError::NoRegion);
        }
        let identity = aws_sdk_sts::Client::new(config)
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| ConfigError::Identity(aws_err("sts", "GetCallerIdentity")(e)))?;
        let account = identity.account().unwrap_or_default().to_string();
        let partition = identity.arn().and_then(|arn| arn.split(':').nth(1)).unwrap_or("aws").to_string();
        Ok(Self::new(config, account, partition))
    }

    /// Clients for a known account, without asking STS.
    pub fn new(config: &aws_config::SdkConfig, account: String, partition: String) -> Aws {
        let region = config.region().map(|r| r.to_string()).unwrap_or_default();
        let calls = calls::CallLog::default();
        macro_rules! client {
            ($sdk:ident) => {
                $sdk::Client::from_conf($sdk::config::Builder::from(config).interceptor(calls.clone()).build())
            };
        }
        let s3_config =
            aws_sdk_s3::config::Builder::from(config).force_path_style(config.endpoint_url().is_some()).interceptor(calls.clone()).build();
        Aws {
            region,
            account,
            partition,
            ecr: client!(aws_sdk_ecr),
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            cloudtrail: client!(aws_sdk_cloudtrail),
            events: client!(aws_sdk_eventbridge),
            codebuild: client!(aws_sdk_codebuild),
            codedeploy: client!(aws_sdk_codedeploy),
            codepipeline: client!(aws_sdk_codepipeline),
            ecs: client!(aws_sdk_ecs),
            elb: client!(aws_sdk_elasticloadbalancingv2),
            calls,
        }
    }

    /// `arn:<partition>:<service>:<region>:<account>:<resource>`.
    pub fn arn(&self, service: &str, resource: &str) -> String {
        format!("arn:{}:{}:{}:{}:{}", self.partition, service, self.region, self.account, resource)
    }
}

/// What went wrong, in the terms a caller decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Throttled,
    NotFound,
    Conflict,
    AccessDenied,
    Invalid,
    /// Timeouts, connection failures, 5xx: worth another try.
    Transient,
}

/// A failed AWS call, mapped once at the adapter boundary.
#[derive(Debug, Clone, thiserror::Error)]
pub struct AwsError {
    pub service: &'static str,
    pub operation: &'static str,
    pub kind: ErrorKind,
    pub code: Option<String>,
    pub message: String,
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{} failed", self.service, self.operation)?;
        if let Some(code) = &self.code {
            write!(f, " ({code})")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

impl AwsError {
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, ErrorKind::Throttled | ErrorKind::Transient)
    }
    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }
    /// An error slipway raises itself at the adapter (a refusal, not a failed call).
    pub fn refused(service: &'static str, operation: &'static str, message: impl Into<String>) -> AwsError {
        AwsError { service, operation, kind: ErrorKind::Invalid, code: None, message: message.into() }
    }
}

/// Maps an SDK error into an [`AwsError`]; use as `.map_err(aws_err("ecr", "CreateRepository"))`.
pub fn aws_err<E>(service: &'static str, operation: &'static str) -> impl FnOnce(SdkError<E, HttpResponse>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    move |err| {
        let status = err.raw_response().map(|r| r.status().as_u16());
        let (code, message) = match &err {
            SdkError::ServiceError(service_err) => {
                let e = service_err.err();
                let message = match e.message() {
                    Some(m) => m.to_owned(),
                    None => aws_smithy_types::error::display::DisplayErrorContext(e).to_string(),
                };
                (e.code().map(str::to_owned), message)
            }
            other => (None, aws_smithy_types::error::display::DisplayErrorContext(other).to_string()),
        };
        let kind = classify(code.as_deref(), status, &err);
        AwsError { service, operation, kind, code, message }
    }
}

fn classify<E, R>(code: Option<&str>, status: Option<u16>, err: &SdkError<E, R>) -> ErrorKind {
    if let Some(code) = code {
        if matches!(
            code,
            "Throttling"
                | "ThrottlingException"
                | "TooManyRequestsException"
                | "RequestLimitExceeded"
                | "SlowDown"
                | "ProvisionedThroughputExceededException"
        ) {
            return ErrorKind::Throttled;
        }
        if code.ends_with("NotFoundException")
            || code.ends_with("NotFound")
            || code.ends_with("DoesNotExistException")
            || code.starts_with("NoSuch")
            || matches!(
                code,
                "NotFound" | "ResourceNotFoundException" | "ServerSideEncryptionConfigurationNotFoundError" | "TrailNotFoundException"
            )
        {
            return ErrorKind::NotFound;
        }
        if code.contains("AlreadyExists")
            || code.contains("InUse")
            || code.contains("Conflict")
            || code.ends_with("NotEmptyException")
            || code == "BucketNotEmpty"
        {
            return ErrorKind::Conflict;
        }
        if code.contains("AccessDenied")
            || code.contains("Unauthorized")
            || code == "UnrecognizedClientException"
            || code == "InvalidClientTokenId"
        {
            return ErrorKind::AccessDenied;
        }
    }
    match status {
        Some(404) => ErrorKind::NotFound,
        Some(403) => ErrorKind::AccessDenied,
        Some(429) => ErrorKind::Throttled,
        Some(s) if s >= 500 => ErrorKind::Transient,
        Some(_) => ErrorKind::Invalid,
        None => match err {
            SdkError::ConstructionFailure(_) => ErrorKind::Invalid,
            _ => ErrorKind::Transient,
        },
    }
}

/// `Ok(None)` when access is denied. For discovery across the account: a resource slipway may not
/// read (a central logging bucket, another team's repository) is not slipway's, and must not stop
/// the search for the ones that are.
pub fn skip_if_denied<T>(result: Result<T, AwsError>) -> Result<Option<T>, AwsError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind == ErrorKind::AccessDenied => {
            tracing::debug!(error = %e, "skipping a resource slipway may not read");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// `Ok(None)` for not-found, so reads can say "absent" without an error.
pub fn absent_if_not_found<T>(result: Result<T, AwsError>) -> Result<Option<T>, AwsError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}
