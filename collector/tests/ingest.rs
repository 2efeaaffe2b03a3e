//! HTTP ingest against a real ClickHouse server and real sockets.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;
use shaobing_collector::query::{render_json_lines, QueryFilter};
use shaobing_wire::{Incident, Kind, Timestamp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_batch_is_acknowledged_after_it_is_stored_and_readable() {
    if skip() {
        return;
    }
    let h = Harness::start().await;
    let items = [leak(1), volumetric(2)];
    let (status, resp) = h.post(Some(TOKEN), &body(&items)).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp, serde_json::json!({"accepted": 2}));

    // Visible right after the acknowledgement, through the query code path.
    let rows = h.rows().await;
    assert_eq!(rows.len(), 2);
    // Oldest first: the volumetric one is from 2023.
    assert_eq!(rows[0].kind, "volumetric");
    assert_eq!(rows[1].kind, "leak");
    assert!(
        rows.iter().all(|r| r.sensor == SENSOR),
        "sensor comes from the token"
    );
    assert_eq!(rows[0].dst_ip, "2001:db8::1");
    assert_eq!(rows[0].bytes, u64::MAX);
    assert_eq!(rows[0].src_port, None);
    assert_eq!(rows[1].dst_port, Some(80));
    assert_eq!(rows[1].ts_us, 123_456);

    // --json prints each incident exactly as the wire format, with the
    // sensor overridden.
    let lines = render_json_lines(&rows);
    let printed: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (p, original) in printed.iter().zip([&items[1], &items[0]]) {
        let mut expected: Incident = serde_json::from_value(original.clone()).unwrap();
        expected.sensor = SENSOR.to_string();
        assert_eq!(p, &serde_json::to_value(&expected).unwrap());
    }

    // Filters: kind, and time bounds in capture time.
    let only_leaks = QueryFilter {
        since: None,
        until: None,
        kind: Some(Kind::Leak),
        limit: 10,
        ..Default::default()
    };
    let leaks = shaobing_collector::fetch_incidents(&h.config, &only_leaks)
        .await
        .unwrap();
    assert_eq!(leaks.len(), 1);
    let since_2025 = QueryFilter {
        since: Some(Timestamp::parse("2025-01-01T00:00:00Z").unwrap()),
        until: None,
        kind: None,
        limit: 10,
        ..Default::default()
    };
    let recent = shaobing_collector::fetch_incidents(&h.config, &since_2025)
        .await
        .unwrap();
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0].kind, "leak");
    // Microsecond precision: the volumetric ts is ...20.000042Z.
    let until_exact = QueryFilter {
        since: None,
        until: Some(Timestamp::parse("2023-11-14T22:13:20.000042Z").unwrap()),
        kind: None,
        limit: 10,
        ..Default::default()
    };
    assert!(shaobing_collector::fetch_incidents(&h.config, &until_exact)
        .await
        .unwrap()
        .is_empty());
    let limited = QueryFilter {
        since: None,
        until: None,
        kind: None,
        limit: 1,
        ..Default::default()
    };
    let one = shaobing_collector::fetch_incidents(&h.config, &limited)
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].kind, "leak", "limit keeps the most recent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_batch_posted_twice_is_stored_once() {
    if skip() {
        return;
    }
    let h = Harness::start().await;
    let b = body(&[leak(1), leak(2), volumetric(3)]);
    assert_eq!(h.post(Some(TOKEN), &b).await.0, 200);
    assert_eq!(h.post(Some(TOKEN), &b).await.0, 200);
    let rows = h.rows().await;
    assert_eq!(rows.len(), 3, "FINAL collapses re-delivered incidents");
    let mut ids: Vec<_> = rows.iter().map(|r| r.id).collect();
    ids.dedup();
    assert_eq!(ids.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndjson_body_is_accepted() {
    if skip() {
        return;
    }
    let h = Harness::start().await;
    let text = format!("{}\n\n{}\n", leak(1), volumetric(2));
    let (status, resp) = h
        .post_as(Some(TOKEN), "application/x-ndjson", text.as_bytes())
        .await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["accepted"], 2);
    assert_eq!(h.rows().await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_wrong_token_is_401_and_nothing_is_stored() {
    if skip() {
        return;
    }
    let h = Harness::start().await;
    let b = body(&[leak(1)]);
    for token in [None, Some("wrong-token"), Some("")] {
        let (status, resp) = h.post(token, &b).await;
        assert_eq!(status, 401, "{token:?}: {resp}");
        assert!(resp["error"].as_str().unwrap().contains("token"));
    }
    let resp = request(
        h.addr,
        "POST",
        "/api/v1/incidents",
        None,
        "application/json",
        &b,
    )
    .await;
    assert_eq!(resp.header("www-authenticate"), Some("Bearer"));
    assert_eq!(h.raw_count().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_400_naming_the_item_and_nothing_of_the_batch_is_stored() {
    if skip() {
        return;
    }
    let h = Harness::start().await;

    let (status, resp) = h.post(Some(TOKEN), b"[{\"id\": ").await;
    assert_eq!(status, 400, "{resp}");
    assert!(resp.get("item").is_none(), "{resp}");

    let (status, resp) = h.post(Some(TOKEN), b"{\"not\": \"an array\"}").await;
    assert_eq!(status, 400, "{resp}");

    let mut no_excerpt = leak(2);
    no_excerpt.as_object_mut().unwrap().remove("excerpt");
    let (status, resp) = h.post(Some(TOKEN), &body(&[leak(1), no_excerpt])).await;
    assert_eq!(status, 400, "{resp}");
    assert_eq!(resp["item"], 1);
    assert!(
        resp["error"].as_str().unwrap().contains("excerpt"),
        "{resp}"
    );

    let mut schema2 = volumetric(3);
    schema2["schema"] = 2.into();
    let (status, resp) = h.post(Some(TOKEN), &body(&[schema2, leak(1)])).await;
    assert_eq!(status, 400, "{resp}");
    assert_eq!(resp["item"], 0);
    assert!(resp["error"].as_str().unwrap().contains("schema"), "{resp}");

    let mut bad_severity = leak(4);
    bad_severity["severity"] = "apocalyptic".into();
    let (status, resp) = h
        .post(Some(TOKEN), &body(&[leak(1), leak(2), bad_severity]))
        .await;
    assert_eq!((status, resp["item"].as_u64()), (400, Some(2)), "{resp}");

    let (status, resp) = h.post(Some(TOKEN), b"[1]").await;
    assert_eq!((status, resp["item"].as_u64()), (400, Some(0)), "{resp}");

    let mut before_1970 = leak(5);
    before_1970["ts"] = "1969-12-31T23:59:59Z".into();
    let (status, resp) = h.post(Some(TOKEN), &body(&[before_1970])).await;
    assert_eq!((status, resp["item"].as_u64()), (400, Some(0)), "{resp}");

    let ndjson = format!("{}\nnot json\n", leak(1));
    let (status, resp) = h
        .post_as(Some(TOKEN), "application/x-ndjson", ndjson.as_bytes())
        .await;
    assert_eq!((status, resp["item"].as_u64()), (400, Some(1)), "{resp}");

    assert_eq!(h.raw_count().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_body_and_too_many_items_are_413() {
    if skip() {
        return;
    }
    let h = Harness::start().await;
    // max_items = 10 in the test config.
    let many: Vec<Value> = (0..11).map(leak).collect();
    let (status, resp) = h.post(Some(TOKEN), &body(&many)).await;
    assert_eq!(status, 413, "{resp}");
    assert!(resp["error"].as_str().unwrap().contains("items"));
    // max_body_bytes = 65536.
    let big = vec![b' '; 70_000];
    let (status, resp) = h.post(Some(TOKEN), &big).await;
    assert_eq!(status, 413, "{resp}");
    assert_eq!(h.raw_count().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_down_is_503_and_recovers_when_it_returns() {
    if skip() {
        return;
    }
    let mut h = Harness::start().await;
    tokio::task::block_in_place(|| h.ch.stop_in_place());
    let (status, resp) = h.post(Some(TOKEN), &body(&[leak(1)])).await;
    assert_eq!(status, 503, "{resp}");
    assert!(
        resp["error"]
            .as_str()
            .unwrap()
            .starts_with("clickhouse unavailable"),
        "{resp}"
    );

    // Same port and data: the sensor's retry succeeds.
    tokio::task::block_in_place(|| h.ch.restart().unwrap());
    let (status, resp) = h.post(Some(TOKEN), &body(&[leak(1)])).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(h.rows().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_ok() {
    if skip() {
        return;
    }
    let h = Harness::start().await;
    let resp = request(h.addr, "GET", "/healthz", None, "text/plain", b"").await;
    assert_eq!((resp.status, resp.body_text().as_str()), (200, "ok"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_answers_in_flight_requests_without_waiting_for_max_delay() {
    if skip() {
        return;
    }
    // A 60 s batching delay: without draining, the request would hang.
    let mut h = Harness::start_with("").await;
    h.config.batch.max_delay_ms = 60_000;
    // Strictly by size and time (group commit would insert at once).
    h.config.batch.flush_when_idle = false;
    // Restart the collector with the long delay.
    h.stop_collector().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(shaobing_collector::serve(
        h.config.clone(),
        listener,
        async {
            let _ = rx.await;
        },
    ));
    let b = body(&[leak(7)]);
    let started = std::time::Instant::now();
    let post = tokio::spawn(async move {
        request(
            addr,
            "POST",
            "/api/v1/incidents",
            Some(TOKEN),
            "application/json",
            &b,
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !post.is_finished(),
        "request should wait for the batch delay"
    );
    tx.send(()).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(20), post)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.body_text());
    tokio::time::timeout(Duration::from_secs(20), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(h.rows().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_group_commit_an_idle_writer_inserts_at_once_instead_of_waiting_for_max_delay() {
    if skip() {
        return;
    }
    // A 60 s batching delay and a size threshold no request reaches: only
    // group commit (`flush_when_idle`, the default) acknowledges these
    // requests before the 30 s request timeout.
    let mut h = Harness::start_with("").await;
    h.config.batch.max_delay_ms = 60_000;
    assert!(h.config.batch.flush_when_idle);
    h.stop_collector().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(shaobing_collector::serve(
        h.config.clone(),
        listener,
        async {
            let _ = rx.await;
        },
    ));
    // Several sensors at once: each is acknowledged, every incident stored
    // once.
    let posts: Vec<_> = (0..4u32)
        .map(|i| {
            let b = body(&[leak(10 + 2 * i), leak(11 + 2 * i)]);
            tokio::spawn(async move {
                request(
                    addr,
                    "POST",
                    "/api/v1/incidents",
                    Some(TOKEN),
                    "application/json",
                    &b,
                )
                .await
            })
        })
        .collect();
    for p in posts {
        let resp = p.await.unwrap();
        assert_eq!(resp.status, 200, "{}", resp.body_text());
    }
    assert_eq!(h.rows().await.len(), 8);
    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(20), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
