//! Connections to targets: connecting with ALB's 10 s limit, and TLS towards targets.
//! The keep-alive pool a target keeps them in is [`crate::model::pool`].

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::data::errors::{ErrorKind, ProxyError};

/// ALB: a target connection not established within 10 s is a 504.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Opens a connection to `addr` within `CONNECT_TIMEOUT`.
pub(crate) async fn connect(addr: SocketAddr) -> Result<TcpStream, ProxyError> {
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Err(_) => Err(ProxyError::new(ErrorKind::ConnectTimeout)),
        Ok(Err(e)) => Err(ProxyError::io(ErrorKind::ConnectRefused, e)),
        Ok(Ok(stream)) => {
            // Heads and small bodies go out in one write; waiting for more would only add
            // latency.
            let _ = stream.set_nodelay(true);
            Ok(stream)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn refused_connect_is_a_502() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = connect(addr).await.unwrap_err();
        assert_eq!(err.status(), 502);
        assert!(matches!(err.kind, ErrorKind::ConnectRefused));
    }
}

/// TLS towards targets (HTTPS target groups and health checks). ALB does not validate
/// target certificates (alb-spec §3), and neither does hostalb: targets on one host use
/// self-signed certificates more often than not. Handshake signatures are still checked.
#[derive(Clone)]
pub(crate) struct TlsConnector(tokio_rustls::TlsConnector);

impl std::fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsConnector(..)")
    }
}

impl TlsConnector {
    pub(crate) fn new() -> Result<TlsConnector, rustls::Error> {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(std::sync::Arc::new(AnyCertificate(provider)))
            .with_no_client_auth();
        Ok(TlsConnector(tokio_rustls::TlsConnector::from(
            std::sync::Arc::new(config),
        )))
    }

    pub(crate) async fn connect(
        &self,
        addr: SocketAddr,
        stream: TcpStream,
    ) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let name = rustls_pki_types::ServerName::IpAddress(addr.ip().into());
        self.0.connect(name, stream).await
    }
}

/// Accepts any target certificate; verifies handshake signatures with the certificate's key.
#[derive(Debug)]
pub(crate) struct AnyCertificate(pub(crate) std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
