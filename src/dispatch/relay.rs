//! The relay: streams Google's reply body to the client chunk by chunk, keeps
//! the tail for token counts, and when the body ends tells the pool and the
//! request log how it went. An upstream cut after the first byte ends the
//! stream with a [`StreamCut`] for the API layer to frame in its dialect.

use super::usage::Tail;
use super::{AttemptFailure, Dispatcher, RequestContext, failed_event};
use crate::pool::{KeyEvent, Lease};
use crate::upstream::{FailureKind, GoogleError};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

/// Google's body as reqwest streams it.
pub(crate) type UpstreamBody = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// The reply broke after bytes reached the client: no retry is possible.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamCut {
    /// What happened, for the client's error event.
    pub message: String,
    /// Bytes the client had already received.
    pub bytes_sent: u64,
}

/// The client-facing body of a committed reply.
pub struct RelayStream {
    inner: Pin<Box<dyn Stream<Item = Result<Bytes, StreamCut>> + Send>>,
}

impl Stream for RelayStream {
    type Item = Result<Bytes, StreamCut>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// What the relay must report when the body ends (or the client leaves).
struct Finish {
    dispatcher: Arc<Dispatcher>,
    ctx: RequestContext,
    lease: Option<Lease>,
    attempt_started: Instant,
    tail: Tail,
    sent: u64,
}

struct Relay {
    upstream: UpstreamBody,
    first: Option<Bytes>,
    finish: Finish,
}

impl RelayStream {
    pub(crate) fn new(
        dispatcher: Arc<Dispatcher>,
        ctx: RequestContext,
        lease: Lease,
        attempt_started: Instant,
        first: Bytes,
        upstream: UpstreamBody,
    ) -> Self {
        let finish = Finish { dispatcher, ctx, lease: Some(lease), attempt_started, tail: Tail::default(), sent: 0 };
        let relay = Relay { upstream, first: (!first.is_empty()).then_some(first), finish };
        let stream = futures_util::stream::unfold(Some(relay), |relay| async move {
            let mut relay = relay?;
            if let Some(first) = relay.first.take() {
                relay.finish.note(&first);
                return Some((Ok(first), Some(relay)));
            }
            let idle = relay.finish.dispatcher.stream_idle_timeout;
            match tokio::time::timeout(idle, relay.upstream.next()).await {
                Ok(Some(Ok(chunk))) => {
                    relay.finish.note(&chunk);
                    Some((Ok(chunk), Some(relay)))
                }
                Ok(None) => {
                    relay.finish.succeeded();
                    None
                }
                Ok(Some(Err(err))) => {
                    let why = format!("the upstream connection broke: {}", without_url(&err));
                    Some((Err(relay.finish.cut(FailureKind::StreamCut, why)), None))
                }
                Err(_) => {
                    let why = format!("the upstream sent nothing for {} s", idle.as_secs());
                    Some((Err(relay.finish.cut(FailureKind::Timeout, why)), None))
                }
            }
        });
        Self { inner: Box::pin(stream) }
    }
}

impl Finish {
    fn note(&mut self, chunk: &Bytes) {
        self.sent += chunk.len() as u64;
        self.tail.push(chunk);
    }

    fn key_fp(&self) -> Option<crate::keys::Fingerprint> {
        self.lease.as_ref().map(|l| l.slot().record.fingerprint)
    }

    fn succeeded(&mut self) {
        if let Some(lease) = self.lease.take() {
            self.dispatcher.succeeded(&self.ctx, lease, self.attempt_started, &self.tail.joined());
        }
    }

    fn cut(&mut self, kind: FailureKind, message: String) -> StreamCut {
        let failure = AttemptFailure {
            kind,
            google: GoogleError { message: message.clone(), ..GoogleError::default() },
            body: Bytes::new(),
        };
        let key_fp = self.key_fp();
        if let Some(lease) = self.lease.take() {
            // The policy decides what the cut does to the key; a retry is impossible.
            let decision = self.dispatcher.decide(&self.ctx, &lease, &failure, self.sent);
            self.dispatcher.log_attempt_error(&self.ctx, &lease, &failure);
            tracing::warn!(key = %lease.slot().record.fingerprint, sent = self.sent, "upstream stream cut mid-reply: {message}");
            lease.settle(failed_event(&failure, &decision, self.attempt_started.elapsed()));
        }
        let record = self.ctx.record(200, key_fp, self.tail.usage(), Some(format!("stream cut: {message}")));
        self.dispatcher.log(record);
        StreamCut { message, bytes_sent: self.sent }
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        // Still holding the lease: the client went away before the end.
        if let Some(lease) = self.lease.take() {
            let record = self.ctx.record(
                499,
                Some(lease.slot().record.fingerprint),
                self.tail.usage(),
                Some("client closed the connection".into()),
            );
            self.dispatcher.log(record);
            lease.settle(KeyEvent::Abandoned);
        }
    }
}

/// reqwest errors print the URL; ours has no secret in it, but keep it short.
fn without_url(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    if let Some(at) = text.find(" for url") {
        text.truncate(at);
    }
    text
}

/// Google's response headers worth passing to the client. `content-length`
/// passes for a whole reply (`keep_length`): it is relayed byte for byte, and a
/// promised length is the one way a client can tell a cut reply from a
/// complete one (hyper ends a chunked body cleanly even when its source
/// fails). Streams may gain an error event, so their length does not pass.
pub(crate) fn passed_headers(headers: &HeaderMap, keep_length: bool) -> Vec<(HeaderName, HeaderValue)> {
    headers
        .iter()
        .filter(|(name, _)| {
            let name = name.as_str();
            name == "content-type"
                || (keep_length && name == "content-length")
                || name == "content-disposition"
                || name == "server-timing"
                || name.starts_with("x-gemini-")
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}
