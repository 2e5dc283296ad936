//! HTTPS listeners: certificates from PEM files, chosen by SNI (the first certificate is
//! the default, as the listener's default certificate is on ALB); the listener's security
//! policy as rustls protocol versions and cipher suites; mutual TLS (`verify` against a
//! trust store, or `passthrough`), whose facts are read once per connection.

use std::path::Path;
use std::sync::Arc;

use hostalb_config::{Listener, MtlsMode, SslPolicy, TlsVersion};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::data::client_cert;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("{key}: this private key does not belong to the certificate in {cert}")]
    KeyMismatch { cert: String, key: String },
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The ALPN protocols an HTTPS listener offers, in preference order. One place: HTTP/2
/// (`h2`, when the listener's `http2` is on) is added here.
pub(crate) fn alpn_protocols(listener: &Listener) -> Vec<Vec<u8>> {
    let mut list = Vec::with_capacity(2);
    if listener.http2 {
        list.push(ALPN_H2.to_vec());
    }
    list.push(ALPN_HTTP1.to_vec());
    list
}

/// A listener's TLS acceptor, its certificates (to name the one a client was given) and
/// its mutual TLS mode (to say what targets are told of client certificates).
#[derive(Clone)]
pub(crate) struct Acceptor(pub(crate) tokio_rustls::TlsAcceptor, Arc<BySni>, MtlsMode);

/// What the access log says of a client's TLS connection (the client certificate's
/// facts are in [`MtlsTexts`], kept with the connection's header texts).
#[derive(Debug)]
pub(crate) struct TlsInfo {
    /// The cipher suite in OpenSSL's naming, as ALB logs it.
    pub(crate) cipher: &'static str,
    /// `TLSv1.2` or `TLSv1.3`.
    pub(crate) protocol: &'static str,
    /// The SNI name the client sent.
    pub(crate) sni: Option<Box<str>>,
    /// The ARN-shaped id of the certificate presented.
    pub(crate) cert_arn: Arc<str>,
}

/// The mutual-TLS header lines of a connection, rendered once at the handshake.
#[derive(Debug, Default)]
pub(crate) struct MtlsTexts {
    /// Remove client-sent `X-Amzn-Mtls-Clientcert*` fields (the listener does mutual TLS).
    pub(crate) strip: bool,
    /// The `X-Amzn-Mtls-Clientcert*` lines every request of the connection carries.
    pub(crate) lines: Box<[u8]>,
}

impl Acceptor {
    /// The mutual-TLS lines for an established connection.
    pub(crate) fn mtls(&self, conn: &rustls::ServerConnection) -> MtlsTexts {
        let chain = conn.peer_certificates().unwrap_or_default();
        let lines = match (self.2, chain.first()) {
            (MtlsMode::Off, _) | (_, None) => Vec::new(),
            (MtlsMode::Verify, Some(leaf)) => client_cert::verify_lines(leaf).unwrap_or_default(),
            (MtlsMode::Passthrough, Some(_)) => {
                client_cert::passthrough_line(chain.iter().map(|c| c.as_ref()))
            }
        };
        MtlsTexts {
            strip: self.2 != MtlsMode::Off,
            lines: lines.into_boxed_slice(),
        }
    }

    /// The facts of an established connection.
    pub(crate) fn info(&self, conn: &rustls::ServerConnection) -> TlsInfo {
        let sni = conn.server_name();
        let chosen = self.1.choose(sni).unwrap_or(0);
        TlsInfo {
            cipher: conn
                .negotiated_cipher_suite()
                .map(|s| openssl_name(s.suite()))
                .unwrap_or("-"),
            protocol: match conn.protocol_version() {
                Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
                Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
                _ => "-",
            },
            sni: sni.map(Box::from),
            cert_arn: self.1.arns.get(chosen).cloned().unwrap_or_else(|| Arc::from("-")),
        }
    }
}

/// A cipher suite's OpenSSL name, which ALB's access log uses.
fn openssl_name(suite: rustls::CipherSuite) -> &'static str {
    use rustls::CipherSuite::*;
    match suite {
        TLS13_AES_128_GCM_SHA256 => "TLS_AES_128_GCM_SHA256",
        TLS13_AES_256_GCM_SHA384 => "TLS_AES_256_GCM_SHA384",
        TLS13_CHACHA20_POLY1305_SHA256 => "TLS_CHACHA20_POLY1305_SHA256",
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => "ECDHE-ECDSA-AES128-GCM-SHA256",
        TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => "ECDHE-ECDSA-AES256-GCM-SHA384",
        TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-ECDSA-CHACHA20-POLY1305",
        TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => "ECDHE-RSA-AES128-GCM-SHA256",
        TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => "ECDHE-RSA-AES256-GCM-SHA384",
        TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-RSA-CHACHA20-POLY1305",
        _ => "-",
    }
}

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Acceptor(..)")
    }
}

/// Builds the acceptor for an HTTPS listener: its certificates, security policy, mutual
/// TLS and ALPN. Every file is read now, so a reload re-reads them.
pub(crate) fn acceptor(listener: &Listener) -> Result<Acceptor, TlsError> {
    let provider = Arc::new(policy_provider(&listener.ssl_policy));
    let mut keys = Vec::new();
    let mut arns = Vec::new();
    for c in &listener.certificates {
        keys.push(load(&c.cert_file, &c.key_file, &provider)?);
        arns.push(Arc::from(crate::model::arn::certificate_arn(
            &c.cert_file.display().to_string(),
        )));
    }
    let by_sni = Arc::new(BySni { keys, arns });
    let versions = policy_versions(&listener.ssl_policy);
    let builder =
        rustls::ServerConfig::builder_with_provider(provider.clone()).with_protocol_versions(&versions)?;
    let m = &listener.mutual_authentication;
    let builder = match m.mode {
        MtlsMode::Off => builder.with_no_client_auth(),
        MtlsMode::Verify => {
            let path = m.trust_store.as_deref().unwrap_or(Path::new(""));
            builder.with_client_cert_verifier(verify_client_certs(
                path,
                m.ignore_client_certificate_expiry,
                m.advertise_trust_store_ca_names,
                &provider,
            )?)
        }
        MtlsMode::Passthrough => builder.with_client_cert_verifier(Arc::new(Passthrough(provider.clone()))),
    };
    let mut config = builder.with_cert_resolver(by_sni.clone());
    // ALB: "the first cipher on the server's list that matches any one of the client's".
    config.ignore_client_order = true;
    config.alpn_protocols = alpn_protocols(listener);
    Ok(Acceptor(
        tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        by_sni,
        m.mode,
    ))
}

/// The ALPN protocol id of HTTP/2 over TLS.
pub(crate) const ALPN_H2: &[u8] = b"h2";
/// The ALPN protocol id of HTTP/1.1.
const ALPN_HTTP1: &[u8] = b"http/1.1";

/// Loads every certificate, key and trust-store file of `config`'s HTTPS listeners, as a
/// start or reload will, for `hostalb check`: one error per file that cannot load, naming
/// the field, the file and the fix.
pub fn file_problems(config: &hostalb_config::Config) -> Vec<hostalb_config::Problem> {
    let problem = |path: String, message: String, fix: &str| hostalb_config::Problem {
        severity: hostalb_config::Severity::Error,
        path,
        message,
        fix: fix.to_owned(),
        alb_limit: false,
    };
    let provider = rustls::crypto::ring::default_provider();
    let mut out = Vec::new();
    for (i, l) in config.listeners.iter().enumerate() {
        if l.protocol != hostalb_config::ListenerProtocol::Https {
            continue;
        }
        for (j, c) in l.certificates.iter().enumerate() {
            let Err(e) = load(&c.cert_file, &c.key_file, &provider) else {
                continue;
            };
            let cert_failed = matches!(&e, TlsError::File { path, .. } if Path::new(path) == c.cert_file);
            out.push(if let TlsError::KeyMismatch { .. } = e {
                problem(
                    format!("listener[{i}].certificates[{j}].key_file"),
                    e.to_string(),
                    "use the private key the certificate was issued with, or the certificate issued for this key",
                )
            } else if cert_failed {
                problem(
                    format!("listener[{i}].certificates[{j}].cert_file"),
                    e.to_string(),
                    "put the certificate chain in PEM (leaf first) at this path, or correct cert_file",
                )
            } else {
                problem(
                    format!("listener[{i}].certificates[{j}].key_file"),
                    e.to_string(),
                    "put the certificate's private key in PEM (PKCS#8, PKCS#1 or SEC1) at this path, or correct key_file",
                )
            });
        }
        let m = &l.mutual_authentication;
        if let (MtlsMode::Verify, Some(store)) = (m.mode, &m.trust_store) {
            if let Err(e) = verify_client_certs(store, false, false, &Arc::new(provider.clone())) {
                out.push(problem(
                    format!("listener[{i}].mutual_authentication.trust_store"),
                    e.to_string(),
                    "put the CA certificates (PEM) that client certificates chain to at this path, or correct trust_store",
                ));
            }
        }
    }
    out
}

/// The ring provider with the cipher suites of `policy` that rustls has, in ALB's order.
fn policy_provider(policy: &SslPolicy) -> CryptoProvider {
    use rustls::crypto::ring::cipher_suite as cs;
    let mut suites = Vec::new();
    if policy.serves(TlsVersion::Tls13) {
        suites.push(cs::TLS13_AES_128_GCM_SHA256);
        suites.push(cs::TLS13_AES_256_GCM_SHA384);
        if !policy.fips {
            suites.push(cs::TLS13_CHACHA20_POLY1305_SHA256);
        }
    }
    if policy.serves(TlsVersion::Tls12) {
        suites.push(cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256);
        suites.push(cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256);
        suites.push(cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384);
        suites.push(cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384);
    }
    CryptoProvider {
        cipher_suites: suites,
        ..rustls::crypto::ring::default_provider()
    }
}

fn policy_versions(policy: &SslPolicy) -> Vec<&'static rustls::SupportedProtocolVersion> {
    let mut v = Vec::new();
    if policy.serves(TlsVersion::Tls13) {
        v.push(&rustls::version::TLS13);
    }
    if policy.serves(TlsVersion::Tls12) {
        v.push(&rustls::version::TLS12);
    }
    v
}

/// `verify` mode: client certificates must chain to the trust store (a client without one
/// is refused at the handshake).
fn verify_client_certs(
    trust_store: &Path,
    ignore_expiry: bool,
    advertise_ca_names: bool,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let file_error = |message: String| TlsError::File {
        path: trust_store.display().to_string(),
        message,
    };
    let cas: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(trust_store)
        .map_err(|e| file_error(format!("cannot read the trust store: {e}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(format!("bad PEM: {e}")))?;
    if cas.is_empty() {
        return Err(file_error("no CERTIFICATE block found in the trust store".into()));
    }
    let mut roots = rustls::RootCertStore::empty();
    for (i, ca) in cas.into_iter().enumerate() {
        roots
            .add(ca)
            .map_err(|e| file_error(format!("certificate {} is not a usable CA: {e}", i + 1)))?;
    }
    let mut builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    if !advertise_ca_names {
        builder = builder.clear_root_hint_subjects();
    }
    let inner = builder
        .build()
        .map_err(|e| file_error(format!("cannot verify clients with it: {e}")))?;
    Ok(Arc::new(Verify { inner, ignore_expiry }))
}

/// The trust-store verifier, with ALB's `ignore_client_certificate_expiry` and a log line
/// for each refused certificate (ALB's connection log `tls_verify_status`).
#[derive(Debug)]
struct Verify {
    inner: Arc<dyn ClientCertVerifier>,
    ignore_expiry: bool,
}

impl ClientCertVerifier for Verify {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let mut result = self.inner.verify_client_cert(end_entity, intermediates, now);
        if self.ignore_expiry {
            if let Err(rustls::Error::InvalidCertificate(e)) = &result {
                // Verify again at a time inside the leaf's validity: everything but the
                // leaf's dates is still checked.
                let at = match e {
                    CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                        client_cert::parse_leaf(end_entity).map(|l| l.not_after.unix().saturating_sub(1))
                    }
                    CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                        client_cert::parse_leaf(end_entity).map(|l| l.not_before.unix() + 1)
                    }
                    _ => None,
                };
                if let Some(at) = at {
                    result = self.inner.verify_client_cert(
                        end_entity,
                        intermediates,
                        UnixTime::since_unix_epoch(std::time::Duration::from_secs(at)),
                    );
                }
            }
        }
        if let Err(e) = &result {
            tracing::debug!(tls_verify_status = %format!("Failed:{e}"), "client certificate refused");
        }
        result
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `passthrough` mode: any client certificate is accepted without checking its chain (the
/// target does that with `X-Amzn-Mtls-Clientcert`); a client may send none. The handshake
/// signature is still checked: the client holds the certificate's key.
#[derive(Debug)]
struct Passthrough(Arc<CryptoProvider>);

impl ClientCertVerifier for Passthrough {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn load(cert_file: &Path, key_file: &Path, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, TlsError> {
    let file_error = |path: &Path, message: String| TlsError::File {
        path: path.display().to_string(),
        message,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| file_error(cert_file, format!("cannot read certificates: {e}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(cert_file, format!("bad PEM: {e}")))?;
    if chain.is_empty() {
        return Err(file_error(cert_file, "no CERTIFICATE block found".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| file_error(key_file, format!("cannot read the private key: {e}")))?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| file_error(key_file, format!("unusable private key: {e}")))?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) => {}
        // A key type rustls cannot compare (not RSA, ECDSA or Ed25519 SPKI) is not a mismatch.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(_) => {
            return Err(TlsError::KeyMismatch {
                cert: cert_file.display().to_string(),
                key: key_file.display().to_string(),
            });
        }
    }
    Ok(Arc::new(certified))
}

/// Picks the first certificate valid for the SNI name, else the first one.
#[derive(Debug)]
struct BySni {
    keys: Vec<Arc<CertifiedKey>>,
    /// Each certificate's ARN-shaped id, for the access log's `chosen_cert_arn`.
    arns: Vec<Arc<str>>,
}

impl BySni {
    /// The index of the certificate for `sni`.
    fn choose(&self, sni: Option<&str>) -> Option<usize> {
        if let Some(name) = sni.and_then(|n| ServerName::try_from(n.to_owned()).ok()) {
            let valid = self.keys.iter().position(|key| {
                key.cert
                    .first()
                    .and_then(|leaf| webpki::EndEntityCert::try_from(leaf).ok())
                    .is_some_and(|cert| cert.verify_is_valid_for_subject_name(&name).is_ok())
            });
            if valid.is_some() {
                return valid;
            }
        }
        (!self.keys.is_empty()).then_some(0)
    }
}

impl ResolvesServerCert for BySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.choose(hello.server_name())
            .and_then(|i| self.keys.get(i).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostalb_config::{SSL_POLICIES, ssl_policy};

    fn suites(name: &str) -> Vec<rustls::CipherSuite> {
        let policy = ssl_policy(name).unwrap_or_else(|| panic!("{name}"));
        policy_provider(&policy)
            .cipher_suites
            .iter()
            .map(|s| s.suite())
            .collect()
    }

    fn openssl_name(s: rustls::CipherSuite) -> &'static str {
        use rustls::CipherSuite::*;
        match s {
            TLS13_AES_128_GCM_SHA256 => "TLS_AES_128_GCM_SHA256",
            TLS13_AES_256_GCM_SHA384 => "TLS_AES_256_GCM_SHA384",
            TLS13_CHACHA20_POLY1305_SHA256 => "TLS_CHACHA20_POLY1305_SHA256",
            TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => "ECDHE-ECDSA-AES128-GCM-SHA256",
            TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => "ECDHE-RSA-AES128-GCM-SHA256",
            TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => "ECDHE-ECDSA-AES256-GCM-SHA384",
            TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => "ECDHE-RSA-AES256-GCM-SHA384",
            _ => "unexpected",
        }
    }

    #[test]
    fn policies_map_to_rustls_versions_and_suites_in_albs_order() {
        use rustls::CipherSuite::*;
        assert_eq!(
            suites("ELBSecurityPolicy-TLS13-1-3-2021-06"),
            vec![
                TLS13_AES_128_GCM_SHA256,
                TLS13_AES_256_GCM_SHA384,
                TLS13_CHACHA20_POLY1305_SHA256
            ]
        );
        assert_eq!(
            suites("ELBSecurityPolicy-2016-08"),
            vec![
                TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
                TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
            ]
        );
        let fips = suites("ELBSecurityPolicy-TLS13-1-2-FIPS-2023-04");
        assert_eq!(fips.len(), 6);
        assert!(!fips.contains(&TLS13_CHACHA20_POLY1305_SHA256));
        assert_eq!(suites("ELBSecurityPolicy-TLS13-1-2-2021-06").len(), 7);
        // What DescribeSSLPolicies lists of a policy is what its provider serves, in order.
        for policy in SSL_POLICIES {
            let served: Vec<&str> = suites(policy.name).iter().map(|s| openssl_name(*s)).collect();
            assert_eq!(served, policy.ciphers(), "{}", policy.name);
        }
        for policy in SSL_POLICIES {
            let versions = policy_versions(policy);
            assert!(!versions.is_empty(), "{}", policy.name);
            // Every policy builds a configuration rustls accepts.
            let built = rustls::ServerConfig::builder_with_provider(Arc::new(policy_provider(policy)))
                .with_protocol_versions(&versions);
            assert!(built.is_ok(), "{}", policy.name);
        }
    }
}
