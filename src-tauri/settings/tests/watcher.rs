//! Live reload against a real directory and the OS file watcher.

use std::time::Duration;

use hearth_settings::{Settings, SettingsEvent, SettingsStore, SettingsWatcher};
use hearth_testkit::files::save_like_an_editor;
use tokio::sync::broadcast;

const WAIT: Duration = Duration::from_secs(5);

async fn next_event(rx: &mut broadcast::Receiver<SettingsEvent>) -> SettingsEvent {
    tokio::time::timeout(WAIT, rx.recv()).await.expect("no settings event within 5 s").unwrap()
}

fn file(slots: u32) -> String {
    format!("provider_id = \"studio-m2\"\ncoordinator = \"wss://coord.example.com/ws/provider\"\nslots = {slots}\n")
}

#[tokio::test]
async fn external_edits_apply_live_invalid_ones_are_rejected_and_fixes_apply_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("settings.toml");
    std::fs::write(&path, file(1)).unwrap();

    let watcher = SettingsWatcher::start_with_debounce(&path, Duration::from_millis(100)).unwrap();
    let mut events = watcher.subscribe();
    let mut current = watcher.watch();
    assert_eq!(watcher.current().slots, Some(1));

    // 1. A valid in-place edit is applied.
    let started = std::time::Instant::now();
    std::fs::write(&path, file(3)).unwrap();
    match next_event(&mut events).await {
        SettingsEvent::Applied(s) => assert_eq!(s.slots, Some(3)),
        other => panic!("expected Applied, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    assert_eq!(watcher.current().slots, Some(3));
    assert!(current.has_changed().unwrap());
    assert_eq!(current.borrow_and_update().slots, Some(3));

    // 2. An invalid edit is rejected with field errors; the last good settings stay.
    save_like_an_editor(
        &path,
        "provider_id = \"studio-m2\"\ncoordinator = \"ws://coord.example.com/ws/provider\"\nslots = 12\n",
    );
    match next_event(&mut events).await {
        SettingsEvent::Rejected { errors } => {
            let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
            assert_eq!(fields, ["coordinator", "slots"]);
            assert!(errors[0].message.contains("use wss://"), "{}", errors[0]);
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert_eq!(watcher.current().slots, Some(3));
    assert!(!current.has_changed().unwrap());

    // A syntax error is rejected too, with its position.
    save_like_an_editor(&path, "provider_id = \"studio-m2\nslots = 2\n");
    match next_event(&mut events).await {
        SettingsEvent::Rejected { errors } => assert!(errors[0].message.contains("line 1"), "{errors:?}"),
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert_eq!(watcher.current().slots, Some(3));

    // 3. The fix is applied again.
    save_like_an_editor(&path, &file(5));
    match next_event(&mut events).await {
        SettingsEvent::Applied(s) => assert_eq!(s.slots, Some(5)),
        other => panic!("expected Applied, got {other:?}"),
    }
    assert_eq!(watcher.current().slots, Some(5));

    // 4. The app's own atomic save is seen like any other edit.
    let mut s: Settings = watcher.current();
    s.slots = Some(6);
    SettingsStore::new(&path).save(&s).unwrap();
    match next_event(&mut events).await {
        SettingsEvent::Applied(got) => assert_eq!(got, s),
        other => panic!("expected Applied, got {other:?}"),
    }

    // 5. Deleting the file keeps the last good settings; recreating it applies.
    std::fs::remove_file(&path).unwrap();
    match next_event(&mut events).await {
        SettingsEvent::Rejected { errors } => assert_eq!(errors[0].field, "file"),
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert_eq!(watcher.current().slots, Some(6));
    std::fs::write(&path, file(2)).unwrap();
    match next_event(&mut events).await {
        SettingsEvent::Applied(s) => assert_eq!(s.slots, Some(2)),
        other => panic!("expected Applied, got {other:?}"),
    }
}

#[tokio::test]
async fn touching_without_changes_and_other_files_announce_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("settings.toml");
    std::fs::write(&path, file(1)).unwrap();
    let watcher = SettingsWatcher::start_with_debounce(&path, Duration::from_millis(100)).unwrap();
    let mut events = watcher.subscribe();

    std::fs::write(&path, file(1)).unwrap(); // same content
    std::fs::write(dir.path().join("other.toml"), "x = 1").unwrap();
    let _ = std::fs::read_to_string(&path).unwrap();
    let r = tokio::time::timeout(Duration::from_millis(800), events.recv()).await;
    assert!(r.is_err(), "unexpected event {r:?}");
}

#[test]
fn start_refuses_an_invalid_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("settings.toml");
    std::fs::write(&path, "provider_id = \"bad id\"\n").unwrap();
    let err = SettingsWatcher::start(&path).unwrap_err();
    assert_eq!(err.field_errors().unwrap()[0].field, "provider_id");
}
