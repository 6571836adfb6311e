//! The tags of every resource slipway manages, read for a whole pass in a few pages.
//!
//! Each adapter reads its resource's tags (ownership) with the service's own call, one per
//! resource: 7 of a seed-000 pipeline's reads. The Resource Groups Tagging API's `GetResources`
//! returns up to 100 resources with their tags per page, across services, filtered to those
//! tagged `slipway.dev/managed-by: slipway`. A pass that observes many pipelines sweeps once
//! ([`worth_sweeping`]) and each adapter takes its resource's tags from the sweep.
//!
//! A resource the sweep lacks has its tags read the old way: one tagged by hand for `adopt`, one
//! whose tags AWS has not yet indexed (the Tagging API is eventually consistent), and every
//! resource of a type the API does not return. In AWS it covers all the kinds slipway manages; in
//! moto 5.2.5 only S3 buckets, CodeDeploy, and EventBridge rules (with patch 9 of
//! scripts/patch-moto.py): ECR, CodePipeline, CodeBuild and CloudTrail fall back, which is how the
//! tests cover both paths.

use std::collections::HashMap;
use std::future::Future;

use aws_sdk_resourcegroupstagging::types::TagFilter;
use slipway_core::resource::{MANAGED_BY_VALUE, TAG_MANAGED_BY, Tags};

use crate::{Aws, AwsError, aws_err};

/// Tagged resources per page, the API's maximum.
const PAGE: i32 = 100;

/// ARN → tags, for every resource tagged as slipway's when the sweep ran.
#[derive(Debug, Default)]
pub struct TagSweep(HashMap<String, Tags>);

impl TagSweep {
    /// Resources found.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Reads the tags of every resource tagged as slipway's in this account and Region.
pub async fn sweep(aws: &Aws) -> Result<TagSweep, AwsError> {
    let filter = TagFilter::builder().key(TAG_MANAGED_BY).values(MANAGED_BY_VALUE).build();
    let mut pages = aws.tagging.get_resources().tag_filters(filter).resources_per_page(PAGE).into_paginator().send();
    let mut swept = HashMap::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(aws_err("resourcegroupstaggingapi", "GetResources"))?;
        for mapping in page.resource_tag_mapping_list.unwrap_or_default() {
            let Some(arn) = mapping.resource_arn else { continue };
            let tags = mapping.tags.unwrap_or_default().into_iter().map(|t| (t.key, t.value)).collect();
            swept.insert(arn, tags);
        }
    }
    Ok(TagSweep(swept))
}

/// Whether one sweep costs fewer reads than reading the tags of the resources about to be
/// observed one by one: `observing` of them, out of `managed` resources slipway manages in all.
pub fn worth_sweeping(observing: usize, managed: usize) -> bool {
    managed.div_ceil(PAGE as usize) < observing
}

/// The resource's tags from the sweep when it holds them; otherwise `read`.
pub(crate) async fn swept_or(
    swept: Option<&TagSweep>,
    arn: &str,
    read: impl Future<Output = Result<Tags, AwsError>>,
) -> Result<Tags, AwsError> {
    match swept.and_then(|s| s.0.get(arn)) {
        Some(tags) => Ok(tags.clone()),
        None => read.await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_pays_when_its_pages_are_fewer_than_the_reads_it_replaces() {
        assert!(worth_sweeping(7, 140), "2 pages for 7 reads");
        assert!(!worth_sweeping(7, 7000), "70 pages to spare 7 reads");
        assert!(worth_sweeping(7000, 7000));
        assert!(!worth_sweeping(1, 1), "one page for one read");
        assert!(!worth_sweeping(0, 0));
    }
}
