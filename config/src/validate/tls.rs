//! A listener's TLS keys: `ssl_policy`, `mutual_authentication` and `http2`.
//!
//! Only names and shapes are checked here (the crate reads no files); whether the
//! certificate, key and trust-store files load is checked by the proxy when it builds
//! the listener, and by `hostalb check`.

use std::path::PathBuf;

use super::Ctx;
use crate::model::{
    DEFAULT_SSL_POLICY, ListenerProtocol, MtlsMode, MutualAuthentication, SSL_POLICIES, SslPolicy,
    TlsVersion, ssl_policy,
};
use crate::raw::RawMutualAuthentication;

/// `routing.http2.enabled` default: on, as on ALB.
const DEFAULT_HTTP2: bool = true;

/// The TLS keys as written.
pub(super) struct RawTls {
    pub(super) ssl_policy: Option<String>,
    pub(super) mutual_authentication: Option<RawMutualAuthentication>,
    pub(super) http2: Option<bool>,
}

/// The TLS keys, validated.
pub(super) struct ListenerTls {
    pub(super) ssl_policy: SslPolicy,
    pub(super) mutual_authentication: MutualAuthentication,
    pub(super) http2: bool,
}

pub(super) fn validate_listener_tls(
    cx: &mut Ctx,
    raw: RawTls,
    protocol: ListenerProtocol,
    path: &str,
) -> ListenerTls {
    let https = protocol == ListenerProtocol::Https;
    let default_policy = ssl_policy(DEFAULT_SSL_POLICY).unwrap_or(SSL_POLICIES[0]);
    let policy = match raw.ssl_policy.as_deref() {
        None => default_policy,
        Some(name) => {
            let at = format!("{path}.ssl_policy");
            if !https {
                cx.error(
                    &at,
                    "ssl_policy is only used by HTTPS listeners",
                    "set protocol = \"HTTPS\" or remove ssl_policy",
                );
            }
            match ssl_policy(name) {
                Some(p) => {
                    if p.min < TlsVersion::Tls12 && https {
                        cx.warning(
                            &at,
                            format!(
                                "{name} allows {} and up; hostalb serves it from TLSv1.2 (rustls has no TLS 1.0/1.1), and without its CBC and RSA key-exchange cipher suites",
                                p.min.as_str()
                            ),
                            "clients limited to TLS 1.0/1.1 cannot connect; use a TLS13-1-2 policy to say what is served",
                        );
                    }
                    p
                }
                None => {
                    let names: Vec<&str> = SSL_POLICIES.iter().map(|p| p.name).collect();
                    let fix = match SSL_POLICIES.iter().find(|p| p.name.eq_ignore_ascii_case(name)) {
                        Some(p) => format!("ALB spells it `{}`", p.name),
                        None => format!("use one of: {}", names.join(", ")),
                    };
                    cx.error(&at, format!("unknown security policy `{name}`"), fix);
                    default_policy
                }
            }
        }
    };

    let mutual_authentication = match raw.mutual_authentication {
        None => MutualAuthentication::default(),
        Some(m) => mutual_authentication(cx, m, https, &format!("{path}.mutual_authentication")),
    };

    let http2 = match raw.http2 {
        Some(on) if !https => {
            cx.error(
                &format!("{path}.http2"),
                format!("http2 = {on} on an HTTP listener: ALB offers HTTP/2 on HTTPS listeners only"),
                "remove http2, or set protocol = \"HTTPS\"",
            );
            DEFAULT_HTTP2
        }
        Some(on) => on,
        None => DEFAULT_HTTP2,
    };

    ListenerTls {
        ssl_policy: policy,
        mutual_authentication,
        http2,
    }
}

fn mutual_authentication(
    cx: &mut Ctx,
    m: RawMutualAuthentication,
    https: bool,
    path: &str,
) -> MutualAuthentication {
    let mode = cx.choice(
        m.mode.as_deref(),
        &[
            ("off", MtlsMode::Off),
            ("verify", MtlsMode::Verify),
            ("passthrough", MtlsMode::Passthrough),
        ],
        MtlsMode::Off,
        &format!("{path}.mode"),
    );
    if mode != MtlsMode::Off && !https {
        cx.error(
            &format!("{path}.mode"),
            "mutual TLS needs an HTTPS listener",
            "set protocol = \"HTTPS\", or mode = \"off\"",
        );
    }
    let trust_store = match (mode, m.trust_store) {
        (MtlsMode::Verify, Some(t)) if t.trim().is_empty() => {
            cx.error(
                &format!("{path}.trust_store"),
                "the trust store path is empty",
                "name a PEM file of CA certificates, e.g. trust_store = \"ca.pem\"",
            );
            None
        }
        (MtlsMode::Verify, Some(t)) => Some(PathBuf::from(t)),
        (MtlsMode::Verify, None) => {
            cx.error(
                &format!("{path}.trust_store"),
                "mode = \"verify\" needs a trust store",
                "add trust_store = \"ca.pem\" (PEM CA certificates that client certificates chain to)",
            );
            None
        }
        (_, Some(_)) => {
            cx.error(
                &format!("{path}.trust_store"),
                format!(
                    "a trust store is only used by mode = \"verify\", not \"{}\"",
                    mode.as_str()
                ),
                "remove trust_store, or set mode = \"verify\"",
            );
            None
        }
        (_, None) => None,
    };
    let verify_only = |cx: &mut Ctx, key: &str, value: Option<bool>| -> bool {
        match value {
            Some(v) if mode != MtlsMode::Verify => {
                cx.error(
                    &format!("{path}.{key}"),
                    format!(
                        "{key} is only used by mode = \"verify\", not \"{}\"",
                        mode.as_str()
                    ),
                    format!("remove {key}, or set mode = \"verify\""),
                );
                v
            }
            Some(v) => v,
            None => false,
        }
    };
    let ignore_client_certificate_expiry = verify_only(
        cx,
        "ignore_client_certificate_expiry",
        m.ignore_client_certificate_expiry,
    );
    let advertise_trust_store_ca_names = verify_only(
        cx,
        "advertise_trust_store_ca_names",
        m.advertise_trust_store_ca_names,
    );
    MutualAuthentication {
        mode,
        trust_store,
        ignore_client_certificate_expiry,
        advertise_trust_store_ca_names,
    }
}
