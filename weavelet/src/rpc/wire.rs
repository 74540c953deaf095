//! The component RPC frame format.
//!
//! ```text
//! frame    := len:u32le kind:u8 id:u64le body      (len counts kind, id and body)
//! version  := version:u32le                        (kind 0, id 0; first frame each way)
//! request  := method_key:u64le deadline_us:u64le args   (kind 1; deadline relative, 0 = none)
//! response := result bytes                         (kind 2)
//! error    := code:u8 message                      (kind 3)
//!           | (code|0x80):u8 len:u32le message error   (a cause follows)
//! cancel   := (empty)                              (kind 4)
//! ```
//!
//! Method keys are 64-bit hashes of `"<component>.<method>"`. Application
//! errors travel in error frames with their kind, so they arrive as
//! application errors; everything else that fails over there arrives as a
//! remote error. An error a method body returned travels with its causes
//! (version 2), so a nested call's transport failure stays visible without
//! making the outer call look failed in transit.

use bytes::{Buf, Bytes};

/// Version of the RPC protocol.
pub(crate) const RPC_VERSION: u32 = 2;

/// Largest frame accepted: 100 MiB, as in Service Weaver.
pub(crate) const MAX_FRAME: usize = 100 << 20;

/// Bytes before a frame's body: length, kind and id.
pub(crate) const HEADER: usize = 4 + 1 + 8;

/// Frame kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Version = 0,
    Request = 1,
    Response = 2,
    Error = 3,
    Cancel = 4,
}

/// An error decoding frames.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WireError {
    #[error("frame of {0} bytes exceeds the maximum of {MAX_FRAME} bytes")]
    TooLarge(usize),
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
}

/// The whole length (header included) of the frame `buf` starts with, once
/// its length field has arrived.
pub(crate) fn frame_len(buf: &[u8]) -> Option<usize> {
    let len: [u8; 4] = buf.get(..4)?.try_into().ok()?;
    Some(4 + u32::from_le_bytes(len) as usize)
}

/// The kind, id and whole length of the frame at the start of `buf`, once
/// all of it has arrived.
///
/// # Errors
///
/// A frame too large or too short for its header, or of an unknown kind.
pub(crate) fn parse_header(buf: &[u8]) -> Result<Option<(Kind, u64, usize)>, WireError> {
    let Some(total) = frame_len(buf) else {
        return Ok(None);
    };
    if total - 4 > MAX_FRAME {
        return Err(WireError::TooLarge(total - 4));
    }
    if total < HEADER {
        return Err(WireError::Malformed("frame shorter than its header"));
    }
    if buf.len() < total {
        return Ok(None);
    }
    let kind = match buf[4] {
        0 => Kind::Version,
        1 => Kind::Request,
        2 => Kind::Response,
        3 => Kind::Error,
        4 => Kind::Cancel,
        _ => return Err(WireError::Malformed("unknown frame kind")),
    };
    let mut id = [0u8; 8];
    id.copy_from_slice(&buf[5..HEADER]);
    Ok(Some((kind, u64::from_le_bytes(id), total)))
}

/// Appends a frame to `out`.
pub(crate) fn put_frame_vec(out: &mut Vec<u8>, kind: Kind, id: u64, parts: &[&[u8]]) {
    let body: usize = parts.iter().map(|p| p.len()).sum();
    out.reserve(HEADER + body);
    out.extend_from_slice(&((HEADER - 4 + body) as u32).to_le_bytes());
    out.push(kind as u8);
    out.extend_from_slice(&id.to_le_bytes());
    for p in parts {
        out.extend_from_slice(p);
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
        let mut buf = Vec::new();
        put_frame_vec(
            &mut buf,
            Kind::Request,
            7,
            &[&1u64.to_le_bytes(), &0u64.to_le_bytes(), b"args"],
        );
        put_frame_vec(&mut buf, Kind::Cancel, 7, &[]);
        let (kind, id, len) = parse_header(&buf).unwrap().unwrap();
        assert_eq!((kind, id), (Kind::Request, 7));
        let req = parse_request(Bytes::copy_from_slice(&buf[HEADER..len])).unwrap();
        assert_eq!((req.method_key, &req.args[..]), (1, &b"args"[..]));
        let rest = &buf[len..];
        let (kind, id, len) = parse_header(rest).unwrap().unwrap();
        assert_eq!((kind, id, len - HEADER), (Kind::Cancel, 7, 0));
        assert!(parse_header(&rest[len..]).unwrap().is_none());
        // A partial frame is not a frame yet.
        assert!(
            parse_header(&buf[..buf.len() - 1 - HEADER])
                .unwrap()
                .is_none()
        );

        let huge = u32::MAX.to_le_bytes();
        assert!(matches!(parse_header(&huge), Err(WireError::TooLarge(_))));
        let mut bad_kind = Vec::new();
        put_frame_vec(&mut bad_kind, Kind::Cancel, 1, &[]);
        bad_kind[4] = 99;
        assert!(matches!(
            parse_header(&bad_kind),
            Err(WireError::Malformed(_))
        ));
        let short = [2u8, 0, 0, 0, 1, 1];
        assert!(matches!(parse_header(&short), Err(WireError::Malformed(_))));
        assert!(parse_request(Bytes::from_static(b"short")).is_err());
    }
}
