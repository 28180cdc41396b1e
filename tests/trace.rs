//! A request can be traced: the `x-request-id` a client got finds its row in
//! the request log and each of its failed attempts in the error log (key,
//! Google's status and reason, time); logs filter by status class and export
//! as CSV.

mod support;

use serde_json::Value;
use support::*;

#[tokio::test]
async fn a_failed_over_request_is_traced_to_its_attempts_and_exported() {
    // Two keys rate limited by Google, then a working one: the first request
    // fails over through both.
    let keys = [fake_key("rpm", 1), fake_key("rpm", 2), fake_key("ok", 1)];
    let h = Harness::start_with_files(&keys, "", None).await;
    let reply = h
        .http
        .post(h.url("/v1beta/models/gemini-2.5-flash:generateContent"))
        .header("x-goog-api-key", CLIENT_KEY)
        .header("x-request-id", "trace-me-0001")
        .header("content-type", "application/json")
        .body(PROMPT)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.headers()["x-request-id"], "trace-me-0001");
    // One more request that gets a 4xx of its own (an unknown model), with
    // an id gemgate made (it begins with its time).
    let unknown = h.post("/v1beta/models/gemini-nope:generateContent", PROMPT).await;
    assert_eq!(unknown.status(), 404);
    let made_id = unknown.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(made_id.len(), 20, "{made_id}");
    h.app().store_writer.flush().await;
    let (_, by_made_id) = admin_call(&h, "GET", &format!("/logs/requests?request_id={made_id}"), None).await;
    assert_eq!((by_made_id["total"].as_i64(), by_made_id["items"][0]["status"].as_i64()), (Some(1), Some(404)));

    let (status, found) = admin_call(&h, "GET", "/logs/requests?request_id=trace-me-0001", None).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["total"], 1, "{found}");
    let request = &found["items"][0];
    let attempts = request["attempts"].as_i64().unwrap();
    assert!(attempts >= 2, "it failed over: {request}");
    assert_eq!(request["request_id"], "trace-me-0001");

    let (_, tried) = admin_call(&h, "GET", "/logs/errors?request_id=trace-me-0001", None).await;
    let failed = tried["items"].as_array().unwrap();
    assert_eq!(failed.len() as i64, attempts - 1, "every failed attempt, linked: {tried}");
    for attempt in failed {
        assert_eq!(attempt["http_status"], 429);
        assert_eq!(attempt["google_status"], "RESOURCE_EXHAUSTED");
        assert!(attempt["latency_ms"].as_i64().is_some(), "{attempt}");
        assert_ne!(attempt["key_fingerprint"], request["key_fingerprint"], "another key answered");
    }

    // Status classes.
    let (_, client_errors) = admin_call(&h, "GET", "/logs/requests?status=4xx", None).await;
    let statuses: Vec<i64> =
        client_errors["items"].as_array().unwrap().iter().map(|r| r["status"].as_i64().unwrap()).collect();
    assert!(!statuses.is_empty() && statuses.iter().all(|s| (400..500).contains(s)), "{statuses:?}");
    let (_, ok) = admin_call(&h, "GET", "/logs/requests?status=2xx", None).await;
    assert!(ok["items"].as_array().unwrap().iter().all(|r| r["status"] == 200));
    let (bad, _) = admin_call(&h, "GET", "/logs/requests?status=4x", None).await;
    assert_eq!(bad, 400);

    // CSV export: a header, the request with its id, a download name.
    let csv = h
        .http
        .get(h.url("/admin/api/logs/requests?format=csv&request_id=trace-me-0001"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    assert!(csv.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    assert!(csv.headers()["content-disposition"].to_str().unwrap().contains("gemgate-requests.csv"));
    let text = csv.text().await.unwrap();
    assert!(text.starts_with("time,request_id,client"), "{text}");
    let rows: Vec<csv::StringRecord> =
        csv::Reader::from_reader(text.as_bytes()).records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1, "{text}");
    assert_eq!((&rows[0][1], &rows[0][4]), ("trace-me-0001", "gemini-2.5-flash"), "{text}");
    let errors_csv = h
        .http
        .get(h.url("/admin/api/logs/errors?format=csv&request_id=trace-me-0001"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Google's messages hold newlines: count records, not lines.
    let records = csv::Reader::from_reader(errors_csv.as_bytes()).records().count();
    assert_eq!(records as i64, attempts - 1, "each failed attempt: {errors_csv}");
    let page: Value = admin_call(&h, "GET", "/logs/errors?status=4xx", None).await.1;
    assert!(page["total"].as_i64().unwrap() >= attempts - 1);
    h.stop().await;
}
