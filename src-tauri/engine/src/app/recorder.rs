//! Writes jobs into the earnings ledger, off the session's tasks.
//!
//! The relay reports each job's start and end through [`JobSink`]; [`LedgerSink`] turns them into
//! messages for one dedicated `hearth-ledger` thread, so a slow disk can never delay reading or
//! writing the WebSocket. On that thread:
//!
//! * a job **start** writes a small journal file `inflight/<hex id>.json`;
//! * a job **end** is priced with the rate card in force, committed to SQLite (durable when
//!   `record_job` returns), and only then is its journal file removed.
//!
//! After a crash (or `kill -9`) the journal still holds the jobs that were running; the next start
//! records each as `lost` — the coordinator dropped them with the connection, unpaid. The ledger's
//! primary key is the request id and inserts never overwrite, so a job whose row was committed just
//! before the crash (journal not yet removed) is not counted twice.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, RwLock};

use hearth_ledger::{CreditedSnapshot, JobOutcome, JobRecord, Ledger, RateCard};
use serde::{Deserialize, Serialize};
use tracing::Span;

use crate::session::{JobSink, StartedJob};
use crate::status::{unix_ms, FinishedJob, StatusHub};

/// The reason recorded for a job found in the journal at start-up.
pub const CRASH_LOST_REASON: &str =
    "Hearth stopped while this request was running (crash, kill or power loss); the coordinator never got its end";

/// The rate card estimates are priced with, and where it came from.
#[derive(Debug, Clone)]
pub struct CardInForce {
    pub card: RateCard,
    /// `coordinator` once fetched, `builtin` before.
    pub source: &'static str,
}

pub type SharedCard = Arc<RwLock<CardInForce>>;

pub(crate) enum LedgerMsg {
    /// With the job's span, entered on the ledger thread so its lines name the job.
    Started(StartedJob, Span),
    Finished(Box<JobRecord>, Span),
    Credited(CreditedSnapshot),
    /// Re-publish the summary (e.g. the day rolled over).
    Refresh,
    /// Answered once everything queued before it is done.
    Flush(mpsc::Sender<()>),
}

/// One journal entry: a job that started and has not been recorded yet.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct InFlight {
    request_id: String,
    assigned_id: Option<String>,
    model: String,
    started_ms: u64,
}

/// The [`JobSink`] the app gives every provider it starts.
pub struct LedgerSink {
    tx: mpsc::Sender<LedgerMsg>,
    card: SharedCard,
}

impl JobSink for LedgerSink {
    fn job_started(&self, job: &StartedJob) {
        let _ = self.tx.send(LedgerMsg::Started(job.clone(), Span::current()));
    }

    fn job_finished(&self, job: &FinishedJob) {
        let record = {
            let card = self.card.read().unwrap_or_else(|e| e.into_inner());
            to_record(job).priced(&card.card)
        };
        let _ = self.tx.send(LedgerMsg::Finished(Box::new(record), Span::current()));
    }
}

fn to_record(job: &FinishedJob) -> JobRecord {
    JobRecord {
        request_id: job.request_id.clone(),
        assigned_id: job.assigned_id.clone().unwrap_or_default(),
        model_id: job.model.clone(),
        prompt_tokens: job.prompt_tokens,
        cached_prompt_tokens: 0,
        completion_tokens: job.completion_tokens,
        started_at: job.started_ms as i64,
        ended_at: job.ended_ms as i64,
        prefill_ms: job.prefill_ms,
        decode_ms: job.decode_ms,
        outcome: job.outcome.clone(),
        reason: job.reason.clone(),
        estimated_credits: 0,
        rate_card_version: String::new(),
    }
}

/// The ledger thread's handle: a sink for providers and a channel for the pollers.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<LedgerMsg>,
    card: SharedCard,
}

impl Recorder {
    /// Recovers the journal left by a previous run (recording those jobs as lost), then starts the
    /// ledger thread. Blocking: call from `spawn_blocking` or before the runtime is busy.
    pub fn start(
        ledger: Arc<Ledger>,
        journal_dir: PathBuf,
        card: SharedCard,
        hub: StatusHub,
    ) -> std::io::Result<(Recorder, usize)> {
        std::fs::create_dir_all(&journal_dir)?;
        let recovered = recover(&ledger, &journal_dir, &card);
        let (tx, rx) = mpsc::channel();
        let worker = Worker { ledger, journal_dir, hub };
        std::thread::Builder::new().name("hearth-ledger".into()).spawn(move || worker.run(rx))?;
        let recorder = Recorder { tx, card };
        recorder.send(LedgerMsg::Refresh);
        Ok((recorder, recovered))
    }

    pub fn sink(&self) -> Arc<dyn JobSink> {
        Arc::new(LedgerSink { tx: self.tx.clone(), card: self.card.clone() })
    }

    pub(crate) fn send(&self, msg: LedgerMsg) {
        if self.tx.send(msg).is_err() {
            tracing::error!("the ledger thread is gone; a ledger update was dropped");
        }
    }

    pub fn credited(&self, snap: CreditedSnapshot) {
        self.send(LedgerMsg::Credited(snap));
    }

    pub fn refresh(&self) {
        self.send(LedgerMsg::Refresh);
    }

    /// Waits (blocking) until everything sent before has been written.
    pub fn flush(&self) {
        let (tx, rx) = mpsc::channel();
        self.send(LedgerMsg::Flush(tx));
        let _ = rx.recv();
    }
}

struct Worker {
    ledger: Arc<Ledger>,
    journal_dir: PathBuf,
    hub: StatusHub,
}

impl Worker {
    fn run(self, rx: mpsc::Receiver<LedgerMsg>) {
        while let Ok(first) = rx.recv() {
            let mut error = None;
            let mut flushes = Vec::new();
            // Take everything queued, then publish one summary for the whole batch.
            for msg in std::iter::once(first).chain(std::iter::from_fn(|| rx.try_recv().ok())) {
                match msg {
                    LedgerMsg::Started(job, span) => span.in_scope(|| self.journal_start(&job)),
                    LedgerMsg::Finished(record, span) => {
                        if let Err(e) = span.in_scope(|| self.record(&record)) {
                            error = Some(e);
                        }
                    }
                    LedgerMsg::Credited(snap) => {
                        if let Err(e) = self.ledger.record_credited(&snap) {
                            error = Some(format!("cannot store the credited figure: {e}"));
                        }
                    }
                    LedgerMsg::Refresh => {}
                    LedgerMsg::Flush(done) => flushes.push(done),
                }
            }
            self.publish(error);
            for done in flushes {
                let _ = done.send(());
            }
        }
    }

    fn journal_start(&self, job: &StartedJob) {
        let entry = InFlight {
            request_id: job.request_id.clone(),
            assigned_id: job.assigned_id.clone(),
            model: job.model.clone(),
            started_ms: job.started_ms,
        };
        let path = journal_path(&self.journal_dir, &job.request_id);
        if let Err(e) = write_synced(&path, &serde_json::to_vec(&entry).unwrap_or_default()) {
            tracing::warn!(error = %e, path = %path.display(), "cannot journal a started job");
        }
    }

    fn record(&self, record: &JobRecord) -> Result<(), String> {
        match self.ledger.record_job(record) {
            Ok(new) => {
                if !new {
                    tracing::warn!("job already in the ledger; not counted again");
                }
                let _ = std::fs::remove_file(journal_path(&self.journal_dir, &record.request_id));
                Ok(())
            }
            // The journal entry stays, so the next start records the job as lost rather than
            // forgetting it.
            Err(e) => {
                tracing::error!(error = %e, "cannot record a job");
                Err(format!("cannot record job {}: {e}", record.request_id))
            }
        }
    }

    fn publish(&self, error: Option<String>) {
        let now = unix_ms() as i64;
        match self.ledger.summary(now) {
            Ok(sum) => self.hub.update(|s| {
                let e = &mut s.earnings;
                e.today_estimated_credits = sum.today.estimated_credits;
                e.last_7_days_estimated_credits = sum.last_7_days.estimated_credits;
                e.last_30_days_estimated_credits = sum.last_30_days.estimated_credits;
                e.total_estimated_credits = sum.total.estimated_credits;
                e.today_jobs = sum.today.jobs;
                e.total_jobs = sum.total.jobs;
                e.lost_jobs = sum.total.lost_jobs;
                if let Some(c) = &sum.credited {
                    e.credited_total_credits = Some(c.latest.total_credits);
                    e.credited_window_credits = Some(c.latest.current_window_credits);
                    e.credited_fetched_ms = Some(c.latest.fetched_at);
                    e.estimated_minus_credited = Some(c.estimated_minus_credited);
                }
                if error.is_some() {
                    e.error = error;
                }
            }),
            Err(err) => {
                tracing::error!(error = %err, "cannot read the ledger summary");
                self.hub.update(|s| s.earnings.error = Some(format!("cannot read the ledger: {err}")));
            }
        }
    }
}

/// Records every journalled job as lost and clears the journal. Returns how many were new.
fn recover(ledger: &Ledger, dir: &Path, card: &SharedCard) -> usize {
    let version = card.read().unwrap_or_else(|e| e.into_inner()).card.version.clone();
    let mut recovered = 0;
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let parsed = std::fs::read(&path).ok().and_then(|raw| serde_json::from_slice::<InFlight>(&raw).ok());
        let Some(job) = parsed else {
            // A journal write cut by the crash itself: nothing usable in it.
            tracing::warn!(path = %path.display(), "unreadable journal entry removed");
            let _ = std::fs::remove_file(&path);
            continue;
        };
        let record = JobRecord {
            request_id: job.request_id.clone(),
            assigned_id: job.assigned_id.unwrap_or_default(),
            model_id: job.model,
            prompt_tokens: 0,
            cached_prompt_tokens: 0,
            completion_tokens: 0,
            started_at: job.started_ms as i64,
            // The real end is unknown; the start is the closest moment we know it was running.
            ended_at: job.started_ms as i64,
            prefill_ms: 0,
            decode_ms: 0,
            outcome: JobOutcome::Lost,
            reason: Some(CRASH_LOST_REASON.into()),
            estimated_credits: 0,
            rate_card_version: version.clone(),
        };
        match ledger.record_job(&record) {
            Ok(new) => {
                if new {
                    recovered += 1;
                    tracing::warn!(request_id = %job.request_id, "job cut by the last shutdown recorded as lost");
                }
                let _ = std::fs::remove_file(&path);
            }
            Err(e) => tracing::error!(error = %e, "cannot record a journalled job; keeping the journal"),
        }
    }
    recovered
}

fn journal_path(dir: &Path, request_id: &str) -> PathBuf {
    // Hex keeps any request id a safe, unique file name.
    let hex: String = request_id.bytes().map(|b| format!("{b:02x}")).collect();
    dir.join(format!("{hex}.json"))
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Status;

    fn card() -> SharedCard {
        Arc::new(RwLock::new(CardInForce { card: RateCard::builtin(), source: "builtin" }))
    }

    fn finished(id: &str, outcome: JobOutcome) -> FinishedJob {
        FinishedJob {
            request_id: id.into(),
            assigned_id: Some("sess-1".into()),
            model: "m".into(),
            outcome,
            status: "complete".into(),
            reason: None,
            prompt_tokens: 41,
            completion_tokens: 1,
            started_ms: 1_000,
            ended_ms: 2_000,
            prefill_ms: 3,
            decode_ms: 4,
        }
    }

    fn started(id: &str) -> StartedJob {
        StartedJob { request_id: id.into(), assigned_id: None, model: "m".into(), started_ms: 1_000 }
    }

    #[test]
    fn jobs_are_recorded_once_and_the_journal_recovers_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Arc::new(Ledger::open(dir.path().join("ledger.sqlite3")).unwrap());
        let journal = dir.path().join("inflight");
        let hub = StatusHub::new(Status::new("p", "m", "scripted", 1, "ws://x"));
        let (rec, recovered) = Recorder::start(ledger.clone(), journal.clone(), card(), hub.clone()).unwrap();
        assert_eq!(recovered, 0);
        let sink = rec.sink();
        sink.job_started(&started("a"));
        sink.job_finished(&finished("a", JobOutcome::Complete));
        sink.job_started(&started("b")); // "crashes" mid-job
        sink.job_started(&started("c"));
        sink.job_finished(&finished("c", JobOutcome::Complete));
        // Simulate a crash between commit and journal removal for `c`.
        rec.flush();
        std::fs::write(
            journal_path(&journal, "c"),
            serde_json::to_vec(&InFlight {
                request_id: "c".into(),
                assigned_id: None,
                model: "m".into(),
                started_ms: 1_000,
            })
            .unwrap(),
        )
        .unwrap();
        let a = ledger.job("a").unwrap().unwrap();
        assert_eq!(
            (a.estimated_credits, a.rate_card_version.as_str(), a.assigned_id.as_str()),
            (20, "builtin-default", "sess-1")
        );
        assert_eq!(hub.snapshot().earnings.total_estimated_credits, 40);

        let (_rec2, recovered) =
            Recorder::start(ledger.clone(), journal.clone(), card(), hub.clone()).unwrap();
        assert_eq!(recovered, 1, "only b is new; c was already committed");
        let b = ledger.job("b").unwrap().unwrap();
        assert_eq!(b.outcome, JobOutcome::Lost);
        assert_eq!(b.reason.as_deref(), Some(CRASH_LOST_REASON));
        assert_eq!(ledger.job("c").unwrap().unwrap().outcome, JobOutcome::Complete);
        let sum = ledger.summary(unix_ms() as i64).unwrap();
        assert_eq!((sum.total.jobs, sum.total.lost_jobs, sum.total.estimated_credits), (3, 1, 40));
        assert_eq!(std::fs::read_dir(&journal).unwrap().count(), 0);
    }
}
