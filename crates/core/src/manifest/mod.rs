//! Manifests: the types people write, loading them from a repository with positions, and
//! validating them and the files they reference. `load` reads the manifests and `validate` the
//! files they reference (once: their contents travel on in [`ValidPipeline`]); the rest is pure.

pub mod budget;
pub mod jsonc;
pub mod load;
pub mod locate;
pub mod schema;
mod structure;
mod syntax;
pub mod types;
pub mod validate;

use std::fmt;
use std::path::PathBuf;

pub use load::{LoadOutcome, Loaded, load_repository};
pub use types::*;
pub use validate::{ValidPipeline, validate};

/// One problem in the config repository, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Diagnostic {
    /// Path relative to the repository root.
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// The pipeline the problem belongs to, when it is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file.display(), self.line, self.column, self.message)
    }
}

/// A valid manifest the module tests start from and break one thing of.
#[cfg(test)]
pub(crate) const TEST_MANIFEST: &str = "apiVersion: slipway.dev/v1alpha1
kind: Pipeline
metadata:
  name: web
spec:
  image:
    repository: demo-web
  source:
    path: app
    bucket: demo-web-settings
  deploy:
    serviceRoleArn: arn:aws:iam::123456789012:role/deploy
    cluster: demo
    service: web
    targetGroups: [blue, green]
    prodListener: {loadBalancer: alb, port: 80}
  pipeline:
    roleArn: arn:aws:iam::123456789012:role/pipeline
  triggers:
    ecrPush: false
";
