//! What an operator does is durable, confined and really applied: admin
//! changes survive `kill -9`, file edits are serialised and private, paths
//! stay in the config's folder, secrets rotate live, the keys folder can
//! come and go, and a disable says how it ends.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};
use support::*;

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

async fn key_state(h: &Harness, key: &str) -> Value {
    let fingerprint = gemgate::keys::Fingerprint::of(key).to_string();
    let (status, list) = admin_call(h, "GET", &format!("/keys?search={fingerprint}"), None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list["items"][0].clone()
}

#[tokio::test]
async fn an_acknowledged_disable_survives_kill_9() {
    gemgate::upstream::install_crypto_provider();
    let fake = gemgate::fake_upstream::FakeUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("keys")).unwrap();
    let key = fake_key("ok", 1);
    std::fs::write(dir.path().join("keys/k.txt"), format!("{key}\n{}\n", fake_key("ok", 2))).unwrap();
    // A flush interval far longer than the test: only the acknowledged write can persist it.
    let env = [("GEMGATE_AUTH__ADMIN_KEY", ADMIN_KEY), ("GEMGATE_STORE__FLUSH_INTERVAL_MS", "600000")];
    let port = free_port();
    let mut child = spawn_gemgate(dir.path(), &fake.base_url(), port, &env).await;
    let http = reqwest::Client::new();
    let fingerprint = gemgate::keys::Fingerprint::of(&key).to_string();
    let disabled = http
        .post(format!("http://127.0.0.1:{port}/admin/api/keys/disable"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"fingerprints": [fingerprint]}))
        .send()
        .await
        .unwrap();
    assert_eq!(disabled.status(), 200);
    child.kill().unwrap(); // SIGKILL: no shutdown, no final flush
    child.wait().unwrap();
    assert_eq!(mode(&dir.path().join("data/gemgate.db")), 0o600, "the store file is private");

    let port = free_port();
    let mut child = spawn_gemgate(dir.path(), &fake.base_url(), port, &env).await;
    let list: Value = http
        .get(format!("http://127.0.0.1:{port}/admin/api/keys?search={fingerprint}"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"][0]["state"], "disabled", "{list}");
    assert_eq!(list["items"][0]["disabled_until"], "operator");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_imports_into_one_group_keep_every_key_in_a_private_file() {
    let h = Harness::start_with_files(&keys("ok", 1), "", None).await;
    let imports = (0..50).map(|n| {
        let h = &h;
        async move {
            let key = fake_key("ok", 1000 + n);
            let (status, report) =
                admin_call(h, "POST", "/keys/import", Some(json!({"text": key, "group": "batch"}))).await;
            assert_eq!(status, StatusCode::OK, "{report}");
        }
    });
    futures_util::future::join_all(imports).await;
    let file = h.dir.path().join("keys/batch.txt");
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.lines().count(), 50, "{text}");
    assert_eq!(mode(&file), 0o600);
    h.eventually("all 51 keys are in the pool", async || h.app().pool.slots().len() == 51).await;
    h.stop().await;
}

#[tokio::test]
async fn admin_edits_stay_in_the_config_folder_and_a_broken_policy_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("evil.rhai"), "fn on_error(ctx) { ctx.builtin }").unwrap();
    let h = Harness::start_with_files(&keys("ok", 1), "", Some("fn on_error(ctx) { ctx.builtin }\n")).await;
    let (_, current) = admin_call(&h, "GET", "/config", None).await;
    let text = current["text"].as_str().unwrap().to_string();
    for (edit, field) in [
        (
            text.replace("file = \"policy.rhai\"", &format!("file = \"{}/evil.rhai\"", outside.path().display())),
            "policy.file",
        ),
        (text.replace("file = \"policy.rhai\"", "file = \"../evil.rhai\""), "policy.file"),
        (format!("{text}\n[keys]\ndir = \"/etc\"\n"), "keys.dir"),
    ] {
        let (status, body) = admin_call(&h, "PUT", "/config", Some(json!({"text": edit}))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(field), "{body}");
    }
    std::fs::write(h.dir.path().join("broken.rhai"), "fn on_error(ctx) { ").unwrap();
    let broken = text.replace("file = \"policy.rhai\"", "file = \"broken.rhai\"");
    let (status, body) = admin_call(&h, "PUT", "/config", Some(json!({"text": broken}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("does not compile"), "{body}");
    let (_, policy) = admin_call(&h, "GET", "/policy", None).await;
    assert!(policy["file"].as_str().unwrap().ends_with("policy.rhai"), "nothing changed: {policy}");
    // Validation names the line and the setting.
    let invalid = text.replace("[retry]", "[retry]\nmax_attempts = 0");
    let (status, body) = admin_call(&h, "POST", "/config/validate", Some(json!({"text": invalid}))).await;
    assert_eq!(status, StatusCode::OK);
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("retry.max_attempts") && message.contains("line"), "{message}");
    h.stop().await;
}

#[tokio::test]
async fn a_new_admin_key_and_metrics_token_work_at_once_and_the_old_ones_stop() {
    let h = Harness::start_with_files(&keys("ok", 1), "", None).await;
    let login = h.http.post(h.url("/admin/api/login")).json(&json!({"key": ADMIN_KEY})).send().await.unwrap();
    let cookie = login.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let path = h.dir.path().join("config.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let (new_admin, token) = ("rotated-admin-key-0123456789", "rotated-metrics-token-0123456789");
    let rotated = text.replace(ADMIN_KEY, new_admin).replace("[scan]", &format!("metrics_token = \"{token}\"\n[scan]"));
    let (status, saved) = admin_call(&h, "PUT", "/config", Some(json!({"text": rotated}))).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert!(!saved["message"].as_str().unwrap().contains("restart"), "{saved}");
    let started = Instant::now();
    let info = |key: &'static str| h.http.get(h.url("/admin/api/info")).bearer_auth(key).send();
    assert_eq!(info(new_admin).await.unwrap().status(), 200);
    assert_eq!(info(ADMIN_KEY).await.unwrap().status(), 401);
    let metrics = |key: &'static str| h.http.get(h.url("/metrics")).bearer_auth(key).send();
    assert_eq!(metrics(token).await.unwrap().status(), 200);
    assert_eq!(metrics(ADMIN_KEY).await.unwrap().status(), 401);
    assert!(started.elapsed() < Duration::from_secs(1));
    let session = h.http.get(h.url("/admin/api/keys")).header("cookie", cookie).send().await.unwrap();
    assert_eq!(session.status(), 401, "sessions opened with the old key end");
    h.stop().await;
}

#[tokio::test]
async fn the_keys_folder_can_go_away_and_come_back_under_traffic() {
    let h = Harness::start_with_files(&keys("ok", 2), "", None).await;
    let keys_dir = h.dir.path().join("keys");
    let aside = h.dir.path().join("keys-aside");
    let traffic = tokio::spawn({
        let http = h.http.clone();
        let url = h.url("/v1beta/models/gemini-2.5-flash:generateContent");
        async move {
            let mut statuses = Vec::new();
            let until = Instant::now() + Duration::from_millis(2500);
            while Instant::now() < until {
                let response = http.post(&url).header("x-goog-api-key", CLIENT_KEY).body(PROMPT).send().await;
                statuses.push(response.unwrap().status().as_u16());
            }
            statuses
        }
    });
    std::fs::rename(&keys_dir, &aside).unwrap();
    h.eventually("the missing folder is reported", async || {
        h.app().reloads.events().iter().any(|e| e.message.contains("missing"))
    })
    .await;
    std::fs::rename(&aside, &keys_dir).unwrap();
    // A file added after the folder came back, as a symlink (how Kubernetes mounts Secrets).
    let secret = h.dir.path().join("secret-keys.txt");
    std::fs::write(&secret, fake_key("ok", 9)).unwrap();
    std::os::unix::fs::symlink(&secret, keys_dir.join("linked.txt")).unwrap();
    h.eventually("the linked file's key joins", async || h.app().pool.slots().len() == 3).await;
    let statuses = traffic.await.unwrap();
    assert!(statuses.iter().all(|&s| s == 200), "no 503 while the folder was away: {statuses:?}");
    h.stop().await;
}

#[tokio::test]
async fn a_junk_key_file_is_summarised_not_told_line_by_line() {
    let h = Harness::start_with_files(&keys("ok", 1), "", None).await;
    let junk: String = (0..5000).map(|n| format!("junk line {n}\n")).collect();
    std::fs::write(h.dir.path().join("keys/junk.txt"), junk).unwrap();
    h.eventually("the junk file is reported", async || {
        h.app().reloads.events().iter().any(|e| e.message.contains("junk.txt: 5000 lines skipped"))
    })
    .await;
    let about_junk = h.app().reloads.events().iter().filter(|e| e.message.contains("junk.txt")).count();
    assert!(about_junk <= 2, "{about_junk} reload entries about one file");
    h.stop().await;
}

#[tokio::test]
async fn a_policy_disable_lasts_until_an_operator_and_scans_respect_it() {
    let script =
        "fn on_error(ctx) { if ctx.kind == \"daily_quota\" { #{ disable_key: \"policy\" } } else { ctx.builtin } }";
    let daily = fake_key("rpd", 1);
    let h = Harness::start_with_files(&[daily.clone(), fake_key("ok", 2)], "", Some(script)).await;
    for _ in 0..2 {
        assert_eq!(h.generate("gemini-2.5-flash").await.status(), 200);
    }
    h.eventually("the policy disabled the key", async || key_state(&h, &daily).await["state"] == "disabled").await;
    let view = key_state(&h, &daily).await;
    assert_eq!((view["disabled_reason"].as_str(), view["disabled_until"].as_str()), (Some("policy"), Some("operator")));
    let (status, _) = admin_call(&h, "POST", "/scan", None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    h.eventually("the scan finished", async || {
        !h.app().pool.scan_report().running && h.app().pool.scan_report().done > 0
    })
    .await;
    assert_eq!(
        key_state(&h, &daily).await["state"],
        "disabled",
        "a scan finding the key alive does not end a policy's disable"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_setting_the_environment_overrides_is_marked_and_cannot_be_saved() {
    gemgate::upstream::install_crypto_provider();
    let fake = gemgate::fake_upstream::FakeUpstream::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("keys")).unwrap();
    std::fs::write(dir.path().join("keys/k.txt"), fake_key("ok", 1)).unwrap();
    std::fs::write(dir.path().join("config.toml"), "[retry]\nmax_attempts = 5\n").unwrap();
    let env = [("GEMGATE_AUTH__ADMIN_KEY", ADMIN_KEY), ("GEMGATE_RETRY__MAX_ATTEMPTS", "3")];
    let port = free_port();
    let mut child = spawn_gemgate(dir.path(), &fake.base_url(), port, &env).await;
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/admin/api/config");
    let view: Value = http.get(&url).bearer_auth(ADMIN_KEY).send().await.unwrap().json().await.unwrap();
    let overrides = view["env_overrides"].to_string();
    assert!(overrides.contains("retry.max_attempts") && overrides.contains("GEMGATE_RETRY__MAX_ATTEMPTS"), "{view}");
    let edit = json!({"text": "[retry]\nmax_attempts = 7\n"});
    let refused = http.put(&url).bearer_auth(ADMIN_KEY).json(&edit).send().await.unwrap();
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("GEMGATE_RETRY__MAX_ATTEMPTS"), "{body}");
    assert_eq!(std::fs::read_to_string(dir.path().join("config.toml")).unwrap(), "[retry]\nmax_attempts = 5\n");
    child.kill().unwrap();
    child.wait().unwrap();
}
