//! Balancing and changes to the backend set.

use futures_util::stream::{self, StreamExt};
use http::StatusCode;
use weaver_proxy::{Error, Proxy};

use crate::support::{Backend, get, http1_client, proxy_for, trace_init, within};

#[tokio::test]
async fn requests_spread_over_two_backends() {
    trace_init();
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let proxy = proxy_for(&[&a, &b]).await;
    let client = http1_client();

    // Sequential, then 16 at a time: neither backend may take over 60%.
    for _ in 0..100 {
        assert_eq!(get(&client, &proxy, "/").await.0, StatusCode::OK);
    }
    let statuses: Vec<_> = stream::iter(0..100)
        .map(|_| get(&client, &proxy, "/"))
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(statuses.iter().all(|(s, _)| *s == StatusCode::OK));
    let (hits_a, hits_b) = (a.hits(), b.hits());
    assert_eq!(hits_a + hits_b, 200);
    assert!(hits_a <= 120 && hits_b <= 120, "a={hits_a} b={hits_b}");
}

#[tokio::test]
async fn busy_backend_is_passed_over() {
    trace_init();
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let proxy = proxy_for(&[&a, &b]).await;
    let client = http1_client();

    let held = tokio::spawn({
        let (client, proxy) = (client.clone(), proxy.clone());
        async move { get(&client, &proxy, "/hold").await }
    });
    let (busy, idle) = within("a held request", async {
        tokio::select! {
            () = a.wait_held() => (&a, &b),
            () = b.wait_held() => (&b, &a),
        }
    })
    .await;
    let busy_before = busy.hits();
    for _ in 0..10 {
        assert_eq!(get(&client, &proxy, "/").await.1, idle.name());
    }
    assert_eq!(busy.hits(), busy_before, "a busy backend got new requests");
    busy.release();
    let (status, _) = within("the held request", held).await.expect("task");
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn removed_backend_gets_no_requests_and_added_one_does() {
    trace_init();
    let (a, b, c) = (
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
    );
    let proxy = proxy_for(&[&a, &b]).await;
    let client = http1_client();

    proxy.remove_backend(a.addr);
    assert_eq!(proxy.backends(), [b.addr]);
    for _ in 0..20 {
        assert_eq!(get(&client, &proxy, "/").await.1, "b");
    }
    assert_eq!(a.hits(), 0);

    proxy.add_backend(c.addr);
    proxy.add_backend(c.addr);
    assert_eq!(proxy.backends(), [b.addr, c.addr]);
    for _ in 0..20 {
        assert_eq!(get(&client, &proxy, "/").await.0, StatusCode::OK);
    }
    assert_eq!(a.hits(), 0);
    assert!(c.hits() >= 8, "added backend got {} of 20", c.hits());
}

#[tokio::test]
async fn request_in_flight_on_a_removed_backend_finishes() {
    trace_init();
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let proxy = proxy_for(&[&a]).await;
    let client = http1_client();

    let held = tokio::spawn({
        let (client, proxy) = (client.clone(), proxy.clone());
        async move { get(&client, &proxy, "/hold").await }
    });
    a.wait_held().await;
    proxy.remove_backend(a.addr);
    proxy.add_backend(b.addr);
    assert_eq!(get(&client, &proxy, "/").await.1, "b");

    a.release();
    let answer = within("the held request", held).await.expect("task");
    assert_eq!(answer, (StatusCode::OK, "a".to_owned()));
}

#[tokio::test]
async fn bind_on_a_used_address_names_it() {
    trace_init();
    let first = Proxy::bind("127.0.0.1:0").await.expect("bind");
    let addr = first.local_addr().to_string();
    match Proxy::bind(&addr).await {
        Err(Error::AddrInUse { addr: named }) => assert_eq!(named, addr),
        other => panic!("expected AddrInUse, got {other:?}"),
    }
}

#[tokio::test]
async fn backend_connections_are_kept_alive_and_reused() {
    trace_init();
    let backend = Backend::start("a").await;
    let proxy = proxy_for(&[&backend]).await;
    let client = http1_client();

    for _ in 0..20 {
        assert_eq!(get(&client, &proxy, "/").await.0, StatusCode::OK);
    }
    // Streamed bodies (chunked both ways) end cleanly too and keep the connection.
    for _ in 0..5 {
        let req = http::Request::post(format!("http://{}/echo", proxy.local_addr()))
            .body(crate::support::full("abc"))
            .expect("valid request");
        assert_eq!(crate::support::send(&client, req).await.1, "abc");
    }
    assert_eq!(backend.hits(), 25);
    // The protocol probe (answered in HTTP/1.1), then one kept-alive
    // connection for every request.
    assert_eq!(backend.connections(), 2);
}
