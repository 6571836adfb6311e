//! The delivery traits implemented with the AWS SDK (ECR, CodeDeploy, CodePipeline, ECS).
//!
//! moto 5.2.5 answers the ECR side for real (tests/delivery.rs); it keeps CodeDeploy deployments
//! `Created` forever and lacks `StopDeployment`, so the CodeDeploy requests built here are
//! checked with aws-smithy-mocks (tests/adapters_mocked.rs).

use std::time::SystemTime;

use serde_json::Value;

use aws_sdk_codedeploy::types::DeploymentStatus;
use slipway_core::delivery::api::{
    Creator, Delivery, DeployStatus, Deployment, Execution, ExecutionStatus, HookAnswer, Image, Registry, ServiceDeployment, StopCode,
    TaskDefinition,
};
use slipway_core::resource::{MANAGED_BY_VALUE, TAG_MANAGED_BY};

use crate::{Aws, AwsError, absent_if_not_found, aws_err};

/// Tag slipway puts on the task definitions it registers: the Git revision they came from.
pub(crate) const TAG_REVISION: &str = "slipway.dev/revision";

/// An SDK timestamp as a `SystemTime` (`None` when absent or out of range).
pub(crate) fn time(t: Option<&aws_smithy_types::DateTime>) -> Option<SystemTime> {
    t.and_then(|t| SystemTime::try_from(*t).ok())
}

impl Registry for Aws {
    async fn image_by_tag(&self, repository: &str, tag: &str) -> Result<Option<Image>, AwsError> {
        let id = aws_sdk_ecr::types::ImageIdentifier::builder().image_tag(tag).build();
        describe_image(self, repository, id).await
    }

    async fn image_by_digest(&self, repository: &str, digest: &str) -> Result<Option<Image>, AwsError> {
        let id = aws_sdk_ecr::types::ImageIdentifier::builder().image_digest(digest).build();
        describe_image(self, repository, id).await
    }

    async fn put_tag(&self, repository: &str, digest: &str, tag: &str) -> Result<(), AwsError> {
        let id = aws_sdk_ecr::types::ImageIdentifier::builder().image_digest(digest).build();
        let got =
            self.ecr.batch_get_image().repository_name(repository).image_ids(id).send().await.map_err(aws_err("ecr", "BatchGetImage"))?;
        let image = got
            .images
            .unwrap_or_default()
            .into_iter()
            .next()
            .ok_or_else(|| AwsError::refused("ecr", "BatchGetImage", format!("image {digest} is not in {repository}")))?;
        let manifest =
            image.image_manifest.ok_or_else(|| AwsError::refused("ecr", "BatchGetImage", format!("image {digest} has no manifest")))?;
        let put = self
            .ecr
            .put_image()
            .repository_name(repository)
            .image_manifest(manifest)
            .set_image_manifest_media_type(image.image_manifest_media_type)
            .image_tag(tag)
            .send()
            .await;
        match put.map_err(aws_err("ecr", "PutImage")) {
            Ok(_) => Ok(()),
            // The tag is already on this image: nothing to do.
            Err(e) if e.code.as_deref() == Some("ImageAlreadyExistsException") => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn repository_uri(&self, repository: &str) -> Result<String, AwsError> {
        let got =
            self.ecr.describe_repositories().repository_names(repository).send().await.map_err(aws_err("ecr", "DescribeRepositories"))?;
        got.repositories
            .unwrap_or_default()
            .into_iter()
            .next()
            .and_then(|r| r.repository_uri)
            .ok_or_else(|| AwsError::refused("ecr", "DescribeRepositories", format!("repository {repository} has no URI")))
    }
}

async fn describe_image(aws: &Aws, repository: &str, id: aws_sdk_ecr::types::ImageIdentifier) -> Result<Option<Image>, AwsError> {
    let got = absent_if_not_found(
        aws.ecr.describe_images().repository_name(repository).image_ids(id).send().await.map_err(aws_err("ecr", "DescribeImages")),
    )?;
    Ok(got.and_then(|g| g.image_details.unwrap_or_default().into_iter().next()).and_then(|d| {
        Some(Image { digest: d.image_digest?, pushed_at: time(d.image_pushed_at.as_ref()), tags: d.image_tags.unwrap_or_default() })
    }))
}

/// CodeDeploy's status, kept as unknown when this SDK does not know it (never taken for an end).
fn deploy_status(status: Option<&DeploymentStatus>) -> DeployStatus {
    match status {
        Some(DeploymentStatus::Created) => DeployStatus::Created,
        Some(DeploymentStatus::Queued) => DeployStatus::Queued,
        Some(DeploymentStatus::InProgress) => DeployStatus::InProgress,
        Some(DeploymentStatus::Baking) => DeployStatus::Baking,
        Some(DeploymentStatus::Ready) => DeployStatus::Ready,
        Some(DeploymentStatus::Succeeded) => DeployStatus::Succeeded,
        Some(DeploymentStatus::Failed) => DeployStatus::Failed,
        Some(DeploymentStatus::Stopped) => DeployStatus::Stopped,
        _ => DeployStatus::Unknown,
    }
}

fn deployment(info: aws_sdk_codedeploy::types::DeploymentInfo) -> Deployment {
    let content = info.revision.as_ref().and_then(|r| r.app_spec_content.as_ref()).and_then(|c| c.content.clone());
    let rollback = info.rollback_info.as_ref();
    Deployment {
        id: info.deployment_id.clone().unwrap_or_default(),
        status: deploy_status(info.status.as_ref()),
        creator: Creator::parse(info.creator.as_ref().map(|c| c.as_str()).unwrap_or_default()),
        created: time(info.create_time.as_ref()),
        completed: time(info.complete_time.as_ref()),
        task_definition: content.as_deref().and_then(task_definition_in_app_spec),
        rolled_back_by: rollback.and_then(|r| r.rollback_deployment_id.clone()),
        rollback_of: rollback.and_then(|r| r.rollback_triggering_deployment_id.clone()),
        error_code: info.error_information.as_ref().and_then(|e| e.code.as_ref()).map(|c| StopCode::parse(c.as_str())),
        message: info
            .error_information
            .as_ref()
            .and_then(|e| e.message.clone())
            .or_else(|| rollback.and_then(|r| r.rollback_message.clone())),
        description: info.description,
        rolled_back_in_place: false,
        stage: None,
        paused: None,
    }
}

/// The `TaskDefinition` an AppSpec (YAML or JSON) names.
pub fn task_definition_in_app_spec(content: &str) -> Option<String> {
    fn find(v: &serde_yaml_ng::Value) -> Option<String> {
        match v {
            serde_yaml_ng::Value::Mapping(m) => {
                m.iter().find_map(|(k, v)| if k.as_str() == Some("TaskDefinition") { v.as_str().map(str::to_owned) } else { find(v) })
            }
            serde_yaml_ng::Value::Sequence(s) => s.iter().find_map(find),
            _ => None,
        }
    }
    find(&serde_yaml_ng::from_str(content).ok()?)
}

impl Delivery for Aws {
    async fn deployments(&self, application: &str, group: &str, limit: usize) -> Result<Vec<Deployment>, AwsError> {
        let listed = absent_if_not_found(
            self.codedeploy
                .list_deployments()
                .application_name(application)
                .deployment_group_name(group)
                .send()
                .await
                .map_err(aws_err("codedeploy", "ListDeployments")),
        )?;
        let ids: Vec<String> = listed.and_then(|l| l.deployments).unwrap_or_default();
        let mut out = Vec::new();
        // BatchGetDeployments takes at most 25 ids.
        for chunk in ids.chunks(25) {
            let got = self
                .codedeploy
                .batch_get_deployments()
                .set_deployment_ids(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(aws_err("codedeploy", "BatchGetDeployments"))?;
            out.extend(got.deployments_info.unwrap_or_default().into_iter().map(deployment));
        }
        out.sort_by(|a, b| b.created.cmp(&a.created).then(b.id.cmp(&a.id)));
        out.truncate(limit);
        Ok(out)
    }

    async fn create_deployment(&self, application: &str, group: &str, app_spec: &str, description: &str) -> Result<String, AwsError> {
        use aws_sdk_codedeploy::types::{AppSpecContent, RevisionLocation, RevisionLocationType};
        let revision = RevisionLocation::builder()
            .revision_type(RevisionLocationType::AppSpecContent)
            .app_spec_content(AppSpecContent::builder().content(app_spec).build())
            .build();
        let created = self
            .codedeploy
            .create_deployment()
            .application_name(application)
            .deployment_group_name(group)
            .revision(revision)
            .description(description)
            .send()
            .await
            .map_err(aws_err("codedeploy", "CreateDeployment"))?;
        Ok(created.deployment_id.unwrap_or_default())
    }

    async fn stop_deployment(&self, id: &str, rollback: bool) -> Result<(), AwsError> {
        self.codedeploy
            .stop_deployment()
            .deployment_id(id)
            .auto_rollback_enabled(rollback)
            .send()
            .await
            .map_err(aws_err("codedeploy", "StopDeployment"))?;
        Ok(())
    }

    async fn register_task_definition(&self, definition: &Value, revision: Option<&str>) -> Result<String, AwsError> {
        let request = task_definition_request(self.ecs.register_task_definition(), definition)
            .map_err(|why| AwsError::refused("ecs", "RegisterTaskDefinition", why))?;
        let mut tags = vec![aws_sdk_ecs::types::Tag::builder().key(TAG_MANAGED_BY).value(MANAGED_BY_VALUE).build()];
        if let Some(revision) = revision {
            tags.push(aws_sdk_ecs::types::Tag::builder().key(TAG_REVISION).value(revision).build());
        }
        let registered = request.set_tags(Some(tags)).send().await.map_err(aws_err("ecs", "RegisterTaskDefinition"))?;
        registered
            .task_definition
            .and_then(|t| t.task_definition_arn)
            .ok_or_else(|| AwsError::refused("ecs", "RegisterTaskDefinition", "no task definition ARN in the answer"))
    }

    async fn task_definition(&self, arn: &str) -> Result<TaskDefinition, AwsError> {
        if let Some(known) = self.task_definitions.get(arn) {
            return Ok(known);
        }
        let got = self
            .ecs
            .describe_task_definition()
            .task_definition(arn)
            .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
            .send()
            .await
            .map_err(aws_err("ecs", "DescribeTaskDefinition"))?;
        let images = got
            .task_definition
            .and_then(|t| t.container_definitions)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|c| Some((c.name?, c.image?)))
            .collect();
        let revision = got.tags.unwrap_or_default().into_iter().find(|t| t.key.as_deref() == Some(TAG_REVISION)).and_then(|t| t.value);
        let definition = TaskDefinition { arn: arn.to_string(), images, revision };
        self.task_definitions.remember(&definition);
        Ok(definition)
    }

    async fn service_task_definition(&self, cluster: &str, service: &str) -> Result<Option<String>, AwsError> {
        if let Some(task_definition) = self.recent_services.take(cluster, service) {
            return Ok(task_definition);
        }
        let got =
            self.ecs.describe_services().cluster(cluster).services(service).send().await.map_err(aws_err("ecs", "DescribeServices"))?;
        Ok(got.services.unwrap_or_default().into_iter().find(|s| s.status.as_deref() != Some("INACTIVE")).and_then(|s| s.task_definition))
    }

    async fn service_deployments(&self, cluster: &str, service: &str, limit: usize) -> Result<Vec<ServiceDeployment>, AwsError> {
        crate::service_deployment::list(self, cluster, service, limit).await
    }

    async fn update_service(&self, cluster: &str, service: &str, task_definition: &str) -> Result<String, AwsError> {
        crate::service_deployment::update_service(self, cluster, service, task_definition).await
    }

    async fn stop_service_deployment(&self, arn: &str, rollback: bool) -> Result<(), AwsError> {
        crate::service_deployment::stop(self, arn, rollback).await
    }

    async fn continue_service_deployment(&self, arn: &str, hook_id: &str, answer: HookAnswer) -> Result<(), AwsError> {
        crate::service_deployment::answer(self, arn, hook_id, answer).await
    }

    async fn executions(&self, pipeline: &str, limit: usize) -> Result<Vec<Execution>, AwsError> {
        let got = self
            .codepipeline
            .list_pipeline_executions()
            .pipeline_name(pipeline)
            .max_results(limit.clamp(1, 100) as i32)
            .send()
            .await
            .map_err(aws_err("codepipeline", "ListPipelineExecutions"))?;
        let mut out: Vec<Execution> = got
            .pipeline_execution_summaries
            .unwrap_or_default()
            .into_iter()
            .map(|e| Execution {
                id: e.pipeline_execution_id.unwrap_or_default(),
                status: ExecutionStatus::parse(e.status.as_ref().map(|s| s.as_str()).unwrap_or_default()),
                started: time(e.start_time.as_ref()),
                source_revisions: e.source_revisions.unwrap_or_default().into_iter().filter_map(|r| r.revision_id).collect(),
            })
            .collect();
        out.sort_by_key(|d| std::cmp::Reverse(d.started));
        Ok(out)
    }

    async fn start_execution(&self, pipeline: &str) -> Result<String, AwsError> {
        let started = self
            .codepipeline
            .start_pipeline_execution()
            .name(pipeline)
            .send()
            .await
            .map_err(aws_err("codepipeline", "StartPipelineExecution"))?;
        Ok(started.pipeline_execution_id.unwrap_or_default())
    }
}

/// Fills a `RegisterTaskDefinition` request from task definition JSON (the shape `aws ecs
/// register-task-definition --cli-input-json` takes). Fields slipway does not map are refused by
/// name rather than dropped.
fn task_definition_request(
    mut r: aws_sdk_ecs::operation::register_task_definition::builders::RegisterTaskDefinitionFluentBuilder,
    v: &Value,
) -> Result<aws_sdk_ecs::operation::register_task_definition::builders::RegisterTaskDefinitionFluentBuilder, String> {
    use aws_sdk_ecs::types::{
        Compatibility, ContainerDefinition, HealthCheck, KeyValuePair, LogConfiguration, LogDriver, NetworkMode, PortMapping, Secret,
        TransportProtocol,
    };
    let obj = v.as_object().ok_or("the task definition is not a JSON object")?;
    let s = |v: &Value| v.as_str().map(str::to_owned).or_else(|| v.as_i64().map(|n| n.to_string()));
    let int = |v: &Value| v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())).map(|n| n as i32);
    let strings = |v: &Value| v.as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect::<Vec<_>>());
    for (key, value) in obj {
        r = match key.as_str() {
            "family" => r.family(s(value).unwrap_or_default()),
            "taskRoleArn" => r.task_role_arn(s(value).unwrap_or_default()),
            "executionRoleArn" => r.execution_role_arn(s(value).unwrap_or_default()),
            "networkMode" => r.network_mode(NetworkMode::from(value.as_str().unwrap_or_default())),
            "cpu" => r.cpu(s(value).unwrap_or_default()),
            "memory" => r.memory(s(value).unwrap_or_default()),
            "requiresCompatibilities" => {
                r.set_requires_compatibilities(strings(value).map(|v| v.iter().map(|c| Compatibility::from(c.as_str())).collect()))
            }
            "containerDefinitions" => {
                let mut containers = Vec::new();
                for c in value.as_array().ok_or("containerDefinitions is not a list")? {
                    let mut b = ContainerDefinition::builder();
                    for (ck, cv) in c.as_object().ok_or("a container definition is not an object")? {
                        b = match ck.as_str() {
                            "name" => b.name(s(cv).unwrap_or_default()),
                            "image" => b.image(s(cv).unwrap_or_default()),
                            "cpu" => b.cpu(int(cv).unwrap_or_default()),
                            "memory" => b.memory(int(cv).unwrap_or_default()),
                            "memoryReservation" => b.memory_reservation(int(cv).unwrap_or_default()),
                            "essential" => b.essential(cv.as_bool().unwrap_or(true)),
                            "command" => b.set_command(strings(cv)),
                            "entryPoint" => b.set_entry_point(strings(cv)),
                            "workingDir" => b.working_directory(s(cv).unwrap_or_default()),
                            "portMappings" => b.set_port_mappings(Some(
                                cv.as_array()
                                    .into_iter()
                                    .flatten()
                                    .map(|p| {
                                        let mut m = PortMapping::builder()
                                            .set_container_port(int(&p["containerPort"]))
                                            .set_host_port(int(&p["hostPort"]));
                                        if let Some(proto) = p["protocol"].as_str() {
                                            m = m.protocol(TransportProtocol::from(proto));
                                        }
                                        if let Some(name) = p["name"].as_str() {
                                            m = m.name(name);
                                        }
                                        m.build()
                                    })
                                    .collect(),
                            )),
                            "environment" => b.set_environment(Some(
                                cv.as_array()
                                    .into_iter()
                                    .flatten()
                                    .map(|e| KeyValuePair::builder().set_name(s(&e["name"])).set_value(s(&e["value"])).build())
                                    .collect(),
                            )),
                            "secrets" => b.set_secrets(Some(
                                cv.as_array()
                                    .into_iter()
                                    .flatten()
                                    .map(|e| {
                                        Secret::builder()
                                            .name(s(&e["name"]).unwrap_or_default())
                                            .value_from(s(&e["valueFrom"]).unwrap_or_default())
                                            .build()
                                    })
                                    .collect::<Result<Vec<_>, _>>()
                                    .map_err(|e| e.to_string())?,
                            )),
                            "logConfiguration" => {
                                let options =
                                    cv["options"].as_object().map(|o| o.iter().filter_map(|(k, v)| Some((k.clone(), s(v)?))).collect());
                                b.log_configuration(
                                    LogConfiguration::builder()
                                        .log_driver(LogDriver::from(cv["logDriver"].as_str().unwrap_or("awslogs")))
                                        .set_options(options)
                                        .build()
                                        .map_err(|e| e.to_string())?,
                                )
                            }
                            "healthCheck" => b.health_check(
                                HealthCheck::builder()
                                    .set_command(strings(&cv["command"]))
                                    .set_interval(int(&cv["interval"]))
                                    .set_timeout(int(&cv["timeout"]))
                                    .set_retries(int(&cv["retries"]))
                                    .set_start_period(int(&cv["startPeriod"]))
                                    .build()
                                    .map_err(|e| e.to_string())?,
                            ),
                            other => {
                                return Err(format!(
                                    "container field `{other}` is not supported by deploy.mode: direct yet; use deploy.mode: pipeline"
                                ));
                            }
                        };
                    }
                    containers.push(b.build());
                }
                r.set_container_definitions(Some(containers))
            }
            other => {
                return Err(format!(
                    "task definition field `{other}` is not supported by deploy.mode: direct yet; use deploy.mode: pipeline"
                ));
            }
        };
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::task_definition_in_app_spec;

    #[test]
    fn the_task_definition_is_found_in_yaml_and_json_app_specs() {
        let yaml = "version: 0.0\nResources:\n  - TargetService:\n      Type: AWS::ECS::Service\n      Properties:\n        TaskDefinition: \"arn:aws:ecs:r:1:task-definition/web:7\"\n";
        assert_eq!(task_definition_in_app_spec(yaml).as_deref(), Some("arn:aws:ecs:r:1:task-definition/web:7"));
        let json = r#"{"Resources":[{"TargetService":{"Properties":{"TaskDefinition":"arn:td:3"}}}]}"#;
        assert_eq!(task_definition_in_app_spec(json).as_deref(), Some("arn:td:3"));
    }
}
