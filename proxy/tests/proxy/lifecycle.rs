//! Shutdown: drain in flight, refuse new connections, close after the grace.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use http::StatusCode;
use tokio::net::TcpStream;

use crate::support::{Backend, get, http1_client, proxy_for, trace_init, within};

/// Waits until connecting to `addr` is refused, i.e. its listener is closed.
async fn wait_refused(addr: SocketAddr) {
    within("the listener to close", async {
        loop {
            match TcpStream::connect(addr).await {
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => return,
                _ => tokio::task::yield_now().await,
            }
        }
    })
    .await;
}

#[tokio::test]
async fn shutdown_finishes_in_flight_and_refuses_new_connections() {
    trace_init();
    let backend = Backend::start("a").await;
    let proxy = proxy_for(&[&backend]).await;
    let client = http1_client();
    // Leaves an idle keep-alive connection that shutdown must close too.
    assert_eq!(get(&client, &proxy, "/").await.0, StatusCode::OK);

    let held = tokio::spawn({
        let (client, proxy) = (client.clone(), proxy.clone());
        async move { get(&client, &proxy, "/hold").await }
    });
    backend.wait_held().await;
    let shutdown = tokio::spawn({
        let proxy = proxy.clone();
        async move { proxy.shutdown(Duration::from_secs(30)).await }
    });
    wait_refused(proxy.local_addr()).await;
    assert!(
        !shutdown.is_finished(),
        "shutdown did not wait for the request"
    );

    backend.release();
    let answer = within("the held request", held).await.expect("task");
    assert_eq!(answer, (StatusCode::OK, "a".to_owned()));
    within("shutdown", shutdown).await.expect("task");
    // Pooled keep-alive connections to the backend are closed too.
    backend.wait_all_closed().await;
}

#[tokio::test]
async fn shutdown_closes_what_is_left_after_the_grace() {
    trace_init();
    let backend = Backend::start("a").await;
    let proxy = proxy_for(&[&backend]).await;
    let client = http1_client();

    let held = tokio::spawn({
        let (client, proxy) = (client.clone(), proxy.clone());
        async move {
            let req = http::Request::get(format!("http://{}/hold", proxy.local_addr()))
                .body(crate::support::empty())
                .expect("valid request");
            client.request(req).await.map(|r| r.status())
        }
    });
    backend.wait_held().await;
    within("shutdown", proxy.shutdown(Duration::from_millis(50))).await;
    let outcome = within("the held request", held).await.expect("task");
    assert!(
        outcome.is_err(),
        "held request should be cut off: {outcome:?}"
    );
    backend.release();
}

#[tokio::test]
async fn dropping_every_handle_stops_accepting() {
    trace_init();
    let backend = Backend::start("a").await;
    let proxy = proxy_for(&[&backend]).await;
    let addr = proxy.local_addr();
    let client = http1_client();
    assert_eq!(get(&client, &proxy, "/").await.0, StatusCode::OK);

    drop(proxy);
    wait_refused(addr).await;
}
