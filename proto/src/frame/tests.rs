use super::*;
use crate::runtime::{LogEntry, WeaveletMsg, weavelet_msg};

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
