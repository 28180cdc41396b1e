//! The admin API end to end: a real gemgate (started from files, so config
//! and policy edits go through the files) in front of the fake Google.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::SystemTime;
use support::{ADMIN_KEY, CLIENT_KEY, Harness, PROMPT, admin_call as admin, fake_key, keys};

const POLICY: &str = "fn on_error(ctx) { ctx.builtin }\n";

async fn harness(keys: &[String]) -> Harness {
    Harness::start_with_files(keys, "", Some(POLICY)).await
}

/// A generateContent call with `client_key` instead of the harness's key.
async fn generate_as(h: &Harness, client_key: &str) -> reqwest::Response {
    h.http
        .post(h.url("/v1beta/models/gemini-2.5-flash:generateContent"))
        .header("x-goog-api-key", client_key)
        .header("content-type", "application/json")
        .body(PROMPT)
        .send()
        .await
        .unwrap()
}

fn error_message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_else(|| panic!("no error message in {body}"))
}

fn fingerprint(key: &str) -> String {
    gemgate::keys::Fingerprint::of(key).to_string()
}

async fn key_list(h: &Harness, query: &str) -> Value {
    let (status, body) = admin(h, "GET", &format!("/keys{query}"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn every_endpoint_needs_the_admin_key_and_errors_are_json() {
    let h = harness(&keys("ok", 1)).await;
    for (method, path) in
        [("GET", "/keys"), ("POST", "/scan"), ("GET", "/stats"), ("GET", "/config"), ("GET", "/clients")]
    {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = h.http.request(method.clone(), h.url(&format!("/admin/api{path}"))).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
        let body: Value = response.json().await.unwrap();
        assert!(error_message(&body).contains("admin key"), "{body}");
        let wrong = h.http.request(method, h.url(&format!("/admin/api{path}"))).bearer_auth(CLIENT_KEY).send().await;
        assert_eq!(wrong.unwrap().status(), StatusCode::UNAUTHORIZED, "a client key is not an admin key");
    }
    let (status, body) = admin(&h, "GET", "/no-such-thing", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(error_message(&body).contains("no such admin endpoint"));
    let (status, body) = admin(&h, "GET", "/keys?per_page=0", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_message(&body).contains("per_page"));
    let (status, body) = admin(&h, "GET", "/keys?state=sleeping", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let response = h
        .http
        .post(h.url("/admin/api/keys/disable"))
        .bearer_auth(ADMIN_KEY)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.json::<Value>().await.unwrap()["error"]["message"].is_string());
    h.stop().await;
}

#[tokio::test]
async fn sessions_use_a_cookie_a_csrf_token_and_limit_failed_logins() {
    let h = harness(&keys("ok", 1)).await;
    let login = |key: &str| h.http.post(h.url("/admin/api/login")).json(&json!({"key": key})).send();
    let ok = login(ADMIN_KEY).await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let cookie = ok.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains("Path=/;"), "the cookie stays scoped to the admin API's folder: {cookie}");
    let session = cookie.split(';').next().unwrap().to_string();
    let csrf = ok.json::<Value>().await.unwrap()["csrf_token"].as_str().unwrap().to_string();

    let with_cookie = |method: reqwest::Method, path: &str| {
        h.http.request(method, h.url(&format!("/admin/api{path}"))).header("cookie", session.clone())
    };
    assert_eq!(with_cookie(reqwest::Method::GET, "/keys").send().await.unwrap().status(), StatusCode::OK);
    let fp = fingerprint(&fake_key("ok", 1));
    let change = json!({"fingerprints": [fp]});
    let no_csrf = with_cookie(reqwest::Method::POST, "/keys/disable").json(&change).send().await.unwrap();
    assert_eq!(no_csrf.status(), StatusCode::FORBIDDEN, "a change without the CSRF token is refused");
    assert_eq!(h.snapshot(&fake_key("ok", 1)).await.disabled, None, "and changes nothing");
    let wrong = with_cookie(reqwest::Method::POST, "/keys/disable").header("x-csrf-token", "nope").json(&change);
    assert_eq!(wrong.send().await.unwrap().status(), StatusCode::FORBIDDEN);
    let right = with_cookie(reqwest::Method::POST, "/keys/enable").header("x-csrf-token", &csrf).json(&change);
    assert_eq!(right.send().await.unwrap().status(), StatusCode::OK);
    let again = with_cookie(reqwest::Method::GET, "/session").send().await.unwrap().json::<Value>().await.unwrap();
    assert_eq!(again["csrf_token"], csrf.as_str());
    let out = with_cookie(reqwest::Method::DELETE, "/session").header("x-csrf-token", &csrf).send().await.unwrap();
    assert_eq!(out.status(), StatusCode::OK);
    assert!(out.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    assert_eq!(with_cookie(reqwest::Method::GET, "/keys").send().await.unwrap().status(), StatusCode::UNAUTHORIZED);

    // server.auth_failures_per_minute (30 by default) is shared by every way in.
    for _ in 0..30 {
        assert_eq!(login("not-the-key").await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    let limited = login(ADMIN_KEY).await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(error_message(&limited.json().await.unwrap()).contains("try again"));
    h.stop().await;
}

#[tokio::test]
async fn keys_are_found_by_their_last_error() {
    let all = vec![fake_key("ok", 1), fake_key("invalid", 1), fake_key("denied", 1)];
    let h = harness(&all).await;
    // The denied key waits out of traffic, disabled by hand.
    let (status, _) = admin(&h, "POST", "/keys/disable", Some(json!({"fingerprints": [fingerprint(&all[2])]}))).await;
    assert_eq!(status, StatusCode::OK);
    // Requests until one tried the invalid key (failover serves them all).
    h.eventually("a request tried the invalid key", async || {
        assert_eq!(h.generate("gemini-2.5-flash").await.status(), StatusCode::OK);
        h.snapshot(&all[1]).await.disabled.is_some()
    })
    .await;
    let found = key_list(&h, "?search=not%20VALID").await;
    assert_eq!(
        (found["total"].as_u64(), found["items"][0]["fingerprint"].as_str()),
        (Some(1), Some(fingerprint(&all[1]).as_str()))
    );
    assert_eq!(key_list(&h, "?search=overloaded").await["total"], 0);
    // Within a state, the latest trouble first: a key verified dead later
    // comes before the one disabled earlier.
    let first_since = h.snapshot(&all[1]).await.disabled.expect("disabled").since;
    h.eventually("the clock moved past the first disable", async || SystemTime::now() > first_since).await;
    let (status, _) = admin(&h, "POST", "/keys/enable", Some(json!({"fingerprints": [fingerprint(&all[2])]}))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = admin(&h, "POST", "/keys/verify", Some(json!({"fingerprints": [fingerprint(&all[2])]}))).await;
    assert_eq!(status, StatusCode::OK);
    let listed = key_list(&h, "").await;
    let order: Vec<&str> =
        listed["items"].as_array().unwrap().iter().filter_map(|k| k["fingerprint"].as_str()).collect();
    assert_eq!(order, [fingerprint(&all[2]), fingerprint(&all[1]), fingerprint(&all[0])]);
    h.stop().await;
}

#[tokio::test]
async fn keys_list_filters_sorts_pages_and_never_shows_a_key() {
    let mut all = keys("ok", 5);
    all.push(fake_key("invalid", 1));
    let h = harness(&all).await;
    let list = key_list(&h, "").await;
    assert_eq!(list["total"], 6);
    assert_eq!(list["counts"]["active"], 6);
    let text = list.to_string();
    for key in &all {
        assert!(!text.contains(key.as_str()), "a key in clear in the list");
    }
    assert!(list["items"][0]["masked"].as_str().unwrap().starts_with("AIza…"));

    let page = key_list(&h, "?per_page=2&page=3").await;
    assert_eq!((page["items"].as_array().unwrap().len(), page["total"].as_u64()), (2, Some(6)));

    // One request disables the invalid key; another key cools down.
    let (status, _) = admin(&h, "POST", "/keys/verify", Some(json!({"fingerprints": [fingerprint(&all[5])]}))).await;
    assert_eq!(status, StatusCode::OK);
    h.eventually("the invalid key is disabled", async || h.snapshot(&all[5]).await.disabled.is_some()).await;
    let disabled = key_list(&h, "?state=disabled").await;
    assert_eq!(disabled["total"], 1);
    assert_eq!(disabled["items"][0]["fingerprint"], fingerprint(&all[5]).as_str());
    assert_eq!(disabled["items"][0]["disabled_reason"], "invalid");
    assert_eq!(disabled["counts"]["disabled"], 1);

    let suffix = &all[2][all[2].len() - 6..];
    let by_suffix = key_list(&h, &format!("?search={suffix}")).await;
    assert_eq!(by_suffix["total"], 1);
    let by_fp = key_list(&h, &format!("?search={}", &fingerprint(&all[3])[..8])).await;
    assert_eq!(by_fp["items"][0]["fingerprint"], fingerprint(&all[3]).as_str());
    // A key's start (the behaviour token makes it unique here).
    let by_start = key_list(&h, &format!("?search={}", &all[5][..12])).await;
    assert_eq!(
        (by_start["total"].as_u64(), by_start["items"][0]["fingerprint"].as_str()),
        (Some(1), Some(fingerprint(&all[5]).as_str()))
    );
    // By default the keys that need a look come first; a sort turns around.
    let sorted = key_list(&h, "").await;
    assert_eq!(sorted["items"][0]["state"], "disabled");
    let reversed = key_list(&h, "?sort=state&order=desc").await;
    assert_eq!(
        (reversed["items"][0]["state"].as_str(), reversed["items"][5]["state"].as_str()),
        (Some("active"), Some("disabled"))
    );
    let by_requests = key_list(&h, "?sort=requests").await;
    let counts: Vec<u64> =
        by_requests["items"].as_array().unwrap().iter().map(|k| k["requests"].as_u64().unwrap()).collect();
    assert!(counts.windows(2).all(|w| w[0] >= w[1]), "most requests first: {counts:?}");
    assert_eq!(key_list(&h, "?group=nope").await["total"], 0);
    h.stop().await;
}

#[tokio::test]
async fn pasted_keys_are_extracted_written_and_served() {
    let h = harness(&keys("ok", 1)).await;
    let new_a = fake_key("ok", 7);
    let new_b = fake_key("ok", 8);
    let text = format!("GEMINI_KEY={new_a}\n{}\n{new_b}, {new_a}\nhello world\n", fake_key("ok", 1));
    let (status, report) = admin(&h, "POST", "/keys/import", Some(json!({"text": text, "group": "paid"}))).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["added"].as_array().unwrap().len(), 2);
    assert_eq!(report["already_present"], json!([fingerprint(&fake_key("ok", 1))]));
    assert_eq!(report["duplicates_in_text"], 1);
    assert_eq!(
        report["rejected"],
        json!([{"line": 4, "reason": "no Google API key (AIza followed by 35 letters, digits, - or _) on this line"}])
    );
    assert!(!report.to_string().contains(&new_a), "the report masks keys");
    let file = std::fs::read_to_string(h.dir.path().join("keys/paid.txt")).unwrap();
    assert_eq!(file, format!("{new_a}\n{new_b}\n"));
    let list = key_list(&h, "?group=paid").await;
    assert_eq!(list["total"], 2, "the pool has the new keys at once");

    // Disable the old key: requests must now be served by the pasted ones.
    let old = json!({"fingerprints": [fingerprint(&fake_key("ok", 1))]});
    assert_eq!(admin(&h, "POST", "/keys/disable", Some(old)).await.0, StatusCode::OK);
    for _ in 0..4 {
        assert_eq!(h.generate("gemini-2.5-flash").await.status(), StatusCode::OK);
    }
    assert!(h.snapshot(&new_a).await.requests + h.snapshot(&new_b).await.requests >= 4);

    let (status, body) = admin(&h, "POST", "/keys/import", Some(json!({"text": new_a, "group": "../etc"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    h.stop().await;
}

#[tokio::test]
async fn delete_enable_disable_and_reveal() {
    let all = keys("ok", 3);
    let h = harness(&all).await;
    let fps: Vec<String> = all.iter().map(|k| fingerprint(k)).collect();

    let (status, report) =
        admin(&h, "POST", "/keys/disable", Some(json!({"fingerprints": [fps[0], "0123456789ab"]}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(report, json!({"changed": 1, "not_found": ["0123456789ab"]}));
    h.eventually("disabled by hand", async || h.snapshot(&all[0]).await.disabled.is_some()).await;
    assert_eq!(key_list(&h, "?state=disabled").await["items"][0]["disabled_reason"], "manual");
    // A scan does not re-enable a key an operator disabled.
    let (status, _) = admin(&h, "POST", "/keys/verify", Some(json!({"fingerprints": [fps[0]]}))).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(h.snapshot(&all[0]).await.disabled.is_some());
    admin(&h, "POST", "/keys/enable", Some(json!({"fingerprints": [fps[0]]}))).await;
    h.eventually("enabled again", async || h.snapshot(&all[0]).await.disabled.is_none()).await;

    let (status, body) = admin(&h, "POST", "/keys/delete", Some(json!({"fingerprints": ["xyz"]}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_message(&body).contains("fingerprint"));
    let (status, report) = admin(&h, "POST", "/keys/delete", Some(json!({"fingerprints": [fps[1]]}))).await;
    assert_eq!((status, report["changed"].as_u64()), (StatusCode::OK, Some(1)));
    let file = std::fs::read_to_string(h.dir.path().join("keys/test.txt")).unwrap();
    assert!(!file.contains(&all[1]) && file.contains(&all[0]) && file.contains(&all[2]));
    assert_eq!(key_list(&h, "").await["total"], 2);

    let (status, revealed) = admin(&h, "POST", &format!("/keys/{}/reveal", fps[2]), None).await;
    assert_eq!((status, revealed["key"].as_str()), (StatusCode::OK, Some(all[2].as_str())));
    let (status, _) = admin(&h, "POST", &format!("/keys/{}/reveal", fps[1]), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a deleted key cannot be revealed");
    h.stop().await;
}

#[tokio::test]
async fn verify_and_scan_apply_verdicts_with_progress() {
    let mut all = keys("ok", 3);
    all.push(fake_key("denied", 1));
    let h = harness(&all).await;
    let (status, report) =
        admin(&h, "POST", "/keys/verify", Some(json!({"fingerprints": [fingerprint(&all[0]), fingerprint(&all[3])]})))
            .await;
    assert_eq!(status, StatusCode::OK);
    let verdict = |fp: &str| {
        report["results"].as_array().unwrap().iter().find(|r| r["fingerprint"] == fp).unwrap()["verdict"].clone()
    };
    assert_eq!(verdict(&fingerprint(&all[0])), "alive");
    assert_eq!(verdict(&fingerprint(&all[3])), "permission_denied");

    let (status, started) = admin(&h, "POST", "/scan", None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let mut last = Value::Null;
    for _ in 0..100 {
        let (_, progress) = admin(&h, "GET", "/scan", None).await;
        if progress["running"] == false && progress["finished_at_ms"].is_u64() {
            last = progress;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(last["total"], 4, "{last}");
    assert_eq!((last["done"].as_u64(), last["alive"].as_u64(), last["dead"].as_u64()), (Some(4), Some(3), Some(1)));
    h.stop().await;
}

#[tokio::test]
async fn client_keys_are_made_shown_once_limited_and_revoked() {
    let h = harness(&keys("ok", 2)).await;
    let (status, created) = admin(
        &h,
        "POST",
        "/clients",
        Some(json!({"name": "alice", "rpm_limit": 60, "allowed_models": ["models/gemini-2.5-flash"]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let key = created["key"].as_str().unwrap().to_string();
    let id = created["client"]["id"].as_i64().unwrap();
    assert_eq!(created["client"]["allowed_models"], json!(["gemini-2.5-flash"]));
    let served = generate_as(&h, &key).await;
    assert_eq!(served.status(), StatusCode::OK, "the new client key works at once");

    let (_, list) = admin(&h, "GET", "/clients", None).await;
    assert!(!list.to_string().contains(&key), "the list never holds the key");
    assert_eq!(list["items"][0]["name"], "alice");
    assert_eq!(list["config_keys"], 1);

    let (status, taken) = admin(&h, "POST", "/clients", Some(json!({"name": "alice"}))).await;
    assert_eq!(status, StatusCode::CONFLICT, "names are unique");
    // Named, with its variable part, for the dashboard to translate.
    assert_eq!((&taken["error"]["id"], &taken["error"]["args"]["name"]), (&json!("client_exists"), &json!("alice")));
    let (status, _) = admin(&h, "POST", "/clients", Some(json!({"name": "<script>"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, updated) =
        admin(&h, "PUT", &format!("/clients/{id}"), Some(json!({"rpm_limit": 5, "rpd_limit": 100}))).await;
    assert_eq!((status, updated["rpd_limit"].as_i64()), (StatusCode::OK, Some(100)));
    let (status, _) = admin(&h, "PUT", "/clients/9999", Some(json!({"rpm_limit": 5}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, revoked) = admin(&h, "DELETE", &format!("/clients/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(revoked["revoked_ms"].is_i64());
    let refused = generate_as(&h, &key).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "a revoked key stops at once");
    assert_eq!(admin(&h, "DELETE", &format!("/clients/{id}"), None).await.0, StatusCode::CONFLICT);
    h.stop().await;
}

#[tokio::test]
async fn a_sampled_log_keeps_every_failure_and_the_stats_count_every_request() {
    let h = Harness::start_with(&keys("ok", 2), |c| {
        c.store.log_sample_successes = 0.0;
        c.auth.admin_key = ADMIN_KEY.into();
    })
    .await;
    for _ in 0..20 {
        assert_eq!(h.generate("gemini-2.5-flash").await.status(), StatusCode::OK);
    }
    assert_eq!(h.generate("no-such-model-x").await.status(), StatusCode::NOT_FOUND);
    h.app().store_writer.flush().await;
    let (_, page) = admin(&h, "GET", "/logs/requests", None).await;
    assert_eq!(page["total"], 1, "no success sampled, the failure kept: {page}");
    assert_eq!(page["items"][0]["status"], 404);
    let (_, stats) = admin(&h, "GET", "/stats?range=hour", None).await;
    assert_eq!((stats["totals"]["requests"].as_u64(), stats["totals"]["errors"].as_u64()), (Some(21), Some(1)));
    assert_eq!(stats["by_group"][0]["name"], "test", "{stats}");
    assert_eq!(
        stats["series"][0]["points"].as_array().unwrap().iter().map(|p| p["requests"].as_u64().unwrap()).sum::<u64>(),
        21
    );
    h.stop().await;
}

#[tokio::test]
async fn a_request_that_failed_on_a_key_counts_under_the_keys_group() {
    // Google's 500 on the only try: the request fails on that key.
    let h = Harness::start_with(&[fake_key("internal", 1)], |c| {
        c.auth.admin_key = ADMIN_KEY.into();
        c.retry.max_attempts = 1;
    })
    .await;
    let failed = h.generate("gemini-2.5-flash").await.status();
    assert!(failed.is_server_error(), "{failed}");
    h.app().store_writer.flush().await;
    let (_, stats) = admin(&h, "GET", "/stats?range=hour", None).await;
    assert_eq!(stats["by_group"][0]["name"], "test", "{stats}");
    assert_eq!(stats["by_group"][0]["errors"], 1, "{stats}");
    h.stop().await;
}

#[tokio::test]
async fn stats_and_logs_show_requests_and_googles_errors() {
    let mut all = keys("ok", 1);
    all.push(fake_key("rpm", 1));
    let h = harness(&all).await;
    for _ in 0..6 {
        assert_eq!(h.generate("gemini-2.5-flash").await.status(), StatusCode::OK);
    }
    assert_eq!(h.generate("no-such-model-x").await.status(), StatusCode::NOT_FOUND);
    h.app().store_writer.flush().await;

    let (status, stats) = admin(&h, "GET", "/stats?range=hour", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stats["totals"]["requests"], 7, "{stats}");
    assert_eq!(stats["totals"]["errors"], 1);
    assert_eq!(stats["buckets"].as_array().unwrap().iter().map(|b| b["requests"].as_u64().unwrap()).sum::<u64>(), 7);
    assert_eq!(stats["by_model"][0]["name"], "gemini-2.5-flash");
    assert_eq!(stats["by_group"][0]["name"], "test");
    assert_eq!(stats["pool"]["keys"], 2);
    assert!(stats["by_client"][0]["name"].as_str().unwrap().starts_with("client-"));

    let (_, page) = admin(&h, "GET", "/logs/requests?status=404", None).await;
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["model"], "no-such-model-x");
    let (_, page) = admin(&h, "GET", "/logs/requests?model=gemini-2.5-flash&per_page=2", None).await;
    assert_eq!((page["total"].as_i64(), page["items"].as_array().unwrap().len()), (Some(6), 2));

    // The rpm key failed over at least once: its 429 is in the error log with Google's words.
    let (_, errors) = admin(&h, "GET", &format!("/logs/errors?key={}", fingerprint(&all[1])), None).await;
    let first = &errors["items"][0];
    assert_eq!(first["http_status"], 429, "{errors}");
    assert_eq!(first["google_status"], "RESOURCE_EXHAUSTED");
    assert!(first["message"].as_str().unwrap().to_lowercase().contains("quota"));
    let (_, found) = admin(&h, "GET", "/logs/errors?q=QUOTA", None).await;
    assert!(found["total"].as_i64().unwrap() >= 1, "text search ignores case");
    let (_, none) = admin(&h, "GET", "/logs/errors?q=100%25_sure", None).await;
    assert_eq!(none["total"], 0, "LIKE wildcards in the search are literal");

    let (status, _) = admin(&h, "GET", "/logs/errors?key=not-hex", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = admin(&h, "GET", "/logs/requests?from_ms=10&to_ms=5", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    h.stop().await;
}

#[tokio::test]
async fn config_is_shown_without_secrets_validated_and_saved_through_reload() {
    let h = harness(&keys("ok", 1)).await;
    let path = h.dir.path().join("config.toml");
    let (status, config) = admin(&h, "GET", "/config", None).await;
    assert_eq!(status, StatusCode::OK);
    let text = config["text"].as_str().unwrap().to_string();
    let whole = config.to_string();
    assert!(!whole.contains(ADMIN_KEY) && !whole.contains(CLIENT_KEY), "no secret reaches the admin page");
    assert!(text.contains("admin_key = \"<hidden>\""));
    assert_eq!(config["effective"]["auth"]["admin_key"], "<hidden>");

    let broken = text.replace("[retry]", "[retry]\nmax_attempts = \"many\"");
    let (status, verdict) = admin(&h, "POST", "/config/validate", Some(json!({"text": broken}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(verdict["valid"], false);
    assert!(verdict["message"].as_str().unwrap().contains("max_attempts"), "{verdict}");
    let before = std::fs::read_to_string(&path).unwrap();
    let (status, body) = admin(&h, "PUT", "/config", Some(json!({"text": broken}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before, "a refused edit changes nothing");

    let edited = text.replace("[retry]", "[retry]\nmax_attempts = 2");
    let (status, saved) = admin(&h, "PUT", "/config", Some(json!({"text": edited}))).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    let after = std::fs::read_to_string(&path).unwrap();
    assert!(after.contains("max_attempts = 2"));
    assert!(after.contains(ADMIN_KEY) && after.contains(CLIENT_KEY), "hidden secrets are kept: {after}");
    let config_reload = h.app().reloads.events().into_iter().rev().find(|e| e.what == "config");
    assert_eq!(config_reload.map(|e| e.accepted), Some(true));
    let (_, config) = admin(&h, "GET", "/config", None).await;
    assert_eq!(config["effective"]["retry"]["max_attempts"], 2, "the edit is in force");
    h.stop().await;
}

#[tokio::test]
async fn policy_is_edited_tested_and_broken_scripts_refused() {
    let h = harness(&keys("ok", 1)).await;
    let (_, policy) = admin(&h, "GET", "/policy", None).await;
    assert_eq!(policy["text"], POLICY);
    let (status, body) = admin(&h, "PUT", "/policy", Some(json!({"text": "fn on_error(ctx) {\n  let x = ;\n}"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_message(&body).contains(":2:"), "the error names the line: {body}");
    assert_eq!(std::fs::read_to_string(h.dir.path().join("policy.rhai")).unwrap(), POLICY);

    let script = "fn on_error(ctx) { if ctx.status == 429 { #{ action: \"fail\" } } else { ctx.builtin } }\n";
    let case = json!({"status": 429, "model": "gemini-2.5-pro"});
    let (status, tried) = admin(&h, "POST", "/policy/test", Some(json!({"text": script, "case": case}))).await;
    assert_eq!(status, StatusCode::OK, "{tried}");
    assert_eq!(tried["decision"]["action"], "fail");
    assert_eq!(tried["built_in"]["action"], "retry_other_key");
    let (status, _) = admin(&h, "POST", "/policy/test", Some(json!({"case": [1, 2]}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, saved) = admin(&h, "PUT", "/policy", Some(json!({"text": script}))).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(std::fs::read_to_string(h.dir.path().join("policy.rhai")).unwrap(), script);
    let (_, reloads) = admin(&h, "GET", "/reloads", None).await;
    assert_eq!((reloads[0]["what"].as_str(), reloads[0]["accepted"].as_bool()), (Some("policy"), Some(true)));
    h.stop().await;
}

#[tokio::test]
async fn document_docs_and_dashboard_are_served() {
    let h = harness(&keys("ok", 1)).await;
    let doc: Value = h.http.get(h.url("/admin/api/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in ["/keys", "/keys/import", "/clients", "/stats", "/logs/errors", "/config", "/policy/test", "/login"] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
    assert_eq!(doc["servers"][0]["url"], "api", "relative server: works under a path prefix");
    let docs = h.http.get(h.url("/admin/docs")).send().await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.unwrap().contains("swagger"));

    let redirect = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let response = redirect.get(h.url("/admin")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(response.headers()["location"], "admin/");
    let page = h.http.get(h.url("/admin/")).send().await.unwrap();
    assert!(page.headers()["content-security-policy"].to_str().unwrap().contains("script-src 'self'"));
    let html = page.text().await.unwrap();
    assert!(html.contains("app.js") && !html.contains(ADMIN_KEY));
    let script = h.http.get(h.url("/admin/app.js")).send().await.unwrap();
    assert!(script.headers()["content-type"].to_str().unwrap().contains("javascript"));
    assert_eq!(h.http.get(h.url("/admin/nope.js")).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    h.stop().await;
}

#[tokio::test]
async fn an_admin_edit_reloads_the_keys_once_not_in_a_loop() {
    let h = harness(&keys("ok", 1)).await;
    let (status, _) = admin(&h, "POST", "/keys/import", Some(json!({"text": fake_key("ok", 9)}))).await;
    assert_eq!(status, StatusCode::OK);
    let count = |what: &str| h.app().reloads.events().iter().filter(|e| e.what == what).count();
    // The admin's own reload, then the watcher's for the file it wrote.
    h.eventually("the watcher saw the edit", async || count("keys") >= 2).await;
    // A later change as a marker: the watcher handles changes in order, so once
    // the marker's reload is recorded, a reload that reading the key files
    // caused would have been recorded before it.
    let config = h.dir.path().join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}\n# marker\n")).unwrap();
    h.eventually("the marker was reloaded", async || count("config") >= 1).await;
    let key_reloads = count("keys");
    assert!(key_reloads <= 2, "{key_reloads} key reloads after one edit: reading the files must not trigger more");
    h.stop().await;
}

#[tokio::test]
async fn info_and_edits_without_files_say_why() {
    let h = Harness::start(&keys("ok", 1)).await;
    let admin_key = std::fs::read_to_string(h.dir.path().join("data/admin-key")).unwrap().trim().to_string();
    let call = |method: reqwest::Method, path: &str, body: Value| {
        h.http.request(method, h.url(&format!("/admin/api{path}"))).bearer_auth(&admin_key).json(&body).send()
    };
    let info: Value = call(reqwest::Method::GET, "/info", json!({})).await.unwrap().json().await.unwrap();
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert!(info.get("config_file").is_none() && info["keys_dir"].as_str().unwrap().ends_with("keys"), "{info}");
    let response = call(reqwest::Method::PUT, "/config", json!({"text": "[retry]\nmax_attempts = 2\n"})).await.unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert!(error_message(&response.json().await.unwrap()).contains("--config"));
    let response = call(reqwest::Method::PUT, "/policy", json!({"text": POLICY})).await.unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let policy: Value = call(reqwest::Method::GET, "/policy", json!({})).await.unwrap().json().await.unwrap();
    assert!(policy.get("text").is_none(), "the built-in policy has no text: {policy}");
    let bad = call(reqwest::Method::POST, "/clients", json!({"name": "bob", "rpm_limit": -1})).await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let bad = call(reqwest::Method::POST, "/clients", json!({"name": "bob", "allowed_models": ["a b"]})).await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let (list, _) = (call(reqwest::Method::GET, "/clients", json!({})).await.unwrap(), ());
    assert_eq!(list.json::<Value>().await.unwrap()["items"], json!([]), "refused input changes nothing");
    h.stop().await;
}
