//! `gemgate policy test FILE --case JSON`: builds an [`Outcome`] from a small
//! JSON description and shows the decision a policy makes for it, so a user
//! can try a script before dropping it in.

use super::script::decision_map;
use super::{Decision, Outcome};
use crate::keys::Fingerprint;
use crate::upstream::{FailureKind, GoogleError, classify_google_error};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Builds an outcome from a case such as `{"status": 429, "model": "gemini-2.5-pro"}`.
/// `kind` may be given; otherwise it is classified from the status fields as
/// Google's answer would be.
pub fn outcome_from_case(case: &Value) -> Result<Outcome, String> {
    if !case.is_object() {
        return Err("the case must be a JSON object, e.g. {\"status\": 429}".into());
    }
    let text = |key: &str| case.get(key).and_then(Value::as_str).map(String::from);
    let int = |key: &str, default: u64| case.get(key).and_then(Value::as_u64).unwrap_or(default);
    let status = int("status", 0) as u16;
    let quota_ids: Vec<String> = text("quota_id").into_iter().collect();
    let google = GoogleError {
        http_status: status,
        status: text("google_status").unwrap_or_default(),
        message: text("message").unwrap_or_default(),
        reason: text("reason"),
        quota_ids,
        retry_delay: case.get("retry_delay_secs").and_then(Value::as_f64).map(Duration::from_secs_f64),
    };
    let kind = match text("kind") {
        Some(name) => FailureKind::parse(&name).ok_or_else(|| format!("unknown kind `{name}`"))?,
        None if status == 0 => return Err("give a `status` (Google's HTTP status) or a `kind`".into()),
        None => classify_google_error(&google),
    };
    Ok(Outcome {
        kind,
        http_status: status,
        google_status: google.status.clone(),
        reason: google.reason.clone(),
        quota_id: google.quota_id().map(String::from),
        retry_delay: google.retry_delay,
        model: Arc::from(text("model").unwrap_or_else(|| "gemini-2.5-flash".into())),
        attempt: int("attempt", 1) as u32,
        elapsed: Duration::from_millis(int("elapsed_ms", 0)),
        bytes_sent: int("bytes_sent", 0),
        streaming: case.get("streaming").and_then(Value::as_bool).unwrap_or(false),
        key_group: Arc::from(text("key_group").unwrap_or_else(|| "default".into())),
        key_fingerprint: Fingerprint::of("gemgate-policy-test"),
        recent_failures: int("recent_failures", 1) as u32,
        consecutive_failures: int("consecutive_failures", 1) as u32,
    })
}

/// Why a case could not be run.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    /// The script does not compile.
    #[error("{0}")]
    Script(#[from] super::script::ScriptError),
    /// The case is not a valid outcome.
    #[error("case: {0}")]
    Case(String),
}

/// Runs `case` through the script `source` (named `file` in messages) and
/// through the built-in policy of `config`: the kind, both decisions and
/// whether the script faulted.
pub fn run_case(file: &str, source: &str, case: &Value, config: &crate::config::Config) -> Result<Value, CaseError> {
    use super::Policy;
    let fallback = super::DefaultPolicy::new(&config.cooldown, &config.retry);
    let faults = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let script = super::script::ScriptPolicy::compile(file, source, fallback.clone(), faults.clone())?;
    let outcome = outcome_from_case(case).map_err(CaseError::Case)?;
    let decision = script.decide(&outcome);
    Ok(json!({
        "kind": outcome.kind.as_str(),
        "decision": decision_json(&decision),
        "built_in": decision_json(&fallback.decide(&outcome)),
        "script_faults": faults.load(std::sync::atomic::Ordering::Relaxed),
    }))
}

/// A decision as JSON, in the shape scripts return.
pub fn decision_json(decision: &Decision) -> Value {
    let map = decision_map(decision);
    let mut out = serde_json::Map::new();
    for (key, value) in map {
        let value = if let Ok(b) = value.as_bool() {
            json!(b)
        } else if let Ok(i) = value.as_int() {
            json!(i)
        } else if let Ok(f) = value.as_float() {
            json!(f)
        } else {
            json!(value.to_string())
        };
        out.insert(key.to_string(), value);
    }
    Value::Object(out)
}
