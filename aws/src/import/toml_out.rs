//! A small TOML writer for the imported configuration: values keep the order they are
//! built in (`type` first in an action), inline tables and arrays for conditions and
//! actions, and basic strings escaped as TOML wants.

/// A TOML value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tv {
    Str(String),
    Int(i64),
    Bool(bool),
    Array(Vec<Tv>),
    /// An inline table, in order.
    Table(Vec<(String, Tv)>),
}

impl Tv {
    pub(crate) fn str(s: impl Into<String>) -> Tv {
        Tv::Str(s.into())
    }

    pub(crate) fn strs<S: AsRef<str>>(items: &[S]) -> Tv {
        Tv::Array(items.iter().map(|s| Tv::str(s.as_ref())).collect())
    }

    /// The value on one line.
    pub(crate) fn inline(&self) -> String {
        match self {
            Tv::Str(s) => quote(s),
            Tv::Int(n) => n.to_string(),
            Tv::Bool(b) => b.to_string(),
            Tv::Array(items) => format!(
                "[{}]",
                items.iter().map(Tv::inline).collect::<Vec<_>>().join(", ")
            ),
            Tv::Table(members) if members.is_empty() => "{}".to_owned(),
            Tv::Table(members) => format!(
                "{{ {} }}",
                members
                    .iter()
                    .map(|(k, v)| format!("{} = {}", key(k), v.inline()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// A key: bare when it is only letters, digits, `-` and `_`, else quoted.
pub(crate) fn key(k: &str) -> String {
    if !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        k.to_owned()
    } else {
        quote(k)
    }
}

/// A basic string.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A comment line for each line of `text`.
pub(crate) fn comment(out: &mut String, text: &str) {
    for line in text.lines() {
        out.push_str("# ");
        out.push_str(line);
        out.push('\n');
    }
}

/// `key = value` lines of a table.
pub(crate) fn members(out: &mut String, members: &[(String, Tv)]) {
    for (k, v) in members {
        out.push_str(&key(k));
        out.push_str(" = ");
        out.push_str(&v.inline());
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_values_toml_reads_back() {
        let v = Tv::Table(vec![
            ("type".into(), Tv::str("fixed-response")),
            ("status_code".into(), Tv::Int(503)),
            ("message_body".into(), Tv::str("{\"a\":\"b\\c\"}\n\u{1}")),
            ("on".into(), Tv::Bool(true)),
            ("com.amazonaws.x".into(), Tv::strs(&["a", "b"])),
        ]);
        let text = format!("x = {}\n", v.inline());
        let parsed: toml::Table = toml::from_str(&text).unwrap();
        let x = &parsed["x"];
        assert_eq!(x["type"].as_str(), Some("fixed-response"));
        assert_eq!(x["status_code"].as_integer(), Some(503));
        assert_eq!(x["message_body"].as_str(), Some("{\"a\":\"b\\c\"}\n\u{1}"));
        assert_eq!(x["on"].as_bool(), Some(true));
        assert_eq!(x["com.amazonaws.x"][1].as_str(), Some("b"));
        assert_eq!(Tv::Table(vec![]).inline(), "{}");
    }
}
