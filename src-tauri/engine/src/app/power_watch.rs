//! [`PowerWatch`]: the supervisor's view of power and presence. It reads the probes, runs the one
//! [`Policy`], turns the verdict into the provider's [`Availability`] and the snapshot's
//! [`PowerView`], and holds the keep-awake while the machine serves.

use std::time::{Duration, Instant};

use hearth_power::{AwakeGuard, Policy, PowerSource, Probes, Readings, Rule, Verdict};
use hearth_settings::PowerSettings;

use crate::session::Availability;
use crate::status::{unix_ms, PowerView, ProviderPhase};

pub(super) struct PowerWatch {
    probes: Probes,
    policy: Policy,
    verdict: Option<Verdict>,
    since_ms: u64,
    awake: Option<Box<dyn AwakeGuard>>,
    /// The last refusal to keep the machine awake, logged once, not every poll.
    awake_error: Option<String>,
    last_readings: Readings,
}

impl PowerWatch {
    pub fn new(probes: Probes, relax_after: Duration) -> PowerWatch {
        PowerWatch {
            probes,
            policy: Policy::new(relax_after),
            verdict: None,
            since_ms: 0,
            awake: None,
            awake_error: None,
            last_readings: Readings::UNKNOWN,
        }
    }

    /// Reads the probes (off the async workers: they read files and ask the OS) and evaluates the
    /// policy for `slots` offered. True when the verdict's effect changed.
    pub async fn check(&mut self, settings: &PowerSettings, slots: u32) -> bool {
        let probes = self.probes.clone();
        let readings = tokio::task::spawn_blocking(move || probes.read()).await.unwrap_or(Readings::UNKNOWN);
        self.last_readings = readings;
        let now = jiff::Zoned::now().datetime();
        let verdict = self.policy.evaluate(settings, &readings, now, Instant::now(), slots);
        let changed = self.verdict.as_ref().is_none_or(|v| !v.same_effect(&verdict));
        if changed {
            self.since_ms = unix_ms();
            tracing::info!(rule = verdict.rule.name(), pause = verdict.pause, slots = verdict.slots, reason = %verdict.reason, "power policy");
        }
        self.verdict = Some(verdict);
        changed
    }

    /// What the provider may take on, per the verdict in force (full before the first check).
    pub fn availability(&self) -> Availability {
        match &self.verdict {
            Some(v) if v.rule != Rule::None => {
                Availability { slots: v.slots, pause: v.pause, code: Some(v.code), reason: v.reason.clone() }
            }
            _ => Availability::full(),
        }
    }

    /// Holds the keep-awake while `serving` (connected, or finishing the jobs a pause holds), and
    /// lets go of it the moment serving stops.
    pub fn keep_awake(&mut self, serving: bool) {
        match (serving, self.awake.is_some()) {
            (true, false) => match self.probes.keep_awake.hold("Hearth is serving inference requests") {
                Ok(guard) => {
                    self.awake = Some(guard);
                    self.awake_error = None;
                }
                Err(e) => {
                    if self.awake_error.as_ref() != Some(&e) {
                        tracing::warn!(error = %e, "cannot keep this machine awake while serving");
                        self.awake_error = Some(e);
                    }
                }
            },
            (false, true) => self.awake = None,
            _ => {}
        }
    }

    /// The snapshot's power section, for `slots` offered and the provider's `phase`.
    pub fn view(&self, slots: u32, phase: ProviderPhase) -> PowerView {
        let r = &self.last_readings;
        let mut view = PowerView {
            slots_total: slots,
            slots_allowed: slots,
            power_source: match r.power.source {
                PowerSource::External => "external",
                PowerSource::Battery => "battery",
                PowerSource::Unknown => "unknown",
            }
            .into(),
            charge_percent: r.power.charge_percent,
            thermal: r.thermal.map(|t| t.name().to_string()),
            idle_s: r.idle_for.map(|d| d.as_secs()),
            keep_awake: self.awake.is_some(),
            since_ms: self.since_ms,
            ..PowerView::default()
        };
        if let Some(v) = &self.verdict {
            view.rule = v.rule.name().into();
            view.reason = v.reason.clone();
            view.slots_allowed = if v.pause { 0 } else { v.slots.min(slots) };
            view.mode = match (v.pause, v.rule) {
                (true, _) if phase == ProviderPhase::Draining => "pausing",
                (true, _) => "paused",
                (false, Rule::UserActive) => "yielding",
                (false, Rule::Thermal) => "backing_off",
                _ => "serving",
            }
            .into();
        }
        view
    }
}
