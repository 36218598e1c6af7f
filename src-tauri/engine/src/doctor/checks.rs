//! The verdict rules: each check is a pure function of what [`super::probe`] observed, so every rule
//! is tested here with made-up observations. Every verdict other than ok comes with an action a
//! person can carry out in the app (never a command-line flag).

use std::path::PathBuf;

use super::{Check, SettingsState, Verdict};
use crate::models::human_bytes;
use crate::status::{ProviderPhase, Status};

/// Clock skew beyond this is a warning: session timestamps and earnings windows drift.
pub const SKEW_WARN_S: f64 = 30.0;
/// Beyond this, a coordinator that checks signed timestamps refuses the session.
pub const SKEW_FAIL_S: f64 = 300.0;
/// Free disk below this fails: the ledger and the settings cannot be written safely.
pub const DISK_FAIL_BYTES: u64 = 512 << 20;
/// Below this, a warning: no room to fetch another model.
pub const DISK_WARN_BYTES: u64 = 5 << 30;
/// Free memory below this while serving is a warning.
pub const MEMORY_LOW_BYTES: u64 = 1 << 30;
/// A model above this share of RAM "fits, but tight" (as the model picker says).
const COMFORTABLE_SHARE: f64 = 0.75;

const NOTHING: &str = "Nothing to do.";

fn check(
    name: &str,
    title: &str,
    verdict: Verdict,
    detail: impl Into<String>,
    action: impl Into<String>,
) -> Check {
    Check { name: name.into(), title: title.into(), verdict, detail: detail.into(), action: action.into() }
}

pub fn settings(s: &SettingsState) -> Check {
    let (name, title) = ("settings", "Settings file");
    match s {
        SettingsState::Valid(p) => check(name, title, Verdict::Ok, format!("{} is valid", p.display()), NOTHING),
        SettingsState::Missing(p) => check(
            name,
            title,
            Verdict::Ok,
            format!("{} is not written yet: the defaults apply", p.display()),
            NOTHING,
        ),
        SettingsState::Invalid { path, problem } => check(
            name,
            title,
            Verdict::Fail,
            format!("{} has errors: {problem}", path.display()),
            "Open Settings and correct the fields it marks; until then the last valid settings stay in force.",
        ),
    }
}

/// Whether the coordinator answers on TCP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// The local pool, which starts with the app; the app is not running.
    LocalPoolNotStarted,
    Reached {
        addr: String,
        local_pool: bool,
    },
    Unreachable {
        addr: String,
        why: String,
        local_pool: bool,
    },
    BadUrl(String),
}

pub fn coordinator(r: &Reach) -> Check {
    let (name, title) = ("coordinator", "Coordinator reachable");
    match r {
        Reach::LocalPoolNotStarted => check(
            name,
            title,
            Verdict::Ok,
            "the local pool on this machine starts when Hearth starts serving",
            NOTHING,
        ),
        Reach::Reached { addr, local_pool } => {
            let what = if *local_pool { "the local pool" } else { "the coordinator" };
            check(name, title, Verdict::Ok, format!("{what} answers at {addr}"), NOTHING)
        }
        Reach::Unreachable { addr, why, local_pool: true } => check(
            name,
            title,
            Verdict::Fail,
            format!("the local pool does not answer at {addr}: {why}"),
            "Stop and start Hearth; if it persists, another program may hold that port: quit it.",
        ),
        Reach::Unreachable { addr, why, local_pool: false } => check(
            name,
            title,
            Verdict::Fail,
            format!("cannot reach {addr}: {why}"),
            "Check your network connection and the coordinator URL in Settings.",
        ),
        Reach::BadUrl(why) => {
            check(name, title, Verdict::Fail, why.clone(), "Correct the coordinator URL in Settings.")
        }
    }
}

/// What the TLS handshake with the coordinator showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tls {
    /// No TLS on this link (the local pool, `ws://` to this machine), and why that is fine.
    NotUsed(String),
    Valid {
        version: String,
        host: String,
    },
    /// The certificate was refused (expired, wrong name, unknown issuer).
    Invalid {
        host: String,
        why: String,
    },
    /// The handshake failed for another reason (protocol, timeout).
    Failed {
        host: String,
        why: String,
    },
    /// The extra CA file cannot be used.
    CaFile(String),
    /// Not tried: the coordinator is not reachable.
    Unreached,
}

pub fn tls(t: &Tls) -> Check {
    let (name, title) = ("tls", "Coordinator TLS certificate");
    match t {
        Tls::NotUsed(why) => check(name, title, Verdict::Ok, why.clone(), NOTHING),
        Tls::Valid { version, host } => {
            check(name, title, Verdict::Ok, format!("{host} presents a valid certificate ({version})"), NOTHING)
        }
        Tls::Invalid { host, why } => check(
            name,
            title,
            Verdict::Fail,
            format!("{host}'s certificate is not accepted: {why}"),
            "Ask the coordinator's operator to renew or fix its certificate; a self-hosted one needs its CA trusted on this Mac.",
        ),
        Tls::Failed { host, why } => check(
            name,
            title,
            Verdict::Fail,
            format!("the TLS handshake with {host} failed: {why}"),
            "Check that the coordinator URL points at a wss:// endpoint and that no proxy intercepts it.",
        ),
        Tls::CaFile(why) => {
            check(name, title, Verdict::Fail, why.clone(), "Point the CA file at a readable PEM certificate.")
        }
        Tls::Unreached => check(
            name,
            title,
            Verdict::Warn,
            "not checked: the coordinator is not reachable",
            "Fix the coordinator check first.",
        ),
    }
}

/// What the coordinator said about our token (its earnings endpoint takes the same bearer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    LocalPool,
    Accepted {
        source: String,
    },
    /// No token set, and the coordinator answered without one.
    NotNeeded,
    Refused {
        status: u16,
    },
    /// No token set, and the coordinator asks for one.
    Required {
        status: u16,
    },
    /// The coordinator has no endpoint to ask.
    NoEndpoint,
    Unknown(String),
}

pub fn token(t: &Token) -> Check {
    let (name, title) = ("token", "Provider token accepted");
    match t {
        Token::LocalPool => check(name, title, Verdict::Ok, "not needed: the local pool asks for no token", NOTHING),
        Token::Accepted { source } => check(
            name,
            title,
            Verdict::Ok,
            format!("the coordinator accepts this provider's token (from the {source})"),
            NOTHING,
        ),
        Token::NotNeeded => check(
            name,
            title,
            Verdict::Ok,
            "not needed: no token is set and the coordinator does not ask for one",
            NOTHING,
        ),
        Token::Refused { status } => check(
            name,
            title,
            Verdict::Fail,
            format!("the coordinator refused this provider's token (HTTP {status})"),
            "Replace the provider token in Settings with the one your coordinator issued for this provider id.",
        ),
        Token::Required { status } => check(
            name,
            title,
            Verdict::Fail,
            format!("the coordinator requires a token and none is set (HTTP {status})"),
            "Add the provider token your coordinator issued in Settings.",
        ),
        Token::NoEndpoint => check(
            name,
            title,
            Verdict::Warn,
            "cannot tell: the coordinator has no earnings endpoint to ask",
            "If sessions are refused, confirm the token with the coordinator's operator.",
        ),
        Token::Unknown(why) => {
            check(name, title, Verdict::Warn, format!("cannot tell: {why}"), "Fix the coordinator check first.")
        }
    }
}

/// This machine's clock against the coordinator's `Date` header.
#[derive(Debug, Clone, PartialEq)]
pub enum Clock {
    SameMachine,
    /// Coordinator time minus local time, in seconds.
    Skew(f64),
    NoDate,
    Unknown(String),
}

pub fn clock(c: &Clock) -> Check {
    let (name, title) = ("clock", "Clock in sync");
    const FIX: &str =
        "Turn on \"Set time and date automatically\" in System Settings → General → Date & Time.";
    match c {
        Clock::SameMachine => {
            check(name, title, Verdict::Ok, "the local pool runs on this machine's own clock", NOTHING)
        }
        Clock::Skew(s) => {
            let ahead = if *s >= 0.0 { "behind" } else { "ahead of" };
            let detail = format!("this machine's clock is {:.0} s {ahead} the coordinator's", s.abs());
            let verdict = if s.abs() > SKEW_FAIL_S {
                Verdict::Fail
            } else if s.abs() > SKEW_WARN_S {
                Verdict::Warn
            } else {
                Verdict::Ok
            };
            check(name, title, verdict, detail, if verdict == Verdict::Ok { NOTHING } else { FIX })
        }
        Clock::NoDate => check(
            name,
            title,
            Verdict::Warn,
            "cannot tell: the coordinator sent no Date header",
            "Nothing to fix here unless sessions are refused; then check the clock in System Settings.",
        ),
        Clock::Unknown(why) => check(
            name,
            title,
            Verdict::Warn,
            format!("cannot tell: {why}"),
            "Fix the coordinator check first.",
        ),
    }
}

/// Whether the configured model loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Model {
    /// The running app has it loaded.
    Serving {
        model_id: String,
        engine: String,
    },
    /// The running app is still starting (loading or connecting).
    Starting,
    /// The running app tried and failed.
    LoadFailed(String),
    /// The scripted engine serves canned text: no model file.
    NoModelNeeded,
    LoopbackUp(String),
    LoopbackDown {
        url: String,
        why: String,
    },
    LoopbackUnset,
    NoModelChosen,
    Missing(PathBuf),
    Unloadable(String),
    /// The inspection the loader runs accepts it; `needed` bytes of memory to serve it.
    Loadable {
        name: String,
        family: String,
        needed: Option<u64>,
    },
}

pub fn model(m: &Model) -> Check {
    let (name, title) = ("model", "Model loads");
    const CHOOSE: &str = "Choose a model in Settings (or fetch one there).";
    match m {
        Model::Serving { model_id, engine } => check(
            name,
            title,
            Verdict::Ok,
            format!("{model_id} is loaded on the {engine} engine"),
            NOTHING,
        ),
        Model::Starting => check(
            name,
            title,
            Verdict::Warn,
            "Hearth is still starting: the model is loading or the session is opening",
            "Run the checks again in a moment.",
        ),
        Model::LoadFailed(why) => check(name, title, Verdict::Fail, why.clone(), CHOOSE),
        Model::NoModelNeeded => {
            check(name, title, Verdict::Ok, "the scripted engine needs no model file", NOTHING)
        }
        Model::LoopbackUp(url) => {
            check(name, title, Verdict::Ok, format!("the local server at {url} answers"), NOTHING)
        }
        Model::LoopbackDown { url, why } => check(
            name,
            title,
            Verdict::Fail,
            format!("nothing answers at {url}: {why}"),
            "Start the local server that the loopback engine forwards to, or choose another engine in Settings.",
        ),
        Model::LoopbackUnset => check(
            name,
            title,
            Verdict::Fail,
            "the loopback engine has no server URL",
            "Set the local server's URL in Settings.",
        ),
        Model::NoModelChosen => check(name, title, Verdict::Fail, "no model is chosen", CHOOSE),
        Model::Missing(p) => {
            check(name, title, Verdict::Fail, format!("{} does not exist", p.display()), CHOOSE)
        }
        Model::Unloadable(why) => check(name, title, Verdict::Fail, why.clone(), CHOOSE),
        Model::Loadable { name: model, family, .. } => check(
            name,
            title,
            Verdict::Ok,
            format!("{model} ({family}) passes the loader's inspection"),
            NOTHING,
        ),
    }
}

/// Memory against what the model needs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Memory {
    pub total: Option<u64>,
    pub available: Option<u64>,
    /// What the model needs, when it is not loaded yet and the inspection could tell.
    pub needed: Option<u64>,
    /// The running app holds the model already (its memory is in use, not needed anew).
    pub loaded: bool,
}

pub fn memory(m: &Memory) -> Check {
    let (name, title) = ("memory", "Memory headroom");
    let (Some(total), Some(available)) = (m.total, m.available) else {
        return check(name, title, Verdict::Ok, "this system does not report its free memory", NOTHING);
    };
    let free = format!("{} free of {}", human_bytes(available), human_bytes(total));
    match m.needed {
        Some(needed) if !m.loaded && needed > total => check(
            name,
            title,
            Verdict::Fail,
            format!(
                "the model needs about {} but this machine has {} of RAM",
                human_bytes(needed),
                human_bytes(total)
            ),
            "Choose a smaller model or a lower-bit quantization of it in Settings.",
        ),
        Some(needed) if !m.loaded && needed > available => check(
            name,
            title,
            Verdict::Warn,
            format!("the model needs about {}; {free}", human_bytes(needed)),
            "Quit apps you do not need (or another inference server) before serving.",
        ),
        Some(needed) if !m.loaded && needed as f64 > total as f64 * COMFORTABLE_SHARE => check(
            name,
            title,
            Verdict::Warn,
            format!("the model needs about {}, most of this machine's RAM; {free}", human_bytes(needed)),
            "It runs, but other apps will be slow: a smaller model leaves room.",
        ),
        Some(needed) if !m.loaded => check(
            name,
            title,
            Verdict::Ok,
            format!("the model needs about {}; {free}", human_bytes(needed)),
            NOTHING,
        ),
        _ if available < MEMORY_LOW_BYTES => check(
            name,
            title,
            Verdict::Warn,
            format!("memory is nearly full: {free}"),
            "Quit apps you do not need: a machine that swaps serves slowly and loses jobs.",
        ),
        _ => check(name, title, Verdict::Ok, free, NOTHING),
    }
}

/// Free space where Hearth writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// `data folder`, `Hugging Face cache`.
    pub label: String,
    pub path: PathBuf,
    /// `None`: not readable.
    pub free: Option<u64>,
}

pub fn disk(places: &[Disk]) -> Check {
    let (name, title) = ("disk", "Disk space");
    let mut verdict = Verdict::Ok;
    let mut parts = Vec::new();
    let mut worst: Option<&Disk> = None;
    for d in places {
        let Some(free) = d.free else {
            parts.push(format!("{}: unknown ({})", d.label, d.path.display()));
            continue;
        };
        let v = if free < DISK_FAIL_BYTES {
            Verdict::Fail
        } else if free < DISK_WARN_BYTES {
            Verdict::Warn
        } else {
            Verdict::Ok
        };
        if v > verdict {
            verdict = v;
            worst = Some(d);
        }
        parts.push(format!("{}: {} free ({})", d.label, human_bytes(free), d.path.display()));
    }
    let detail = if parts.is_empty() { "no folders to check".to_string() } else { parts.join("; ") };
    let action = match (verdict, worst) {
        (Verdict::Fail, Some(d)) => format!(
            "Free disk space on the volume holding {}: the earnings ledger needs room to be written safely.",
            d.path.display()
        ),
        (Verdict::Warn, Some(d)) => format!(
            "Free some space on the volume holding {} before fetching another model.",
            d.path.display()
        ),
        _ => NOTHING.to_string(),
    };
    check(name, title, verdict, detail, action)
}

/// An inference server found on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Competing {
    /// `Ollama`, `LM Studio`, `mlx_lm.server or llama-server` (a port they share, no process seen).
    pub name: String,
    /// The port found listening on 127.0.0.1, if any.
    pub port: Option<u16>,
    /// Matching processes: (pid, resident bytes when known).
    pub processes: Vec<(u32, Option<u64>)>,
}

pub fn competing(found: &[Competing]) -> Check {
    let (name, title) = ("competing_servers", "Other inference servers");
    if found.is_empty() {
        return check(name, title, Verdict::Ok, "none found", NOTHING);
    }
    let described: Vec<String> = found
        .iter()
        .map(|c| {
            let mut what = Vec::new();
            if let Some(p) = c.port {
                what.push(format!("listening on 127.0.0.1:{p}"));
            }
            if !c.processes.is_empty() {
                let rss: u64 = c.processes.iter().filter_map(|(_, r)| *r).sum();
                let pids: Vec<String> = c.processes.iter().map(|(p, _)| p.to_string()).collect();
                let mem = if rss > 0 { format!(", {} resident", human_bytes(rss)) } else { String::new() };
                what.push(format!("process {}{mem}", pids.join(", ")));
            }
            format!("{} ({})", c.name, what.join("; "))
        })
        .collect();
    let names: Vec<&str> = found.iter().map(|c| c.name.as_str()).collect();
    check(
        name,
        title,
        Verdict::Warn,
        described.join("; "),
        format!(
            "Quit {} while Hearth serves: it holds memory and ports the model needs.",
            names.join(" and ")
        ),
    )
}

/// The power rule in force, from the running app's snapshot.
pub fn power(status: Option<&Status>) -> Check {
    let (name, title) = ("power", "Power rule");
    let Some(s) = status else {
        return check(
            name,
            title,
            Verdict::Ok,
            "Hearth is not running: the power rules apply while it serves",
            NOTHING,
        );
    };
    let Some(p) = &s.power else {
        return check(name, title, Verdict::Ok, "no power rule reported", NOTHING);
    };
    if p.mode == "serving" || s.phase == ProviderPhase::Stopped {
        return check(name, title, Verdict::Ok, p.reason.clone(), NOTHING);
    }
    let action = match p.rule.as_str() {
        "battery" => "Connect the charger, or allow serving on battery in Settings → Power.",
        "thermal" => "Let the Mac cool down (free its vents, close heavy apps); serving resumes by itself.",
        "user_active" => {
            "Serving resumes when you step away; change what happens while you use this Mac in Settings → Power."
        }
        "schedule" => "Serving resumes when the schedule window ends; edit the schedule in Settings → Power.",
        _ => "See the power rules in Settings → Power.",
    };
    check(
        name,
        title,
        Verdict::Warn,
        format!("{} ({} of {} slots)", p.reason, p.slots_allowed, p.slots_total),
        action,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::PowerView;

    const GIB: u64 = 1 << 30;

    #[test]
    fn clock_skew_warns_past_30_s_and_fails_past_5_min() {
        let v = |s: f64| clock(&Clock::Skew(s)).verdict;
        assert_eq!([v(0.0), v(29.0), v(-30.0)], [Verdict::Ok; 3]);
        assert_eq!([v(31.0), v(-299.0), v(300.0)], [Verdict::Warn; 3]);
        assert_eq!([v(301.0), v(-3600.0)], [Verdict::Fail; 2]);
        assert!(clock(&Clock::Skew(-45.0)).detail.contains("45 s ahead of"));
        assert!(clock(&Clock::Skew(400.0)).action.contains("Date & Time"));
        assert_eq!(clock(&Clock::SameMachine).verdict, Verdict::Ok);
        assert_eq!(clock(&Clock::NoDate).verdict, Verdict::Warn);
        assert_eq!(clock(&Clock::Unknown("x".into())).verdict, Verdict::Warn);
    }

    #[test]
    fn coordinator_tls_and_token_verdicts() {
        let addr = "pool.example:443".to_string();
        assert_eq!(coordinator(&Reach::LocalPoolNotStarted).verdict, Verdict::Ok);
        assert_eq!(
            coordinator(&Reach::Reached { addr: addr.clone(), local_pool: false }).verdict,
            Verdict::Ok
        );
        let down =
            coordinator(&Reach::Unreachable { addr: addr.clone(), why: "refused".into(), local_pool: false });
        assert_eq!(down.verdict, Verdict::Fail);
        assert!(down.detail.contains("pool.example:443") && down.action.contains("Settings"));
        assert_eq!(coordinator(&Reach::BadUrl("no".into())).verdict, Verdict::Fail);

        assert_eq!(tls(&Tls::NotUsed("local".into())).verdict, Verdict::Ok);
        assert_eq!(tls(&Tls::Valid { version: "TLSv1.3".into(), host: "h".into() }).verdict, Verdict::Ok);
        let bad = tls(&Tls::Invalid { host: "h".into(), why: "expired".into() });
        assert_eq!(bad.verdict, Verdict::Fail);
        assert!(bad.detail.contains("expired"));
        assert_eq!(tls(&Tls::Unreached).verdict, Verdict::Warn);

        assert_eq!(token(&Token::LocalPool).detail, "not needed: the local pool asks for no token");
        assert_eq!(token(&Token::Accepted { source: "keychain".into() }).verdict, Verdict::Ok);
        assert_eq!(token(&Token::NotNeeded).verdict, Verdict::Ok);
        assert_eq!(token(&Token::Refused { status: 401 }).verdict, Verdict::Fail);
        assert_eq!(token(&Token::Required { status: 403 }).verdict, Verdict::Fail);
        assert_eq!(token(&Token::NoEndpoint).verdict, Verdict::Warn);
    }

    #[test]
    fn memory_compares_the_models_need_with_what_is_free() {
        let m = |needed: Option<u64>, available: u64, loaded: bool| {
            memory(&Memory { total: Some(16 * GIB), available: Some(available), needed, loaded }).verdict
        };
        assert_eq!(m(Some(4 * GIB), 10 * GIB, false), Verdict::Ok);
        assert_eq!(m(Some(8 * GIB), 6 * GIB, false), Verdict::Warn, "more than is free now");
        assert_eq!(m(Some(13 * GIB), 14 * GIB, false), Verdict::Warn, "tight");
        assert_eq!(m(Some(17 * GIB), 16 * GIB, false), Verdict::Fail, "more than the machine has");
        assert_eq!(m(Some(17 * GIB), 512 << 20, true), Verdict::Warn, "loaded: only headroom counts");
        assert_eq!(m(None, 8 * GIB, true), Verdict::Ok);
        assert_eq!(memory(&Memory::default()).verdict, Verdict::Ok);
        let fail = memory(&Memory {
            total: Some(8 * GIB),
            available: Some(6 * GIB),
            needed: Some(9 * GIB),
            loaded: false,
        });
        assert!(fail.detail.contains("9.0 GiB") && fail.detail.contains("8.0 GiB"), "{}", fail.detail);
    }

    #[test]
    fn disk_takes_the_worst_place() {
        let d = |label: &str, free: Option<u64>| Disk {
            label: label.into(),
            path: format!("/{label}").into(),
            free,
        };
        assert_eq!(disk(&[d("data", Some(50 * GIB)), d("hf", Some(80 * GIB))]).verdict, Verdict::Ok);
        let warn = disk(&[d("data", Some(50 * GIB)), d("hf", Some(2 * GIB))]);
        assert_eq!(warn.verdict, Verdict::Warn);
        assert!(warn.action.contains("/hf"), "{}", warn.action);
        let fail = disk(&[d("data", Some(100 << 20)), d("hf", Some(2 * GIB))]);
        assert_eq!(fail.verdict, Verdict::Fail);
        assert!(fail.action.contains("/data"));
        assert_eq!(disk(&[d("data", None)]).verdict, Verdict::Ok);
    }

    #[test]
    fn a_competing_server_is_a_warning_naming_it() {
        assert_eq!(competing(&[]).verdict, Verdict::Ok);
        let c = competing(&[Competing {
            name: "Ollama".into(),
            port: Some(11434),
            processes: vec![(42, Some(3 * GIB))],
        }]);
        assert_eq!(c.verdict, Verdict::Warn);
        assert!(c.detail.contains("127.0.0.1:11434") && c.detail.contains("3.0 GiB"), "{}", c.detail);
        assert!(c.action.starts_with("Quit Ollama"));
    }

    #[test]
    fn model_verdicts() {
        assert_eq!(
            model(&Model::Serving { model_id: "m".into(), engine: "gguf".into() }).verdict,
            Verdict::Ok
        );
        assert_eq!(model(&Model::Starting).verdict, Verdict::Warn);
        for m in [
            Model::LoadFailed("model not loaded: x".into()),
            Model::NoModelChosen,
            Model::Missing("/nope".into()),
            Model::Unloadable("bad".into()),
            Model::LoopbackUnset,
        ] {
            let c = model(&m);
            assert_eq!(c.verdict, Verdict::Fail, "{m:?}");
            assert!(!c.action.contains("--"), "no command-line flags in actions: {}", c.action);
        }
        assert_eq!(model(&Model::NoModelNeeded).verdict, Verdict::Ok);
    }

    #[test]
    fn power_warns_with_the_rules_reason_and_what_lifts_it() {
        let mut s = Status::new("p", "m", "scripted", 2, "ws://x");
        assert_eq!(power(None).verdict, Verdict::Ok);
        assert_eq!(power(Some(&s)).verdict, Verdict::Ok, "no power view");
        s.set_phase(ProviderPhase::Paused, "paused");
        s.power = Some(PowerView {
            rule: "battery".into(),
            mode: "paused".into(),
            reason: "Paused: on battery at 38 %".into(),
            slots_total: 2,
            ..PowerView::default()
        });
        let c = power(Some(&s));
        assert_eq!(c.verdict, Verdict::Warn);
        assert!(c.detail.starts_with("Paused: on battery at 38 %") && c.action.contains("charger"), "{c:?}");
        s.power = Some(PowerView::default());
        assert_eq!(power(Some(&s)).verdict, Verdict::Ok);
    }

    #[test]
    fn settings_errors_fail() {
        let p = PathBuf::from("/c/settings.toml");
        assert_eq!(settings(&SettingsState::Valid(p.clone())).verdict, Verdict::Ok);
        assert_eq!(settings(&SettingsState::Missing(p.clone())).verdict, Verdict::Ok);
        let bad = settings(&SettingsState::Invalid { path: p, problem: "slots: 9 is more than 8".into() });
        assert_eq!(bad.verdict, Verdict::Fail);
    }
}
