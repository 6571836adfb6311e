//! Reads every `*.yaml` / `*.yml` file under the repository root and keeps the documents whose
//! `apiVersion` is slipway's. Other YAML (an `appspec.yaml`, a `buildspec.yml`, CI files) is
//! ignored, so manifests can live next to the files they reference.
//!
//! Near misses are errors, not other YAML: an `apiVersion` close to `slipway.dev/…`, a
//! `kind: Pipeline` without an `apiVersion`, a file that mentions `slipway.dev` but does not
//! parse. Files that are not manifests as far as can be told, but might have been one (not
//! UTF-8, not YAML, empty), are *suspects*: warnings that keep prune from running, because a
//! broken file may be the definition of a pipeline that now only looks removed.

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
    /// Files that may have been manifests but cannot be read as any (see the module doc).
    pub suspects: Vec<Diagnostic>,
}

/// Directories never searched: VCS metadata, build output, and `.slipway` (where `slipway run`
/// keeps its checkout by default: searched, a clone of the repository inside it would define
/// every pipeline twice).
const SKIPPED_DIRS: &[&str] = &[".git", ".slipway", "target", "node_modules"];

pub fn load_repository(root: &Path) -> std::io::Result<LoadOutcome> {
    let mut files = Vec::new();
    collect_yaml_files(root, root, &mut files)?;
    files.sort();
    let mut outcome = LoadOutcome::default();
    for rel in files {
        let bytes = match fs::read(root.join(&rel)) {
            Ok(bytes) => bytes,
            Err(err) => {
                outcome.errors.push(at(&rel, 1, 1, format!("failed to read file: {err}")));
                continue;
            }
        };
        match String::from_utf8(bytes) {
            Ok(text) => load_file(&rel, &text, &mut outcome),
            Err(err) => not_utf8(&rel, err.as_bytes(), err.utf8_error().valid_up_to(), &mut outcome),
        }
    }
    Ok(outcome)
}

fn at(file: &Path, line: usize, column: usize, message: String) -> Diagnostic {
    Diagnostic { file: file.to_path_buf(), line, column, message, pipeline: None }
}

/// A document that claims or resembles a slipway manifest, judged from its raw text.
fn looks_like_slipway(text: &str) -> bool {
    text.contains("slipway.dev") || text.lines().any(|l| matches!(l.trim(), "kind: Pipeline" | "kind: \"Pipeline\"" | "kind: 'Pipeline'"))
}

/// An `apiVersion` that is not slipway's but close to it: a typo, not someone else's YAML.
fn near_slipway(api_version: &str) -> bool {
    let group = api_version.split('/').next().unwrap_or(api_version).to_ascii_lowercase();
    group.contains("slipway") || strsim::jaro_winkler(&group, "slipway.dev") >= 0.85
}

/// A file with bytes that are not UTF-8: where the first one is, as line and column.
fn not_utf8(rel: &Path, bytes: &[u8], valid_up_to: usize, outcome: &mut LoadOutcome) {
    let before = &bytes[..valid_up_to];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let column = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
    let message = format!("byte 0x{:02X} is not UTF-8: save the file as UTF-8", bytes[valid_up_to]);
    let diagnostic = at(rel, line, column, message);
    if looks_like_slipway(&String::from_utf8_lossy(bytes)) {
        outcome.errors.push(diagnostic);
    } else {
        outcome.suspects.push(diagnostic);
    }
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
    if text.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#') || l.trim() == "---") {
        outcome.suspects.push(at(rel, 1, 1, "the file holds no YAML document (was it a manifest, truncated?)".into()));
        return;
    }
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
                // Not YAML: an error if it resembles a manifest, else a suspect.
                let (line, column) = error_position(&err);
                let diagnostic = diag(line, column, strip_position(&err), None);
                if looks_like_slipway(&doc) {
                    outcome.errors.push(diagnostic)
                } else {
                    outcome.suspects.push(diagnostic)
                }
                continue;
            }
        };
        let name = value.get("metadata").and_then(|m| m.get("name")).and_then(|n| n.as_str()).map(str::to_owned);
        let api_version = match value.get("apiVersion").and_then(|v| v.as_str()) {
            Some(v) if v.starts_with("slipway.dev/") => v,
            Some(v) if near_slipway(v) || doc.contains("slipway.dev") => {
                let (line, column) = super::locate::locate(&doc, &["apiVersion"]);
                outcome.errors.push(diag(
                    line,
                    column,
                    format!("apiVersion `{v}` is not slipway's: did you mean `{API_VERSION}`?"),
                    name.clone(),
                ));
                remember_broken(outcome, name);
                continue;
            }
            None if looks_like_slipway(&doc) => {
                let (line, column) = super::locate::locate(&doc, &["kind"]);
                let message = format!("this looks like a slipway manifest but has no apiVersion: add `apiVersion: {API_VERSION}`");
                outcome.errors.push(diag(line, column, message, name.clone()));
                remember_broken(outcome, name);
                continue;
            }
            // Someone else's YAML.
            _ => continue,
        };
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
    outcome.broken_names.extend(name);
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

    fn loaded(file: &str, text: &str) -> LoadOutcome {
        let mut outcome = LoadOutcome::default();
        load_file(Path::new(file), text, &mut outcome);
        outcome
    }

    const WEB: &str = "apiVersion: slipway.dev/v1alpha1\nkind: Pipeline\nmetadata:\n  name: web\n";

    #[test]
    fn near_misses_of_a_manifest_are_errors_not_other_yaml() {
        let typo = loaded("p.yaml", &WEB.replace("slipway.dev", "slipwy.dev"));
        assert_eq!(typo.errors.len(), 1, "{:?}", typo.errors);
        assert!(typo.errors[0].message.contains("did you mean `slipway.dev/v1alpha1`"), "{}", typo.errors[0]);
        assert_eq!((typo.errors[0].line, typo.broken_names.as_slice()), (1, ["web".to_string()].as_slice()));

        let missing = loaded("p.yaml", &WEB.replace("apiVersion: slipway.dev/v1alpha1\n", ""));
        assert_eq!(missing.errors.len(), 1);
        assert!(missing.errors[0].message.contains("no apiVersion"), "{}", missing.errors[0]);
        assert_eq!(missing.errors[0].line, 1, "at the kind line");

        // Someone else's Pipeline, or any other YAML, stays ignored.
        let tekton = loaded("ci.yaml", "apiVersion: tekton.dev/v1\nkind: Pipeline\nmetadata: {name: build}\n");
        assert!(tekton.errors.is_empty() && tekton.suspects.is_empty() && tekton.pipelines.is_empty());
    }

    #[test]
    fn files_that_might_have_been_manifests_are_suspects() {
        for text in ["", "\n\n", "# web pipeline\n", "---\n"] {
            let empty = loaded("p.yaml", text);
            assert_eq!(empty.suspects.len(), 1, "{text:?}");
            assert!(empty.suspects[0].message.contains("no YAML document"));
        }
        let broken = loaded("other.yaml", "a: [1, 2\nb: 3\n");
        assert_eq!((broken.errors.len(), broken.suspects.len()), (0, 1));
        let broken_manifest = loaded("p.yaml", &format!("{WEB}spec: [1, 2\n"));
        assert_eq!((broken_manifest.errors.len(), broken_manifest.suspects.len()), (1, 0));
    }

    #[test]
    fn bytes_that_are_not_utf8_are_reported_where_they_are() {
        let mut bytes = WEB.as_bytes().to_vec();
        bytes.extend_from_slice(b"  # caf\xe9\n");
        let mut outcome = LoadOutcome::default();
        let valid = bytes.iter().position(|b| *b == 0xE9).unwrap();
        not_utf8(Path::new("p.yaml"), &bytes, valid, &mut outcome);
        assert_eq!(outcome.errors.len(), 1);
        let err = &outcome.errors[0];
        assert_eq!((err.line, err.column), (5, 8), "{err}");
        assert!(err.message.contains("0xE9") && err.message.contains("UTF-8"), "{err}");

        let mut outcome = LoadOutcome::default();
        not_utf8(Path::new("notes.yaml"), b"a: \xff\n", 3, &mut outcome);
        assert_eq!((outcome.errors.len(), outcome.suspects.len()), (0, 1));
    }

    #[test]
    fn a_checkout_in_dot_slipway_is_not_read_as_more_manifests() {
        let repo = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(repo.path().join("pipelines")).unwrap();
        std::fs::create_dir_all(repo.path().join(".slipway/checkout/pipelines")).unwrap();
        std::fs::write(repo.path().join("pipelines/web.yaml"), WEB).unwrap();
        std::fs::write(repo.path().join(".slipway/checkout/pipelines/web.yaml"), WEB).unwrap();
        let mut files = Vec::new();
        collect_yaml_files(repo.path(), repo.path(), &mut files).unwrap();
        assert_eq!(files, [PathBuf::from("pipelines/web.yaml")]);
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
