//! The OpenAI-compatible API through gemgate: routing beside Google's `/v1`,
//! failover, streaming, errors in OpenAI's format, and the passthrough to
//! Google's own OpenAI endpoint.

mod support;

use serde_json::{Value, json};
use support::*;

fn chat(model: &str, stream: bool) -> String {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}).to_string()
}

async fn post_bearer(h: &Harness, path: &str, body: &str) -> reqwest::Response {
    h.http
        .post(h.url(path))
        .bearer_auth(CLIENT_KEY)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn v1_models_speaks_openai_unless_the_caller_speaks_google() {
    let h = Harness::start(&keys("ok", 1)).await;
    let openai: Value =
        h.http.get(h.url("/v1/models")).bearer_auth(CLIENT_KEY).send().await.unwrap().json().await.unwrap();
    assert_eq!(openai["object"], "list");
    assert!(openai["data"].as_array().unwrap().iter().any(|m| m["id"] == "gemini-2.5-flash"));
    let google: Value = h.get("/v1/models").await.json().await.unwrap();
    assert!(google["models"].is_array(), "{google}");
    let one: Value = h
        .http
        .get(h.url("/openai/v1/models/gemini-2.5-pro"))
        .bearer_auth(CLIENT_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["id"], "gemini-2.5-pro");
    h.stop().await;
}

#[tokio::test]
async fn chat_fails_over_and_errors_come_in_openai_format() {
    let h = Harness::start(&[fake_key("rpm", 1), fake_key("ok", 2)]).await;
    for _ in 0..2 {
        let reply: Value =
            post_bearer(&h, "/v1/chat/completions", &chat("gemini-2.5-flash", false)).await.json().await.unwrap();
        assert_eq!(reply["object"], "chat.completion");
    }
    let bad = post_bearer(&h, "/v1/chat/completions", "{nope").await;
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["code"], "invalid_json");
    let bad_param =
        post_bearer(&h, "/v1/chat/completions", r#"{"model":"m","messages":[{"role":"user","content":"x"}],"n":99}"#)
            .await;
    let body: Value = bad_param.json().await.unwrap();
    assert_eq!(body["error"]["param"], "n");
    let unauthorized = h.http.post(h.url("/v1/chat/completions")).body(chat("m", false)).send().await.unwrap();
    assert_eq!(unauthorized.status(), 401);
    assert_eq!(unauthorized.json::<Value>().await.unwrap()["error"]["type"], "authentication_error");
    h.stop().await;
}

#[tokio::test]
async fn a_blocked_prompt_is_a_clear_400_not_an_empty_reply() {
    let h = Harness::start(&keys("blocked", 1)).await;
    let response = post_bearer(&h, "/v1/chat/completions", &chat("gemini-2.5-flash", false)).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "content_filter");
    h.stop().await;
}

#[tokio::test]
async fn a_stream_cut_mid_reply_ends_with_an_error_event() {
    let h = Harness::start(&keys("cut1", 1)).await;
    let text = post_bearer(&h, "/v1/chat/completions", &chat("gemini-2.5-flash", true)).await.text().await.unwrap();
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert!(events[0].contains("chat.completion.chunk"), "{text}");
    let last: Value = serde_json::from_str(events.last().unwrap().trim_start_matches("data: ")).unwrap();
    assert_eq!(last["error"]["type"], "api_error");
    assert!(!text.contains("[DONE]"));
    h.stop().await;
}

#[tokio::test]
async fn google_openai_passthrough_uses_the_pool_with_failover() {
    let limited = fake_key("rpm", 1);
    let healthy = fake_key("ok", 2);
    let h = Harness::start(&[limited.clone(), healthy.clone()]).await;
    for _ in 0..2 {
        let response = post_bearer(&h, "/v1beta/openai/chat/completions", &chat("gemini-2.5-flash", false)).await;
        assert_eq!(response.status(), 200);
        let reply: Value = response.json().await.unwrap();
        assert_eq!(reply["choices"][0]["message"]["content"], "Hello from the fake gemini-2.5-flash. You said: hi");
    }
    assert_eq!(h.fake.calls(&limited), 1, "the 429 moved the request to another key and cooled this one");
    assert_eq!(h.fake.calls(&healthy), 2);
    let stream =
        post_bearer(&h, "/v1beta/openai/chat/completions", &chat("gemini-2.5-flash", true)).await.text().await.unwrap();
    assert!(stream.contains("chat.completion.chunk") && stream.contains("[DONE]"), "{stream}");
    let models: Value =
        h.http.get(h.url("/v1beta/openai/models")).bearer_auth(CLIENT_KEY).send().await.unwrap().json().await.unwrap();
    assert_eq!(models["object"], "list");
    h.stop().await;
}
