//! ALB's TLS security policies (`SslPolicy` on an HTTPS listener), by name.
//!
//! A policy names the TLS versions and cipher suites a listener offers its clients. hostalb
//! terminates TLS with rustls, which speaks TLS 1.2 and 1.3 with AEAD cipher suites and
//! ECDHE key exchange only, so each policy is served as the part of it that rustls has:
//!
//! - TLS 1.3 suites: `TLS_AES_128_GCM_SHA256`, `TLS_AES_256_GCM_SHA384` and (not in FIPS
//!   policies) `TLS_CHACHA20_POLY1305_SHA256`, in that order, as ALB lists them.
//! - TLS 1.2 suites: `ECDHE-ECDSA-AES128-GCM-SHA256`, `ECDHE-RSA-AES128-GCM-SHA256`,
//!   `ECDHE-ECDSA-AES256-GCM-SHA384`, `ECDHE-RSA-AES256-GCM-SHA384`: the four every ALB
//!   policy with TLS 1.2 lists. The CBC suites (`*-SHA`, `*-SHA256`, `*-SHA384`), the RSA
//!   key-exchange suites (`AES128-GCM-SHA256`, `AES256-SHA`, ...) and `DES-CBC3-SHA` that
//!   older policies also list are absent: rustls does not implement them.
//! - TLS 1.0 and 1.1 are absent: a policy that allows them is served from TLS 1.2 up (and
//!   validation warns). No ALB policy is TLS 1.0/1.1-only, so no policy is left empty.
//! - FIPS policies get their versions and AES-GCM suites; hostalb's crypto (ring) is not a
//!   FIPS-validated module. Post-quantum (`PQ`) policies get their classical key exchange
//!   (X25519, P-256, P-384); the hybrid ML-KEM groups are not in hostalb's crypto provider.

/// A TLS protocol version a policy allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls10,
    Tls11,
    Tls12,
    Tls13,
}

impl TlsVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::Tls10 => "TLSv1",
            TlsVersion::Tls11 => "TLSv1.1",
            TlsVersion::Tls12 => "TLSv1.2",
            TlsVersion::Tls13 => "TLSv1.3",
        }
    }
}

/// One ALB security policy: its name and what hostalb serves of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SslPolicy {
    pub name: &'static str,
    /// The oldest version the policy allows (hostalb serves from TLS 1.2 up whatever this is).
    pub min: TlsVersion,
    /// The newest version the policy allows.
    pub max: TlsVersion,
    /// A FIPS policy: no ChaCha20-Poly1305.
    pub fips: bool,
    /// A hybrid post-quantum policy (served with classical key exchange).
    pub post_quantum: bool,
}

impl SslPolicy {
    /// Whether the policy offers `v` as hostalb serves it (TLS 1.2 and 1.3 only).
    pub fn serves(&self, v: TlsVersion) -> bool {
        v >= TlsVersion::Tls12 && v >= self.min && v <= self.max
    }
}

/// TLS 1.3 suites hostalb serves, in OpenSSL's names and ALB's order; the last is not FIPS.
const TLS13_SUITES: [&str; 3] = [
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];
/// TLS 1.2 suites hostalb serves (every ALB policy with TLS 1.2 lists them, in this order).
const TLS12_SUITES: [&str; 4] = [
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
];

impl SslPolicy {
    /// The versions served, as DescribeSSLPolicies names them (`SslProtocols`).
    pub fn protocols(&self) -> Vec<&'static str> {
        [TlsVersion::Tls12, TlsVersion::Tls13]
            .into_iter()
            .filter(|v| self.serves(*v))
            .map(TlsVersion::as_str)
            .collect()
    }

    /// The cipher suites served, in OpenSSL's names and preference order (`Ciphers`): the
    /// TLS 1.3 suites first, as ALB lists them.
    pub fn ciphers(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.serves(TlsVersion::Tls13) {
            let n = if self.fips { 2 } else { 3 };
            out.extend_from_slice(&TLS13_SUITES[..n]);
        }
        if self.serves(TlsVersion::Tls12) {
            out.extend_from_slice(&TLS12_SUITES);
        }
        out
    }
}

/// ALB's default for listeners created today (console and the recommendation), and
/// hostalb's for an HTTPS listener without `ssl_policy`.
pub const DEFAULT_SSL_POLICY: &str = "ELBSecurityPolicy-TLS13-1-2-2021-06";

const fn p(
    name: &'static str,
    min: TlsVersion,
    max: TlsVersion,
    fips: bool,
    post_quantum: bool,
) -> SslPolicy {
    SslPolicy {
        name,
        min,
        max,
        fips,
        post_quantum,
    }
}

use TlsVersion::{Tls10, Tls11, Tls12, Tls13};

/// Every policy name hostalb accepts, as `aws elbv2 describe-ssl-policies` lists them.
pub const SSL_POLICIES: &[SslPolicy] = &[
    p("ELBSecurityPolicy-TLS13-1-2-2021-06", Tls12, Tls13, false, false),
    p(
        "ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
        Tls12,
        Tls13,
        false,
        false,
    ),
    p(
        "ELBSecurityPolicy-TLS13-1-2-Ext1-2021-06",
        Tls12,
        Tls13,
        false,
        false,
    ),
    p(
        "ELBSecurityPolicy-TLS13-1-2-Ext2-2021-06",
        Tls12,
        Tls13,
        false,
        false,
    ),
    p("ELBSecurityPolicy-TLS13-1-1-2021-06", Tls11, Tls13, false, false),
    p("ELBSecurityPolicy-TLS13-1-0-2021-06", Tls10, Tls13, false, false),
    p("ELBSecurityPolicy-TLS13-1-3-2021-06", Tls13, Tls13, false, false),
    p(
        "ELBSecurityPolicy-TLS13-1-3-FIPS-2023-04",
        Tls13,
        Tls13,
        true,
        false,
    ),
    p(
        "ELBSecurityPolicy-TLS13-1-2-Res-FIPS-2023-04",
        Tls12,
        Tls13,
        true,
        false,
    ),
    p(
        "ELBSecurityPolicy-TLS13-1-2-FIPS-2023-04",
        Tls12,
        Tls13,
        true,
        false,
    ),
    p(
        "ELBSecurityPolicy-TLS13-1-2-Ext0-FIPS-2023-04",
        Tls12,
        Tls13,
        true,
        false,
    ),
    p(
        "ELBSecurityPolicy-TLS13-1-2-Ext1-FIPS-2023-04",
        Tls12,
        Tls13,
        true,
        false,
    ),
    p(
        "ELBSecurityPolicy-TLS13-1-2-Ext2-FIPS-2023-04",
        Tls12,
        Tls13,
        true,
        false,
    ),
    p(
        "ELBSecurityPolicy-TLS13-1-1-FIPS-2023-04",
        Tls11,
        Tls13,
        true,
        false,
    ),
    p(
        "ELBSecurityPolicy-TLS13-1-0-FIPS-2023-04",
        Tls10,
        Tls13,
        true,
        false,
    ),
    p(
        "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09",
        Tls12,
        Tls13,
        false,
        true,
    ),
    p(
        "ELBSecurityPolicy-TLS13-1-2-FIPS-PQ-2025-09",
        Tls12,
        Tls13,
        true,
        true,
    ),
    p("ELBSecurityPolicy-2016-08", Tls10, Tls12, false, false),
    p("ELBSecurityPolicy-2015-05", Tls10, Tls12, false, false),
    p("ELBSecurityPolicy-TLS-1-0-2015-04", Tls10, Tls12, false, false),
    p("ELBSecurityPolicy-TLS-1-1-2017-01", Tls11, Tls12, false, false),
    p("ELBSecurityPolicy-TLS-1-2-2017-01", Tls12, Tls12, false, false),
    p(
        "ELBSecurityPolicy-TLS-1-2-Ext-2018-06",
        Tls12,
        Tls12,
        false,
        false,
    ),
    p("ELBSecurityPolicy-FS-2018-06", Tls10, Tls12, false, false),
    p("ELBSecurityPolicy-FS-1-1-2019-08", Tls11, Tls12, false, false),
    p("ELBSecurityPolicy-FS-1-2-2019-08", Tls12, Tls12, false, false),
    p("ELBSecurityPolicy-FS-1-2-Res-2019-08", Tls12, Tls12, false, false),
    p("ELBSecurityPolicy-FS-1-2-Res-2020-10", Tls12, Tls12, false, false),
];

/// The policy named `name` (exact spelling, as ALB's API requires).
pub fn ssl_policy(name: &str) -> Option<SslPolicy> {
    SSL_POLICIES.iter().find(|p| p.name == name).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_policy_serves_tls12_or_tls13_and_the_default_is_listed() {
        for p in SSL_POLICIES {
            assert!(p.serves(Tls12) || p.serves(Tls13), "{}", p.name);
            assert!(!p.serves(Tls10) && !p.serves(Tls11), "{}", p.name);
        }
        assert!(ssl_policy(DEFAULT_SSL_POLICY).is_some());
        let only13 = ssl_policy("ELBSecurityPolicy-TLS13-1-3-2021-06");
        assert!(only13.is_some_and(|p| !p.serves(Tls12) && p.serves(Tls13)));
        let only12 = ssl_policy("ELBSecurityPolicy-TLS-1-2-2017-01");
        assert!(only12.is_some_and(|p| p.serves(Tls12) && !p.serves(Tls13)));
        assert!(ssl_policy("elbsecuritypolicy-2016-08").is_none());
    }

    #[test]
    fn each_policy_lists_its_own_versions_and_suites() {
        let p = |n| ssl_policy(n).unwrap_or_else(|| panic!("{n}"));
        let only13 = p("ELBSecurityPolicy-TLS13-1-3-2021-06");
        assert_eq!(only13.protocols(), ["TLSv1.3"]);
        assert_eq!(only13.ciphers().len(), 3);
        let legacy = p("ELBSecurityPolicy-2016-08");
        assert_eq!(legacy.protocols(), ["TLSv1.2"]);
        assert_eq!(legacy.ciphers(), TLS12_SUITES);
        let fips = p("ELBSecurityPolicy-TLS13-1-2-FIPS-2023-04");
        assert_eq!(fips.protocols(), ["TLSv1.2", "TLSv1.3"]);
        assert!(!fips.ciphers().contains(&"TLS_CHACHA20_POLY1305_SHA256"));
        assert_eq!(fips.ciphers().len(), 6);
    }
}
