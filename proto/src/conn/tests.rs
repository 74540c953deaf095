use super::*;
use crate::runtime::{ActivateComponentReply, ActivateComponentRequest, LogEntryBatch};
use crate::runtime::{envelope_msg, weavelet_msg};
use tokio::io::{DuplexStream, ReadHalf, WriteHalf};

type EnvSide = Conn<EnvelopeMsg, WeaveletMsg>;
type WvSide = Conn<WeaveletMsg, EnvelopeMsg>;

fn pair() -> (
    (EnvSide, Incoming<WeaveletMsg>),
    (WvSide, Incoming<EnvelopeMsg>),
) {
    let (a, b) = tokio::io::duplex(1 << 16);
    let (ar, aw) = tokio::io::split(a);
    let (br, bw) = tokio::io::split(b);
    (
        Conn::new(ar, aw, crate::MAX_FRAME_LEN),
        Conn::new(br, bw, crate::MAX_FRAME_LEN),
    )
}

fn activate(name: &str) -> WeaveletMsg {
    WeaveletMsg {
        msg: Some(weavelet_msg::Msg::ActivateComponentReq(
            ActivateComponentRequest {
                component: name.into(),
                routed: false,
            },
        )),
        ..Default::default()
    }
}

#[tokio::test]
async fn requests_are_numbered_from_one_and_replies_negated() {
    let ((env, mut env_in), (wv, _wv_in)) = pair();
    let server = tokio::spawn(async move {
        let mut seen = Vec::new();
        for _ in 0..3 {
            let req = env_in.recv().await.unwrap();
            seen.push(req.id);
            let reply = EnvelopeMsg {
                msg: Some(envelope_msg::Msg::ActivateComponentReply(
                    ActivateComponentReply {},
                )),
                ..Default::default()
            };
            if req.id == 2 {
                env.reply_error(req.id, "no such component".into()).unwrap();
            } else {
                env.reply(req.id, reply).unwrap();
            }
        }
        seen
    });
    let r1 = wv.call(activate("a")).await.unwrap();
    assert_eq!(r1.id, -1);
    let r2 = wv.call(activate("b")).await.unwrap_err();
    assert!(matches!(r2, ConnError::Remote(ref m) if m == "no such component"));
    let r3 = wv.call(activate("c")).await.unwrap();
    assert_eq!(r3.id, -3);
    assert_eq!(server.await.unwrap(), vec![1, 2, 3]);
}

#[tokio::test]
async fn one_way_messages_carry_id_zero_and_keep_order() {
    let ((_env, mut env_in), (wv, _wv_in)) = pair();
    for i in 0..100 {
        let batch = LogEntryBatch {
            entries: vec![crate::runtime::LogEntry {
                msg: format!("m{i}"),
                ..Default::default()
            }],
        };
        wv.send(WeaveletMsg {
            msg: Some(weavelet_msg::Msg::LogEntryBatch(batch)),
            ..Default::default()
        })
        .unwrap();
    }
    for i in 0..100 {
        let m = env_in.recv().await.unwrap();
        assert_eq!(m.id, 0);
        let Some(weavelet_msg::Msg::LogEntryBatch(b)) = m.msg else {
            panic!("wrong payload")
        };
        assert_eq!(b.entries[0].msg, format!("m{i}"));
    }
}

#[tokio::test]
async fn closing_fails_waiters_and_ends_incoming() {
    let ((env, mut env_in), (wv, mut wv_in)) = pair();
    let call = tokio::spawn({
        let wv = wv.clone();
        async move { wv.call(activate("x")).await }
    });
    // The request arrives; then the envelope side goes away without replying.
    assert_eq!(env_in.recv().await.unwrap().id, 1);
    drop(env);
    drop(env_in);
    let err = call.await.unwrap().unwrap_err();
    assert!(matches!(err, ConnError::Closed(_)), "{err:?}");
    assert!(wv_in.recv().await.is_none());
    assert!(wv.is_closed());
    assert!(matches!(wv.send(activate("y")), Err(ConnError::Closed(_))));
    assert!(wv.closed().await.contains("end of stream"));
}

#[tokio::test]
async fn garbage_from_the_peer_closes_with_a_decode_error() {
    use tokio::io::AsyncWriteExt;
    let (a, mut b) = tokio::io::duplex(1024);
    let (ar, aw) = tokio::io::split(a);
    let (wv, mut wv_in): (WvSide, _) = Conn::new(ar, aw, 1024);
    // A plausible length followed by bytes that are not a protobuf message.
    b.write_all(&[3, 0, 0, 0, 0xff, 0xff, 0xff]).await.unwrap();
    assert!(wv_in.recv().await.is_none());
    let reason = wv.closed().await;
    assert!(reason.contains("not a valid EnvelopeMsg"), "{reason}");
}

#[tokio::test]
async fn oversized_frames_close_without_allocating() {
    use tokio::io::AsyncWriteExt;
    let (a, mut b) = tokio::io::duplex(1024);
    let (ar, aw) = tokio::io::split(a);
    let (wv, mut wv_in): (WvSide, _) = Conn::new(ar, aw, 1024);
    b.write_all(&u32::MAX.to_le_bytes()).await.unwrap();
    assert!(wv_in.recv().await.is_none());
    let reason = wv.closed().await;
    assert!(reason.contains("exceeds the maximum of 1024"), "{reason}");
}

type RawReads = FramedRead<ReadHalf<DuplexStream>, MessageCodec<WeaveletMsg, EnvelopeMsg>>;
type RawWrites = FramedWrite<WriteHalf<DuplexStream>, MessageCodec<WeaveletMsg, EnvelopeMsg>>;

/// A weavelet side and a raw envelope side, which can write frames no `Conn`
/// would.
fn raw_peer() -> ((WvSide, Incoming<EnvelopeMsg>), RawReads, RawWrites) {
    let (a, b) = tokio::io::duplex(1 << 16);
    let (ar, aw) = tokio::io::split(a);
    let (br, bw) = tokio::io::split(b);
    (
        Conn::new(ar, aw, crate::MAX_FRAME_LEN),
        FramedRead::new(br, MessageCodec::new(crate::MAX_FRAME_LEN)),
        FramedWrite::new(bw, MessageCodec::new(crate::MAX_FRAME_LEN)),
    )
}

/// A reply id the reader cannot negate back to a request id.
#[tokio::test(start_paused = true)]
async fn a_reply_id_of_i64_min_fails_the_connection_and_its_callers() {
    let ((wv, mut wv_in), mut reads, mut writes) = raw_peer();
    let call = tokio::spawn({
        let wv = wv.clone();
        async move { wv.call(activate("x")).await }
    });
    assert_eq!(reads.next().await.unwrap().unwrap().id, 1);
    let bad = EnvelopeMsg {
        id: i64::MIN,
        ..Default::default()
    };
    writes.send(bad).await.unwrap();
    // Paused time moves only once every task is idle, so a call left
    // hanging fails here at once instead of hanging the test.
    let waited = tokio::time::timeout(std::time::Duration::from_secs(60), call).await;
    let err = waited.expect("the waiting call hung").unwrap().unwrap_err();
    assert!(
        matches!(&err, ConnError::Closed(r) if r.contains("protocol error")),
        "{err:?}"
    );
    assert!(wv.is_closed());
    assert!(wv_in.recv().await.is_none());
    assert!(wv.closed().await.contains(&i64::MIN.to_string()));
    assert!(matches!(
        wv.call(activate("y")).await,
        Err(ConnError::Closed(_))
    ));
}

/// Property tests: whatever frames the peer sends, the reader neither panics
/// nor leaves a call waiting once the stream ends.
mod props {
    use proptest::prelude::*;

    use super::*;

    /// What the peer sends: messages with these ids (and error texts), then
    /// maybe garbage, then end of stream.
    #[derive(Debug, Clone)]
    struct Script {
        calls: usize,
        msgs: Vec<(i64, bool)>,
        garbage: Vec<u8>,
    }

    fn id() -> impl Strategy<Value = i64> {
        prop_oneof![
            Just(i64::MIN),
            Just(i64::MIN + 1),
            Just(i64::MAX),
            Just(0),
            -8i64..8, // replies to the calls, and to requests never made
            any::<i64>(),
        ]
    }

    fn script() -> impl Strategy<Value = Script> {
        (
            0usize..5,
            prop::collection::vec((id(), any::<bool>()), 0..12),
            prop::collection::vec(any::<u8>(), 0..12),
        )
            .prop_map(|(calls, msgs, garbage)| Script {
                calls,
                msgs,
                garbage,
            })
    }

    /// Runs one script; every call and the connection itself must finish.
    async fn play(script: Script) -> Result<(), TestCaseError> {
        let ((wv, mut wv_in), mut reads, mut writes) = raw_peer();
        let calls: Vec<_> = (0..script.calls)
            .map(|i| {
                let wv = wv.clone();
                tokio::spawn(async move { wv.call(activate(&format!("c{i}"))).await })
            })
            .collect();
        for _ in 0..script.calls {
            prop_assert!(reads.next().await.is_some());
        }
        for (id, failed) in &script.msgs {
            let error = if *failed {
                "boom".to_string()
            } else {
                String::new()
            };
            let msg = EnvelopeMsg {
                id: *id,
                error,
                ..Default::default()
            };
            if writes.send(msg).await.is_err() {
                break; // the reader closed on a protocol error
            }
        }
        let mut raw = writes.into_inner();
        let _ = tokio::io::AsyncWriteExt::write_all(&mut raw, &script.garbage).await;
        // The stream ends once both halves are gone.
        drop((raw, reads));
        let limit = std::time::Duration::from_secs(60);
        for call in calls {
            let done = tokio::time::timeout(limit, call).await;
            prop_assert!(done.is_ok(), "a call hung");
            prop_assert!(done.unwrap().is_ok(), "a call panicked");
        }
        let closed = tokio::time::timeout(limit, wv.closed()).await;
        prop_assert!(closed.is_ok(), "the reader never closed the connection");
        while wv_in.recv().await.is_some() {}
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn any_frames_finish_every_call(script in script()) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build()
                .unwrap();
            rt.block_on(play(script))?;
        }
    }
}
