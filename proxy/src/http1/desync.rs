//! ALB's desync mitigation: every request is classified Compliant, Acceptable, Ambiguous or
//! Severe with one of ALB's reason codes (the rules of aws/http-desync-guardian, which ALB
//! runs), and the listener's `desync_mitigation_mode` turns the class into a verdict.
//!
//! The classification follows desync-guardian's order: header fields one by one (their
//! characters, empty names, look-alikes of the framing fields), then `Transfer-Encoding` and
//! `Content-Length` together, then the method, the version and the target. The first reason
//! of the highest class found is the one reported.
//!
//! What hostalb can forward at all is decided elsewhere (the codec's framing): the class
//! says how dangerous a request looks to the servers behind hostalb, not whether hostalb
//! itself can read it. hostalb always re-serialises what it forwards with one framing field
//! of its own, so an Ambiguous request reaches the target unambiguous; closing both
//! connections afterwards is what protects a layer in front of hostalb that may have read
//! the request differently.

use hostalb_config::DesyncMitigationMode;

use super::FieldKind;
use super::fields::HeaderField;
use super::{is_tchar, trim_ows};

/// desync-guardian's tiers, in rising order of danger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) enum Class {
    /// RFC 9112 compliant.
    #[default]
    Compliant,
    /// Not compliant, but no server is known to read it differently.
    Acceptable,
    /// Servers may disagree about it (request boundaries in particular).
    Ambiguous,
    /// Malformed or crafted to split requests.
    Severe,
}

/// ALB's classification reason codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    GetHeadZeroContentLength,
    NonCompliantHeader,
    NonCompliantVersion,
    SpaceInUri,
    AmbiguousUri,
    BothTeClPresent,
    DuplicateContentLength,
    EmptyHeader,
    SuspiciousHeader,
    UndefinedContentLengthSemantics,
    UndefinedTransferEncodingSemantics,
    BadContentLength,
    BadHeader,
    BadTransferEncoding,
    BadUri,
    BadMethod,
    BadVersion,
    MultipleContentLength,
    MultipleTransferEncodingChunked,
}

impl Reason {
    /// The table: each reason's class, as ALB documents it.
    pub(crate) fn class(self) -> Class {
        use Reason::*;
        match self {
            GetHeadZeroContentLength | NonCompliantHeader | NonCompliantVersion | SpaceInUri => {
                Class::Acceptable
            }
            AmbiguousUri
            | BothTeClPresent
            | DuplicateContentLength
            | EmptyHeader
            | SuspiciousHeader
            | UndefinedContentLengthSemantics
            | UndefinedTransferEncodingSemantics => Class::Ambiguous,
            BadContentLength
            | BadHeader
            | BadTransferEncoding
            | BadUri
            | BadMethod
            | BadVersion
            | MultipleContentLength
            | MultipleTransferEncodingChunked => Class::Severe,
        }
    }

    /// The code as ALB writes it in `classification_reason`.
    pub(crate) fn as_str(self) -> &'static str {
        use Reason::*;
        match self {
            GetHeadZeroContentLength => "GetHeadZeroContentLength",
            NonCompliantHeader => "NonCompliantHeader",
            NonCompliantVersion => "NonCompliantVersion",
            SpaceInUri => "SpaceInUri",
            AmbiguousUri => "AmbiguousUri",
            BothTeClPresent => "BothTeClPresent",
            DuplicateContentLength => "DuplicateContentLength",
            EmptyHeader => "EmptyHeader",
            SuspiciousHeader => "SuspiciousHeader",
            UndefinedContentLengthSemantics => "UndefinedContentLengthSemantics",
            UndefinedTransferEncodingSemantics => "UndefinedTransferEncodingSemantics",
            BadContentLength => "BadContentLength",
            BadHeader => "BadHeader",
            BadTransferEncoding => "BadTransferEncoding",
            BadUri => "BadUri",
            BadMethod => "BadMethod",
            BadVersion => "BadVersion",
            MultipleContentLength => "MultipleContentLength",
            MultipleTransferEncodingChunked => "MultipleTransferEncodingChunked",
        }
    }
}

/// A request's class and the reason for it (`None` when compliant): what the access log
/// writes as `classification` and `classification_reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Classification {
    pub(crate) class: Class,
    pub(crate) reason: Option<&'static str>,
}

impl Class {
    /// The access log's `classification`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Class::Compliant => "Compliant",
            Class::Acceptable => "Acceptable",
            Class::Ambiguous => "Ambiguous",
            Class::Severe => "Severe",
        }
    }
}

impl Classification {
    /// The access log's `classification` and `classification_reason`; `None` (both `-`)
    /// when compliant.
    pub(crate) fn logged(self) -> Option<(&'static str, &'static str)> {
        (!self.is_compliant()).then(|| (self.class.as_str(), self.reason.unwrap_or("-")))
    }

    /// Records a finding: it becomes the classification only when its class is higher
    /// than every earlier finding's (so the first reason of the highest class wins).
    pub(crate) fn raise(&mut self, reason: Reason) {
        let class = reason.class();
        if class > self.class {
            self.class = class;
            self.reason = Some(reason.as_str());
        }
    }

    pub(crate) fn raise_opt(&mut self, reason: Option<Reason>) {
        if let Some(r) = reason {
            self.raise(r);
        }
    }

    pub(crate) fn is_compliant(self) -> bool {
        self.class == Class::Compliant
    }
}

/// What happens to a request hostalb can forward, by class and mode (alb-spec §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Forward,
    /// Forward, then close the client connection and the target connection.
    ForwardThenClose,
    /// Answer 400 and close.
    Block,
}

/// ALB's table: monitor allows everything; defensive allows Compliant and Acceptable,
/// forwards Ambiguous and then closes both connections, blocks Severe; strictest allows
/// only Compliant.
pub(crate) fn verdict(mode: DesyncMitigationMode, class: Class) -> Verdict {
    use DesyncMitigationMode::*;
    match (mode, class) {
        (_, Class::Compliant) | (Monitor, _) | (Defensive, Class::Acceptable) => Verdict::Forward,
        (Defensive, Class::Ambiguous) => Verdict::ForwardThenClose,
        (Defensive, Class::Severe) | (Strictest, _) => Verdict::Block,
    }
}

/// How a header name or value reads, character by character.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Chars {
    Clean,
    /// A character RFC 9110 does not allow here, but not one that ends a line.
    NonCompliant,
    /// NUL, CR or LF: never in a field, never written by hostalb.
    Bad,
}

/// NUL, CR and LF: the characters that split or end lines for some parser.
#[inline]
pub(crate) fn is_line_breaking(b: u8) -> bool {
    matches!(b, 0 | b'\r' | b'\n')
}

/// A field name: a token, else non-compliant, else bad.
pub(crate) fn name_chars(name: &[u8]) -> Chars {
    let mut worst = Chars::Clean;
    for &b in name {
        if is_line_breaking(b) {
            return Chars::Bad;
        }
        if !is_tchar(b) {
            worst = Chars::NonCompliant;
        }
    }
    worst
}

/// A field value: visible ASCII, SP, HTAB and obs-text are clean; other controls are
/// non-compliant; NUL, CR and LF are bad.
pub(crate) fn value_chars(value: &[u8]) -> Chars {
    let mut worst = Chars::Clean;
    for &b in value {
        if is_line_breaking(b) {
            return Chars::Bad;
        }
        if !(b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80) {
            worst = Chars::NonCompliant;
        }
    }
    worst
}

/// What one byte of a request target says: `None` when it is a byte a URI may carry
/// (visible ASCII and, as ALB allows, bytes from 0x80).
#[inline]
pub(crate) fn target_byte(b: u8) -> Option<Reason> {
    match b {
        0x21..=0x7e | 0x80..=0xff => None,
        b' ' => Some(Reason::SpaceInUri),
        0 | b'\r' | b'\n' => Some(Reason::BadUri),
        _ => Some(Reason::AmbiguousUri),
    }
}

/// The finding for a whole target: its worst byte (the first bad byte stops the scan, as
/// nothing after it matters).
pub(crate) fn target_finding(target: &[u8]) -> Option<Reason> {
    let mut worst: Option<Reason> = None;
    for &b in target {
        if let Some(r) = target_byte(b) {
            if r == Reason::BadUri {
                return Some(r);
            }
            if worst.is_none_or(|w| r.class() > w.class()) {
                worst = Some(r);
            }
        }
    }
    worst
}

/// The finding for a method: every byte a token character, else BadMethod.
pub(crate) fn method_finding(method: &[u8]) -> Option<Reason> {
    (!method.iter().all(|b| is_tchar(*b))).then_some(Reason::BadMethod)
}

/// Which framing field a name imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Imitates {
    TransferEncoding,
    ContentLength,
}

/// The letters and digits of each framing field's name, in order.
const TE_LETTERS: &[u8] = b"transferencoding";
const CL_LETTERS: &[u8] = b"contentlength";

/// Whether `name` (not itself a framing field) reads as `Transfer-Encoding` or
/// `Content-Length` after a normalisation some server is known to apply: dropping
/// everything but letters and digits (delimiters, spaces, controls, non-ASCII), folding
/// the two non-ASCII letters that upper-case to ASCII (`ſ` to S, `ı` to I), or cutting the
/// name at the first space or control character.
pub(crate) fn imitates(name: &[u8]) -> Option<Imitates> {
    // Fewer bytes than the shorter name's letters cannot spell it: most names stop here.
    if name.len() < CL_LETTERS.len() {
        return None;
    }
    let first = name.iter().find(|b| b.is_ascii_alphanumeric())?;
    if !matches!(first.to_ascii_lowercase(), b't' | b'c') {
        return None;
    }
    let word_start = name
        .iter()
        .position(|b| b.is_ascii_alphanumeric())
        .unwrap_or(name.len());
    let word_len = name[word_start..]
        .iter()
        .position(|b| *b <= b' ' || *b == 0x7f)
        .unwrap_or(name.len() - word_start);
    let word = &name[word_start..word_start + word_len];
    for (letters, which) in [
        (TE_LETTERS, Imitates::TransferEncoding),
        (CL_LETTERS, Imitates::ContentLength),
    ] {
        if spells(name, letters) || spells(word, letters) {
            return Some(which);
        }
    }
    None
}

/// Whether the ASCII letters and digits of `name` (lower-cased, with `ſ` as s and `ı` as
/// i) are exactly `letters`.
fn spells(name: &[u8], letters: &[u8]) -> bool {
    let mut want = letters.iter();
    let mut i = 0;
    while i < name.len() {
        let b = name[i];
        let got = if b.is_ascii_alphanumeric() {
            Some(b.to_ascii_lowercase())
        } else if name[i..].starts_with(&[0xc5, 0xbf]) {
            i += 1;
            Some(b's')
        } else if name[i..].starts_with(&[0xc4, 0xb1]) {
            i += 1;
            Some(b'i')
        } else {
            None
        };
        if let Some(g) = got {
            if want.next() != Some(&g) {
                return false;
            }
        }
        i += 1;
    }
    want.next().is_none()
}

/// One element of a `Transfer-Encoding` list, as desync-guardian reads it: trimmed, its
/// parameters ignored, one of the registered codings or bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coding {
    Chunked,
    /// `compress`, `deflate`, `gzip` or `identity`.
    Registered,
    Unknown,
}

pub(crate) fn coding(element: &[u8]) -> Coding {
    let element = trim_ows(element);
    let name = trim_ows(element.split(|b| *b == b';').next().unwrap_or_default());
    if name.eq_ignore_ascii_case(b"chunked") {
        Coding::Chunked
    } else if [&b"compress"[..], b"deflate", b"gzip", b"identity"]
        .iter()
        .any(|c| name.eq_ignore_ascii_case(c))
    {
        Coding::Registered
    } else {
        Coding::Unknown
    }
}

/// A `Content-Length` value as desync-guardian reads it: digits between optional SP/HTAB,
/// without overflow. An empty value is refused too (RFC 9110: 1*DIGIT).
pub(crate) fn content_length(value: &[u8]) -> Option<u64> {
    super::parse_content_length(trim_ows(value))
}

/// The first half of the classification: every header field in order. Marks look-alikes
/// of the framing fields and fields without a name (hostalb never forwards either).
/// `check_chars`: the parser did not already guarantee clean names and values. Returns
/// whether a field carries NUL, CR or LF (such a request cannot be forwarded).
pub(crate) fn check_fields(
    buf: &[u8],
    fields: &mut [HeaderField],
    check_chars: bool,
    c: &mut Classification,
) -> bool {
    let mut bad = false;
    for f in fields.iter_mut() {
        let name = f.name.get(buf);
        let chars = if check_chars {
            name_chars(name).max(value_chars(f.value.get(buf)))
        } else {
            Chars::Clean
        };
        match chars {
            Chars::Bad => {
                bad = true;
                c.raise(Reason::BadHeader);
            }
            Chars::NonCompliant => c.raise(Reason::NonCompliantHeader),
            Chars::Clean => {}
        }
        if trim_ows(name).is_empty() {
            f.kind = FieldKind::Nameless;
            c.raise(Reason::EmptyHeader);
        } else if f.kind == FieldKind::Other && chars != Chars::Bad {
            match imitates(name) {
                Some(Imitates::TransferEncoding) => f.kind = FieldKind::LooksLikeTransferEncoding,
                Some(Imitates::ContentLength) => f.kind = FieldKind::LooksLikeContentLength,
                None => continue,
            }
            c.raise(Reason::SuspiciousHeader);
        }
    }
    bad
}

/// The request facts the framing checks depend on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FramingContext<'a> {
    pub(crate) method: &'a [u8],
    /// HTTP/1.0 or older: `Transfer-Encoding` has no defined meaning.
    pub(crate) before_1_1: bool,
    /// HTTP/0.9: `Content-Length` has none either.
    pub(crate) before_1_0: bool,
}

/// The second half: `Transfer-Encoding` and `Content-Length` together, look-alikes
/// included (a server that normalises a look-alike sees a framing field).
pub(crate) fn check_framing(
    buf: &[u8],
    fields: &[HeaderField],
    cx: FramingContext<'_>,
    c: &mut Classification,
) {
    let is_te = |f: &&HeaderField| {
        matches!(
            f.kind,
            FieldKind::TransferEncoding | FieldKind::LooksLikeTransferEncoding
        )
    };
    let is_cl = |f: &&HeaderField| {
        matches!(
            f.kind,
            FieldKind::ContentLength | FieldKind::LooksLikeContentLength
        )
    };
    let has_te = fields.iter().any(|f| is_te(&f));
    let has_cl = fields.iter().any(|f| is_cl(&f));
    if !has_te && !has_cl {
        return;
    }
    if cx.before_1_1 && has_te {
        c.raise(Reason::UndefinedTransferEncodingSemantics);
        return;
    }
    if cx.before_1_0 && has_cl {
        c.raise(Reason::UndefinedContentLengthSemantics);
        return;
    }
    let mut chunked = 0usize;
    for f in fields.iter().filter(is_te) {
        for element in f.value.get(buf).split(|b| *b == b',') {
            match coding(element) {
                Coding::Chunked => {
                    chunked += 1;
                    if chunked > 1 {
                        c.raise(Reason::MultipleTransferEncodingChunked);
                    }
                }
                Coding::Registered => {}
                Coding::Unknown => c.raise(Reason::BadTransferEncoding),
            }
        }
    }
    let mut length: Option<u64> = None;
    for f in fields.iter().filter(is_cl) {
        match (content_length(f.value.get(buf)), length) {
            (None, _) => c.raise(Reason::BadContentLength),
            (Some(n), None) => length = Some(n),
            (Some(n), Some(first)) if n == first => c.raise(Reason::DuplicateContentLength),
            (Some(_), Some(_)) => c.raise(Reason::MultipleContentLength),
        }
    }
    if matches!(cx.method, b"GET" | b"HEAD") {
        if has_te {
            c.raise(Reason::UndefinedTransferEncodingSemantics);
        }
        match length {
            Some(0) => c.raise(Reason::GetHeadZeroContentLength),
            Some(_) => c.raise(Reason::UndefinedContentLengthSemantics),
            None => {}
        }
    }
    if has_te && length.is_some() {
        c.raise(Reason::BothTeClPresent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::fields::Span;

    #[test]
    fn every_reason_has_alb_class() {
        use Reason::*;
        let table = [
            (GetHeadZeroContentLength, Class::Acceptable),
            (NonCompliantHeader, Class::Acceptable),
            (NonCompliantVersion, Class::Acceptable),
            (SpaceInUri, Class::Acceptable),
            (AmbiguousUri, Class::Ambiguous),
            (BothTeClPresent, Class::Ambiguous),
            (DuplicateContentLength, Class::Ambiguous),
            (EmptyHeader, Class::Ambiguous),
            (SuspiciousHeader, Class::Ambiguous),
            (UndefinedContentLengthSemantics, Class::Ambiguous),
            (UndefinedTransferEncodingSemantics, Class::Ambiguous),
            (BadContentLength, Class::Severe),
            (BadHeader, Class::Severe),
            (BadTransferEncoding, Class::Severe),
            (BadUri, Class::Severe),
            (BadMethod, Class::Severe),
            (BadVersion, Class::Severe),
            (MultipleContentLength, Class::Severe),
            (MultipleTransferEncodingChunked, Class::Severe),
        ];
        for (r, class) in table {
            assert_eq!(r.class(), class, "{r:?}");
            assert_eq!(r.as_str(), format!("{r:?}"));
        }
    }

    #[test]
    fn first_reason_of_the_highest_class_wins() {
        let mut c = Classification::default();
        assert!(c.is_compliant());
        c.raise(Reason::NonCompliantHeader);
        c.raise(Reason::SpaceInUri);
        assert_eq!(c.reason, Some("NonCompliantHeader"));
        c.raise(Reason::SuspiciousHeader);
        c.raise(Reason::BothTeClPresent);
        assert_eq!((c.class, c.reason), (Class::Ambiguous, Some("SuspiciousHeader")));
        c.raise(Reason::BadMethod);
        c.raise(Reason::BadUri);
        assert_eq!((c.class, c.reason), (Class::Severe, Some("BadMethod")));
    }

    #[test]
    fn modes() {
        use DesyncMitigationMode::*;
        use Verdict::*;
        let rows = [
            (Class::Compliant, [Forward, Forward, Forward]),
            (Class::Acceptable, [Forward, Forward, Block]),
            (Class::Ambiguous, [Forward, ForwardThenClose, Block]),
            (Class::Severe, [Forward, Block, Block]),
        ];
        for (class, want) in rows {
            let got = [Monitor, Defensive, Strictest].map(|m| verdict(m, class));
            assert_eq!(got, want, "{class:?}");
        }
    }

    #[test]
    fn look_alikes_of_the_framing_fields() {
        let te = Some(Imitates::TransferEncoding);
        let cl = Some(Imitates::ContentLength);
        let cases: &[(&[u8], Option<Imitates>)] = &[
            (b"Transfer-Encoding ", te),
            (b"Transfer-Encoding\t", te),
            (b"\x01Transfer-Encoding", te),
            (b"\x01\x01Content-Length", cl),
            (b"Transfer- Encoding", te),
            (b"Transfer_Encoding", te),
            (b"Content_Length", cl),
            (b"Transfer-Encoding x", te),
            (b"transfer-encoding XY", te),
            (b"Transfer-Encoding \x01", te),
            ("Tranſfer-Encoding".as_bytes(), te),
            ("Transfer-Encodıng".as_bytes(), te),
            (b"Transfer---Encoding", te),
            (b"Transfer___Encoding", te),
            ("\u{2003}Transfer-Encoding".as_bytes(), te),
            ("Content-Length\u{2003}".as_bytes(), cl),
            ("Transfer\u{2015}Encoding".as_bytes(), te),
            (b"Transfer-Encoding\x88", te),
            (b"\xa0Content-Length", cl),
            (b"Content-Length.", cl),
            (b"TRANSFER_ENCODING", te),
            // Not look-alikes.
            (b"Transfer-Encoding1", None),
            (b"transfer-encodin", None),
            (b"x_transfer_encoding", None),
            (b"Accept-Encoding", None),
            (b"Content-Type", None),
            (b"X-Content-Length", None),
            (b"Content-Length-Range", None),
            (b"Host", None),
            (b"\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t", None),
        ];
        for (name, want) in cases {
            assert_eq!(imitates(name), *want, "{:?}", String::from_utf8_lossy(name));
        }
    }

    #[test]
    fn characters() {
        assert_eq!(name_chars(b"My-Header.!#$%&'*+^_`|~09"), Chars::Clean);
        assert_eq!(name_chars(b"x-my-custom-header "), Chars::NonCompliant);
        assert_eq!(name_chars(b"\x7fname"), Chars::NonCompliant);
        assert_eq!(name_chars(b"name\r"), Chars::Bad);
        assert_eq!(name_chars(b"name\x00"), Chars::Bad);
        assert_eq!(value_chars(b"\t\tOWS \x60\x85\x93\xa0"), Chars::Clean);
        assert_eq!(value_chars(b"\x01s are non compliant"), Chars::NonCompliant);
        assert_eq!(value_chars(b"\x7f"), Chars::NonCompliant);
        assert_eq!(value_chars(b"a\x00b"), Chars::Bad);
        assert_eq!(value_chars(b"a\rb"), Chars::Bad);
    }

    #[test]
    fn targets_and_methods() {
        assert_eq!(target_finding(b"/foo?a=b&%dd=%ee"), None);
        assert_eq!(target_finding("/странные".as_bytes()), None);
        assert_eq!(target_finding(b"/path-%09-uri"), None);
        assert_eq!(
            target_finding(b"/a?param=not escaped spaces"),
            Some(Reason::SpaceInUri)
        );
        assert_eq!(
            target_finding(b"/endpoint_a\tHTTP/1.1"),
            Some(Reason::AmbiguousUri)
        );
        assert_eq!(target_finding(b"/a b\x01c"), Some(Reason::AmbiguousUri));
        assert_eq!(target_finding(b"/a\x7f"), Some(Reason::AmbiguousUri));
        assert_eq!(target_finding(b"/endpoint_a\x00HTTP/1.1"), Some(Reason::BadUri));
        assert_eq!(target_finding(b"/a\rb"), Some(Reason::BadUri));
        assert_eq!(method_finding(b"GET"), None);
        assert_eq!(method_finding(b"bad_method\x01"), Some(Reason::BadMethod));
        assert_eq!(method_finding(b"G(T"), Some(Reason::BadMethod));
    }

    #[test]
    fn codings() {
        assert_eq!(coding(b" CHUNKED "), Coding::Chunked);
        assert_eq!(coding(b"\t\tchunked;custom_param;\t"), Coding::Chunked);
        assert_eq!(coding(b"gzip"), Coding::Registered);
        assert_eq!(coding(b"identity"), Coding::Registered);
        assert_eq!(coding(b"xchunked"), Coding::Unknown);
        assert_eq!(coding(b"chunk"), Coding::Unknown);
        assert_eq!(coding(b""), Coding::Unknown);
        assert_eq!(coding(b"chunked\x11"), Coding::Unknown);
        assert_eq!(coding(b"\xa0chunked"), Coding::Unknown);
    }

    /// Builds `Name: value` lines into one buffer and its fields, classified by name.
    fn fields(lines: &[(&[u8], &[u8])]) -> (Vec<u8>, Vec<HeaderField>) {
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for (name, value) in lines {
            let n = buf.len();
            buf.extend_from_slice(name);
            let v = buf.len();
            buf.extend_from_slice(value);
            out.push(HeaderField {
                name: Span::new(n, v),
                value: Span::new(v, buf.len()),
                kind: FieldKind::of(name),
                connection_listed: false,
            });
        }
        (buf, out)
    }

    fn classify(method: &[u8], before_1_1: bool, lines: &[(&[u8], &[u8])]) -> Classification {
        let (buf, mut f) = fields(lines);
        let mut c = Classification::default();
        check_fields(&buf, &mut f, true, &mut c);
        let cx = FramingContext {
            method,
            before_1_1,
            before_1_0: false,
        };
        check_framing(&buf, &f, cx, &mut c);
        c
    }

    /// `(method, header lines, class, reason)`.
    type Case = (
        &'static [u8],
        &'static [(&'static [u8], &'static [u8])],
        Class,
        Option<&'static str>,
    );

    #[test]
    fn framing_fields_as_desync_guardian_reads_them() {
        let cases: &[Case] = &[
            (
                b"POST",
                &[(b"Transfer-Encoding", b"chunked")],
                Class::Compliant,
                None,
            ),
            (
                b"PUT",
                &[(b"Content-Length", b" 22220  ")],
                Class::Compliant,
                None,
            ),
            (
                b"POST",
                &[(b"Transfer-Encoding", b"gzip, chunked")],
                Class::Compliant,
                None,
            ),
            (
                b"POST",
                &[(b"Transfer-Encoding", b"chunked"), (b"Content-Length", b"100")],
                Class::Ambiguous,
                Some("BothTeClPresent"),
            ),
            (
                b"POST",
                &[(b"Transfer-Encoding", b"gzip"), (b"Content-Length", b"100")],
                Class::Ambiguous,
                Some("BothTeClPresent"),
            ),
            (
                b"PUT",
                &[(b"Content-Length", b"1000"), (b"Content-Length", b"1000")],
                Class::Ambiguous,
                Some("DuplicateContentLength"),
            ),
            (
                b"POST",
                &[(b"Content-Length", b"1000"), (b"Content-Length", b"100")],
                Class::Severe,
                Some("MultipleContentLength"),
            ),
            (
                b"POST",
                &[(b"Content-Length", b"1000,1000")],
                Class::Severe,
                Some("BadContentLength"),
            ),
            (
                b"POST",
                &[(b"Content-Length", b"1000\x11")],
                Class::Severe,
                Some("BadContentLength"),
            ),
            (
                b"POST",
                &[(b"Transfer-Encoding", b"xchunked")],
                Class::Severe,
                Some("BadTransferEncoding"),
            ),
            (
                b"POST",
                &[(b"Transfer-Encoding", b"chunked,chunked")],
                Class::Severe,
                Some("MultipleTransferEncodingChunked"),
            ),
            (
                b"POST",
                &[
                    (b"Transfer-Encoding ", b"chunked"),
                    (b"Transfer-Encoding", b"chunked"),
                ],
                Class::Severe,
                Some("MultipleTransferEncodingChunked"),
            ),
            (
                b"POST",
                &[(b"Content-Length ", b"100"), (b"Content-Length", b"1000")],
                Class::Severe,
                Some("MultipleContentLength"),
            ),
            (
                b"POST",
                &[(b"Transfer-Encoding ", b"chunked"), (b"Content-Length", b"1000")],
                Class::Ambiguous,
                Some("SuspiciousHeader"),
            ),
            (
                b"GET",
                &[(b"Content-Length", b"0")],
                Class::Acceptable,
                Some("GetHeadZeroContentLength"),
            ),
            (
                b"HEAD",
                &[(b"Content-Length", b"1000")],
                Class::Ambiguous,
                Some("UndefinedContentLengthSemantics"),
            ),
            (
                b"GET",
                &[(b"Transfer-Encoding", b"chunked")],
                Class::Ambiguous,
                Some("UndefinedTransferEncodingSemantics"),
            ),
            (
                b"GET",
                &[
                    (b"Some-Custom-Header", b"Non Rfc -Compliant\x01"),
                    (b"Transfer-Encoding", b"chunked"),
                ],
                Class::Ambiguous,
                Some("UndefinedTransferEncodingSemantics"),
            ),
            (
                b"POST",
                &[
                    (b"Some-Custom-Header", b"Non-Rfc Compliant\x11"),
                    (b"Transfer-Encoding", b"chunked\x7f"),
                ],
                Class::Severe,
                Some("BadTransferEncoding"),
            ),
            (
                b"PUT",
                &[
                    (b"Some-Custom-Header\t", b"\x11\x12 But then \x00 which is bad"),
                    (b"Transfer-Encoding\t", b"chunked"),
                ],
                Class::Severe,
                Some("BadHeader"),
            ),
            (
                b"POST",
                &[(b"", b"chunked"), (b"Content-Length", b"1000")],
                Class::Ambiguous,
                Some("EmptyHeader"),
            ),
            (
                b"POST",
                &[(b"   \t\t  ", b"chunked")],
                Class::Ambiguous,
                Some("EmptyHeader"),
            ),
            (
                b"PUT",
                &[(b"x-my-custom-header ", b"some value")],
                Class::Acceptable,
                Some("NonCompliantHeader"),
            ),
        ];
        for (method, lines, class, reason) in cases {
            let got = classify(method, false, lines);
            assert_eq!((got.class, got.reason), (*class, *reason), "{lines:?}");
        }
        let got = classify(b"POST", true, &[(b"Transfer-Encoding", b"chunked")]);
        assert_eq!(got.reason, Some("UndefinedTransferEncodingSemantics"));
    }

    #[test]
    fn look_alikes_and_nameless_fields_are_marked() {
        let (buf, mut f) = fields(&[(b"Content_Length", b"5"), (b"", b"x"), (b"X-Ok", b"1")]);
        let mut c = Classification::default();
        assert!(!check_fields(&buf, &mut f, true, &mut c));
        let kinds: Vec<FieldKind> = f.iter().map(|f| f.kind).collect();
        assert_eq!(
            kinds,
            vec![
                FieldKind::LooksLikeContentLength,
                FieldKind::Nameless,
                FieldKind::Other
            ]
        );
        let (buf, mut f) = fields(&[(b"X-A", b"a\x00b")]);
        assert!(check_fields(&buf, &mut f, true, &mut c));
    }
}
