//! Adapter: ECR repository: tag mutability, scan on push, and the lifecycle policy that expires untagged
//! images (both seeds: `latest` moves, the old image becomes untagged and goes after a day).

use serde_json::Value;

use crate::ahead::{ReadAhead, ahead_or};
use crate::tags::swept_or;
use crate::{Aws, AwsError, absent_if_not_found, aws_err};
use slipway_core::resource::ecr::EcrSpec;
use slipway_core::resource::{Live, Spec, Tags};

fn arn(aws: &Aws, name: &str) -> String {
    aws.arn("ecr", &format!("repository/{name}"))
}

pub(crate) async fn read(aws: &Aws, name: &str, ahead: Option<&ReadAhead>) -> Result<Option<Live>, AwsError> {
    let described = ahead_or(ahead.and_then(|a| a.repository(name)), async {
        let described = absent_if_not_found(
            aws.ecr.describe_repositories().repository_names(name).send().await.map_err(aws_err("ecr", "DescribeRepositories")),
        )?;
        Ok(described.and_then(|d| d.repositories.unwrap_or_default().into_iter().next()))
    });
    let Some(repo) = described.await? else {
        return Ok(None);
    };
    let policy = absent_if_not_found(
        aws.ecr.get_lifecycle_policy().repository_name(name).send().await.map_err(aws_err("ecr", "GetLifecyclePolicy")),
    )?;
    let lifecycle_policy = policy
        .and_then(|p| p.lifecycle_policy_text)
        .map(|text| serde_json::from_str(&text).unwrap_or(Value::String(text)))
        .unwrap_or(Value::Null);
    let repo_arn = repo.repository_arn.clone().unwrap_or_else(|| arn(aws, name));
    let tags = swept_or(ahead.and_then(ReadAhead::tags), &repo_arn, async {
        let listed =
            aws.ecr.list_tags_for_resource().resource_arn(&repo_arn).send().await.map_err(aws_err("ecr", "ListTagsForResource"))?;
        Ok(listed.tags.unwrap_or_default().into_iter().map(|t| (t.key, t.value)).collect())
    })
    .await?;
    Ok(Some(Live {
        spec: Spec::Ecr(EcrSpec {
            image_tag_mutability: repo.image_tag_mutability.map(|m| m.as_str().to_owned()).unwrap_or_else(|| "MUTABLE".into()),
            scan_on_push: repo.image_scanning_configuration.map(|c| c.scan_on_push).unwrap_or(false),
            lifecycle_policy,
        }),
        tags,
    }))
}

fn sdk_tags(tags: &Tags) -> Vec<aws_sdk_ecr::types::Tag> {
    tags.iter().map(|(k, v)| aws_sdk_ecr::types::Tag::builder().key(k).value(v).build().expect("key and value set")).collect()
}

pub(crate) async fn create(aws: &Aws, name: &str, spec: &EcrSpec, tags: &Tags) -> Result<(), AwsError> {
    aws.ecr
        .create_repository()
        .repository_name(name)
        .image_tag_mutability(spec.image_tag_mutability.as_str().into())
        .image_scanning_configuration(aws_sdk_ecr::types::ImageScanningConfiguration::builder().scan_on_push(spec.scan_on_push).build())
        .set_tags(Some(sdk_tags(tags)))
        .send()
        .await
        .map_err(aws_err("ecr", "CreateRepository"))?;
    put_lifecycle_policy(aws, name, &spec.lifecycle_policy).await
}

async fn put_lifecycle_policy(aws: &Aws, name: &str, policy: &Value) -> Result<(), AwsError> {
    aws.ecr
        .put_lifecycle_policy()
        .repository_name(name)
        .lifecycle_policy_text(policy.to_string())
        .send()
        .await
        .map_err(aws_err("ecr", "PutLifecyclePolicy"))?;
    Ok(())
}

pub(crate) async fn update(aws: &Aws, name: &str, want: &EcrSpec, have: &EcrSpec) -> Result<(), AwsError> {
    if want.image_tag_mutability != have.image_tag_mutability {
        aws.ecr
            .put_image_tag_mutability()
            .repository_name(name)
            .image_tag_mutability(want.image_tag_mutability.as_str().into())
            .send()
            .await
            .map_err(aws_err("ecr", "PutImageTagMutability"))?;
    }
    if want.scan_on_push != have.scan_on_push {
        aws.ecr
            .put_image_scanning_configuration()
            .repository_name(name)
            .image_scanning_configuration(aws_sdk_ecr::types::ImageScanningConfiguration::builder().scan_on_push(want.scan_on_push).build())
            .send()
            .await
            .map_err(aws_err("ecr", "PutImageScanningConfiguration"))?;
    }
    if want.lifecycle_policy != have.lifecycle_policy {
        put_lifecycle_policy(aws, name, &want.lifecycle_policy).await?;
    }
    Ok(())
}

pub(crate) async fn tag(aws: &Aws, name: &str, tags: &Tags) -> Result<(), AwsError> {
    aws.ecr
        .tag_resource()
        .resource_arn(arn(aws, name))
        .set_tags(Some(sdk_tags(tags)))
        .send()
        .await
        .map_err(aws_err("ecr", "TagResource"))?;
    Ok(())
}

/// Never forces: images are data people may still need, and the running service may use them.
pub(crate) async fn delete(aws: &Aws, name: &str) -> Result<(), AwsError> {
    match aws.ecr.delete_repository().repository_name(name).force(false).send().await.map_err(aws_err("ecr", "DeleteRepository")) {
        Ok(_) => Ok(()),
        Err(e) if e.code.as_deref() == Some("RepositoryNotEmptyException") => Err(AwsError {
            message: format!(
                "repository `{name}` still holds images; slipway never deletes images: remove them (or the repository) by hand"
            ),
            ..e
        }),
        Err(e) => Err(e),
    }
}
