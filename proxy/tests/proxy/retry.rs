//! Failed backends: retry after a failed connect, and 502s.

use http::{Request, StatusCode, header};

use crate::support::{
    Backend, dead_addr, empty, full, get, http1_client, proxy_for, send, trace_init,
};

#[tokio::test]
async fn get_to_a_dead_backend_is_retried_on_another() {
    trace_init();
    let live = Backend::start("live").await;
    let proxy = proxy_for(&[&live]).await;
    proxy.add_backend(dead_addr().await);
    let client = http1_client();

    // Idle backends take turns, so half of these pick the dead one first.
    for _ in 0..10 {
        assert_eq!(
            get(&client, &proxy, "/").await,
            (StatusCode::OK, "live".to_owned())
        );
    }
    assert_eq!(live.hits(), 10);
}

#[tokio::test]
async fn post_with_a_body_is_not_retried() {
    trace_init();
    let live = Backend::start("live").await;
    let proxy = proxy_for(&[&live]).await;
    proxy.add_backend(dead_addr().await);
    let client = http1_client();

    let mut answers = Vec::new();
    for _ in 0..6 {
        let req = Request::post(format!("http://{}/", proxy.local_addr()))
            .body(full("payload"))
            .expect("valid request");
        answers.push(send(&client, req).await);
    }
    let failed: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::BAD_GATEWAY)
        .collect();
    assert!(!failed.is_empty(), "no POST picked the dead backend");
    assert!(failed.iter().all(|(_, body)| body == "backend error\n"));
    assert_eq!(live.hits(), answers.len() - failed.len());
}

#[tokio::test]
async fn post_without_a_body_is_retried() {
    trace_init();
    let live = Backend::start("live").await;
    let proxy = proxy_for(&[&live]).await;
    proxy.add_backend(dead_addr().await);
    let client = http1_client();

    for _ in 0..6 {
        let req = Request::post(format!("http://{}/", proxy.local_addr()))
            .header(header::CONTENT_LENGTH, "0")
            .body(empty())
            .expect("valid request");
        assert_eq!(send(&client, req).await.0, StatusCode::OK);
    }
    assert_eq!(live.hits(), 6);
}

#[tokio::test]
async fn no_backend_gives_a_plain_502() {
    trace_init();
    let proxy = proxy_for(&[]).await;
    let client = http1_client();

    let response = client
        .request(
            Request::get(format!("http://{}/", proxy.local_addr()))
                .body(empty())
                .expect("valid request"),
        )
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/plain; charset=utf-8"
    );
    assert_eq!(
        get(&client, &proxy, "/").await,
        (StatusCode::BAD_GATEWAY, "no backend available\n".to_owned())
    );
}

#[tokio::test]
async fn only_dead_backends_give_502() {
    trace_init();
    let proxy = proxy_for(&[]).await;
    proxy.add_backend(dead_addr().await);
    proxy.add_backend(dead_addr().await);
    let client = http1_client();

    assert_eq!(
        get(&client, &proxy, "/").await,
        (StatusCode::BAD_GATEWAY, "backend error\n".to_owned())
    );
}

#[tokio::test]
async fn get_with_a_body_is_retried_whole() {
    trace_init();
    let live = Backend::start("live").await;
    let proxy = proxy_for(&[&live]).await;
    proxy.add_backend(dead_addr().await);
    let client = http1_client();

    // The connect fails before any byte of the body is read, so the body
    // reaches the other backend intact.
    for _ in 0..4 {
        let req = Request::get(format!("http://{}/echo", proxy.local_addr()))
            .body(full("query body"))
            .expect("valid request");
        assert_eq!(
            send(&client, req).await,
            (StatusCode::OK, "query body".to_owned())
        );
    }
    assert_eq!(live.hits(), 4);
}

/// A backend that accepts connections, reads a request and hangs up
/// without answering: a replica killed mid-request.
async fn hang_up_backend() -> std::net::SocketAddr {
    use tokio::io::AsyncReadExt;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            drop(s);
        }
    });
    addr
}

#[tokio::test]
async fn a_get_cut_off_mid_exchange_is_replayed_on_another_backend() {
    trace_init();
    let live = Backend::start("live").await;
    let proxy = proxy_for(&[&live]).await;
    proxy.add_backend(hang_up_backend().await);
    let client = http1_client();
    for _ in 0..10 {
        assert_eq!(
            get(&client, &proxy, "/").await,
            (StatusCode::OK, "live".to_owned())
        );
    }
    assert_eq!(live.hits(), 10);

    // A POST with a body may have been acted on: it is not sent twice.
    let mut failed = 0;
    for _ in 0..6 {
        let req = Request::post(format!("http://{}/", proxy.local_addr()))
            .body(full("payload"))
            .expect("valid request");
        if send(&client, req).await.0 == StatusCode::BAD_GATEWAY {
            failed += 1;
        }
    }
    assert!(failed > 0, "no POST picked the hanging-up backend");
}
