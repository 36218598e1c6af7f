//! Changing settings by a JSON patch: an object of settings fields laid over the settings in force,
//! as the control API's `PUT /api/settings` and the shell's settings window send them. Parse errors
//! come back as [`FieldError`]s naming the offending field, like the TOML file's do.

use serde_json::{Map, Value};

use crate::field_error::{field_named_in, FieldError};
use crate::model::Settings;

/// Applies a JSON object of settings fields onto `current` (`null` clears an optional field) and
/// parses the result, naming the offending field on error. The result is parsed, not yet
/// [validated](Settings::validate).
pub fn merge_json(current: &Settings, body: &[u8]) -> Result<Settings, Vec<FieldError>> {
    let patch: Value = serde_json::from_slice(body)
        .map_err(|e| vec![FieldError::new("body", format!("is not valid JSON: {e}"))])?;
    let Value::Object(patch) = patch else {
        return Err(vec![FieldError::new("body", "must be a JSON object of settings fields")]);
    };
    let mut merged = match serde_json::to_value(current) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    for (k, v) in patch {
        if v.is_null() {
            merged.remove(&k);
        } else {
            merged.insert(k, v);
        }
    }
    serde_path_to_error::deserialize::<_, Settings>(Value::Object(merged)).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let field = field_named_in(&inner).unwrap_or_else(|| if path == "." { "body".into() } else { path });
        vec![FieldError::new(field, inner)]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Coordinator;

    #[test]
    fn put_bodies_merge_and_name_the_bad_field() {
        let current = Settings { provider_id: "p1".into(), ..Settings::default() };
        let s = merge_json(&current, br#"{"slots": 3}"#).unwrap();
        assert_eq!((s.slots, s.provider_id.as_str()), (Some(3), "p1"));
        let e = merge_json(&current, br#"{"slots": "two"}"#).unwrap_err();
        assert_eq!(e[0].field, "slots");
        let e = merge_json(&current, br#"{"slot": 2}"#).unwrap_err();
        assert_eq!(e[0].field, "slot");
        assert!(e[0].message.contains("unknown field"), "{}", e[0].message);
        let e = merge_json(&current, b"[1]").unwrap_err();
        assert_eq!(e[0].field, "body");
        let s = merge_json(&current, br#"{"coordinator": "ws://127.0.0.1:9/ws/provider"}"#).unwrap();
        assert_eq!(s.coordinator, Coordinator::Url("ws://127.0.0.1:9/ws/provider".into()));
        let s = merge_json(&current, br#"{"protocol": "v1"}"#).unwrap();
        assert_eq!(s.protocol, hearth_protocol::ProtocolChoice::V1);
        let e = merge_json(&current, br#"{"protocol": "v3"}"#).unwrap_err();
        assert_eq!(e[0].field, "protocol");
        assert!(e[0].message.contains("auto"), "the choices are named: {}", e[0].message);
    }
}
