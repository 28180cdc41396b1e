//! Failover users can trust: a key's own failure never spends the request's
//! budget nor reaches the client as the client's fault; empty replies are
//! retried; pacing says it is pacing; foreign tool-call histories go on.

mod support;

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::*;

/// Seven keys dead or resting in seven ways, then one that works.
fn dead_in_seven_ways_then_one_healthy() -> Vec<String> {
    vec![
        fake_key("invalid", 1),
        fake_key("denied", 2),
        fake_key("region", 3),
        fake_key("rpd", 4),
        fake_key("rpm60", 5),
        fake_key("invalid", 6),
        fake_key("denied", 7),
        fake_key("ok", 8),
    ]
}

#[tokio::test]
async fn keys_own_failures_do_not_spend_the_request_budget() {
    let h = Harness::start(&dead_in_seven_ways_then_one_healthy()).await;
    for round in 0..10 {
        let response = h.generate("gemini-2.5-flash").await;
        assert_eq!(response.status(), 200, "round {round}: {}", response.text().await.unwrap());
    }
    let chat = h.chat(&json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(chat.status(), 200);
    h.stop().await;
}

#[tokio::test]
async fn a_pool_with_no_usable_key_says_why_and_never_blames_the_client() {
    let h = Harness::start(&[fake_key("invalid", 1), fake_key("invalid", 2), fake_key("denied", 3)]).await;
    let response = h.generate("gemini-2.5-flash").await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("2 invalid") && message.contains("1 suspended or denied"), "{message}");
    h.stop().await;

    // A key refused for its region is the key's problem: never a 400 to the client.
    let h = Harness::start(&[fake_key("region", 1), fake_key("invalid", 2)]).await;
    let response = h.generate("gemini-2.5-flash").await;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert!(status == 429 || status == 503, "{status} {text}");
    assert!(!text.contains("FAILED_PRECONDITION") && text.contains("region"), "{text}");
    h.stop().await;

    // Keys that are only rate-limited: 429 with the time the first one frees up.
    let h = Harness::start(&[fake_key("rpm30", 1), fake_key("rpm40", 2)]).await;
    let response = h.generate("gemini-2.5-flash").await;
    assert_eq!(response.status(), 429);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["error"]["details"][0]["retryDelay"]
            .as_str()
            .map(|d| d.trim_end_matches('s').parse::<u64>().unwrap() <= 30),
        Some(true),
        "{body}"
    );
    assert!(body["error"]["message"].as_str().unwrap().contains("2 rate-limited"), "{body}");
    h.stop().await;
}

#[tokio::test]
async fn empty_replies_are_retried_on_another_key_in_every_mode() {
    let empty = fake_key("empty", 1);
    let h = Harness::start(&[empty.clone(), fake_key("ok", 2)]).await;
    // Round robin offers the empty key to every other request; each must come back with content.
    for _ in 0..2 {
        let whole: Value = h.generate("gemini-2.5-flash").await.json().await.unwrap();
        assert!(
            whole["candidates"][0]["content"]["parts"][0]["text"].as_str().is_some_and(|t| !t.is_empty()),
            "{whole}"
        );
        let sse = h.post("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", PROMPT).await;
        let sse = sse.text().await.unwrap();
        assert!(sse.contains("\"text\"") && sse.contains("Hello"), "{sse}");
        let array = h.post("/v1beta/models/gemini-2.5-flash:streamGenerateContent", PROMPT).await;
        let array: Value = array.json().await.unwrap();
        assert!(array.to_string().contains("Hello"), "{array}");
        let chat = h.chat(&json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}]})).await;
        let chat: Value = chat.json().await.unwrap();
        assert!(chat["choices"][0]["message"]["content"].as_str().is_some_and(|c| !c.is_empty()), "{chat}");
        let stream =
            json!({"model": "gemini-2.5-flash", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
        let stream = h.chat(&stream).await;
        let stream = stream.text().await.unwrap();
        assert!(stream.contains("Hello") && stream.contains("[DONE]"), "{stream}");
    }
    assert!(h.fake.calls(&empty) >= 4, "the empty key was offered requests: {}", h.fake.calls(&empty));
    h.stop().await;
}

#[tokio::test]
async fn blocked_prompts_are_answers_and_a_lone_empty_key_still_answers() {
    let blocked = fake_key("blocked", 1);
    let h = Harness::start(std::slice::from_ref(&blocked)).await;
    let response = h.generate("gemini-2.5-flash").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["promptFeedback"]["blockReason"], "SAFETY");
    let sse = h.post("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", PROMPT).await;
    assert!(sse.text().await.unwrap().contains("blockReason"));
    assert_eq!(h.fake.calls(&blocked), 2, "a blocked prompt is not retried");
    h.stop().await;

    // With no other key to try, the empty reply is the answer (not a 503).
    let h = Harness::start(&keys("empty", 1)).await;
    let response = h.generate("gemini-2.5-flash").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["candidates"][0]["finishReason"], "STOP");
    h.stop().await;
}

#[tokio::test]
async fn a_pacing_refusal_names_the_limit_and_when_it_frees() {
    let h = Harness::start_with(&keys("ok", 1), |config| {
        config.models.insert("gemini-2.5-flash".into(), gemgate::config::ModelLimits { rpm: 1, rpd: 0 });
        config.auth.admin_key = ADMIN_KEY.into();
    })
    .await;
    assert_eq!(h.generate("gemini-2.5-flash").await.status(), 200);
    let refused = h.generate("gemini-2.5-flash").await;
    assert_eq!(refused.status(), 429);
    let body: Value = refused.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("rpm") && message.contains("gemini-2.5-flash") && message.contains("declared"),
        "{message}"
    );
    let delay = body["error"]["details"][0]["retryDelay"].as_str().unwrap();
    assert!(delay.trim_end_matches('s').parse::<u64>().unwrap() <= 60, "{delay}");
    assert_eq!(h.fake.total_calls(), 1, "the refusal is gemgate's own");
    // The admin shows the wait among the key's rests.
    let (_, list) = admin_call(&h, "GET", "/keys", None).await;
    let rests = list["items"][0]["cooldowns"].to_string();
    assert!(rests.contains("pacing_rpm") && rests.contains("gemini-2.5-flash"), "{list}");
    h.stop().await;
}

#[tokio::test]
async fn a_foreign_tool_call_history_continues_on_gemini_3() {
    let h = Harness::start(&keys("ok", 1)).await;
    let history = json!({
        "model": "gemini-3-pro-preview",
        "messages": [
            {"role": "user", "content": "What is the weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "toolu_from_another_client", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "toolu_second", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Lyon\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "toolu_from_another_client", "content": "{\"temp\": 21}"},
            {"role": "tool", "tool_call_id": "toolu_second", "content": "{\"temp\": 19}"}
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object", "properties": {"city": {"type": "string"}}}}}]
    });
    let response = h.chat(&history).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body["choices"][0]["message"]["content"].as_str().unwrap().contains("The tools said"), "{body}");
    h.stop().await;
}

#[tokio::test]
async fn a_fake_stream_keeps_a_slow_reply_alive_with_comments() {
    let h = Harness::start_with(&keys("slow2500", 1), |config| {
        config.openai.fake_stream = true;
        config.openai.keepalive_secs = 1;
    })
    .await;
    let started = Instant::now();
    let response = h
        .chat(&json!({"model": "gemini-2.5-flash", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert!(started.elapsed() < Duration::from_millis(2000), "the head comes at once");
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let comments = text.matches(": keep-alive").count();
    assert!(comments >= 2, "comments while waiting: {text}");
    let first_data = text.find("data: ").unwrap();
    assert!(text[..first_data].contains(": keep-alive"), "comments come before the reply: {text}");
    assert!(text.contains("Hello") && text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert!(h.fake.requests_seen().iter().all(|r| r.contains(":generateContent")), "one non-streamed call");
    h.stop().await;
}

#[tokio::test]
async fn a_daily_quota_outlives_a_short_rest_on_every_model() {
    // The daily quota (flash, until midnight Pacific) comes first; then a
    // one-second rest on every model, ordered by the script for pro.
    let script = "fn on_error(ctx) { if ctx.model == \"gemini-2.5-pro\" { #{ cooldown_secs: 1, cooldown_model: \"all\" } } else { ctx.builtin } }";
    let daily = fake_key("rpd", 1);
    let h = Harness::start_with_files(std::slice::from_ref(&daily), "", Some(script)).await;
    assert_eq!(h.generate("gemini-2.5-flash").await.status(), 429);
    assert_eq!(h.generate("gemini-2.5-pro").await.status(), 429);
    let rests = h.snapshot(&daily).await.cooldowns;
    assert!(rests.iter().any(|c| c.model.is_none()) && rests.len() == 2, "{rests:?}");
    h.eventually("the rest on every model ended", async || {
        h.snapshot(&daily).await.cooldowns.iter().all(|c| c.model.is_some())
    })
    .await;
    let calls = h.fake.calls(&daily);
    let flash = h.generate("gemini-2.5-flash").await;
    assert_eq!(flash.status(), 429);
    assert_eq!(h.fake.calls(&daily), calls, "the key still rests on flash: nothing was sent");
    assert_eq!(h.generate("gemini-2.5-pro").await.status(), 429);
    assert_eq!(h.fake.calls(&daily), calls + 1, "pro is served again (and fails again)");
    h.stop().await;
}
