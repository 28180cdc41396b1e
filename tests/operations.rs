//! Running it: health and readiness, graceful shutdown of the real binary,
//! and `gemgate check`.

mod support;

use serde_json::Value;
use std::process::Command;
use support::*;

#[tokio::test]
async fn healthz_and_readyz_without_client_auth() {
    let h = Harness::start(&keys("invalid", 1)).await;
    let health = h.http.get(h.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = h.http.get(h.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "one usable key");
    assert_eq!(h.generate("gemini-2.5-flash").await.status(), 503);
    let unready = h.http.get(h.url("/readyz")).send().await.unwrap();
    assert_eq!(unready.status(), 503);
    let body: Value = unready.json().await.unwrap();
    assert_eq!(body["reason"], "every key is disabled");
    h.app().store.close().await;
    let body: Value = h.http.get(h.url("/readyz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(body["reason"], "the store does not answer");
    h.stop().await;
}

#[tokio::test]
async fn readyz_is_unready_with_an_empty_pool() {
    let h = Harness::start(&[]).await;
    let body: Value = h.http.get(h.url("/readyz")).send().await.unwrap().json().await.unwrap();
    assert_eq!((body["status"].as_str(), body["reason"].as_str()), (Some("unready"), Some("the key pool is empty")));
    h.stop().await;
}

#[tokio::test]
async fn sigterm_lets_a_long_stream_finish_and_flushes_the_log() {
    gemgate::upstream::install_crypto_provider();
    let fake = gemgate::fake_upstream::FakeUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("keys")).unwrap();
    std::fs::write(dir.path().join("keys/k.txt"), fake_key("drip400", 1)).unwrap();
    let port = free_port();
    let mut child = spawn_gemgate(
        dir.path(),
        &fake.base_url(),
        port,
        &[("GEMGATE_STORE__FLUSH_INTERVAL_MS", "60000"), ("RUST_LOG", "warn")],
    )
    .await;
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let mut response = http
        .post(format!("{base}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"))
        .header("x-goog-api-key", CLIENT_KEY)
        .body(PROMPT)
        .send()
        .await
        .unwrap();
    let first = response.chunk().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "));
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let mut rest = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        rest.extend_from_slice(&chunk);
    }
    let text = String::from_utf8_lossy(&rest);
    assert_eq!(text.matches("data: ").count(), 2, "the stream finished after SIGTERM: {text}");
    assert!(text.contains("finishReason"));
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "exit status {status}");
    // The flush interval is a minute: only the shutdown flush can have written the row.
    let url = format!("sqlite://{}?mode=rw", dir.path().join("data/gemgate.db").display());
    let store = gemgate::store::Store::open(&url).await.unwrap();
    let rows = store.recent_requests(10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, 200);
    fake.stop().await;
}

#[test]
fn check_names_the_broken_setting_and_the_bad_key_line() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_gemgate")).current_dir(dir.path()).args(args).output().unwrap()
    };
    std::fs::write(dir.path().join("good.toml"), "[server]\nlisten = \"127.0.0.1:9\"\n").unwrap();
    std::fs::create_dir_all(dir.path().join("keys")).unwrap();
    std::fs::write(dir.path().join("keys/main.txt"), format!("{}\n", fake_key("ok", 1))).unwrap();
    let ok = run(&["check", "--config", "good.toml"]);
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("keys: 1 usable"));

    std::fs::write(dir.path().join("bad.toml"), "[server]\nlisten = \"127.0.0.1:9\"\n[retry]\nmax_atempts = 3\n")
        .unwrap();
    let bad = run(&["check", "--config", "bad.toml"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("max_atempts"), "{}", String::from_utf8_lossy(&bad.stderr));

    std::fs::write(dir.path().join("keys/main.txt"), "AIzaBroken\n").unwrap();
    let lines = run(&["check", "--config", "good.toml"]);
    assert_eq!(lines.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&lines.stderr).contains("main.txt:1"));
}

#[tokio::test]
async fn metrics_need_the_admin_key_and_move_with_traffic() {
    let h = Harness::start(&[fake_key("rpm", 1), fake_key("ok", 2)]).await;
    let admin_key = std::fs::read_to_string(h.dir.path().join("data/admin-key")).unwrap().trim().to_string();
    assert_eq!(h.http.get(h.url("/metrics")).send().await.unwrap().status(), 401);
    assert_eq!(h.http.get(h.url("/metrics")).bearer_auth(CLIENT_KEY).send().await.unwrap().status(), 401);
    for _ in 0..3 {
        assert_eq!(h.generate("gemini-2.5-flash").await.status(), 200);
    }
    let text = h.http.get(h.url("/metrics")).bearer_auth(&admin_key).send().await.unwrap().text().await.unwrap();
    let value = |needle: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(needle))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1.0)
    };
    assert_eq!(
        value("gemgate_requests_total{route=\"generateContent\",model=\"gemini-2.5-flash\",status=\"200\"}"),
        3.0,
        "{text}"
    );
    assert_eq!(value("gemgate_upstream_attempts_total{outcome=\"rate_limited\"}"), 1.0);
    assert_eq!(value("gemgate_retries_total"), 1.0);
    assert_eq!(value("gemgate_keys{state=\"partial\"}"), 1.0, "resting on one model, serving the others");
    assert!(text.trim_end().ends_with("# EOF"));
    h.stop().await;
}

#[tokio::test]
async fn json_logs_carry_the_request_id_that_the_response_returns() {
    gemgate::upstream::install_crypto_provider();
    let fake = gemgate::fake_upstream::FakeUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("keys")).unwrap();
    std::fs::write(dir.path().join("keys/k.txt"), format!("{}\n{}\n", fake_key("internal", 1), fake_key("ok", 2)))
        .unwrap();
    let port = free_port();
    let child = spawn_gemgate(dir.path(), &fake.base_url(), port, &[("GEMGATE_LOG__FORMAT", "json")]).await;
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let url = format!("{base}/v1beta/models/gemini-2.5-flash:generateContent");
    let response = http
        .post(&url)
        .header("x-goog-api-key", CLIENT_KEY)
        .header("x-request-id", "trace-42")
        .body(PROMPT)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "trace-42");
    let generated = http.post(&url).header("x-goog-api-key", CLIENT_KEY).body(PROMPT).send().await.unwrap();
    assert_eq!(generated.headers()["x-request-id"].len(), 20, "12 hex digits of time, 8 random");
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let output = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().find(|l| l.contains("upstream attempt failed")).expect("a failover log line");
    let json: Value = serde_json::from_str(line).expect("log lines are JSON");
    assert_eq!(json["span"]["request_id"], "trace-42", "{line}");
    fake.stop().await;
}

#[tokio::test]
async fn keys_verify_prints_a_masked_table_and_fails_on_dead_keys() {
    gemgate::upstream::install_crypto_provider();
    let fake = gemgate::fake_upstream::FakeUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (good, dead) = (fake_key("ok", 1), fake_key("denied", 2));
    std::fs::write(dir.path().join("mine.txt"), format!("{good}\n{dead}\n")).unwrap();
    let base_url = fake.base_url();
    let output = tokio::task::spawn_blocking({
        let dir = dir.path().to_path_buf();
        move || {
            Command::new(env!("CARGO_BIN_EXE_gemgate"))
                .current_dir(&dir)
                .env("GEMGATE_UPSTREAM__BASE_URL", base_url)
                .args(["keys", "verify", "mine.txt"])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("alive") && stdout.contains("dead (permission_denied)"), "{stdout}");
    assert!(stdout.contains("2 keys: 1 alive, 1 dead"));
    assert!(!stdout.contains(&good) && !stdout.contains(&dead), "keys are masked");
    fake.stop().await;
}
