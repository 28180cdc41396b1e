//! The HTTP server: poem's endpoints on hyper connections that gemgate
//! accepts and watches itself, because poem's own `Server` has no header-read
//! deadline, no body deadline and no connection caps, and a client that sends
//! half a request would hold its socket for ever.
//!
//! What every connection gets (all from [`ServerLimits`]):
//! - a place under the total and per-address caps, or an immediate close;
//! - a header deadline: once the first byte of a request arrives, its head
//!   must be complete within `header_read_timeout` (the watchdog looks once
//!   per that timeout, so a slow head is cut within twice it);
//! - an idle deadline: with no request open, the connection closes after
//!   `idle_timeout` without a byte;
//! - a body deadline: a request body must arrive whole within
//!   `body_read_timeout` of its head (reading it later fails with `TimedOut`).
//!
//! A request that is being answered is never cut by these clocks: a long
//! upstream wait or a slow stream is the dispatcher's business.

mod connection;
mod limits;
mod trusted;

pub use limits::ConnectionLimiter;
pub use trusted::{TrustedProxies, client_ip};

use poem::{Endpoint, EndpointExt};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The deadlines and caps every connection is held to.
#[derive(Clone, Debug)]
pub struct ServerLimits {
    /// From a request's first byte to the end of its head.
    pub header_read_timeout: Duration,
    /// How long a connection with no open request may stay silent.
    pub idle_timeout: Duration,
    /// From a request's head to the end of its body.
    pub body_read_timeout: Duration,
    /// Open connections at most.
    pub max_connections: usize,
    /// Open connections per client address at most (trusted proxies are exempt).
    pub max_connections_per_ip: usize,
    /// Peers whose connections are not capped per address.
    pub trusted_proxies: TrustedProxies,
    /// Concurrent HTTP/2 streams per connection.
    pub http2_max_streams: u32,
}

impl ServerLimits {
    /// The limits `[server]` sets.
    pub fn from_config(config: &crate::config::ServerConfig) -> Result<Self, crate::config::ConfigError> {
        Ok(Self {
            header_read_timeout: Duration::from_secs(config.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(config.idle_timeout_secs),
            body_read_timeout: Duration::from_secs(config.body_read_timeout_secs),
            max_connections: config.max_connections,
            max_connections_per_ip: config.max_connections_per_ip,
            trusted_proxies: TrustedProxies::new(config.trusted_networks()?),
            http2_max_streams: 256,
        })
    }
}

/// The type-erased endpoint every connection serves.
pub(crate) type SharedEndpoint = Arc<dyn poem::endpoint::DynEndpoint<Output = poem::Response>>;

/// Serves `endpoint` on `listener` until `shutdown` resolves; then stops
/// accepting, lets open requests finish for at most `grace`, and returns.
pub async fn serve<E>(
    listener: TcpListener,
    endpoint: E,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> std::io::Result<()>
where
    E: Endpoint + 'static,
{
    let endpoint: SharedEndpoint = Arc::new(poem::endpoint::ToDynEndpoint(endpoint.map_to_response()));
    let local = listener.local_addr()?;
    let limiter = Arc::new(ConnectionLimiter::new(limits.max_connections, limits.max_connections_per_ip));
    let limits = Arc::new(limits);
    let stopping = CancellationToken::new();
    let abort = CancellationToken::new();
    let connections = TaskTracker::new();
    tokio::pin!(shutdown);
    loop {
        let (socket, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accepting a connection failed: {err}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let exempt = limits.trusted_proxies.contains(peer.ip());
        let Some(permit) = limiter.admit(peer.ip(), exempt) else {
            tracing::debug!(peer = %peer, "connection refused: too many open connections");
            continue;
        };
        let _ = socket.set_nodelay(true);
        let endpoint = endpoint.clone();
        let limits = limits.clone();
        let (stopping, abort) = (stopping.clone(), abort.clone());
        connections.spawn(async move {
            tokio::select! {
                () = connection::serve(socket, local, peer, endpoint, &limits, stopping) => {}
                () = abort.cancelled() => {}
            }
            drop(permit);
        });
    }
    drop(listener);
    connections.close();
    stopping.cancel();
    if tokio::time::timeout(grace, connections.wait()).await.is_err() {
        tracing::warn!("shutdown grace of {} s ran out; closing the remaining connections", grace.as_secs());
        abort.cancel();
        connections.wait().await;
    }
    Ok(())
}

/// poem's TCP acceptor with `TCP_NODELAY` on every connection, for servers
/// that run on poem's own `Server` (the fake upstream, the benchmark's stack
/// floor). Without it, a reply written in two pieces (a chunk, then the
/// chunked terminator) waits for the peer's delayed ACK: up to 40 ms a reply.
pub struct NoDelayAcceptor(pub poem::listener::TcpAcceptor);

impl poem::listener::Acceptor for NoDelayAcceptor {
    type Io = tokio::net::TcpStream;

    fn local_addr(&self) -> Vec<poem::web::LocalAddr> {
        self.0.local_addr()
    }

    async fn accept(
        &mut self,
    ) -> std::io::Result<(Self::Io, poem::web::LocalAddr, poem::web::RemoteAddr, poem::http::uri::Scheme)> {
        let accepted = self.0.accept().await?;
        let _ = accepted.0.set_nodelay(true);
        Ok(accepted)
    }
}
