//! Adapter: CodePipeline pipeline: Source → (Build) → Deploy, as the seeds describe, with its
//! type and execution mode. A pipeline read without them (created by an older slipway, or by
//! moto, which fills in no default) has AWS's defaults, V1 and SUPERSEDED; create and update
//! always send both.

use crate::ahead::ReadAhead;
use crate::tags::swept_or;
use crate::{Aws, AwsError, absent_if_not_found, aws_err};
use aws_sdk_codepipeline::types::{
    self as sdk, ActionCategory, ActionDeclaration, ActionOwner, ActionTypeId, ArtifactStore, ArtifactStoreType, InputArtifact,
    OutputArtifact, PipelineDeclaration, StageDeclaration, Tag,
};
use slipway_core::resource::codepipeline::{ActionSpec, ExecutionMode, PipelineSpec, PipelineType, StageSpec};
use slipway_core::resource::{Live, Spec, Tags};

fn arn(aws: &Aws, name: &str) -> String {
    aws.arn("codepipeline", name)
}

async fn read_tags(aws: &Aws, arn: &str) -> Result<Tags, AwsError> {
    let got =
        aws.codepipeline.list_tags_for_resource().resource_arn(arn).send().await.map_err(aws_err("codepipeline", "ListTagsForResource"))?;
    Ok(got.tags.unwrap_or_default().into_iter().map(|t| (t.key, t.value)).collect())
}

pub(crate) async fn read(aws: &Aws, name: &str, ahead: Option<&ReadAhead>) -> Result<Option<Live>, AwsError> {
    let Some(got) =
        absent_if_not_found(aws.codepipeline.get_pipeline().name(name).send().await.map_err(aws_err("codepipeline", "GetPipeline")))?
    else {
        return Ok(None);
    };
    let Some(declaration) = got.pipeline else {
        return Ok(None);
    };
    let pipeline_arn = got.metadata.and_then(|m| m.pipeline_arn).unwrap_or_else(|| arn(aws, name));
    let stages = declaration
        .stages
        .into_iter()
        .map(|stage| StageSpec {
            name: stage.name,
            actions: stage
                .actions
                .into_iter()
                .map(|action| {
                    let id = action.action_type_id;
                    ActionSpec {
                        name: action.name,
                        category: id.as_ref().map(|i| i.category.as_str().to_owned()).unwrap_or_default(),
                        owner: id.as_ref().map(|i| i.owner.as_str().to_owned()).unwrap_or_default(),
                        provider: id.as_ref().map(|i| i.provider.clone()).unwrap_or_default(),
                        version: id.map(|i| i.version).unwrap_or_default(),
                        run_order: action.run_order.unwrap_or(1),
                        configuration: action.configuration.unwrap_or_default().into_iter().collect(),
                        input_artifacts: action.input_artifacts.unwrap_or_default().into_iter().map(|a| a.name).collect(),
                        output_artifacts: action.output_artifacts.unwrap_or_default().into_iter().map(|a| a.name).collect(),
                    }
                })
                .collect(),
        })
        .collect();
    let spec = PipelineSpec {
        pipeline_type: PipelineType::from_live(declaration.pipeline_type.as_ref().map(|t| t.as_str())),
        execution_mode: ExecutionMode::from_live(declaration.execution_mode.as_ref().map(|m| m.as_str())),
        role_arn: declaration.role_arn,
        artifact_bucket: declaration.artifact_store.map(|s| s.location).unwrap_or_default(),
        stages,
    };
    Ok(Some(Live {
        spec: Spec::Pipeline(spec),
        tags: swept_or(ahead.and_then(ReadAhead::tags), &pipeline_arn, read_tags(aws, &pipeline_arn)).await?,
    }))
}

fn declaration(name: &str, spec: &PipelineSpec) -> PipelineDeclaration {
    let stages = spec
        .stages
        .iter()
        .map(|stage| {
            let actions = stage
                .actions
                .iter()
                .map(|a| {
                    ActionDeclaration::builder()
                        .name(&a.name)
                        .action_type_id(
                            ActionTypeId::builder()
                                .category(ActionCategory::from(a.category.as_str()))
                                .owner(ActionOwner::from(a.owner.as_str()))
                                .provider(&a.provider)
                                .version(&a.version)
                                .build()
                                .expect("all fields set"),
                        )
                        .run_order(a.run_order)
                        .set_configuration(Some(a.configuration.clone().into_iter().collect()))
                        .set_input_artifacts(Some(
                            a.input_artifacts.iter().map(|n| InputArtifact::builder().name(n).build().expect("name set")).collect(),
                        ))
                        .set_output_artifacts(Some(
                            a.output_artifacts.iter().map(|n| OutputArtifact::builder().name(n).build().expect("name set")).collect(),
                        ))
                        .build()
                        .expect("name and type set")
                })
                .collect();
            StageDeclaration::builder().name(&stage.name).set_actions(Some(actions)).build().expect("name and actions set")
        })
        .collect();
    PipelineDeclaration::builder()
        .name(name)
        .pipeline_type(sdk::PipelineType::from(spec.pipeline_type.as_str()))
        .execution_mode(sdk::ExecutionMode::from(spec.execution_mode.as_str()))
        .role_arn(&spec.role_arn)
        .artifact_store(
            ArtifactStore::builder().r#type(ArtifactStoreType::S3).location(&spec.artifact_bucket).build().expect("type and location set"),
        )
        .set_stages(Some(stages))
        .build()
        .expect("name, role and stages set")
}

fn sdk_tags(tags: &Tags) -> Vec<Tag> {
    tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build().expect("key and value set")).collect()
}

pub(crate) async fn create(aws: &Aws, name: &str, spec: &PipelineSpec, tags: &Tags) -> Result<(), AwsError> {
    aws.codepipeline
        .create_pipeline()
        .pipeline(declaration(name, spec))
        .set_tags(Some(sdk_tags(tags)))
        .send()
        .await
        .map_err(aws_err("codepipeline", "CreatePipeline"))?;
    Ok(())
}

pub(crate) async fn update(aws: &Aws, name: &str, want: &PipelineSpec, _have: &PipelineSpec) -> Result<(), AwsError> {
    aws.codepipeline.update_pipeline().pipeline(declaration(name, want)).send().await.map_err(aws_err("codepipeline", "UpdatePipeline"))?;
    Ok(())
}

pub(crate) async fn tag(aws: &Aws, name: &str, tags: &Tags) -> Result<(), AwsError> {
    aws.codepipeline
        .tag_resource()
        .resource_arn(arn(aws, name))
        .set_tags(Some(sdk_tags(tags)))
        .send()
        .await
        .map_err(aws_err("codepipeline", "TagResource"))?;
    Ok(())
}

pub(crate) async fn delete(aws: &Aws, name: &str) -> Result<(), AwsError> {
    aws.codepipeline.delete_pipeline().name(name).send().await.map_err(aws_err("codepipeline", "DeletePipeline"))?;
    Ok(())
}
