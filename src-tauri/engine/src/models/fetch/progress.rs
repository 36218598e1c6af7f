//! [`Progress`]: what a running pull has done, shared between the download (which advances it) and
//! whoever shows it (the CLI's bar, the control API's `GET /api/models/pulls`). The rate is over
//! the last few seconds of bytes that actually came over the network, so bytes resumed from an
//! earlier attempt do not make the first seconds look impossibly fast.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::models::Fit;

/// The window the rate is measured over.
const RATE_WINDOW: Duration = Duration::from_secs(5);
/// Samples closer together than this are merged (a chunk arrives every few microseconds).
const SAMPLE_GAP: Duration = Duration::from_millis(100);

/// The disk check done before anything is downloaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiskCheck {
    /// The folder whose file system was measured (the cache, or its nearest existing parent).
    pub path: std::path::PathBuf,
    /// Bytes still to download (what is already in the cache is not counted).
    pub needed_bytes: u64,
    /// `None` when the file system would not say.
    pub free_bytes: Option<u64>,
}

/// The memory check: the model's estimated need against this machine's RAM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemoryCheck {
    pub needed_bytes: Option<u64>,
    pub ram_bytes: Option<u64>,
    /// `None` when either number is unknown.
    pub fit: Option<Fit>,
    /// One line for people: the verdict with its numbers, or why there is none.
    pub summary: String,
}

/// A point-in-time copy of a [`Progress`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProgressSnapshot {
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// Bytes per second over the last few seconds.
    pub rate_bps: u64,
    /// Seconds left at that rate; `None` before there is a rate.
    pub eta_s: Option<u64>,
    /// The file being downloaded.
    pub file: Option<String>,
    pub disk: Option<DiskCheck>,
    pub memory: Option<MemoryCheck>,
    /// What the pull had to say so far (checks, resumes), oldest first.
    pub notes: Vec<String>,
}

#[derive(Debug, Default)]
pub struct Progress {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    done: u64,
    total: u64,
    /// Bytes received over the network by this run, the rate's measure.
    received: u64,
    samples: VecDeque<(Instant, u64)>,
    file: Option<String>,
    disk: Option<DiskCheck>,
    memory: Option<MemoryCheck>,
    notes: Vec<String>,
}

impl Progress {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn set_total(&self, total: u64) {
        self.with(|s| s.total = total);
    }

    pub fn set_file(&self, file: &str) {
        self.with(|s| s.file = Some(file.to_string()));
    }

    /// Bytes that were already on disk: done, but not part of the rate.
    pub fn already_had(&self, bytes: u64) {
        self.with(|s| s.done += bytes);
    }

    /// Bytes just received.
    pub fn advance(&self, bytes: u64) {
        self.with(|s| {
            s.done += bytes;
            s.received += bytes;
            let now = Instant::now();
            match s.samples.back_mut() {
                Some((at, received)) if now.duration_since(*at) < SAMPLE_GAP => *received = s.received,
                _ => s.samples.push_back((now, s.received)),
            }
            while s.samples.len() > 2 && s.samples.front().is_some_and(|(at, _)| now - *at > RATE_WINDOW) {
                s.samples.pop_front();
            }
        });
    }

    /// Bytes counted as done that must be fetched again (a server that ignored a Range request).
    pub fn rewind(&self, bytes: u64) {
        self.with(|s| s.done = s.done.saturating_sub(bytes));
    }

    pub fn set_checks(&self, disk: Option<DiskCheck>, memory: Option<MemoryCheck>) {
        self.with(|s| {
            if disk.is_some() {
                s.disk = disk;
            }
            if memory.is_some() {
                s.memory = memory;
            }
        });
    }

    pub fn note(&self, line: impl Into<String>) {
        let line = line.into();
        self.with(|s| s.notes.push(line));
    }

    pub fn snapshot(&self) -> ProgressSnapshot {
        self.with(|s| {
            let now = Instant::now();
            let rate = match s.samples.front() {
                Some((at, received)) if now.duration_since(*at) >= Duration::from_millis(200) => {
                    ((s.received - received) as f64 / now.duration_since(*at).as_secs_f64()) as u64
                }
                _ => 0,
            };
            let left = s.total.saturating_sub(s.done);
            ProgressSnapshot {
                bytes_done: s.done,
                bytes_total: s.total,
                rate_bps: rate,
                eta_s: (rate > 0).then(|| left.div_ceil(rate)),
                file: s.file.clone(),
                disk: s.disk.clone(),
                memory: s.memory.clone(),
                notes: s.notes.clone(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resumed_bytes_count_as_done_but_not_toward_the_rate() {
        let p = Progress::new();
        p.set_total(1000);
        p.already_had(400);
        p.advance(100);
        std::thread::sleep(Duration::from_millis(250));
        p.advance(100);
        let s = p.snapshot();
        assert_eq!((s.bytes_done, s.bytes_total), (600, 1000));
        // 100 bytes (the second chunk) over ~0.25 s: hundreds a second, not thousands.
        assert!(s.rate_bps > 100 && s.rate_bps < 1000, "{s:?}");
        assert!(s.eta_s.unwrap() >= 1);
        p.rewind(600);
        assert_eq!(p.snapshot().bytes_done, 0);
    }
}
