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

/// `zip` with one more file (replacing one of that name), still sorted and deterministic.
pub(crate) fn with_file(zip: &[u8], name: &str, contents: &[u8]) -> Vec<u8> {
    let mut archive = zip::ZipArchive::new(Cursor::new(zip)).expect("slipway's own zip reads back");
    let mut files = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).expect("slipway's own zip reads back");
        let entry_name = entry.name().expect("slipway's own zip reads back").to_string();
        if entry_name == name {
            continue;
        }
        let executable = entry.unix_mode().is_some_and(|m| m & 0o111 != 0);
        let mut contents = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut contents).expect("slipway's own zip reads back");
        files.push(SourceFile { name: entry_name, contents, executable });
    }
    files.push(SourceFile { name: name.to_string(), contents: contents.to_vec(), executable: false });
    // build_zip writes the commit file itself, from the commit it is given: the same bytes.
    let commit = files.iter().find(|f| f.name == COMMIT_FILE).map(|f| String::from_utf8_lossy(&f.contents).trim().to_string());
    build_zip(&files, commit.as_deref())
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
    fn a_file_added_afterwards_gives_the_zip_built_with_it() {
        let files = [file("taskdef.json", "{}"), file("appspec.yaml", "x")];
        let mut with = files.to_vec();
        with.push(file("imagedefinitions.json", "[]"));
        assert_eq!(
            with_file(&build_zip(&files, Some("0123456789ab")), "imagedefinitions.json", b"[]"),
            build_zip(&with, Some("0123456789ab"))
        );
        let twice = with_file(&with_file(&build_zip(&files, None), "imagedefinitions.json", b"[1]"), "imagedefinitions.json", b"[]");
        assert_eq!(twice, build_zip(&with, None), "a file of that name is replaced");
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
