//! What the tray shows for a snapshot: icon, tooltip and the menu's text lines. A pure mapping, so
//! it is tested without a desktop.

use hearth_engine::earnings::format_credits_usd;
use hearth_engine::status::{ProviderPhase, Status};

/// One tray icon per state (icons/tray-*.png).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrayIcon {
    Stopped,
    Connecting,
    Ready,
    Busy,
    /// Degraded (warming up), draining or paused on battery: on, but not taking work right now.
    Paused,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrayView {
    pub icon: TrayIcon,
    pub tooltip: String,
    /// The menu's first (disabled) line: state and why.
    pub status_line: String,
    pub earnings_line: String,
    /// "Start" or "Stop".
    pub toggle_label: &'static str,
    pub toggle_enabled: bool,
}

pub fn phase_label(p: ProviderPhase) -> &'static str {
    match p {
        ProviderPhase::Stopped => "Stopped",
        ProviderPhase::Connecting => "Connecting",
        ProviderPhase::Ready => "Ready",
        ProviderPhase::Busy => "Busy",
        ProviderPhase::Draining => "Draining",
        ProviderPhase::Degraded => "Warming up",
        ProviderPhase::Paused => "Paused",
        ProviderPhase::Offline => "Offline",
        ProviderPhase::Error => "Error",
    }
}

/// Menu lines stay short: long reasons are cut at a word boundary.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max).collect();
    let cut = cut.rsplit_once(' ').map(|(head, _)| head).unwrap_or(&cut);
    format!("{cut}…")
}

impl TrayView {
    pub fn of(s: &Status) -> TrayView {
        use ProviderPhase::*;
        let icon = match s.phase {
            Stopped => TrayIcon::Stopped,
            Connecting | Offline => TrayIcon::Connecting,
            Ready => TrayIcon::Ready,
            Busy => TrayIcon::Busy,
            Degraded | Draining | Paused => TrayIcon::Paused,
            Error => TrayIcon::Error,
        };
        let label = phase_label(s.phase);
        let today = s.earnings.today_estimated_credits;
        // Dollars first (what people read), the credits they come from beside them; the same
        // formatting as `hearth status`.
        let usd = format_credits_usd(today, s.earnings.usd_per_million_credits);
        let earnings_line = format!("Today: {usd} · {today} credits ({} jobs)", s.earnings.today_jobs);
        // The power policy holding serving back (fewer slots, or none) is the answer to "why am I
        // earning less?" while the provider is on; a stop, an outage or an error says more itself.
        let held_back = s.power.as_ref().filter(|p| p.mode != "serving");
        let why = s.not_earning.as_deref().unwrap_or(match s.phase {
            Ready => "serving",
            _ => s.reason.as_str(),
        });
        let status_line = match held_back {
            // The policy's reason starts with its own word ("Yielding: …", "Paused: …").
            Some(p) if matches!(s.phase, Ready | Busy | Paused) => shorten(&p.reason, 60),
            _ => format!("{label}: {}", shorten(why, 60)),
        };
        let tooltip = match held_back {
            Some(p) => format!("Hearth — {label}\n{}\n{earnings_line}", p.reason),
            None => format!("Hearth — {label}\n{earnings_line}"),
        };
        // Paused by the power policy is still running: it resumes by itself, and Stop stops it.
        let running = !matches!(s.phase, Stopped | Error);
        TrayView {
            icon,
            tooltip,
            status_line,
            earnings_line,
            toggle_label: if running { "Stop" } else { "Start" },
            // A drain is already a stop in progress.
            toggle_enabled: s.phase != Draining,
        }
    }
}

#[cfg(test)]
mod tests {
    use hearth_engine::status::PowerView;

    use super::*;

    #[test]
    fn maps_phases_to_icons_labels_and_the_toggle() {
        let mut s = Status::new("p", "m", "scripted", 2, "ws://127.0.0.1:1/ws/provider");
        let v = TrayView::of(&s);
        assert_eq!((v.icon, v.toggle_label), (TrayIcon::Stopped, "Start"));
        assert!(v.status_line.starts_with("Stopped: "));

        s.set_phase(ProviderPhase::Ready, "serving");
        s.earnings.today_estimated_credits = 42;
        s.earnings.today_jobs = 3;
        let v = TrayView::of(&s);
        assert_eq!((v.icon, v.toggle_label), (TrayIcon::Ready, "Stop"));
        // No rate in the snapshot: the protocol's 10^6 credits = $1.
        assert_eq!(v.earnings_line, "Today: $0.000042 · 42 credits (3 jobs)");
        assert!(v.tooltip.contains("Ready") && v.tooltip.contains("$0.000042"));
        s.earnings.today_estimated_credits = 12_345_678;
        s.earnings.usd_per_million_credits = 2.0;
        assert_eq!(TrayView::of(&s).earnings_line, "Today: $24.69 · 12345678 credits (3 jobs)");

        for (phase, icon) in [
            (ProviderPhase::Offline, TrayIcon::Connecting),
            (ProviderPhase::Busy, TrayIcon::Busy),
            (ProviderPhase::Degraded, TrayIcon::Paused),
            (ProviderPhase::Paused, TrayIcon::Paused),
            (ProviderPhase::Error, TrayIcon::Error),
        ] {
            s.set_phase(phase, "x");
            assert_eq!(TrayView::of(&s).icon, icon, "{phase:?}");
        }
        s.set_phase(ProviderPhase::Draining, "x");
        assert!(!TrayView::of(&s).toggle_enabled);
    }

    #[test]
    fn a_power_policy_holding_serving_back_is_in_the_tooltip_and_the_menu() {
        let mut s = Status::new("p", "m", "scripted", 4, "ws://127.0.0.1:1/ws/provider");
        s.set_phase(ProviderPhase::Ready, "serving");
        s.power = Some(PowerView::default());
        let v = TrayView::of(&s);
        assert_eq!(v.status_line, "Ready: serving", "serving every slot: nothing to explain");
        assert!(!v.tooltip.contains("no power rule"), "{}", v.tooltip);

        let yielding = "Yielding: you are using this Mac — 1 of 4 slots";
        s.power = Some(PowerView {
            rule: "user_active".into(),
            mode: "yielding".into(),
            reason: yielding.into(),
            ..Default::default()
        });
        let v = TrayView::of(&s);
        assert_eq!(v.status_line, yielding);
        assert_eq!(v.tooltip, format!("Hearth — Ready\n{yielding}\n{}", v.earnings_line));

        let paused = "Paused: on battery at 38 %, below 50 %";
        s.power = Some(PowerView {
            rule: "battery".into(),
            mode: "paused".into(),
            reason: paused.into(),
            ..Default::default()
        });
        s.set_phase(ProviderPhase::Paused, paused);
        let v = TrayView::of(&s);
        assert_eq!((v.status_line.as_str(), v.icon), (paused, TrayIcon::Paused));
        assert!(v.tooltip.contains(paused), "{}", v.tooltip);

        // An outage is what the menu line is about; the policy stays in the tooltip.
        s.set_phase(ProviderPhase::Offline, "connection refused");
        let v = TrayView::of(&s);
        assert!(v.status_line.starts_with("Offline: "), "{}", v.status_line);
        assert!(v.tooltip.contains(paused), "{}", v.tooltip);
    }

    #[test]
    fn long_reasons_are_cut_at_a_word() {
        let long = "not connected to the coordinator: cannot reach 127.0.0.1:1: connection refused; retrying in 2.0 s";
        let short = shorten(long, 40);
        assert!(short.ends_with('…') && short.chars().count() <= 41, "{short}");
        assert_eq!(shorten("short", 40), "short");
    }
}
