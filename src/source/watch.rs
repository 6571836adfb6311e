//! Watching a local config directory (for working on a laptop): every burst of file changes
//! becomes one notification, after a short quiet period.

use std::path::Path;
use std::time::Duration;

use notify_debouncer_mini::notify::RecursiveMode;
use notify_debouncer_mini::{DebounceEventResult, Debouncer, new_debouncer};
use tokio::sync::mpsc;

/// Keeps the watch alive; dropping it stops watching.
pub struct DirWatch {
    _debouncer: Debouncer<notify_debouncer_mini::notify::RecommendedWatcher>,
}

/// Watches `dir` recursively; each debounced burst of changes sends `()` on the returned
/// channel. Changes under `.git` are ignored (a commit also changes the files it touches).
pub fn watch(dir: &Path, debounce: Duration) -> notify_debouncer_mini::notify::Result<(DirWatch, mpsc::Receiver<()>)> {
    let (tx, rx) = mpsc::channel(1);
    let mut debouncer = new_debouncer(debounce, move |result: DebounceEventResult| {
        let relevant = match result {
            Ok(events) => events.iter().any(|e| !e.path.components().any(|c| c.as_os_str() == ".git")),
            Err(_) => true,
        };
        if relevant {
            // A full channel already holds a pending notification: nothing is lost.
            let _ = tx.try_send(());
        }
    })?;
    debouncer.watcher().watch(dir, RecursiveMode::Recursive)?;
    Ok((DirWatch { _debouncer: debouncer }, rx))
}
