//! Egress end to end: keys pinned to proxies (HTTP and SOCKS5 proxies
//! written in the test, which log the keys they carry), a dead proxy's keys
//! moving and coming back, proxy faults never held against keys, relays
//! rotating and failing over, and proxy credentials kept out of the admin
//! and the logs.

mod support;

use gemgate::keys::ApiKey;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::process::Command;
use support::proxies::{Kind, TestProxy};
use support::*;

const MODEL: &str = "gemini-2.5-flash";

/// Proxy name → fingerprints pinned to it, from the admin.
async fn pinned(h: &Harness) -> (Value, HashMap<String, HashSet<String>>) {
    let (status, egress) = admin_call(h, "GET", "/egress", None).await;
    assert_eq!(status, 200, "{egress}");
    let mut map = HashMap::new();
    for proxy in egress["proxies"].as_array().expect("proxies") {
        let keys = proxy["keys"].as_array().expect("keys").iter().map(|k| k.as_str().unwrap().to_string()).collect();
        map.insert(proxy["name"].as_str().unwrap().to_string(), keys);
    }
    (egress, map)
}

fn fingerprint(key: &str) -> String {
    ApiKey::new(key.to_string()).fingerprint().to_string()
}

fn proxy_state(egress: &Value, name: &str) -> String {
    let proxy = egress["proxies"].as_array().unwrap().iter().find(|p| p["name"] == name).expect("the proxy");
    proxy["health"]["state"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn every_key_leaves_through_its_pinned_proxy() {
    let http_a = TestProxy::start(Kind::Http, Some(("alice", "pa55-http"))).await;
    let http_b = TestProxy::start(Kind::Http, None).await;
    let socks = TestProxy::start(Kind::Socks5, Some(("bob", "pa55-socks"))).await;
    let entries = vec![
        format!("a={}", http_a.url(Some(("alice", "pa55-http")))),
        format!("b={}", http_b.url(None)),
        format!("s={}", socks.url(Some(("bob", "pa55-socks")))),
    ];
    let mut keys = keys("ok", 12);
    // A key line may name its proxy, or none.
    let (named, direct) = (fake_key("ok", 98), fake_key("ok", 99));
    keys.push(format!("{named} proxy=b"));
    keys.push(format!("{direct} proxy=direct"));
    let h = Harness::start_with(&keys, |c| {
        c.upstream.proxies = entries;
        c.auth.admin_key = ADMIN_KEY.into();
    })
    .await;
    for _ in 0..42 {
        assert_eq!(h.generate(MODEL).await.status(), 200);
    }
    let (egress, pinned) = pinned(&h).await;
    let text = egress.to_string();
    assert!(!text.contains("pa55") && !text.contains("alice"), "credentials in the admin: {text}");
    let total: usize = pinned.values().map(HashSet::len).sum();
    assert_eq!(total, 13, "every key but the direct one is pinned to one proxy: {pinned:?}");
    assert!(pinned["b"].contains(&fingerprint(&named)), "proxy=b pins the key to b");
    assert_eq!(egress["direct_keys"], 1);
    let everywhere: Vec<String> = [&http_a, &http_b, &socks].iter().flat_map(|p| p.keys()).collect();
    assert!(!everywhere.contains(&direct), "a proxy=direct key passes no proxy");
    assert!(h.fake.calls(&direct) > 0, "the direct key was used");
    for (name, proxy) in [("a", &http_a), ("b", &http_b), ("s", &socks)] {
        let carried = proxy.keys();
        assert!(!carried.is_empty(), "proxy {name} carried nothing (pinned: {pinned:?})");
        for key in carried {
            assert!(pinned[name].contains(&fingerprint(&key)), "proxy {name} carried a key pinned elsewhere");
        }
        let calls: u64 =
            egress["proxies"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap()["health"]["calls"]
                .as_u64()
                .unwrap();
        assert_eq!(calls as usize, proxy.keys().len(), "the admin counts what proxy {name} carried");
    }
    h.stop().await;
}

#[tokio::test]
async fn a_dead_proxy_moves_its_keys_without_failing_requests_and_they_return() {
    let mut first = TestProxy::start(Kind::Http, None).await;
    let second = TestProxy::start(Kind::Socks5, None).await;
    let entries = vec![format!("first={}", first.url(None)), format!("second={}", second.url(None))];
    let keys = keys("ok", 8);
    let h = Harness::start_with(&keys, |c| {
        c.upstream.proxies = entries;
        c.upstream.probe_interval_secs = 1;
        c.auth.admin_key = ADMIN_KEY.into();
    })
    .await;
    let (_, pinned) = pinned(&h).await;
    assert!(!pinned["first"].is_empty() && !pinned["second"].is_empty(), "{pinned:?}");
    for _ in 0..8 {
        assert_eq!(h.generate(MODEL).await.status(), 200);
    }
    first.stop();
    let carried_before = second.keys().len();
    for _ in 0..16 {
        assert_eq!(h.generate(MODEL).await.status(), 200, "a dead proxy fails no request");
    }
    let moved: HashSet<String> = second.keys()[carried_before..].iter().map(|k| fingerprint(k)).collect();
    assert!(moved.iter().any(|fp| pinned["first"].contains(fp)), "the dead proxy's keys left through the other one");
    let (egress, _) = self::pinned(&h).await;
    assert_eq!(proxy_state(&egress, "first"), "resting", "{egress}");
    for key in &keys {
        let snapshot = h.snapshot(key).await;
        assert_eq!(snapshot.failures, 0, "a proxy's failure is not the key's");
        assert!(snapshot.cooldowns.is_empty() && snapshot.disabled.is_none());
    }

    first.restart().await;
    h.eventually("the probe finds the proxy back", async || {
        let (egress, _) = self::pinned(&h).await;
        proxy_state(&egress, "first") == "ok"
    })
    .await;
    let carried_before = first.keys().len();
    for _ in 0..16 {
        assert_eq!(h.generate(MODEL).await.status(), 200);
    }
    let back: Vec<String> = first.keys()[carried_before..].iter().map(|k| fingerprint(k)).collect();
    assert!(!back.is_empty(), "keys return to their proxy when it recovers");
    assert!(back.iter().all(|fp| pinned["first"].contains(fp)));
    h.stop().await;
}

#[tokio::test]
async fn a_proxy_refusing_its_credentials_is_not_held_against_the_keys() {
    let proxy = TestProxy::start(Kind::Http, Some(("carol", "right-pa55"))).await;
    let entry = proxy.url(Some(("carol", "wrong-pa55")));
    let keys = keys("ok", 2);
    let h = Harness::start_with(&keys, |c| {
        c.upstream.proxies = vec![entry];
        c.auth.admin_key = ADMIN_KEY.into();
    })
    .await;
    let response = h.generate(MODEL).await;
    assert_eq!(response.status(), 502);
    let body = response.text().await.unwrap();
    assert!(body.contains("proxy"), "the error names the proxy: {body}");
    assert!(!body.contains("pa55") && !body.contains("carol"), "{body}");
    for key in &keys {
        let snapshot = h.snapshot(key).await;
        assert_eq!(snapshot.failures, 0);
        assert!(snapshot.cooldowns.is_empty() && snapshot.disabled.is_none());
    }
    let (egress, _) = pinned(&h).await;
    let last_error = egress["proxies"][0]["health"]["last_error"].as_str().unwrap_or_default().to_string();
    assert!(last_error.contains("407"), "{egress}");
    assert!(!egress.to_string().contains("pa55"));
    assert!(proxy.keys().is_empty(), "nothing passed a proxy that refused");
    h.stop().await;
}

#[tokio::test]
async fn relays_rotate_and_a_dead_relay_is_skipped() {
    let second_fake = gemgate::fake_upstream::FakeUpstream::start().await.unwrap();
    let keys = keys("ok", 2);
    let second_base = second_fake.base_url();
    let h = Harness::start_with(&keys, |c| {
        c.upstream.relays = vec![c.upstream.base_url.clone(), second_base];
        c.upstream.relay_order = gemgate::config::RelayOrder::Rotate;
    })
    .await;
    for _ in 0..10 {
        assert_eq!(h.generate(MODEL).await.status(), 200);
    }
    assert_eq!(h.fake.total_calls(), 5, "rotation alternates relays");
    assert_eq!(second_fake.total_calls(), 5);
    h.stop().await;

    let dead = format!("http://127.0.0.1:{}", free_port());
    let live = second_fake.base_url();
    let h = Harness::start_with(&keys, |c| {
        c.upstream.relays = vec![dead, live];
        c.auth.admin_key = ADMIN_KEY.into();
    })
    .await;
    let before = second_fake.total_calls();
    for _ in 0..6 {
        assert_eq!(h.generate(MODEL).await.status(), 200, "a dead first relay fails no request");
    }
    assert_eq!(second_fake.total_calls() - before, 6);
    assert_eq!(h.fake.total_calls(), 0, "a key never goes to a URL not configured as a relay");
    let (egress, _) = pinned(&h).await;
    assert_eq!(egress["relays"][0]["health"]["state"], "resting", "{egress}");
    assert_eq!(egress["relays"][1]["health"]["state"], "ok");
    for key in &keys {
        assert_eq!(h.snapshot(key).await.failures, 0, "a relay's failure is not the key's");
    }
    h.stop().await;
    second_fake.stop().await;
}

#[tokio::test]
async fn proxy_credentials_never_reach_the_log() {
    gemgate::upstream::install_crypto_provider();
    let fake = gemgate::fake_upstream::FakeUpstream::start().await.unwrap();
    let live = TestProxy::start(Kind::Socks5, Some(("dave", "s3cret-socks"))).await;
    let dead_port = free_port();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("keys")).unwrap();
    std::fs::write(dir.path().join("keys/k.txt"), keys("ok", 4).join("\n")).unwrap();
    let config = format!(
        "[upstream]\nproxies = [\"dead=http://erin:s3cret-http@127.0.0.1:{dead_port}\", \"live={}\"]\n",
        live.url(Some(("dave", "s3cret-socks")))
    );
    std::fs::write(dir.path().join("config.toml"), config).unwrap();
    let port = free_port();
    let child = spawn_gemgate(dir.path(), &fake.base_url(), port, &[("RUST_LOG", "debug")]).await;
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/v1beta/models/{MODEL}:generateContent");
    for _ in 0..8 {
        let response = http.post(&url).header("x-goog-api-key", CLIENT_KEY).body(PROMPT).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let output = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    let log = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(log.contains(&format!("http://127.0.0.1:{dead_port}")), "the dead proxy is named in the log: {log}");
    assert!(!log.contains("s3cret") && !log.contains("erin") && !log.contains("dave"), "credentials in the log");
    fake.stop().await;
}

#[tokio::test]
async fn the_proxies_file_reloads_live_and_a_bad_edit_keeps_the_proxies() {
    let proxy = TestProxy::start(Kind::Http, None).await;
    let keys = keys("ok", 3);
    let h = Harness::start_with(&keys, |c| {
        c.upstream.proxies_file = "proxies.txt".into();
        c.auth.admin_key = ADMIN_KEY.into();
    })
    .await;
    let (egress, _) = pinned(&h).await;
    assert_eq!(egress["direct_keys"], 3, "no file yet: every key leaves directly");
    let file = h.dir.path().join("proxies.txt");
    std::fs::write(&file, format!("# the office proxy\noffice={}\n", proxy.url(None))).unwrap();
    h.eventually("the proxies file is read", async || {
        let (egress, _) = pinned(&h).await;
        egress["proxies"].as_array().is_some_and(|p| p.len() == 1)
    })
    .await;
    for _ in 0..3 {
        assert_eq!(h.generate(MODEL).await.status(), 200);
    }
    assert_eq!(proxy.keys().len(), 3, "calls leave through the new proxy");

    std::fs::write(&file, "office=ftp://nope:1\n").unwrap();
    h.eventually("the bad edit is refused", async || {
        h.app().reloads.events().iter().any(|e| e.what == "proxies" && !e.accepted && e.message.contains("line 1"))
    })
    .await;
    let (egress, _) = pinned(&h).await;
    assert_eq!(egress["proxies"][0]["name"], "office", "the proxies in force stay");

    std::fs::write(&file, "").unwrap();
    h.eventually("an emptied file removes the proxy", async || {
        let (egress, _) = pinned(&h).await;
        egress["proxies"].as_array().is_some_and(Vec::is_empty)
    })
    .await;
    h.stop().await;
}
