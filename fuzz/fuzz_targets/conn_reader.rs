//! The connection reader on arbitrary bytes from the peer, with calls
//! waiting: the reader never panics, and once the stream ends every call
//! and the connection itself finish.
//!
//! The first byte says how many calls wait (0 to 3); the rest is what the
//! peer writes. Paused time fails a hung call at once instead of hanging.

#![no_main]

use std::time::Duration;

use futures_util::StreamExt;
use libfuzzer_sys::fuzz_target;
use tokio::io::AsyncWriteExt;
use tokio_util::codec::FramedRead;
use weaver_proto::frame::MessageCodec;
use weaver_proto::runtime::{EnvelopeMsg, WeaveletMsg};
use weaver_proto::{Conn, MAX_FRAME_LEN};

fuzz_target!(|data: &[u8]| {
    let Some((&calls, bytes)) = data.split_first() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime builds");
    rt.block_on(play(usize::from(calls % 4), bytes));
});

async fn play(calls: usize, bytes: &[u8]) {
    let (a, b) = tokio::io::duplex(1 << 16);
    let (ar, aw) = tokio::io::split(a);
    let (br, mut bw) = tokio::io::split(b);
    let (wv, mut incoming) = Conn::<WeaveletMsg, EnvelopeMsg>::new(ar, aw, MAX_FRAME_LEN);
    let waiting: Vec<_> = (0..calls)
        .map(|_| {
            let wv = wv.clone();
            tokio::spawn(async move { wv.call(WeaveletMsg::default()).await })
        })
        .collect();
    // The requests go out before the peer's bytes come in, so replies with
    // ids -1..-3 find their callers.
    let mut requests = FramedRead::new(
        br,
        MessageCodec::<WeaveletMsg, EnvelopeMsg>::new(MAX_FRAME_LEN),
    );
    for _ in 0..calls {
        assert!(requests.next().await.is_some());
    }
    let _ = bw.write_all(bytes).await;
    drop((bw, requests));
    let limit = Duration::from_secs(60);
    for call in waiting {
        let done = tokio::time::timeout(limit, call).await;
        assert!(done.expect("a call hung").is_ok(), "a call panicked");
    }
    let closed = tokio::time::timeout(limit, wv.closed()).await;
    assert!(closed.is_ok(), "the reader never closed the connection");
    while incoming.recv().await.is_some() {}
}
