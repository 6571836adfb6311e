//! Adapter: S3 bucket for the source zip: versioned (CodePipeline's S3 source requires it), public
//! access blocked, encrypted by default, sending its events to EventBridge when a trigger needs
//! them (merged into the bucket's notification configuration, which others may use too).

use crate::ahead::ReadAhead;
use crate::tags::swept_or;
use crate::{Aws, AwsError, absent_if_not_found, aws_err};
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration, Delete, EventBridgeConfiguration,
    NotificationConfiguration, ObjectIdentifier, PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule, Tag, Tagging, VersioningConfiguration,
};
use slipway_core::resource::s3::{BucketSpec, PublicAccessBlock};
use slipway_core::resource::{Live, Spec, Tags};

/// Reads the bucket's settings. The first read answers `NoSuchBucket` for a bucket that does not
/// exist, so no `HeadBucket` is needed.
pub(crate) async fn read(aws: &Aws, name: &str, ahead: Option<&ReadAhead>) -> Result<Option<Live>, AwsError> {
    let versioning =
        absent_if_not_found(aws.s3.get_bucket_versioning().bucket(name).send().await.map_err(aws_err("s3", "GetBucketVersioning")))?;
    let Some(versioning) = versioning else {
        return Ok(None);
    };
    let block =
        absent_if_not_found(aws.s3.get_public_access_block().bucket(name).send().await.map_err(aws_err("s3", "GetPublicAccessBlock")))?
            .and_then(|b| b.public_access_block_configuration)
            .map(|c| PublicAccessBlock {
                block_public_acls: c.block_public_acls.unwrap_or(false),
                ignore_public_acls: c.ignore_public_acls.unwrap_or(false),
                block_public_policy: c.block_public_policy.unwrap_or(false),
                restrict_public_buckets: c.restrict_public_buckets.unwrap_or(false),
            })
            .unwrap_or(PublicAccessBlock::NONE);
    let encryption =
        absent_if_not_found(aws.s3.get_bucket_encryption().bucket(name).send().await.map_err(aws_err("s3", "GetBucketEncryption")))?
            .and_then(|e| e.server_side_encryption_configuration)
            .and_then(|c| c.rules.into_iter().next())
            .and_then(|r| r.apply_server_side_encryption_by_default)
            .map(|d| d.sse_algorithm.as_str().to_owned())
            .unwrap_or_else(|| "none".into());
    Ok(Some(Live {
        spec: Spec::Bucket(BucketSpec {
            versioning: versioning.status.map(|s| s.as_str().to_owned()).unwrap_or_else(|| "Disabled".into()),
            public_access_block: block,
            encryption,
            eventbridge: read_notifications(aws, name).await?.event_bridge_configuration.is_some(),
        }),
        tags: swept_or(ahead.and_then(ReadAhead::tags), &format!("arn:{}:s3:::{name}", aws.partition), read_tags(aws, name)).await?,
    }))
}

async fn read_tags(aws: &Aws, name: &str) -> Result<Tags, AwsError> {
    let tagging = absent_if_not_found(aws.s3.get_bucket_tagging().bucket(name).send().await.map_err(aws_err("s3", "GetBucketTagging")))?;
    Ok(tagging.map(|t| t.tag_set.into_iter().map(|t| (t.key, t.value)).collect()).unwrap_or_default())
}

/// Creates the bucket with its tags in the same call, so it never exists without them: an
/// apply killed right after `CreateBucket` leaves a bucket the next pass recognises as its own.
/// "Already owned by you" means the bucket appeared between the read that found none and this
/// call: the SDK's retry of this very request, whose first answer was lost. It is taken as
/// created, and the rest of the create goes on.
pub(crate) async fn create(aws: &Aws, name: &str, spec: &BucketSpec, tags: &Tags) -> Result<(), AwsError> {
    let mut config = CreateBucketConfiguration::builder().set_tags(Some(tag_list(tags)));
    // us-east-1 is the one region that refuses an explicit location constraint.
    if aws.region != "us-east-1" {
        config = config.location_constraint(BucketLocationConstraint::from(aws.region.as_str()));
    }
    let created = aws.s3.create_bucket().bucket(name).create_bucket_configuration(config.build()).send().await;
    let already_owned = created.as_ref().err().and_then(|e| e.as_service_error()).is_some_and(|e| e.is_bucket_already_owned_by_you());
    if already_owned {
        tracing::info!(bucket = name, "bucket already owned by this account: an earlier attempt of this create succeeded");
        tag(aws, name, tags).await?;
    } else {
        created.map_err(aws_err("s3", "CreateBucket"))?;
    }
    put_versioning(aws, name, &spec.versioning).await?;
    put_public_access_block(aws, name, &spec.public_access_block).await?;
    put_encryption(aws, name, &spec.encryption).await?;
    if spec.eventbridge {
        enable_eventbridge(aws, name).await?;
    }
    Ok(())
}

pub(crate) async fn update(aws: &Aws, name: &str, want: &BucketSpec, have: &BucketSpec) -> Result<(), AwsError> {
    if want.versioning != have.versioning {
        put_versioning(aws, name, &want.versioning).await?;
    }
    if want.public_access_block != have.public_access_block {
        put_public_access_block(aws, name, &want.public_access_block).await?;
    }
    if want.encryption != have.encryption {
        put_encryption(aws, name, &want.encryption).await?;
    }
    // Only ever turned on: a spec that does not need it takes the live value (`BucketSpec::settle`).
    if want.eventbridge && !have.eventbridge {
        enable_eventbridge(aws, name).await?;
    }
    Ok(())
}

async fn read_notifications(aws: &Aws, name: &str) -> Result<NotificationConfiguration, AwsError> {
    let got = aws
        .s3
        .get_bucket_notification_configuration()
        .bucket(name)
        .send()
        .await
        .map_err(aws_err("s3", "GetBucketNotificationConfiguration"))?;
    Ok(NotificationConfiguration::builder()
        .set_topic_configurations(got.topic_configurations)
        .set_queue_configurations(got.queue_configurations)
        .set_lambda_function_configurations(got.lambda_function_configurations)
        .set_event_bridge_configuration(got.event_bridge_configuration)
        .build())
}

/// Turns on the bucket's EventBridge notifications. `PutBucketNotificationConfiguration` replaces
/// the whole configuration, so the topic, queue and Lambda destinations the bucket has are read
/// and sent back unchanged. S3 is told not to test those destinations again: they are not
/// slipway's, and one that refuses S3's test message must not stop this change.
async fn enable_eventbridge(aws: &Aws, name: &str) -> Result<(), AwsError> {
    let mut config = read_notifications(aws, name).await?;
    config.event_bridge_configuration = Some(EventBridgeConfiguration::builder().build());
    aws.s3
        .put_bucket_notification_configuration()
        .bucket(name)
        .notification_configuration(config)
        .skip_destination_validation(true)
        .send()
        .await
        .map_err(aws_err("s3", "PutBucketNotificationConfiguration"))?;
    tracing::info!(bucket = name, "S3 now sends this bucket's events to EventBridge (the other notification destinations are kept)");
    Ok(())
}

async fn put_versioning(aws: &Aws, name: &str, status: &str) -> Result<(), AwsError> {
    let config = VersioningConfiguration::builder().status(BucketVersioningStatus::from(status)).build();
    aws.s3
        .put_bucket_versioning()
        .bucket(name)
        .versioning_configuration(config)
        .send()
        .await
        .map_err(aws_err("s3", "PutBucketVersioning"))?;
    Ok(())
}

async fn put_public_access_block(aws: &Aws, name: &str, block: &PublicAccessBlock) -> Result<(), AwsError> {
    let config = PublicAccessBlockConfiguration::builder()
        .block_public_acls(block.block_public_acls)
        .ignore_public_acls(block.ignore_public_acls)
        .block_public_policy(block.block_public_policy)
        .restrict_public_buckets(block.restrict_public_buckets)
        .build();
    aws.s3
        .put_public_access_block()
        .bucket(name)
        .public_access_block_configuration(config)
        .send()
        .await
        .map_err(aws_err("s3", "PutPublicAccessBlock"))?;
    Ok(())
}

async fn put_encryption(aws: &Aws, name: &str, algorithm: &str) -> Result<(), AwsError> {
    let default =
        ServerSideEncryptionByDefault::builder().sse_algorithm(ServerSideEncryption::from(algorithm)).build().expect("algorithm set");
    let rule = ServerSideEncryptionRule::builder().apply_server_side_encryption_by_default(default).build();
    let config = ServerSideEncryptionConfiguration::builder().rules(rule).build().expect("rules set");
    aws.s3
        .put_bucket_encryption()
        .bucket(name)
        .server_side_encryption_configuration(config)
        .send()
        .await
        .map_err(aws_err("s3", "PutBucketEncryption"))?;
    Ok(())
}

/// `PutBucketTagging` replaces the whole set: callers pass every tag the bucket should keep.
pub(crate) async fn tag(aws: &Aws, name: &str, tags: &Tags) -> Result<(), AwsError> {
    let tagging = Tagging::builder().set_tag_set(Some(tag_list(tags))).build().expect("tag set");
    aws.s3.put_bucket_tagging().bucket(name).tagging(tagging).send().await.map_err(aws_err("s3", "PutBucketTagging"))?;
    Ok(())
}

fn tag_list(tags: &Tags) -> Vec<Tag> {
    tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build().expect("key and value set")).collect()
}

/// Deletes every object version and delete marker, then the bucket. Only ever called for a
/// bucket carrying slipway's tags, whose contents are artifacts slipway and CodePipeline wrote.
pub(crate) async fn delete(aws: &Aws, name: &str) -> Result<(), AwsError> {
    loop {
        let page = aws.s3.list_object_versions().bucket(name).send().await.map_err(aws_err("s3", "ListObjectVersions"))?;
        let mut objects = Vec::new();
        for v in page.versions.unwrap_or_default() {
            objects.push(ObjectIdentifier::builder().set_key(v.key).set_version_id(v.version_id).build().expect("key set"));
        }
        for m in page.delete_markers.unwrap_or_default() {
            objects.push(ObjectIdentifier::builder().set_key(m.key).set_version_id(m.version_id).build().expect("key set"));
        }
        if objects.is_empty() {
            break;
        }
        for chunk in objects.chunks(1000) {
            let delete = Delete::builder().set_objects(Some(chunk.to_vec())).quiet(true).build().expect("objects set");
            aws.s3.delete_objects().bucket(name).delete(delete).send().await.map_err(aws_err("s3", "DeleteObjects"))?;
        }
    }
    aws.s3.delete_bucket().bucket(name).send().await.map_err(aws_err("s3", "DeleteBucket"))?;
    Ok(())
}
