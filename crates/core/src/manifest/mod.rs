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
