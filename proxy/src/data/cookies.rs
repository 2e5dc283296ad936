//! Stickiness cookies (`AWSALBTG`, and the target cookies of the lifecycle): opaque and
//! authenticated. The value is `base64url(payload || HMAC-SHA256(kind || payload)[..16])`
//! under a key drawn at start, so a forged or edited cookie fails to open and simply gets
//! a normal pick; it can never steer a request to an address of the client's choosing.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::{BufMut, BytesMut};
use ring::hmac;

use crate::clock;

const TAG_LEN: usize = 16;
/// ALB's stickiness cookies carry `Expires` seven days out, renewed on every response;
/// the stickiness duration itself is sealed inside the value.
const COOKIE_LIFETIME_SECONDS: u64 = 7 * 86_400;

/// What a sealed cookie is for; part of the MAC so one kind cannot pass for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum CookieKind {
    TargetGroup = 1,
    Target = 2,
    AppTarget = 3,
}

pub(crate) struct CookieKey(hmac::Key);

impl std::fmt::Debug for CookieKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieKey(..)")
    }
}

impl CookieKey {
    /// A fresh random key. Cookies sealed by an earlier process no longer open, which only
    /// costs those clients one normal pick.
    pub(crate) fn random() -> CookieKey {
        let rng = ring::rand::SystemRandom::new();
        match hmac::Key::generate(hmac::HMAC_SHA256, &rng) {
            Ok(k) => CookieKey(k),
            // The OS random source failing is not something to serve through; fall back to
            // a key from the process's hash seed, still unknown to clients.
            Err(_) => {
                let seed = [
                    crate::rng::next_u64().to_le_bytes(),
                    crate::rng::next_u64().to_le_bytes(),
                ]
                .concat();
                CookieKey(hmac::Key::new(hmac::HMAC_SHA256, &seed))
            }
        }
    }

    fn tag(&self, kind: CookieKind, payload: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(&[kind as u8]);
        ctx.update(payload);
        ctx.sign()
    }

    /// Seals `payload` into a cookie value.
    pub(crate) fn seal(&self, kind: CookieKind, payload: &[u8]) -> String {
        let tag = self.tag(kind, payload);
        let mut raw = Vec::with_capacity(payload.len() + TAG_LEN);
        raw.extend_from_slice(payload);
        raw.extend_from_slice(&tag.as_ref()[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Opens a cookie value sealed by [`CookieKey::seal`] with the same kind.
    pub(crate) fn open(&self, kind: CookieKind, value: &[u8]) -> Option<Vec<u8>> {
        if value.len() > 512 {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(value).ok()?;
        if raw.len() < TAG_LEN {
            return None;
        }
        let (payload, tag) = raw.split_at(raw.len() - TAG_LEN);
        let expected = self.tag(kind, payload);
        // Constant-time comparison: how much of a forged tag is right must not show in
        // the time taken.
        let diff = expected.as_ref()[..TAG_LEN]
            .iter()
            .zip(tag)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 {
            return None;
        }
        Some(payload.to_vec())
    }
}

/// Finds cookie `name` in the values of the request's `Cookie` fields.
pub(crate) fn find<'a>(cookie_fields: impl Iterator<Item = &'a [u8]>, name: &[u8]) -> Option<&'a [u8]> {
    for field in cookie_fields {
        for pair in field.split(|b| *b == b';') {
            let pair = crate::http1::trim_ows(pair);
            if let Some(eq) = memchr::memchr(b'=', pair) {
                if &pair[..eq] == name {
                    return Some(&pair[eq + 1..]);
                }
            }
        }
    }
    None
}

/// Appends `Set-Cookie` fields for `name`, and with `cors` its `CORS` twin, as ALB sets
/// them.
pub(crate) fn write_set_cookie(out: &mut BytesMut, name: &str, value: &str, cors: bool) {
    let expires = clock::format_http_date(clock::unix_seconds() + COOKIE_LIFETIME_SECONDS);
    let variants: &[(&str, &[u8])] = if cors {
        &[("", b""), ("CORS", b"; SameSite=None; Secure")]
    } else {
        &[("", b"")]
    };
    for (suffix, extra) in variants {
        out.put_slice(b"Set-Cookie: ");
        out.put_slice(name.as_bytes());
        out.put_slice(suffix.as_bytes());
        out.put_u8(b'=');
        out.put_slice(value.as_bytes());
        out.put_slice(b"; Expires=");
        out.put_slice(&expires);
        out.put_slice(b"; Path=/");
        out.put_slice(extra);
        out.put_slice(b"\r\n");
    }
}

/// What a target stickiness cookie says: this group's target at this address, until.
pub(crate) fn target_payload(group: u64, addr: std::net::SocketAddr, expires: u64) -> [u8; 34] {
    let mut p = [0u8; 34];
    p[..8].copy_from_slice(&group.to_le_bytes());
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        std::net::IpAddr::V6(v6) => v6,
    };
    p[8..24].copy_from_slice(&ip.octets());
    p[24..26].copy_from_slice(&addr.port().to_le_bytes());
    p[26..].copy_from_slice(&expires.to_le_bytes());
    p
}

/// Reads a payload written by [`target_payload`]: (group, address, expiry).
pub(crate) fn read_target_payload(p: &[u8]) -> Option<(u64, std::net::SocketAddr, u64)> {
    if p.len() != 34 {
        return None;
    }
    let group = u64::from_le_bytes(p[..8].try_into().ok()?);
    let octets: [u8; 16] = p[8..24].try_into().ok()?;
    let v6 = std::net::Ipv6Addr::from(octets);
    let ip = v6
        .to_ipv4_mapped()
        .map(std::net::IpAddr::V4)
        .unwrap_or(std::net::IpAddr::V6(v6));
    let port = u16::from_le_bytes(p[24..26].try_into().ok()?);
    let expires = u64::from_le_bytes(p[26..].try_into().ok()?);
    Some((group, std::net::SocketAddr::new(ip, port), expires))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open_round_trip() {
        let key = CookieKey::random();
        let v = key.seal(CookieKind::TargetGroup, b"payload-bytes");
        assert_eq!(
            key.open(CookieKind::TargetGroup, v.as_bytes()),
            Some(b"payload-bytes".to_vec())
        );
        assert_eq!(
            key.open(CookieKind::Target, v.as_bytes()),
            None,
            "a cookie of another kind"
        );
    }

    #[test]
    fn tampered_forged_or_foreign_cookies_do_not_open() {
        let key = CookieKey::random();
        let v = key.seal(CookieKind::TargetGroup, b"group-a");
        let mut bytes = v.clone().into_bytes();
        bytes[0] = if bytes[0] == b'A' { b'B' } else { b'A' };
        assert_eq!(key.open(CookieKind::TargetGroup, &bytes), None, "edited");
        assert_eq!(
            CookieKey::random().open(CookieKind::TargetGroup, v.as_bytes()),
            None,
            "other key"
        );
        assert_eq!(key.open(CookieKind::TargetGroup, b"not base64!"), None);
        assert_eq!(key.open(CookieKind::TargetGroup, b"%41%42"), None, "URL-encoded");
        let forged = URL_SAFE_NO_PAD.encode([b"group-b".as_slice(), &[0u8; TAG_LEN]].concat());
        assert_eq!(
            key.open(CookieKind::TargetGroup, forged.as_bytes()),
            None,
            "forged"
        );
    }

    #[test]
    fn target_payload_round_trips() {
        for addr in ["10.1.2.3:8080", "[::1]:443"] {
            let addr: std::net::SocketAddr = addr.parse().unwrap();
            let p = target_payload(42, addr, 1_700_000_000);
            assert_eq!(read_target_payload(&p), Some((42, addr, 1_700_000_000)));
        }
        assert_eq!(read_target_payload(&[0u8; 10]), None);
    }

    #[test]
    fn finds_cookie_by_exact_name() {
        let fields = [&b"a=1; AWSALBTGCORS=x"[..], b"AWSALBTG=y; b=2"];
        assert_eq!(find(fields.iter().copied(), b"AWSALBTG"), Some(&b"y"[..]));
        assert_eq!(find(fields.iter().copied(), b"b"), Some(&b"2"[..]));
        assert_eq!(find(fields.iter().copied(), b"c"), None);
    }

    #[test]
    fn set_cookie_has_cors_twin() {
        let mut out = BytesMut::new();
        write_set_cookie(&mut out, "AWSALBTG", "abc", true);
        let text = String::from_utf8(out.to_vec()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("Set-Cookie: AWSALBTG=abc; Expires="));
        assert!(lines[1].starts_with("Set-Cookie: AWSALBTGCORS=abc; Expires="));
        assert!(lines[1].ends_with("; Path=/; SameSite=None; Secure"));
    }
}
