//! The one way in for every client dialect. The intake does what every
//! request needs, in order: find the call (the dialect's routing), then
//! authenticate, read the body within its limits, and hand the call to the
//! dialect, which translates, dispatches through the pool and relays. Every
//! way a request can fail is one [`ClientError`], which each dialect renders
//! in its own shape; nothing else writes an error response.

use super::AppState;
use super::auth::{AuthError, ClientId};
use super::body::{BodyError, read_body};
use crate::accounting::Accounting;
use crate::dispatch::{AttemptFailure, DispatchError, KeyFailures};
use crate::pool::LeaseError;
use crate::tenancy::{Charge, Refusal};
use crate::translate::TranslateError;
use bytes::Bytes;
use poem::{Body, Request, Response};
use serde::de::IgnoredAny;
use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

/// Why a request was not served, whatever the dialect.
#[derive(Debug)]
pub enum ClientError {
    /// No such call here (404), or the wrong method for it (405).
    Route {
        /// 404 or 405.
        status: u16,
        /// What was asked for and what exists.
        message: String,
    },
    /// The client key was missing or wrong, or the address is locked out.
    Auth(AuthError),
    /// The body was too large, too slow or broken.
    Body(BodyError),
    /// The body is not JSON (or not UTF-8).
    NotJson,
    /// A model name gemgate will not put in a path.
    InvalidModel(String),
    /// A model the upstream does not list, or this gemgate does not serve.
    UnknownModel(String),
    /// The request could not be translated to Gemini.
    Translate(TranslateError),
    /// The client's key does not allow this (its model, or a used-up limit).
    Refused {
        /// Why.
        refusal: Refusal,
        /// The model asked for.
        model: String,
    },
    /// No key could serve it, or Google's answer was final (boxed: it is
    /// large, and every other error is small).
    Dispatch(Box<DispatchError>),
    /// Google's reply could not be used (cut, not JSON): 502.
    BadReply(String),
    /// gemgate's own state could not be read or written (the store): 500.
    Internal(String),
}

impl From<AuthError> for ClientError {
    fn from(error: AuthError) -> Self {
        Self::Auth(error)
    }
}

impl From<BodyError> for ClientError {
    fn from(error: BodyError) -> Self {
        Self::Body(error)
    }
}

impl From<TranslateError> for ClientError {
    fn from(error: TranslateError) -> Self {
        Self::Translate(error)
    }
}

impl From<DispatchError> for ClientError {
    fn from(error: DispatchError) -> Self {
        Self::Dispatch(Box::new(error))
    }
}

/// A request past the intake: who sent it and its body. The client's name,
/// which every upstream call needs for its log, comes only from
/// [`Admitted::pass`], so no call goes upstream unchecked.
pub struct Admitted {
    client: ClientId,
    accounting: Arc<Accounting>,
    /// The session the client named in a header, hashed.
    named_session: Option<u64>,
    /// The request's id.
    request_id: Option<Arc<str>>,
    /// The body, read whole.
    pub body: Bytes,
}

impl Admitted {
    /// The authenticated client's name (what it owns is kept under it).
    pub fn client_name(&self) -> &Arc<str> {
        &self.client.name
    }

    /// Checks the client's limits for a call of `model`, asked for as `asked`
    /// (both empty: a call that names none) and counts it; once per request.
    /// A client allowed a model may use it under any name that resolves to
    /// it; one allowed a name (an alias) may use that name.
    pub async fn pass(&self, asked: &str, model: &str) -> Result<Pass, ClientError> {
        let mut charge = Charge::default();
        if let (Some(rules), Some(counter)) = (&self.client.rules, &self.client.counter) {
            let name = if rules.allows(asked) { asked } else { model };
            // About four bytes of a request per token: an estimate until usage settles it.
            let estimate = self.accounting.estimate(model, self.body.len().div_ceil(4) as u64);
            charge = self
                .accounting
                .admit(&self.client.name, counter, rules, name, estimate)
                .await
                .map_err(|refusal| ClientError::Refused { refusal, model: asked.chars().take(80).collect() })?;
        }
        let request_id = self.request_id.clone();
        Ok(Pass { client: self.client.name.clone(), charge, session: self.named_session, request_id })
    }
}

/// A client request its limits admitted.
pub struct Pass {
    /// The client's name, for the upstream call's log.
    pub client: Arc<str>,
    /// What the request holds against its client's limits until it ends.
    pub charge: Charge,
    /// The conversation, for session affinity (a header's; the dialect may
    /// find it in the body).
    pub session: Option<u64>,
    /// The request's id, for its log rows.
    pub request_id: Option<Arc<str>>,
}

/// What a client dialect supplies: its routing, its serving (translate,
/// dispatch, relay) and its error shape.
pub trait Dialect: Sync {
    /// The call a method and path name.
    type Call: Send + Sync;

    /// Finds the call, before authentication (an unknown path is a 404 to anyone).
    fn route(&self, request: &Request) -> Result<Self::Call, ClientError>;

    /// Serves an admitted call.
    fn serve(
        &self,
        call: &Self::Call,
        admitted: Admitted,
        request: &Request,
        state: &Arc<AppState>,
    ) -> impl Future<Output = Result<Response, ClientError>> + Send;

    /// The error in this dialect's shape (the call, when known, picks its framing).
    fn render(&self, call: Option<&Self::Call>, error: ClientError) -> Response;
}

/// Serves one request in `dialect`.
pub async fn serve<D: Dialect>(dialect: &D, request: &Request, body: Body, state: &Arc<AppState>) -> Response {
    let call = match dialect.route(request) {
        Ok(call) => call,
        Err(error) => return dialect.render(None, error),
    };
    let served = async {
        let client = state.access.authenticate(request)?;
        let body = read_body(body, state.max_body_bytes).await?;
        let named_session = super::session::from_header(request);
        let request_id = request.extensions().get::<super::RequestId>().map(|id| id.0.clone());
        let accounting = state.access.accounting.clone();
        let admitted = Admitted { client, accounting, named_session, request_id, body };
        dialect.serve(&call, admitted, request, state).await
    };
    match served.await {
        Ok(response) => response,
        Err(error) => dialect.render(Some(&call), error),
    }
}

/// Checks that `body` is JSON without building it (bodies passed through).
pub fn check_json(body: &[u8]) -> Result<(), ClientError> {
    // serde skips strings it ignores without checking their UTF-8: check it first.
    let is_json = std::str::from_utf8(body).is_ok() && serde_json::from_slice::<IgnoredAny>(body).is_ok();
    if is_json { Ok(()) } else { Err(ClientError::NotJson) }
}

/// Parses `body` as JSON (bodies translated).
pub fn parse_json(body: &[u8]) -> Result<serde_json::Value, ClientError> {
    serde_json::from_slice(body).map_err(|_| ClientError::NotJson)
}

/// What a model name means in the catalog (an unknown model is a 404).
pub fn resolve_model(catalog: &crate::catalog::Catalog, name: &str) -> Result<crate::catalog::Resolved, ClientError> {
    catalog.resolve(name).map_err(|not_served| ClientError::UnknownModel(not_served.0))
}

/// Checks a model name before it goes into an upstream path.
pub fn check_model(model: &str) -> Result<(), ClientError> {
    if super::paths::is_valid_model_name(model) {
        Ok(())
    } else {
        Err(ClientError::InvalidModel(model.chars().take(80).collect()))
    }
}

/// The whole explanation when no key could serve: why the pool said no, what
/// the keys this request tried said about themselves, or else the last
/// upstream error.
pub fn no_key_explanation(
    reason: &LeaseError,
    model: &str,
    last: Option<&AttemptFailure>,
    tried: &KeyFailures,
) -> String {
    let mut message = no_key_message(reason, model);
    if tried.total() > 0 {
        message.push_str(&format!(" Keys tried for this request: {}.", tried.describe()));
    } else if let Some(last) = last {
        let upstream: String = last.google.message.chars().take(300).collect();
        message.push_str(&format!(" Last upstream error: {} {}", last.google.http_status, upstream));
    }
    message
}

/// Words for a client when no key could be leased.
pub fn no_key_message(reason: &LeaseError, model: &str) -> String {
    let model = if model.is_empty() { "this request".to_string() } else { format!("model {model}") };
    match reason {
        LeaseError::EmptyPool => {
            "gemgate: the key pool is empty. Add Gemini API keys, one per line, to a file in the keys folder.".into()
        }
        LeaseError::AllDisabled { total } => {
            format!(
                "gemgate: all {total} keys are disabled (invalid or refused by Google). Add working keys or run a health scan."
            )
        }
        LeaseError::AllCooling { soonest } => {
            let (wait, at) = (secs_until(*soonest), utc(*soonest));
            format!("gemgate: every key is cooling down for {model}; the soonest is free again in {wait}s (at {at}).")
        }
        LeaseError::AllPaced { soonest, limit } => {
            let (wait, at) = (secs_until(*soonest), utc(*soonest));
            format!(
                "gemgate: every key has used the {limit} declared for {model} in config ([models]: gemgate paces \
                 itself, Google did not refuse); the soonest is free again in {wait}s (at {at})."
            )
        }
        LeaseError::AllTried => format!("gemgate: no key can serve {model} now: every usable key was tried."),
        LeaseError::Unavailable => "gemgate: the key pool is shutting down; retry shortly.".into(),
    }
}

/// Whole seconds until `time`, rounded up (at least 1).
pub fn secs_until(time: SystemTime) -> u64 {
    let millis = time.duration_since(SystemTime::now()).unwrap_or_default().as_millis() as u64;
    millis.div_ceil(1000).max(1)
}

/// `time` in UTC to the second, as messages show it.
fn utc(time: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time).format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Words for a client whose key does not allow a request.
pub fn refusal_message(refusal: &Refusal, model: &str) -> String {
    match refusal {
        Refusal::Disabled => "gemgate: this client key is disabled by the operator.".into(),
        Refusal::Expired(when) => format!("gemgate: this client key expired at {}.", utc(*when)),
        Refusal::ModelNotAllowed => format!("gemgate: this client key may not use the model `{model}`."),
        Refusal::Limit { limit, allowed, until } => {
            let until = format!("{}s (at {})", secs_until(*until), utc(*until));
            if *limit == "budget_usd" {
                let usd = *allowed as f64 / 1e6;
                return format!(
                    "gemgate: this client key's budget of ${usd:.2} (budget_usd) is spent; it starts again in {until}."
                );
            }
            if *limit == "budget_tokens" {
                return format!(
                    "gemgate: this client key's budget of {allowed} tokens (budget_tokens) is spent; \
                     it starts again in {until}."
                );
            }
            let per = match *limit {
                "rpd" => "requests per day",
                "tpm" => "tokens per minute",
                _ => "requests per minute",
            };
            format!(
                "gemgate: this client key's limit of {allowed} {per} ({limit}) is used up; the next request fits in {until}."
            )
        }
    }
}
