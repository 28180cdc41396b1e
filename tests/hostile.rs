//! A client key holder as an attacker: each test is one way a hostile client
//! could crash, stall or steer gemgate, shown not to work.

mod support;

use futures_util::StreamExt;
use std::time::{Duration, Instant};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn chat_with_tool_parameters(parameters: serde_json::Value) -> String {
    serde_json::json!({
        "model": "gemini-2.5-flash",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": parameters}}]
    })
    .to_string()
}

#[tokio::test]
async fn a_ref_bomb_in_tool_parameters_is_refused_fast_and_small() {
    let harness = Harness::start(&keys("ok", 2)).await;
    // Six properties that each refer to the definition they sit in: 6^8 copies unbounded.
    let fan_out: serde_json::Map<String, serde_json::Value> =
        (0..6).map(|i| (format!("p{i}"), serde_json::json!({"$ref": "#/$defs/N"}))).collect();
    let body = chat_with_tool_parameters(serde_json::json!({
        "type": "object", "properties": fan_out.clone(),
        "$defs": {"N": {"type": "object", "properties": fan_out}}
    }));
    assert!(body.len() < 700, "the bomb is small: {} bytes", body.len());
    // The connection is opened first, so the timing is the request's own.
    assert_eq!(harness.http.get(harness.url("/healthz")).send().await.unwrap().status(), 200);
    let rss_before = rss_bytes();
    let started = Instant::now();
    let response = harness
        .http
        .post(harness.url("/v1/chat/completions"))
        .bearer_auth(CLIENT_KEY)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 400);
    let error: serde_json::Value = response.json().await.unwrap();
    assert_eq!(error["error"]["param"], "tools[0].function.parameters", "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("expands"), "{error}");
    // Unbounded, this took 23 s; bounded it is milliseconds (the release
    // build's figure is in the closing note). The margin absorbs a debug
    // build on a busy 2-core machine.
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
    assert!(rss_bytes() < rss_before + 100 * 1024 * 1024, "RSS grew from {rss_before} to {}", rss_bytes());
    assert_eq!(harness.fake.total_calls(), 0, "nothing went upstream");
    harness.stop().await;
}

/// Requests that must never reach Google, whatever their key.
const TRICKS: &[(&str, &str)] = &[
    ("DELETE", "/v1beta/openai/%2e%2e/%2e%2e/v1beta/cachedContents/abc"),
    ("DELETE", "/v1beta/openai/%2E%2E/%2E%2E/v1beta/cachedContents/abc"),
    ("GET", "/v1beta/models/.."),
    ("GET", "/v1beta/models/%2e%2e"),
    ("GET", "/v1/models/..%2f..%2fv1beta%2fcachedContents"),
    ("POST", "/v1beta/models/..:generateContent"),
    ("GET", "/v1beta/openai/../cachedContents"),
    ("GET", "/openai/v1/../../v1beta/cachedContents"),
    ("POST", "//v1beta/models/gemini-2.5-flash:generateContent"),
    ("POST", "/v1beta//models/gemini-2.5-flash:generateContent"),
    ("POST", "/v1beta/models/gemini-2.5-flash\\..\\x:generateContent"),
    ("DELETE", "/v1beta/openai/chat/completions"),
    ("GET", "/v1beta/openai/files"),
    ("POST", "/v1beta/openai/batches"),
    ("GET", "/v1beta/cachedContents"),
    ("DELETE", "/v1beta/files/abc"),
    ("POST", "/v1beta/models/gemini-2.5-flash:batchGenerateContent"),
    ("POST", "/v1beta/models/gemini-2.5-flash:predictLongRunning"),
    ("POST", "/v1beta/models/gemini-2.5-flash%3AgenerateContent"),
    ("PUT", "/v1beta/models/gemini-2.5-flash:generateContent"),
    ("DELETE", "/v1beta/models/gemini-2.5-flash"),
    ("PATCH", "/v1/chat/completions"),
    // The agent dialects' and media routes.
    ("GET", "/v1/messages"),
    ("PUT", "/anthropic/v1/messages/count_tokens"),
    ("POST", "/anthropic/v1/../../v1beta/cachedContents"),
    ("POST", "/v1/messages/%2e%2e/%2e%2e/v1beta/cachedContents"),
    ("DELETE", "/v1/responses/..%2f..%2fv1beta%2fcachedContents"),
    ("GET", "/v1/responses/resp_1/../../../v1beta/files"),
    ("PUT", "/v1/responses"),
    ("GET", "/v1/images/generations"),
    ("POST", "/v1/audio/speech/../../../v1beta/files"),
];

#[tokio::test]
async fn path_method_and_query_tricks_never_reach_upstream() {
    let harness = Harness::start(&keys("ok", 2)).await;
    let addr = harness.app().addr;
    for (method, target) in TRICKS {
        let (status, body) = raw_http(addr, &raw_request(method, target, PROMPT.as_bytes())).await;
        assert!((400..500).contains(&status), "{method} {target}: {status} {body}");
    }
    assert_eq!(harness.fake.requests_seen(), Vec::<String>::new(), "no trick reached the fake");

    // Only the query parameters Google documents are forwarded, the client's key never.
    let target =
        format!("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse&%6Bey=abc&key={CLIENT_KEY}&foo=bar");
    let (status, _) = raw_http(addr, &raw_request("POST", &target, PROMPT.as_bytes())).await;
    assert_eq!(status, 200);
    let seen = harness.fake.requests_seen();
    assert_eq!(seen, vec!["POST /v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse".to_string()]);
    harness.stop().await;
}

#[tokio::test]
async fn invalid_utf8_inside_json_strings_is_refused() {
    let harness = Harness::start(&keys("ok", 1)).await;
    let mut body = br#"{"contents":[{"role":"user","parts":[{"text":""#.to_vec();
    body.extend_from_slice(&[0xff, 0xfe, 0xc3]);
    body.extend_from_slice(br#""}]}]}"#);
    let target = "/v1beta/models/gemini-2.5-flash:generateContent";
    let (status, answer) = raw_http(harness.app().addr, &raw_request("POST", target, &body)).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("INVALID_ARGUMENT"), "{answer}");
    assert_eq!(harness.fake.total_calls(), 0);
    harness.stop().await;
}

/// Reads until the server closes the socket; `true` if it did within `limit`.
async fn closed_within(stream: &mut tokio::net::TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_and_idle_sockets_are_closed_while_others_are_served() {
    let harness = Harness::start_with(&keys("ok", 2), |config| {
        config.server.header_read_timeout_secs = 1;
        config.server.idle_timeout_secs = 2;
        config.server.body_read_timeout_secs = 1;
    })
    .await;
    let addr = harness.app().addr;
    let mut half_open = Vec::new();
    for _ in 0..500 {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"POST /v1beta/models/gemini-2.5-flash:generateContent HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        half_open.push(stream);
    }
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut slow_body = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1beta/models/gemini-2.5-flash:generateContent HTTP/1.1\r\nHost: x\r\nx-goog-api-key: {CLIENT_KEY}\r\n\
         content-length: 100\r\n\r\n{{\"contents\""
    );
    slow_body.write_all(head.as_bytes()).await.unwrap();

    // A normal client keeps being served while the sockets wait for their deadline.
    let served = tokio::spawn({
        let http = harness.http.clone();
        let url = harness.url("/v1beta/models/gemini-2.5-flash:generateContent");
        async move {
            let mut statuses = Vec::new();
            let until = Instant::now() + Duration::from_millis(1500);
            while Instant::now() < until {
                let response = http.post(&url).header("x-goog-api-key", CLIENT_KEY).body(PROMPT).send().await.unwrap();
                statuses.push(response.status().as_u16());
            }
            statuses
        }
    });
    let started = Instant::now();
    for (i, stream) in half_open.iter_mut().enumerate() {
        assert!(closed_within(stream, Duration::from_secs(10)).await, "half-open socket {i} is still open");
    }
    assert!(started.elapsed() >= Duration::from_millis(500), "closed by the header deadline, not at once");
    let mut answer = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), slow_body.read_to_string(&mut answer)).await;
    assert!(answer.starts_with("HTTP/1.1 408") || answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("in time"), "{answer}");
    assert!(closed_within(&mut idle, Duration::from_secs(10)).await, "an idle socket is closed");
    let statuses = served.await.unwrap();
    assert!(!statuses.is_empty() && statuses.iter().all(|&s| s == 200), "{statuses:?}");
    harness.stop().await;
}

#[tokio::test]
async fn connections_are_capped_per_address() {
    let harness = Harness::start_with(&keys("ok", 1), |config| config.server.max_connections_per_ip = 20).await;
    let addr = harness.app().addr;
    let mut streams = Vec::new();
    for _ in 0..40 {
        streams.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    let mut refused = 0;
    for stream in &mut streams {
        if closed_within(stream, Duration::from_millis(300)).await {
            refused += 1;
        }
    }
    assert_eq!(refused, 20, "the 20 connections over the cap are closed at once");
    drop(streams);
    let response = harness.generate("gemini-2.5-flash").await;
    assert_eq!(response.status(), 200, "places come back when connections close");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_policy_script_does_not_stall_healthz() {
    // Within the operation limit, but every operation copies 64 KiB.
    let script = r#"fn on_error(ctx) {
        let s = "x"; while s.len() < 60000 { s += s; }
        let n = 0; while n < 100000 { let t = s; t.replace("x", "y"); n += 1; }
        ctx.builtin
    }"#;
    let harness = Harness::start_with_files(&keys("internal", 3), "", Some(script)).await;
    let failing = (0..3)
        .map(|_| {
            let http = harness.http.clone();
            let url = harness.url("/v1beta/models/gemini-2.5-flash:generateContent");
            tokio::spawn(async move {
                let until = Instant::now() + Duration::from_millis(1500);
                while Instant::now() < until {
                    let _ = http.post(&url).header("x-goog-api-key", CLIENT_KEY).body(PROMPT).send().await;
                }
            })
        })
        .collect::<Vec<_>>();
    harness.eventually("failing requests are running", async || harness.fake.total_calls() >= 3).await;
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let started = Instant::now();
        let response = harness.http.get(harness.url("/healthz")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        slowest = slowest.max(started.elapsed());
    }
    let calls_during = harness.fake.total_calls();
    for task in failing {
        task.await.unwrap();
    }
    assert!(calls_during >= 3, "the failing requests ran while /healthz was measured");
    // Without the wall-clock limit /healthz took 10 s here; the margin over
    // the goal (50 ms, measured in the closing note) absorbs a debug build
    // sharing 2 cores with the other tests.
    assert!(slowest < Duration::from_millis(250), "/healthz took {slowest:?}");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invented_model_names_leave_metrics_flat() {
    let harness = Harness::start_with(&keys("ok", 2), |config| config.auth.admin_key = ADMIN_KEY.into()).await;
    let scrape = async || {
        let response = harness.http.get(harness.url("/metrics")).bearer_auth(ADMIN_KEY).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    };
    assert_eq!(harness.generate("gemini-2.5-flash").await.status(), 200);
    assert_eq!(harness.generate("made-up-model-0").await.status(), 404);
    let before = scrape().await;
    let statuses: Vec<u16> = futures_util::stream::iter(1..10_000)
        .map(|i| {
            let harness = &harness;
            async move { harness.generate(&format!("made-up-model-{i}")).await.status().as_u16() }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(statuses.iter().all(|&s| s == 404));
    let after = scrape().await;
    assert!(!after.contains("made-up-model"), "invented names are not labels");
    // Only counter digits may grow.
    assert!(after.len() < before.len() + 200, "/metrics grew from {} to {} bytes", before.len(), after.len());
    harness.stop().await;
}

#[tokio::test]
async fn wrong_keys_lock_out_one_address_and_no_other() {
    let harness = Harness::start_with(&keys("ok", 1), |config| {
        config.server.trusted_proxies = vec!["127.0.0.1".into()];
        config.server.auth_failures_per_minute = 30;
        config.auth.admin_key = ADMIN_KEY.into();
    })
    .await;
    let generate = |from: &'static str, key: &'static str| {
        harness
            .http
            .post(harness.url("/v1beta/models/gemini-2.5-flash:generateContent"))
            .header("x-forwarded-for", from)
            .header("x-goog-api-key", key)
            .body(PROMPT)
            .send()
    };
    let mut statuses = Vec::new();
    for _ in 0..100 {
        statuses.push(generate("203.0.113.7", "wrong-key-0123456789abcdef").await.unwrap().status().as_u16());
    }
    assert_eq!(statuses.iter().filter(|&&s| s == 401).count(), 30, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|&&s| s == 429).count(), 70, "{statuses:?}");
    let locked = generate("203.0.113.7", CLIENT_KEY).await.unwrap();
    assert_eq!(locked.status(), 429);
    assert!(locked.headers().get("retry-after").is_some());
    assert_eq!(generate("203.0.113.8", CLIENT_KEY).await.unwrap().status(), 200, "another address still gets in");
    // A client cannot pick its own address: only the trusted proxy's last hop counts.
    let spoofed = generate("198.51.100.1, 203.0.113.7", CLIENT_KEY).await.unwrap();
    assert_eq!(spoofed.status(), 429);

    // One limiter for every way in: the OpenAI route, the admin bearer, login and metrics.
    let from = "203.0.113.9";
    for _ in 0..10 {
        let admin = harness.http.get(harness.url("/admin/api/info")).header("x-forwarded-for", from);
        assert_eq!(admin.bearer_auth("not-the-admin-key-000").send().await.unwrap().status(), 401);
        let metrics = harness.http.get(harness.url("/metrics")).header("x-forwarded-for", from);
        assert_eq!(metrics.bearer_auth("not-the-metrics-token").send().await.unwrap().status(), 401);
        let login = harness.http.post(harness.url("/admin/api/login")).header("x-forwarded-for", from);
        let login = login.json(&serde_json::json!({"key": "not-the-admin-key-000"})).send().await.unwrap();
        assert_eq!(login.status(), 401);
    }
    let chat = harness.http.post(harness.url("/v1/chat/completions")).header("x-forwarded-for", from);
    let chat = chat.bearer_auth(CLIENT_KEY).json(&serde_json::json!({"model": "gemini-2.5-flash"})).send().await;
    assert_eq!(chat.unwrap().status(), 429, "the OpenAI route shares the lockout");
    let admin = harness.http.get(harness.url("/admin/api/info")).header("x-forwarded-for", "203.0.113.10");
    assert_eq!(admin.bearer_auth(ADMIN_KEY).send().await.unwrap().status(), 200);

    // The metrics token is accepted in a header only, never in a URL.
    let in_query = harness.http.get(harness.url(&format!("/metrics?key={ADMIN_KEY}"))).send().await.unwrap();
    assert_eq!(in_query.status(), 401);
    harness.stop().await;
}

#[tokio::test]
async fn a_pooled_key_of_any_shape_is_redacted_from_what_google_says() {
    let key = "vertex-express-Key_0123456789abcdefXYZ".to_string();
    let harness = Harness::start_with(std::slice::from_ref(&key), |config| {
        config.keys.allow_nonstandard = true;
        config.auth.admin_key = ADMIN_KEY.into();
    })
    .await;
    harness.fake.set_behaviour(&key, Behaviour::Denied);
    let response = harness.generate("gemini-2.5-flash").await;
    assert!(response.status().is_client_error() || response.status().is_server_error());
    let text = response.text().await.unwrap();
    assert!(text.contains("has been suspended") || text.contains("suspended"), "{text}");
    assert!(!text.contains(&key), "the client saw the key: {text}");
    let errors = async || {
        let response = harness.http.get(harness.url("/admin/api/logs/errors")).bearer_auth(ADMIN_KEY).send().await;
        response.unwrap().text().await.unwrap()
    };
    harness.eventually("the error log has the attempt", async || errors().await.contains("suspended")).await;
    assert!(!errors().await.contains(&key), "the store kept the key");
    let snapshot = harness.snapshot(&key).await;
    assert!(!format!("{snapshot:?}").contains(&key), "the key's state kept it");
    harness.stop().await;
}

/// Whether a request the fake saw is one gemgate may send: a documented
/// method and path shape, and only documented query parameters.
fn allowed_upstream(seen: &str) -> bool {
    let (method, target) = seen.split_once(' ').unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query_ok = query.is_empty()
        || query.split('&').all(|pair| ["alt=", "pageSize=", "pageToken="].iter().any(|p| pair.starts_with(p)));
    let model_ok = |model: &str| {
        !model.is_empty()
            && model.as_bytes()[0].is_ascii_alphanumeric()
            && model.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
    };
    let native = path.strip_prefix("/v1beta/").or_else(|| path.strip_prefix("/v1/"));
    let shape_ok = match (method, native) {
        ("GET", Some("models")) => true,
        ("GET", Some(rest)) if rest.starts_with("models/") && !rest.contains(':') => model_ok(&rest[7..]),
        ("POST", Some(rest)) if rest.starts_with("models/") => match rest[7..].split_once(':') {
            Some((model, action)) => {
                model_ok(model)
                    && ["generateContent", "streamGenerateContent", "countTokens", "embedContent", "batchEmbedContents"]
                        .contains(&action)
            }
            None => false,
        },
        _ => false,
    };
    let openai = match (method, path.strip_prefix("/v1beta/openai/")) {
        ("POST", Some("chat/completions" | "embeddings")) | ("GET", Some("models")) => true,
        ("GET", Some(rest)) => {
            rest.strip_prefix("models/").is_some_and(|id| model_ok(id.trim_start_matches("models/")))
        }
        _ => false,
    };
    query_ok && (shape_ok || (openai && query.is_empty()))
}

#[test]
fn random_paths_queries_and_bodies_never_crash_or_escape() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // Short deadlines: some cases frame their body wrongly on purpose and wait for it.
    let harness = runtime.block_on(Harness::start_with(&keys("ok", 2), |config| {
        config.server.body_read_timeout_secs = 1;
        config.server.header_read_timeout_secs = 1;
    }));
    let addr = harness.app().addr;
    let method = prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]);
    let prefix = prop::sample::select(vec![
        "/v1beta/",
        "/v1/",
        "/v1beta/openai/",
        "/openai/v1/",
        "/anthropic/v1/",
        "/admin/api/",
        "/",
        "/upload/v1beta/",
        "/metrics",
    ]);
    let segment = prop::sample::select(vec![
        "models",
        "gemini-2.5-flash",
        "gemini-2.5-flash:generateContent",
        "gemini-2.5-flash:streamGenerateContent",
        "x:batchGenerateContent",
        "..",
        ".",
        "%2e%2e",
        "%2E",
        "a%2fb",
        "%5c",
        "files",
        "cachedContents",
        "chat",
        "completions",
        "embeddings",
        "messages",
        "count_tokens",
        "responses",
        "resp_1",
        "images",
        "generations",
        "audio",
        "speech",
        "",
        "%00",
        "\\",
        "%C3%BC",
        "keys",
        "login",
    ]);
    let query = prop::collection::vec(
        prop::sample::select(vec![
            "alt=sse",
            "alt=json",
            "key=abc",
            "%6Bey=y",
            "pageSize=5",
            "foo=bar",
            "pageToken=a%26b",
        ]),
        0..4,
    );
    let body = prop::sample::select(vec![
        PROMPT.as_bytes().to_vec(),
        b"{".to_vec(),
        vec![0xff, 0xfe, 0x00],
        b"[]".to_vec(),
        br#"{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"hi"}]}"#.to_vec(),
        Vec::new(),
    ]);
    let extra_header = prop::sample::select(vec![
        "",
        "x-forwarded-for: 1.2.3.4\r\n",
        "transfer-encoding: chunked\r\n",
        "content-type: text/plain\r\n",
        "x-goog-api-key: wrong-key-0123456789\r\n",
    ]);
    // Half the paths start from ones gemgate serves, so requests do reach the fake.
    let served = prop::sample::select(vec![
        "/v1beta/models",
        "/v1beta/models/gemini-2.5-flash",
        "/v1beta/models/gemini-2.5-flash:generateContent",
        "/v1/models/gemini-2.5-flash:countTokens",
        "/v1beta/openai/chat/completions",
        "/v1/chat/completions",
        "/v1/messages",
        "/anthropic/v1/messages/count_tokens",
        "/v1/responses",
        "/v1/images/generations",
        "/v1/audio/speech",
    ]);
    let path = prop_oneof![
        (served, prop::collection::vec(segment.clone(), 0..2)).prop_map(|(base, more)| {
            if more.is_empty() { base.to_string() } else { format!("{base}/{}", more.join("/")) }
        }),
        (prefix, prop::collection::vec(segment, 0..5))
            .prop_map(|(prefix, segments)| format!("{prefix}{}", segments.join("/"))),
    ];
    let method = prop_oneof![prop::sample::select(vec!["GET", "POST"]), method];
    let strategy = (method, path, query, body, extra_header);
    let rss_before = rss_bytes();
    // A fixed seed: the same 300 cases every run, so CI is reproducible.
    let config = Config { cases: 300, failure_persistence: None, ..Config::default() };
    let rng = proptest::test_runner::TestRng::deterministic_rng(proptest::test_runner::RngAlgorithm::ChaCha);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let result = runner.run(&strategy, |(method, path, query, body, header)| {
        let mut target = path;
        if !query.is_empty() {
            target = format!("{target}?{}", query.join("&"));
        }
        let mut request = format!(
            "{method} {target} HTTP/1.1\r\nHost: gemgate\r\nx-goog-api-key: {CLIENT_KEY}\r\n{header}\
             content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(&body);
        let (status, answer) = runtime.block_on(raw_http(addr, &request));
        prop_assert!(status > 0 && status < 500, "{method} {target}: {status} {answer}");
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    let seen = harness.fake.requests_seen();
    assert!(seen.len() >= 3, "too few cases reached the fake to judge: {seen:?}");
    for seen in seen {
        assert!(allowed_upstream(&seen), "gemgate sent {seen}");
    }
    assert!(rss_bytes() < rss_before + 64 * 1024 * 1024, "RSS grew from {rss_before} to {}", rss_bytes());
    runtime.block_on(harness.stop());
}
