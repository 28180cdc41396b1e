//! Client keys' limits hold: allowed models (exact and wildcard), requests
//! per minute (exactly, under concurrency) and per day, in both dialects,
//! and nothing goes upstream for a refused request.

mod support;

use serde_json::{Value, json};
use support::*;

/// Makes a client key in the admin with these limits; returns the key.
async fn client_key(h: &Harness, limits: Value) -> String {
    let mut body = json!({"name": format!("c{}", rand::random::<u32>())});
    if let (Some(body), Some(limits)) = (body.as_object_mut(), limits.as_object()) {
        body.extend(limits.clone());
    }
    let (status, created) = admin_call(h, "POST", "/clients", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    created["key"].as_str().unwrap().to_string()
}

async fn native(h: &Harness, key: &str, model: &str) -> reqwest::Response {
    h.http
        .post(h.url(&format!("/v1beta/models/{model}:generateContent")))
        .header("x-goog-api-key", key)
        .header("content-type", "application/json")
        .body(PROMPT)
        .send()
        .await
        .unwrap()
}

async fn openai(h: &Harness, key: &str, model: &str) -> reqwest::Response {
    let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    h.http.post(h.url("/v1/chat/completions")).bearer_auth(key).json(&body).send().await.unwrap()
}

fn upstream_calls(h: &Harness) -> usize {
    h.fake.requests_seen().len()
}

#[tokio::test]
async fn a_model_not_allowed_is_refused_in_both_dialects_and_never_sent() {
    let h = Harness::start_with_files(&[fake_key("ok", 1)], "", None).await;
    let key = client_key(&h, json!({"allowed_models": ["gemini-2.5-pro", "gemini-3-*"]})).await;
    let before = upstream_calls(&h);
    let refused = native(&h, &key, "gemini-2.5-flash").await;
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["status"], "PERMISSION_DENIED", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("gemini-2.5-flash"), "{body}");
    let refused = openai(&h, &key, "gemini-2.5-flash").await;
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(
        (body["error"]["code"].as_str(), body["error"]["param"].as_str()),
        (Some("model_not_allowed"), Some("model"))
    );
    assert_eq!(upstream_calls(&h), before, "nothing went upstream");
    assert_eq!(native(&h, &key, "gemini-2.5-pro").await.status(), 200);
    assert_eq!(openai(&h, &key, "gemini-3-pro-preview").await.status(), 200);
    h.stop().await;
}

#[tokio::test]
async fn an_rpm_of_50_admits_exactly_50_of_200_parallel_requests() {
    let keys: Vec<String> = (1..=4).map(|n| fake_key("ok", n)).collect();
    let h = Harness::start_with_files(&keys, "", None).await;
    let key = client_key(&h, json!({"rpm_limit": 50})).await;
    let before = upstream_calls(&h);
    let calls = (0..200).map(|n| {
        let (h, key) = (&h, &key);
        async move {
            let response = if n % 2 == 0 {
                native(h, key, "gemini-2.5-flash").await
            } else {
                openai(h, key, "gemini-2.5-flash").await
            };
            (response.status().as_u16(), response.headers().get("retry-after").is_some())
        }
    });
    let answers = futures_util::future::join_all(calls).await;
    let admitted = answers.iter().filter(|(status, _)| *status == 200).count();
    let limited = answers.iter().filter(|(status, retry_after)| *status == 429 && *retry_after).count();
    assert_eq!((admitted, limited), (50, 150), "{answers:?}");
    assert_eq!(upstream_calls(&h) - before, 50, "only admitted requests went upstream");
    // Another client is not held by this one's limit.
    let other = client_key(&h, json!({})).await;
    assert_eq!(native(&h, &other, "gemini-2.5-flash").await.status(), 200);
    h.stop().await;
}

#[tokio::test]
async fn a_daily_limit_says_so_with_retry_info_until_midnight() {
    let h = Harness::start_with_files(&[fake_key("ok", 1)], "[clients]\nday_zone = \"Asia/Shanghai\"\n", None).await;
    let key = client_key(&h, json!({"rpd_limit": 2})).await;
    assert_eq!(native(&h, &key, "gemini-2.5-flash").await.status(), 200);
    assert_eq!(openai(&h, &key, "gemini-2.5-flash").await.status(), 200);
    let refused = native(&h, &key, "gemini-2.5-flash").await;
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    let midnight = gemgate::midnight::next_midnight("Asia/Shanghai".parse().unwrap(), std::time::SystemTime::now());
    let to_midnight = midnight.duration_since(std::time::SystemTime::now()).unwrap().as_secs();
    assert!(retry_after.abs_diff(to_midnight) <= 2, "{retry_after} vs {to_midnight}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
    assert!(body["error"]["message"].as_str().unwrap().contains("2 requests per day"), "{body}");
    assert_eq!(body["error"]["details"][0]["retryDelay"], format!("{retry_after}s"));
    let refused = openai(&h, &key, "gemini-2.5-flash").await;
    assert_eq!(refused.status(), 429);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    h.stop().await;
}

#[tokio::test]
async fn limits_changed_in_the_admin_hold_at_once() {
    let h = Harness::start_with_files(&[fake_key("ok", 1)], "", None).await;
    let key = client_key(&h, json!({"rpm_limit": 1})).await;
    assert_eq!(native(&h, &key, "gemini-2.5-flash").await.status(), 200);
    assert_eq!(native(&h, &key, "gemini-2.5-flash").await.status(), 429);
    let (_, list) = admin_call(&h, "GET", "/clients", None).await;
    let id = list["items"][0]["id"].as_i64().unwrap();
    let (status, _) = admin_call(
        &h,
        "PUT",
        &format!("/clients/{id}"),
        Some(json!({"rpm_limit": 0, "allowed_models": ["gemini-2.5-pro"]})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(native(&h, &key, "gemini-2.5-pro").await.status(), 200, "the minute limit is gone");
    assert_eq!(native(&h, &key, "gemini-2.5-flash").await.status(), 403, "the model list holds");
    let (status, _) = admin_call(&h, "DELETE", &format!("/clients/{id}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(native(&h, &key, "gemini-2.5-pro").await.status(), 401, "a revoked key stops");
    h.stop().await;
}

#[tokio::test]
async fn disabled_and_expired_keys_are_refused_until_enabled_or_extended() {
    let h = Harness::start_with_files(&[fake_key("ok", 1)], "", None).await;
    let now_ms = gemgate::store::now_ms();
    let key = client_key(&h, json!({"enabled": false})).await;
    let before = upstream_calls(&h);
    let refused = native(&h, &key, "gemini-2.5-flash").await;
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("disabled"), "{body}");
    let refused = openai(&h, &key, "gemini-2.5-flash").await;
    assert_eq!(refused.status(), 403);
    assert_eq!(refused.json::<Value>().await.unwrap()["error"]["code"], "key_disabled");
    let (_, list) = admin_call(&h, "GET", "/clients", None).await;
    let id = list["items"][0]["id"].as_i64().unwrap();
    assert!(list["items"][0]["disabled_ms"].as_i64().is_some(), "{list}");
    // Enabled again, but with an expiry already past.
    let expired = json!({"enabled": true, "expires_ms": now_ms - 1000});
    assert_eq!(admin_call(&h, "PUT", &format!("/clients/{id}"), Some(expired)).await.0, 200);
    let refused = openai(&h, &key, "gemini-2.5-flash").await;
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "key_expired", "{body}");
    assert_eq!(upstream_calls(&h), before, "nothing went upstream");
    let extended = json!({"expires_ms": now_ms + 3_600_000});
    assert_eq!(admin_call(&h, "PUT", &format!("/clients/{id}"), Some(extended)).await.0, 200);
    assert_eq!(native(&h, &key, "gemini-2.5-flash").await.status(), 200);
    h.stop().await;
}

#[tokio::test]
async fn tokens_per_minute_settle_from_usage_and_then_refuse() {
    let h = Harness::start_with_files(&[fake_key("ok", 1)], "", None).await;
    let key = client_key(&h, json!({"tpm_limit": 1})).await;
    // The first request is admitted on its estimate; its real usage (more
    // than one token) then fills the minute.
    assert_eq!(native(&h, &key, "gemini-2.5-flash").await.status(), 200);
    let before = upstream_calls(&h);
    let refused = openai(&h, &key, "gemini-2.5-flash").await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().get("retry-after").is_some());
    let body: Value = refused.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("1 tokens per minute"), "{body}");
    assert_eq!(upstream_calls(&h), before, "nothing went upstream");
    h.stop().await;
}

#[tokio::test]
async fn a_failed_request_gives_its_token_estimate_back() {
    // The only key is rate limited on pro models: every pro request fails.
    let h = Harness::start_with_files(&[fake_key("prorpm", 1)], "", None).await;
    // Exactly one request's estimate (about a token per four bytes).
    let key = client_key(&h, json!({"tpm_limit": PROMPT.len().div_ceil(4)})).await;
    for _ in 0..3 {
        let failed = native(&h, &key, "gemini-2.5-pro").await;
        assert_eq!(failed.status(), 429);
        let body: Value = failed.json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap();
        assert!(!message.contains("tokens per minute"), "the pool's refusal, not the client's limit: {message}");
    }
    h.stop().await;
}
