//! Which coordinators `protocol: auto` speaks v1 to: those that closed our v2 `auth_request` as an
//! unknown first message. Remembered for the life of the process, per coordinator URL, so a
//! restarted provider (new settings, same coordinator) does not pay a failed handshake again.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock, PoisonError};

fn fell_back() -> &'static Mutex<HashSet<String>> {
    static SET: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    SET.get_or_init(Default::default)
}

/// Whether `auto` should open with v1 to `url`.
pub(super) fn speaks_v1_only(url: &str) -> bool {
    fell_back().lock().unwrap_or_else(PoisonError::into_inner).contains(url)
}

/// `url` refused v2's first frame.
pub(super) fn remember_v1_only(url: &str) {
    fell_back().lock().unwrap_or_else(PoisonError::into_inner).insert(url.to_string());
}
