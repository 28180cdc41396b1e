//! The native Gemini API through gemgate: routes, passthrough, streaming,
//! client auth and bad input.

mod support;

use serde_json::Value;
use support::*;

#[tokio::test]
async fn generate_content_passes_through() {
    let key = fake_key("ok", 1);
    let h = Harness::start(std::slice::from_ref(&key)).await;
    let response = h.generate("gemini-2.5-flash").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["candidates"][0]["content"]["parts"][0]["text"],
        "Hello from the fake gemini-2.5-flash. You said: hello there"
    );
    assert_eq!(body["usageMetadata"]["promptTokenCount"], 2);
    assert_eq!(h.fake.calls(&key), 1);
    h.stop().await;
}

#[tokio::test]
async fn v1_prefix_models_count_tokens_and_embeddings() {
    let h = Harness::start(&keys("ok", 2)).await;
    let list: Value = h.get("/v1beta/models?pageSize=2").await.json().await.unwrap();
    assert_eq!(list["models"].as_array().unwrap().len(), 2);
    assert_eq!(list["nextPageToken"], "2");
    let model: Value = h.get("/v1/models/gemini-2.5-pro").await.json().await.unwrap();
    assert_eq!(model["name"], "models/gemini-2.5-pro");

    let count: Value = h.post("/v1beta/models/gemini-2.5-flash:countTokens", PROMPT).await.json().await.unwrap();
    assert_eq!(count["totalTokens"], 2);
    let embed = r#"{"content":{"parts":[{"text":"hi"}]},"outputDimensionality":8}"#;
    let one: Value = h.post("/v1beta/models/gemini-embedding-001:embedContent", embed).await.json().await.unwrap();
    assert_eq!(one["embedding"]["values"].as_array().unwrap().len(), 8);
    let batch = r#"{"requests":[{"model":"models/text-embedding-004","content":{"parts":[{"text":"a"}]}},
                                {"model":"models/text-embedding-004","content":{"parts":[{"text":"b"}]}}]}"#;
    let many: Value = h.post("/v1/models/text-embedding-004:batchEmbedContents", batch).await.json().await.unwrap();
    assert_eq!(many["embeddings"].as_array().unwrap().len(), 2);
    assert_eq!(many["embeddings"][0]["values"].as_array().unwrap().len(), 768);
    h.stop().await;
}

#[tokio::test]
async fn sse_stream_arrives_event_by_event() {
    let h = Harness::start(&keys("drip100", 1)).await;
    let mut response = h.post("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", PROMPT).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut chunks = Vec::new();
    let started = std::time::Instant::now();
    while let Some(chunk) = response.chunk().await.unwrap() {
        chunks.push((started.elapsed(), chunk));
    }
    // Three events, 100 ms apart upstream, must not be buffered into one.
    assert!(chunks.len() >= 3, "{} chunks", chunks.len());
    assert!(chunks[0].0 < std::time::Duration::from_millis(90), "first chunk waited for the rest");
    let text: String = chunks.iter().map(|(_, c)| String::from_utf8_lossy(c).into_owned()).collect();
    assert_eq!(text.matches("data: ").count(), 3);
    assert!(text.contains("\"usageMetadata\""));
    h.stop().await;
}

#[tokio::test]
async fn json_array_stream_is_a_valid_array() {
    let h = Harness::start(&keys("ok", 1)).await;
    let response = h.post("/v1beta/models/gemini-2.5-flash:streamGenerateContent", PROMPT).await;
    assert_eq!(response.status(), 200);
    let array: Vec<Value> = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(array.len(), 3);
    assert_eq!(array[2]["candidates"][0]["finishReason"], "STOP");
    h.stop().await;
}

#[tokio::test]
async fn client_auth_three_ways_and_the_client_key_never_goes_upstream() {
    let key = fake_key("ok", 1);
    let h = Harness::start(std::slice::from_ref(&key)).await;
    let url = h.url("/v1beta/models/gemini-2.5-flash:generateContent");
    let bearer = h.http.post(&url).bearer_auth(CLIENT_KEY).body(PROMPT).send().await.unwrap();
    assert_eq!(bearer.status(), 200);
    let query = h.http.post(format!("{url}?key={CLIENT_KEY}")).body(PROMPT).send().await.unwrap();
    assert_eq!(query.status(), 200);
    assert_eq!(h.fake.calls(CLIENT_KEY), 0);
    assert_eq!(h.fake.calls(&key), 2);

    let missing = h.http.post(&url).body(PROMPT).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["status"], "UNAUTHENTICATED");
    let wrong = h.http.post(&url).header("x-goog-api-key", "wrong-key-0000000000").body(PROMPT).send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(h.fake.calls(&key), 2, "refused requests never reach Google");
    h.stop().await;
}

#[tokio::test]
async fn bad_input_gets_google_style_errors_and_touches_nothing() {
    let key = fake_key("ok", 1);
    let h = Harness::start_with(std::slice::from_ref(&key), |c| c.server.max_body_bytes = 4096).await;
    let cases: Vec<(String, String, u16)> = vec![
        ("/v1beta/models/gemini-2.5-flash:generateContent".into(), "{not json".into(), 400),
        ("/v1beta/models/bad%20model:generateContent".into(), PROMPT.into(), 400),
        ("/v1beta/models/gemini-2.5-flash:generateContent".into(), format!("{{\"x\":\"{}\"}}", "a".repeat(5000)), 413),
        ("/v1beta/nothing".into(), PROMPT.into(), 404),
        ("/v1beta/files".into(), PROMPT.into(), 404),
        ("/elsewhere".into(), PROMPT.into(), 404),
    ];
    for (path, body, status) in cases {
        let response = h.post(&path, &body).await;
        assert_eq!(response.status(), status, "{path}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], status, "{path}");
        assert!(!error["error"]["message"].as_str().unwrap().is_empty());
    }
    assert_eq!(h.fake.total_calls(), 0);
    let snapshot = h.snapshot(&key).await;
    assert_eq!((snapshot.requests, snapshot.failures), (0, 0));
    h.stop().await;
}

#[tokio::test]
async fn empty_pool_says_so_clearly() {
    let h = Harness::start(&[]).await;
    let response = h.generate("gemini-2.5-flash").await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("key pool is empty"), "{body}");
    h.stop().await;
}

#[tokio::test]
async fn bad_key_file_lines_are_skipped_and_the_rest_serve() {
    let good = fake_key("ok", 1);
    let lines =
        vec!["# comment".to_string(), "not-a-key".into(), good.clone(), format!("  {good}  "), "AIzaTooShort".into()];
    let h = Harness::start(&lines).await;
    assert_eq!(h.app().pool.slots().len(), 1);
    assert_eq!(h.generate("gemini-2.5-flash").await.status(), 200);
    h.stop().await;
}

#[tokio::test]
async fn generated_client_key_when_none_is_configured() {
    let h = Harness::start_with(&keys("ok", 1), |c| c.auth.client_keys.clear()).await;
    let generated = h.app().generated_client_key.clone().expect("a key was generated");
    let saved = std::fs::read_to_string(h.dir.path().join("data/client-key")).unwrap();
    assert_eq!(saved.trim(), generated);
    let url = h.url("/v1beta/models/gemini-2.5-flash:generateContent");
    assert_eq!(h.http.post(&url).body(PROMPT).send().await.unwrap().status(), 401);
    let ok = h.http.post(&url).bearer_auth(&generated).body(PROMPT).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    h.stop().await;
}
