//! Checking settings, with one human message per field.
//!
//! Messages are written for the settings window and the CLI alike: they start with the field name
//! and say what to do, e.g. `coordinator: plain ws:// is only allowed for localhost/127.0.0.1/::1;
//! use wss://`.

use std::net::IpAddr;
use std::path::Path;

use url::{Host, Url};

use crate::field_error::FieldError;
use crate::model::{Coordinator, EngineKind, Settings};

/// Longest provider id the coordinator accepts.
pub const MAX_PROVIDER_ID_LEN: usize = 128;
/// The slot range a provider may offer (the coordinator clamps `max_concurrency` to 8).
pub const SLOTS_RANGE: std::ops::RangeInclusive<u32> = 1..=8;

/// Letters, digits, `-`, `_`, `.`; 1 to 128 bytes (the coordinator's safe-id rule).
pub fn is_safe_provider_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_PROVIDER_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn is_loopback_host(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => IpAddr::V4(*ip).is_loopback(),
        Host::Ipv6(ip) => IpAddr::V6(*ip).is_loopback(),
    }
}

/// Checks a coordinator URL: `wss://` (or `ws://` to a loopback host), a host, no userinfo, no
/// query or fragment (the token travels only in the `Authorization` header).
fn check_coordinator_url(raw: &str) -> Result<(), String> {
    if raw.trim().is_empty() {
        return Err("is empty; use \"local_pool\" or a wss:// URL such as wss://host/ws/provider".into());
    }
    if raw.trim() != raw {
        return Err("has leading or trailing spaces".into());
    }
    let url =
        Url::parse(raw).map_err(|e| format!("is not a valid URL ({e}); expected wss://host/ws/provider"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("URLs with a user:password@ part are refused; the token is kept in the keychain".into());
    }
    let host = url.host().ok_or("has no host; expected wss://host/ws/provider")?;
    match url.scheme() {
        "wss" => {}
        "ws" if is_loopback_host(&host) => {}
        "ws" => return Err("plain ws:// is only allowed for localhost/127.0.0.1/::1; use wss://".into()),
        other => return Err(format!("scheme {other}:// is not a WebSocket URL; use wss://host/ws/provider")),
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a ?query or #fragment; the protocol sends nothing in the URL".into());
    }
    Ok(())
}

fn check_loopback_url(raw: &str) -> Result<(), String> {
    let url =
        Url::parse(raw).map_err(|e| format!("is not a valid URL ({e}); e.g. http://127.0.0.1:11434/v1"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("scheme {}:// is not supported; use http:// or https://", url.scheme()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("URLs with a user:password@ part are refused".into());
    }
    if url.host().is_none() {
        return Err("has no host".into());
    }
    Ok(())
}

/// A model folder must be an absolute path; whether it exists is the model list's business (an
/// unplugged disk should not make the whole settings file invalid).
fn check_model_folder(folder: &Path) -> Result<(), String> {
    if folder.as_os_str().is_empty() {
        return Err("is empty; remove it".into());
    }
    if !folder.is_absolute() {
        return Err(format!("({}) must be an absolute path, e.g. /Volumes/Models", folder.display()));
    }
    Ok(())
}

impl Settings {
    /// Every problem at once (not just the first), so a settings window can mark all bad fields.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if let Coordinator::Url(u) = &self.coordinator {
            if let Err(m) = check_coordinator_url(u) {
                errors.push(FieldError::new("coordinator", m));
            }
        }
        if self.provider_id.is_empty() {
            errors.push(FieldError::new("provider_id", "must not be empty"));
        } else if self.provider_id.len() > MAX_PROVIDER_ID_LEN {
            errors.push(FieldError::new(
                "provider_id",
                format!("is {} characters long; at most {MAX_PROVIDER_ID_LEN}", self.provider_id.len()),
            ));
        } else if !is_safe_provider_id(&self.provider_id) {
            errors.push(FieldError::new("provider_id", "may contain only letters, digits, '-', '_' and '.'"));
        }
        if let Some(p) = &self.model_path {
            if p.as_os_str().is_empty() {
                errors.push(FieldError::new("model_path", "is empty; remove it to use the default model"));
            } else if !p.is_absolute() {
                errors.push(FieldError::new(
                    "model_path",
                    format!("must be an absolute path (got {})", p.display()),
                ));
            }
        }
        for (i, folder) in self.model_folders.iter().enumerate() {
            if let Err(m) = check_model_folder(folder) {
                errors.push(FieldError::new("model_folders", format!("entry {} {m}", i + 1)));
            }
        }
        match (&self.engine, &self.loopback_url) {
            (EngineKind::Loopback, None) => errors.push(FieldError::new(
                "loopback_url",
                "is required when engine = \"loopback\" (e.g. http://127.0.0.1:11434/v1)",
            )),
            (_, Some(u)) => {
                if let Err(m) = check_loopback_url(u) {
                    errors.push(FieldError::new("loopback_url", m));
                }
            }
            _ => {}
        }
        if let Some(slots) = self.slots.filter(|n| !SLOTS_RANGE.contains(n)) {
            errors.push(FieldError::new(
                "slots",
                format!(
                    "must be between {} and {} (got {slots}); leave it out to let the engine choose",
                    SLOTS_RANGE.start(),
                    SLOTS_RANGE.end(),
                ),
            ));
        }
        if let Some(v) = self.binary_version.as_deref().filter(|v| !hearth_protocol::is_binary_version(v)) {
            errors.push(FieldError::new(
                "binary_version",
                format!("must be a version like 1.8.56 (at most 32 bytes), got {v:?}; leave it out to announce Hearth's protocol level"),
            ));
        }
        for (field, message) in self.power.problems() {
            errors.push(FieldError::new(field, message));
        }
        if self.control_port == Some(0) {
            errors.push(FieldError::new("control_port", "must be 1-65535; leave it out to pick a free port"));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Settings {
        Settings { provider_id: "studio-m2".into(), ..Settings::default() }
    }

    fn errs(s: &Settings) -> Vec<FieldError> {
        s.validate().unwrap_err()
    }

    fn coord(url: &str) -> Result<(), Vec<FieldError>> {
        Settings { coordinator: Coordinator::Url(url.into()), ..base() }.validate()
    }

    #[test]
    fn defaults_are_valid_and_have_a_fresh_safe_id() {
        let a = Settings::default();
        a.validate().unwrap();
        assert!(is_safe_provider_id(&a.provider_id));
        assert_ne!(a.provider_id, Settings::default().provider_id);
        assert_eq!(a.slots, None, "the engine chooses");
        assert_eq!(a.power, crate::PowerSettings::default());
        assert_eq!(a.coordinator, Coordinator::LocalPool);
    }

    #[test]
    fn coordinator_urls() {
        coord("wss://coord.example.com/ws/provider").unwrap();
        coord("wss://coord.example.com:8444/ws/provider").unwrap();
        coord("ws://localhost:8444/ws/provider").unwrap();
        coord("ws://127.0.0.1:8444/ws/provider").unwrap();
        coord("ws://127.5.0.1/ws/provider").unwrap();
        coord("ws://[::1]:8444/ws/provider").unwrap();

        let e = coord("ws://coord.example.com/ws/provider").unwrap_err();
        assert_eq!(
            e[0].to_string(),
            "coordinator: plain ws:// is only allowed for localhost/127.0.0.1/::1; use wss://"
        );
        let e = coord("wss://user:pw@coord.example.com/ws/provider").unwrap_err();
        assert_eq!(e[0].field, "coordinator");
        assert!(e[0].message.starts_with("URLs with a user:password@ part are refused"), "{}", e[0]);
        assert!(coord("wss://tok@coord.example.com/ws/provider").unwrap_err()[0]
            .message
            .contains("user:password@"));
        assert!(coord("https://coord.example.com/ws/provider").unwrap_err()[0].message.contains("https://"));
        assert!(coord("wss://coord.example.com/ws/provider?token=x").unwrap_err()[0]
            .message
            .contains("?query"));
        assert!(coord("not a url").unwrap_err()[0].message.contains("not a valid URL"));
        assert!(coord("").unwrap_err()[0].message.contains("is empty"));
        // A lookalike of localhost is not loopback.
        assert!(coord("ws://localhost.evil.com/ws/provider").is_err());
    }

    #[test]
    fn provider_id_rules() {
        let ok = |id: &str| Settings { provider_id: id.into(), ..base() }.validate().is_ok();
        assert!(ok("studio-m2"));
        assert!(ok("5b0e7c1e-8a61-4d7e-9a43-0c2f5d7e9b10"));
        assert!(ok("a.b_c-D9"));
        assert!(ok(&"x".repeat(128)));
        assert!(!ok(&"x".repeat(129)));
        assert!(!ok(""));
        assert!(!ok("has space"));
        assert!(!ok("slash/id"));
        assert!(!ok("émile"));
        let e = errs(&Settings { provider_id: "a b".into(), ..base() });
        assert_eq!(e[0].to_string(), "provider_id: may contain only letters, digits, '-', '_' and '.'");
    }

    #[test]
    fn slots_engine_paths_and_ports() {
        for bad in [0, 9, 100] {
            let e = errs(&Settings { slots: Some(bad), ..base() });
            assert_eq!(e[0].field, "slots");
            assert!(e[0].message.starts_with("must be between 1 and 8"), "{}", e[0]);
        }
        for good in 1..=8 {
            Settings { slots: Some(good), ..base() }.validate().unwrap();
        }
        let e = errs(&Settings { engine: EngineKind::Loopback, ..base() });
        assert_eq!(e[0].field, "loopback_url");
        Settings {
            engine: EngineKind::Loopback,
            loopback_url: Some("http://127.0.0.1:11434/v1".into()),
            ..base()
        }
        .validate()
        .unwrap();
        let e = errs(&Settings { loopback_url: Some("ftp://x".into()), ..base() });
        assert_eq!(e[0].field, "loopback_url");
        let e = errs(&Settings { model_path: Some("models/tiny".into()), ..base() });
        assert_eq!(e[0].field, "model_path");
        let e = errs(&Settings { binary_version: Some("1.8".into()), ..base() });
        assert_eq!(e[0].field, "binary_version");
        Settings { binary_version: Some("1.9.0".into()), ..base() }.validate().unwrap();
        let e = errs(&Settings { control_port: Some(0), ..base() });
        assert_eq!(e[0].field, "control_port");
    }

    #[test]
    fn model_folders_must_be_absolute_but_need_not_exist() {
        let ok =
            Settings { model_folders: vec!["/Volumes/Unplugged/models".into(), "/tmp".into()], ..base() };
        ok.validate().unwrap();
        let e =
            errs(&Settings { model_folders: vec!["/models".into(), "models".into(), "".into()], ..base() });
        assert_eq!(e.len(), 2, "{e:?}");
        assert_eq!(
            e[0].to_string(),
            "model_folders: entry 2 (models) must be an absolute path, e.g. /Volumes/Models"
        );
        assert_eq!(e[1].to_string(), "model_folders: entry 3 is empty; remove it");

        // As the settings window sends them: a JSON array, `null` clears it.
        let s = crate::patch::merge_json(&base(), br#"{"model_folders": ["/a", "b"]}"#).unwrap();
        assert_eq!(s.model_folders, [std::path::PathBuf::from("/a"), "b".into()]);
        assert_eq!(errs(&s)[0].field, "model_folders");
        let cleared = crate::patch::merge_json(&s, br#"{"model_folders": null}"#).unwrap();
        assert!(cleared.model_folders.is_empty());
        let e = crate::patch::merge_json(&base(), br#"{"model_folders": "/a"}"#).unwrap_err();
        assert_eq!(e[0].field, "model_folders", "{e:?}");
    }

    #[test]
    fn all_errors_are_reported_together() {
        let s = Settings {
            coordinator: Coordinator::Url("ws://example.com/ws/provider".into()),
            provider_id: "bad id".into(),
            slots: Some(9),
            ..base()
        };
        let fields: Vec<_> = errs(&s).into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["coordinator", "provider_id", "slots"]);
    }

    #[test]
    fn toml_errors_name_the_field_and_the_position() {
        let e = Settings::from_toml_str("provider_id = \"a\"\nslots = \"two\"\n").unwrap_err();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].field, "slots");
        assert!(e[0].message.contains("line 2, column 9"), "{}", e[0]);

        let e = Settings::from_toml_str("slots = 2\n").unwrap_err();
        assert_eq!(e[0].field, "provider_id");
        assert!(e[0].message.contains("missing field"), "{}", e[0]);

        let e = Settings::from_toml_str("provider_id = \"a\"\nslot = 2\n").unwrap_err();
        assert_eq!(e[0].field, "slot");
        assert!(e[0].message.contains("unknown field"), "{}", e[0]);

        let e = Settings::from_toml_str("provider_id = \"a\"\ncontrol_port = 70000\n").unwrap_err();
        assert_eq!(e[0].field, "control_port");

        let e = Settings::from_toml_str("provider_id = \"a\"\nengine = \"gpu\"\n").unwrap_err();
        assert_eq!(e[0].field, "engine");

        let e = Settings::from_toml_str("provider_id = \"a\nslots = 1\n").unwrap_err();
        assert!(e[0].message.contains("line 1"), "{}", e[0]);

        // Values that parse but are invalid go through validate.
        let e = Settings::from_toml_str("provider_id = \"a\"\nslots = 12\n").unwrap_err();
        assert_eq!(
            e[0].to_string(),
            "slots: must be between 1 and 8 (got 12); leave it out to let the engine choose"
        );
    }

    #[test]
    fn toml_round_trip() {
        let s = Settings {
            coordinator: Coordinator::Url("wss://coord.example.com/ws/provider".into()),
            model_path: Some("/models/tiny-llama-4bit".into()),
            model_folders: vec!["/Volumes/Models".into(), "/opt/gguf".into()],
            engine: EngineKind::Loopback,
            loopback_url: Some("http://127.0.0.1:8080/v1".into()),
            slots: Some(4),
            start_at_login: true,
            power: crate::PowerSettings { on_battery: crate::OnBattery::Never, ..Default::default() },
            control_port: Some(7777),
            ..base()
        };
        let text = s.to_toml_string();
        assert!(text.contains("coordinator = \"wss://coord.example.com/ws/provider\""), "{text}");
        assert!(text.contains("engine = \"loopback\""), "{text}");
        assert_eq!(Settings::from_toml_str(&text).unwrap(), s);

        let minimal = Settings::from_toml_str("provider_id = \"m\"\n").unwrap();
        assert_eq!(minimal.coordinator, Coordinator::LocalPool);
        assert_eq!(minimal.slots, None);
        assert!(!minimal.to_toml_string().lines().any(|l| l.starts_with("slots")));
        assert!(!minimal.to_toml_string().contains("model_path"));
        assert!(!minimal.to_toml_string().contains("model_folders"));
        assert!(minimal.model_folders.is_empty());
    }
}
