//! Anchored wildcard patterns as ALB matches them: `*` is zero or more bytes, `?` exactly
//! one, and the pattern must cover the whole value (`/api/*` does not match `/api`).
//!
//! Patterns are compiled once into the cheapest shape that decides them: an exact
//! comparison, a prefix, a suffix, or (only when needed) the general matcher, which runs
//! in linear time for a single `*` and never worse than O(pattern x value).

use std::fmt;

/// Whether a pattern compares letters case-sensitively (path, method) or not (host,
/// header, query string).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    Sensitive,
    Insensitive,
}

/// A compiled anchored wildcard pattern.
#[derive(Clone)]
pub struct Glob {
    source: String,
    case: Case,
    /// Whether `\` escapes the next character (query-string patterns).
    escapes: bool,
    shape: Shape,
}

#[derive(Clone, Debug)]
enum Shape {
    /// No wildcard: the value must equal the pattern.
    Exact(Box<[u8]>),
    /// `literal*`: the value must start with the literal.
    Prefix(Box<[u8]>),
    /// `*literal`: the value must end with the literal.
    Suffix(Box<[u8]>),
    /// `*`: every value.
    Any,
    /// Anything else, as tokens.
    General(Box<[Token]>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    Byte(u8),
    AnyOne,
    AnyRun,
}

impl Glob {
    /// Compiles `pattern`. With `escapes`, `\*`, `\?` and `\\` stand for the literal
    /// character (ALB allows this in query-string conditions only).
    pub fn new(pattern: &str, case: Case, escapes: bool) -> Glob {
        let mut tokens = Vec::with_capacity(pattern.len());
        let fold = |b: u8| match case {
            Case::Sensitive => b,
            Case::Insensitive => b.to_ascii_lowercase(),
        };
        let mut bytes = pattern.bytes();
        while let Some(b) = bytes.next() {
            let token = match b {
                b'\\' if escapes => match bytes.next() {
                    Some(next) => Token::Byte(fold(next)),
                    None => Token::Byte(b'\\'),
                },
                b'*' => Token::AnyRun,
                b'?' => Token::AnyOne,
                other => Token::Byte(fold(other)),
            };
            // `**` means the same as `*`; folding keeps the general matcher simple.
            if token == Token::AnyRun && tokens.last() == Some(&Token::AnyRun) {
                continue;
            }
            tokens.push(token);
        }
        Glob {
            source: pattern.to_owned(),
            case,
            escapes,
            shape: Shape::from_tokens(tokens),
        }
    }

    /// The pattern as it was written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Number of wildcard characters, as ALB's "5 wildcards per rule" budget counts them.
    pub fn wildcard_count(&self) -> usize {
        if self.escapes {
            count_unescaped_wildcards(&self.source)
        } else {
            count_wildcards(&self.source)
        }
    }

    /// Whether the whole of `value` matches the pattern.
    #[inline]
    pub fn matches(&self, value: &[u8]) -> bool {
        match &self.shape {
            Shape::Exact(lit) => eq(lit, value, self.case),
            Shape::Prefix(lit) => value.len() >= lit.len() && eq(lit, &value[..lit.len()], self.case),
            Shape::Suffix(lit) => {
                value.len() >= lit.len() && eq(lit, &value[value.len() - lit.len()..], self.case)
            }
            Shape::Any => true,
            Shape::General(tokens) => general_match(tokens, value, self.case),
        }
    }
}

/// Counts `*` and `?` in a pattern written without escapes.
pub(crate) fn count_wildcards(pattern: &str) -> usize {
    pattern.bytes().filter(|b| *b == b'*' || *b == b'?').count()
}

/// Counts `*` and `?` in a pattern where `\` escapes the next character.
pub(crate) fn count_unescaped_wildcards(pattern: &str) -> usize {
    let mut n = 0;
    let mut escaped = false;
    for b in pattern.bytes() {
        match b {
            b'\\' if !escaped => escaped = true,
            b'*' | b'?' if !escaped => n += 1,
            _ => escaped = false,
        }
    }
    n
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Glob")
            .field(&self.source)
            .field(&self.case)
            .finish()
    }
}

impl PartialEq for Glob {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source && self.case == other.case && self.escapes == other.escapes
    }
}

impl Shape {
    fn from_tokens(tokens: Vec<Token>) -> Shape {
        let literal = |ts: &[Token]| -> Option<Box<[u8]>> {
            ts.iter()
                .map(|t| match t {
                    Token::Byte(b) => Some(*b),
                    _ => None,
                })
                .collect::<Option<Vec<u8>>>()
                .map(Vec::into_boxed_slice)
        };
        match tokens.as_slice() {
            [Token::AnyRun] => Shape::Any,
            [Token::AnyRun, rest @ ..] => match literal(rest) {
                Some(lit) => Shape::Suffix(lit),
                None => Shape::General(tokens.into_boxed_slice()),
            },
            [rest @ .., Token::AnyRun] => match literal(rest) {
                Some(lit) => Shape::Prefix(lit),
                None => Shape::General(tokens.into_boxed_slice()),
            },
            all => match literal(all) {
                Some(lit) => Shape::Exact(lit),
                None => Shape::General(tokens.into_boxed_slice()),
            },
        }
    }
}

#[inline]
fn eq(pattern: &[u8], value: &[u8], case: Case) -> bool {
    match case {
        Case::Sensitive => pattern == value,
        // The pattern was lower-cased at compile time; only the value is folded here.
        Case::Insensitive => {
            pattern.len() == value.len()
                && pattern
                    .iter()
                    .zip(value)
                    .all(|(p, v)| *p == v.to_ascii_lowercase())
        }
    }
}

#[inline]
fn byte_matches(token: Token, b: u8, case: Case) -> bool {
    match token {
        Token::Byte(p) => match case {
            Case::Sensitive => p == b,
            Case::Insensitive => p == b.to_ascii_lowercase(),
        },
        Token::AnyOne => true,
        Token::AnyRun => false,
    }
}

/// Iterative wildcard match with single-star backtracking: when a later literal fails,
/// only the most recent `*` is widened. This is complete for `*`/`?` patterns because an
/// earlier star can never need more bytes than the most recent one could absorb.
fn general_match(tokens: &[Token], value: &[u8], case: Case) -> bool {
    let (mut t, mut v) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while v < value.len() {
        match tokens.get(t) {
            Some(Token::AnyRun) => {
                star = Some((t, v));
                t += 1;
            }
            Some(&tok) if byte_matches(tok, value[v], case) => {
                t += 1;
                v += 1;
            }
            _ => match star {
                Some((st, sv)) => {
                    t = st + 1;
                    v = sv + 1;
                    star = Some((st, sv + 1));
                }
                None => return false,
            },
        }
    }
    tokens[t..].iter().all(|tok| *tok == Token::AnyRun)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> Glob {
        Glob::new(p, Case::Sensitive, false)
    }
    fn host(p: &str) -> Glob {
        Glob::new(p, Case::Insensitive, false)
    }

    #[test]
    fn exact_is_anchored_both_ends() {
        let g = path("/api");
        assert!(g.matches(b"/api"));
        assert!(!g.matches(b"/api/"));
        assert!(!g.matches(b"/ap"));
        assert!(!g.matches(b"x/api"));
    }

    #[test]
    fn prefix_star_needs_the_whole_prefix() {
        let g = path("/api/*");
        assert!(g.matches(b"/api/"));
        assert!(g.matches(b"/api/users/1"));
        assert!(!g.matches(b"/api"), "ALB: /api/* does not match /api");
        assert!(!g.matches(b"/API/x"), "paths are case-sensitive");
    }

    #[test]
    fn suffix_star_for_hosts() {
        let g = host("*.example.com");
        assert!(g.matches(b"a.example.com"));
        assert!(g.matches(b"A.B.EXAMPLE.COM"), "hosts are case-insensitive");
        assert!(
            !g.matches(b"example.com"),
            "ALB: *.example.com does not match example.com"
        );
        assert!(!g.matches(b"a.example.com.evil"));
    }

    #[test]
    fn question_mark_is_exactly_one() {
        let g = path("/v?/x");
        assert!(g.matches(b"/v1/x"));
        assert!(!g.matches(b"/v/x"));
        assert!(!g.matches(b"/v12/x"));
    }

    #[test]
    fn star_alone_and_doubled() {
        assert!(path("*").matches(b""));
        assert!(path("*").matches(b"/anything"));
        assert!(path("/a/**").matches(b"/a/b/c"));
    }

    #[test]
    fn general_patterns_backtrack() {
        let g = path("/a*b*c");
        assert!(g.matches(b"/abc"));
        assert!(g.matches(b"/axxbyyc"));
        assert!(g.matches(b"/abbbcbc"));
        assert!(!g.matches(b"/axxbyy"));
        assert!(!g.matches(b"/acb"));
        let g = path("*/img/*.png");
        assert!(g.matches(b"/static/img/logo.png"));
        assert!(!g.matches(b"/static/img/logo.png.bak"));
        let g = host("*.?xample.*");
        assert!(g.matches(b"www.Example.org"));
        assert!(!g.matches(b"example.org"));
    }

    #[test]
    fn literal_star_via_escape_in_query_strings() {
        let g = Glob::new("a\\*b", Case::Insensitive, true);
        assert!(g.matches(b"a*b"));
        assert!(!g.matches(b"axb"));
        let g = Glob::new("\\?", Case::Insensitive, true);
        assert!(g.matches(b"?"));
        assert!(!g.matches(b"x"));
        // Without escapes, a backslash is an ordinary byte.
        assert!(Glob::new("a\\*", Case::Sensitive, false).matches(b"a\\zz"));
    }

    #[test]
    fn wildcard_count_counts_both_kinds() {
        assert_eq!(path("/a/*/b?").wildcard_count(), 2);
        assert_eq!(path("/plain").wildcard_count(), 0);
    }

    #[test]
    fn general_matcher_agrees_with_a_reference_on_many_inputs() {
        // A tiny exhaustive cross-check against a recursive reference implementation.
        fn reference(p: &[u8], v: &[u8]) -> bool {
            match (p.first(), v.first()) {
                (None, None) => true,
                (Some(b'*'), _) => reference(&p[1..], v) || (!v.is_empty() && reference(p, &v[1..])),
                (Some(b'?'), Some(_)) => reference(&p[1..], &v[1..]),
                (Some(a), Some(b)) if a == b => reference(&p[1..], &v[1..]),
                _ => false,
            }
        }
        let alphabet = [b'a', b'b', b'*', b'?'];
        let mut patterns = vec![Vec::new()];
        for _ in 0..4 {
            let next: Vec<Vec<u8>> = patterns
                .iter()
                .flat_map(|p| {
                    alphabet.iter().map(move |c| {
                        let mut q = p.clone();
                        q.push(*c);
                        q
                    })
                })
                .collect();
            patterns.extend(next);
        }
        let mut values = vec![Vec::new()];
        for _ in 0..5 {
            let next: Vec<Vec<u8>> = values
                .iter()
                .flat_map(|v| {
                    [b'a', b'b'].iter().map(move |c| {
                        let mut w = v.clone();
                        w.push(*c);
                        w
                    })
                })
                .collect();
            values.extend(next);
        }
        for p in &patterns {
            let text = String::from_utf8(p.clone()).unwrap_or_default();
            let glob = path(&text);
            for v in &values {
                assert_eq!(glob.matches(v), reference(p, v), "pattern {text:?} value {v:?}");
            }
        }
    }
}
