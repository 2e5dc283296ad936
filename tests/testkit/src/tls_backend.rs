//! [`TlsBackend`]: an HTTPS target (HTTP/1.1 over TLS with a fresh self-signed certificate,
//! tokio-rustls) that counts its TLS handshakes and records the server name each client
//! sent and every request, so that a test can see connection reuse and SNI.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::sync::lock;

/// The largest request head the backend reads.
const MAX_HEAD: usize = 64 * 1024;

/// A self-signed certificate and its key, both PEM.
#[derive(Debug, Clone)]
pub struct SelfSigned {
    pub cert_pem: String,
    pub key_pem: String,
}

impl SelfSigned {
    /// A fresh certificate for these DNS names (and 127.0.0.1).
    pub fn new(names: &[&str]) -> SelfSigned {
        let mut sans: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        sans.push("127.0.0.1".to_owned());
        let cert = rcgen::generate_simple_self_signed(sans).expect("self-signed certificate");
        SelfSigned {
            cert_pem: cert.cert.pem(),
            key_pem: cert.signing_key.serialize_pem(),
        }
    }

    /// Writes `cert.pem` and `key.pem` into `dir`; returns their paths.
    pub fn write_to(&self, dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, &self.cert_pem).expect("write cert.pem");
        std::fs::write(&key, &self.key_pem).expect("write key.pem");
        (cert, key)
    }

    fn server_config(&self) -> rustls::ServerConfig {
        let certs = vec![
            rustls::pki_types::pem::PemObject::from_pem_slice(self.cert_pem.as_bytes())
                .expect("certificate PEM"),
        ];
        let key =
            rustls::pki_types::pem::PemObject::from_pem_slice(self.key_pem.as_bytes()).expect("key PEM");
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server certificate")
    }
}

/// One request a [`TlsBackend`] received.
#[derive(Debug, Clone)]
pub struct TlsRequest {
    /// Which TLS connection (numbered from 1 in handshake order) carried it.
    pub connection: usize,
    pub method: String,
    pub target: String,
    pub host: Option<String>,
    pub user_agent: Option<String>,
    pub body_len: usize,
}

#[derive(Debug)]
struct State {
    name: String,
    handshakes: AtomicUsize,
    server_names: Mutex<Vec<Option<String>>>,
    requests: Mutex<Vec<TlsRequest>>,
    /// The status of `/health*` answers.
    health_status: AtomicU16,
}

/// An HTTPS target on a loopback port. Every path answers `200` with the backend's name as
/// the body, except `/health*`, which answers the status [`TlsBackend::set_health_status`]
/// sets (200 at first). Connections are kept alive unless the request says
/// `Connection: close`.
#[derive(Debug)]
pub struct TlsBackend {
    addr: SocketAddr,
    state: Arc<State>,
    certificate: SelfSigned,
    task: JoinHandle<()>,
}

impl Drop for TlsBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsBackend {
    /// Starts a backend named `name` on 127.0.0.1:0.
    pub async fn start(name: &str) -> TlsBackend {
        let certificate = SelfSigned::new(&["target.test"]);
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(certificate.server_config()));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(State {
            name: name.to_owned(),
            handshakes: AtomicUsize::new(0),
            server_names: Mutex::new(Vec::new()),
            requests: Mutex::new(Vec::new()),
            health_status: AtomicU16::new(200),
        });
        let st = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, st) = (acceptor.clone(), st.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let connection = st.handshakes.fetch_add(1, Ordering::SeqCst) + 1;
                    lock(&st.server_names).push(tls.get_ref().1.server_name().map(str::to_owned));
                    serve(tls, connection, &st).await;
                });
            }
        });
        TlsBackend {
            addr,
            state,
            certificate,
            task,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Completed TLS handshakes (new TLS connections) so far.
    pub fn handshakes(&self) -> usize {
        self.state.handshakes.load(Ordering::SeqCst)
    }

    /// The SNI server name of each connection, in handshake order (`None`: none sent).
    pub fn server_names(&self) -> Vec<Option<String>> {
        lock(&self.state.server_names).clone()
    }

    pub fn requests(&self) -> Vec<TlsRequest> {
        lock(&self.state.requests).clone()
    }

    /// Requests other than health checks (`/health*`).
    pub fn traffic(&self) -> Vec<TlsRequest> {
        self.requests()
            .into_iter()
            .filter(|r| !r.target.starts_with("/health"))
            .collect()
    }

    /// The status `/health*` answers from now on.
    pub fn set_health_status(&self, status: u16) {
        self.state.health_status.store(status, Ordering::SeqCst);
    }

    /// The backend's certificate (any test may reuse it for a listener).
    pub fn certificate(&self) -> &SelfSigned {
        &self.certificate
    }
}

/// Serves HTTP/1.1 requests on one TLS connection until it closes.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut io: S, connection: usize, st: &State) {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        // Read one request head.
        let (head_len, req) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut parsed = httparse::Request::new(&mut headers);
            match parsed.parse(&buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let header = |name: &str| {
                        parsed
                            .headers
                            .iter()
                            .find(|h| h.name.eq_ignore_ascii_case(name))
                            .map(|h| String::from_utf8_lossy(h.value).into_owned())
                    };
                    let length: usize = header("content-length")
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
                    let req = TlsRequest {
                        connection,
                        method: parsed.method.unwrap_or("").to_owned(),
                        target: parsed.path.unwrap_or("").to_owned(),
                        host: header("host"),
                        user_agent: header("user-agent"),
                        body_len: length,
                    };
                    break (n, (req, close));
                }
                Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
                _ => return,
            }
            match io.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let (req, close) = req;
        buf.drain(..head_len);
        // Read (and drop) the body.
        while buf.len() < req.body_len {
            match io.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..req.body_len);
        let (status, body) = if req.target.starts_with("/health") {
            (st.health_status.load(Ordering::SeqCst), String::new())
        } else {
            (200, st.name.clone())
        };
        lock(&st.requests).push(req);
        let response = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n{body}",
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        if io.write_all(response.as_bytes()).await.is_err() || io.flush().await.is_err() {
            return;
        }
        if close {
            let _ = io.shutdown().await;
            return;
        }
    }
}
