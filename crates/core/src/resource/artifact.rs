//! The source zip in S3. Its identity is `bucket/key`; its spec is the MD5 of its bytes, which
//! S3 reports as the ETag of a single-part upload. Uploaded only when the MD5 differs.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactSpec {
    pub md5: String,
}

/// Splits `bucket/key`.
pub fn split(name: &str) -> (&str, &str) {
    name.split_once('/').expect("artifact keys are bucket/key")
}
