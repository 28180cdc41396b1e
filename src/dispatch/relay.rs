//! The relay: streams Google's reply body to the client chunk by chunk, keeps
//! the tail for token counts, and when the body ends tells the pool and the
//! request log how it went. An upstream cut after the first byte ends the
//! stream with a [`StreamCut`] for the API layer to frame in its dialect.

use super::AttemptFailure;
use super::ledger::Ledger;
use super::usage::Tail;
use super::verdict::{decide, failed_event};
use crate::policy::SharedPolicy;
use crate::pool::Lease;
use crate::upstream::{FailureKind, GoogleError};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

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

/// What the relay needs from the attempt that committed the reply.
pub(crate) struct Relay {
    /// Decides what a cut does to the key.
    pub policy: SharedPolicy,
    /// Longest silence inside the body.
    pub idle_timeout: Duration,
    /// The request's record, closed when the body ends.
    pub ledger: Ledger,
    /// The key serving the reply.
    pub lease: Lease,
    /// When the attempt began.
    pub attempt_started: Instant,
}

/// What the relay must report when the body ends (or the client leaves).
struct Finish {
    policy: SharedPolicy,
    /// Both taken when reported; still here on drop means the client left.
    open: Option<(Ledger, Lease)>,
    attempt_started: Instant,
    tail: Tail,
    sent: u64,
}

struct Flow {
    upstream: UpstreamBody,
    first: Option<Bytes>,
    idle: Duration,
    finish: Finish,
}

impl RelayStream {
    pub(crate) fn new(relay: Relay, first: Bytes, upstream: UpstreamBody) -> Self {
        let Relay { policy, idle_timeout, ledger, lease, attempt_started } = relay;
        let finish = Finish { policy, open: Some((ledger, lease)), attempt_started, tail: Tail::default(), sent: 0 };
        let flow = Flow { upstream, first: (!first.is_empty()).then_some(first), idle: idle_timeout, finish };
        let stream = futures_util::stream::unfold(Some(flow), |flow| async move {
            let mut flow = flow?;
            if let Some(first) = flow.first.take() {
                flow.finish.note(&first);
                return Some((Ok(first), Some(flow)));
            }
            match tokio::time::timeout(flow.idle, flow.upstream.next()).await {
                Ok(Some(Ok(chunk))) => {
                    flow.finish.note(&chunk);
                    Some((Ok(chunk), Some(flow)))
                }
                Ok(None) => {
                    flow.finish.succeeded();
                    None
                }
                Ok(Some(Err(err))) => {
                    let why = format!("the upstream connection broke: {}", without_url(&err));
                    Some((Err(flow.finish.cut(FailureKind::StreamCut, why)), None))
                }
                Err(_) => {
                    let why = format!("the upstream sent nothing for {} s", flow.idle.as_secs());
                    Some((Err(flow.finish.cut(FailureKind::Timeout, why)), None))
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

    fn succeeded(&mut self) {
        if let Some((ledger, lease)) = self.open.take() {
            ledger.served(lease, self.attempt_started, &self.tail.joined());
        }
    }

    fn cut(&mut self, kind: FailureKind, message: String) -> StreamCut {
        if let Some((ledger, lease)) = self.open.take() {
            let failure = AttemptFailure {
                kind,
                google: GoogleError { message: message.clone(), ..GoogleError::default() },
                body: Bytes::new(),
            };
            // The policy decides what the cut does to the key; a retry is impossible.
            let decision = decide(&self.policy, &ledger, &lease, &failure, self.sent);
            tracing::warn!(key = %lease.slot().record.fingerprint, sent = self.sent, "upstream stream cut mid-reply: {message}");
            let event = failed_event(&failure, &decision, self.attempt_started.elapsed());
            ledger.cut(lease, &failure, event, self.tail.usage());
        }
        StreamCut { message, bytes_sent: self.sent }
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        // Still open: the client went away before the end.
        if let Some((ledger, lease)) = self.open.take() {
            ledger.abandoned(lease, self.tail.usage());
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
