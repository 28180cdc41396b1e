//! One accepted connection: hyper serves poem's endpoint on it while a
//! watchdog enforces the header and idle deadlines, and every request body
//! carries its own deadline.

use super::{ServerLimits, SharedEndpoint};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use poem::Endpoint;
use poem::web::{LocalAddr, RemoteAddr};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

type HttpBody = BoxBody<Bytes, std::io::Error>;

/// Serves one connection until the client closes it, a deadline passes, or a
/// graceful stop has let its open requests finish.
pub(super) async fn serve(
    socket: TcpStream,
    local: SocketAddr,
    peer: SocketAddr,
    endpoint: SharedEndpoint,
    limits: &ServerLimits,
    stopping: CancellationToken,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(WatchedIo { inner: socket, activity: activity.clone() });
    let body_read_timeout = limits.body_read_timeout;
    let service = hyper::service::service_fn({
        let activity = activity.clone();
        move |request: poem::http::Request<Incoming>| {
            let guard = activity.request_started();
            let endpoint = endpoint.clone();
            async move {
                let mut request = poem::Request::from((
                    request,
                    LocalAddr(poem::Addr::SocketAddr(local)),
                    RemoteAddr(poem::Addr::SocketAddr(peer)),
                    poem::http::uri::Scheme::HTTP,
                ));
                let body: HttpBody = request.take_body().into();
                if body.is_end_stream() {
                    request.set_body(poem::Body::from(body));
                } else {
                    let deadline = tokio::time::Instant::now() + body_read_timeout;
                    let body = DeadlineBody { inner: body, deadline, sleep: None };
                    request.set_body(poem::Body::from(BoxBody::new(body)));
                }
                let response: poem::http::Response<HttpBody> = endpoint.get_response(request).await.into();
                Ok::<_, Infallible>(response.map(|body| InFlightBody { inner: body, _guard: guard }))
            }
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http2().max_concurrent_streams(limits.http2_max_streams);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let watchdog = watchdog(&activity, limits);
    tokio::pin!(watchdog);
    let mut draining = false;
    loop {
        tokio::select! {
            _ = &mut connection => return,
            () = &mut watchdog => {
                tracing::debug!(peer = %peer, "closing a connection that missed its header or idle deadline");
                return;
            }
            () = stopping.cancelled(), if !draining => {
                draining = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// What the watchdog reads: open requests and the times that start clocks,
/// as milliseconds since the connection opened (0: not set).
struct Activity {
    opened: Instant,
    in_flight: AtomicU32,
    head_started_ms: AtomicU64,
    idle_since_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            in_flight: AtomicU32::new(0),
            head_started_ms: AtomicU64::new(0),
            idle_since_ms: AtomicU64::new(1),
        }
    }

    fn now_ms(&self) -> u64 {
        self.opened.elapsed().as_millis() as u64 + 1
    }

    fn request_started(self: &Arc<Self>) -> InFlightGuard {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started_ms.store(0, Ordering::Release);
        InFlightGuard(self.clone())
    }

    /// Bytes arrived: with no request open they begin a head, whose clock
    /// starts now. (The watchdog is not woken: it looks again within one
    /// header timeout anyway, and a wake-up per request would cost the hot
    /// path a task switch and a timer.)
    fn bytes_read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0 && self.head_started_ms.load(Ordering::Acquire) == 0 {
            let _ = self.head_started_ms.compare_exchange(0, self.now_ms(), Ordering::AcqRel, Ordering::Acquire);
        }
    }

    /// When the connection must close, if nothing changes; `None` while a request is open.
    fn deadline_ms(&self, limits: &ServerLimits) -> Option<u64> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let head_started = self.head_started_ms.load(Ordering::Acquire);
        if head_started != 0 {
            return Some(head_started + limits.header_read_timeout.as_millis() as u64);
        }
        Some(self.idle_since_ms.load(Ordering::Acquire) + limits.idle_timeout.as_millis() as u64)
    }
}

/// Resolves when the connection has missed its header or idle deadline. It
/// looks at least once per header timeout, so a head that starts while it
/// sleeps is cut within twice that timeout.
async fn watchdog(activity: &Activity, limits: &ServerLimits) {
    loop {
        let now = activity.now_ms();
        let wait = match activity.deadline_ms(limits) {
            Some(deadline) if deadline <= now => return,
            Some(deadline) => Duration::from_millis(deadline - now),
            None => limits.idle_timeout,
        };
        tokio::time::sleep(wait.min(limits.header_read_timeout)).await;
    }
}

/// Counts a request as open until its response body is dropped (sent or abandoned).
struct InFlightGuard(Arc<Activity>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let activity = &self.0;
        if activity.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            activity.idle_since_ms.store(activity.now_ms(), Ordering::Release);
        }
    }
}

/// The socket, reporting reads to the connection's [`Activity`].
struct WatchedIo {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for WatchedIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_read();
        }
        result
    }
}

impl AsyncWrite for WatchedIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A response body that keeps its request counted as open.
struct InFlightBody {
    inner: HttpBody,
    _guard: InFlightGuard,
}

impl Body for InFlightBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body that fails with `TimedOut` when it has not arrived whole by
/// its deadline. The timer is armed only when a read would wait.
struct DeadlineBody {
    inner: HttpBody,
    deadline: tokio::time::Instant,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Body for DeadlineBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        let deadline = self.deadline;
        let sleep = self.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the request body did not arrive in time",
            )))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
