//! What can go wrong when slipway calls AWS, in the terms a caller decides on.
//!
//! The AWS crate maps every SDK error into an [`AwsError`] once, at the adapter; the kind then
//! travels unchanged up to the policy that decides the next attempt
//! ([`crate::reconcile::error_policy`]).

use std::fmt;

labels! {
    /// What went wrong, in the terms a caller decides on.
    pub enum ErrorKind {
        /// AWS asked to slow down: retry with backoff.
        Throttled = "throttled",
        /// Timeouts, connection failures, 5xx: worth another try.
        Transient = "transient",
        NotFound = "not_found",
        /// The resource exists already, is in use, or is not empty.
        Conflict = "conflict",
        AccessDenied = "access_denied",
        /// AWS rejected the request as malformed or not allowed.
        Invalid = "invalid",
        /// slipway refused before calling AWS (a change AWS cannot make in place, an answer it
        /// cannot use). Not a failed call.
        Refused = "refused",
        /// Not sent: this replica no longer holds the lease of the pipeline's shard (several
        /// replicas, `slipway_core::lease`). Another replica works on the pipeline now.
        Fenced = "fenced",
    }
}

impl ErrorKind {
    /// Whether another attempt soon may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::Throttled | ErrorKind::Transient)
    }
}

/// A failed AWS call (or a refusal at the adapter), mapped once at the adapter boundary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct AwsError {
    pub service: &'static str,
    pub operation: &'static str,
    pub kind: ErrorKind,
    /// AWS's error code, when it gave one.
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
        self.kind.is_retryable()
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }

    /// An error slipway raises itself at the adapter: a refusal, not a failed call.
    pub fn refused(service: &'static str, operation: &'static str, message: impl Into<String>) -> AwsError {
        AwsError { service, operation, kind: ErrorKind::Refused, code: None, message: message.into() }
    }
}
