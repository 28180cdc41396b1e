//! The attempt loop: lease a key → call Google → classify → tell the pool →
//! ask the policy → repeat within the retry budget. A reply is committed to
//! the client only once its first body bytes arrived, so everything before
//! that fails over transparently.

mod empty_reply;
mod key_failures;
mod ledger;
mod relay;
mod usage;
mod verdict;

use empty_reply::{Framing, StreamJudge, Verdict, judge_whole};
pub use key_failures::{KeyFailures, is_keys_own};
use ledger::Ledger;
pub use relay::{RelayStream, StreamCut};
pub use usage::{Usage, parse_usage};
use verdict::{decide, failed_event};

use crate::config::RetryConfig;
use crate::keys::Fingerprint;
use crate::policy::{NextStep, SharedPolicy};
use crate::pool::{KeyEvent, Lease, LeaseError, PoolHandle, SlotIndex};
use crate::store::StoreHandle;
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
#[derive(Debug)]
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
    /// What the request holds against its client's limits, settled by its
    /// ledger when it ends.
    pub charge: crate::tenancy::Charge,
    /// Its conversation, for session affinity (`None`: no preference).
    pub session: Option<u64>,
    /// Its `x-request-id`, for its log rows.
    pub request_id: Option<Arc<str>>,
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
    /// Clients' limits, budgets and usage.
    pub accounting: Arc<crate::accounting::Accounting>,
}

/// The attempt loop's budgets for one request (its record is the [`Ledger`]).
#[derive(Default)]
struct Budgets {
    /// Failures that spend the request's own budget (5xx, timeouts, cuts, overload).
    request_failures: u32,
    /// Failures that belong to the keys tried (they do not spend the budget).
    key_failures: KeyFailures,
    /// Empty replies retried on another key so far.
    empty_retries: u32,
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
    /// A key for the next attempt (the first may ask the other replicas
    /// which key its session used).
    async fn lease(&self, request: &ProxyRequest, tried: &[SlotIndex]) -> Result<Lease, LeaseError> {
        if tried.is_empty() {
            self.pool.lease_first(&request.model, request.session).await
        } else {
            self.pool.lease(&request.model, tried, request.session)
        }
    }

    /// Serves `request`, failing over between keys as the policy says.
    pub async fn dispatch(self: &Arc<Self>, mut request: ProxyRequest) -> Result<ProxyResponse, DispatchError> {
        let mut ledger = Ledger::open(self, &mut request);
        let mut budgets = Budgets::default();
        let mut tried = Vec::new();
        let mut kept: Option<Lease> = None;
        let mut last: Option<AttemptFailure> = None;
        let mut kept_empty: Option<(ProxyResponse, Fingerprint, Arc<str>)> = None;
        loop {
            let lease = match kept.take() {
                Some(lease) => lease,
                None => match self.lease(&request, &tried).await {
                    Ok(lease) => lease,
                    Err(reason) => {
                        if let Some((reply, key_fp, group)) = kept_empty {
                            let usage = match &reply.body {
                                ReplyBody::Complete(body) => parse_usage(body),
                                ReplyBody::Streaming(_) => Usage::default(),
                            };
                            ledger.served_empty(key_fp, &group, usage);
                            return Ok(reply);
                        }
                        let error = out_of_keys(&request, &budgets, reason, last);
                        return Err(ledger.failed(None, error));
                    }
                },
            };
            ledger.attempt_begins();
            tried.push(lease.slot().index);
            let attempt_started = Instant::now();
            let failure = match self.attempt(&request, &lease).await {
                Ok(answer) => {
                    let Answer { status, headers, first, mut rest, ended, empty } = answer;
                    if let Some(finish_reason) = empty
                        && self.retry_empty_reply(&ledger, &budgets, &lease, finish_reason)
                    {
                        ledger.attempt_answered("empty_reply");
                        let key_fp = lease.slot().record.fingerprint;
                        let group = lease.slot().record.group.clone();
                        lease.settle(KeyEvent::Failed {
                            latency: attempt_started.elapsed(),
                            charge: false,
                            error: "empty reply (retried on another key)".into(),
                            cooldown: None,
                            disable: None,
                        });
                        budgets.empty_retries += 1;
                        budgets.request_failures += 1;
                        // Kept: if no other key can serve, the empty reply is still the answer.
                        let reply = ProxyResponse { status, headers, body: ReplyBody::Complete(first) };
                        kept_empty = Some((reply, key_fp, group));
                        last = None;
                        continue;
                    }
                    ledger.attempt_answered("success");
                    // The common small reply: everything came in the first read(s).
                    let peeked = if ended { Some(None) } else { rest.next().now_or_never() };
                    let body = match peeked {
                        Some(None) => {
                            ledger.served(lease, attempt_started, &first);
                            ReplyBody::Complete(first)
                        }
                        peeked => {
                            if let Some(Some(item)) = peeked {
                                rest = Box::pin(futures_util::stream::once(async { item }).chain(rest));
                            }
                            let relay = relay::Relay {
                                policy: self.policy.clone(),
                                idle_timeout: self.stream_idle_timeout,
                                ledger,
                                lease,
                                attempt_started,
                            };
                            ReplyBody::Streaming(RelayStream::new(relay, first, rest))
                        }
                    };
                    return Ok(ProxyResponse { status, headers, body });
                }
                Err(failure) => failure,
            };
            ledger.attempt_failed(&lease, &failure);
            let decision = decide(&self.policy, &ledger, &lease, &failure, 0);
            let event = failed_event(&failure, &decision, attempt_started.elapsed());
            tracing::info!(
                key = %lease.slot().record.fingerprint,
                model = %request.model,
                attempt = ledger.attempts,
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
                budgets.key_failures.record(&failure.kind, rest_until);
            } else {
                budgets.request_failures += 1;
            }
            let retry = self.retry.load();
            let out_of_time = ledger.elapsed() >= Duration::from_secs(retry.max_elapsed_secs);
            let out_of_budget = out_of_time
                || budgets.request_failures >= retry.max_attempts
                || budgets.key_failures.total() >= retry.max_key_failures;
            match decision.next {
                NextStep::Fail => {
                    let key = (lease.slot().record.fingerprint, lease.slot().record.group.clone());
                    lease.settle(event);
                    return Err(ledger.failed(Some(key), DispatchError::Upstream(failure)));
                }
                _ if out_of_budget => {
                    let key = (lease.slot().record.fingerprint, lease.slot().record.group.clone());
                    lease.settle(event);
                    let error = if keys_own {
                        out_of_keys(&request, &budgets, LeaseError::AllTried, Some(failure))
                    } else {
                        DispatchError::Upstream(failure)
                    };
                    return Err(ledger.failed(Some(key), error));
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
        let response = self.upstream.send(&request.upstream, &lease.slot().record).await.map_err(no_response)?;
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
    fn retry_empty_reply(
        &self,
        ledger: &Ledger,
        budgets: &Budgets,
        lease: &Lease,
        finish_reason: Option<String>,
    ) -> bool {
        let retry = self.retry.load();
        if budgets.request_failures + 1 >= retry.max_attempts {
            return false;
        }
        let slot = lease.slot();
        let reply = crate::policy::EmptyReply {
            model: ledger.model.clone(),
            attempt: ledger.attempts,
            empty_retries: budgets.empty_retries,
            finish_reason,
            key_group: slot.record.group.clone(),
            key_fingerprint: slot.record.fingerprint,
        };
        self.policy.load().on_empty_reply(&reply)
    }
}

/// The error when no key is left to try: Google's last word when it was about
/// the request or Google itself; otherwise what the keys said (429 with the
/// soonest rest when one of them is only resting, 503 naming the reasons).
fn out_of_keys(
    request: &ProxyRequest,
    budgets: &Budgets,
    reason: LeaseError,
    last: Option<AttemptFailure>,
) -> DispatchError {
    match (reason, last) {
        (LeaseError::AllTried, Some(failure)) if !is_keys_own(&failure.kind) => DispatchError::Upstream(failure),
        (reason, last) => {
            let reason = match (reason, budgets.key_failures.soonest_rest) {
                (LeaseError::AllTried | LeaseError::AllDisabled { .. }, Some(soonest)) => {
                    LeaseError::AllCooling { soonest }
                }
                (reason, _) => reason,
            };
            DispatchError::NoKey { reason, model: request.model.clone(), last, tried: budgets.key_failures.clone() }
        }
    }
}

/// A failure with no HTTP answer (timeout, network, cut before any byte).
fn no_response(kind: FailureKind) -> AttemptFailure {
    let message = match kind {
        FailureKind::Timeout => "the upstream did not answer in time",
        FailureKind::StreamCut => "the upstream connection broke before the reply started",
        FailureKind::Egress => "no configured proxy or relay could carry the call to the upstream",
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

/// A failure in one line, for the key's last error and the request log.
fn summarize(failure: &AttemptFailure) -> String {
    let text: String = failure.google.message.chars().take(200).collect();
    format!("{} {}: {text}", failure.google.http_status, failure.kind.as_str())
}
