//! The protocol spoken to backends: one multiplexed HTTP/2 connection to a
//! backend that speaks h2c, pooled HTTP/1.1 connections to any other.

use http::StatusCode;

use crate::support::{
    Backend, Speaks, get, http1_client, parse_headers, proxy_for, trace_init, within,
};

/// Sends `n` requests to `/hold` at once, waits until all of them are held
/// at `backend` (so all are in flight together), releases them, and checks
/// every answer.
async fn hold_many(backend: &Backend, n: usize) {
    let proxy = proxy_for(&[backend]).await;
    let client = http1_client();
    let calls: Vec<_> = (0..n)
        .map(|_| {
            let (client, proxy) = (client.clone(), proxy.clone());
            tokio::spawn(async move { get(&client, &proxy, "/hold").await })
        })
        .collect();
    for _ in 0..n {
        backend.wait_held().await;
    }
    backend.release();
    for call in calls {
        let answer = within("a held call", call).await.expect("task");
        assert_eq!(answer, (StatusCode::OK, backend.name().to_owned()));
    }
    assert_eq!(get(&client, &proxy, "/hold").await.0, StatusCode::OK);
}

/// Holds 20 requests at once on a backend speaking `speaks`, then checks
/// how many connections it accepted and the version a later request came in.
async fn connections_and_version(speaks: Speaks, connections: usize, version: &str) {
    trace_init();
    let backend = Backend::start_speaking("a", speaks).await;
    hold_many(&backend, 20).await;
    assert_eq!(backend.connections(), connections);
    let proxy = proxy_for(&[&backend]).await;
    assert_eq!(get(&http1_client(), &proxy, "/version").await.1, version);
}

#[tokio::test]
async fn an_h2c_backend_gets_one_multiplexed_connection() {
    // The probe, then one connection for all 20 requests in flight.
    connections_and_version(Speaks::Auto, 2, "HTTP/2.0").await;
}

#[tokio::test]
async fn an_http1_backend_gets_a_connection_per_request_in_flight() {
    // The probe (answered in HTTP/1.1, so not taken up), then 20 keep-alive
    // connections, reused by the last request.
    connections_and_version(Speaks::Http1, 21, "HTTP/1.1").await;
}

#[tokio::test]
async fn an_h2c_backend_sees_the_same_headers() {
    trace_init();
    let backend = Backend::start_speaking("a", Speaks::Auto).await;
    let proxy = proxy_for(&[&backend]).await;
    let req = http::Request::get(format!("http://{}/echo-headers", proxy.local_addr()))
        .header("x-custom", "1")
        .header("connection", "x-hop")
        .header("x-hop", "gone")
        .body(crate::support::empty())
        .expect("valid request");
    let (status, echo) = crate::support::send(&http1_client(), req).await;
    assert_eq!(status, StatusCode::OK);
    let headers = parse_headers(&echo);
    assert_eq!(headers["host"], [proxy.local_addr().to_string()]);
    assert_eq!(headers["x-custom"], ["1"]);
    assert_eq!(headers["x-forwarded-for"], ["127.0.0.1"]);
    assert!(!headers.contains_key("x-hop"), "{headers:?}");
    assert!(!headers.contains_key("connection"), "{headers:?}");
}

#[tokio::test]
async fn a_dead_h2c_backend_is_replaced_for_gets() {
    trace_init();
    let dying = Backend::start_speaking("dying", Speaks::Auto).await;
    let live = Backend::start_speaking("live", Speaks::Auto).await;
    let proxy = proxy_for(&[&dying, &live]).await;
    let client = http1_client();
    for _ in 0..4 {
        assert_eq!(get(&client, &proxy, "/").await.0, StatusCode::OK);
    }
    assert!(
        dying.hits() > 0 && live.hits() > 0,
        "dying {} live {}",
        dying.hits(),
        live.hits()
    );
    // Its shared connection breaks; GETs that pick it go to the other.
    let dying_addr = dying.addr;
    drop(dying);
    for _ in 0..10 {
        assert_eq!(
            get(&client, &proxy, "/").await,
            (StatusCode::OK, "live".to_owned()),
            "backend {dying_addr} is gone"
        );
    }
}

#[tokio::test]
async fn slow_clients_do_not_stall_the_shared_connection() {
    trace_init();
    let backend = Backend::start_speaking("a", Speaks::Auto).await;
    let proxy = proxy_for(&[&backend]).await;
    // Large responses that nobody reads: each holds what the proxy buffered
    // of it against the shared connection's flow-control window.
    let client = http1_client();
    let mut unread = Vec::new();
    for _ in 0..4 {
        let req = http::Request::get(format!("http://{}/big", proxy.local_addr()))
            .body(crate::support::empty())
            .expect("valid request");
        let response = within("a big response's head", client.request(req))
            .await
            .expect("response");
        unread.push(response);
    }
    // Other requests on the same backend connection still get through.
    assert_eq!(
        get(&client, &proxy, "/").await,
        (StatusCode::OK, "a".to_owned())
    );
    assert_eq!(backend.connections(), 2);
    drop(unread);
}
