//! Chat templates: the Jinja source a model ships, rendered the way Hugging Face renders it.
//!
//! HF renders with Python's Jinja2 (`trim_blocks`, `lstrip_blocks`, the `loopcontrols` extension, a
//! `raise_exception` function, a `tojson` filter that behaves like `json.dumps`, `strftime_now`, and
//! Python string methods such as `.strip()`). minijinja plus its `pycompat` callbacks covers the
//! language; this module adds the HF-specific functions, so templates render byte-for-byte like
//! `tokenizer.apply_chat_template` — which matters because the prompt's token ids must match.

use std::collections::BTreeMap;

use minijinja::value::Value as JValue;
use minijinja::{Environment, Error as JError, ErrorKind};

use crate::error::LoadError;
use crate::job::{ChatMessage, EngineError};

const NAME: &str = "chat";

/// A compiled chat template plus the special tokens it may refer to.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    /// `bos_token`, `eos_token`, … as the template sees them.
    specials: BTreeMap<String, String>,
}

impl ChatTemplate {
    /// Compiles `source`; a syntax error is reported now rather than on the first request.
    pub fn new(source: &str, specials: BTreeMap<String, String>) -> Result<Self, LoadError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        env.add_template_owned(NAME, source.to_string()).map_err(|e| LoadError::Template(describe(&e)))?;
        Ok(Self { env, specials })
    }

    /// Renders a conversation with the assistant's turn opened (`add_generation_prompt`).
    pub fn render(&self, messages: &[ChatMessage]) -> Result<String, EngineError> {
        let mut ctx: BTreeMap<String, JValue> = BTreeMap::new();
        for (k, v) in &self.specials {
            ctx.insert(k.clone(), JValue::from(v.clone()));
        }
        ctx.insert("messages".into(), JValue::from_serialize(messages));
        ctx.insert("add_generation_prompt".into(), JValue::from(true));
        let tmpl = self.env.get_template(NAME).map_err(|e| EngineError::Internal(describe(&e)))?;
        tmpl.render(JValue::from_serialize(&ctx)).map_err(|e| match e.kind() {
            // The template itself refused the conversation (e.g. roles must alternate): the
            // buyer's request is what needs fixing.
            ErrorKind::InvalidOperation => EngineError::InvalidRequest(describe(&e)),
            _ => EngineError::Internal(format!("chat template failed: {}", describe(&e))),
        })
    }
}

fn describe(e: &JError) -> String {
    let mut s = e.to_string();
    if let Some(d) = e.detail() {
        if !s.contains(d) {
            s = format!("{s}: {d}");
        }
    }
    s
}

fn raise_exception(msg: String) -> Result<JValue, JError> {
    Err(JError::new(ErrorKind::InvalidOperation, msg))
}

/// Python's `json.dumps(value, ensure_ascii=False, indent=indent)`, as HF's `tojson` does it.
fn tojson(value: JValue, kwargs: minijinja::value::Kwargs) -> Result<JValue, JError> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let _: Option<bool> = kwargs.get("ensure_ascii")?;
    let _: Option<bool> = kwargs.get("sort_keys")?;
    kwargs.assert_all_used()?;
    let json = serde_json::to_value(&value)
        .map_err(|e| JError::new(ErrorKind::InvalidOperation, format!("tojson: {e}")))?;
    let mut out = String::new();
    write_py_json(&json, indent, 0, &mut out);
    Ok(JValue::from_safe_string(out))
}

fn write_py_json(v: &serde_json::Value, indent: Option<usize>, depth: usize, out: &mut String) {
    use serde_json::Value as V;
    let newline = |out: &mut String, d: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * d));
        }
    };
    let item_sep = if indent.is_some() { "," } else { ", " };
    match v {
        V::Array(items) if !items.is_empty() => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                write_py_json(item, indent, depth + 1, out);
            }
            newline(out, depth);
            out.push(']');
        }
        V::Object(map) if !map.is_empty() => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                out.push_str(&serde_json::to_string(k).unwrap_or_default());
                out.push_str(": ");
                write_py_json(item, indent, depth + 1, out);
            }
            newline(out, depth);
            out.push('}');
        }
        other => out.push_str(&serde_json::to_string(other).unwrap_or_default()),
    }
}

/// `strftime_now(fmt)` for templates that print today's date (Llama 3.1). Supports the directives
/// those templates use: `%d %m %Y %y %b %B %H %M %S %%`.
fn strftime_now(fmt: String) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    format_utc(secs, &fmt)
}

pub(crate) fn format_utc(secs: i64, fmt: &str) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    // Civil-from-days (proleptic Gregorian), valid for any i64 day count we will see.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut out = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => out.push_str(&format!("{day:02}")),
            Some('m') => out.push_str(&format!("{month:02}")),
            Some('Y') => out.push_str(&year.to_string()),
            Some('y') => out.push_str(&format!("{:02}", year % 100)),
            Some('b') => out.push_str(&MONTHS[(month - 1) as usize][..3]),
            Some('B') => out.push_str(MONTHS[(month - 1) as usize]),
            Some('H') => out.push_str(&format!("{:02}", tod / 3600)),
            Some('M') => out.push_str(&format!("{:02}", tod % 3600 / 60)),
            Some('S') => out.push_str(&format!("{:02}", tod % 60)),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(pairs: &[(&str, &str)]) -> Vec<ChatMessage> {
        pairs.iter().map(|(r, c)| ChatMessage { role: r.to_string(), content: c.to_string() }).collect()
    }

    fn specials() -> BTreeMap<String, String> {
        [("bos_token".to_string(), "<s>".to_string()), ("eos_token".to_string(), "</s>".to_string())].into()
    }

    #[test]
    fn hf_style_features() {
        let src =
            "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'system' %}{% continue %}{% endif %}\
            [{{ m.role }}]{{ m['content'] | trim }}|{{ m.content.strip() }}{% endfor %}\
            {% if add_generation_prompt %}[assistant]{% endif %}{{ eos_token }}";
        let t = ChatTemplate::new(src, specials()).unwrap();
        let out = t.render(&msgs(&[("system", "x"), ("user", "  hi  ")])).unwrap();
        assert_eq!(out, "<s>[user]hi|hi[assistant]</s>");
    }

    #[test]
    fn raise_exception_is_invalid_request() {
        let t = ChatTemplate::new(
            "{% if messages[0]['role'] != 'user' %}{{ raise_exception('roles must alternate') }}{% endif %}",
            specials(),
        )
        .unwrap();
        match t.render(&msgs(&[("assistant", "x")])) {
            Err(EngineError::InvalidRequest(m)) => assert!(m.contains("roles must alternate"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tojson_like_python() {
        let t = ChatTemplate::new("{{ {'a': [1, 'é<'], 'b': none} | tojson }}", specials()).unwrap();
        assert_eq!(t.render(&[]).unwrap(), r#"{"a": [1, "é<"], "b": null}"#);
    }

    #[test]
    fn trim_and_lstrip_blocks() {
        let t = ChatTemplate::new("{% for m in messages %}\n  {{ m.content }}\n{% endfor %}", specials())
            .unwrap();
        assert_eq!(t.render(&msgs(&[("user", "a"), ("user", "b")])).unwrap(), "  a\n  b\n");
    }

    #[test]
    fn syntax_error_at_load() {
        assert!(matches!(ChatTemplate::new("{% for %}", specials()), Err(LoadError::Template(_))));
    }

    #[test]
    fn date_formatting() {
        // 2024-07-26 12:34:56 UTC
        assert_eq!(format_utc(1_721_997_296, "%d %b %Y %H:%M:%S"), "26 Jul 2024 12:34:56");
    }
}
