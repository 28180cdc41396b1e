//! Key state over time: health scans, restarts, the request log, pacing.

mod support;

use gemgate::key_state::DisableReason;
use std::time::{Duration, SystemTime};
use support::*;

#[tokio::test]
async fn scan_disables_dead_keys_and_re_enables_recovered_ones() {
    let flaky = fake_key("invalid", 1);
    let suspended = fake_key("denied", 2);
    let healthy = fake_key("ok", 3);
    let h = Harness::start(&[flaky.clone(), healthy.clone(), suspended.clone()]).await;
    assert_eq!(h.generate("gemini-2.5-flash").await.status(), 200);
    // Round robin: the first lease went to the invalid key, which is now disabled.
    assert_eq!(h.snapshot(&flaky).await.disabled.unwrap().reason, DisableReason::Invalid);
    assert!(h.snapshot(&suspended).await.disabled.is_none(), "not used yet");

    h.fake.set_behaviour(&flaky, Behaviour::Ok);
    h.app().pool.start_scan().await.unwrap();
    h.eventually("scan finishes", async || {
        let report = h.app().pool.scan_report();
        !report.running && report.done == 3
    })
    .await;
    let report = h.app().pool.scan_report();
    assert_eq!((report.total, report.alive, report.dead), (3, 2, 1));
    assert!(h.snapshot(&flaky).await.disabled.is_none(), "recovered key re-enabled");
    assert_eq!(h.snapshot(&suspended).await.disabled.unwrap().reason, DisableReason::PermissionDenied);
    assert!(h.snapshot(&healthy).await.disabled.is_none());
    h.stop().await;
}

#[tokio::test]
async fn a_key_disabled_by_hand_stays_disabled_through_a_scan() {
    let key = fake_key("ok", 1);
    let h = Harness::start(std::slice::from_ref(&key)).await;
    let fingerprint = gemgate::keys::Fingerprint::of(&key);
    assert!(h.app().pool.set_disabled(fingerprint, Some(DisableReason::Manual)));
    assert_eq!(h.generate("gemini-2.5-flash").await.status(), 503);
    h.app().pool.start_scan().await.unwrap();
    h.eventually("scan finishes", async || h.app().pool.scan_report().done == 1 && !h.app().pool.scan_report().running)
        .await;
    assert_eq!(h.snapshot(&key).await.disabled.unwrap().reason, DisableReason::Manual);
    h.stop().await;
}

#[tokio::test]
async fn restart_keeps_disabled_keys_cooldowns_and_counters() {
    let invalid = fake_key("invalid", 1);
    let limited = fake_key("prorpm600", 2);
    let healthy = fake_key("ok", 3);
    let mut h = Harness::start(&[invalid.clone(), limited.clone(), healthy.clone()]).await;
    for _ in 0..4 {
        assert_eq!(h.generate("gemini-2.5-pro").await.status(), 200);
    }
    let before = h.snapshot(&limited).await;
    assert!(before.is_cooling_for("gemini-2.5-pro", SystemTime::now()));
    h.restart().await;

    assert_eq!(h.snapshot(&invalid).await.disabled.unwrap().reason, DisableReason::Invalid);
    let after = h.snapshot(&limited).await;
    assert_eq!(after.requests, before.requests);
    assert_eq!(after.cooldowns.len(), 1);
    let drift = after.cooldowns[0].until.duration_since(before.cooldowns[0].until).unwrap_or_else(|e| e.duration());
    assert!(drift < Duration::from_millis(2), "same end time after restart");
    let calls_before = (h.fake.calls(&invalid), h.fake.calls_for(&limited, "gemini-2.5-pro"));
    for _ in 0..4 {
        assert_eq!(h.generate("gemini-2.5-pro").await.status(), 200);
    }
    assert_eq!((h.fake.calls(&invalid), h.fake.calls_for(&limited, "gemini-2.5-pro")), calls_before);
    h.stop().await;
}

#[tokio::test]
async fn requests_are_logged_with_tokens_and_key_fingerprint_only() {
    let key = fake_key("ok", 1);
    let h = Harness::start(std::slice::from_ref(&key)).await;
    assert_eq!(h.generate("gemini-2.5-flash").await.status(), 200);
    let stream = h.post("/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse", PROMPT).await;
    stream.text().await.unwrap();
    assert_eq!(h.generate("gemini-9").await.status(), 404);
    h.eventually("three rows logged", async || h.app().store.recent_requests(10).await.unwrap().len() == 3).await;
    let rows = h.app().store.recent_requests(10).await.unwrap();
    let fingerprint = gemgate::keys::Fingerprint::of(&key);
    let streamed = rows.iter().find(|r| r.route == "streamGenerateContent").unwrap();
    assert_eq!((streamed.status, &*streamed.model, streamed.attempts), (200, "gemini-2.5-pro", 1));
    assert_eq!(streamed.key_fingerprint, Some(fingerprint));
    assert!(streamed.total_tokens > 2 && streamed.prompt_tokens == 2, "{streamed:?}");
    let failed = rows.iter().find(|r| r.status == 404).unwrap();
    assert!(failed.error.is_some());
    for row in &rows {
        assert!(!format!("{row:?}").contains(&key));
        assert!(row.client.starts_with("client-"));
    }
    h.stop().await;
}

#[tokio::test]
async fn configured_rpm_paces_keys_without_hitting_429() {
    let pair = keys("ok", 2);
    let h = Harness::start_with(&pair, |c| {
        c.models.insert("gemini-2.5-pro".into(), gemgate::config::ModelLimits { rpm: 2, rpd: 0 });
    })
    .await;
    for _ in 0..4 {
        assert_eq!(h.generate("gemini-2.5-pro").await.status(), 200);
    }
    let fifth = h.generate("gemini-2.5-pro").await;
    assert_eq!(fifth.status(), 429, "both keys used their 2 requests this minute");
    assert_eq!(h.fake.total_calls(), 4);
    assert_eq!(h.generate("gemini-2.5-flash").await.status(), 200, "other models are not limited");
    h.stop().await;
}

#[tokio::test]
async fn a_scan_of_7000_keys_keeps_file_descriptors_bounded() {
    let mut pool = keys("ok", 6990);
    pool.extend(keys("invalid", 10));
    let h = Harness::start_with(&pool, |c| c.scan.concurrency = 16).await;
    let open_fds = || std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0);
    let before = open_fds();
    h.app().pool.start_scan().await.unwrap();
    assert_eq!(h.app().pool.start_scan().await, Err(gemgate::pool::ScanError::AlreadyRunning));
    let mut peak = before;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while h.app().pool.scan_report().running {
        peak = peak.max(open_fds());
        assert!(std::time::Instant::now() < deadline, "scan of 7000 keys took too long");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let report = h.app().pool.scan_report();
    assert_eq!((report.total, report.done, report.alive, report.dead), (7000, 7000, 6990, 10));
    // Bounded by the scan's concurrency (client and fake side), not by the pool size.
    assert!(peak < before + 100, "fds grew from {before} to {peak}");
    h.stop().await;
}

#[tokio::test]
async fn a_client_that_leaves_while_keys_are_tried_is_logged_as_499() {
    let slow = fake_key("slow5000", 1);
    let h = Harness::start(std::slice::from_ref(&slow)).await;
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(300)).build().unwrap();
    let url = h.url("/v1beta/models/gemini-2.5-flash:generateContent");
    let sent = impatient.post(url).header("x-goog-api-key", CLIENT_KEY).body(PROMPT).send().await;
    assert!(sent.is_err(), "the client gave up first");
    h.eventually("the request is logged as abandoned", async || {
        h.app().store.recent_requests(10).await.unwrap().iter().any(|r| r.status == 499)
    })
    .await;
    let rows = h.app().store.recent_requests(10).await.unwrap();
    let row = rows.iter().find(|r| r.status == 499).unwrap();
    assert_eq!((row.attempts, row.error.as_deref()), (1, Some("client closed the connection")), "{row:?}");
    h.stop().await;
}
