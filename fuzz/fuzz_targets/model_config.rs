//! Any config.json in a model directory: reading it gives a config or an error naming the problem,
//! never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Ok(config) = hearth_inference::model_dir::ModelConfig::from_json(&value) {
            let _ = config.params_estimate();
        }
    }
});
