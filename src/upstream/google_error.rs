//! Google's error bodies, parsed and classified: the pure core of deciding whose
//! fault a failed attempt was.

use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

/// What Google said when an attempt failed, reduced to the fields that decide.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GoogleError {
    /// The HTTP status of the response.
    pub http_status: u16,
    /// Canonical status (`RESOURCE_EXHAUSTED`, `INVALID_ARGUMENT`, …), if given.
    pub status: String,
    /// Google's message for humans.
    pub message: String,
    /// `ErrorInfo.reason` (`API_KEY_INVALID`, `CONSUMER_SUSPENDED`, …).
    pub reason: Option<String>,
    /// `QuotaFailure.violations[].quotaId`.
    pub quota_ids: Vec<String>,
    /// `RetryInfo.retryDelay`.
    pub retry_delay: Option<Duration>,
}

#[derive(Deserialize)]
struct Envelope {
    error: Body,
}

#[derive(Deserialize)]
struct Body {
    #[serde(default)]
    message: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    details: Vec<Value>,
}

impl GoogleError {
    /// Parses an error body: the object form, the array-wrapped form of the
    /// JSON-array stream, or anything else (kept as the message, shortened).
    pub fn parse(http_status: u16, body: &[u8]) -> Self {
        // Checked by shape first: serde would also read a struct from an array.
        let is_array = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
        let envelope = if is_array {
            serde_json::from_slice::<Vec<Envelope>>(body).ok().and_then(|mut list| list.pop())
        } else {
            serde_json::from_slice::<Envelope>(body).ok()
        };
        let Some(Envelope { error }) = envelope else {
            let text = String::from_utf8_lossy(body);
            let message: String = text.chars().take(300).collect();
            return Self { http_status, message: crate::keys::redact_keys(&message).into_owned(), ..Self::default() };
        };
        let message = crate::keys::redact_keys(&error.message).into_owned();
        let mut parsed = Self { http_status, status: error.status, message, ..Self::default() };
        for detail in &error.details {
            let kind = detail.get("@type").and_then(Value::as_str).unwrap_or_default();
            if kind.ends_with("google.rpc.ErrorInfo") {
                parsed.reason = detail.get("reason").and_then(Value::as_str).map(String::from);
            } else if kind.ends_with("google.rpc.QuotaFailure") {
                let violations = detail.get("violations").and_then(Value::as_array);
                for violation in violations.into_iter().flatten() {
                    if let Some(id) = violation.get("quotaId").and_then(Value::as_str) {
                        parsed.quota_ids.push(id.to_string());
                    }
                }
            } else if kind.ends_with("google.rpc.RetryInfo") {
                parsed.retry_delay = detail.get("retryDelay").and_then(Value::as_str).and_then(parse_proto_duration);
            }
        }
        parsed
    }

    /// The quota that ran out, preferring a per-day one (it decides the cooldown).
    pub fn quota_id(&self) -> Option<&str> {
        self.quota_ids.iter().find(|id| is_daily_quota(id)).or_else(|| self.quota_ids.first()).map(String::as_str)
    }
}

/// Whether a quota id is a per-day quota (`…PerDay…`), which resets at
/// midnight Pacific time.
pub fn is_daily_quota(quota_id: &str) -> bool {
    quota_id.contains("PerDay")
}

/// Parses protobuf's JSON duration: `"37s"`, `"0.5s"`, `"1.000340s"`.
pub fn parse_proto_duration(text: &str) -> Option<Duration> {
    let seconds: f64 = text.strip_suffix('s')?.parse().ok()?;
    (0.0..1e9).contains(&seconds).then(|| Duration::from_secs_f64(seconds))
}

/// Whose fault a failed attempt was and what kind of failure it is.
#[derive(Clone, Debug, PartialEq)]
pub enum FailureKind {
    /// 429: the key's quota for this model (or per day) ran out.
    RateLimited {
        /// The quota id is a per-day quota.
        daily: bool,
    },
    /// 400 `API_KEY_INVALID` (or a 401): the key is wrong or deleted.
    KeyInvalid,
    /// 403: the key is suspended, leaked, or the API is not enabled.
    KeyDenied,
    /// 400 `FAILED_PRECONDITION`: region or billing; the key's project cannot serve.
    KeyPrecondition,
    /// 4xx caused by the request itself: malformed body, unknown model, too large.
    ClientFault,
    /// 500 and other 5xx Google faults.
    ServerError,
    /// 503: the model is overloaded; not the key's fault.
    Overloaded,
    /// 504 from Google or no response head within our timeout.
    Timeout,
    /// Could not connect or the connection broke before a response.
    Network,
    /// The response stream broke after it started.
    StreamCut,
    /// No proxy or relay could carry the call (refused, proxy auth, TLS to
    /// the proxy): never the key's fault.
    Egress,
}

impl FailureKind {
    /// Parses [`FailureKind::as_str`]'s names.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "rate_limited" => Self::RateLimited { daily: false },
            "daily_quota" => Self::RateLimited { daily: true },
            "key_invalid" => Self::KeyInvalid,
            "key_denied" => Self::KeyDenied,
            "key_precondition" => Self::KeyPrecondition,
            "client_fault" => Self::ClientFault,
            "server_error" => Self::ServerError,
            "overloaded" => Self::Overloaded,
            "timeout" => Self::Timeout,
            "network" => Self::Network,
            "stream_cut" => Self::StreamCut,
            "egress" => Self::Egress,
            _ => return None,
        })
    }

    /// Short stable name, for logs, the store and policy scripts.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::RateLimited { daily: false } => "rate_limited",
            Self::RateLimited { daily: true } => "daily_quota",
            Self::KeyInvalid => "key_invalid",
            Self::KeyDenied => "key_denied",
            Self::KeyPrecondition => "key_precondition",
            Self::ClientFault => "client_fault",
            Self::ServerError => "server_error",
            Self::Overloaded => "overloaded",
            Self::Timeout => "timeout",
            Self::Network => "network",
            Self::StreamCut => "stream_cut",
            Self::Egress => "egress",
        }
    }
}

/// Classifies Google's answer to one attempt.
pub fn classify_google_error(error: &GoogleError) -> FailureKind {
    let reason = error.reason.as_deref().unwrap_or_default();
    match error.http_status {
        429 => FailureKind::RateLimited { daily: error.quota_id().is_some_and(is_daily_quota) },
        400 if reason == "API_KEY_INVALID" || error.message.contains("API key not valid") => FailureKind::KeyInvalid,
        400 if error.status == "FAILED_PRECONDITION" => FailureKind::KeyPrecondition,
        401 => FailureKind::KeyInvalid,
        403 if is_foreign_resource(error) => FailureKind::ClientFault,
        403 => FailureKind::KeyDenied,
        503 => FailureKind::Overloaded,
        504 => FailureKind::Timeout,
        500..=599 => FailureKind::ServerError,
        _ => FailureKind::ClientFault,
    }
}

/// A 403 about a file or cached content of another project is the request's
/// doing (it names a resource this key cannot see), not a dead key.
fn is_foreign_resource(error: &GoogleError) -> bool {
    error.reason.is_none()
        && (error.message.contains("You do not have permission to access the File")
            || error.message.contains("CachedContent"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(value: Value) -> Vec<u8> {
        serde_json::to_vec(&value).unwrap()
    }

    fn quota_429(quota_id: &str, delay: &str) -> Vec<u8> {
        body(json!({"error": {
        "code": 429, "status": "RESOURCE_EXHAUSTED",
        "message": "You exceeded your current quota, please check your plan and billing details.",
        "details": [
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
                "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                "quotaId": quota_id,
                "quotaDimensions": {"location": "global", "model": "gemini-2.5-pro"},
                "quotaValue": "5"}]},
            {"@type": "type.googleapis.com/google.rpc.Help", "links": [{"description": "Learn more", "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}
        ]}}))
    }

    #[test]
    fn rate_limit_with_quota_and_retry_delay() {
        let error = GoogleError::parse(429, &quota_429("GenerateRequestsPerMinutePerProjectPerModel-FreeTier", "37s"));
        assert_eq!(error.status, "RESOURCE_EXHAUSTED");
        assert_eq!(error.retry_delay, Some(Duration::from_secs(37)));
        assert_eq!(classify_google_error(&error), FailureKind::RateLimited { daily: false });
    }

    #[test]
    fn daily_quota_is_recognised() {
        let error = GoogleError::parse(429, &quota_429("GenerateRequestsPerDayPerProjectPerModel-FreeTier", "3.5s"));
        assert_eq!(error.retry_delay, Some(Duration::from_millis(3500)));
        assert_eq!(classify_google_error(&error), FailureKind::RateLimited { daily: true });
    }

    #[test]
    fn invalid_key_in_the_array_form_of_the_json_stream() {
        let raw = body(json!([{"error": {"code": 400, "status": "INVALID_ARGUMENT",
            "message": "API key not valid. Please pass a valid API key.",
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}]}}]));
        let error = GoogleError::parse(400, &raw);
        assert_eq!(error.reason.as_deref(), Some("API_KEY_INVALID"));
        assert_eq!(classify_google_error(&error), FailureKind::KeyInvalid);
    }

    #[test]
    fn statuses_map_to_whose_fault() {
        let plain = |status: u16, canonical: &str| GoogleError {
            http_status: status,
            status: canonical.into(),
            message: "x".into(),
            ..GoogleError::default()
        };
        assert_eq!(classify_google_error(&plain(400, "INVALID_ARGUMENT")), FailureKind::ClientFault);
        assert_eq!(classify_google_error(&plain(400, "FAILED_PRECONDITION")), FailureKind::KeyPrecondition);
        assert_eq!(classify_google_error(&plain(403, "PERMISSION_DENIED")), FailureKind::KeyDenied);
        assert_eq!(classify_google_error(&plain(404, "NOT_FOUND")), FailureKind::ClientFault);
        assert_eq!(classify_google_error(&plain(500, "INTERNAL")), FailureKind::ServerError);
        assert_eq!(classify_google_error(&plain(503, "UNAVAILABLE")), FailureKind::Overloaded);
        assert_eq!(classify_google_error(&plain(504, "DEADLINE_EXCEEDED")), FailureKind::Timeout);
    }

    #[test]
    fn non_json_bodies_keep_a_short_message() {
        let error = GoogleError::parse(502, b"<html>Bad Gateway</html>");
        assert_eq!(error.message, "<html>Bad Gateway</html>");
        assert_eq!(classify_google_error(&error), FailureKind::ServerError);
    }

    #[test]
    fn proto_durations() {
        assert_eq!(parse_proto_duration("0s"), Some(Duration::ZERO));
        assert_eq!(parse_proto_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_proto_duration("12"), None);
        assert_eq!(parse_proto_duration("-1s"), None);
        assert_eq!(parse_proto_duration("NaNs"), None);
    }
}
