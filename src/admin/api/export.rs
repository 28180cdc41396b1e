//! The logs as CSV, for spreadsheets. A cell that a spreadsheet would read
//! as a formula (`=`, `+`, `-`, `@` first) gets a leading `'`: messages come
//! from Google and clients, and must stay text.

use crate::admin::error::{ApiError, ApiResult};
use crate::store::{ErrorRecord, RequestRecord};

/// A cell that stays text in a spreadsheet.
fn cell(text: &str) -> std::borrow::Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{text}").into() } else { text.into() }
}

fn utc(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

fn finish(writer: csv::Writer<Vec<u8>>) -> ApiResult<String> {
    let bytes = writer.into_inner().map_err(|e| ApiError::internal(format!("writing CSV: {e}")))?;
    String::from_utf8(bytes).map_err(|e| ApiError::internal(format!("writing CSV: {e}")))
}

fn write(writer: &mut csv::Writer<Vec<u8>>, row: &[&str]) -> ApiResult<()> {
    writer
        .write_record(row.iter().map(|c| cell(c).into_owned()))
        .map_err(|e| ApiError::internal(format!("writing CSV: {e}")))
}

/// Request rows as CSV, with a header.
pub fn requests_csv(rows: &[RequestRecord]) -> ApiResult<String> {
    let mut out = csv::Writer::from_writer(Vec::new());
    let header = [
        "time",
        "request_id",
        "client",
        "route",
        "model",
        "key",
        "attempts",
        "status",
        "latency_ms",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "error",
    ];
    write(&mut out, &header)?;
    for r in rows {
        let key = r.key_fingerprint.map(|f| f.to_string()).unwrap_or_default();
        let numbers = [r.attempts, r.status, r.latency_ms, r.prompt_tokens, r.completion_tokens, r.total_tokens]
            .map(|n| n.to_string());
        let [attempts, status, latency, prompt, completion, total] = &numbers;
        let row = [
            &utc(r.at_ms),
            r.request_id.as_deref().unwrap_or_default(),
            &r.client,
            &r.route,
            &r.model,
            &key,
            attempts,
            status,
            latency,
            prompt,
            completion,
            total,
            r.error.as_deref().unwrap_or_default(),
        ];
        write(&mut out, &row.map(|c| c as &str))?;
    }
    finish(out)
}

/// Error rows as CSV, with a header.
pub fn errors_csv(rows: &[ErrorRecord]) -> ApiResult<String> {
    let mut out = csv::Writer::from_writer(Vec::new());
    let header = [
        "time",
        "request_id",
        "client",
        "route",
        "model",
        "key",
        "attempt",
        "latency_ms",
        "http_status",
        "google_status",
        "reason",
        "kind",
        "message",
    ];
    write(&mut out, &header)?;
    for r in rows {
        let key = r.key_fingerprint.map(|f| f.to_string()).unwrap_or_default();
        let latency = r.latency_ms.map(|n| n.to_string()).unwrap_or_default();
        let (attempt, status) = (r.attempt.to_string(), r.http_status.to_string());
        let row = [
            &utc(r.at_ms),
            r.request_id.as_deref().unwrap_or_default(),
            &r.client,
            &r.route,
            &r.model,
            &key,
            &attempt,
            &latency,
            &status,
            &r.google_status,
            r.reason.as_deref().unwrap_or_default(),
            &r.kind,
            &r.message,
        ];
        write(&mut out, &row.map(|c| c as &str))?;
    }
    finish(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_stay_text_and_quotes_are_escaped() {
        assert_eq!(cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(cell("plain"), "plain");
        let mut out = csv::Writer::from_writer(Vec::new());
        write(&mut out, &["a,b", "say \"hi\"", "-1"]).unwrap();
        assert_eq!(finish(out).unwrap(), "\"a,b\",\"say \"\"hi\"\"\",'-1\n");
    }
}
