//! [`ProviderChoice`]: what the provider serves with — coordinator, identity, slots and engine —
//! the settings in force with the command line's [`Overrides`] applied. A provider session is
//! started from one, and a change of it is what makes the supervisor restart the session.

use hearth_settings::{Coordinator, Settings};

use super::config::Overrides;
use crate::engines::EngineChoice;

/// Everything that, when it changes, needs a new provider session.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ProviderChoice {
    pub coordinator: Coordinator,
    pub provider_id: String,
    pub slots: u32,
    pub engine: EngineChoice,
}

impl ProviderChoice {
    /// `settings`, with what `overrides` pins winning.
    pub fn of(settings: &Settings, overrides: &Overrides) -> ProviderChoice {
        let (s, o) = (settings, overrides);
        ProviderChoice {
            coordinator: o.coordinator.clone().map(Coordinator::Url).unwrap_or_else(|| s.coordinator.clone()),
            provider_id: o.provider_id.clone().unwrap_or_else(|| s.provider_id.clone()),
            slots: o.slots.unwrap_or(s.slots),
            engine: EngineChoice {
                kind: o.engine.unwrap_or(s.engine),
                model_id: o.model_id.clone(),
                model_path: o.model_path.clone().or_else(|| s.model_path.clone()),
                loopback_url: s.loopback_url.clone(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use hearth_settings::EngineKind;

    use super::*;

    #[test]
    fn overrides_win_and_are_listed() {
        let s = Settings { provider_id: "file-id".into(), slots: 2, ..Settings::default() };
        let o = Overrides { slots: Some(4), engine: Some(EngineKind::Scripted), ..Default::default() };
        let sp = ProviderChoice::of(&s, &o);
        assert_eq!((sp.slots, sp.provider_id.as_str(), sp.engine.kind), (4, "file-id", EngineKind::Scripted));
        assert_eq!(o.pinned(), ["slots", "engine"]);
    }
}
