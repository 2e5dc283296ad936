//! HTTPS listeners: certificates from PEM files, chosen by SNI (the first certificate is
//! the default, as the listener's default certificate is on ALB).

use std::path::Path;
use std::sync::Arc;

use hostalb_config::Certificate;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A listener's TLS acceptor, and its certificates (to name the one a client was given).
#[derive(Clone)]
pub(crate) struct Acceptor(pub(crate) tokio_rustls::TlsAcceptor, Arc<BySni>);

/// What the access log says of a client's TLS connection.
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

impl Acceptor {
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

/// Builds the acceptor for a listener's certificates.
pub(crate) fn acceptor(certificates: &[Certificate]) -> Result<Acceptor, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut keys = Vec::new();
    let mut arns = Vec::new();
    for c in certificates {
        keys.push(load(&c.cert_file, &c.key_file, &provider)?);
        arns.push(Arc::from(crate::model::arn::certificate_arn(
            &c.cert_file.display().to_string(),
        )));
    }
    let by_sni = Arc::new(BySni { keys, arns });
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(by_sni.clone());
    config.alpn_protocols = alpn_protocols(HTTP2_ENABLED);
    Ok(Acceptor(
        tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        by_sni,
    ))
}

/// Whether HTTPS listeners offer HTTP/2 (ALB's `routing.http2.enabled`, default true).
const HTTP2_ENABLED: bool = true;
/// The ALPN protocol id of HTTP/2 over TLS.
pub(crate) const ALPN_H2: &[u8] = b"h2";
/// The ALPN protocol id of HTTP/1.1.
const ALPN_HTTP1: &[u8] = b"http/1.1";

/// The protocols an HTTPS listener offers in ALPN, in order of preference: `h2` first
/// when HTTP/2 is on (a client that offers both gets HTTP/2, as from ALB), then
/// `http/1.1`.
pub(crate) fn alpn_protocols(http2: bool) -> Vec<Vec<u8>> {
    let mut list = Vec::with_capacity(2);
    if http2 {
        list.push(ALPN_H2.to_vec());
    }
    list.push(ALPN_HTTP1.to_vec());
    list
}

fn load(
    cert_file: &Path,
    key_file: &Path,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsError> {
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
    Ok(Arc::new(CertifiedKey::new(chain, signing)))
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
