//! The inventory's store (what it is and why: `slipway_core::inventory`): objects in this
//! installation's S3 state bucket (`--state-bucket`, by default `slipway-state-<account>-<region>`).
//! The bucket is created on the first write: versioned, so every change to the inventory is kept;
//! encrypted; public access blocked; tagged as slipway's but as no pipeline's, so it is never an
//! orphan. Nothing here deletes the bucket. Every call names this account as the expected owner,
//! so a bucket of that name in another account (its name is predictable) is refused, never
//! written to or read from.
//!
//! What this process wrote or listed is remembered ([`Inventory`]), so recording what a pipeline
//! already has costs no read after the first listing, and no write when it is there.

use std::collections::{BTreeSet, HashSet};
use std::sync::Mutex;

use aws_sdk_s3::primitives::ByteStream;
use slipway_core::inventory::{Applied, ENTRY_PREFIX, Entry};
use slipway_core::resource::s3::{BucketSpec, PublicAccessBlock};
use slipway_core::resource::{MANAGED_BY_VALUE, TAG_MANAGED_BY, Tags};

use crate::resource::s3;
use crate::{Aws, AwsError, aws_err};

/// Where the inventory lives, and what this process knows of it.
#[derive(Debug)]
pub struct Inventory {
    pub bucket: String,
    /// The entries as last listed, plus this process's own writes; `None` before a listing.
    known: Mutex<Option<HashSet<Entry>>>,
}

impl Inventory {
    pub fn new(bucket: String) -> Inventory {
        Inventory { bucket, known: Mutex::new(None) }
    }
}

/// Every entry of the inventory; empty when the state bucket does not exist yet.
pub async fn list(aws: &Aws) -> Result<HashSet<Entry>, AwsError> {
    let inventory = &aws.inventory;
    let mut pages =
        aws.s3.list_objects_v2().bucket(&inventory.bucket).expected_bucket_owner(&aws.account).prefix(ENTRY_PREFIX).into_paginator().send();
    let mut entries = HashSet::new();
    while let Some(page) = pages.next().await {
        match page.map_err(aws_err("s3", "ListObjectsV2")) {
            Ok(page) => entries.extend(page.contents.unwrap_or_default().iter().filter_map(|o| o.key.as_deref().and_then(Entry::parse))),
            Err(err) if err.is_not_found() => return Ok(HashSet::new()),
            Err(err) => return Err(err),
        }
    }
    *inventory.known.lock().expect("not poisoned") = Some(entries.clone());
    Ok(entries)
}

/// The pipelines the inventory names: the ones this installation has applied. From the listing
/// this process already holds, when it has one.
pub async fn applied_pipelines(aws: &Aws) -> Result<BTreeSet<String>, AwsError> {
    let known = aws.inventory.known.lock().expect("not poisoned").clone();
    let entries = match known {
        Some(entries) => entries,
        None => list(aws).await?,
    };
    Ok(entries.into_iter().map(|e| e.pipeline).collect())
}

/// Records the entries of a pipeline's resources before the creates they name: those of
/// resources about to be created (`creating`) are always written, so a cache that another
/// process's prune made stale never leaves a new resource unrecorded; those of resources that
/// exist (`existing`) only when the inventory lacks them (an older slipway created them, or a
/// lost answer left them unrecorded).
pub async fn ensure(aws: &Aws, existing: Vec<Entry>, creating: Vec<Entry>) -> Result<(), AwsError> {
    let lacking = if existing.is_empty() {
        existing
    } else {
        let known = aws.inventory.known.lock().expect("not poisoned").clone();
        let known = match known {
            Some(known) => known,
            None => list(aws).await?,
        };
        existing.into_iter().filter(|e| !known.contains(e)).collect()
    };
    for entry in creating.into_iter().chain(lacking) {
        put(aws, &entry.object_key(), Vec::new()).await?;
        aws.inventory.known.lock().expect("not poisoned").get_or_insert_with(HashSet::new).insert(entry);
    }
    Ok(())
}

/// Removes an entry whose resource prune deleted (or found gone).
pub async fn forget(aws: &Aws, entry: &Entry) -> Result<(), AwsError> {
    aws.s3
        .delete_object()
        .bucket(&aws.inventory.bucket)
        .expected_bucket_owner(&aws.account)
        .key(entry.object_key())
        .send()
        .await
        .map_err(aws_err("s3", "DeleteObject"))?;
    if let Some(known) = aws.inventory.known.lock().expect("not poisoned").as_mut() {
        known.remove(entry);
    }
    Ok(())
}

/// Records the revision a pipeline was last applied at.
pub async fn record_applied(aws: &Aws, applied: &Applied) -> Result<(), AwsError> {
    let body = serde_json::to_vec_pretty(applied).expect("serialises");
    put(aws, &Applied::object_key(&applied.pipeline), body).await
}

/// The record of a pipeline's last apply, if there is one.
pub async fn read_applied(aws: &Aws, pipeline: &str) -> Result<Option<Applied>, AwsError> {
    let sent = aws
        .s3
        .get_object()
        .bucket(&aws.inventory.bucket)
        .expected_bucket_owner(&aws.account)
        .key(Applied::object_key(pipeline))
        .send()
        .await;
    let object = match sent.map_err(aws_err("s3", "GetObject")) {
        Ok(object) => object,
        Err(err) if err.is_not_found() => return Ok(None),
        Err(err) => return Err(err),
    };
    let bytes = object.body.collect().await.map(|b| b.into_bytes()).unwrap_or_default();
    Ok(serde_json::from_slice(&bytes).ok())
}

/// Writes an object, creating the state bucket when it does not exist yet.
async fn put(aws: &Aws, key: &str, body: Vec<u8>) -> Result<(), AwsError> {
    let bucket = &aws.inventory.bucket;
    let send =
        |body: Vec<u8>| aws.s3.put_object().bucket(bucket).expected_bucket_owner(&aws.account).key(key).body(ByteStream::from(body)).send();
    match send(body.clone()).await.map_err(aws_err("s3", "PutObject")) {
        Err(err) if err.is_not_found() => {
            tracing::info!(bucket = %bucket, "creating the state bucket that keeps slipway's inventory");
            let spec = BucketSpec {
                versioning: "Enabled".into(),
                public_access_block: PublicAccessBlock::ALL,
                encryption: "AES256".into(),
                eventbridge: false,
            };
            let tags: Tags = [(TAG_MANAGED_BY.to_string(), MANAGED_BY_VALUE.to_string())].into();
            s3::create(aws, bucket, &spec, &tags).await?;
            send(body).await.map_err(aws_err("s3", "PutObject"))?;
            Ok(())
        }
        other => other.map(|_| ()),
    }
}
