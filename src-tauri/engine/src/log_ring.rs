//! The engine's recent log lines, kept in memory for the dashboard's log view (`GET /api/logs`,
//! the shell's `logs` command): a [`RingLayer`] that both `hearth` and the Tauri shell install (in
//! [`crate::telemetry::init`]) beside the stderr output.
//!
//! Users asked to see the logs without a terminal; a bounded ring (the last [`CAPACITY`] lines)
//! keeps that cheap however long the app runs. Every line is passed through [`redact`] before it
//! is stored — a log view is something people paste into bug reports, so the provider token,
//! bearer tokens, `Authorization` values, Hugging Face tokens and the control API token must
//! never reach it. The same function guards stderr ([`RedactingStderr`]).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock, RwLock};

use hearth_settings::ProviderToken;
use serde::{Deserialize, Serialize};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// Lines kept; older ones are dropped first.
pub const CAPACITY: usize = 2000;
/// What replaces a secret.
pub const REDACTED: &str = "[redacted]";
/// Known secrets shorter than this are not searched for: a short string would blank out ordinary
/// words, and no real token is this short.
const MIN_SECRET_LEN: usize = 8;

/// One stored log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Increases by one per line ever recorded; a client asks for `after` the last one it has.
    pub seq: u64,
    /// Unix ms.
    pub ts_ms: u64,
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub level: String,
    /// The module that logged it, e.g. `hearth_engine::session`.
    pub target: String,
    pub message: String,
    /// The event's fields other than the message, as `key=value` pairs, redacted.
    pub fields: Vec<(String, String)>,
    /// The spans it happened in, outermost first, e.g. `session{provider_id=p1}`,
    /// `job{request_id=…}`: which session or job a line belongs to.
    pub spans: Vec<String>,
}

/// What a client asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct LogQuery {
    /// The least severe level shown (`warn`: warnings and errors); `None`: everything kept.
    pub level: Option<String>,
    /// At most this many lines, the newest (default 500, at most [`CAPACITY`]).
    pub limit: Option<usize>,
    /// Only lines with a larger `seq`.
    pub after: Option<u64>,
}

/// What the log view gets: matching lines, oldest first (newest last).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPage {
    pub lines: Vec<LogLine>,
    /// The `seq` of the newest line recorded (whether it matched or not); 0 before any.
    pub last_seq: u64,
    pub capacity: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LogQueryError {
    #[error("unknown log level {0:?}: use error, warn, info, debug or trace")]
    Level(String),
}

/// Parses a level name as the query spells it.
pub fn parse_level(name: &str) -> Result<Level, LogQueryError> {
    match name.to_ascii_lowercase().as_str() {
        "error" => Ok(Level::ERROR),
        "warn" | "warning" => Ok(Level::WARN),
        "info" => Ok(Level::INFO),
        "debug" => Ok(Level::DEBUG),
        "trace" => Ok(Level::TRACE),
        _ => Err(LogQueryError::Level(name.to_string())),
    }
}

/// The bounded store of recent lines and the secrets to keep out of them.
pub struct LogRing {
    lines: Mutex<Ring>,
    secrets: RwLock<Vec<ProviderToken>>,
}

struct Ring {
    lines: VecDeque<LogLine>,
    next_seq: u64,
    capacity: usize,
}

impl LogRing {
    pub fn new(capacity: usize) -> Self {
        Self {
            lines: Mutex::new(Ring { lines: VecDeque::with_capacity(capacity), next_seq: 1, capacity }),
            secrets: RwLock::new(Vec::new()),
        }
    }

    /// Keeps `secret` out of every line stored from now on (and out of stderr). Empty and very
    /// short values are ignored (see [`MIN_SECRET_LEN`]); adding one twice changes nothing.
    pub fn add_secret(&self, secret: &str) {
        if secret.len() < MIN_SECRET_LEN {
            return;
        }
        // ProviderToken keeps the copy zeroed on drop, like the keychain's own.
        let Ok(token) = ProviderToken::new(secret) else { return };
        let mut secrets = self.secrets.write().unwrap_or_else(|e| e.into_inner());
        if !secrets.iter().any(|s| s.expose() == secret) {
            secrets.push(token);
        }
    }

    /// `text` with every known secret and every secret-shaped value replaced.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let secrets = self.secrets.read().unwrap_or_else(|e| e.into_inner());
        let known: Vec<&str> = secrets.iter().map(ProviderToken::expose).collect();
        redact(text, &known)
    }

    fn push(&self, mut line: LogLine) {
        let mut ring = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        line.seq = ring.next_seq;
        ring.next_seq += 1;
        if ring.lines.len() == ring.capacity {
            ring.lines.pop_front();
        }
        ring.lines.push_back(line);
    }

    /// The newest lines matching `q`, oldest first.
    pub fn query(&self, q: &LogQuery) -> Result<LogPage, LogQueryError> {
        let min = q.level.as_deref().filter(|l| !l.is_empty()).map(parse_level).transpose()?;
        let ring = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let limit = q.limit.unwrap_or(500).clamp(1, ring.capacity.max(1));
        let after = q.after.unwrap_or(0);
        // `Level` orders ERROR as the smallest: "at least warn" is `level <= WARN`.
        let keep = |l: &LogLine| {
            l.seq > after && min.is_none_or(|min| parse_level(&l.level).is_ok_and(|lv| lv <= min))
        };
        let mut lines: Vec<LogLine> =
            ring.lines.iter().rev().filter(|l| keep(l)).take(limit).cloned().collect();
        lines.reverse();
        Ok(LogPage { lines, last_seq: ring.next_seq - 1, capacity: ring.capacity })
    }
}

/// The process's ring: what the layer fills and the control API reads.
pub fn global() -> &'static LogRing {
    static RING: OnceLock<LogRing> = OnceLock::new();
    RING.get_or_init(|| {
        let ring = LogRing::new(CAPACITY);
        // Secrets known from the environment before anything logs.
        for var in [hearth_settings::PROVIDER_TOKEN_ENV, "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"] {
            if let Ok(v) = std::env::var(var) {
                ring.add_secret(&v);
            }
        }
        ring
    })
}

/// Keeps `secret` out of the process's logs (the provider token once resolved, the control token).
pub fn add_secret(secret: &str) {
    global().add_secret(secret);
}

/// Field names whose values are secrets whatever they look like.
fn is_secret_field(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["token", "secret", "password", "authorization", "api_key", "apikey", "cookie"]
        .iter()
        .any(|s| n.contains(s))
}

struct Patterns {
    /// `Authorization: Bearer x`, `authorization=x`, `"authorization": "x"`: the whole value.
    authorization: regex::Regex,
    /// `Bearer x` anywhere (an error message quoting a header).
    bearer: regex::Regex,
    /// Hugging Face access tokens.
    hf: regex::Regex,
    /// `?token=x`, `&api_key=x`… in URLs.
    query: regex::Regex,
    /// `"token": "x"` in quoted JSON.
    json: regex::Regex,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| {
        let re = |s: &str| regex::Regex::new(s).expect("a valid redaction pattern");
        Patterns {
            authorization: re(
                r#"(?i)(\bauthorization\\?"?\s*[:=]\s*\\?"?)(?:(?:bearer|basic|token)\s+)?[^\s",;}\\]+"#,
            ),
            bearer: re(r"(?i)\b(bearer\s+)[A-Za-z0-9\-._~+/=]+"),
            hf: re(r"\bhf_[A-Za-z0-9]{8,}"),
            query: re(r"(?i)([?&](?:access_token|token|api_key|apikey|password|secret)=)[^&\s#]+"),
            json: re(r#"(?i)("[a-z_]*(?:token|secret|password|api_key)"\s*:\s*")[^"]+"#),
        }
    })
}

/// `text` with secrets replaced by [`REDACTED`]: every occurrence of a `known` secret (the
/// provider token, the control token, `HF_TOKEN`; those shorter than 8 characters are skipped),
/// `Authorization` values, `Bearer` tokens, Hugging Face tokens (`hf_…`), and `token=`-style URL
/// parameters and JSON fields. Borrowed when nothing was found (the common case).
pub fn redact<'a>(text: &'a str, known: &[&str]) -> Cow<'a, str> {
    let mut out = Cow::Borrowed(text);
    for secret in known.iter().filter(|s| s.len() >= MIN_SECRET_LEN) {
        if out.contains(secret) {
            out = Cow::Owned(out.replace(secret, REDACTED));
        }
    }
    let p = patterns();
    let steps: [(&regex::Regex, String); 5] = [
        (&p.authorization, format!("${{1}}{REDACTED}")),
        (&p.bearer, format!("${{1}}{REDACTED}")),
        (&p.hf, format!("hf_{REDACTED}")),
        (&p.query, format!("${{1}}{REDACTED}")),
        (&p.json, format!("${{1}}{REDACTED}")),
    ];
    for (re, with) in steps {
        if let Cow::Owned(s) = re.replace_all(&out, with.as_str()) {
            out = Cow::Owned(s);
        }
    }
    out
}

/// Records an event's or a span's fields: the message apart, the rest as `key=value`.
#[derive(Default)]
struct Fields {
    message: String,
    pairs: Vec<(String, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record(field, format!("{value:?}"));
    }
}

impl Fields {
    fn record(&mut self, field: &Field, value: String) {
        if field.name() == "message" {
            self.message = value;
        } else if is_secret_field(field.name()) {
            self.pairs.push((field.name().to_string(), REDACTED.to_string()));
        } else {
            // `log` records bridged into tracing carry these; the line has them already.
            if field.name().starts_with("log.") {
                return;
            }
            self.pairs.push((field.name().to_string(), value));
        }
    }
}

/// A span's name and fields, rendered once when it opens (and on `record`), kept in its extensions.
struct SpanText(String);

/// The `tracing` layer that fills a [`LogRing`].
pub struct RingLayer {
    ring: &'static LogRing,
}

impl RingLayer {
    /// A layer filling the process's ring ([`global`]).
    pub fn new() -> Self {
        Self { ring: global() }
    }

    /// A layer filling `ring` (tests).
    pub fn with_ring(ring: &'static LogRing) -> Self {
        Self { ring }
    }

    fn span_text(&self, name: &str, fields: &Fields) -> String {
        let mut s = name.to_string();
        if !fields.pairs.is_empty() {
            s.push('{');
            for (i, (k, v)) in fields.pairs.iter().enumerate() {
                let _ = write!(s, "{}{k}={v}", if i > 0 { " " } else { "" });
            }
            s.push('}');
        }
        self.ring.redact(&s).into_owned()
    }
}

impl Default for RingLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for RingLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let text = self.span_text(span.name(), &fields);
        span.extensions_mut().insert(SpanText(text));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        values.record(&mut fields);
        if fields.pairs.is_empty() {
            return;
        }
        let mut ext = span.extensions_mut();
        let extra = self.span_text("", &fields);
        if let Some(SpanText(text)) = ext.get_mut::<SpanText>() {
            // `name{a=1}` + `{b=2}` → `name{a=1 b=2}`.
            let inner = extra.trim_start_matches('{').trim_end_matches('}');
            if text.ends_with('}') {
                text.pop();
                let _ = write!(text, " {inner}}}");
            } else {
                let _ = write!(text, "{{{inner}}}");
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let spans = ctx
            .event_scope(event)
            .map(|scope| {
                scope
                    .from_root()
                    .filter_map(|span| span.extensions().get::<SpanText>().map(|t| t.0.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let meta = event.metadata();
        let ring = self.ring;
        let line = LogLine {
            seq: 0,
            ts_ms: crate::status::unix_ms(),
            level: meta.level().as_str().to_ascii_lowercase(),
            target: meta.target().to_string(),
            message: ring.redact(&fields.message).into_owned(),
            fields: fields.pairs.into_iter().map(|(k, v)| (k, ring.redact(&v).into_owned())).collect(),
            spans,
        };
        ring.push(line);
    }
}

/// stderr, with every log line passed through [`redact`] (the process ring's secrets): what a
/// terminal or a log collector sees must be as clean as the log view.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedactingStderr;

/// One event's output, written (redacted) when the formatter is done with it.
pub struct RedactingWriter {
    buf: Vec<u8>,
}

impl std::io::Write for RedactingWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&self.buf);
        let clean = global().redact(&text);
        let result = std::io::stderr().write_all(clean.as_bytes());
        self.buf.clear();
        result
    }
}

impl Drop for RedactingWriter {
    fn drop(&mut self) {
        let _ = std::io::Write::flush(self);
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactingStderr {
    type Writer = RedactingWriter;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter { buf: Vec::with_capacity(256) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    const TOKEN: &str = "sk-prov-9f8e7d6c5b4a";

    #[test]
    fn redaction_removes_every_kind_of_secret_and_keeps_the_rest() {
        let cases = [
            (format!("connecting with {TOKEN} now"), "connecting with [redacted] now".to_string()),
            ("Authorization: Bearer abc.def-123".into(), "Authorization: [redacted]".into()),
            (
                "headers: {authorization: \"Basic dXNlcjpwdw==\"}".into(),
                "headers: {authorization: \"[redacted]\"}".into(),
            ),
            ("authorization=tok_12345678 next".into(), "authorization=[redacted] next".into()),
            ("refused: bearer eyJhbGciOi.x.y".into(), "refused: bearer [redacted]".into()),
            ("HF_TOKEN is hf_AbCdEfGhIjKlMnOpQrSt.".into(), "HF_TOKEN is hf_[redacted].".into()),
            (
                "GET https://hub/x?revision=main&token=s3cr3tvalue&b=1".into(),
                "GET https://hub/x?revision=main&token=[redacted]&b=1".into(),
            ),
            (
                r#"{"access_token": "abc123456789", "n": 1}"#.into(),
                r#"{"access_token": "[redacted]", "n": 1}"#.into(),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(redact(&input, &[TOKEN]), want, "{input}");
        }
        // Nothing secret: borrowed, unchanged; short "secrets" and words like "token" survive.
        let plain = "the provider token is missing; hf_x is too short; bearer";
        assert!(matches!(redact(plain, &["short", ""]), Cow::Borrowed(_)));
        assert_eq!(redact("port 8444 ready", &["8444"]), "port 8444 ready");
    }

    fn leaked_ring() -> &'static LogRing {
        Box::leak(Box::new(LogRing::new(5)))
    }

    #[test]
    fn the_layer_keeps_the_newest_lines_with_spans_and_fields_redacted() {
        let ring = leaked_ring();
        ring.add_secret(TOKEN);
        let subscriber = tracing_subscriber::registry().with(RingLayer::with_ring(ring));
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..4 {
                tracing::info!(i, "filler");
            }
            let session = tracing::error_span!("session", provider_id = "p1");
            let _s = session.enter();
            let job = tracing::error_span!("job", request_id = "r-42");
            let _j = job.enter();
            tracing::warn!(token = "plain-text-token", url = %format!("ws://h/?k={TOKEN}"), "cut off");
            tracing::error!("gone: Authorization: Bearer {TOKEN}");
        });
        let all = ring.query(&LogQuery::default()).unwrap();
        assert_eq!(all.lines.len(), 5, "bounded");
        assert_eq!(all.last_seq, 6);
        assert_eq!(all.lines.first().unwrap().seq, 2, "the oldest went first");
        let warn = &all.lines[3];
        assert_eq!((warn.level.as_str(), warn.message.as_str()), ("warn", "cut off"));
        assert_eq!(warn.spans, ["session{provider_id=p1}", "job{request_id=r-42}"]);
        assert_eq!(
            warn.fields,
            [
                ("token".to_string(), REDACTED.to_string()),
                ("url".to_string(), "ws://h/?k=[redacted]".to_string())
            ]
        );
        let text = serde_json::to_string(&all).unwrap();
        assert!(!text.contains(TOKEN) && !text.contains("plain-text-token"), "{text}");

        let errors_and_warnings =
            ring.query(&LogQuery { level: Some("warn".into()), ..Default::default() }).unwrap();
        let levels: Vec<_> = errors_and_warnings.lines.iter().map(|l| l.level.as_str()).collect();
        assert_eq!(levels, ["warn", "error"]);
        let newest = ring.query(&LogQuery { limit: Some(1), ..Default::default() }).unwrap();
        assert_eq!(newest.lines[0].level, "error");
        let after = ring.query(&LogQuery { after: Some(5), ..Default::default() }).unwrap();
        assert_eq!(after.lines.len(), 1);
        assert_eq!(
            ring.query(&LogQuery { level: Some("loud".into()), ..Default::default() }).unwrap_err(),
            LogQueryError::Level("loud".into())
        );
    }
}
