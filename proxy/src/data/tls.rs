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

/// A listener's TLS acceptor.
#[derive(Clone)]
pub(crate) struct Acceptor(pub(crate) tokio_rustls::TlsAcceptor);

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Acceptor(..)")
    }
}

/// Builds the acceptor for a listener's certificates.
pub(crate) fn acceptor(certificates: &[Certificate]) -> Result<Acceptor, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut keys = Vec::new();
    for c in certificates {
        keys.push(load(&c.cert_file, &c.key_file, &provider)?);
    }
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(BySni { keys }));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Acceptor(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
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
}

impl ResolvesServerCert for BySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = hello
            .server_name()
            .and_then(|n| ServerName::try_from(n.to_owned()).ok())
        {
            for key in &self.keys {
                let Some(leaf) = key.cert.first() else { continue };
                let Ok(cert) = webpki::EndEntityCert::try_from(leaf) else {
                    continue;
                };
                if cert.verify_is_valid_for_subject_name(&name).is_ok() {
                    return Some(key.clone());
                }
            }
        }
        self.keys.first().cloned()
    }
}
