//! Reads every `*.yaml` / `*.yml` file under the repository root and keeps the documents whose
//! `apiVersion` is slipway's. Other YAML (an `appspec.yaml`, a `buildspec.yml`, CI files) is
//! ignored, so manifests can live next to the files they reference.
//!
//! Near misses are errors, not other YAML: an `apiVersion` close to `slipway.dev/…`, a
//! `kind: Pipeline` without an `apiVersion`, a file that mentions `slipway.dev` but does not
//! parse. Files that are not manifests as far as can be told, but might have been one (not
//! UTF-8, not YAML, empty), are *suspects*: warnings that keep prune from running, because a
//! broken file may be the definition of a pipeline that now only looks removed.
//!
//! Every file is read within the [input budgets](super::budget): size from the metadata before
//! reading, documents before parsing, depth, nodes and alias expansion while parsing. A file or
//! document over one follows the same rule: an error if it looks like a manifest (its pipeline,
//! if its `metadata.name` can be read off the text already read, stays protected), else a
//! suspect. Syntax errors point where the defect is (see [`syntax`](super::syntax)).

use std::fs;
use std::path::{Path, PathBuf};

use super::budget::{self, Exceeded, MAX_FILE_BYTES, ValueError};
use super::{API_VERSION, Diagnostic, KIND_PIPELINE, Pipeline, structure, syntax};

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
        match read_within_budget(&root.join(&rel)) {
            Ok(Read::Whole(bytes)) => match String::from_utf8(bytes) {
                Ok(text) => load_file(&rel, &text, &mut outcome),
                Err(err) => not_utf8(&rel, err.as_bytes(), err.utf8_error().valid_up_to(), &mut outcome),
            },
            Ok(Read::TooBig { bytes, head }) => too_big(&rel, bytes, &head, &mut outcome),
            Err(err) => outcome.errors.push(at(&rel, 1, 1, format!("failed to read file: {err}"))),
        }
    }
    Ok(outcome)
}

/// A file read whole, or only its head because it is over [`MAX_FILE_BYTES`].
enum Read {
    Whole(Vec<u8>),
    TooBig { bytes: u64, head: Vec<u8> },
}

/// How much of a file over the size budget is read, to tell whether it was meant as a manifest.
const HEAD_BYTES: u64 = 16 * 1024;

/// Reads a file, its size checked from its metadata first, so a huge file is never read whole.
fn read_within_budget(path: &Path) -> std::io::Result<Read> {
    use std::io::Read as _;
    let file = fs::File::open(path)?;
    let bytes = file.metadata()?.len();
    if bytes > MAX_FILE_BYTES {
        let mut head = Vec::new();
        file.take(HEAD_BYTES).read_to_end(&mut head)?;
        return Ok(Read::TooBig { bytes, head });
    }
    let mut contents = Vec::with_capacity(bytes as usize);
    // `take`: a file that grows while it is read is still read within the budget.
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut contents)?;
    if contents.len() as u64 > MAX_FILE_BYTES {
        let bytes = contents.len() as u64;
        contents.truncate(HEAD_BYTES as usize);
        return Ok(Read::TooBig { bytes, head: contents });
    }
    Ok(Read::Whole(contents))
}

/// A file over the size budget: an error if its head looks like a manifest (with the pipeline
/// name if the head shows it), else a suspect.
fn too_big(rel: &Path, bytes: u64, head: &[u8], outcome: &mut LoadOutcome) {
    let head = String::from_utf8_lossy(head);
    refuse(rel, 1, 1, Exceeded::FileSize { bytes }, &head, outcome);
}

/// A file or document over a budget (see [`budget`](super::budget)): judged, and its name
/// looked for, only in the text already read.
fn refuse(rel: &Path, line: usize, column: usize, exceeded: Exceeded, text: &str, outcome: &mut LoadOutcome) {
    let mut diagnostic = at(rel, line, column, exceeded.to_string());
    if looks_like_slipway(text) {
        let name = cheap_name(text);
        diagnostic.pipeline = name.clone();
        outcome.errors.push(diagnostic);
        remember_broken(outcome, name);
    } else {
        outcome.suspects.push(diagnostic);
    }
}

/// The first `metadata.name` written in block style, read line by line without parsing.
fn cheap_name(text: &str) -> Option<String> {
    let mut block =
        text.lines().skip_while(|l| l.trim_end() != "metadata:").skip(1).take_while(|l| l.starts_with([' ', '#']) || l.is_empty());
    block.find_map(|l| {
        let value = l.strip_prefix(' ')?.trim_start().strip_prefix("name:")?;
        let value = value.split(" #").next().unwrap_or(value).trim().trim_matches(['"', '\'']);
        (!value.is_empty()).then(|| value.to_string())
    })
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

/// A line that ends one YAML document (and may start the next).
pub(crate) fn is_separator(line: &str) -> bool {
    line == "---" || line.starts_with("--- ") || line == "..."
}

/// Splits a YAML stream on `---` lines, keeping each document's starting line.
fn split_documents(text: &str) -> Vec<(usize, String)> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut start = 0;
    for (i, line) in text.lines().enumerate() {
        if is_separator(line) {
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
    if let Some(line) = budget::too_many_documents(text) {
        refuse(rel, line, 1, Exceeded::Documents, text, outcome);
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
        let value = match budget::parse_value(&doc) {
            Ok(value) => value,
            Err(err) => {
                // Not YAML, or over a budget: an error if it resembles a manifest, else a suspect.
                let (line, column, message) = match err {
                    ValueError::Syntax(err) => syntax::explain(&doc, &err),
                    ValueError::Budget { exceeded, line, column } => (line, column, exceeded.to_string()),
                    ValueError::DuplicateKey { key, line, column } => {
                        (line, column, format!("`{key}` is given twice in the same map: keep one"))
                    }
                };
                let name = looks_like_slipway(&doc).then(|| cheap_name(&doc)).flatten();
                let diagnostic = diag(line, column, message, name.clone());
                if looks_like_slipway(&doc) {
                    outcome.errors.push(diagnostic);
                    remember_broken(outcome, name);
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
        let mismatches = structure::check(&value);
        if !mismatches.is_empty() {
            for mismatch in mismatches {
                let (line, column) = super::locate::locate(&doc, &mismatch.keys());
                outcome.errors.push(diag(line, column, mismatch.message, name.clone()));
            }
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

fn strip_position(err: &serde_yaml_ng::Error) -> String {
    syntax::strip_position(&err.to_string())
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
    fn a_file_over_the_size_budget_is_refused_unread_and_holds_its_pipeline() {
        let repo = tempfile::tempdir().unwrap();
        let manifest = repo.path().join("web.yaml");
        std::fs::write(&manifest, format!("{WEB}spec:\n")).unwrap();
        std::fs::OpenOptions::new().write(true).open(&manifest).unwrap().set_len(60 << 20).unwrap();
        let other = repo.path().join("values.yaml");
        std::fs::write(&other, "a: 1\n").unwrap();
        std::fs::OpenOptions::new().write(true).open(&other).unwrap().set_len(MAX_FILE_BYTES + 1).unwrap();
        let outcome = load_repository(repo.path()).unwrap();
        assert_eq!(outcome.errors.len(), 1, "{:?}", outcome.errors);
        let err = outcome.errors[0].to_string();
        assert!(err.starts_with("web.yaml:1:1: the file is 62914560 bytes, over the limit of 1048576"), "{err}");
        assert_eq!(outcome.broken_names, ["web"]);
        assert_eq!(outcome.suspects.len(), 1);
        assert_eq!(outcome.suspects[0].file, Path::new("values.yaml"));
    }

    #[test]
    fn a_file_with_too_many_documents_is_refused_at_the_first_one_too_many() {
        let text = format!("{WEB}---\n").repeat(budget::MAX_DOCUMENTS + 1);
        let outcome = loaded("p.yaml", &text);
        assert!(outcome.pipelines.is_empty());
        assert_eq!(outcome.errors.len(), 1);
        assert_eq!(outcome.errors[0].line, 5 * budget::MAX_DOCUMENTS, "{}", outcome.errors[0]);
        assert!(outcome.errors[0].message.contains("more than 100 YAML documents"), "{}", outcome.errors[0]);
        assert_eq!(outcome.broken_names, ["web"]);
    }

    #[test]
    fn a_yaml_bomb_in_a_manifest_is_an_error_naming_its_pipeline() {
        let mut text = format!("{WEB}spec:\n  a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            text.push_str(&format!("  a{i}: &a{i} [{}]\n", vec![format!("*a{}", i - 1); 10].join(", ")));
        }
        let outcome = loaded("p.yaml", &text);
        assert_eq!(outcome.errors.len(), 1);
        assert!(outcome.errors[0].message.contains("more than 100000 values"), "{}", outcome.errors[0]);
        assert_eq!(outcome.broken_names, ["web"]);
    }

    #[test]
    fn the_name_is_read_cheaply_from_the_metadata_block_only() {
        assert_eq!(cheap_name(WEB).as_deref(), Some("web"));
        assert_eq!(cheap_name("metadata:\n  labels: {}\n  name: \"api\"  # the API\n").as_deref(), Some("api"));
        assert_eq!(cheap_name("metadata:\nspec:\n  pipeline:\n    name: x\n"), None);
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
        let shown: Vec<String> = outcome.errors.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 2, "every error of the document: {shown:#?}");
        assert!(shown[0].starts_with("p.yaml:5:3: metadata.colour: unknown field `colour`"), "{}", shown[0]);
        assert_eq!(shown[1], "p.yaml:1:1: missing field `spec`");
        assert_eq!(outcome.broken_names, vec!["web".to_string()]);
    }
}
