//! Blocking I/O stays off the paths that carry traffic: a babysitter whose
//! stdout nobody reads keeps proxying, and its log store still gets every
//! entry.

use std::time::Duration;

use weaver_integration::{Deployment, bins, config, http_get, wait_gone};

/// Requests sent while stdout is paused: each logs one `reversing` entry,
/// many times what a 64 KiB pipe holds as pretty-printed lines.
const REQUESTS: usize = 3000;
/// `reversing` entries in all: the first request's and the others'.
const LOGGED: usize = REQUESTS + 1;
/// Clients sending them at once.
const CLIENTS: usize = 4;
/// How long one request may take before the proxy counts as stalled.
const PER_REQUEST: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_terminal_stalls_neither_traffic_nor_the_log_store() -> anyhow::Result<()> {
    let hello = bins().bin("hello");
    let mut d = Deployment::start(&config("hello", &hello, "")).await?;
    d.ready().await?;
    let addr = d.listener("hello").await?;
    let (status, body) = http_get(&addr, "/hello?name=ab").await?;
    assert_eq!((status, body.as_str()), (200, "Hello, ba!"));
    let kids = d.children();

    // The operator's terminal stops reading (ctrl-s, a stuck `| less`).
    d.stdout.pause();
    let clients = (0..CLIENTS).map(|c| {
        let addr = addr.clone();
        async move {
            for i in (c..REQUESTS).step_by(CLIENTS) {
                let got = tokio::time::timeout(PER_REQUEST, http_get(&addr, "/hello?name=xy"))
                    .await
                    .map_err(|_| anyhow::anyhow!("request {i} stalled for {PER_REQUEST:?}"))??;
                anyhow::ensure!(
                    got == (200, "Hello, yx!".to_string()),
                    "request {i}: {got:?}"
                );
            }
            anyhow::Ok(())
        }
    });
    for r in futures_util::future::join_all(clients).await {
        r?;
    }

    // The terminal fell behind and says by how much; nothing it skipped is
    // unaccounted for.
    d.stdout.resume();
    d.stdout
        .wait_until("every entry shown or counted as skipped", |lines| {
            let (shown, skipped) = shown_and_skipped(lines);
            skipped > 0 && shown + skipped >= LOGGED
        })
        .await?;

    // Teardown flushes the store, which holds every entry.
    d.signal(nix::sys::signal::Signal::SIGINT);
    assert_eq!(d.wait().await?, 130);
    wait_gone(&kids, Duration::from_secs(5)).await?;
    let out = d
        .weaver(&["multi", "logs", "--format=json", r#"msg == "reversing""#])
        .await?;
    assert!(out.status.success(), "{out:?}");
    let stored = String::from_utf8(out.stdout)?.lines().count();
    assert_eq!(stored, LOGGED);
    Ok(())
}

/// How many `reversing` lines the terminal shows, and how many lines its
/// notices say it skipped.
fn shown_and_skipped(lines: &[String]) -> (usize, usize) {
    let shown = lines.iter().filter(|l| l.contains("reversing")).count();
    let skipped = lines
        .iter()
        .filter_map(|l| {
            let rest = l.strip_prefix("… ")?;
            let (n, tail) = rest.split_once(' ')?;
            tail.starts_with("log lines not shown")
                .then(|| n.parse::<usize>().ok())?
        })
        .sum();
    (shown, skipped)
}
