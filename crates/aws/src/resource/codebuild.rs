//! Adapter: CodeBuild project for the "build in AWS" topology (seed 002): docker build in privileged
//! mode, source and artifacts handed over by CodePipeline.

use crate::{Aws, AwsError, aws_err};
use aws_sdk_codebuild::types::{
    ArtifactsType, ComputeType, EnvironmentType, EnvironmentVariable, EnvironmentVariableType, Project, ProjectArtifacts,
    ProjectEnvironment, ProjectSource, SourceType, Tag,
};
use slipway_core::resource::codebuild::ProjectSpec;
use slipway_core::resource::{Live, Spec, Tags};

/// moto insists on a location even for CODEPIPELINE source and artifacts, where AWS ignores
/// it. Sending one is harmless; it is never compared.
const PIPELINE_LOCATION: &str = "codepipeline";

fn normalise(project: Project) -> (ProjectSpec, Tags) {
    let env = project.environment;
    let spec = ProjectSpec {
        service_role: project.service_role.unwrap_or_default(),
        buildspec: project.source.and_then(|s| s.buildspec).unwrap_or_default(),
        environment_type: env.as_ref().map(|e| e.r#type.as_str().to_owned()).unwrap_or_default(),
        image: env.as_ref().map(|e| e.image.clone()).unwrap_or_default(),
        compute_type: env.as_ref().map(|e| e.compute_type.as_str().to_owned()).unwrap_or_default(),
        privileged_mode: env.as_ref().and_then(|e| e.privileged_mode).unwrap_or(false),
        environment_variables: env
            .and_then(|e| e.environment_variables)
            .unwrap_or_default()
            .into_iter()
            .map(|v| (v.name, v.value))
            .collect(),
        timeout_in_minutes: project.timeout_in_minutes.unwrap_or(60).max(0) as u32,
    };
    let tags = project.tags.unwrap_or_default().into_iter().filter_map(|t| Some((t.key?, t.value.unwrap_or_default()))).collect();
    (spec, tags)
}

pub(crate) async fn read(aws: &Aws, name: &str) -> Result<Option<Live>, AwsError> {
    let got = aws.codebuild.batch_get_projects().names(name).send().await.map_err(aws_err("codebuild", "BatchGetProjects"))?;
    Ok(got.projects.unwrap_or_default().into_iter().next().map(|project| {
        let (spec, tags) = normalise(project);
        Live { spec: Spec::Build(spec), tags }
    }))
}

fn source(spec: &ProjectSpec) -> ProjectSource {
    ProjectSource::builder()
        .r#type(SourceType::Codepipeline)
        .buildspec(&spec.buildspec)
        .location(PIPELINE_LOCATION)
        .build()
        .expect("type set")
}

fn artifacts() -> ProjectArtifacts {
    ProjectArtifacts::builder().r#type(ArtifactsType::Codepipeline).location(PIPELINE_LOCATION).build().expect("type set")
}

fn environment(spec: &ProjectSpec) -> ProjectEnvironment {
    let vars = spec
        .environment_variables
        .iter()
        .map(|(k, v)| {
            EnvironmentVariable::builder().name(k).value(v).r#type(EnvironmentVariableType::Plaintext).build().expect("name and value set")
        })
        .collect();
    ProjectEnvironment::builder()
        .r#type(EnvironmentType::from(spec.environment_type.as_str()))
        .image(&spec.image)
        .compute_type(ComputeType::from(spec.compute_type.as_str()))
        .privileged_mode(spec.privileged_mode)
        .set_environment_variables(Some(vars))
        .build()
        .expect("type, image and compute type set")
}

fn sdk_tags(tags: &Tags) -> Vec<Tag> {
    tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

pub(crate) async fn create(aws: &Aws, name: &str, spec: &ProjectSpec, tags: &Tags) -> Result<(), AwsError> {
    aws.codebuild
        .create_project()
        .name(name)
        .source(source(spec))
        .artifacts(artifacts())
        .environment(environment(spec))
        .service_role(&spec.service_role)
        .timeout_in_minutes(spec.timeout_in_minutes as i32)
        .set_tags(Some(sdk_tags(tags)))
        .send()
        .await
        .map_err(aws_err("codebuild", "CreateProject"))?;
    Ok(())
}

pub(crate) async fn update(aws: &Aws, name: &str, want: &ProjectSpec, _have: &ProjectSpec) -> Result<(), AwsError> {
    aws.codebuild
        .update_project()
        .name(name)
        .source(source(want))
        .artifacts(artifacts())
        .environment(environment(want))
        .service_role(&want.service_role)
        .timeout_in_minutes(want.timeout_in_minutes as i32)
        .send()
        .await
        .map_err(aws_err("codebuild", "UpdateProject"))?;
    Ok(())
}

/// `UpdateProject` replaces the tag set: callers pass every tag the project should keep.
pub(crate) async fn tag(aws: &Aws, name: &str, tags: &Tags) -> Result<(), AwsError> {
    aws.codebuild.update_project().name(name).set_tags(Some(sdk_tags(tags))).send().await.map_err(aws_err("codebuild", "UpdateProject"))?;
    Ok(())
}

pub(crate) async fn delete(aws: &Aws, name: &str) -> Result<(), AwsError> {
    aws.codebuild.delete_project().name(name).send().await.map_err(aws_err("codebuild", "DeleteProject"))?;
    Ok(())
}
