//! Failover and key state: 429 cooldowns per model, daily quotas, dead keys,
//! 5xx, timeouts, stream cuts, and what is not the key's fault.

mod support;

use gemgate::key_state::DisableReason;
use serde_json::Value;
use std::time::{Duration, SystemTime};
use support::*;

#[tokio::test]
async fn rate_limit_fails_over_and_cools_only_that_model() {
    let limited = fake_key("prorpm30", 1);
    let h = Harness::start(&[limited.clone(), fake_key("ok", 2)]).await;
    for _ in 0..4 {
        assert_eq!(h.generate("gemini-2.5-pro").await.status(), 200);
    }
    assert_eq!(h.fake.calls_for(&limited, "gemini-2.5-pro"), 1, "a cooling key is not leased again for that model");
    let snapshot = h.snapshot(&limited).await;
    let now = SystemTime::now();
    assert!(snapshot.is_cooling_for("gemini-2.5-pro", now));
    assert!(!snapshot.is_cooling_for("gemini-2.5-flash", now));
    let until = snapshot.cooldowns[0].until.duration_since(now).unwrap();
    assert!(until > Duration::from_secs(25) && until <= Duration::from_secs(30), "retryDelay honoured: {until:?}");
    for _ in 0..4 {
        assert_eq!(h.generate("gemini-2.5-flash").await.status(), 200);
    }
    assert!(h.fake.calls_for(&limited, "gemini-2.5-flash") >= 1, "the key keeps serving other models");
    h.stop().await;
}

#[tokio::test]
async fn all_keys_cooling_returns_429_with_the_soonest_time() {
    let limited = fake_key("rpm20", 1);
    let h = Harness::start(std::slice::from_ref(&limited)).await;
    let first = h.generate("gemini-2.5-flash").await;
    assert_eq!(first.status(), 429);
    let header = first.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(String::from);
    let body: Value = first.json().await.unwrap();
    assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
    assert!(body["error"]["message"].as_str().unwrap().contains("cooling down"), "{body}");
    let delay = body["error"]["details"][0]["retryDelay"].as_str().unwrap();
    let secs: u64 = delay.trim_end_matches('s').parse().unwrap();
    assert!((19..=21).contains(&secs), "{delay}");
    assert_eq!(header, Some(secs.to_string()), "Retry-After says the same as RetryInfo");
    let second = h.generate("gemini-2.5-flash").await;
    assert_eq!(second.status(), 429);
    assert_eq!(h.fake.calls(&limited), 1, "no upstream call while every key cools");
    h.stop().await;
}

#[tokio::test]
async fn daily_quota_cools_until_midnight_pacific() {
    let daily = fake_key("rpd", 1);
    let h = Harness::start(&[daily.clone(), fake_key("ok", 2)]).await;
    for _ in 0..2 {
        assert_eq!(h.generate("gemini-2.5-flash").await.status(), 200);
    }
    let snapshot = h.snapshot(&daily).await;
    let midnight = gemgate::policy::next_pacific_midnight(SystemTime::now());
    let until = snapshot.cooldowns.iter().find(|c| c.model.as_deref() == Some("gemini-2.5-flash")).unwrap().until;
    let gap = midnight.duration_since(until).unwrap_or_else(|e| e.duration());
    assert!(gap < Duration::from_secs(5), "cooldown ends at midnight Pacific");
    assert_eq!(snapshot.cooldowns[0].reason, "daily_quota");
    h.stop().await;
}

#[tokio::test]
async fn invalid_and_suspended_keys_are_disabled_and_the_key_never_leaks() {
    let invalid = fake_key("invalid", 1);
    let denied = fake_key("denied", 2);
    let h = Harness::start(&[invalid.clone(), denied.clone(), fake_key("ok", 3)]).await;
    for _ in 0..6 {
        assert_eq!(h.generate("gemini-2.5-flash").await.status(), 200);
    }
    assert_eq!(h.fake.calls(&invalid), 1);
    assert_eq!(h.fake.calls(&denied), 1);
    assert_eq!(h.snapshot(&invalid).await.disabled.unwrap().reason, DisableReason::Invalid);
    let suspended = h.snapshot(&denied).await;
    assert_eq!(suspended.disabled.unwrap().reason, DisableReason::PermissionDenied);
    let last_error = suspended.last_error.unwrap();
    assert!(last_error.contains("suspended") && !last_error.contains(&denied), "{last_error}");
    h.stop().await;
}

#[tokio::test]
async fn a_pool_of_dead_keys_answers_503_without_the_key() {
    let denied = fake_key("denied", 1);
    let h = Harness::start(std::slice::from_ref(&denied)).await;
    let response = h.generate("gemini-2.5-flash").await;
    assert_eq!(response.status(), 503);
    let text = response.text().await.unwrap();
    assert!(text.contains("disabled") && !text.contains(&denied), "{text}");
    h.stop().await;
}

#[tokio::test]
async fn server_errors_overload_and_timeouts_move_to_another_key() {
    let internal = fake_key("internal", 1);
    let overload = fake_key("overload", 2);
    let slow = fake_key("slow3000", 3);
    let h = Harness::start_with(&[internal.clone(), overload.clone(), slow.clone(), fake_key("ok", 4)], |c| {
        c.upstream.response_timeout_secs = 1;
    })
    .await;
    for _ in 0..3 {
        assert_eq!(h.generate("gemini-2.5-flash").await.status(), 200);
    }
    for key in [&internal, &overload, &slow] {
        let snapshot = h.snapshot(key).await;
        assert!(snapshot.failures >= 1, "{key}: {snapshot:?}");
        assert!(snapshot.disabled.is_none());
    }
    h.stop().await;
}

#[tokio::test]
async fn retry_budget_returns_the_last_upstream_error() {
    let h = Harness::start_with(&keys("internal", 4), |c| c.retry.max_attempts = 2).await;
    let response = h.generate("gemini-2.5-flash").await;
    assert_eq!(response.status(), 500);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["status"], "INTERNAL");
    assert_eq!(h.fake.total_calls(), 2);
    h.stop().await;
}

#[tokio::test]
async fn a_bad_request_is_returned_at_once_and_not_charged() {
    let pair = keys("ok", 2);
    let h = Harness::start(&pair).await;
    let bad = r#"{"contents":[{"parts":[{"text":"hi"}]}],"bogusField":1}"#;
    let response = h.post("/v1beta/models/gemini-2.5-flash:generateContent", bad).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("bogusField"));
    assert_eq!(h.fake.total_calls(), 1, "not retried");
    let unknown_model = h.generate("gemini-9-ultra").await;
    assert_eq!(unknown_model.status(), 404);
    assert_eq!(h.fake.total_calls(), 2);
    for key in &pair {
        let snapshot = h.snapshot(key).await;
        assert_eq!(snapshot.failures, 0);
        assert!(snapshot.cooldowns.is_empty() && snapshot.disabled.is_none());
    }
    h.stop().await;
}

#[tokio::test]
async fn a_cut_before_the_first_byte_fails_over_transparently() {
    let cut = fake_key("cut0", 1);
    let h = Harness::start(&[cut.clone(), fake_key("ok", 2)]).await;
    for _ in 0..2 {
        let response = h.post("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", PROMPT).await;
        assert_eq!(response.status(), 200);
        let text = response.text().await.unwrap();
        assert_eq!(text.matches("data: ").count(), 3, "{text}");
        assert!(!text.contains("error"));
    }
    // Round robin offers the key to each request; each time the cut is absorbed.
    assert_eq!(h.snapshot(&cut).await.failures, 2);
    h.stop().await;
}

#[tokio::test]
async fn a_cut_mid_stream_ends_with_an_error_event_and_charges_the_key() {
    let cut = fake_key("cut1", 1);
    let h = Harness::start(std::slice::from_ref(&cut)).await;
    let response = h.post("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", PROMPT).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let events: Vec<&str> = text.split("\r\n\r\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(events.len(), 2, "{text}");
    assert!(events[0].contains("candidates"));
    let error: Value = serde_json::from_str(events[1].trim_start_matches("data: ")).unwrap();
    assert_eq!(error["error"]["code"], 502);
    assert_eq!(h.snapshot(&cut).await.failures, 1);

    let array = h.post("/v1beta/models/gemini-2.5-flash:streamGenerateContent", PROMPT).await.text().await.unwrap();
    assert!(array.starts_with('[') && array.trim_end().ends_with(']'), "{array}");
    assert!(array.contains("\"error\""));
    h.stop().await;
}

#[tokio::test]
async fn a_cut_in_a_whole_reply_fails_over_before_anything_is_sent() {
    // A non-streamed reply is read whole before it is relayed (to judge empty
    // replies), so a cut inside it is still a failover, not a broken reply.
    let h = Harness::start(&[fake_key("cut1", 1), fake_key("ok", 2)]).await;
    for _ in 0..2 {
        assert_eq!(h.generate("gemini-2.5-flash").await.status(), 200);
    }
    h.stop().await;
    let h = Harness::start(&keys("cut1", 1)).await;
    let response = h.generate("gemini-2.5-flash").await;
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["status"], "UNAVAILABLE");
    h.stop().await;
}

#[tokio::test]
async fn a_cut_in_a_relayed_whole_reply_reaches_the_client_as_a_broken_transfer() {
    // Without empty-reply judging the reply is relayed as it comes.
    let h = Harness::start_with(&keys("cut1", 1), |config| config.retry.empty_reply_retries = 0).await;
    let response = h.generate("gemini-2.5-flash").await;
    assert_eq!(response.status(), 200, "the head was already sent");
    assert!(response.bytes().await.is_err(), "a truncated reply must not look complete");
    h.stop().await;
}
