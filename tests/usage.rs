//! What clients spend and where their requests go: budgets of tokens and
//! dollars (both dialects, across a restart), client keys declared in
//! config, per-client shaping, usage and cost per client, model and key
//! group in the admin, key weights, and session affinity with Gemini's
//! implicit cache.

mod support;

use gemgate::config::{BudgetPeriod, ClientKeyConfig, ModelPrice, PromptPosition, ShapingConfig};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::*;

const ALICE: &str = "alice-client-key-0001";
const BOB: &str = "bob-client-key-000002";

fn declared(name: &str, key: &str, edit: impl FnOnce(&mut ClientKeyConfig)) -> ClientKeyConfig {
    let mut client = ClientKeyConfig {
        name: name.into(),
        key_sha256: hex::encode(Sha256::digest(key.as_bytes())),
        ..Default::default()
    };
    edit(&mut client);
    client
}

/// Flash at $100,000 per 1M tokens: ten cents a token, so a few tokens
/// spend a small budget.
fn expensive_flash() -> ModelPrice {
    ModelPrice { input: 100_000.0, output: 100_000.0, cached: 25_000.0, tiers: vec![] }
}

async fn native(h: &Harness, key: &str, model: &str, body: &str) -> reqwest::Response {
    h.http
        .post(h.url(&format!("/v1beta/models/{model}:generateContent")))
        .header("x-goog-api-key", key)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

async fn openai(h: &Harness, key: &str, body: &Value) -> reqwest::Response {
    h.http.post(h.url("/v1/chat/completions")).bearer_auth(key).json(body).send().await.unwrap()
}

fn chat(text: &str) -> Value {
    json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": text}]})
}

#[tokio::test]
async fn budgets_of_tokens_and_dollars_hold_in_both_dialects_and_across_a_restart() {
    let mut h = Harness::start_with(&[fake_key("ok", 1)], |c| {
        c.auth.admin_key = ADMIN_KEY.into();
        c.prices.insert("gemini-2.5-flash".into(), expensive_flash());
        c.clients.keys.push(declared("alice", ALICE, |a| {
            a.budget_tokens = 5;
            a.budget_period = BudgetPeriod::Day;
        }));
        c.clients.keys.push(declared("bob", BOB, |b| b.budget_usd = 0.5));
    })
    .await;
    // Admitted while under budget; the first reply spends it.
    assert_eq!(native(&h, ALICE, "gemini-2.5-flash", PROMPT).await.status(), 200);
    let before = h.fake.requests_seen().len();
    let refused = native(&h, ALICE, "gemini-2.5-flash", PROMPT).await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().get("retry-after").is_some());
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("budget of 5 tokens"), "{message}");
    assert!(body["error"]["details"].to_string().contains("RetryInfo"), "{body}");

    assert_eq!(openai(&h, BOB, &chat("hello there")).await.status(), 200);
    let refused = openai(&h, BOB, &chat("hello again")).await;
    assert_eq!(refused.status(), 429);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "insufficient_quota", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("$0.50"), "{body}");
    assert_eq!(h.fake.requests_seen().len(), before + 1, "only bob's first request went upstream");
    // Listing models spends nothing and is never refused by a budget.
    let listed = h.http.get(h.url("/v1/models")).bearer_auth(BOB).send().await.unwrap();
    assert_eq!(listed.status(), 200);

    // What was spent is read back from the usage rollups after a restart.
    h.restart().await;
    assert_eq!(native(&h, ALICE, "gemini-2.5-flash", PROMPT).await.status(), 429);
    assert_eq!(openai(&h, BOB, &chat("hello")).await.status(), 429);
    h.stop().await;
}

#[tokio::test]
async fn admin_budgets_show_their_spending_and_hold() {
    let h = Harness::start_with(&[fake_key("ok", 1)], |c| {
        c.auth.admin_key = ADMIN_KEY.into();
        c.prices.insert("gemini-2.5-*".into(), expensive_flash());
    })
    .await;
    let (status, created) =
        admin_call(&h, "POST", "/clients", Some(json!({"name": "carol", "budget_usd": 0.2, "budget_period": "week"})))
            .await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_string();
    assert_eq!(created["client"]["budget_period"], "week");
    assert_eq!(native(&h, &key, "gemini-2.5-flash", PROMPT).await.status(), 200);
    assert_eq!(native(&h, &key, "gemini-2.5-flash", PROMPT).await.status(), 429);
    let (_, list) = admin_call(&h, "GET", "/clients", None).await;
    let carol = &list["items"][0];
    assert!(carol["spent"]["usd"].as_f64().unwrap() > 0.2, "{carol}");
    assert!(carol["spent"]["period_ends_ms"].as_i64().unwrap() > 0);
    // Raising the budget lets it through again at once.
    let id = carol["id"].as_i64().unwrap();
    let raised = json!({"budget_usd": 1000.0, "budget_period": "week"});
    assert_eq!(admin_call(&h, "PUT", &format!("/clients/{id}"), Some(raised)).await.0, 200);
    assert_eq!(native(&h, &key, "gemini-2.5-flash", PROMPT).await.status(), 200);
    let bad = json!({"budget_usd": 1.0, "budget_period": "year"});
    assert_eq!(admin_call(&h, "PUT", &format!("/clients/{id}"), Some(bad)).await.0, 400);
    h.stop().await;
}

#[tokio::test]
async fn clients_declared_in_config_have_names_limits_and_their_own_shaping() {
    let h = Harness::start_with(&[fake_key("ok", 1)], |c| {
        c.auth.admin_key = ADMIN_KEY.into();
        c.clients.keys.push(declared("alice", ALICE, |a| {
            a.rpm = 1;
            a.models = vec!["gemini-2.5-*".into()];
        }));
        c.clients.keys.push(declared("bob", BOB, |b| b.enabled = Some(false)));
        c.shaping.system_prompt = "house rules".into();
        let alice = ShapingConfig {
            system_prompt: "answer alice briefly".into(),
            system_prompt_position: PromptPosition::Suffix,
            thinking_budget: Some(64),
            ..Default::default()
        };
        c.shaping.clients.insert("alice".into(), alice);
    })
    .await;
    assert_eq!(native(&h, ALICE, "gemini-3-pro-preview", PROMPT).await.status(), 403);
    assert_eq!(native(&h, ALICE, "gemini-2.5-flash", PROMPT).await.status(), 200);
    let sent = h.fake.last_body(":generateContent").unwrap();
    let parts = &sent["contents"][0]["parts"];
    assert_eq!(parts[parts.as_array().unwrap().len() - 1]["text"], "answer alice briefly", "{sent}");
    assert_eq!(sent["generationConfig"]["thinkingConfig"]["thinkingBudget"], 64, "{sent}");
    assert!(sent.get("systemInstruction").is_none(), "alice's prompt replaces the global one: {sent}");
    let refused = openai(&h, ALICE, &chat("again")).await;
    assert_eq!(refused.status(), 429);
    let body: Value = refused.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("requests per minute"), "{body}");
    let disabled = openai(&h, BOB, &chat("hi")).await;
    assert_eq!(disabled.status(), 403);
    let body: Value = disabled.json().await.unwrap();
    assert_eq!(body["error"]["code"], "key_disabled", "{body}");
    // The test config's own client key gets the global shaping.
    assert_eq!(h.generate("gemini-2.5-flash").await.status(), 200);
    let sent = h.fake.last_body(":generateContent").unwrap();
    assert_eq!(sent["systemInstruction"]["parts"][0]["text"], "house rules", "{sent}");
    h.stop().await;
}

#[tokio::test]
async fn usage_and_cost_per_client_model_and_group_in_the_admin() {
    let h = Harness::start_with(&[fake_key("ok", 1)], |c| {
        c.auth.admin_key = ADMIN_KEY.into();
        c.prices.insert("gemini-2.5-flash".into(), expensive_flash());
        c.clients.keys.push(declared("alice", ALICE, |_| {}));
    })
    .await;
    for _ in 0..3 {
        assert_eq!(native(&h, ALICE, "gemini-2.5-flash", PROMPT).await.status(), 200);
    }
    assert_eq!(
        openai(&h, ALICE, &json!({"model": "gemini-2.5-pro", "messages": [{"role": "user", "content": "hi"}]}))
            .await
            .status(),
        200
    );
    h.app().store_writer.flush().await;
    let (status, usage) = admin_call(&h, "GET", "/usage?by=client&days=1", None).await;
    assert_eq!(status, 200, "{usage}");
    let alice = usage["items"].as_array().unwrap().iter().find(|i| i["name"] == "alice").expect("alice").clone();
    assert_eq!(alice["requests"], 4, "{usage}");
    assert!(alice["input_tokens"].as_i64().unwrap() >= 7 && alice["output_tokens"].as_i64().unwrap() > 0);
    assert!(alice["cost_usd"].as_f64().unwrap() > 0.0, "flash is priced: {alice}");
    assert_eq!(usage["priced"], true);
    assert!(!usage["hours"].as_array().unwrap().is_empty());
    let (_, by_model) = admin_call(&h, "GET", "/usage?by=model&days=1", None).await;
    let models: Vec<&str> = by_model["items"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert!(models.contains(&"gemini-2.5-flash") && models.contains(&"gemini-2.5-pro"), "{by_model}");
    let pro = by_model["items"].as_array().unwrap().iter().find(|i| i["name"] == "gemini-2.5-pro").unwrap();
    assert_eq!(pro["cost_usd"], 0.0, "pro has no price");
    let (_, by_group) = admin_call(&h, "GET", "/usage?by=group", None).await;
    assert_eq!(by_group["items"][0]["name"], "test", "{by_group}");
    assert_eq!(by_group["items"][0]["requests"], 4);
    assert_eq!(admin_call(&h, "GET", "/usage?days=0", None).await.0, 400);
    h.stop().await;
}

#[tokio::test]
async fn a_key_of_weight_3_gets_three_times_the_traffic() {
    let (heavy, light) = (fake_key("ok", 1), fake_key("ok", 2));
    let h = Harness::start_with(&[format!("{heavy} weight=3"), light.clone()], |c| c.pool.affinity = false).await;
    let h = std::sync::Arc::new(h);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..500 {
                assert_eq!(h.generate("gemini-2.5-flash").await.status(), 200);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let (heavy_calls, light_calls) = (h.fake.calls(&heavy), h.fake.calls(&light));
    assert_eq!(heavy_calls + light_calls, 4000);
    let share = heavy_calls as f64 / 4000.0;
    assert!((share - 0.75).abs() <= 0.75 * 0.05, "3:1 within 5%: {heavy_calls} to {light_calls}");
}

/// A conversation whose start is long enough for Gemini's implicit cache.
fn long_start() -> String {
    let words = vec!["context"; gemgate::fake_upstream::IMPLICIT_CACHE_MIN_TOKENS as usize + 10].join(" ");
    format!("{words} and a question")
}

#[tokio::test]
async fn a_conversation_stays_on_its_key_and_hits_the_implicit_cache() {
    let keys: Vec<String> = (1..=4).map(|n| fake_key("ok", n)).collect();
    let h = Harness::start_with(&keys, |c| c.auth.admin_key = ADMIN_KEY.into()).await;
    let start = long_start();
    let mut contents = vec![json!({"role": "user", "parts": [{"text": start}]})];
    let mut cached = Vec::new();
    for turn in 0..6 {
        let body = json!({"contents": contents}).to_string();
        let reply = h.post("/v1beta/models/gemini-2.5-flash:generateContent", &body).await;
        assert_eq!(reply.status(), 200);
        let reply: Value = reply.json().await.unwrap();
        cached.push(reply["usageMetadata"]["cachedContentTokenCount"].as_i64().unwrap_or(0));
        contents.push(json!({"role": "model", "parts": [{"text": "ok"}]}));
        contents.push(json!({"role": "user", "parts": [{"text": format!("turn {turn}")}]}));
    }
    let used: Vec<u64> = keys.iter().map(|k| h.fake.calls(k)).filter(|&n| n > 0).collect();
    assert_eq!(used, [6], "one key served the whole conversation");
    assert_eq!(cached[0], 0, "the first request fills the cache");
    assert!(cached[1..].iter().all(|&c| c > 1000), "later requests hit it: {cached:?}");

    // The OpenAI dialect, with a session the client names: one key too,
    // and cached tokens reported in OpenAI's usage.
    let mut messages = vec![json!({"role": "user", "content": long_start()})];
    let mut cached = Vec::new();
    for turn in 0..4 {
        let body = json!({"model": "gemini-2.5-flash", "messages": messages, "prompt_cache_key": "conv-42"});
        let reply = h.http.post(h.url("/v1/chat/completions")).bearer_auth(CLIENT_KEY).json(&body).send().await;
        let reply: Value = reply.unwrap().json().await.unwrap();
        cached.push(reply["usage"]["prompt_tokens_details"]["cached_tokens"].as_i64().unwrap_or(0));
        messages.push(json!({"role": "assistant", "content": "ok"}));
        messages.push(json!({"role": "user", "content": format!("turn {turn}")}));
    }
    assert!(cached[1..].iter().all(|&c| c > 1000), "{cached:?}");
    h.app().store_writer.flush().await;
    let (_, usage) = admin_call(&h, "GET", "/usage?by=model&days=1", None).await;
    assert!(usage["items"][0]["cached_tokens"].as_i64().unwrap() > 5000, "{usage}");
    h.stop().await;
}

#[tokio::test]
async fn without_affinity_a_conversation_spreads_over_the_keys() {
    // The control for the test above: the same conversation, affinity off.
    let keys: Vec<String> = (1..=4).map(|n| fake_key("ok", n)).collect();
    let h = Harness::start_with(&keys, |c| c.pool.affinity = false).await;
    let body = json!({"contents": [{"role": "user", "parts": [{"text": long_start()}]}]}).to_string();
    for _ in 0..8 {
        assert_eq!(h.post("/v1beta/models/gemini-2.5-flash:generateContent", &body).await.status(), 200);
    }
    let used = keys.iter().filter(|k| h.fake.calls(k) > 0).count();
    assert!(used > 1, "round robin spreads it");
    h.stop().await;
}
