//! The layers point one way (ARCHITECTURE.md). Between crates the compiler keeps the direction
//! once the dependency graph is right, so this test checks the graph itself: `slipway-core`
//! builds without the AWS SDK, tokio, git2 or an HTTP server, and `slipway-aws` sees no crate but
//! core of ours and nothing of the application's. Within the application crate, where the
//! compiler allows any `crate::` path, it checks each module's imports against the layer table.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::{repo_root, rust_files};

/// The packages `package` builds with (normal and build dependencies, for this host; dev
/// dependencies are the tests' own business), itself included.
fn build_graph(package: &str) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["tree", "--locked", "--package", package, "--edges", "normal,build", "--prefix", "none", "--format", "{p}"])
        .current_dir(repo_root())
        .output()
        .expect("cargo tree runs");
    assert!(out.status.success(), "cargo tree -p {package}: {}", String::from_utf8_lossy(&out.stderr));
    let names: BTreeSet<String> =
        String::from_utf8(out.stdout).unwrap().lines().filter_map(|line| line.split_whitespace().next()).map(str::to_string).collect();
    assert!(names.contains(package) && names.len() > 5, "cargo tree -p {package} printed too little to check: {names:?}");
    names
}

/// The names in `graph` that match a forbidden name or prefix (`aws-sdk-` matches every SDK crate).
fn forbidden<'a>(graph: &'a BTreeSet<String>, names: &[&str]) -> Vec<&'a String> {
    graph.iter().filter(|p| names.iter().any(|n| if n.ends_with('-') { p.starts_with(n) } else { p == n })).collect()
}

#[test]
fn the_core_crate_builds_without_aws_an_async_runtime_git_or_http() {
    let graph = build_graph("slipway-core");
    let found =
        forbidden(&graph, &["aws-", "tokio", "git2", "axum", "hyper", "prometheus", "notify", "clap", "slipway", "slipway-aws", "mio"]);
    assert!(found.is_empty(), "slipway-core must stay pure, but builds with {found:?}");
}

#[test]
fn the_aws_crate_depends_on_core_and_nothing_of_the_application() {
    let graph = build_graph("slipway-aws");
    assert!(graph.contains("slipway-core"), "{graph:?}");
    let found = forbidden(&graph, &["slipway", "git2", "axum", "prometheus", "notify", "clap", "tracing-subscriber"]);
    assert!(found.is_empty(), "slipway-aws reaches into the application's dependencies: {found:?}");
}

#[test]
fn the_forbidden_name_check_matches_crates_and_prefixes_exactly() {
    let graph: BTreeSet<String> = ["aws-sdk-s3", "tokio", "tokio-util", "slipway-core"].map(String::from).into();
    assert_eq!(forbidden(&graph, &["aws-sdk-", "tokio"]), ["aws-sdk-s3", "tokio"]);
    assert!(forbidden(&graph, &["slipway", "aws"]).is_empty());
}

/// The application crate's modules, lowest layer first. A module may import its own layer's
/// siblings only through a lower one, so each layer names what it may use.
const APP_LAYERS: &[&[&str]] = &[
    &["source", "metrics", "webhook"], // leaves: Git and directory sources, Prometheus registry, webhook signatures
    &["engine", "feed", "triggers", "replica"], // the one-way flow for one revision: load → … → apply; the change feed's, the trigger queue's and the lease table's tasks
    &["report", "controller"],                  // plan rendering; the loop over a World
    &["http"],                                  // /status, /metrics, webhooks: reads the controller's shared state
    &["cli"],                                   // wires everything
];

fn layer_of(module: &str) -> Option<usize> {
    APP_LAYERS.iter().position(|layer| layer.contains(&module))
}

/// The top-level module a file of src/ belongs to (`src/controller/world.rs` → `controller`).
fn module_of(file: &Path) -> String {
    let rel = file.strip_prefix(repo_root().join("src")).unwrap();
    let first = rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
    first.trim_end_matches(".rs").to_string()
}

/// `crate::x` paths in `code` whose module `x` sits in the same or a higher layer than `module`.
fn upward_imports(module: &str, code: &str) -> Vec<String> {
    let Some(own) = layer_of(module) else { return vec![format!("{module} is not in APP_LAYERS")] };
    let mut found = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let used: String = code[at + "crate::".len()..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        if used == module {
            continue;
        }
        match layer_of(&used) {
            Some(layer) if layer < own => {}
            _ => found.push(format!("{module} → crate::{used}")),
        }
    }
    found
}

#[test]
fn application_modules_import_only_lower_layers() {
    let mut files = Vec::new();
    rust_files(&repo_root().join("src"), &mut files);
    let mut modules = BTreeSet::new();
    let mut upward = Vec::new();
    for file in files {
        let module = module_of(&file);
        if module == "lib" || module == "main" {
            continue;
        }
        let code = std::fs::read_to_string(&file).unwrap();
        upward.extend(upward_imports(&module, &code).into_iter().map(|u| format!("{}: {u}", file.display())));
        modules.insert(module);
    }
    let listed: BTreeSet<String> = APP_LAYERS.iter().flat_map(|l| l.iter().map(|m| m.to_string())).collect();
    assert_eq!(modules, listed, "APP_LAYERS should list exactly the modules of src/");
    assert!(upward.is_empty(), "imports that point up or sideways: {upward:#?}");
}

#[test]
fn the_import_check_flags_upward_and_sideways_paths() {
    assert!(upward_imports("controller", "use crate::engine::Prepared; use crate::controller::x;").is_empty());
    assert_eq!(upward_imports("engine", "use crate::controller::Shared;"), ["engine → crate::controller"]);
    assert_eq!(upward_imports("report", "crate::controller::Shared"), ["report → crate::controller"]);
    assert_eq!(upward_imports("nowhere", ""), ["nowhere is not in APP_LAYERS"]);
}
