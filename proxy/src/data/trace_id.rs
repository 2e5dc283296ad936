//! `X-Amzn-Trace-Id` as ALB writes it: `Root=1-<8 hex epoch seconds>-<24 hex random>`
//! added when absent; `Self=...;` put in front when a `Root` is present; a present `Self`
//! replaced. A header over 7 KB is replaced by a fresh `Root=`.

use bytes::{BufMut, BytesMut};

use crate::{clock, rng};

/// ALB replaces trace headers larger than this.
const MAX_INCOMING: usize = 7 * 1024;

/// Writes a fresh id (`1-5759e988-bd862e3fe1be46a994272793`) into `out`.
pub(crate) fn write_new_id(out: &mut BytesMut) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = [0u8; 35];
    id[0] = b'1';
    id[1] = b'-';
    let epoch = clock::unix_seconds() as u32;
    for i in 0..8 {
        id[2 + i] = HEX[((epoch >> (28 - 4 * i)) & 0xf) as usize];
    }
    id[10] = b'-';
    let (a, b) = (rng::next_u64(), rng::next_u64());
    for i in 0..16 {
        id[11 + i] = HEX[((a >> (60 - 4 * i)) & 0xf) as usize];
    }
    for i in 0..8 {
        id[27 + i] = HEX[((b >> (60 - 4 * i)) & 0xf) as usize];
    }
    out.put_slice(&id);
}

/// Writes the value the target receives, given the client's value (first field) if any.
pub(crate) fn write_value(out: &mut BytesMut, incoming: Option<&[u8]>) {
    let Some(incoming) = incoming.filter(|v| !v.is_empty() && v.len() <= MAX_INCOMING) else {
        out.put_slice(b"Root=");
        write_new_id(out);
        return;
    };
    if let Some(start) = find_key(incoming, b"Self=") {
        // Replace the value of Self, keep everything else in place.
        let value_start = start + 5;
        let value_end = incoming[value_start..]
            .iter()
            .position(|b| *b == b';')
            .map(|i| value_start + i)
            .unwrap_or(incoming.len());
        out.put_slice(&incoming[..value_start]);
        write_new_id(out);
        out.put_slice(&incoming[value_end..]);
    } else if find_key(incoming, b"Root=").is_some() {
        out.put_slice(b"Self=");
        write_new_id(out);
        out.put_u8(b';');
        out.put_slice(incoming);
    } else {
        // No Root: start one, keeping the client's custom fields after it.
        out.put_slice(b"Root=");
        write_new_id(out);
        out.put_u8(b';');
        out.put_slice(incoming);
    }
}

/// The position of `key` (`Root=` or `Self=`) at the start of a `;`-separated field.
fn find_key(value: &[u8], key: &[u8]) -> Option<usize> {
    let mut start = 0;
    for part in value.split(|b| *b == b';') {
        let trimmed = part.iter().take_while(|b| **b == b' ').count();
        if part[trimmed..].len() >= key.len() && part[trimmed..][..key.len()].eq_ignore_ascii_case(key) {
            return Some(start + trimmed);
        }
        start += part.len() + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(incoming: Option<&str>) -> String {
        let mut out = BytesMut::new();
        write_value(&mut out, incoming.map(str::as_bytes));
        String::from_utf8(out.to_vec()).unwrap_or_default()
    }

    fn is_id(s: &str) -> bool {
        let parts: Vec<&str> = s.split('-').collect();
        parts.len() == 3
            && parts[0] == "1"
            && parts[1].len() == 8
            && parts[2].len() == 24
            && parts[1..]
                .iter()
                .all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
    }

    #[test]
    fn absent_gets_a_root() {
        let v = rewrite(None);
        let id = v.strip_prefix("Root=").unwrap_or_default();
        assert!(is_id(id), "{v}");
    }

    #[test]
    fn root_gets_self_in_front() {
        let v = rewrite(Some("Root=1-67891233-abcdef012345678912345678;CalledFrom=app"));
        let (first, rest) = v.split_once(';').unwrap_or_default();
        assert!(is_id(first.strip_prefix("Self=").unwrap_or_default()), "{v}");
        assert_eq!(rest, "Root=1-67891233-abcdef012345678912345678;CalledFrom=app");
    }

    #[test]
    fn self_is_replaced() {
        let v = rewrite(Some(
            "Self=1-00000000-000000000000000000000000;Root=1-67891233-abcdef012345678912345678",
        ));
        assert!(v.ends_with(";Root=1-67891233-abcdef012345678912345678"));
        assert!(!v.contains("1-00000000-000000000000000000000000"));
        assert!(is_id(&v[5..40]), "{v}");
    }

    #[test]
    fn oversized_is_replaced() {
        let big = format!("Root=1-67891233-abcdef012345678912345678;X={}", "a".repeat(8000));
        let v = rewrite(Some(&big));
        assert!(v.starts_with("Root=") && v.len() == 40, "{}", v.len());
    }

    #[test]
    fn ids_differ() {
        assert_ne!(rewrite(None), rewrite(None));
    }
}
