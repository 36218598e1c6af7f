//! [`FieldError`]: one problem with one settings field, the unit every check and parse error in this
//! crate is reported in (the settings window marks fields by it; the CLI prints it as one line).
//! It sits at the bottom of the crate: the model, the checks, the store, the watcher and the JSON
//! patch all speak it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One problem with one field. `field` is the TOML key (or `file` when no key can be named).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { field: field.into(), message: message.into() }
    }

    /// `a: x; b: y` — for one-line logs and error messages.
    pub fn join(errors: &[FieldError]) -> String {
        errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    }

    /// Maps a TOML parse/deserialise error to the field it is about, with the line and column in
    /// the message. The field comes from the error (`missing field `x``, `unknown field `x``) or
    /// else from the key on the offending line; `file` when neither names one.
    pub fn from_toml(src: &str, err: &toml::de::Error) -> FieldError {
        let message = err.message().trim().to_string();
        let (line_no, col, line_text) = match err.span() {
            Some(span) => {
                let start = span.start.min(src.len());
                let before = &src[..start];
                let line_no = before.matches('\n').count() + 1;
                let line_start = before.rfind('\n').map_or(0, |i| i + 1);
                let col = before[line_start..].chars().count() + 1;
                let line_end = src[line_start..].find('\n').map_or(src.len(), |i| line_start + i);
                (Some(line_no), col, &src[line_start..line_end])
            }
            None => (None, 0, ""),
        };
        let on_line = line_text
            .split_once('=')
            .map(|(k, _)| k.trim().trim_matches('"').to_string())
            .filter(|k| !k.is_empty() && !k.starts_with('#') && !k.starts_with('['));
        let field = field_named_in(&message).or(on_line).unwrap_or_else(|| "file".to_string());
        let message = match line_no {
            Some(l) => format!("{message} (line {l}, column {col})"),
            None => message,
        };
        FieldError { field, message }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// The field a serde error message is about, when it names one: serde's derive says
/// ``missing field `x` `` and ``unknown field `x` `` whatever the format (TOML or JSON), and gives no
/// path for either, so the name is read out of the message.
pub(crate) fn field_named_in(message: &str) -> Option<String> {
    ["missing field `", "unknown field `"]
        .iter()
        .find_map(|p| message.split(p).nth(1).and_then(|rest| rest.split('`').next()))
        .map(str::to_string)
}
