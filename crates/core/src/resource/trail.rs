//! CloudTrail trail recording writes to the source objects (S3 data events), so EventBridge
//! sees `PutObject`, `CompleteMultipartUpload` and `CopyObject` on them: the S3 trigger's
//! `via: cloudtrail` route.
//!
//! One trail is shared by every pipeline that names it (`triggers.s3.trail`, default
//! [`SHARED_TRAIL`]): AWS allows 5 trails per Region and does not raise it. Its one advanced
//! event selector lists every watched object's ARN; AWS allows 500 values across a trail's
//! advanced selectors, so a trail watches at most [`MAX_WATCHED`] objects (the quota check in
//! `validate` refuses the pipeline past it). The trail belongs to the installation, not to a
//! pipeline: its tags name the state bucket instead of a pipeline.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::Serialize;

/// The trail pipelines share when their manifests name none.
pub const SHARED_TRAIL: &str = "slipway-s3-writes";
/// Values a trail's advanced event selectors may hold in all (AWS, not adjustable).
pub const MAX_SELECTOR_VALUES: u32 = 500;
/// Values slipway's selector spends on what it matches besides the objects.
pub const FIXED_SELECTOR_VALUES: u32 = 3;
/// Objects one trail can watch.
pub const MAX_WATCHED: u32 = MAX_SELECTOR_VALUES - FIXED_SELECTOR_VALUES;
/// The name of slipway's advanced event selector; other selectors on the trail are drift.
pub const SELECTOR_NAME: &str = "slipway: writes to watched source objects";
const ARN_FIELD: &str = "resources.ARN";

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrailSpec {
    pub s3_bucket_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_key_prefix: Option<String>,
    pub is_multi_region_trail: bool,
    pub logging: bool,
    /// Basic event selectors. slipway sets none; a trail an older slipway made per pipeline has one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub event_selectors: Vec<SelectorSpec>,
    pub advanced_event_selectors: Vec<AdvancedSelectorSpec>,
    /// Which objects the live trail watches are kept besides these. Not a field of the trail:
    /// left out of comparisons, and kept when settled, so that apply can settle a planned trail
    /// again against a fresh read.
    #[serde(skip)]
    pub keep: Keep,
}

impl PartialEq for TrailSpec {
    /// Every field but `keep`; destructured, so that a new field does not compile until it is here.
    fn eq(&self, other: &TrailSpec) -> bool {
        let TrailSpec { s3_bucket_name, s3_key_prefix, is_multi_region_trail, logging, event_selectors, advanced_event_selectors, keep: _ } =
            self;
        *s3_bucket_name == other.s3_bucket_name
            && *s3_key_prefix == other.s3_key_prefix
            && *is_multi_region_trail == other.is_multi_region_trail
            && *logging == other.logging
            && *event_selectors == other.event_selectors
            && *advanced_event_selectors == other.advanced_event_selectors
    }
}

/// Which of the objects a shared trail watches now it keeps watching, besides the ones the valid
/// manifests name: it stops watching an object only when Git says so.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Keep {
    /// None: the trail watches exactly what the manifests name (a whole revision, pruning).
    #[default]
    Nothing,
    /// Every one: a manifest of the revision is broken, and may be the one watching any of them.
    Watched,
    /// Those in buckets no valid manifest names as its source (the claimed buckets): the objects
    /// of pipelines removed from Git, which keep their trigger until prune. An object in a
    /// claimed bucket is its pipeline's to drop (moved to another route or trail).
    Unclaimed(Arc<BTreeSet<String>>),
}

impl Keep {
    fn keeps(&self, object_arn: &str) -> bool {
        match self {
            Keep::Nothing => false,
            Keep::Watched => true,
            Keep::Unclaimed(claimed) => !object_bucket(object_arn).is_some_and(|bucket| claimed.contains(bucket)),
        }
    }
}

/// The bucket of an S3 object ARN (`arn:PARTITION:s3:::BUCKET/KEY`).
fn object_bucket(arn: &str) -> Option<&str> {
    let (_, path) = arn.split_once(":s3:::")?;
    path.split_once('/').map(|(bucket, _)| bucket)
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

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdvancedSelectorSpec {
    pub name: String,
    /// Sorted by field.
    pub field_selectors: Vec<FieldSelectorSpec>,
}

/// One condition of an advanced selector. Each list is sorted; slipway sets only `equals`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldSelectorSpec {
    pub field: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub equals: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub starts_with: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ends_with: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_equals: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_starts_with: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_ends_with: Vec<String>,
}

impl FieldSelectorSpec {
    fn equals(field: &str, values: impl IntoIterator<Item = String>) -> FieldSelectorSpec {
        let values: BTreeSet<String> = values.into_iter().collect();
        FieldSelectorSpec { field: field.into(), equals: values.into_iter().collect(), ..Default::default() }
    }
}

impl AdvancedSelectorSpec {
    /// slipway's selector: write data events on exactly these S3 objects.
    pub fn watching(objects: impl IntoIterator<Item = String>) -> AdvancedSelectorSpec {
        AdvancedSelectorSpec {
            name: SELECTOR_NAME.into(),
            field_selectors: vec![
                FieldSelectorSpec::equals("eventCategory", ["Data".to_string()]),
                FieldSelectorSpec::equals("readOnly", ["false".to_string()]),
                FieldSelectorSpec::equals(ARN_FIELD, objects),
                FieldSelectorSpec::equals("resources.type", ["AWS::S3::Object".to_string()]),
            ],
        }
    }

    /// The objects slipway's selector watches; none for any other selector.
    fn watched(&self) -> impl Iterator<Item = &String> {
        let ours = self.name == SELECTOR_NAME;
        self.field_selectors.iter().filter(move |f| ours && f.field == ARN_FIELD).flat_map(|f| &f.equals)
    }
}

impl TrailSpec {
    /// The objects the trail's advanced selectors watch for slipway.
    pub fn watched(&self) -> BTreeSet<&String> {
        self.advanced_event_selectors.iter().flat_map(AdvancedSelectorSpec::watched).collect()
    }

    /// The trail to converge to: slipway's selector also lists the live trail's objects that
    /// [`Keep`] keeps.
    pub(crate) fn settle(&self, live: &TrailSpec) -> TrailSpec {
        let mut want = self.clone();
        let kept = live.watched().into_iter().filter(|o| self.keep.keeps(o));
        let objects: BTreeSet<String> = self.watched().into_iter().chain(kept).cloned().collect();
        want.advanced_event_selectors = vec![AdvancedSelectorSpec::watching(objects)];
        want
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trail(objects: &[&str], keep: Keep) -> TrailSpec {
        TrailSpec {
            s3_bucket_name: "logs".into(),
            s3_key_prefix: None,
            is_multi_region_trail: false,
            logging: true,
            event_selectors: Vec::new(),
            advanced_event_selectors: vec![AdvancedSelectorSpec::watching(objects.iter().map(|o| o.to_string()))],
            keep,
        }
    }

    #[test]
    fn the_selector_spends_its_fixed_values_and_one_per_object() {
        let selector = AdvancedSelectorSpec::watching(["arn:aws:s3:::b/k".to_string()]);
        let values: usize = selector.field_selectors.iter().map(|f| f.equals.len()).sum();
        assert_eq!(values as u32, FIXED_SELECTOR_VALUES + 1);
        let fields: Vec<&str> = selector.field_selectors.iter().map(|f| f.field.as_str()).collect();
        let mut sorted = fields.clone();
        sorted.sort();
        assert_eq!(fields, sorted, "sorted by field, as read back");
    }

    #[test]
    fn a_trail_keeps_the_objects_it_watches_as_told() {
        let live = trail(&["arn:aws:s3:::a/k", "arn:aws:s3:::gone/k", "arn:aws:s3:::moved/k"], Keep::Nothing);
        let wanted = ["arn:aws:s3:::a/k", "arn:aws:s3:::new/k"];
        let watched = |keep: Keep| -> Vec<String> { trail(&wanted, keep).settle(&live).watched().into_iter().cloned().collect() };
        assert_eq!(watched(Keep::Nothing), ["arn:aws:s3:::a/k", "arn:aws:s3:::new/k"]);
        assert_eq!(watched(Keep::Watched), ["arn:aws:s3:::a/k", "arn:aws:s3:::gone/k", "arn:aws:s3:::moved/k", "arn:aws:s3:::new/k"]);
        // `moved` is still a pipeline's source bucket, so that pipeline left the trail; `gone` is no one's.
        let claimed = Arc::new(BTreeSet::from(["a", "moved", "new"].map(String::from)));
        assert_eq!(watched(Keep::Unclaimed(claimed)), ["arn:aws:s3:::a/k", "arn:aws:s3:::gone/k", "arn:aws:s3:::new/k"]);
        // Settled, it compares equal to the live trail read back.
        let settled = trail(&wanted, Keep::Watched).settle(&live);
        assert_eq!(
            settled,
            trail(&["arn:aws:s3:::a/k", "arn:aws:s3:::gone/k", "arn:aws:s3:::moved/k", "arn:aws:s3:::new/k"], Keep::Nothing)
        );
        // Another selector someone added watches nothing for slipway.
        let mut other = live.clone();
        other.advanced_event_selectors[0].name = "theirs".into();
        assert!(other.watched().is_empty());
        assert_eq!(object_bucket("arn:aws-cn:s3:::b/a/b.zip"), Some("b"));
    }
}
