//! Writing files the way people's tools do, for tests of file watching and live reload.

use std::path::Path;

/// Saves `text` to `path` the way most editors do: a temp file beside it, renamed over the
/// original. A watcher sees a create/rename, not a write, which is the case live reload must
/// handle (an in-place `std::fs::write` is the other).
pub fn save_like_an_editor(path: &Path, text: &str) {
    let mut tmp_name = path.file_name().expect("a file path").to_os_string();
    tmp_name.push("~edit");
    let tmp = path.with_file_name(tmp_name);
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}
