//! S3 bucket for the source zip: versioned (CodePipeline's S3 source requires it), public
//! access blocked, encrypted by default, and sending its events to EventBridge when an S3
//! trigger needs them.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BucketSpec {
    /// `Enabled`, `Suspended` or `Disabled` (never versioned).
    pub versioning: String,
    pub public_access_block: PublicAccessBlock,
    /// Default encryption algorithm (`AES256`, `aws:kms`), or `none`.
    pub encryption: String,
    /// S3 sends the bucket's events to EventBridge. slipway turns this on for a pipeline's S3
    /// trigger and never turns it off: when no trigger needs it, the desired spec says
    /// `false` and [`BucketSpec::settle`] takes the live value, so a setting someone else relies
    /// on is left alone.
    pub eventbridge: bool,
}

impl BucketSpec {
    /// The spec to converge to, given what the bucket has: a setting slipway does not need is
    /// whatever it is.
    pub(crate) fn settle(&self, live: &BucketSpec) -> BucketSpec {
        BucketSpec { eventbridge: self.eventbridge || live.eventbridge, ..self.clone() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicAccessBlock {
    pub block_public_acls: bool,
    pub ignore_public_acls: bool,
    pub block_public_policy: bool,
    pub restrict_public_buckets: bool,
}

impl PublicAccessBlock {
    pub const ALL: PublicAccessBlock =
        PublicAccessBlock { block_public_acls: true, ignore_public_acls: true, block_public_policy: true, restrict_public_buckets: true };
    pub const NONE: PublicAccessBlock = PublicAccessBlock {
        block_public_acls: false,
        ignore_public_acls: false,
        block_public_policy: false,
        restrict_public_buckets: false,
    };
}
