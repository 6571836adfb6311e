//! Adapter: The source zip in S3. Its identity is `bucket/key`; its spec is the MD5 of its bytes, which
//! S3 reports as the ETag of a single-part upload. Uploaded only when the MD5 differs.

use crate::{Aws, AwsError, absent_if_not_found, aws_err};
use slipway_core::resource::artifact::{ArtifactSpec, split};
use slipway_core::resource::{Live, Spec};

pub(crate) async fn read(aws: &Aws, name: &str) -> Result<Option<Live>, AwsError> {
    let (bucket, key) = split(name);
    let head = absent_if_not_found(aws.s3.head_object().bucket(bucket).key(key).send().await.map_err(aws_err("s3", "HeadObject")))?;
    Ok(head.map(|h| Live {
        // A multipart ETag ("…-N") is no MD5: it never matches, so the zip is uploaded again.
        spec: Spec::Artifact(ArtifactSpec { md5: h.e_tag.unwrap_or_default().trim_matches('"').to_string() }),
        tags: Default::default(),
    }))
}

pub(crate) async fn upload(aws: &Aws, name: &str, bytes: &[u8]) -> Result<(), AwsError> {
    let (bucket, key) = split(name);
    aws.s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type("application/zip")
        .body(bytes.to_vec().into())
        .send()
        .await
        .map_err(aws_err("s3", "PutObject"))?;
    Ok(())
}

pub(crate) async fn delete(aws: &Aws, name: &str) -> Result<(), AwsError> {
    let (bucket, key) = split(name);
    aws.s3.delete_object().bucket(bucket).key(key).send().await.map_err(aws_err("s3", "DeleteObject"))?;
    Ok(())
}
