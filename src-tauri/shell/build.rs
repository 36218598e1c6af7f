// Generates the app's context from tauri.conf.json and the permission set of the shell's own
// commands: only the commands listed here exist as permissions, and capabilities/ grants them to the
// two windows.
fn main() {
    const COMMANDS: &[&str] = &[
        "status",
        "start",
        "stop",
        "get_settings",
        "put_settings",
        "models",
        "earnings",
        "set_token",
        "open_window",
        "close_window",
    ];
    let attributes =
        tauri_build::Attributes::new().app_manifest(tauri_build::AppManifest::new().commands(COMMANDS));
    tauri_build::try_build(attributes).expect("tauri build step failed");
}
