//! The catalog: aliases, suffix variants (the fake sees the tool and the
//! thinking config they add), the deny list, and both model lists, in both
//! dialects; and the operator's shaping of generate calls.

mod support;

use serde_json::{Value, json};
use support::*;

const CATALOG: &str =
    "[catalog]\nvariants = true\ndeny = [\"*-lite\"]\n[catalog.aliases]\n\"gpt-4o\" = \"gemini-2.5-flash\"\n";

async fn chat(h: &Harness, key: &str, model: &str) -> reqwest::Response {
    let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    h.http.post(h.url("/v1/chat/completions")).bearer_auth(key).json(&body).send().await.unwrap()
}

#[tokio::test]
async fn aliases_reach_their_model_and_replies_keep_the_name_asked_for() {
    let h = Harness::start_with_files(&[fake_key("ok", 1)], CATALOG, None).await;
    assert_eq!(h.generate("gpt-4o").await.status(), 200);
    assert!(h.fake.requests_seen().last().unwrap().contains("/models/gemini-2.5-flash:generateContent"));
    let reply = chat(&h, CLIENT_KEY, "gpt-4o").await;
    assert_eq!(reply.status(), 200);
    let body: Value = reply.json().await.unwrap();
    assert_eq!(body["model"], "gpt-4o");
    assert!(h.fake.requests_seen().last().unwrap().contains("/models/gemini-2.5-flash:generateContent"));
    h.stop().await;
}

#[tokio::test]
async fn variants_add_search_and_set_thinking_in_both_dialects() {
    let h = Harness::start_with_files(&[fake_key("ok", 1)], CATALOG, None).await;
    assert_eq!(h.generate("gemini-2.5-flash-search").await.status(), 200);
    let sent = h.fake.last_body("gemini-2.5-flash:generateContent").unwrap();
    assert_eq!(sent["tools"], json!([{"googleSearch": {}}]), "{sent}");
    assert_eq!(chat(&h, CLIENT_KEY, "gemini-2.5-pro-nothinking").await.status(), 200);
    let sent = h.fake.last_body("gemini-2.5-pro:generateContent").unwrap();
    assert_eq!(sent["generationConfig"]["thinkingConfig"], json!({"thinkingBudget": 128}), "{sent}");
    let stream = "/v1beta/models/gemini-3-pro-preview-nothinking:streamGenerateContent?alt=sse";
    assert_eq!(h.post(stream, PROMPT).await.status(), 200);
    let sent = h.fake.last_body("gemini-3-pro-preview:streamGenerateContent").unwrap();
    assert_eq!(sent["generationConfig"]["thinkingConfig"], json!({"thinkingLevel": "low"}), "{sent}");
    assert_eq!(chat(&h, CLIENT_KEY, "gpt-4o-thinking").await.status(), 200);
    let sent = h.fake.last_body("gemini-2.5-flash:generateContent").unwrap();
    assert_eq!(sent["generationConfig"]["thinkingConfig"]["includeThoughts"], true, "{sent}");
    h.stop().await;
}

#[tokio::test]
async fn denied_models_are_unknown_and_never_sent() {
    let h = Harness::start_with_files(&[fake_key("ok", 1)], CATALOG, None).await;
    let before = h.fake.requests_seen().len();
    let native = h.generate("gemini-2.5-flash-lite").await;
    assert_eq!(native.status(), 404);
    let body: Value = native.json().await.unwrap();
    assert_eq!(body["error"]["status"], "NOT_FOUND");
    let openai = chat(&h, CLIENT_KEY, "gemini-2.5-flash-lite").await;
    assert_eq!(openai.status(), 404);
    let body: Value = openai.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_not_found");
    assert_eq!(h.fake.requests_seen().len(), before);
    h.stop().await;
}

#[tokio::test]
async fn both_model_lists_show_what_is_served() {
    let h = Harness::start_with_files(&[fake_key("ok", 1)], CATALOG, None).await;
    let openai: Value =
        h.http.get(h.url("/v1/models")).bearer_auth(CLIENT_KEY).send().await.unwrap().json().await.unwrap();
    let ids: Vec<&str> = openai["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    for wanted in ["gemini-2.5-flash", "gemini-2.5-flash-search", "gemini-2.5-pro-thinking", "gpt-4o"] {
        assert!(ids.contains(&wanted), "{wanted} in {ids:?}");
    }
    assert!(!ids.iter().any(|id| id.ends_with("-lite")), "{ids:?}");
    let native: Value = h.get("/v1beta/models").await.json().await.unwrap();
    let names: Vec<&str> = native["models"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"models/gpt-4o") && names.contains(&"models/gemini-2.5-flash-nothinking"), "{names:?}");
    assert!(!names.iter().any(|n| n.ends_with("-lite")), "{names:?}");
    h.stop().await;
}

#[tokio::test]
async fn a_client_allowed_an_alias_may_use_it_and_nothing_else() {
    let h = Harness::start_with_files(&[fake_key("ok", 1)], CATALOG, None).await;
    let (status, created) =
        admin_call(&h, "POST", "/clients", Some(json!({"name": "aliased", "allowed_models": ["gpt-4o"]}))).await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap();
    assert_eq!(chat(&h, key, "gpt-4o").await.status(), 200);
    assert_eq!(chat(&h, key, "gemini-2.5-pro").await.status(), 403);
    h.stop().await;
}

#[tokio::test]
async fn shaping_fills_what_clients_left_unset_and_injects_the_prompt() {
    let shaping = "[shaping]\nthinking_budget = 512\ninclude_thoughts = true\nsystem_prompt = \"Answer in French.\"\n\
                   system_prompt_position = \"suffix\"\n\
                   safety_settings = [{category = \"HARM_CATEGORY_HARASSMENT\", threshold = \"BLOCK_NONE\"}]\n";
    let h = Harness::start_with_files(&[fake_key("ok", 1)], shaping, None).await;
    assert_eq!(h.generate("gemini-2.5-flash").await.status(), 200);
    let sent = h.fake.last_body("gemini-2.5-flash:generateContent").unwrap();
    assert_eq!(sent["generationConfig"]["thinkingConfig"], json!({"thinkingBudget": 512, "includeThoughts": true}));
    assert_eq!(sent["contents"][0]["parts"].as_array().unwrap().last().unwrap()["text"], "Answer in French.");
    assert_eq!(sent["safetySettings"][0]["threshold"], "BLOCK_NONE");
    // The OpenAI dialect's own thinking setting stays; the rest is filled in.
    let body = json!({"model": "gemini-2.5-pro", "reasoning_effort": "low",
                      "messages": [{"role": "user", "content": "hi"}]});
    let reply = h.http.post(h.url("/v1/chat/completions")).bearer_auth(CLIENT_KEY).json(&body).send().await.unwrap();
    assert_eq!(reply.status(), 200);
    let sent = h.fake.last_body("gemini-2.5-pro:generateContent").unwrap();
    assert_eq!(sent["generationConfig"]["thinkingConfig"], json!({"thinkingBudget": 1024, "includeThoughts": true}));
    assert_eq!(sent["contents"][0]["parts"].as_array().unwrap().last().unwrap()["text"], "Answer in French.");
    // Counting tokens is not a generate call: untouched.
    assert_eq!(h.post("/v1beta/models/gemini-2.5-flash:countTokens", PROMPT).await.status(), 200);
    let sent = h.fake.last_body("gemini-2.5-flash:countTokens").unwrap();
    assert_eq!(sent, serde_json::from_str::<Value>(PROMPT).unwrap());
    h.stop().await;
}
