//! The component RPC frame format.
//!
//! ```text
//! frame    := len:u32le kind:u8 id:u64le body      (len counts kind, id and body)
//! version  := version:u32le                        (kind 0, id 0; first frame each way)
//! request  := method_key:u64le deadline_us:u64le args   (kind 1; deadline relative, 0 = none)
//! response := result bytes                         (kind 2)
//! error    := code:u8 message                      (kind 3)
//! cancel   := (empty)                              (kind 4)
//! ```
//!
//! Method keys are 64-bit hashes of `"<component>.<method>"`. Application
//! errors travel in error frames with their kind, so they arrive as
//! application errors; everything else that fails over there arrives as a
//! remote error.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::Decoder;

/// Version of the RPC protocol.
pub(crate) const RPC_VERSION: u32 = 1;

/// Largest frame accepted: 100 MiB, as in Service Weaver.
pub(crate) const MAX_FRAME: usize = 100 << 20;

const HEADER: usize = 4 + 1 + 8;

/// Frame kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Version = 0,
    Request = 1,
    Response = 2,
    Error = 3,
    Cancel = 4,
}

/// A decoded frame.
#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) kind: Kind,
    pub(crate) id: u64,
    pub(crate) body: Bytes,
}

/// An error decoding frames.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WireError {
    #[error("i/o error")]
    Io(#[from] std::io::Error),
    #[error("frame of {0} bytes exceeds the maximum of {MAX_FRAME} bytes")]
    TooLarge(usize),
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
}

/// Decodes frames.
#[derive(Debug, Default)]
pub(crate) struct FrameDecoder;

impl Decoder for FrameDecoder {
    type Item = Frame;
    type Error = WireError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, WireError> {
        if src.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_le_bytes([src[0], src[1], src[2], src[3]]) as usize;
        if len > MAX_FRAME {
            return Err(WireError::TooLarge(len));
        }
        if len < HEADER - 4 {
            return Err(WireError::Malformed("frame shorter than its header"));
        }
        if src.len() < 4 + len {
            return Ok(None);
        }
        src.advance(4);
        let kind = match src.get_u8() {
            0 => Kind::Version,
            1 => Kind::Request,
            2 => Kind::Response,
            3 => Kind::Error,
            4 => Kind::Cancel,
            _ => return Err(WireError::Malformed("unknown frame kind")),
        };
        let id = src.get_u64_le();
        let body = src.split_to(len - (HEADER - 4)).freeze();
        Ok(Some(Frame { kind, id, body }))
    }
}

/// Appends a frame to `out`.
pub(crate) fn put_frame(out: &mut BytesMut, kind: Kind, id: u64, parts: &[&[u8]]) {
    let body: usize = parts.iter().map(|p| p.len()).sum();
    out.reserve(HEADER + body);
    out.put_u32_le((HEADER - 4 + body) as u32);
    out.put_u8(kind as u8);
    out.put_u64_le(id);
    for p in parts {
        out.put_slice(p);
    }
}

/// A request body's fields.
pub(crate) struct Request {
    pub(crate) method_key: u64,
    pub(crate) deadline_us: u64,
    pub(crate) args: Bytes,
}

/// Parses a request body.
pub(crate) fn parse_request(mut body: Bytes) -> Result<Request, WireError> {
    if body.len() < 16 {
        return Err(WireError::Malformed("request shorter than its prefix"));
    }
    let method_key = body.get_u64_le();
    let deadline_us = body.get_u64_le();
    Ok(Request {
        method_key,
        deadline_us,
        args: body,
    })
}

/// The method key of `component.method`: FNV-1a 64 of the name.
pub(crate) fn method_key(component: &str, method: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in component.bytes().chain(".".bytes()).chain(method.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_bad_ones_are_errors() {
        let mut buf = BytesMut::new();
        put_frame(&mut buf, Kind::Request, 7, &[&1u64.to_le_bytes(), &0u64.to_le_bytes(), b"args"]);
        put_frame(&mut buf, Kind::Cancel, 7, &[]);
        let mut d = FrameDecoder;
        let f = d.decode(&mut buf).unwrap().unwrap();
        assert_eq!((f.kind, f.id), (Kind::Request, 7));
        let req = parse_request(f.body).unwrap();
        assert_eq!((req.method_key, &req.args[..]), (1, &b"args"[..]));
        let f = d.decode(&mut buf).unwrap().unwrap();
        assert_eq!((f.kind, f.id, f.body.len()), (Kind::Cancel, 7, 0));
        assert!(d.decode(&mut buf).unwrap().is_none());

        let mut huge = BytesMut::from(&u32::MAX.to_le_bytes()[..]);
        assert!(matches!(d.decode(&mut huge), Err(WireError::TooLarge(_))));
        let mut bad_kind = BytesMut::new();
        put_frame(&mut bad_kind, Kind::Cancel, 1, &[]);
        bad_kind[4] = 99;
        assert!(matches!(d.decode(&mut bad_kind), Err(WireError::Malformed(_))));
        let mut short = BytesMut::from(&[2u8, 0, 0, 0, 1, 1][..]);
        assert!(matches!(d.decode(&mut short), Err(WireError::Malformed(_))));
        assert!(parse_request(Bytes::from_static(b"short")).is_err());
    }
}
