//! Saving and loading real files.

use hearth_settings::{Coordinator, Settings, SettingsError, SettingsStore};

fn settings() -> Settings {
    Settings {
        provider_id: "studio-m2".into(),
        coordinator: Coordinator::Url("wss://coord.example.com/ws/provider".into()),
        slots: Some(2),
        ..Settings::default()
    }
}

#[test]
fn save_then_load_round_trips_atomically_and_privately() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config/settings.toml");
    let store = SettingsStore::new(&path);
    store.save(&settings()).unwrap();
    assert_eq!(store.load().unwrap(), settings());

    let mut changed = settings();
    changed.slots = Some(3);
    store.save(&changed).unwrap();
    assert_eq!(store.load().unwrap().slots, Some(3));

    // Only the settings file is left: no temp files.
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["settings.toml"]);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "settings file mode {mode:o}");
        let dmode = std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777;
        assert_eq!(dmode, 0o700, "config dir mode {dmode:o}");
    }
}

#[test]
fn an_invalid_save_is_refused_and_the_file_is_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let store = SettingsStore::new(dir.path().join("settings.toml"));
    store.save(&settings()).unwrap();
    let before = std::fs::read_to_string(store.path()).unwrap();

    let bad = Settings { slots: Some(0), ..settings() };
    let err = store.save(&bad).unwrap_err();
    let fields = err.field_errors().unwrap();
    assert_eq!(
        fields[0].to_string(),
        "slots: must be between 1 and 8 (got 0); leave it out to let the engine choose"
    );
    assert_eq!(std::fs::read_to_string(store.path()).unwrap(), before);
}

#[test]
fn the_file_never_contains_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let store = SettingsStore::new(dir.path().join("settings.toml"));
    store.save(&settings()).unwrap();
    let text = std::fs::read_to_string(store.path()).unwrap().to_lowercase();
    assert!(!text.contains("token"), "{text}");
}

#[test]
fn load_or_init_mints_the_id_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = SettingsStore::new(dir.path().join("settings.toml"));
    let first = store.load_or_init().unwrap();
    let second = store.load_or_init().unwrap();
    assert_eq!(first, second);
    assert_eq!(SettingsStore::new(store.path()).load().unwrap().provider_id, first.provider_id);
}

#[test]
fn load_reports_missing_and_invalid_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = SettingsStore::new(dir.path().join("settings.toml"));
    assert!(matches!(store.load(), Err(SettingsError::Io { .. })));

    std::fs::write(store.path(), "provider_id = \"ok\"\nslots = \"many\"\n").unwrap();
    let err = store.load().unwrap_err();
    let f = &err.field_errors().unwrap()[0];
    assert_eq!(f.field, "slots");
    assert!(f.message.contains("line 2"), "{f}");
}
