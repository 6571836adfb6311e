//! The JSON Schema editors use to validate manifests, generated from the types so the two never
//! disagree. `manifests/schema/pipeline.schema.json` is this output, checked by a test.

use super::Pipeline;

/// The schema as pretty JSON with a trailing newline.
pub fn pipeline_schema_json() -> String {
    let schema = schemars::schema_for!(Pipeline);
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema serialises");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_committed_schema_matches_the_types() {
        let committed = include_str!("../../../../manifests/schema/pipeline.schema.json");
        assert!(
            committed == super::pipeline_schema_json(),
            "manifests/schema/pipeline.schema.json is stale: run `slipway schema > manifests/schema/pipeline.schema.json`"
        );
    }
}
