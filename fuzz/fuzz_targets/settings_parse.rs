//! Any settings file a user (or a broken editor) might leave: parsing and validation return field
//! errors, never panic, and valid settings survive a save/load round trip.
#![no_main]

use hearth_settings::Settings;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(settings) = Settings::from_toml_str(text) {
        if settings.validate().is_ok() {
            let again =
                Settings::from_toml_str(&settings.to_toml_string()).expect("saved settings load again");
            assert_eq!(again, settings);
        }
    }
});
