//! The frame codec on arbitrary bytes: every decoder answers with frames or
//! a `FrameError`, never a panic, and never allocates for a length it has
//! not received.
//!
//! The first byte picks the maximum frame size and the chunk size the bytes
//! arrive in, so small maxima (and so `TooLarge`) are common.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;
use weaver_proto::frame::{FrameCodec, MessageCodec, read_frame};
use weaver_proto::runtime::{EnvelopeMsg, WeaveletMsg};

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, bytes)) = data.split_first() else {
        return;
    };
    let max = usize::from(knobs & 0x0f) << (knobs >> 4);
    let chunk = usize::from(knobs % 7) + 1;
    drain(&mut FrameCodec::new(max), bytes, chunk);
    drain(
        &mut MessageCodec::<EnvelopeMsg, WeaveletMsg>::new(max),
        bytes,
        chunk,
    );
    drain(
        &mut MessageCodec::<WeaveletMsg, EnvelopeMsg>::new(max),
        bytes,
        chunk,
    );
    let mut r = bytes;
    while let Ok(Some(frame)) = read_frame(&mut r, max) {
        assert!(frame.len() <= max);
    }
});

/// Feeds `bytes` in `chunk`-sized pieces, then ends the stream.
fn drain<D: Decoder>(codec: &mut D, bytes: &[u8], chunk: usize) {
    let mut buf = BytesMut::new();
    for piece in bytes.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    while let Ok(Some(_)) = codec.decode_eof(&mut buf) {}
}
