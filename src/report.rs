//! How plans and apply results read in a terminal. JSON output is the serde form of the same
//! structures.

use std::collections::HashSet;
use std::fmt::Write;

use serde_json::Value;

use slipway_core::plan::Operation;

use crate::engine::{ApplyReport, Plan};

fn short(value: &Option<Value>) -> String {
    match value {
        None => "(none)".into(),
        Some(Value::String(s)) => format!("{s:?}"),
        Some(v) => v.to_string(),
    }
}

fn revision_suffix(revision: &Option<String>) -> String {
    revision.as_deref().map(|r| format!(" at {}", &r[..r.len().min(12)])).unwrap_or_default()
}

pub fn render_plan(plan: &Plan) -> String {
    let mut out = String::new();
    for d in &plan.invalid {
        let _ = writeln!(out, "error: {d}");
    }
    for d in &plan.suspects {
        let _ = writeln!(out, "warning: {d}");
    }
    for w in &plan.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    // A resource pipelines share (a trail) is in each one's plan, and counted once.
    let (mut create, mut update) = (HashSet::new(), HashSet::new());
    let (mut conflicts, mut blocked) = (0, 0);
    for p in &plan.pipelines {
        // A blocked pipeline's creates and updates are shown, but apply does none of them.
        let counted = !p.is_blocked();
        blocked += usize::from(!counted);
        let _ = writeln!(out, "\npipeline {} ({}){}", p.pipeline, p.file.display(), revision_suffix(&plan.revision));
        if let Some(err) = &p.error {
            let _ = writeln!(out, "  ! could not read live state: {err}");
            continue;
        }
        for problem in &p.problems {
            let _ = writeln!(out, "  ! missing reference: {problem}");
        }
        let mut unchanged = 0;
        for step in &p.steps {
            let shared = if step.desired.is_shared() { " (shared)" } else { "" };
            match &step.action {
                Operation::Create => {
                    if counted {
                        create.insert(&step.key);
                    }
                    let _ = writeln!(out, "  + create {}{shared}", step.key);
                }
                Operation::Update { changes } => {
                    if counted {
                        update.insert(&step.key);
                    }
                    let _ = writeln!(out, "  ~ update {}{shared}", step.key);
                    for c in changes {
                        let _ = writeln!(out, "      {}: {} → {}", c.path, short(&c.before), short(&c.after));
                    }
                }
                Operation::Conflict { reason } => {
                    conflicts += 1;
                    let _ = writeln!(out, "  ! conflict {}: {reason}", step.key);
                }
                Operation::Noop => unchanged += 1,
            }
        }
        if p.is_blocked() {
            let _ = writeln!(out, "  (blocked: apply changes nothing in this pipeline until the problems above are fixed)");
        } else if !p.has_changes() {
            let _ = writeln!(out, "  = in sync ({unchanged} resources)");
        } else if unchanged > 0 {
            let _ = writeln!(out, "  = {unchanged} unchanged");
        }
    }
    let orphans = plan.orphans.as_deref().unwrap_or_default();
    if !orphans.is_empty() {
        if plan.prune_holds.is_empty() {
            let _ = writeln!(out, "\norphans (recorded in the inventory, no longer in Git; `apply --prune` deletes those marked DELETE):");
        } else {
            let _ = writeln!(out, "\norphans (recorded in the inventory, no longer in Git; kept even by `apply --prune`):");
        }
        for o in orphans {
            let verb = if o.prunable() { "DELETE" } else { "RETAIN" };
            let _ = writeln!(out, "  - {verb} {} (pipeline {}, deletionPolicy: {})", o.key, o.pipeline, o.policy.as_str());
        }
        for hold in &plan.prune_holds {
            let _ = writeln!(out, "  ! {hold}");
        }
    }
    if let Some(err) = &plan.orphan_error {
        let _ = writeln!(out, "\nerror: {err}");
    }
    let _ = writeln!(
        out,
        "\nPlan: {} to create, {} to change, {} orphaned ({} to delete), {blocked} pipeline(s) blocked, {conflicts} in conflict, {} invalid manifest(s).",
        create.len(),
        update.len(),
        orphans.len(),
        orphans.iter().filter(|o| o.prunable()).count(),
        plan.invalid.len()
    );
    out
}

pub fn render_apply(report: &ApplyReport) -> String {
    let mut out = String::new();
    for d in &report.invalid {
        let _ = writeln!(out, "error: {d}");
    }
    let mut changed = 0;
    for p in &report.pipelines {
        let _ = writeln!(out, "\npipeline {}{}", p.pipeline, revision_suffix(&report.revision));
        for done in &p.done {
            changed += 1;
            let _ = writeln!(out, "  {} {}", done.verb, done.key);
        }
        if let Some(why) = &p.skipped {
            let _ = writeln!(out, "  ! skipped: {why}");
        }
        if let Some(err) = &p.error {
            let _ = writeln!(out, "  ! failed: {err}");
        }
        if p.done.is_empty() && p.skipped.is_none() && p.error.is_none() {
            let _ = writeln!(out, "  in sync, nothing to do");
        }
    }
    for done in &report.pruned {
        let _ = writeln!(out, "pruned: {} {}", done.verb, done.key);
    }
    for err in &report.prune_errors {
        let _ = writeln!(out, "error: {err}");
    }
    if report.orphans_kept > 0 && report.prune_errors.is_empty() {
        let _ = writeln!(out, "\n{} orphaned resource(s) kept: run `apply --prune` to delete them.", report.orphans_kept);
    } else if report.orphans_kept > 0 {
        let _ = writeln!(out, "\n{} orphaned resource(s) kept.", report.orphans_kept);
    }
    if report.orphans_retained > 0 {
        let _ = writeln!(
            out,
            "{} orphaned resource(s) retained (deletionPolicy: Retain): slipway never deletes them; delete them by hand when no longer wanted.",
            report.orphans_retained
        );
    }
    let failed = report.pipelines.iter().filter(|p| p.error.is_some() || p.skipped.is_some()).count();
    let _ = writeln!(
        out,
        "\nApply: {changed} change(s), {} deleted, {failed} pipeline(s) failed or skipped, {} invalid manifest(s).",
        report.pruned.len(),
        report.invalid.len()
    );
    out
}
