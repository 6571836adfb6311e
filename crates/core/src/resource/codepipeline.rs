//! CodePipeline pipeline: Source → (Build) → Deploy, as the seeds describe, with its type (V1 or
//! V2) and execution mode.

use serde::Serialize;
use std::collections::BTreeMap;

aws_values!(
    /// What a pipeline can do and how it is billed: V1 per active pipeline and month, V2 per
    /// action execution minute.
    PipelineType { V1 = "V1", V2 = "V2" }
);
aws_values!(
    /// How overlapping executions are handled. V1 pipelines run only `SUPERSEDED`.
    ExecutionMode { Superseded = "SUPERSEDED", Queued = "QUEUED", Parallel = "PARALLEL" }
);

impl PipelineType {
    /// GetPipeline's `pipelineType`: a pipeline created without one is V1 ("Pipelines are
    /// automatically designated as V1 pipelines, even if the pipeline type is not specified").
    pub fn from_live(value: Option<&str>) -> PipelineType {
        value.map_or(PipelineType::V1, PipelineType::parse)
    }
}

impl ExecutionMode {
    /// GetPipeline's `executionMode`: absent means AWS's default, `SUPERSEDED`.
    pub fn from_live(value: Option<&str>) -> ExecutionMode {
        value.map_or(ExecutionMode::Superseded, ExecutionMode::parse)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineSpec {
    pub pipeline_type: PipelineType,
    pub execution_mode: ExecutionMode,
    pub role_arn: String,
    pub artifact_bucket: String,
    pub stages: Vec<StageSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageSpec {
    pub name: String,
    pub actions: Vec<ActionSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionSpec {
    pub name: String,
    pub category: String,
    pub owner: String,
    pub provider: String,
    pub version: String,
    pub run_order: i32,
    pub configuration: BTreeMap<String, String>,
    pub input_artifacts: Vec<String>,
    pub output_artifacts: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipeline_read_without_type_or_mode_has_the_ones_aws_gives_it() {
        assert_eq!(PipelineType::from_live(None), PipelineType::V1, "an older slipway created V1 pipelines");
        assert_eq!(ExecutionMode::from_live(None), ExecutionMode::Superseded);
        assert_eq!(PipelineType::from_live(Some("V2")), PipelineType::V2);
        assert_eq!(ExecutionMode::from_live(Some("QUEUED")), ExecutionMode::Queued);
    }

    #[test]
    fn a_type_or_mode_slipway_does_not_know_is_kept_as_aws_wrote_it() {
        let mode = ExecutionMode::from_live(Some("BATCHED"));
        assert_eq!(mode, ExecutionMode::Other("BATCHED".into()));
        assert_eq!(serde_json::to_value(&mode).unwrap(), serde_json::json!("BATCHED"), "the plan shows it as AWS wrote it");
        assert_eq!(PipelineType::from_live(Some("V3")).as_str(), "V3");
    }
}
