//! S3 bucket for the source zip: versioned (CodePipeline's S3 source requires it), public
//! access blocked, encrypted by default.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BucketSpec {
    /// `Enabled`, `Suspended` or `Disabled` (never versioned).
    pub versioning: String,
    pub public_access_block: PublicAccessBlock,
    /// Default encryption algorithm (`AES256`, `aws:kms`), or `none`.
    pub encryption: String,
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
