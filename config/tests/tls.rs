//! A listener's TLS keys: `ssl_policy`, `mutual_authentication`, `http2`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use hostalb_config::{DEFAULT_SSL_POLICY, MtlsMode, Severity, TlsVersion};

fn https(extra: &str) -> String {
    format!(
        r#"
[[listener]]
name = "secure"
address = "127.0.0.1:8443"
protocol = "HTTPS"
certificates = [{{ cert_file = "cert.pem", key_file = "key.pem" }}]
{extra}
"#
    )
}

const HTTP: &str = "[[listener]]\nname = \"web\"\naddress = \"127.0.0.1:8080\"\n";

#[test]
fn defaults_are_albs() {
    let loaded = clean(&https(""));
    let l = &loaded.config.listeners[0];
    assert_eq!(l.ssl_policy.name, DEFAULT_SSL_POLICY);
    assert_eq!(l.ssl_policy.name, "ELBSecurityPolicy-TLS13-1-2-2021-06");
    assert_eq!(l.mutual_authentication.mode, MtlsMode::Off);
    assert!(l.mutual_authentication.trust_store.is_none());
    assert!(l.http2);
    let plain = clean(HTTP);
    assert!(plain.config.listeners[0].http2);
}

#[test]
fn known_policies_map_to_their_versions() {
    let l = clean(&https("ssl_policy = \"ELBSecurityPolicy-TLS13-1-3-2021-06\""));
    let p = l.config.listeners[0].ssl_policy;
    assert!(p.serves(TlsVersion::Tls13) && !p.serves(TlsVersion::Tls12));
    let l = clean(&https("ssl_policy = \"ELBSecurityPolicy-FS-1-2-Res-2020-10\""));
    let p = l.config.listeners[0].ssl_policy;
    assert!(p.serves(TlsVersion::Tls12) && !p.serves(TlsVersion::Tls13));
    let l = clean(&https(
        "ssl_policy = \"ELBSecurityPolicy-TLS13-1-2-Res-FIPS-2023-04\"",
    ));
    assert!(l.config.listeners[0].ssl_policy.fips);
}

#[test]
fn policies_with_tls10_are_served_from_tls12_with_a_warning() {
    for name in ["ELBSecurityPolicy-2016-08", "ELBSecurityPolicy-TLS-1-1-2017-01"] {
        let w = warnings(&https(&format!("ssl_policy = \"{name}\"")));
        assert_eq!(w.len(), 1, "{w:#?}");
        assert_eq!(w[0].path, "listener[0].ssl_policy");
        assert_eq!(w[0].severity, Severity::Warning);
        assert!(!w[0].alb_limit, "strict_alb must not refuse an ALB policy");
        assert!(w[0].message.contains("TLSv1.2"), "{}", w[0].message);
        // strict_alb does not turn it into an error: ALB accepts the policy.
        assert!(toml_strict(&https(&format!("ssl_policy = \"{name}\"")), true).is_ok());
    }
}

#[test]
fn unknown_policy_names_the_field_and_lists_the_names() {
    let p = assert_error(
        &https("ssl_policy = \"ELBSecurityPolicy-Nope\""),
        "listener[0].ssl_policy",
        "unknown security policy `ELBSecurityPolicy-Nope`",
    );
    assert!(p.fix.contains("ELBSecurityPolicy-TLS13-1-2-2021-06"), "{}", p.fix);
    assert!(p.fix.contains("ELBSecurityPolicy-2016-08"), "{}", p.fix);
    let p = assert_error(
        &https("ssl_policy = \"elbsecuritypolicy-2016-08\""),
        "listener[0].ssl_policy",
        "unknown security policy",
    );
    assert_eq!(p.fix, "ALB spells it `ELBSecurityPolicy-2016-08`");
}

#[test]
fn https_only_keys_on_an_http_listener_are_errors() {
    assert_error(
        &format!("{HTTP}ssl_policy = \"ELBSecurityPolicy-2016-08\""),
        "listener[0].ssl_policy",
        "only used by HTTPS listeners",
    );
    assert_error(
        &format!("{HTTP}http2 = true"),
        "listener[0].http2",
        "HTTPS listeners only",
    );
    assert_error(
        &format!("{HTTP}mutual_authentication = {{ mode = \"passthrough\" }}"),
        "listener[0].mutual_authentication.mode",
        "needs an HTTPS listener",
    );
}

#[test]
fn http2_can_be_turned_off() {
    let l = clean(&https("http2 = false"));
    assert!(!l.config.listeners[0].http2);
}

#[test]
fn mutual_authentication_verify() {
    let l = clean(&https(
        "mutual_authentication = { mode = \"verify\", trust_store = \"ca.pem\", ignore_client_certificate_expiry = true }",
    ));
    let m = &l.config.listeners[0].mutual_authentication;
    assert_eq!(m.mode, MtlsMode::Verify);
    assert_eq!(m.trust_store.as_deref(), Some(std::path::Path::new("ca.pem")));
    assert!(m.ignore_client_certificate_expiry);
    assert!(!m.advertise_trust_store_ca_names);
}

#[test]
fn mutual_authentication_passthrough_and_off() {
    let l = clean(&https("mutual_authentication = { mode = \"passthrough\" }"));
    assert_eq!(
        l.config.listeners[0].mutual_authentication.mode,
        MtlsMode::Passthrough
    );
    let l = clean(&https("mutual_authentication = { mode = \"off\" }"));
    assert_eq!(l.config.listeners[0].mutual_authentication.mode, MtlsMode::Off);
}

#[test]
fn mutual_authentication_errors() {
    assert_error(
        &https("mutual_authentication = { mode = \"verify\" }"),
        "listener[0].mutual_authentication.trust_store",
        "needs a trust store",
    );
    assert_error(
        &https("mutual_authentication = { mode = \"verify\", trust_store = \" \" }"),
        "listener[0].mutual_authentication.trust_store",
        "empty",
    );
    assert_error(
        &https("mutual_authentication = { mode = \"passthrough\", trust_store = \"ca.pem\" }"),
        "listener[0].mutual_authentication.trust_store",
        "only used by mode = \"verify\"",
    );
    assert_error(
        &https("mutual_authentication = { mode = \"off\", ignore_client_certificate_expiry = true }"),
        "listener[0].mutual_authentication.ignore_client_certificate_expiry",
        "only used by mode = \"verify\"",
    );
    assert_error(
        &https("mutual_authentication = { mode = \"passthrough\", advertise_trust_store_ca_names = true }"),
        "listener[0].mutual_authentication.advertise_trust_store_ca_names",
        "only used by mode = \"verify\"",
    );
    let l = clean(&https(
        "mutual_authentication = { mode = \"verify\", trust_store = \"ca.pem\", advertise_trust_store_ca_names = true }",
    ));
    assert!(
        l.config.listeners[0]
            .mutual_authentication
            .advertise_trust_store_ca_names
    );
    let p = assert_error(
        &https("mutual_authentication = { mode = \"strict\" }"),
        "listener[0].mutual_authentication.mode",
        "unknown value `strict`",
    );
    assert_eq!(p.fix, "use one of: off, verify, passthrough");
    assert_error(
        &https("mutual_authentication = { mode = \"verify\", trust_store = \"ca.pem\", crl = \"x\" }"),
        "listener[0].mutual_authentication.crl",
        "unknown field",
    );
}
