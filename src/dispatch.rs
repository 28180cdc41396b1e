//! The attempt loop: lease a key → call Google → classify → tell the pool →
//! ask the policy → repeat within the retry budget. A reply is committed to
//! the client only once its first body bytes arrived, so everything before
//! that fails over transparently.

mod empty_reply;
mod key_failures;
mod relay;
mod usage;

use empty_reply::{Framing, StreamJudge, Verdict, judge_whole};
pub use key_failures::{KeyFailures, is_keys_own};
pub use relay::{RelayStream, StreamCut};
pub use usage::{Usage, parse_usage};

use crate::config::RetryConfig;
use crate::key_state::CooldownEntry;
use crate::keys::Fingerprint;
use crate::policy::{CooldownScope, Decision, NextStep, Outcome, SharedPolicy};
use crate::pool::{KeyEvent, Lease, LeaseError, PoolHandle};
use crate::store::{ErrorRecord, RequestRecord, StoreHandle};
use crate::upstream::{FailureKind, GoogleError, UpstreamClient, UpstreamRequest, classify_google_error, read_limited};
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use reqwest::header::{HeaderName, HeaderValue};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// How the reply body is framed, which decides how a mid-stream cut is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamMode {
    /// One JSON document.
    Whole,
    /// Server-sent events (`alt=sse`).
    Sse,
    /// Google's incrementally streamed JSON array.
    JsonArray,
}

/// One client request to serve through the pool.
#[derive(Clone, Debug)]
pub struct ProxyRequest {
    /// What to send upstream.
    pub upstream: UpstreamRequest,
    /// The model (empty for model-less calls such as listing models).
    pub model: Arc<str>,
    /// Framing of the reply.
    pub mode: StreamMode,
    /// Route name for the log (`generateContent`, …).
    pub route: &'static str,
    /// Who asked (client id for the log).
    pub client: Arc<str>,
}

/// A failed attempt: Google's answer (or its absence) and its class.
#[derive(Clone, Debug)]
pub struct AttemptFailure {
    /// The class.
    pub kind: FailureKind,
    /// Google's parsed error (http_status 0 when there was no response).
    pub google: GoogleError,
    /// Google's raw error body, to hand back unchanged.
    pub body: Bytes,
}

/// Why a request could not be served.
#[derive(Debug)]
pub enum DispatchError {
    /// No key could be leased; `last` is the last upstream failure, if any.
    NoKey {
        /// Why the pool said no.
        reason: LeaseError,
        /// The model asked for.
        model: Arc<str>,
        /// The last attempt's failure before the pool ran dry.
        last: Option<AttemptFailure>,
        /// What the keys this request tried said about themselves.
        tried: KeyFailures,
    },
    /// Google's answer is final (the request's fault, or the budget is spent).
    Upstream(AttemptFailure),
}

/// A reply committed to the client: status, headers, and the body.
pub struct ProxyResponse {
    /// Google's status (2xx).
    pub status: u16,
    /// Google's headers that matter to clients.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The body.
    pub body: ReplyBody,
}

/// A reply body: already complete, or still streaming from Google.
pub enum ReplyBody {
    /// The whole body arrived with the first read (the attempt is settled).
    Complete(Bytes),
    /// The body, chunk by chunk as it arrives.
    Streaming(RelayStream),
}

/// Serves requests through the pool; one per process, shared.
pub struct Dispatcher {
    /// The key pool.
    pub pool: PoolHandle,
    /// The upstream client.
    pub upstream: UpstreamClient,
    /// The active failover policy.
    pub policy: SharedPolicy,
    /// Attempts budget (swapped when config.toml changes).
    pub retry: arc_swap::ArcSwap<RetryConfig>,
    /// Longest silence inside a streamed body.
    pub stream_idle_timeout: Duration,
    /// Request log and key state sink.
    pub store: StoreHandle,
    /// Prometheus metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// Per-request bookkeeping shared by the loop and the relay.
pub(crate) struct RequestContext {
    pub request: ProxyRequest,
    pub received_at: SystemTime,
    pub started: Instant,
    pub attempts: u32,
    /// Failures that spend the request's own budget (5xx, timeouts, cuts, overload).
    pub request_failures: u32,
    /// Failures that belong to the keys tried (they do not spend the budget).
    pub key_failures: KeyFailures,
    /// Empty replies retried on another key so far.
    pub empty_retries: u32,
}

/// A reply committed to by an attempt: its head, the bytes read so far, the
/// rest of the body, whether it has ended, and, when it ended empty, its
/// finish reason.
struct Answer {
    status: u16,
    headers: Vec<(HeaderName, HeaderValue)>,
    first: Bytes,
    rest: relay::UpstreamBody,
    ended: bool,
    empty: Option<Option<String>>,
}

/// A reply larger than this is not empty: it is relayed without more holding back.
const HOLD_LIMIT: usize = 1 << 20;

/// Whether the upstream call generates content (the calls empty replies are judged for).
fn is_generate(path_and_query: &str) -> bool {
    path_and_query.contains(":generateContent") || path_and_query.contains(":streamGenerateContent")
}

impl Dispatcher {
    /// Serves `request`, failing over between keys as the policy says.
    pub async fn dispatch(self: &Arc<Self>, request: ProxyRequest) -> Result<ProxyResponse, DispatchError> {
        let mut ctx = RequestContext {
            request,
            received_at: SystemTime::now(),
            started: Instant::now(),
            attempts: 0,
            request_failures: 0,
            key_failures: KeyFailures::default(),
            empty_retries: 0,
        };
        let mut tried = Vec::new();
        let mut kept: Option<Lease> = None;
        let mut last: Option<AttemptFailure> = None;
        let mut kept_empty: Option<(ProxyResponse, Fingerprint)> = None;
        loop {
            let lease = match kept.take() {
                Some(lease) => lease,
                None => match self.pool.lease(&ctx.request.model, &tried).await {
                    Ok(lease) => lease,
                    Err(reason) => {
                        if let Some((reply, key_fp)) = kept_empty {
                            let usage = match &reply.body {
                                ReplyBody::Complete(body) => parse_usage(body),
                                ReplyBody::Streaming(_) => Usage::default(),
                            };
                            self.log(ctx.record(200, Some(key_fp), usage, Some("empty reply".into())));
                            return Ok(reply);
                        }
                        let error = out_of_keys(&ctx, reason, last);
                        return Err(self.fail(&ctx, None, error));
                    }
                },
            };
            ctx.attempts += 1;
            tried.push(lease.slot().index);
            let attempt_started = Instant::now();
            let failure = match self.attempt(&ctx.request, &lease).await {
                Ok(answer) => {
                    let Answer { status, headers, first, mut rest, ended, empty } = answer;
                    if let Some(finish_reason) = empty
                        && self.retry_empty_reply(&ctx, &lease, finish_reason)
                    {
                        self.metrics.attempt("empty_reply", ctx.attempts > 1);
                        let key_fp = lease.slot().record.fingerprint;
                        lease.settle(KeyEvent::Failed {
                            latency: attempt_started.elapsed(),
                            charge: false,
                            error: "empty reply (retried on another key)".into(),
                            cooldown: None,
                            disable: None,
                        });
                        ctx.empty_retries += 1;
                        ctx.request_failures += 1;
                        // Kept: if no other key can serve, the empty reply is still the answer.
                        kept_empty =
                            Some((ProxyResponse { status, headers, body: ReplyBody::Complete(first) }, key_fp));
                        last = None;
                        continue;
                    }
                    self.metrics.attempt("success", ctx.attempts > 1);
                    // The common small reply: everything came in the first read(s).
                    let peeked = if ended { Some(None) } else { rest.next().now_or_never() };
                    let body = match peeked {
                        Some(None) => {
                            self.succeeded(&ctx, lease, attempt_started, &first);
                            ReplyBody::Complete(first)
                        }
                        peeked => {
                            if let Some(Some(item)) = peeked {
                                rest = Box::pin(futures_util::stream::once(async { item }).chain(rest));
                            }
                            ReplyBody::Streaming(RelayStream::new(
                                self.clone(),
                                ctx,
                                lease,
                                attempt_started,
                                first,
                                rest,
                            ))
                        }
                    };
                    return Ok(ProxyResponse { status, headers, body });
                }
                Err(failure) => failure,
            };
            self.metrics.attempt(failure.kind.as_str(), ctx.attempts > 1);
            self.log_attempt_error(&ctx, &lease, &failure);
            let decision = self.decide(&ctx, &lease, &failure, 0);
            let event = failed_event(&failure, &decision, attempt_started.elapsed());
            tracing::info!(
                key = %lease.slot().record.fingerprint,
                model = %ctx.request.model,
                attempt = ctx.attempts,
                status = failure.google.http_status,
                kind = failure.kind.as_str(),
                next = ?decision.next,
                "upstream attempt failed"
            );
            // Two budgets: the request's own (attempts and time) is spent only by
            // failures that say nothing about the key; a key's own failure moves
            // on to another key, bounded by the keys there are and by time.
            let keys_own = is_keys_own(&failure.kind);
            if keys_own {
                let rest_until = decision.cooldown.as_ref().map(|c| SystemTime::now() + c.duration);
                ctx.key_failures.record(&failure.kind, rest_until);
            } else {
                ctx.request_failures += 1;
            }
            let retry = self.retry.load();
            let out_of_time = ctx.started.elapsed() >= Duration::from_secs(retry.max_elapsed_secs);
            let out_of_budget = out_of_time
                || ctx.request_failures >= retry.max_attempts
                || ctx.key_failures.total() >= retry.max_key_failures;
            match decision.next {
                NextStep::Fail => {
                    let key_fp = lease.slot().record.fingerprint;
                    lease.settle(event);
                    return Err(self.fail(&ctx, Some(key_fp), DispatchError::Upstream(failure)));
                }
                _ if out_of_budget => {
                    let key_fp = lease.slot().record.fingerprint;
                    lease.settle(event);
                    let error = if keys_own {
                        out_of_keys(&ctx, LeaseError::AllTried, Some(failure))
                    } else {
                        DispatchError::Upstream(failure)
                    };
                    return Err(self.fail(&ctx, Some(key_fp), error));
                }
                NextStep::RetryOtherKey { after } => {
                    lease.settle(event);
                    tokio::time::sleep(after).await;
                }
                NextStep::RetrySameKey { after } => {
                    let mut lease = lease;
                    lease.settle_and_keep(event);
                    tried.pop();
                    kept = Some(lease);
                    tokio::time::sleep(after).await;
                }
            }
            last = Some(failure);
        }
    }

    /// One attempt: the response head, then the first body chunk, or more
    /// when empty replies are judged (the whole of a non-streamed reply; a
    /// stream's events until one carries content).
    async fn attempt(&self, request: &ProxyRequest, lease: &Lease) -> Result<Answer, AttemptFailure> {
        let response = self.upstream.send(&request.upstream, &lease.slot().record.key).await.map_err(no_response)?;
        let status = response.status().as_u16();
        if !response.status().is_success() {
            // Google may quote the key it was sent; whatever its shape, it goes no further.
            let key = &lease.slot().record.key;
            let body = crate::keys::redact_key_in(read_limited(response, 64 * 1024).await, key);
            let google = GoogleError::parse(status, &body);
            return Err(AttemptFailure { kind: classify_google_error(&google), google, body });
        }
        let headers = relay::passed_headers(response.headers(), request.mode == StreamMode::Whole);
        let mut rest: relay::UpstreamBody = Box::pin(response.bytes_stream());
        let first = match self.next_chunk(&mut rest).await? {
            Some(first) => first,
            None => return Ok(Answer { status, headers, first: Bytes::new(), rest, ended: true, empty: None }),
        };
        let judges = self.policy.load().checks_empty_replies() && is_generate(&request.upstream.path_and_query);
        if !judges {
            return Ok(Answer { status, headers, first, rest, ended: false, empty: None });
        }
        let mut held = bytes::BytesMut::from(&first[..]);
        let mut judge = match request.mode {
            StreamMode::Whole => None,
            StreamMode::Sse => Some(StreamJudge::new(Framing::Sse)),
            StreamMode::JsonArray => Some(StreamJudge::new(Framing::JsonArray)),
        };
        let mut verdict = judge.as_mut().map_or(Verdict::Undecided, |j| j.push(&first));
        // Hold back until the reply shows content, ends, or grows past what an empty one could be.
        while verdict == Verdict::Undecided && held.len() < HOLD_LIMIT {
            match self.next_chunk(&mut rest).await? {
                Some(chunk) => {
                    held.extend_from_slice(&chunk);
                    verdict = judge.as_mut().map_or(Verdict::Undecided, |j| j.push(&chunk));
                }
                None => {
                    verdict = match judge.as_mut() {
                        Some(judge) => judge.end(),
                        None => judge_whole(&held),
                    };
                    let empty = match verdict {
                        Verdict::Empty(finish) => Some(finish),
                        _ => None,
                    };
                    return Ok(Answer { status, headers, first: held.freeze(), rest, ended: true, empty });
                }
            }
        }
        Ok(Answer { status, headers, first: held.freeze(), rest, ended: false, empty: None })
    }

    /// The next body chunk within the idle timeout; `None` at the end.
    async fn next_chunk(&self, body: &mut relay::UpstreamBody) -> Result<Option<Bytes>, AttemptFailure> {
        match tokio::time::timeout(self.stream_idle_timeout, body.next()).await {
            Ok(Some(Ok(chunk))) => Ok(Some(chunk)),
            Ok(None) => Ok(None),
            Ok(Some(Err(_))) => Err(no_response(FailureKind::StreamCut)),
            Err(_) => Err(no_response(FailureKind::Timeout)),
        }
    }

    /// Whether an empty reply should be retried on another key: the policy's
    /// call (the built-in one retries `retry.empty_reply_retries` times),
    /// while the request's budget lasts.
    fn retry_empty_reply(&self, ctx: &RequestContext, lease: &Lease, finish_reason: Option<String>) -> bool {
        let retry = self.retry.load();
        if ctx.request_failures + 1 >= retry.max_attempts {
            return false;
        }
        let slot = lease.slot();
        let reply = crate::policy::EmptyReply {
            model: ctx.request.model.clone(),
            attempt: ctx.attempts,
            empty_retries: ctx.empty_retries,
            finish_reason,
            key_group: slot.record.group.clone(),
            key_fingerprint: slot.record.fingerprint,
        };
        self.policy.load().on_empty_reply(&reply)
    }

    /// Asks the policy about a failed attempt (the default policy if a script fails).
    pub(crate) fn decide(
        &self,
        ctx: &RequestContext,
        lease: &Lease,
        failure: &AttemptFailure,
        bytes_sent: u64,
    ) -> Decision {
        let slot = lease.slot();
        let (consecutive_failures, recent_failures) = slot.failure_counts();
        let outcome = Outcome {
            kind: failure.kind.clone(),
            http_status: failure.google.http_status,
            google_status: failure.google.status.clone(),
            reason: failure.google.reason.clone(),
            quota_id: failure.google.quota_id().map(String::from),
            retry_delay: failure.google.retry_delay,
            model: ctx.request.model.clone(),
            attempt: ctx.attempts,
            elapsed: ctx.started.elapsed(),
            bytes_sent,
            streaming: ctx.request.mode != StreamMode::Whole,
            key_group: slot.record.group.clone(),
            key_fingerprint: slot.record.fingerprint,
            recent_failures: recent_failures + 1,
            consecutive_failures: consecutive_failures + 1,
        };
        self.policy.load().decide(&outcome)
    }

    /// Counts a finished request and queues its log row.
    pub(crate) fn log(&self, record: RequestRecord) {
        let latency = Duration::from_millis(record.latency_ms.max(0) as u64);
        self.metrics.request(&record.route, &record.model, record.status as u16, latency);
        self.store.log_request(record);
    }

    /// Queues a failed attempt for the error log.
    pub(crate) fn log_attempt_error(&self, ctx: &RequestContext, lease: &Lease, failure: &AttemptFailure) {
        self.store.log_error(ErrorRecord {
            at_ms: crate::store::now_ms(),
            client: ctx.request.client.clone(),
            route: std::borrow::Cow::Borrowed(ctx.request.route),
            model: ctx.request.model.clone(),
            key_fingerprint: Some(lease.slot().record.fingerprint),
            attempt: i64::from(ctx.attempts),
            http_status: i64::from(failure.google.http_status),
            google_status: failure.google.status.clone(),
            reason: failure.google.reason.clone(),
            kind: failure.kind.as_str().to_string(),
            message: failure.google.message.chars().take(2000).collect(),
        });
    }

    /// Logs a served request and credits its key.
    pub(crate) fn succeeded(&self, ctx: &RequestContext, lease: Lease, attempt_started: Instant, body_tail: &[u8]) {
        let usage = parse_usage(body_tail);
        let key_fp = lease.slot().record.fingerprint;
        self.log(ctx.record(200, Some(key_fp), usage, None));
        lease.settle(KeyEvent::Succeeded {
            latency: attempt_started.elapsed(),
            tokens: usage.total_tokens.max(0) as u64,
        });
    }

    /// Logs a request that ends in an error and hands the error back.
    fn fail(&self, ctx: &RequestContext, key_fp: Option<Fingerprint>, error: DispatchError) -> DispatchError {
        let (status, message) = match &error {
            DispatchError::NoKey { reason, .. } => (no_key_status(reason), reason.to_string()),
            DispatchError::Upstream(failure) => (failure_status(failure), summarize(failure)),
        };
        self.log(ctx.record(status, key_fp, Usage::default(), Some(message)));
        error
    }
}

impl RequestContext {
    /// The request-log row for this request.
    pub fn record(
        &self,
        status: u16,
        key_fingerprint: Option<Fingerprint>,
        usage: Usage,
        error: Option<String>,
    ) -> RequestRecord {
        RequestRecord {
            at_ms: crate::store::to_ms(self.received_at),
            client: self.request.client.clone(),
            route: std::borrow::Cow::Borrowed(self.request.route),
            model: self.request.model.clone(),
            key_fingerprint,
            attempts: i64::from(self.attempts),
            status: i64::from(status),
            latency_ms: self.started.elapsed().as_millis() as i64,
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            total_tokens: usage.total_tokens,
            error,
        }
    }
}

/// The error when no key is left to try: Google's last word when it was about
/// the request or Google itself; otherwise what the keys said (429 with the
/// soonest rest when one of them is only resting, 503 naming the reasons).
fn out_of_keys(ctx: &RequestContext, reason: LeaseError, last: Option<AttemptFailure>) -> DispatchError {
    match (reason, last) {
        (LeaseError::AllTried, Some(failure)) if !is_keys_own(&failure.kind) => DispatchError::Upstream(failure),
        (reason, last) => {
            let reason = match (reason, ctx.key_failures.soonest_rest) {
                (LeaseError::AllTried | LeaseError::AllDisabled { .. }, Some(soonest)) => {
                    LeaseError::AllCooling { soonest }
                }
                (reason, _) => reason,
            };
            DispatchError::NoKey { reason, model: ctx.request.model.clone(), last, tried: ctx.key_failures.clone() }
        }
    }
}

/// A failure with no HTTP answer (timeout, network, cut before any byte).
fn no_response(kind: FailureKind) -> AttemptFailure {
    let message = match kind {
        FailureKind::Timeout => "the upstream did not answer in time",
        FailureKind::StreamCut => "the upstream connection broke before the reply started",
        _ => "could not reach the upstream",
    };
    AttemptFailure {
        kind,
        google: GoogleError { message: message.into(), ..GoogleError::default() },
        body: Bytes::new(),
    }
}

/// The status a client sees for a failure.
pub fn failure_status(failure: &AttemptFailure) -> u16 {
    match (failure.google.http_status, &failure.kind) {
        (0, FailureKind::Timeout) => 504,
        (0, _) => 502,
        (status, _) => status,
    }
}

/// The status a client sees when no key could be leased.
pub fn no_key_status(reason: &LeaseError) -> u16 {
    match reason {
        LeaseError::AllCooling { .. } | LeaseError::AllPaced { .. } => 429,
        _ => 503,
    }
}

fn summarize(failure: &AttemptFailure) -> String {
    let text: String = failure.google.message.chars().take(200).collect();
    format!("{} {}: {text}", failure.google.http_status, failure.kind.as_str())
}

/// The event told to the key's actor about a failed attempt.
pub(crate) fn failed_event(failure: &AttemptFailure, decision: &Decision, latency: Duration) -> KeyEvent {
    let now = SystemTime::now();
    KeyEvent::Failed {
        latency,
        charge: decision.charge_key,
        error: summarize(failure),
        cooldown: decision.cooldown.as_ref().map(|c| CooldownEntry {
            model: match &c.scope {
                CooldownScope::Model(m) => Some(m.clone()),
                CooldownScope::AllModels => None,
            },
            until: now + c.duration,
            reason: failure.kind.as_str().to_string(),
        }),
        disable: decision.disable,
    }
}
