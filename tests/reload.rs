//! Policy scripts end to end, and live reload of key files, config.toml and
//! the policy script while requests keep flowing with none failing.

mod support;

use gemgate::key_state::DisableReason;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use support::*;

#[tokio::test]
async fn a_script_that_disables_on_the_first_429_does_so() {
    let script = r#"fn on_error(ctx) {
        if ctx.status == 429 { return #{ disable_key: "quota", cooldown_secs: 0 }; }
        ctx.builtin
    }"#;
    let limited = fake_key("rpm", 1);
    let h = Harness::start_with_files(&[limited.clone(), fake_key("ok", 2)], "", Some(script)).await;
    for _ in 0..3 {
        assert_eq!(h.generate("gemini-2.5-flash").await.status(), 200);
    }
    let snapshot = h.snapshot(&limited).await;
    assert_eq!(snapshot.disabled.unwrap().reason, DisableReason::Policy);
    assert!(snapshot.cooldowns.is_empty(), "the script replaced the cooldown with a disable");
    assert_eq!(h.fake.calls(&limited), 1);
    h.stop().await;
}

#[tokio::test]
async fn a_broken_policy_at_start_is_refused_with_file_and_line() {
    gemgate::upstream::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policy.rhai"), "fn on_error(ctx) {\n  let = 1;\n}\n").unwrap();
    std::fs::write(dir.path().join("config.toml"), config_file_text("http://127.0.0.1:9", true, "")).unwrap();
    let env = figment::providers::Env::prefixed("GEMGATE_TEST_UNUSED_").split("__");
    let loaded = gemgate::config::load_with_env(Some(&dir.path().join("config.toml")), env).unwrap();
    let error = gemgate::app::start(loaded).await.err().expect("refused");
    let text = format!("{error:#}");
    assert!(text.contains("policy.rhai:2"), "{text}");
}

async fn wait_for(h: &Harness, what: &str, check: impl Fn(&Harness) -> bool) {
    for _ in 0..250 {
        if check(h) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}; reloads: {:#?}", h.app().reloads.events());
}

async fn key_count(h: &Harness) -> usize {
    h.app().pool.slots().len()
}

fn last_reload(h: &Harness, what: &str) -> Option<(bool, String)> {
    h.app().reloads.events().iter().rev().find(|e| e.what == what).map(|e| (e.accepted, e.message.clone()))
}

#[tokio::test]
async fn live_reload_under_load_drops_no_request() {
    let policy = "fn on_error(ctx) { ctx.builtin }";
    let h = Arc::new(Harness::start_with_files(&[fake_key("ok", 1)], "", Some(policy)).await);
    let (stop, served, failed) =
        (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (h, stop, served, failed) = (h.clone(), stop.clone(), served.clone(), failed.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let status = h.generate("gemini-2.5-flash").await.status();
                    let counter = if status == 200 { &served } else { &failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let dir = h.dir.path().to_path_buf();

    // A new key file joins.
    std::fs::write(dir.join("keys/more.txt"), format!("{}\n", fake_key("ok", 2))).unwrap();
    for _ in 0..250 {
        if key_count(&h).await == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(key_count(&h).await, 2, "{:#?}", h.app().reloads.events());

    // An editor's save: write a temporary file, rename it over the original.
    std::fs::write(dir.join("keys/.test.txt.swp"), format!("{}\n{}\n", fake_key("ok", 1), fake_key("ok", 3))).unwrap();
    std::fs::rename(dir.join("keys/.test.txt.swp"), dir.join("keys/test.txt")).unwrap();
    for _ in 0..250 {
        if key_count(&h).await == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(key_count(&h).await, 3);

    // A file removed: its key leaves; the others keep their counters.
    let before = h.snapshot(&fake_key("ok", 1)).await.requests;
    std::fs::remove_file(dir.join("keys/more.txt")).unwrap();
    for _ in 0..250 {
        if key_count(&h).await == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(key_count(&h).await, 2);
    assert!(h.snapshot(&fake_key("ok", 1)).await.requests >= before, "state survives a reload that keeps the key");

    // A broken config edit is rejected; the running config stays.
    let config = dir.join("config.toml");
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, good.replace("[scan]", "[pool]\nstrategy = \"fastest\"\n[scan]")).unwrap();
    wait_for(&h, "config rejected", |h| last_reload(h, "config").is_some_and(|(ok, _)| !ok)).await;
    assert!(last_reload(&h, "config").unwrap().1.contains("strategy"));
    // A good edit applies; a restart-only change is reported as such.
    std::fs::write(
        &config,
        good.replace("[pool]\nstrategy = \"fastest\"\n", "")
            .replace("[scan]", "[pool]\nstrategy = \"random\"\n[scan]")
            .replace("flush_interval_ms = 20", "flush_interval_ms = 30"),
    )
    .unwrap();
    wait_for(&h, "config accepted", |h| last_reload(h, "config").is_some_and(|(ok, _)| ok)).await;
    let message = last_reload(&h, "config").unwrap().1;
    assert!(message.contains("partly applied: [store]") && message.contains("only after a restart"), "{message}");

    // A broken script is rejected with its line; the running one stays.
    std::fs::write(dir.join("policy.rhai"), "fn on_error(ctx) {\n  ctx.builtin +\n").unwrap();
    wait_for(&h, "policy rejected", |h| last_reload(h, "policy").is_some_and(|(ok, _)| !ok)).await;
    assert!(last_reload(&h, "policy").unwrap().1.contains("policy.rhai"), "{:?}", last_reload(&h, "policy"));
    std::fs::write(dir.join("policy.rhai"), "fn on_error(ctx) { #{ action: \"fail\" } }").unwrap();
    wait_for(&h, "policy accepted", |h| last_reload(h, "policy").is_some_and(|(ok, _)| ok)).await;

    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "no request failed during reloads");
    assert!(served.load(Ordering::Relaxed) > 50, "load kept running: {}", served.load(Ordering::Relaxed));
    if let Ok(h) = Arc::try_unwrap(h) {
        h.stop().await;
    }
}

#[tokio::test]
async fn empty_replies_follow_the_script_or_the_configured_count() {
    let empty = fake_key("empty", 1);
    let keys = [empty.clone(), fake_key("ok", 2)];
    let retrying = Harness::start_with_files(&keys, "", Some("fn on_empty_reply(ctx) { ctx.attempt < 3 }")).await;
    for _ in 0..2 {
        let body: serde_json::Value = retrying.generate("gemini-2.5-flash").await.json().await.unwrap();
        assert!(body["candidates"][0]["content"]["parts"][0]["text"].is_string(), "{body}");
    }
    assert_eq!(retrying.snapshot(&empty).await.failures, 0, "an empty reply is not the key's failure");
    retrying.stop().await;

    // A script can pass empty replies on even though the built-in policy retries them.
    let passing = Harness::start_with_files(&keys, "", Some("fn on_empty_reply(ctx) { false }")).await;
    let mut saw_empty = false;
    for _ in 0..2 {
        let body: serde_json::Value = passing.generate("gemini-2.5-flash").await.json().await.unwrap();
        saw_empty |= body["candidates"][0]["content"].get("parts").is_none();
    }
    assert!(saw_empty, "the script's false reaches the client with the empty reply");
    passing.stop().await;

    // So can config: retry.empty_reply_retries = 0.
    // (Without a policy, `extra` lands in the test file's [retry] table.)
    let off = Harness::start_with_files(&keys, "empty_reply_retries = 0\n", None).await;
    let mut saw_empty = false;
    for _ in 0..2 {
        let body: serde_json::Value = off.generate("gemini-2.5-flash").await.json().await.unwrap();
        saw_empty |= body["candidates"][0]["content"].get("parts").is_none();
    }
    assert!(saw_empty, "with retries off the empty reply reaches the client");
    off.stop().await;
}

#[tokio::test]
async fn retry_same_key_retries_that_key_and_a_looping_script_falls_back() {
    let internal = fake_key("internal", 1);
    let same = "fn on_error(ctx) { if ctx.attempt == 1 { #{ action: \"retry_same_key\", delay_ms: 10 } } else { ctx.builtin } }";
    let h = Harness::start_with_files(std::slice::from_ref(&internal), "", Some(same)).await;
    assert_eq!(h.generate("gemini-2.5-flash").await.status(), 500);
    assert_eq!(h.fake.calls(&internal), 2, "the same key was tried twice");
    h.stop().await;

    let looping = "fn on_error(ctx) { loop { } }";
    let h = Harness::start_with_files(&[fake_key("overload", 1), fake_key("ok", 2)], "", Some(looping)).await;
    for _ in 0..3 {
        assert_eq!(h.generate("gemini-2.5-flash").await.status(), 200, "served on the built-in decision");
    }
    h.stop().await;
}

#[tokio::test]
async fn fail_and_an_all_models_cooldown_change_behaviour_end_to_end() {
    let failing = "fn on_error(ctx) { #{ action: \"fail\" } }";
    let h = Harness::start_with_files(&[fake_key("internal", 1), fake_key("ok", 2)], "", Some(failing)).await;
    let mut statuses = Vec::new();
    for _ in 0..2 {
        statuses.push(h.generate("gemini-2.5-flash").await.status().as_u16());
    }
    assert!(statuses.contains(&500), "the 500 went straight to the client: {statuses:?}");
    assert_eq!(h.fake.total_calls(), 2, "no retry");
    h.stop().await;

    let resting = "fn on_error(ctx) { #{ cooldown_secs: 120, cooldown_model: \"all\" } }";
    let overloaded = fake_key("overload", 1);
    let h = Harness::start_with_files(&[overloaded.clone(), fake_key("ok", 2)], "", Some(resting)).await;
    for model in ["gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.0-flash"] {
        assert_eq!(h.generate(model).await.status(), 200);
    }
    assert_eq!(h.fake.calls(&overloaded), 1, "resting on every model after its first 503");
    assert!(h.snapshot(&overloaded).await.is_cooling_for("any-model", std::time::SystemTime::now()));
    h.stop().await;
}
