//! Header rewriting: hop-by-hop headers, X-Forwarded-For, Host.

use http::{Request, StatusCode};

use crate::support::{
    Backend, empty, get, http1_client, parse_headers, proxy_for, send, trace_init,
};

#[tokio::test]
async fn hop_by_hop_headers_are_stripped_and_client_is_forwarded_for() {
    trace_init();
    let backend = Backend::start("a").await;
    let proxy = proxy_for(&[&backend]).await;
    let client = http1_client();

    let req = Request::get(format!("http://{}/echo-headers", proxy.local_addr()))
        .header("host", "app.example")
        .header("connection", "keep-alive, X-Hop")
        .header("x-hop", "1")
        .header("keep-alive", "timeout=5")
        .header("proxy-connection", "keep-alive")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("te", "trailers")
        .header("trailer", "x-checksum")
        .header("upgrade", "websocket")
        .header("x-forwarded-for", "10.0.0.1")
        .header("x-kept", "yes")
        .body(empty())
        .expect("valid request");
    let (status, echo) = send(&client, req).await;
    assert_eq!(status, StatusCode::OK);
    let seen = parse_headers(&echo);
    for hop in [
        "connection",
        "x-hop",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "te",
        "trailer",
        "upgrade",
        "transfer-encoding",
    ] {
        assert!(!seen.contains_key(hop), "{hop} was forwarded:\n{echo}");
    }
    assert_eq!(seen["host"], ["app.example"]);
    assert_eq!(seen["x-kept"], ["yes"]);
    assert_eq!(seen["x-forwarded-for"], ["10.0.0.1, 127.0.0.1"]);
}

#[tokio::test]
async fn forwarded_for_is_set_when_absent() {
    trace_init();
    let backend = Backend::start("a").await;
    let proxy = proxy_for(&[&backend]).await;

    let (_, echo) = get(&http1_client(), &proxy, "/echo-headers").await;
    let seen = parse_headers(&echo);
    assert_eq!(seen["x-forwarded-for"], ["127.0.0.1"]);
    // The client's own Host (here the proxy's address) reaches the backend.
    assert_eq!(seen["host"], [proxy.local_addr().to_string()]);
}

#[tokio::test]
async fn hop_by_hop_response_headers_are_stripped() {
    trace_init();
    let backend = Backend::start("a").await;
    let proxy = proxy_for(&[&backend]).await;

    let req = Request::get(format!("http://{}/hop-response", proxy.local_addr()))
        .body(empty())
        .expect("valid request");
    let response = http1_client().request(req).await.expect("response");
    let headers = response.headers();
    assert_eq!(headers["x-kept"], "yes");
    assert!(!headers.contains_key("x-resp-hop"), "{headers:?}");
    assert!(!headers.contains_key("keep-alive"), "{headers:?}");
}
