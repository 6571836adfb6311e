//! The zips slipway publishes to S3, built deterministically: the same files give the same
//! bytes, so an unchanged pipeline never uploads and never starts a pipeline execution.
//!
//! Determinism comes from sorted entries, a fixed timestamp (1980-01-01, the zip epoch), fixed
//! permissions and one compression setting.

use std::io::{Cursor, Write};

use md5::{Digest, Md5};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use crate::manifest::validate::SourceFile;

/// The file seed 002's buildspec reads the image tag from.
pub(crate) const COMMIT_FILE: &str = "git-commit-hash.txt";

/// Builds the zip. `commit`, when given, is written to `git-commit-hash.txt` as its first 8 hex
/// digits, as the seed's `git rev-parse HEAD | cut -c 1-8` does.
pub fn build_zip(files: &[SourceFile], commit: Option<&str>) -> Vec<u8> {
    let mut entries: Vec<(String, Vec<u8>, bool)> =
        files.iter().filter(|f| f.name != COMMIT_FILE).map(|f| (f.name.clone(), f.contents.clone(), f.executable)).collect();
    if let Some(commit) = commit {
        let short: String = commit.chars().take(8).collect();
        entries.push((COMMIT_FILE.to_string(), format!("{short}\n").into_bytes(), false));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, contents, executable) in entries {
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .compression_level(Some(6))
            .last_modified_time(DateTime::default())
            .unix_permissions(if executable { 0o755 } else { 0o644 });
        zip.start_file(name, options).expect("writing to memory");
        zip.write_all(&contents).expect("writing to memory");
    }
    zip.finish().expect("writing to memory").into_inner()
}

/// Hex MD5: what S3 reports as the ETag of a single-part upload.
pub(crate) fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(Md5::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn file(name: &str, body: &str) -> SourceFile {
        SourceFile { name: name.into(), contents: body.as_bytes().to_vec(), executable: false }
    }

    #[test]
    fn the_same_files_give_the_same_bytes_in_any_order() {
        let a = build_zip(&[file("taskdef.json", "{}"), file("appspec.yaml", "x")], None);
        let b = build_zip(&[file("appspec.yaml", "x"), file("taskdef.json", "{}")], None);
        assert_eq!(a, b);
        assert_ne!(a, build_zip(&[file("appspec.yaml", "y"), file("taskdef.json", "{}")], None));
    }

    #[test]
    fn the_commit_file_holds_eight_hex_digits() {
        let bytes = build_zip(&[file("Dockerfile", "FROM nginx")], Some("0123456789abcdef"));
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        let mut text = String::new();
        archive.by_name(COMMIT_FILE).unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "01234567\n");
        assert_eq!(archive.len(), 2);
    }
}
