//! Watching a local config directory (for working on a laptop): every burst of file changes
//! becomes one notification, after a short quiet period.
//!
//! Only changes count. The inotify backend of `notify` also reports files being opened and
//! closed after reading, and slipway itself reads the directory after every notification (to
//! load the manifests and build the zips): counting those made each pass wake the next one, a
//! loop that kept a core busy at a hundred pipelines. So opens and read-only closes are dropped
//! here, before the debounce.

use std::path::Path;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// Keeps the watch alive; dropping it stops watching (and ends the debounce thread).
pub struct DirWatch {
    _watcher: RecommendedWatcher,
}

/// Watches `dir` recursively; each burst of changes, once `debounce` has passed without another,
/// sends `()` on the returned channel. Changes under `.git` are ignored (a commit also changes
/// the files it touches).
pub fn watch(dir: &Path, debounce: Duration) -> notify::Result<(DirWatch, mpsc::Receiver<()>)> {
    let (tx, rx) = mpsc::channel(1);
    let (changes, bursts) = std_mpsc::channel::<()>();
    let mut watcher = notify::recommended_watcher(move |result: notify::Result<Event>| {
        // An error (a lost event, a full queue) may hide a change: count it as one.
        if result.as_ref().map_or(true, is_change) {
            let _ = changes.send(());
        }
    })?;
    watcher.watch(dir, RecursiveMode::Recursive)?;
    std::thread::Builder::new().name("dir-watch".into()).spawn(move || {
        // Blocks until the first change of a burst, then waits for a quiet period. Ends when the
        // watcher (and with it the sender) is dropped.
        while bursts.recv().is_ok() {
            while bursts.recv_timeout(debounce).is_ok() {}
            // A full channel already holds a pending notification: nothing is lost.
            let _ = tx.try_send(());
        }
    })?;
    Ok((DirWatch { _watcher: watcher }, rx))
}

/// Whether an event changes what slipway reads: not an open, not a close after reading, and not
/// under `.git`.
fn is_change(event: &Event) -> bool {
    let read_only = matches!(event.kind, EventKind::Access(AccessKind::Open(_) | AccessKind::Read | AccessKind::Close(AccessMode::Read)));
    let in_git = !event.paths.is_empty() && event.paths.iter().all(|p| p.components().any(|c| c.as_os_str() == ".git"));
    !read_only && !in_git
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventKind, path: &str) -> Event {
        Event::new(kind).add_path(path.into())
    }

    #[test]
    fn reading_the_directory_is_not_a_change_and_neither_is_git() {
        use notify::event::{CreateKind, ModifyKind};
        assert!(!is_change(&event(EventKind::Access(AccessKind::Open(AccessMode::Any)), "/r/pipelines/web.yaml")));
        assert!(!is_change(&event(EventKind::Access(AccessKind::Close(AccessMode::Read)), "/r/pipelines/web.yaml")));
        assert!(is_change(&event(EventKind::Access(AccessKind::Close(AccessMode::Write)), "/r/pipelines/web.yaml")));
        assert!(is_change(&event(EventKind::Modify(ModifyKind::Any), "/r/pipelines/web.yaml")));
        assert!(is_change(&event(EventKind::Create(CreateKind::File), "/r/apps/web/taskdef.json")));
        assert!(!is_change(&event(EventKind::Modify(ModifyKind::Any), "/r/.git/index")));
    }

    #[tokio::test]
    async fn reading_the_watched_files_sends_nothing_and_writing_one_sends_one_notification() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("web.yaml"), "a: 1\n").unwrap();
        let (_watch, mut rx) = watch(dir.path(), Duration::from_millis(100)).unwrap();
        for _ in 0..20 {
            std::fs::read_to_string(dir.path().join("web.yaml")).unwrap();
        }
        let quiet = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await;
        assert!(quiet.is_err(), "reading the files is not a change");
        for i in 0..5 {
            std::fs::write(dir.path().join("web.yaml"), format!("a: {i}\n")).unwrap();
        }
        let burst = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert_eq!(burst.ok().flatten(), Some(()), "a burst of writes is one notification");
        let after = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await;
        assert!(after.is_err(), "and only one");
    }
}
