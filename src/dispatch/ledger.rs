//! A request's ledger: the one place that writes down what happened to a
//! request (metrics, the error log, the request log) and settles its leases
//! with the pool, whichever way it ends: served, failed, cut mid-reply, or
//! abandoned by the client (also while attempts are still running: dropping
//! an open ledger logs the request as 499).

use super::usage::{Usage, parse_usage};
use super::{AttemptFailure, DispatchError, Dispatcher, ProxyRequest, StreamMode, failure_status, no_key_status};
use crate::accounting::{Accounting, Finished};
use crate::keys::Fingerprint;
use crate::metrics::Metrics;
use crate::pool::{KeyEvent, Lease};
use crate::store::{ErrorRecord, MinuteKey, MinuteTotals, RequestRecord, StoreHandle};
use crate::tenancy::Charge;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// What a request is, for its log rows and the policy.
pub(crate) struct Ledger {
    metrics: Arc<Metrics>,
    store: StoreHandle,
    accounting: Arc<Accounting>,
    client: Arc<str>,
    route: &'static str,
    /// The model asked for.
    pub model: Arc<str>,
    /// How the reply is framed.
    pub mode: StreamMode,
    received_at: SystemTime,
    started: Instant,
    /// Attempts made so far.
    pub attempts: u32,
    charge: Charge,
    request_id: Option<Arc<str>>,
    /// When the current attempt began.
    attempt_started: Instant,
    closed: bool,
}

impl Ledger {
    /// Opens the ledger of `request` (which hands it its charge).
    pub fn open(dispatcher: &Dispatcher, request: &mut ProxyRequest) -> Self {
        Self {
            metrics: dispatcher.metrics.clone(),
            store: dispatcher.store.clone(),
            accounting: dispatcher.accounting.clone(),
            client: request.client.clone(),
            route: request.route,
            model: request.model.clone(),
            mode: request.mode,
            received_at: SystemTime::now(),
            started: Instant::now(),
            attempts: 0,
            charge: std::mem::take(&mut request.charge),
            request_id: request.request_id.clone(),
            attempt_started: Instant::now(),
            closed: false,
        }
    }

    /// An attempt begins.
    pub fn attempt_begins(&mut self) {
        self.attempts += 1;
        self.attempt_started = Instant::now();
    }

    /// The attempt's answer was taken (`outcome`: `success`, `empty_reply`).
    pub fn attempt_answered(&self, outcome: &str) {
        self.metrics.attempt(outcome, self.attempts > 1);
    }

    /// The attempt failed: counted and written to the error log.
    pub fn attempt_failed(&self, lease: &Lease, failure: &AttemptFailure) {
        self.metrics.attempt(failure.kind.as_str(), self.attempts > 1);
        self.error_row(lease, failure);
    }

    fn error_row(&self, lease: &Lease, failure: &AttemptFailure) {
        self.store.log_error(ErrorRecord {
            at_ms: crate::store::now_ms(),
            client: self.client.clone(),
            route: std::borrow::Cow::Borrowed(self.route),
            model: self.model.clone(),
            key_fingerprint: Some(lease.slot().record.fingerprint),
            attempt: i64::from(self.attempts),
            http_status: i64::from(failure.google.http_status),
            google_status: failure.google.status.clone(),
            reason: failure.google.reason.clone(),
            kind: failure.kind.as_str().to_string(),
            message: failure.google.message.chars().take(2000).collect(),
            request_id: self.request_id.clone(),
            latency_ms: Some(self.attempt_started.elapsed().as_millis() as i64),
        });
    }

    /// Served: logs the request and credits the key.
    pub fn served(mut self, lease: Lease, attempt_started: Instant, body_tail: &[u8]) {
        let usage = parse_usage(body_tail);
        let record = &lease.slot().record;
        self.close(200, Some((record.fingerprint, &record.group)), usage, None);
        lease.settle(KeyEvent::Succeeded {
            latency: attempt_started.elapsed(),
            tokens: usage.total_tokens.max(0) as u64,
        });
    }

    /// Served with an empty reply, because no other key could do better.
    pub fn served_empty(mut self, key: Fingerprint, group: &Arc<str>, usage: Usage) {
        self.close(200, Some((key, group)), usage, Some("empty reply".into()));
    }

    /// Ends in `error` (the last key tried and its group, if any); hands the error back.
    pub fn failed(mut self, key: Option<(Fingerprint, Arc<str>)>, error: DispatchError) -> DispatchError {
        let (status, message) = match &error {
            DispatchError::NoKey { reason, .. } => (no_key_status(reason), reason.to_string()),
            DispatchError::Upstream(failure) => (failure_status(failure), super::summarize(failure)),
        };
        self.close_unanswered(status, key, message);
        error
    }

    /// The reply broke after bytes reached the client (its attempt was
    /// counted as answered): the error log, the request, and `event` for the key.
    pub fn cut(mut self, lease: Lease, failure: &AttemptFailure, event: KeyEvent, usage: Usage) {
        self.error_row(&lease, failure);
        let error = format!("stream cut: {}", failure.google.message);
        let record = &lease.slot().record;
        self.close(200, Some((record.fingerprint, &record.group)), usage, Some(error));
        lease.settle(event);
    }

    /// The client left before the reply ended.
    pub fn abandoned(mut self, lease: Lease, usage: Usage) {
        let record = &lease.slot().record;
        self.close(499, Some((record.fingerprint, &record.group)), usage, Some("client closed the connection".into()));
        lease.settle(KeyEvent::Abandoned);
    }

    /// Ends without content from Google (no usage, nothing spent); the
    /// request counts under the group of the last key tried.
    fn close_unanswered(&mut self, status: u16, key: Option<(Fingerprint, Arc<str>)>, error: String) {
        self.accounting.settle(
            &self.charge,
            Finished {
                client: &self.client,
                model: &self.model,
                group: None,
                usage: Usage::default(),
                answered: false,
            },
        );
        let key = key.as_ref().map(|(fingerprint, group)| (*fingerprint, Some(group)));
        self.write(status, key, Usage::default(), Some(error));
    }

    /// Ends after Google answered through `key` (of `group`) with `usage`.
    fn close(&mut self, status: u16, key: Option<(Fingerprint, &Arc<str>)>, usage: Usage, error: Option<String>) {
        self.accounting.settle(
            &self.charge,
            Finished {
                client: &self.client,
                model: &self.model,
                group: key.map(|(_, group)| group),
                usage,
                answered: status == 200,
            },
        );
        self.write(status, key.map(|(fingerprint, group)| (fingerprint, Some(group))), usage, error);
    }

    /// Writes the request's metrics, its minute's rollup and its row: `key`
    /// is the last attempt's, with its group (the rollup's).
    fn write(
        &mut self,
        status: u16,
        key: Option<(Fingerprint, Option<&Arc<str>>)>,
        usage: Usage,
        error: Option<String>,
    ) {
        self.closed = true;
        let latency = self.started.elapsed();
        self.metrics.request(self.route, &self.model, status, latency);
        let at_ms = crate::store::to_ms(self.received_at);
        let latency_ms = latency.as_millis() as i64;
        let no_group = || Arc::<str>::from("");
        self.store.add_minute(
            MinuteKey {
                minute_ms: crate::store::minute_of(at_ms),
                client: self.client.clone(),
                model: self.model.clone(),
                group: key.and_then(|(_, group)| group.cloned()).unwrap_or_else(no_group),
                status: i64::from(status),
            },
            MinuteTotals::one(latency_ms, usage.total_tokens),
        );
        let key = key.map(|(fingerprint, _)| fingerprint);
        self.store.log_request(RequestRecord {
            at_ms,
            client: self.client.clone(),
            route: std::borrow::Cow::Borrowed(self.route),
            model: self.model.clone(),
            key_fingerprint: key,
            attempts: i64::from(self.attempts),
            status: i64::from(status),
            latency_ms,
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            total_tokens: usage.total_tokens,
            error,
            request_id: self.request_id.clone(),
        });
    }

    /// How long the request has run.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        // Dropped open: the client went away while attempts were running
        // (their leases settle themselves as abandoned).
        if !self.closed {
            self.close_unanswered(499, None, "client closed the connection".into());
        }
    }
}
