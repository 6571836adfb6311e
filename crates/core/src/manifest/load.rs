//! Reads every `*.yaml` / `*.yml` file under the repository root and keeps the documents whose
//! `apiVersion` is slipway's. Other YAML (an `appspec.yaml`, a `buildspec.yml`, CI files) is
//! ignored, so manifests can live next to the files they reference.

use std::fs;
use std::path::{Path, PathBuf};

use super::{API_VERSION, Diagnostic, KIND_PIPELINE, Pipeline};

/// A parsed pipeline document and where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub pipeline: Pipeline,
    /// File path relative to the repository root.
    pub file: PathBuf,
    /// The document's own text, for locating fields in later errors.
    pub doc_text: String,
    /// 0-based line of the document's first line within the file.
    pub line_offset: usize,
}

impl Loaded {
    /// A diagnostic pointing at `path` (keys from the document root) in this document.
    pub(crate) fn diagnostic(&self, path: &[&str], message: impl Into<String>) -> Diagnostic {
        let (line, column) = super::locate::locate(&self.doc_text, path);
        Diagnostic {
            file: self.file.clone(),
            line: line + self.line_offset,
            column,
            message: message.into(),
            pipeline: Some(self.pipeline.metadata.name.clone()),
        }
    }
}

#[derive(Debug, Default)]
pub struct LoadOutcome {
    pub pipelines: Vec<Loaded>,
    pub errors: Vec<Diagnostic>,
    /// Names of pipelines whose documents failed to parse but whose name could be read. Their
    /// resources are never treated as orphans.
    pub broken_names: Vec<String>,
    /// True when a slipway document failed so badly that not even its name is known. Pruning is
    /// then unsafe: any owned resource could belong to it.
    pub unnamed_failures: bool,
}

/// Directories never searched: VCS metadata and build output.
const SKIPPED_DIRS: &[&str] = &[".git", "target", "node_modules"];

pub fn load_repository(root: &Path) -> std::io::Result<LoadOutcome> {
    let mut files = Vec::new();
    collect_yaml_files(root, root, &mut files)?;
    files.sort();
    let mut outcome = LoadOutcome::default();
    for rel in files {
        let text = match fs::read_to_string(root.join(&rel)) {
            Ok(text) => text,
            Err(err) => {
                outcome.errors.push(Diagnostic {
                    file: rel.clone(),
                    line: 1,
                    column: 1,
                    message: format!("failed to read file: {err}"),
                    pipeline: None,
                });
                continue;
            }
        };
        load_file(&rel, &text, &mut outcome);
    }
    Ok(outcome)
}

fn collect_yaml_files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        // symlink_metadata: a link is never followed, so nothing outside the repository is read.
        let meta = entry.path().symlink_metadata()?;
        if meta.is_dir() {
            if !SKIPPED_DIRS.contains(&name.as_ref()) {
                collect_yaml_files(root, &entry.path(), out)?;
            }
        } else if meta.is_file() && (name.ends_with(".yaml") || name.ends_with(".yml")) {
            let rel = entry.path().strip_prefix(root).expect("walked below root").to_path_buf();
            out.push(rel);
        }
    }
    Ok(())
}

/// Splits a YAML stream on `---` lines, keeping each document's starting line.
fn split_documents(text: &str) -> Vec<(usize, String)> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut start = 0;
    for (i, line) in text.lines().enumerate() {
        if line == "---" || line.starts_with("--- ") || line == "..." {
            docs.push((start, std::mem::take(&mut current)));
            // The separator line stays as a blank line so positions stay exact.
            current.push('\n');
            start = i;
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    docs.push((start, current));
    docs
}

fn load_file(rel: &Path, text: &str, outcome: &mut LoadOutcome) {
    for (offset, doc) in split_documents(text) {
        let diag = |line: usize, column: usize, message: String, pipeline: Option<String>| Diagnostic {
            file: rel.to_path_buf(),
            line: line + offset,
            column,
            message,
            pipeline,
        };
        let value: serde_yaml_ng::Value = match serde_yaml_ng::from_str(&doc) {
            Ok(value) => value,
            Err(err) => {
                // Not YAML at all. Only our business if it claims to be a slipway manifest.
                if doc.contains("slipway.dev/") {
                    let (line, column) = error_position(&err);
                    outcome.errors.push(diag(line, column, strip_position(&err), None));
                    outcome.unnamed_failures = true;
                }
                continue;
            }
        };
        let Some(api_version) = value.get("apiVersion").and_then(|v| v.as_str()) else {
            continue;
        };
        if !api_version.starts_with("slipway.dev/") {
            continue;
        }
        let name = value.get("metadata").and_then(|m| m.get("name")).and_then(|n| n.as_str()).map(str::to_owned);
        if api_version != API_VERSION {
            let (line, column) = super::locate::locate(&doc, &["apiVersion"]);
            outcome.errors.push(diag(
                line,
                column,
                format!("unsupported apiVersion `{api_version}`: this slipway reads `{API_VERSION}`"),
                name.clone(),
            ));
            remember_broken(outcome, name);
            continue;
        }
        let kind = value.get("kind").and_then(|v| v.as_str()).unwrap_or("");
        if kind != KIND_PIPELINE {
            let (line, column) = super::locate::locate(&doc, &["kind"]);
            outcome.errors.push(diag(line, column, format!("unknown kind `{kind}`: expected `{KIND_PIPELINE}`"), name.clone()));
            remember_broken(outcome, name);
            continue;
        }
        match serde_yaml_ng::from_str::<Pipeline>(&doc) {
            Ok(pipeline) => outcome.pipelines.push(Loaded { pipeline, file: rel.to_path_buf(), doc_text: doc, line_offset: offset }),
            Err(err) => {
                let (line, column) = error_position(&err);
                outcome.errors.push(diag(line, column, explain(&strip_position(&err)), name.clone()));
                remember_broken(outcome, name);
            }
        }
    }
}

fn remember_broken(outcome: &mut LoadOutcome, name: Option<String>) {
    match name {
        Some(name) => outcome.broken_names.push(name),
        None => outcome.unnamed_failures = true,
    }
}

fn error_position(err: &serde_yaml_ng::Error) -> (usize, usize) {
    err.location().map(|l| (l.line(), l.column())).unwrap_or((1, 1))
}

/// serde_yaml_ng appends " at line N column M"; the diagnostic prints the position itself.
fn strip_position(err: &serde_yaml_ng::Error) -> String {
    let text = err.to_string();
    match text.find(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// Adds "did you mean" to serde's unknown-field and unknown-variant messages.
fn explain(message: &str) -> String {
    for (marker, what) in [("unknown field `", "field"), ("unknown variant `", "value")] {
        let Some(start) = message.find(marker) else {
            continue;
        };
        let rest = &message[start + marker.len()..];
        let Some(end) = rest.find('`') else { continue };
        let unknown = &rest[..end];
        let candidates: Vec<&str> = rest[end..].split('`').skip(2).step_by(2).collect();
        let closest = candidates
            .iter()
            .map(|c| (strsim::jaro_winkler(unknown, c), *c))
            .filter(|(score, _)| *score > 0.7)
            .max_by(|a, b| a.0.total_cmp(&b.0));
        if let Some((_, best)) = closest {
            return format!("{message} (did you mean {what} `{best}`?)");
        }
    }
    message.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_name_the_closest_known_one() {
        let msg = explain("spec.image: unknown field `repositry`, expected one of `repository`, `tag`, `scanOnPush`");
        assert!(msg.ends_with("(did you mean field `repository`?)"), "{msg}");
    }

    #[test]
    fn documents_keep_their_line_offsets() {
        let docs = split_documents("a: 1\n---\nb: 2\nc: 3\n");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].0, 1);
        // The second document's text keeps a blank line for the separator.
        assert_eq!(docs[1].1, "\nb: 2\nc: 3\n");
    }

    #[test]
    fn other_yaml_is_ignored_and_bad_slipway_yaml_is_reported_with_its_line() {
        let mut outcome = LoadOutcome::default();
        load_file(Path::new("appspec.yaml"), "version: 0.0\nResources: []\n", &mut outcome);
        assert!(outcome.errors.is_empty() && outcome.pipelines.is_empty());

        let text = "apiVersion: slipway.dev/v1alpha1\nkind: Pipeline\nmetadata:\n  name: web\n  colour: blue\n";
        load_file(Path::new("p.yaml"), text, &mut outcome);
        assert_eq!(outcome.errors.len(), 1);
        let err = &outcome.errors[0];
        assert_eq!(err.line, 5, "{err}");
        assert!(err.message.contains("unknown field `colour`"), "{err}");
        assert_eq!(outcome.broken_names, vec!["web".to_string()]);
    }
}
