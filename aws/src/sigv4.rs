//! Signature Version 4 verification: the canonical request, the string to sign and the
//! signing key, computed as botocore computes them when it signs, then compared with the
//! request's `Authorization` header.
//!
//! The server passes the request as received (raw path and query, every header, the
//! body) and the secret of the access key the header names; [`verify`] also checks the
//! credential scope against the region and service expected and the clock skew, as AWS
//! does (15 minutes). [`Authorization::parse`] alone gives the credential scope, which the
//! API routes by before any secret is known.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::{digest, hmac};

use crate::hex;
use crate::query::{decode_form, encode_component};

/// The only algorithm SigV4 defines for requests.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// AWS refuses a request whose `X-Amz-Date` is further than this from its clock.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(15 * 60);
/// The payload hash a client may announce instead of the body's digest.
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// A request as received: everything SigV4 covers.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// `POST`.
    pub method: &'a str,
    /// The path as sent, percent-encoding included (`/`).
    pub path: &'a str,
    /// The query string as sent, without `?` (often empty).
    pub query: &'a str,
    /// Every header, names in any case, in the order received.
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

impl<'a> SignedRequest<'a> {
    /// The values of a header, in order.
    fn header_values<'n>(&self, name: &'n str) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    fn header(&self, name: &str) -> Option<&'a str> {
        self.header_values(name).next()
    }
}

/// Why a signature is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigError {
    /// No `Authorization` header.
    Missing,
    /// The header, the date or the credential cannot be read.
    Malformed(String),
    /// The access key id is not known.
    UnknownAccessKey(String),
    /// The credential is scoped to another region or service, or another day than
    /// `X-Amz-Date`.
    WrongScope(String),
    /// `X-Amz-Date` is too far from now.
    Expired(String),
    /// The signature does not match the request.
    Mismatch,
}

impl SigError {
    /// The Query protocol's error code (ELBv2).
    pub fn query_code(&self) -> &'static str {
        match self {
            SigError::Missing => "MissingAuthenticationToken",
            SigError::Malformed(_) => "IncompleteSignature",
            SigError::UnknownAccessKey(_) => "InvalidClientTokenId",
            SigError::WrongScope(_) | SigError::Expired(_) | SigError::Mismatch => "SignatureDoesNotMatch",
        }
    }

    /// The JSON protocol's error type (ECS).
    pub fn json_type(&self) -> &'static str {
        match self {
            SigError::Missing => "MissingAuthenticationTokenException",
            SigError::Malformed(_) => "IncompleteSignatureException",
            SigError::UnknownAccessKey(_) => "UnrecognizedClientException",
            SigError::WrongScope(_) | SigError::Mismatch => "InvalidSignatureException",
            SigError::Expired(_) => "InvalidSignatureException",
        }
    }
}

impl fmt::Display for SigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SigError::Missing => f.write_str("Missing Authentication Token"),
            SigError::Malformed(m) => write!(f, "Authorization header malformed: {m}"),
            SigError::UnknownAccessKey(k) => {
                write!(f, "The security token included in the request is invalid ({k})")
            }
            SigError::WrongScope(m) => write!(f, "Credential should be scoped correctly: {m}"),
            SigError::Expired(m) => write!(f, "Signature expired: {m}"),
            SigError::Mismatch => f.write_str(
                "The request signature we calculated does not match the signature you provided. \
                 Check your AWS Secret Access Key and signing method.",
            ),
        }
    }
}

impl std::error::Error for SigError {}

/// The `Authorization` header of a SigV4-signed request:
/// `AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/elasticloadbalancing/aws4_request,
/// SignedHeaders=host;x-amz-date, Signature=…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub access_key_id: String,
    /// `YYYYMMDD`.
    pub date: String,
    pub region: String,
    pub service: String,
    /// Lower-case names, as listed.
    pub signed_headers: Vec<String>,
    /// Lower-case hex.
    pub signature: String,
}

impl Authorization {
    /// The request's `Authorization` header, read; [`SigError::Missing`] without one.
    pub fn of(req: &SignedRequest<'_>) -> Result<Authorization, SigError> {
        match req.header("authorization") {
            None => Err(SigError::Missing),
            Some(v) => Authorization::parse(v),
        }
    }

    /// Reads the header's value.
    pub fn parse(value: &str) -> Result<Authorization, SigError> {
        let malformed = |m: &str| SigError::Malformed(m.to_owned());
        let rest = value
            .trim()
            .strip_prefix(ALGORITHM)
            .ok_or_else(|| malformed("the algorithm must be AWS4-HMAC-SHA256"))?;
        let (mut credential, mut signed, mut signature) = (None, None, None);
        for part in rest.split(',') {
            let (k, v) = part
                .trim()
                .split_once('=')
                .ok_or_else(|| malformed("expected Name=value parts"))?;
            match k.trim() {
                "Credential" => credential = Some(v.trim()),
                "SignedHeaders" => signed = Some(v.trim()),
                "Signature" => signature = Some(v.trim()),
                _ => {}
            }
        }
        let credential = credential.ok_or_else(|| malformed("no Credential"))?;
        let signed = signed.ok_or_else(|| malformed("no SignedHeaders"))?;
        let signature = signature.ok_or_else(|| malformed("no Signature"))?;
        let parts: Vec<&str> = credential.split('/').collect();
        let [key, date, region, service, "aws4_request"] = parts.as_slice() else {
            return Err(malformed(
                "Credential must be KEY/DATE/REGION/SERVICE/aws4_request",
            ));
        };
        if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed("the credential date must be YYYYMMDD"));
        }
        if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(malformed("Signature must be 64 hex digits"));
        }
        Ok(Authorization {
            access_key_id: (*key).to_owned(),
            date: (*date).to_owned(),
            region: (*region).to_owned(),
            service: (*service).to_owned(),
            signed_headers: signed.split(';').map(|h| h.trim().to_ascii_lowercase()).collect(),
            signature: signature.to_ascii_lowercase(),
        })
    }

    /// `DATE/REGION/SERVICE/aws4_request`.
    pub fn scope(&self) -> String {
        format!("{}/{}/{}/aws4_request", self.date, self.region, self.service)
    }
}

/// What the credential scope and the date must be.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// `None` accepts any region.
    pub region: Option<&'a str>,
    /// `None` accepts any service.
    pub service: Option<&'a str>,
    pub now: SystemTime,
    pub max_skew: Duration,
}

/// Verifies `req`'s signature made with `secret`, the secret of `auth.access_key_id`.
pub fn verify(
    req: &SignedRequest<'_>,
    auth: &Authorization,
    secret: &str,
    expect: &Expect<'_>,
) -> Result<(), SigError> {
    if let Some(region) = expect.region {
        if auth.region != region {
            return Err(SigError::WrongScope(format!(
                "region `{}`, expected `{region}`",
                auth.region
            )));
        }
    }
    if let Some(service) = expect.service {
        if auth.service != service {
            return Err(SigError::WrongScope(format!(
                "service `{}`, expected `{service}`",
                auth.service
            )));
        }
    }
    let amz_date = req
        .header("x-amz-date")
        .ok_or_else(|| SigError::Malformed("no X-Amz-Date header".into()))?
        .trim();
    let signed_at = parse_amz_date(amz_date)
        .ok_or_else(|| SigError::Malformed(format!("X-Amz-Date `{amz_date}` is not YYYYMMDDTHHMMSSZ")))?;
    if !amz_date.starts_with(&auth.date) {
        return Err(SigError::WrongScope(format!(
            "credential date {} is not the day of {amz_date}",
            auth.date
        )));
    }
    let now = expect
        .now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if now.abs_diff(signed_at) > expect.max_skew.as_secs() {
        return Err(SigError::Expired(format!(
            "{amz_date} is more than {} s from the server's time",
            expect.max_skew.as_secs()
        )));
    }
    if !auth.signed_headers.iter().any(|h| h == "host") {
        return Err(SigError::Malformed("the host header must be signed".into()));
    }
    let body_hash = hex::encode(digest::digest(&digest::SHA256, req.body).as_ref());
    let payload_hash = match req.header("x-amz-content-sha256") {
        Some(announced) if announced == UNSIGNED_PAYLOAD => UNSIGNED_PAYLOAD.to_owned(),
        Some(announced) if !announced.eq_ignore_ascii_case(&body_hash) => return Err(SigError::Mismatch),
        _ => body_hash,
    };
    let canonical = canonical_request(req, &auth.signed_headers, &payload_hash)?;
    let to_sign = string_to_sign(amz_date, &auth.scope(), &canonical);
    let key = signing_key(secret, &auth.date, &auth.region, &auth.service);
    let given = decode_hex(&auth.signature).ok_or(SigError::Mismatch)?;
    // ring compares in constant time: the signature is derived from the secret.
    hmac::verify(
        &hmac::Key::new(hmac::HMAC_SHA256, &key),
        to_sign.as_bytes(),
        &given,
    )
    .map_err(|_| SigError::Mismatch)
}

/// The canonical request: method, canonical URI, canonical query, canonical headers,
/// signed headers, payload hash, one per line.
pub fn canonical_request(
    req: &SignedRequest<'_>,
    signed_headers: &[String],
    payload_hash: &str,
) -> Result<String, SigError> {
    let mut headers = String::new();
    for name in signed_headers {
        let values: Vec<String> = req
            .header_values(name)
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        if values.is_empty() {
            return Err(SigError::Malformed(format!(
                "signed header `{name}` is not in the request"
            )));
        }
        headers.push_str(name);
        headers.push(':');
        headers.push_str(&values.join(","));
        headers.push('\n');
    }
    Ok(format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        canonical_uri(req.path),
        canonical_query(req.query)?,
        headers,
        signed_headers.join(";"),
        payload_hash
    ))
}

/// `AWS4-HMAC-SHA256\nDATE\nSCOPE\nhex(sha256(canonical request))`.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    let hash = hex::encode(digest::digest(&digest::SHA256, canonical_request.as_bytes()).as_ref());
    format!("{ALGORITHM}\n{amz_date}\n{scope}\n{hash}")
}

/// HMAC chain: `AWS4`+secret → date → region → service → `aws4_request`.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let mut key = format!("AWS4{secret}").into_bytes();
    for part in [date, region, service, "aws4_request"] {
        key = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key), part.as_bytes())
            .as_ref()
            .to_vec();
    }
    key
}

/// The signature a request would carry: for clients and tests.
pub fn signature(
    req: &SignedRequest<'_>,
    auth: &Authorization,
    secret: &str,
    amz_date: &str,
) -> Result<String, SigError> {
    let payload_hash = hex::encode(digest::digest(&digest::SHA256, req.body).as_ref());
    let canonical = canonical_request(req, &auth.signed_headers, &payload_hash)?;
    let key = signing_key(secret, &auth.date, &auth.region, &auth.service);
    let to_sign = string_to_sign(amz_date, &auth.scope(), &canonical);
    Ok(hex::encode(
        hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key), to_sign.as_bytes()).as_ref(),
    ))
}

/// The path with dot segments and empty segments removed (botocore normalizes so), then
/// URI-encoded again (all but unreserved characters and `/`).
fn canonical_uri(path: &str) -> String {
    let path = if path.is_empty() { "/" } else { path };
    let mut segments: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::from("/");
    out.push_str(
        &segments
            .iter()
            .map(|s| encode_component(s))
            .collect::<Vec<_>>()
            .join("/"),
    );
    if path.ends_with('/') && !segments.is_empty() {
        out.push('/');
    }
    out
}

/// Every pair decoded then encoded as SigV4 wants, sorted by name then value.
fn canonical_query(query: &str) -> Result<String, SigError> {
    // `+` in a query string sent by an AWS client is a literal plus (they encode spaces
    // as %20), so it is protected from form decoding.
    let protected = query.replace('+', "%2B");
    let pairs = decode_form(&protected).map_err(|e| SigError::Malformed(e.to_string()))?;
    let mut encoded: Vec<(String, String)> = pairs
        .into_iter()
        .map(|(k, v)| (encode_component(&k), encode_component(&v)))
        .collect();
    encoded.sort();
    Ok(encoded
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&"))
}

/// `YYYYMMDDTHHMMSSZ` as seconds since the epoch.
fn parse_amz_date(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u64> { std::str::from_utf8(&b[r]).ok()?.parse().ok() };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, s) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    Some(days_from_civil(y, mo, d)? * 86_400 + h * 3600 + mi * 60 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: u64, m: u64, d: u64) -> Option<u64> {
    let y = if m <= 2 { y.checked_sub(1)? } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).checked_sub(719_468)
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
#[path = "sigv4_tests.rs"]
mod tests;
