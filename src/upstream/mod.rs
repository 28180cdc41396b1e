//! The HTTP client to Google (reqwest over rustls) and the classification of
//! Google's answers.

mod google_error;

pub use google_error::{FailureKind, GoogleError, classify_google_error, is_daily_quota, parse_proto_duration};

use crate::config::UpstreamConfig;
use crate::key_state::{DisableReason, ScanVerdict};
use crate::keys::ApiKey;
use bytes::Bytes;
use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use std::sync::Arc;
use std::time::Duration;

/// One call to make upstream, independent of the key it is made with.
#[derive(Clone, Debug)]
pub struct UpstreamRequest {
    /// HTTP method.
    pub method: Method,
    /// Path and query on Google's side, e.g. `/v1beta/models/m:streamGenerateContent?alt=sse`
    /// (never with a `key=` parameter: the key goes in a header).
    pub path_and_query: String,
    /// The client's body, untouched.
    pub body: Bytes,
    /// The client's content type, if any.
    pub content_type: Option<HeaderValue>,
    /// Send the key as `Authorization: Bearer` (Google's OpenAI-compatible
    /// endpoint) instead of `x-goog-api-key`.
    pub bearer: bool,
}

/// A shared, pooled client for Google's API.
#[derive(Clone)]
pub struct UpstreamClient {
    http: reqwest::Client,
    base: Arc<str>,
    response_timeout: Duration,
}

impl UpstreamClient {
    /// Builds the client from `[upstream]`.
    pub fn new(config: &UpstreamConfig) -> Result<Self, reqwest::Error> {
        install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout())
            .pool_max_idle_per_host(1024)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            // Failover is ours: reqwest must neither follow redirects nor retry.
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never())
            .referer(false)
            .user_agent(concat!("gemgate/", env!("CARGO_PKG_VERSION")));
        builder = if config.proxy.is_empty() {
            builder.no_proxy()
        } else {
            builder.proxy(reqwest::Proxy::all(&config.proxy)?)
        };
        Ok(Self {
            http: builder.build()?,
            base: Arc::from(config.base_url.trim_end_matches('/')),
            response_timeout: config.response_timeout(),
        })
    }

    /// Sends `request` with `key`, waiting at most the response timeout for the
    /// response head. The body is left to stream.
    pub async fn send(&self, request: &UpstreamRequest, key: &ApiKey) -> Result<reqwest::Response, FailureKind> {
        let url = format!("{}{}", self.base, request.path_and_query);
        let mut builder = self.http.request(request.method.clone(), url);
        builder = if request.bearer {
            builder.bearer_auth(key.expose())
        } else {
            builder.header("x-goog-api-key", key.expose())
        };
        if let Some(content_type) = &request.content_type {
            builder = builder.header(CONTENT_TYPE, content_type.clone());
        }
        if request.method != Method::GET {
            builder = builder.body(request.body.clone());
        }
        match tokio::time::timeout(self.response_timeout, builder.send()).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(err)) if err.is_timeout() => Err(FailureKind::Timeout),
            Ok(Err(_)) => Err(FailureKind::Network),
            Err(_) => Err(FailureKind::Timeout),
        }
    }

    /// Checks a key with the cheapest real call Google offers.
    pub async fn check_key(&self, key: &ApiKey) -> ScanVerdict {
        let request = UpstreamRequest {
            method: Method::GET,
            path_and_query: "/v1beta/models?pageSize=1".into(),
            body: Bytes::new(),
            content_type: None,
            bearer: false,
        };
        let Ok(response) = self.send(&request, key).await else { return ScanVerdict::Unknown };
        let status = response.status().as_u16();
        if response.status().is_success() {
            return ScanVerdict::Alive;
        }
        let body = read_limited(response, 64 * 1024).await;
        match classify_google_error(&GoogleError::parse(status, &body)) {
            FailureKind::KeyInvalid => ScanVerdict::Dead(DisableReason::Invalid),
            FailureKind::KeyDenied => ScanVerdict::Dead(DisableReason::PermissionDenied),
            // A quota answer proves the key exists and is accepted.
            FailureKind::RateLimited { .. } => ScanVerdict::Alive,
            _ => ScanVerdict::Unknown,
        }
    }
}

/// Installs ring as the process's TLS crypto provider (reqwest is built
/// without a bundled one). Call before building any reqwest client; repeated
/// calls are harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Reads at most `limit` bytes of a (small, error) body; the rest is dropped.
pub async fn read_limited(mut response: reqwest::Response, limit: usize) -> Bytes {
    let mut buffer = Vec::new();
    let read = async {
        while let Ok(Some(chunk)) = response.chunk().await {
            let room = limit.saturating_sub(buffer.len());
            buffer.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if buffer.len() >= limit {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(30), read).await;
    Bytes::from(buffer)
}
