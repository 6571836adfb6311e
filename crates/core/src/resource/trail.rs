//! CloudTrail trail recording writes to the source objects (S3 data events), so EventBridge
//! sees `PutObject`, `CompleteMultipartUpload` and `CopyObject` on them (seed 000's S3 trigger).

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrailSpec {
    pub s3_bucket_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_key_prefix: Option<String>,
    pub is_multi_region_trail: bool,
    pub logging: bool,
    pub event_selectors: Vec<SelectorSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SelectorSpec {
    pub read_write_type: String,
    pub include_management_events: bool,
    pub data_resources: Vec<DataResourceSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DataResourceSpec {
    #[serde(rename = "type")]
    pub kind: String,
    /// Sorted: CloudTrail does not keep the order.
    pub values: Vec<String>,
}
