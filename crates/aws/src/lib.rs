//! slipway's AWS layer: the SDK clients, the one place SDK errors get their kind, and the
//! adapters that read and write AWS for the pure layer (`slipway-core`): one per resource kind
//! ([`resource`]), the reads behind a plan ([`observe`]), and delivery's registry and services
//! ([`delivery`]). Depends on `slipway-core` only; it knows nothing of metrics, the controller or
//! the CLI: every call is reported to a [`calls::CallObserver`] the application hands in.
//!
//! Configuration comes from the SDK's standard chain (environment, profile, ECS task role,
//! IRSA); `AWS_ENDPOINT_URL` and `AWS_REGION` work as the SDK defines them. S3 uses path-style
//! addressing when an endpoint is overridden, as emulators need.

pub mod ahead;
pub mod calls;
pub mod changes;
pub mod delivery;
pub mod fence;
pub mod inventory;
pub mod lease;
pub mod observe;
mod recent;
pub mod resource;
mod service_deployment;
pub mod tags;

use std::sync::Arc;

use slipway_core::compile::Placement;
pub use slipway_core::error::{AwsError, ErrorKind};

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
    /// The Resource Groups Tagging API, for [`tags::sweep`].
    pub tagging: aws_sdk_resourcegroupstagging::Client,
    /// The change feed's queue ([`changes`]).
    pub sqs: aws_sdk_sqs::Client,
    /// The lease table of several replicas ([`lease`]).
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// Who this process acts as (`sts:GetCallerIdentity`), when it asked: its own writes come
    /// back as change events under this ARN.
    pub caller: Option<String>,
    /// Every call made through these clients.
    pub calls: calls::CallLog,
    /// Where this installation keeps what it created (see [`inventory`]).
    pub inventory: Arc<inventory::Inventory>,
    /// Held while a resource pipelines share is read and written ([`resource::apply_shared`]).
    pub(crate) shared_writes: Arc<futures::lock::Mutex<()>>,
    /// ECS services observe has just read, for the delivery check after it.
    pub(crate) recent_services: Arc<recent::RecentServices>,
    /// Task definitions already read (they never change).
    pub(crate) task_definitions: Arc<recent::KnownTaskDefinitions>,
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
    pub async fn from_env(observer: Arc<dyn calls::CallObserver>) -> Result<Aws, ConfigError> {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self::from_config(&config, observer).await
    }

    pub async fn from_config(config: &aws_config::SdkConfig, observer: Arc<dyn calls::CallObserver>) -> Result<Aws, ConfigError> {
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
        let mut aws = Self::new(config, account, partition, observer);
        aws.caller = identity.arn;
        Ok(aws)
    }

    /// Clients for a known account, without asking STS.
    pub fn new(config: &aws_config::SdkConfig, account: String, partition: String, observer: Arc<dyn calls::CallObserver>) -> Aws {
        let region = config.region().map(|r| r.to_string()).unwrap_or_default();
        let calls = calls::CallLog::new(observer);
        macro_rules! client {
            ($sdk:ident) => {
                $sdk::Client::from_conf(
                    $sdk::config::Builder::from(config).interceptor(calls.clone()).interceptor(fence::FenceCheck).build(),
                )
            };
        }
        let s3_config = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(config.endpoint_url().is_some())
            .interceptor(calls.clone())
            .interceptor(fence::FenceCheck)
            .build();
        let state_bucket = default_state_bucket(&account, &region);
        Aws {
            inventory: Arc::new(inventory::Inventory::new(state_bucket)),
            recent_services: Arc::default(),
            shared_writes: Arc::default(),
            task_definitions: Arc::default(),
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
            tagging: client!(aws_sdk_resourcegroupstagging),
            sqs: client!(aws_sdk_sqs),
            dynamodb: client!(aws_sdk_dynamodb),
            caller: None,
            calls,
        }
    }

    /// Keeps the inventory in `bucket` instead of the default one.
    pub fn with_state_bucket(mut self, bucket: Option<String>) -> Aws {
        if let Some(bucket) = bucket {
            self.inventory = Arc::new(inventory::Inventory::new(bucket));
        }
        self
    }

    /// Where resources are compiled for: partition, region and account, and the installation
    /// (its state bucket) shared resources are tagged with.
    pub fn placement(&self) -> Placement {
        Placement {
            partition: self.partition.clone(),
            region: self.region.clone(),
            account: self.account.clone(),
            installation: self.inventory.bucket.clone(),
        }
    }

    /// `arn:<partition>:<service>:<region>:<account>:<resource>`.
    pub fn arn(&self, service: &str, resource: &str) -> String {
        format!("arn:{}:{}:{}:{}:{}", self.partition, service, self.region, self.account, resource)
    }
}

/// `slipway-state-<account>-<region>`: one installation per account and region by default.
pub fn default_state_bucket(account: &str, region: &str) -> String {
    format!("slipway-state-{account}-{region}")
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
        let kind = if fence::is_fenced(&err) { ErrorKind::Fenced } else { classify(code.as_deref(), status, &err) };
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
                "NotFound"
                    | "ResourceNotFoundException"
                    | "ServerSideEncryptionConfigurationNotFoundError"
                    | "TrailNotFoundException"
                    | "QueueDoesNotExist"
                    | "AWS.SimpleQueueService.NonExistentQueue"
            )
        {
            return ErrorKind::NotFound;
        }
        if code.contains("AlreadyExists")
            || code.starts_with("BucketAlready")
            || code.contains("InUse")
            || code.contains("Conflict")
            || code.ends_with("NotEmptyException")
            || code == "BucketNotEmpty"
            || code == "ConditionalCheckFailedException"
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
        Some(409) => ErrorKind::Conflict,
        Some(429) => ErrorKind::Throttled,
        Some(s) if s >= 500 => ErrorKind::Transient,
        Some(_) => ErrorKind::Invalid,
        None => match err {
            SdkError::ConstructionFailure(_) => ErrorKind::Invalid,
            _ => ErrorKind::Transient,
        },
    }
}

/// `Ok(None)` for not-found, so reads can say "absent" without an error.
pub(crate) fn absent_if_not_found<T>(result: Result<T, AwsError>) -> Result<Option<T>, AwsError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    //! The classifier on errors built the way the SDK builds them: a service error with its code
    //! and raw HTTP response, a bare HTTP status (S3 answers HEAD with no body), and the failures
    //! that never reach a service.
    use super::*;
    use aws_sdk_s3::operation::head_bucket::HeadBucketError;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    fn response(status: u16) -> HttpResponse {
        HttpResponse::new(status.try_into().unwrap(), SdkBody::empty())
    }

    fn service(code: Option<&str>, status: u16) -> SdkError<HeadBucketError, HttpResponse> {
        let mut meta = ErrorMetadata::builder().message("what AWS said");
        if let Some(code) = code {
            meta = meta.code(code);
        }
        SdkError::service_error(HeadBucketError::generic(meta.build()), response(status))
    }

    fn mapped(err: SdkError<HeadBucketError, HttpResponse>) -> AwsError {
        aws_err("s3", "HeadBucket")(err)
    }

    #[test]
    fn service_errors_are_classified_by_code_before_status() {
        let cases = [
            ("ThrottlingException", 400, ErrorKind::Throttled),
            ("SlowDown", 503, ErrorKind::Throttled),
            ("RepositoryNotFoundException", 400, ErrorKind::NotFound),
            ("NoSuchBucket", 404, ErrorKind::NotFound),
            ("DeploymentGroupDoesNotExistException", 400, ErrorKind::NotFound),
            ("BucketAlreadyOwnedByYou", 409, ErrorKind::Conflict),
            ("ResourceInUseException", 400, ErrorKind::Conflict),
            ("RepositoryNotEmptyException", 400, ErrorKind::Conflict),
            ("AccessDeniedException", 400, ErrorKind::AccessDenied),
            ("UnrecognizedClientException", 400, ErrorKind::AccessDenied),
            ("ValidationException", 400, ErrorKind::Invalid),
            ("InternalFailure", 500, ErrorKind::Transient),
        ];
        for (code, status, want) in cases {
            let err = mapped(service(Some(code), status));
            assert_eq!(err.kind, want, "{code} / HTTP {status}");
            assert_eq!(err.code.as_deref(), Some(code));
            assert_eq!(err.message, "what AWS said");
            assert_eq!((err.service, err.operation), ("s3", "HeadBucket"));
        }
    }

    #[test]
    fn without_a_code_the_http_status_decides() {
        for (status, want) in [
            (404, ErrorKind::NotFound),
            (403, ErrorKind::AccessDenied),
            (409, ErrorKind::Conflict),
            (429, ErrorKind::Throttled),
            (502, ErrorKind::Transient),
            (400, ErrorKind::Invalid),
        ] {
            assert_eq!(mapped(service(None, status)).kind, want, "HTTP {status}");
        }
    }

    #[test]
    fn failures_before_a_response_are_transient_except_a_request_that_cannot_be_built() {
        let timeout = SdkError::timeout_error("operation timed out");
        assert_eq!(mapped(timeout).kind, ErrorKind::Transient);
        let dispatch = SdkError::dispatch_failure(ConnectorError::io("connection refused".into()));
        assert_eq!(mapped(dispatch).kind, ErrorKind::Transient);
        let construction = SdkError::construction_failure("bucket name missing");
        assert_eq!(mapped(construction).kind, ErrorKind::Invalid);
    }
}
