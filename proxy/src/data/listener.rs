//! Listening sockets and the accept loop: one task accepts, one task per connection
//! serves it (TLS first on HTTPS listeners).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::data::conn::ClientConn;
use crate::data::session;
use crate::model::metrics::inc;
use crate::model::shared::Shared;
use crate::model::snapshot::ListenerId;

/// Pending connections the kernel queues before hostalb accepts them.
const BACKLOG: i32 = 4096;
/// ALB's TLS handshake limit towards targets, used here for clients too: a client that
/// cannot finish a handshake in 10 s is not going to.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds a listening socket (`SO_REUSEADDR`; dual-stack when bound to `[::]`).
pub(crate) fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        let _ = socket.set_only_v6(false);
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// Accepts until `stop` fires; then the socket closes (new connections are refused) while
/// accepted connections carry on.
pub(crate) async fn accept_loop(
    shared: Arc<Shared>,
    id: ListenerId,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
) {
    let bound = listener.local_addr().ok();
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(connection(shared.clone(), id, stream, peer));
                }
                Err(e) => {
                    // Out of file descriptors or memory: back off briefly instead of spinning;
                    // the kernel keeps the backlog meanwhile.
                    inc(&shared.metrics.rejected_connections);
                    tracing::warn!(listener = ?bound, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
}

async fn connection(shared: Arc<Shared>, id: ListenerId, mut stream: TcpStream, peer: SocketAddr) {
    let Ok(local) = stream.local_addr() else { return };
    let tls = shared.snapshot.load().listener(id).and_then(|l| l.tls.clone());
    match tls {
        None => {
            let (rd, wr) = stream.split();
            session::serve(shared, ClientConn::new(rd, wr, peer, local, false, id)).await;
        }
        // Boxed: a plain connection's task need not make room for the TLS handshake.
        Some(acceptor) => {
            Box::pin(async move {
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.0.accept(stream)).await {
                    Ok(Ok(tls_stream)) => {
                        let (rd, wr) = tokio::io::split(tls_stream);
                        session::serve(shared, ClientConn::new(rd, wr, peer, local, true, id)).await;
                    }
                    _ => inc(&shared.metrics.client_tls_negotiation_errors),
                }
            })
            .await
        }
    }
}
