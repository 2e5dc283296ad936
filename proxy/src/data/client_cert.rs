//! A client certificate's facts as ALB hands them to targets (mutual TLS), read once per
//! connection when the handshake completes.
//!
//! - `verify` mode: `X-Amzn-Mtls-Clientcert-Serial-Number` (the leaf's serial number in
//!   upper-case hex), `-Issuer` and `-Subject` (RFC 2253 distinguished names),
//!   `-Validity` (`NotBefore=<ISO 8601>;NotAfter=<ISO 8601>`) and `-Leaf` (the leaf in PEM,
//!   URL-encoded with `+=/` kept).
//! - `passthrough` mode: `X-Amzn-Mtls-Clientcert`: the whole chain the client sent, in PEM,
//!   URL-encoded the same way.
//!
//! The DER reader here reads only what those headers need, and never panics on what a
//! client sends: a certificate it cannot read gives `None` (the verifier already accepted
//! it, so that is only possible in passthrough mode, where the chain is sent anyway).

use std::fmt::Write as _;

use base64::Engine as _;

/// The header names, one place (also the prefix that client-sent copies are removed by).
pub(crate) const HEADER_PREFIX: &[u8] = b"x-amzn-mtls-clientcert";

/// The leaf certificate fields hostalb reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Leaf {
    /// Upper-case hex, without the DER sign byte.
    pub(crate) serial: String,
    pub(crate) issuer: String,
    pub(crate) subject: String,
    pub(crate) not_before: Time,
    pub(crate) not_after: Time,
}

/// A certificate time, to the second, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Time {
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

impl Time {
    /// ISO 8601, as ALB writes it: `2023-09-21T01:50:17Z`.
    pub(crate) fn iso8601(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// Seconds since the Unix epoch (0 before it).
    pub(crate) fn unix(&self) -> u64 {
        // Days from civil (Howard Hinnant's algorithm), for the proleptic Gregorian calendar.
        let y = i64::from(self.year) - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(self.month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        let secs = days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second);
        u64::try_from(secs).unwrap_or(0)
    }
}

/// The `X-Amzn-Mtls-Clientcert-*` lines of `verify` mode for a leaf certificate (DER).
pub(crate) fn verify_lines(leaf_der: &[u8]) -> Option<Vec<u8>> {
    let leaf = parse_leaf(leaf_der)?;
    let mut out = String::new();
    let _ = write!(
        out,
        "X-Amzn-Mtls-Clientcert-Serial-Number: {}\r\nX-Amzn-Mtls-Clientcert-Issuer: {}\r\nX-Amzn-Mtls-Clientcert-Subject: {}\r\nX-Amzn-Mtls-Clientcert-Validity: NotBefore={};NotAfter={}\r\nX-Amzn-Mtls-Clientcert-Leaf: ",
        leaf.serial,
        leaf.issuer,
        leaf.subject,
        leaf.not_before.iso8601(),
        leaf.not_after.iso8601()
    );
    url_encode_pem(&mut out, leaf_der);
    out.push_str("\r\n");
    Some(out.into_bytes())
}

/// The `X-Amzn-Mtls-Clientcert` line of `passthrough` mode for a chain (DER, leaf first).
pub(crate) fn passthrough_line<'a>(chain: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = String::from("X-Amzn-Mtls-Clientcert: ");
    for der in chain {
        url_encode_pem(&mut out, der);
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// Whether a request field's name is one of the `X-Amzn-Mtls-Clientcert*` names.
#[inline]
pub(crate) fn is_mtls_header(name: &[u8]) -> bool {
    name.len() >= HEADER_PREFIX.len() && name[..HEADER_PREFIX.len()].eq_ignore_ascii_case(HEADER_PREFIX)
}

/// Appends `der` as PEM, URL-encoded as ALB does (`quote(pem, safe="+=/")`: letters,
/// digits, `_.-~` and `+=/` kept, everything else `%XX`).
fn url_encode_pem(out: &mut String, der: &[u8]) {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    out.push_str("-----BEGIN%20CERTIFICATE-----%0A");
    for line in b64.as_bytes().chunks(64) {
        // Base64 is letters, digits and `+/=`: all kept.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push_str("%0A");
    }
    out.push_str("-----END%20CERTIFICATE-----%0A");
}

/// Reads the leaf fields from a certificate's DER.
pub(crate) fn parse_leaf(der: &[u8]) -> Option<Leaf> {
    let (tag, cert, _) = tlv(der)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, tbs, _) = tlv(cert)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut rest = tbs;
    let (mut tag, mut value, mut next) = tlv(rest)?;
    if tag == 0xA0 {
        // [0] EXPLICIT version
        rest = next;
        (tag, value, next) = tlv(rest)?;
    }
    if tag != INTEGER {
        return None;
    }
    let serial = serial_hex(value);
    let (_, _, after_sig_alg) = tlv(next)?;
    let (tag, issuer, after_issuer) = tlv(after_sig_alg)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, validity, after_validity) = tlv(after_issuer)?;
    if tag != SEQUENCE {
        return None;
    }
    let (nb_tag, nb, after_nb) = tlv(validity)?;
    let (na_tag, na, _) = tlv(after_nb)?;
    let (tag, subject, _) = tlv(after_validity)?;
    if tag != SEQUENCE {
        return None;
    }
    Some(Leaf {
        serial,
        issuer: rfc2253(issuer)?,
        subject: rfc2253(subject)?,
        not_before: time(nb_tag, nb)?,
        not_after: time(na_tag, na)?,
    })
}

const INTEGER: u8 = 0x02;
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// One DER element: (tag, contents, what follows). Single-byte tags, definite lengths.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

fn serial_hex(value: &[u8]) -> String {
    let value = match value {
        [0, second, ..] if *second >= 0x80 => &value[1..],
        _ => value,
    };
    let mut s = String::with_capacity(value.len() * 2);
    for b in value {
        let _ = write!(s, "{b:02X}");
    }
    s
}

/// A DER time as ALB prints it.
fn time(tag: u8, value: &[u8]) -> Option<Time> {
    let digits = |s: &[u8]| -> Option<u32> {
        s.iter().try_fold(0u32, |acc, b| {
            b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
        })
    };
    let (year, rest) = match tag {
        UTC_TIME if value.len() >= 13 => {
            let yy = digits(&value[..2])?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &value[2..])
        }
        GENERALIZED_TIME if value.len() >= 15 => (digits(&value[..4])?, &value[4..]),
        _ => return None,
    };
    Some(Time {
        year,
        month: digits(&rest[0..2])?,
        day: digits(&rest[2..4])?,
        hour: digits(&rest[4..6])?,
        minute: digits(&rest[6..8])?,
        second: digits(&rest[8..10])?,
    })
}

/// A Name in RFC 2253 form: RDNs last to first, `,` between them, `+` inside a multi-
/// valued one; well-known attribute types by short name, others by dotted OID with the
/// value as `#` and its DER in hex.
fn rfc2253(name: &[u8]) -> Option<String> {
    let mut rdns = Vec::new();
    let mut rest = name;
    while !rest.is_empty() {
        let (tag, set, next) = tlv(rest)?;
        if tag != SET {
            return None;
        }
        let mut parts = Vec::new();
        let mut inner = set;
        while !inner.is_empty() {
            let (tag, atv, after) = tlv(inner)?;
            if tag != SEQUENCE {
                return None;
            }
            let (tag, oid, value_tlv) = tlv(atv)?;
            if tag != OID {
                return None;
            }
            let (vtag, value, _) = tlv(value_tlv)?;
            let mut part = String::new();
            match short_name(oid) {
                Some(short) => {
                    part.push_str(short);
                    part.push('=');
                    match string_value(vtag, value) {
                        Some(text) => escape_value(&mut part, &text),
                        None => hex_value(&mut part, value_tlv),
                    }
                }
                None => {
                    part.push_str(&dotted(oid)?);
                    part.push('=');
                    hex_value(&mut part, value_tlv);
                }
            }
            parts.push(part);
            inner = after;
        }
        rdns.push(parts.join("+"));
        rest = next;
    }
    rdns.reverse();
    Some(rdns.join(","))
}

fn short_name(oid: &[u8]) -> Option<&'static str> {
    Some(match oid {
        [0x55, 0x04, 0x03] => "CN",
        [0x55, 0x04, 0x07] => "L",
        [0x55, 0x04, 0x08] => "ST",
        [0x55, 0x04, 0x0A] => "O",
        [0x55, 0x04, 0x0B] => "OU",
        [0x55, 0x04, 0x06] => "C",
        [0x55, 0x04, 0x09] => "STREET",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xF2, 0x2C, 0x64, 0x01, 0x19] => "DC",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xF2, 0x2C, 0x64, 0x01, 0x01] => "UID",
        _ => return None,
    })
}

fn dotted(oid: &[u8]) -> Option<String> {
    let (&first, rest) = oid.split_first()?;
    let mut out = format!("{}.{}", first / 40, first % 40);
    let mut acc: u64 = 0;
    for &b in rest {
        acc = acc.checked_mul(128)? | u64::from(b & 0x7F);
        if b & 0x80 == 0 {
            let _ = write!(out, ".{acc}");
            acc = 0;
        }
    }
    Some(out)
}

/// A directory string's text: UTF8String, PrintableString, IA5String, TeletexString
/// (read as Latin-1), BMPString (UTF-16BE).
fn string_value(tag: u8, value: &[u8]) -> Option<String> {
    match tag {
        0x0C | 0x13 | 0x16 => std::str::from_utf8(value).ok().map(str::to_owned),
        0x14 => Some(value.iter().map(|&b| char::from(b)).collect()),
        0x1E => {
            let units: Vec<u16> = value
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

/// RFC 2253 §2.4 escaping, and (as OpenSSL's RFC 2253 form does) control and non-ASCII
/// bytes as `\XX`: the result is always a valid header value.
fn escape_value(out: &mut String, text: &str) {
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let special = matches!(b, b',' | b'+' | b'"' | b'\\' | b'<' | b'>' | b';')
            || (i == 0 && (b == b'#' || b == b' '))
            || (i == bytes.len() - 1 && b == b' ');
        if special {
            out.push('\\');
            out.push(char::from(b));
        } else if !(0x20..0x7F).contains(&b) {
            let _ = write!(out, "\\{b:02X}");
        } else {
            out.push(char::from(b));
        }
    }
}

fn hex_value(out: &mut String, der: &[u8]) {
    out.push('#');
    // The whole element: tag, length and contents.
    let len = tlv(der)
        .map(|(_, _, rest)| der.len() - rest.len())
        .unwrap_or(der.len());
    for b in &der[..len] {
        let _ = write!(out, "{b:02x}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_and_reversed() {
        // SEQUENCE { SET { C=US }, SET { O="A, B" }, SET { CN=#x } }
        let c = [
            0x31, 0x0B, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x06, 0x13, 0x02, b'U', b'S',
        ];
        let o = [
            0x31, 0x0D, 0x30, 0x0B, 0x06, 0x03, 0x55, 0x04, 0x0A, 0x0C, 0x04, b'A', b',', b' ', b'B',
        ];
        let cn = [
            0x31, 0x0B, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0C, 0x02, b'#', b'x',
        ];
        let name: Vec<u8> = [&c[..], &o[..], &cn[..]].concat();
        assert_eq!(rfc2253(&name).as_deref(), Some("CN=\\#x,O=A\\, B,C=US"));
        let ctrl = [
            0x31, 0x0B, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0C, 0x02, b'\r', b'\n',
        ];
        assert_eq!(rfc2253(&ctrl).as_deref(), Some("CN=\\0D\\0A"));
        let other = [
            0x31, 0x0A, 0x30, 0x08, 0x06, 0x02, 0x2A, 0x03, 0x0C, 0x02, b'h', b'i',
        ];
        assert_eq!(rfc2253(&other).as_deref(), Some("1.2.3=#0c026869"));
    }

    #[test]
    fn serials_drop_the_sign_byte_and_times_convert() {
        assert_eq!(serial_hex(&[0x00, 0x9A, 0x01]), "9A01");
        assert_eq!(serial_hex(&[0x03, 0xA5]), "03A5");
        let t = time(UTC_TIME, b"230921015017Z");
        assert_eq!(t.map(|t| t.iso8601()).as_deref(), Some("2023-09-21T01:50:17Z"));
        assert_eq!(t.map(|t| t.unix()), Some(1_695_261_017));
        let g = time(GENERALIZED_TIME, b"20500101000000Z");
        assert_eq!(g.map(|t| t.iso8601()).as_deref(), Some("2050-01-01T00:00:00Z"));
        assert_eq!(time(UTC_TIME, b"23x9"), None);
    }

    #[test]
    fn garbage_is_none_not_a_panic() {
        for bytes in [
            &b""[..],
            b"\x30",
            b"\x30\x84\xff\xff\xff\xff",
            b"\x30\x03\x30\x01",
        ] {
            assert_eq!(parse_leaf(bytes), None);
        }
        assert!(is_mtls_header(b"X-Amzn-Mtls-Clientcert-Leaf"));
        assert!(is_mtls_header(b"x-amzn-mtls-clientcert"));
        assert!(!is_mtls_header(b"x-amzn-mtls"));
    }

    #[test]
    fn pem_is_url_encoded_as_alb_does() {
        let line = passthrough_line([&[0xFBu8, 0xFF][..]]);
        assert_eq!(
            String::from_utf8_lossy(&line),
            "X-Amzn-Mtls-Clientcert: -----BEGIN%20CERTIFICATE-----%0A+/8=%0A-----END%20CERTIFICATE-----%0A\r\n"
        );
    }
}
