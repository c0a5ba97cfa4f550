//! backend-api's UCF gauges over HTTP: reporting (one sample or a batch, admins and admin-scoped
//! keys only), what bad values get, the latest sample through the bus and after the bus forgot it,
//! every sample published on `consciousness:stream`, and downsampled history.

use std::time::Duration;

use helix_bus::Event;
use serde_json::{json, Value};

use crate::admin::with_admin;
use crate::support::TestBackends;

fn sample(agent: &str, level: f64, at: &str) -> Value {
    json!({
        "agent_id": agent,
        "consciousness_level": level,
        "ucf_metrics": {"harmony": 0.5, "resilience": 1.0, "prana": 0.25, "drishti": 0.75,
                        "klesha": 0.1, "zoom": 1.0},
        "timestamp": at,
    })
}

#[tokio::test]
async fn samples_are_stored_kept_as_latest_and_published() {
    let (app, admin) = with_admin(TestBackends::new(), &[]).await;
    let bus = app.state.bus().expect("a bus");
    let mut stream = bus
        .subscribe("consciousness:stream")
        .await
        .expect("subscribe");

    let (status, body) = app
        .post(
            "/api/metrics",
            Some(&admin),
            sample("kael", 7.5, "2026-01-01T00:00:00Z"),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let event = tokio::time::timeout(Duration::from_secs(5), stream.recv())
        .await
        .expect("published within 5 s")
        .expect("bus open");
    let Event::Message(message) = event else {
        panic!("unexpected {event:?}");
    };
    let published: Value = crate::support::published_json(&message.payload);
    assert_eq!(published["agent_id"], "kael");
    assert_eq!(published["ucf_metrics"]["harmony"], 0.5);
    let (status, latest) = app.get_as("/api/metrics/latest", &admin).await;
    assert_eq!(
        (status, latest["consciousness_level"].as_f64()),
        (200, Some(7.5)),
        "{latest}"
    );
    // Redis restarted and lost the key: the database still answers.
    bus.delete("ucf:latest:kael").await.unwrap();
    let (status, latest) = app
        .get_as("/api/metrics/latest?agent_id=kael", &admin)
        .await;
    assert_eq!(status, 200, "{latest}");
    assert_eq!(latest["timestamp"], "2026-01-01T00:00:00Z");
    let (status, none) = app
        .get_as("/api/metrics/latest?agent_id=nobody", &admin)
        .await;
    assert_eq!(
        (status, none["error"]["code"].as_str()),
        (404, Some("no_samples"))
    );
}

#[tokio::test]
async fn a_batch_is_stored_whole_and_history_is_averaged_into_buckets() {
    let (app, admin) = with_admin(TestBackends::new(), &[]).await;
    let samples: Vec<Value> = (0..120)
        .map(|s| {
            sample(
                "lumina",
                (s % 2) as f64 * 2.0,
                &format!("2026-01-01T00:{:02}:{:02}Z", s / 60, s % 60),
            )
        })
        .collect();
    let (status, body) = app
        .post(
            "/api/metrics/batch",
            Some(&admin),
            json!({"samples": samples}),
        )
        .await;
    assert_eq!(
        (status, body["recorded"].as_u64()),
        (201, Some(120)),
        "{body}"
    );

    let (status, history) = app
        .get_as(
            "/api/metrics/history?from=2026-01-01T00:00:00Z&to=2026-01-01T00:02:00Z&step=60&agent_id=lumina",
            &admin,
        )
        .await;
    assert_eq!(status, 200, "{history}");
    let points = history["points"].as_array().unwrap();
    assert_eq!(points.len(), 2, "{history}");
    assert_eq!(points[0]["at"], "2026-01-01T00:00:00Z");
    assert_eq!(points[0]["samples"], 60);
    assert_eq!(points[0]["consciousness_level"], 1.0, "alternating 0 and 2");
    assert_eq!(points[1]["ucf_metrics"]["prana"], 0.25);

    // A year at 1 s would be 31 million points: the step is widened to keep at most 1000.
    let (status, wide) = app
        .get_as(
            "/api/metrics/history?from=2025-06-01T00:00:00Z&to=2026-06-01T00:00:00Z&step=1",
            &admin,
        )
        .await;
    assert_eq!(status, 200, "{wide}");
    assert_eq!(wide["step"], 31_536);
    assert_eq!(
        wide["points"].as_array().unwrap().len(),
        1,
        "one bucket holds all 120"
    );
    // A step far beyond the range (once an overflow) is one bucket of the whole range.
    let (status, huge) = app
        .get_as(
            &format!(
                "/api/metrics/history?from=2026-01-01T00:00:00Z&to=2026-01-01T00:02:00Z&step={}",
                i64::MAX
            ),
            &admin,
        )
        .await;
    assert_eq!(status, 200, "{huge}");
    assert_eq!(huge["step"], 120);
    assert_eq!(huge["points"][0]["samples"], 120, "{huge}");
}

#[tokio::test]
async fn bad_values_and_callers_are_refused_and_store_nothing() {
    let (app, admin) = with_admin(TestBackends::new(), &[]).await;
    let at = "2026-01-01T00:00:00Z";
    let mut out_of_range = sample("kael", 7.5, at);
    out_of_range["ucf_metrics"]["klesha"] = json!(10.5);
    let negative = sample("kael", -0.1, at);
    let future = sample("kael", 1.0, "2999-01-01T00:00:00Z");
    let cases = [
        (out_of_range, "ucf_metrics.klesha"),
        (negative, "consciousness_level"),
        (future, "timestamp"),
        (sample("bad agent!", 1.0, at), "agent_id"),
    ];
    for (body, field) in cases {
        let (status, answer) = app.post("/api/metrics", Some(&admin), body).await;
        assert_eq!(status, 422, "{answer}");
        assert!(
            answer["error"]["fields"].get(field).is_some(),
            "{field}: {answer}"
        );
    }
    // Python's json.dumps writes NaN and Infinity; they are not JSON numbers.
    for raw in [
        r#"{"agent_id":"kael","consciousness_level":NaN,"ucf_metrics":{"harmony":0,"resilience":0,"prana":0,"drishti":0,"klesha":0,"zoom":0}}"#,
        r#"{"agent_id":"kael","consciousness_level":1,"ucf_metrics":{"harmony":0,"resilience":0,"prana":0,"drishti":0,"klesha":0,"zoom":-Infinity}}"#,
    ] {
        let response = app
            .client
            .post(app.url("/api/metrics"))
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 422);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["error"]["code"], "invalid_fields", "{answer}");
    }
    let mut batch: Vec<Value> = (0..3).map(|_| sample("kael", 1.0, at)).collect();
    batch[2]["ucf_metrics"]["zoom"] = json!(99);
    let (status, answer) = app
        .post(
            "/api/metrics/batch",
            Some(&admin),
            json!({"samples": batch}),
        )
        .await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["error"]["fields"]
            .get("samples[2].ucf_metrics.zoom")
            .is_some(),
        "{answer}"
    );
    let (status, _) = app
        .post("/api/metrics/batch", Some(&admin), json!({"samples": []}))
        .await;
    assert_eq!(status, 422);

    let (status, user) = app
        .post(
            "/api/auth/signup",
            None,
            json!({"email": "plain@example.com", "password": "correct horse battery", "display_name": "P"}),
        )
        .await;
    assert_eq!(status, 201);
    let plain = user["access_token"].as_str().unwrap();
    let (status, _) = app
        .post("/api/metrics", Some(plain), sample("kael", 1.0, at))
        .await;
    assert_eq!(status, 403, "a plain user cannot report");
    let (status, _) = app.get_as("/api/metrics/latest", plain).await;
    assert_eq!(status, 404, "nothing was stored by the refused reports");
    let (status, answer) = app
        .get_as(
            "/api/metrics/history?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
            plain,
        )
        .await;
    assert_eq!(status, 422, "{answer}");
}

#[tokio::test]
async fn a_full_batch_is_taken_whole_and_one_more_sample_is_refused() {
    let (app, admin) = with_admin(TestBackends::new(), &[]).await;
    let at = "2026-01-01T00:00:00Z";
    // A full batch is over the usual 64 KiB body limit: the endpoint takes it all the same.
    let full: Vec<Value> = (0..1000).map(|_| sample("kael", 1.0, at)).collect();
    let (status, answer) = app
        .post("/api/metrics/batch", Some(&admin), json!({"samples": full}))
        .await;
    assert_eq!(
        (status, answer["recorded"].as_i64()),
        (201, Some(1000)),
        "{answer}"
    );
    let over: Vec<Value> = (0..1001).map(|_| sample("kael", 1.0, at)).collect();
    let (status, answer) = app
        .post("/api/metrics/batch", Some(&admin), json!({"samples": over}))
        .await;
    assert_eq!(status, 422, "{answer}");
}

/// A backfilled batch (older samples) leaves a newer latest alone, and every agent of a batch gets
/// its own latest, not only the agent of the batch's newest sample.
#[tokio::test]
async fn latest_never_moves_back_and_every_agent_of_a_batch_gets_one() {
    let (app, admin) = with_admin(TestBackends::new(), &[]).await;
    let (status, _) = app
        .post(
            "/api/metrics",
            Some(&admin),
            sample("kael", 9.0, "2026-01-02T00:00:00Z"),
        )
        .await;
    assert_eq!(status, 201);
    let backfill = json!({"samples": [
        sample("kael", 1.0, "2026-01-01T00:00:00Z"),
        sample("lumina", 2.0, "2026-01-01T00:00:01Z"),
        sample("vega", 3.0, "2026-01-01T00:00:02Z"),
    ]});
    let (status, body) = app.post("/api/metrics/batch", Some(&admin), backfill).await;
    assert_eq!(status, 201, "{body}");
    let level = async |query: &str| {
        let (status, latest) = app
            .get_as(&format!("/api/metrics/latest{query}"), &admin)
            .await;
        assert_eq!(status, 200, "{latest}");
        latest["consciousness_level"].as_f64()
    };
    assert_eq!(
        level("").await,
        Some(9.0),
        "overall stays on the newer sample"
    );
    assert_eq!(level("?agent_id=kael").await, Some(9.0));
    assert_eq!(level("?agent_id=lumina").await, Some(2.0));
    assert_eq!(level("?agent_id=vega").await, Some(3.0));
    // Served from the bus, not from the database fallback.
    let bus = app.state.bus().expect("a bus");
    for agent in ["kael", "lumina", "vega"] {
        let held = bus.get(&format!("ucf:latest:{agent}")).await.unwrap();
        assert!(held.is_some(), "{agent} has a latest on the bus");
    }
}
