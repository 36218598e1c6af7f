//! One file into its blob: `blobs/<etag>.incomplete`, resumed from its length with a `Range`
//! request (a 206 continues it; a 200 means the server ignored the range, so it starts over),
//! checked for size and — for LFS files — sha256, then renamed to `blobs/<etag>`. A checksum
//! failure deletes the partial file (resuming a damaged prefix would fail again); an interruption
//! or a cancel keeps it for the next run. Links that break mid-file are retried a few times, each
//! retry resuming where the last one stopped.

use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::header::CONTENT_RANGE;
use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio_util::sync::CancellationToken;

use super::cache::RepoDir;
use super::error::FetchError;
use super::hub::{FileMeta, Hub};
use super::progress::Progress;

/// Attempts per file when the link breaks (each resumes).
const ATTEMPTS: u32 = 4;
/// A stalled connection: no byte for this long counts as broken.
const STALL: Duration = Duration::from_secs(60);
/// Writes are batched: a chunk off the network is a few KiB.
const WRITE_BUFFER: usize = 1 << 20;
/// ...but reach the file at least this often, so a pull killed outright (no chance to flush)
/// loses at most this much of its progress, not the whole buffer.
const FLUSH_EVERY: Duration = Duration::from_millis(500);

/// Makes `blobs/<etag>` of `meta` complete and verified.
pub async fn fetch_blob(
    hub: &Hub,
    repo_id: &str,
    repo: &RepoDir,
    meta: &FileMeta,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<(), FetchError> {
    let blob = repo.blob(&meta.etag);
    if blob.is_file() {
        progress.already_had(meta.size);
        return Ok(());
    }
    let blobs = repo.blobs();
    tokio::fs::create_dir_all(&blobs).await.map_err(|e| FetchError::io(&blobs, e))?;
    let partial = repo.incomplete(&meta.etag);
    // Two pulls appending to one partial file would interleave their bytes: the second waits its
    // turn (the lock goes with the process, so a killed pull never leaves it held).
    let _lock = lock(&partial, &meta.file)?;
    let mut have = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
    if have > meta.size {
        // Not a prefix of this file: start over.
        truncate(&partial, 0).await?;
        have = 0;
    }
    let mut hasher = match &meta.sha256 {
        Some(_) => Some(hash_prefix(&partial, have).await?),
        None => None,
    };
    progress.already_had(have);
    if have > 0 {
        progress.note(format!("{}: resuming at byte {have} of {}", meta.file, meta.size));
    }
    let mut attempt = 0;
    while have < meta.size {
        attempt += 1;
        match receive(hub, repo_id, meta, &partial, &mut have, &mut hasher, progress, cancel).await {
            Ok(()) => {}
            Err(e) if e.is_transient() && attempt < ATTEMPTS => {
                tracing::warn!(file = %meta.file, attempt, "download interrupted, resuming: {e}");
                tokio::select! {
                    _ = cancel.cancelled() => return Err(FetchError::Cancelled),
                    _ = tokio::time::sleep(Duration::from_secs(attempt as u64)) => {}
                }
            }
            Err(e) => return Err(e),
        }
    }
    if let (Some(hasher), Some(expected)) = (hasher, &meta.sha256) {
        let actual = hex(&hasher.finalize());
        if &actual != expected {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(FetchError::Checksum { file: meta.file.clone(), expected: expected.clone(), actual });
        }
    }
    let actual = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
    if actual != meta.size {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(FetchError::SizeMismatch { file: meta.file.clone(), expected: meta.size, actual });
    }
    tokio::fs::rename(&partial, &blob).await.map_err(|e| FetchError::io(&blob, e))
}

/// One request's worth: appends what the server sends from `*have` on. Returns when the file is
/// complete or the stream ended (the caller retries short files as transient).
#[allow(clippy::too_many_arguments)]
async fn receive(
    hub: &Hub,
    repo_id: &str,
    meta: &FileMeta,
    partial: &Path,
    have: &mut u64,
    hasher: &mut Option<Sha256>,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<(), FetchError> {
    let response = tokio::select! {
        _ = cancel.cancelled() => return Err(FetchError::Cancelled),
        r = hub.get_from(repo_id, meta, *have) => r?,
    };
    let url = response.url().to_string();
    match response.status() {
        StatusCode::PARTIAL_CONTENT => {
            let start = response
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("bytes "))
                .and_then(|v| v.split('-').next())
                .and_then(|v| v.parse::<u64>().ok());
            if start != Some(*have) {
                return Err(FetchError::BadResponse {
                    url,
                    problem: format!(
                        "asked for bytes from {} on, got Content-Range starting at {start:?}",
                        *have
                    ),
                });
            }
        }
        StatusCode::RANGE_NOT_SATISFIABLE => {
            // The server has nothing past what we hold: either it is all there, or our partial
            // file is not a prefix of this one.
            if *have >= meta.size {
                return Ok(());
            }
            restart(partial, have, hasher, progress).await?;
            // Transient: the retry starts from byte 0.
            return Err(FetchError::Network { url, message: "the server refused to resume (416)".into() });
        }
        _ if *have > 0 => {
            // 200: the whole file again.
            progress.note(format!("{}: the server does not resume downloads; starting it over", meta.file));
            restart(partial, have, hasher, progress).await?;
        }
        _ => {}
    }
    let file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(partial)
        .await
        .map_err(|e| FetchError::io(partial, e))?;
    let mut out = BufWriter::with_capacity(WRITE_BUFFER, file);
    let mut stream = response.bytes_stream();
    let mut flushed = std::time::Instant::now();
    let result = loop {
        let next = tokio::select! {
            _ = cancel.cancelled() => break Err(FetchError::Cancelled),
            next = tokio::time::timeout(STALL, stream.next()) => next,
        };
        let chunk = match next {
            Err(_) => {
                break Err(FetchError::Network {
                    url: url.clone(),
                    message: format!("no data for {STALL:?}"),
                })
            }
            Ok(None) => break Ok(()),
            Ok(Some(Err(e))) => break Err(FetchError::Network { url: url.clone(), message: e.to_string() }),
            Ok(Some(Ok(chunk))) => chunk,
        };
        if *have + chunk.len() as u64 > meta.size {
            // More than the hub said: not the file we asked for.
            drop(out);
            let _ = tokio::fs::remove_file(partial).await;
            return Err(FetchError::SizeMismatch {
                file: meta.file.clone(),
                expected: meta.size,
                actual: *have + chunk.len() as u64,
            });
        }
        if let Err(e) = out.write_all(&chunk).await {
            break Err(FetchError::io(partial, e));
        }
        if let Some(h) = hasher.as_mut() {
            h.update(&chunk);
        }
        *have += chunk.len() as u64;
        progress.advance(chunk.len() as u64);
        if flushed.elapsed() >= FLUSH_EVERY {
            if let Err(e) = out.flush().await {
                break Err(FetchError::io(partial, e));
            }
            flushed = std::time::Instant::now();
        }
    };
    // Whatever arrived is kept, even when cancelled: the next run resumes from it.
    out.flush().await.map_err(|e| FetchError::io(partial, e))?;
    out.get_mut().sync_data().await.map_err(|e| FetchError::io(partial, e))?;
    result?;
    if *have < meta.size {
        return Err(FetchError::Network {
            url,
            message: format!("the connection ended after {} of {} bytes", *have, meta.size),
        });
    }
    Ok(())
}

/// An exclusive advisory lock on `partial` (created if need be), held while the guard lives.
fn lock(partial: &Path, file: &str) -> Result<std::fs::File, FetchError> {
    use std::os::fd::AsRawFd;
    let handle = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .append(true)
        .open(partial)
        .map_err(|e| FetchError::io(partial, e))?;
    // SAFETY: flock on a descriptor this function owns.
    if unsafe { libc::flock(handle.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0
        && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock
    {
        return Err(FetchError::Busy { file: file.to_string() });
    }
    // Any other failure (a file system without locks) is no reason to refuse the download.
    Ok(handle)
}

async fn restart(
    partial: &Path,
    have: &mut u64,
    hasher: &mut Option<Sha256>,
    progress: &Progress,
) -> Result<(), FetchError> {
    truncate(partial, 0).await?;
    progress.rewind(*have);
    *have = 0;
    if let Some(h) = hasher.as_mut() {
        *h = Sha256::new();
    }
    Ok(())
}

async fn truncate(path: &Path, len: u64) -> Result<(), FetchError> {
    let file =
        tokio::fs::OpenOptions::new().write(true).open(path).await.map_err(|e| FetchError::io(path, e))?;
    file.set_len(len).await.map_err(|e| FetchError::io(path, e))
}

/// The hash of the first `len` bytes of `path`, so a resumed download is checked whole.
async fn hash_prefix(path: &Path, len: u64) -> Result<Sha256, FetchError> {
    let mut hasher = Sha256::new();
    if len == 0 {
        return Ok(hasher);
    }
    let file = tokio::fs::File::open(path).await.map_err(|e| FetchError::io(path, e))?;
    let mut reader = tokio::io::BufReader::with_capacity(WRITE_BUFFER, file.take(len));
    let mut buf = vec![0u8; WRITE_BUFFER];
    loop {
        let n = reader.read(&mut buf).await.map_err(|e| FetchError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
