//! Bodies stream both ways, over HTTP/1.1 and h2c.

use bytes::Bytes;
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt, Channel};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use weaver_proxy::Proxy;

use crate::support::{
    Backend, ClientBody, Speaks, full, get, h2c_client, http1_client, parse_headers, proxy_for,
    send, trace_init, within,
};

const CHUNK: usize = 64 * 1024;
const CHUNKS: usize = 128; // 8 MiB in all

fn chunk(i: usize) -> Bytes {
    // Every chunk differs, so a dropped or reordered chunk is caught.
    Bytes::from(vec![(i % 251) as u8; CHUNK])
}

#[tokio::test]
async fn large_bodies_pass_through_intact() {
    large_bodies_pass_through(Speaks::Http1).await;
}

#[tokio::test]
async fn large_bodies_pass_through_an_h2c_backend_intact() {
    large_bodies_pass_through(Speaks::Auto).await;
}

async fn large_bodies_pass_through(speaks: Speaks) {
    trace_init();
    let backend = Backend::start_speaking("a", speaks).await;
    let proxy = proxy_for(&[&backend]).await;

    let (mut tx, body) = Channel::<Bytes, std::convert::Infallible>::new(4);
    let req = Request::post(format!("http://{}/echo", proxy.local_addr()))
        .body(body.boxed())
        .expect("valid request");
    let client = http1_client();
    let response = tokio::spawn(async move { client.request(req).await });
    for i in 0..CHUNKS {
        within("sending a chunk", tx.send_data(chunk(i)))
            .await
            .expect("send");
    }
    drop(tx);
    let response = within("the response", response)
        .await
        .expect("task")
        .expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    let echoed = within("the body", response.into_body().collect())
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(echoed.len(), CHUNK * CHUNKS);
    for (i, got) in echoed.chunks(CHUNK).enumerate() {
        assert!(got == chunk(i), "chunk {i} differs");
    }
}

/// Sends a chunk, then waits for it to come back before sending the next:
/// this finishes only if neither direction waits for a whole body.
async fn ping_pong(client: Client<HttpConnector, ClientBody>, proxy: &Proxy) {
    let (mut tx, body) = Channel::<Bytes, std::convert::Infallible>::new(1);
    let req = Request::post(format!("http://{}/echo", proxy.local_addr()))
        .body(body.boxed())
        .expect("valid request");
    within(
        "first chunk sent",
        tx.send_data(Bytes::from_static(b"ping 0")),
    )
    .await
    .expect("send");
    let response = within("response head", client.request(req))
        .await
        .expect("response");
    let mut body = response.into_body();
    for i in 0..5 {
        let expected = format!("ping {i}");
        let mut got = Vec::new();
        while got.len() < expected.len() {
            let frame = within("an echoed chunk", body.frame()).await;
            let frame = frame.expect("body not ended").expect("frame");
            got.extend_from_slice(&frame.into_data().expect("data frame"));
        }
        assert_eq!(got, expected.as_bytes());
        let next = Bytes::from(format!("ping {}", i + 1));
        within("next chunk sent", tx.send_data(next))
            .await
            .expect("send");
    }
}

#[tokio::test]
async fn bodies_stream_both_ways_over_http1() {
    trace_init();
    let backend = Backend::start("a").await;
    let proxy = proxy_for(&[&backend]).await;
    ping_pong(http1_client(), &proxy).await;
}

#[tokio::test]
async fn bodies_stream_both_ways_over_h2c() {
    trace_init();
    let backend = Backend::start("a").await;
    let proxy = proxy_for(&[&backend]).await;
    ping_pong(h2c_client(), &proxy).await;
}

#[tokio::test]
async fn bodies_stream_both_ways_to_an_h2c_backend() {
    trace_init();
    let backend = Backend::start_speaking("a", Speaks::Auto).await;
    let proxy = proxy_for(&[&backend]).await;
    ping_pong(http1_client(), &proxy).await;
    ping_pong(h2c_client(), &proxy).await;
    assert_eq!(get(&http1_client(), &proxy, "/version").await.1, "HTTP/2.0");
}

#[tokio::test]
async fn h2c_prior_knowledge_client_is_served() {
    trace_init();
    let backend = Backend::start("a").await;
    let proxy = proxy_for(&[&backend]).await;
    let client = h2c_client();

    let req = Request::get(format!("http://{}/", proxy.local_addr()))
        .body(full(""))
        .expect("valid request");
    let response = within("response", client.request(req))
        .await
        .expect("response");
    assert_eq!(response.version(), Version::HTTP_2);
    assert_eq!(response.status(), StatusCode::OK);

    // HTTP/2 carries the host as :authority; the backend must see it as Host.
    let (_, echo) = get(&client, &proxy, "/echo-headers").await;
    assert_eq!(
        parse_headers(&echo)["host"],
        [proxy.local_addr().to_string()]
    );

    let payload = Bytes::from(vec![7u8; 1024 * 1024]);
    let req = Request::post(format!("http://{}/echo", proxy.local_addr()))
        .body(full(payload.clone()))
        .expect("valid request");
    let (status, echoed) = send(&client, req).await;
    assert_eq!(status, StatusCode::OK);
    assert!(echoed.as_bytes() == payload, "h2c echo differs");
}
