//! [`ProviderChoice`]: what the provider serves with — coordinator, identity and engine (with its slots) —
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
    pub engine: EngineChoice,
    /// The hello's `binary_version`, when the settings name one.
    pub binary_version: Option<String>,
    /// v2, v1 or auto.
    pub protocol: hearth_protocol::ProtocolChoice,
}

impl ProviderChoice {
    /// The same session with another engine: a model switch the running provider can make in
    /// place (load beside, swap between jobs), not a restart.
    pub fn differs_only_in_engine(&self, other: &ProviderChoice) -> bool {
        self.engine != other.engine
            && (&self.coordinator, &self.provider_id, &self.binary_version, self.protocol)
                == (&other.coordinator, &other.provider_id, &other.binary_version, other.protocol)
    }

    /// `settings`, with what `overrides` pins winning.
    pub fn of(settings: &Settings, overrides: &Overrides) -> ProviderChoice {
        let (s, o) = (settings, overrides);
        ProviderChoice {
            coordinator: o.coordinator.clone().map(Coordinator::Url).unwrap_or_else(|| s.coordinator.clone()),
            provider_id: o.provider_id.clone().unwrap_or_else(|| s.provider_id.clone()),
            binary_version: s.binary_version.clone(),
            protocol: s.protocol,
            engine: EngineChoice {
                kind: o.engine.unwrap_or(s.engine),
                model_id: o.model_id.clone(),
                model_path: o.model_path.clone().or_else(|| s.model_path.clone()),
                loopback_url: s.loopback_url.clone(),
                slots: o.slots.or(s.slots),
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
        let s = Settings { provider_id: "file-id".into(), slots: Some(2), ..Settings::default() };
        let o = Overrides { slots: Some(4), engine: Some(EngineKind::Scripted), ..Default::default() };
        let sp = ProviderChoice::of(&s, &o);
        assert_eq!(
            (sp.engine.slots, sp.provider_id.as_str(), sp.engine.kind),
            (Some(4), "file-id", EngineKind::Scripted)
        );
        let unset = Settings { slots: None, ..s };
        assert_eq!(
            ProviderChoice::of(&unset, &Overrides::default()).engine.slots,
            None,
            "the engine chooses"
        );
        assert_eq!(o.pinned(), ["slots", "engine"]);
    }
}
