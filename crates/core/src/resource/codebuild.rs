//! CodeBuild project for the "build in AWS" topology (seed 002): docker build in privileged
//! mode, source and artifacts handed over by CodePipeline.

use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectSpec {
    pub service_role: String,
    pub buildspec: String,
    pub environment_type: String,
    pub image: String,
    pub compute_type: String,
    pub privileged_mode: bool,
    /// Plain-text variables only; slipway never writes secrets into a project.
    pub environment_variables: BTreeMap<String, String>,
    pub timeout_in_minutes: u32,
}
