use super::*;
use crate::runtime::{EnvelopeMsg, LogEntry, WeaveletMsg, weavelet_msg};

/// A tiny deterministic PRNG (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    fn string(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'a' + (self.next() % 26) as u8))
            .collect()
    }
}

fn entry(rng: &mut Rng) -> LogEntry {
    let n = rng.below(40);
    LogEntry {
        app: rng.string(5),
        msg: rng.string(n),
        line: rng.next() as i32,
        time_micros: rng.next() as i64,
        attrs: vec![rng.string(3), rng.string(n / 2)],
        ..Default::default()
    }
}

fn encode_all(msgs: &[LogEntry]) -> BytesMut {
    let mut codec = MessageCodec::<LogEntry, LogEntry>::default();
    let mut buf = BytesMut::new();
    for m in msgs {
        codec.encode(m.clone(), &mut buf).unwrap();
    }
    buf
}

#[test]
fn round_trips_in_arbitrary_chunks() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _case in 0..2_000 {
        let msgs: Vec<LogEntry> = (0..rng.below(8)).map(|_| entry(&mut rng)).collect();
        let wire = encode_all(&msgs);
        // Feed the bytes in random-sized chunks, as a pipe would deliver them.
        let mut codec = MessageCodec::<LogEntry, LogEntry>::default();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut pos = 0;
        while pos < wire.len() {
            let n = 1 + rng.below(wire.len() - pos);
            buf.extend_from_slice(&wire[pos..pos + n]);
            pos += n;
            while let Some(m) = codec.decode(&mut buf).unwrap() {
                got.push(m);
            }
        }
        assert_eq!(codec.decode_eof(&mut buf).unwrap(), None);
        assert_eq!(got, msgs);
    }
}

#[test]
fn truncated_streams_are_an_error_at_eof() {
    let mut rng = Rng(42);
    for _case in 0..2_000 {
        let msgs: Vec<LogEntry> = (0..1 + rng.below(4)).map(|_| entry(&mut rng)).collect();
        let wire = encode_all(&msgs);
        let cut = rng.below(wire.len()); // strictly shorter than the whole
        let mut codec = MessageCodec::<LogEntry, LogEntry>::default();
        let mut buf = BytesMut::from(&wire[..cut]);
        let mut whole = 0;
        let err = loop {
            match codec.decode_eof(&mut buf) {
                Ok(Some(_)) => whole += 1,
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        assert!(whole < msgs.len(), "a cut stream cannot hold every frame");
        // The cut either fell on a frame boundary (clean EOF) or inside one.
        let boundary = cut == encode_all(&msgs[..whole]).len();
        match err {
            None => assert!(boundary, "cut at {cut} inside a frame went unnoticed"),
            Some(FrameError::Truncated { got, want }) => {
                assert!(!boundary);
                assert!(got < want, "got {got} want {want}");
            }
            Some(other) => panic!("unexpected error {other:?}"),
        }

        // The blocking reader agrees.
        let mut r = &wire[..cut];
        let mut n = 0;
        let res = loop {
            match read_frame(&mut r, MAX_FRAME_LEN) {
                Ok(Some(_)) => n += 1,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        assert_eq!(n, whole);
        assert_eq!(res.is_ok(), boundary);
    }
}

#[test]
fn oversized_lengths_are_refused_before_allocating() {
    for claimed in [MAX_FRAME_LEN as u32 + 1, u32::MAX, 1 << 30] {
        let mut buf = BytesMut::new();
        buf.put_u32_le(claimed);
        buf.put_slice(b"xy");
        let cap_before = buf.capacity();
        let err = FrameCodec::default().decode(&mut buf).unwrap_err();
        assert!(
            matches!(err, FrameError::TooLarge { len, max } if len == u64::from(claimed) && max == MAX_FRAME_LEN),
            "{err:?}"
        );
        assert_eq!(buf.capacity(), cap_before, "no buffer grew for the claim");

        let mut r: &[u8] = &buf;
        let err = read_frame(&mut r, MAX_FRAME_LEN).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { .. }), "{err:?}");
    }
    // A small custom maximum applies to encoding too.
    let mut codec = FrameCodec::new(3);
    let err = codec
        .encode(&b"four"[..], &mut BytesMut::new())
        .unwrap_err();
    assert!(matches!(err, FrameError::TooLarge { len: 4, max: 3 }));
}

#[test]
fn random_garbage_never_panics() {
    let mut rng = Rng(7);
    for _case in 0..5_000 {
        let n = rng.below(64);
        let mut bytes = rng.bytes(n);
        // Make short plausible lengths common so the decoder reaches prost.
        if n >= 4 && rng.below(2) == 0 {
            let len = rng.below(n - 3) as u32;
            bytes[..4].copy_from_slice(&len.to_le_bytes());
        }
        let mut codec = MessageCodec::<WeaveletMsg, WeaveletMsg>::new(1 << 16);
        let mut buf = BytesMut::from(&bytes[..]);
        loop {
            match codec.decode_eof(&mut buf) {
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(FrameError::Decode { what, .. }) => {
                    assert_eq!(what, "WeaveletMsg");
                    break;
                }
                Err(FrameError::TooLarge { .. } | FrameError::Truncated { .. }) => break,
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
    }
}

#[test]
fn messages_survive_the_blocking_writer_and_reader() {
    let msg = WeaveletMsg {
        id: -7,
        msg: Some(weavelet_msg::Msg::LogEntryBatch(
            crate::runtime::LogEntryBatch {
                entries: vec![entry(&mut Rng(3))],
            },
        )),
        error: String::new(),
    };
    let mut out = Vec::new();
    write_message(&mut out, &msg).unwrap();
    write_message(&mut out, &msg).unwrap();
    let mut r = &out[..];
    for _ in 0..2 {
        let frame = read_frame(&mut r, MAX_FRAME_LEN).unwrap().unwrap();
        assert_eq!(decode_message::<WeaveletMsg>(&frame).unwrap(), msg);
    }
    assert!(read_frame(&mut r, MAX_FRAME_LEN).unwrap().is_none());
}

#[test]
fn maximum_is_capped_at_what_the_prefix_can_say() {
    // A bigger maximum would let `encode` truncate the length into the
    // 4-byte prefix and write a frame the peer misreads.
    assert_eq!(FrameCodec::new(usize::MAX).max(), u32::MAX as usize);
    assert_eq!(
        MessageCodec::<EnvelopeMsg, EnvelopeMsg>::new(usize::MAX)
            .frames
            .max(),
        u32::MAX as usize
    );
    assert_eq!(FrameCodec::new(7).max(), 7);
}

/// Property tests: whatever the bytes, the codecs answer with frames or an
/// error, never a panic.
mod props {
    use proptest::prelude::*;

    use super::*;

    fn config() -> ProptestConfig {
        ProptestConfig {
            cases: 256,
            // Failures print their minimal input; nothing is written to the tree.
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    /// Decodes `bytes` fed in `chunk`-sized pieces until the codec stops,
    /// then at end of stream; returns the frames and the error, if any.
    fn decode_chunked<D: Decoder<Error = FrameError>>(
        codec: &mut D,
        bytes: &[u8],
        chunk: usize,
    ) -> (Vec<D::Item>, Option<FrameError>) {
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for piece in bytes.chunks(chunk.max(1)) {
            buf.extend_from_slice(piece);
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(item)) => got.push(item),
                    Ok(None) => break,
                    Err(e) => return (got, Some(e)),
                }
            }
        }
        loop {
            match codec.decode_eof(&mut buf) {
                Ok(Some(item)) => got.push(item),
                Ok(None) => return (got, None),
                Err(e) => return (got, Some(e)),
            }
        }
    }

    /// Random bytes, often led by a plausible length prefix.
    fn garbage() -> impl Strategy<Value = Vec<u8>> {
        (
            any::<bool>(),
            0u32..48,
            prop::collection::vec(any::<u8>(), 0..96),
        )
            .prop_map(|(plausible, len, mut bytes)| {
                if plausible && bytes.len() >= PREFIX {
                    bytes[..PREFIX].copy_from_slice(&len.to_le_bytes());
                }
                bytes
            })
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn raw_frames_round_trip_in_any_chunks(
            payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..8),
            chunk in 1usize..64,
        ) {
            let mut codec = FrameCodec::new(300);
            let mut wire = BytesMut::new();
            for p in &payloads {
                codec.encode(&p[..], &mut wire).unwrap();
            }
            let (got, err) = decode_chunked(&mut codec, &wire, chunk);
            prop_assert!(err.is_none(), "{err:?}");
            let got: Vec<Vec<u8>> = got.iter().map(|f| f.to_vec()).collect();
            prop_assert_eq!(got, payloads);
        }

        #[test]
        fn random_bytes_never_panic_any_decoder(
            bytes in garbage(),
            max in 0usize..64,
            chunk in 1usize..16,
        ) {
            let (_, err) = decode_chunked(&mut FrameCodec::new(max), &bytes, chunk);
            if let Some(e) = err {
                let known = matches!(e, FrameError::TooLarge { .. } | FrameError::Truncated { .. });
                prop_assert!(known, "{e:?}");
            }
            let mut codec = MessageCodec::<EnvelopeMsg, EnvelopeMsg>::new(max);
            let _ = decode_chunked(&mut codec, &bytes, chunk);
            let mut r = &bytes[..];
            while let Ok(Some(_)) = read_frame(&mut r, max) {}
        }

        #[test]
        fn truncated_frames_are_an_error_at_eof(
            payload in prop::collection::vec(any::<u8>(), 0..200),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut wire = BytesMut::new();
            FrameCodec::default().encode(&payload[..], &mut wire).unwrap();
            let cut = 1 + cut.index(wire.len() - 1); // 1..len: never whole, never empty
            let (got, err) = decode_chunked(&mut FrameCodec::default(), &wire[..cut], cut);
            prop_assert!(got.is_empty());
            // Before the whole prefix arrives, only the prefix is known to be due.
            let due = if cut < PREFIX { PREFIX } else { wire.len() };
            let truncated = matches!(err, Some(FrameError::Truncated { got, want }) if got == cut && want == due);
            prop_assert!(truncated, "{err:?}");
            let mut r = &wire[..cut];
            let blocking = read_frame(&mut r, MAX_FRAME_LEN);
            prop_assert!(matches!(blocking, Err(FrameError::Truncated { .. })), "{blocking:?}");
        }

        #[test]
        fn oversized_lengths_are_refused_before_allocating_any(
            max in 0usize..4096,
            over in 1u32..=u32::MAX,
            tail in prop::collection::vec(any::<u8>(), 0..16),
        ) {
            let claimed = (max as u32).saturating_add(over);
            prop_assume!(claimed as usize > max);
            let mut buf = BytesMut::new();
            buf.put_u32_le(claimed);
            buf.put_slice(&tail);
            let cap_before = buf.capacity();
            let err = FrameCodec::new(max).decode(&mut buf);
            let refused = matches!(err, Err(FrameError::TooLarge { len, max: m }) if len == u64::from(claimed) && m == max);
            prop_assert!(refused, "{err:?}");
            prop_assert_eq!(buf.capacity(), cap_before);
            let mut r: &[u8] = &buf;
            let blocking = read_frame(&mut r, max);
            prop_assert!(matches!(blocking, Err(FrameError::TooLarge { .. })), "{blocking:?}");
        }
    }
}
