//! The app's side of [`ControlBackend`]: what the control API (for browsers and `hearth`) and the
//! Tauri shell (in-process) ask of the running app — start, stop, the settings view, saving a
//! settings patch, the local models and the earnings report.

use hearth_settings::{resolve_token, Settings, SettingsError};

use super::choice::ProviderChoice;
use super::state::{AppState, Command};
use crate::backend::{ControlBackend, EffectiveSettings, PutSettingsError, SettingsView};
use crate::earnings::{CardInfo, EarningsRange, EarningsReport};
use crate::models::catalog::{engine_needs_model, Onboarding};
use crate::models::fetch::{FetchError, PullRequest, PullView};
use crate::models::LocalModel;
use crate::status::unix_ms;

impl ControlBackend for AppState {
    fn start(&self) {
        self.send(Command::Start);
    }

    fn stop(&self) {
        self.send(Command::Stop);
    }

    fn settings(&self) -> SettingsView {
        let settings = self.settings.borrow().clone();
        let choice = ProviderChoice::of(&settings, &self.overrides);
        let token_source = match resolve_token(&choice.provider_id) {
            Ok(Some(t)) => Some(format!("{:?}", t.source).to_lowercase()),
            _ => None,
        };
        SettingsView {
            path: self.store.path().to_path_buf(),
            errors: self.hub.snapshot().settings.errors,
            pinned: self.overrides.pinned(),
            effective: EffectiveSettings {
                coordinator: choice.coordinator.to_string(),
                provider_id: choice.provider_id,
                slots: choice.engine.slots,
                engine: choice.engine.kind,
                model_id: choice.engine.model_id,
                model_path: choice.engine.model_path,
            },
            settings,
            token_source,
        }
    }

    fn put_settings(&self, body: &[u8]) -> Result<Settings, PutSettingsError> {
        let current = self.settings.borrow().clone();
        let settings =
            hearth_settings::patch::merge_json(&current, body).map_err(PutSettingsError::Invalid)?;
        settings.validate().map_err(PutSettingsError::Invalid)?;
        self.store.save(&settings).map_err(|e| match e {
            SettingsError::Invalid(errors) => PutSettingsError::Invalid(errors),
            other => PutSettingsError::Save(other.to_string()),
        })?;
        // The watcher will see the file too; applying here makes the answer reflect it at once,
        // and applying the same settings twice changes nothing. The settings in force are
        // replaced here, not only when the supervisor gets to the command: it may be busy
        // starting a session, and a read right after the save must see what was saved.
        self.hub.update(|s| s.settings.errors.clear());
        self.settings.send_replace(settings.clone());
        self.send(Command::Apply(Box::new(settings.clone())));
        Ok(settings)
    }

    fn models(&self) -> Vec<LocalModel> {
        // The folders setting in force, read per call: a folder added in Settings shows at once.
        let folders = self.settings.borrow().model_folders.clone();
        let roots = self.roots.clone().with_user_folders(&folders);
        crate::models::discover(&roots, crate::system::total_ram_bytes())
    }

    fn pull_model(&self, request: PullRequest) -> Result<PullView, FetchError> {
        self.pulls.start(request)
    }

    fn pulls(&self) -> Vec<PullView> {
        self.pulls.list()
    }

    fn cancel_pull(&self, id: &str) -> Option<PullView> {
        self.pulls.cancel(id)
    }

    fn onboarding(&self) -> Onboarding {
        let settings = self.settings.borrow().clone();
        // The command line's overrides count: `--model` or a model-less engine needs nothing more.
        let engine = ProviderChoice::of(&settings, &self.overrides).engine;
        let needs_model = engine.model_path.is_none() && engine_needs_model(engine.kind);
        let ram = crate::system::total_ram_bytes();
        let disk_free = self
            .roots
            .hf_hub_cache
            .as_deref()
            .and_then(crate::models::fetch::free_bytes)
            .map(|(_, free)| free);
        Onboarding::new(ram, disk_free, self.models(), needs_model)
    }

    fn earnings(&self, range: EarningsRange, limit: usize) -> Result<EarningsReport, String> {
        let (version, source, usd_per_million_credits) = {
            let c = self.card.read().unwrap_or_else(|e| e.into_inner());
            (c.card.version.clone(), c.source, c.card.usd_per_million_credits)
        };
        let card = CardInfo { version: &version, source, usd_per_million_credits };
        crate::earnings::report(&self.ledger, range, unix_ms() as i64, limit, card).map_err(|e| e.to_string())
    }

    fn earnings_csv(&self, range: EarningsRange) -> Result<Vec<u8>, String> {
        let rate = self.card.read().unwrap_or_else(|e| e.into_inner()).card.usd_per_million_credits;
        crate::earnings::csv(&self.ledger, range, unix_ms() as i64, rate)
            .map(|export| export.bytes)
            .map_err(|e| e.to_string())
    }

    fn doctor(&self) -> crate::doctor::DoctorReport {
        let settings = self.settings.borrow().clone();
        let choice = ProviderChoice::of(&settings, &self.overrides);
        let view = crate::doctor::AppView {
            settings_path: self.store.path().to_path_buf(),
            coordinator: choice.coordinator,
            provider_id: choice.provider_id,
            engine: choice.engine.kind,
            model_path: choice.engine.model_path,
            loopback_url: choice.engine.loopback_url,
            status: self.hub.snapshot(),
            // The roots are resolved from the data folder: `<data>/models`.
            data_dir: self.roots.hearth_models.parent().map(std::path::Path::to_path_buf).unwrap_or_default(),
            hf_cache: self.roots.hf_hub_cache.clone(),
        };
        crate::doctor::run_blocking(view.into_inputs())
    }
}
