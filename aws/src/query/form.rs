//! `application/x-www-form-urlencoded`: `+` is a space, `%XX` a byte, pairs split at `&`
//! and `=`.

use super::QueryError;

/// The pairs of a form body, in order, decoded. Empty pieces (`a=1&&b=2`) are skipped; a
/// piece without `=` is a name with an empty value.
pub fn decode_form(body: &str) -> Result<Vec<(String, String)>, QueryError> {
    let mut pairs = Vec::new();
    for piece in body.split('&') {
        if piece.is_empty() {
            continue;
        }
        let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
        pairs.push((decode_component(name)?, decode_component(value)?));
    }
    Ok(pairs)
}

/// One decoded name or value.
fn decode_component(text: &str) -> Result<String, QueryError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                let Some(b) = hex else {
                    return Err(QueryError::Malformed(format!(
                        "`{}` is not a percent-encoded byte",
                        String::from_utf8_lossy(&bytes[i..bytes.len().min(i + 3)])
                    )));
                };
                out.push(b);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| QueryError::Malformed("a parameter is not UTF-8 once decoded".into()))
}

/// Percent-encodes every byte but the unreserved ones (`A-Z a-z 0-9 - _ . ~`), with
/// upper-case hex: SigV4's URI encoding, and what botocore writes in form bodies.
pub fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_plus_percent_and_empty_values() {
        let pairs = decode_form("Action=CreateRule&A.b=%2Fapi%2F%2A&Q=a+b&Empty=&Bare&&").unwrap();
        assert_eq!(
            pairs,
            vec![
                ("Action".into(), "CreateRule".into()),
                ("A.b".into(), "/api/*".into()),
                ("Q".into(), "a b".into()),
                ("Empty".into(), "".into()),
                ("Bare".into(), "".into()),
            ]
        );
    }

    #[test]
    fn refuses_broken_escapes_and_bad_utf8() {
        assert!(decode_form("A=%2").is_err());
        assert!(decode_form("A=%zz").is_err());
        assert!(decode_form("A=%ff").is_err());
        assert_eq!(decode_form("A=%C3%A9").unwrap()[0].1, "é");
    }

    #[test]
    fn encodes_as_sigv4_wants() {
        assert_eq!(encode_component("a b/c*~"), "a%20b%2Fc%2A~");
        assert_eq!(encode_component("é"), "%C3%A9");
    }
}
