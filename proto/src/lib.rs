//! The control-plane protocol between an envelope and a weavelet.
//!
//! This crate is linked by both ends of the pipe pair that joins the deployer
//! (its `weaver-envelope`, one per child) to the `weaver` runtime inside each
//! child process:
//!
//! - [`runtime`]: the protobuf messages, generated from `proto/runtime.proto`
//!   by prost-build and protox (no system `protoc` is needed);
//! - [`frame`]: the framing, a 4-byte little-endian length followed by the
//!   message bytes, with a maximum size checked before anything is allocated;
//! - [`conn`]: a request/reply connection over a frame stream, in which each
//!   side numbers its requests from 1 and a reply carries the negated id.
//!
//! [`paths`] and [`single`] hold what the app runtime and the tools share
//! outside the pipes: where state lives, and the single-process registration;
//! [`prometheus`] renders metrics as the Prometheus text format; [`profile`]
//! holds pprof profiles (encoding, scaling, merging).
//!
//! [`PROTOCOL_VERSION`] is exchanged in the handshake; both sides refuse a peer
//! that speaks another version.

pub mod conn;
pub mod frame;
pub mod logging;
pub mod metrics;
pub mod paths;
pub mod profile;
pub mod prometheus;
pub mod routing;
pub mod single;

/// Protobuf messages of the envelope/weavelet protocol (`weaver.runtime`).
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod runtime {
    include!(concat!(env!("OUT_DIR"), "/weaver.runtime.rs"));
}

pub use conn::{Conn, ConnError, Incoming, Message};
pub use frame::{FrameError, MAX_FRAME_LEN};

/// Version of the envelope/weavelet protocol.
///
/// Bump it on every change to `proto/runtime.proto` or to the meaning of a
/// message. The handshake fields (`WeaveletArgs.protocol_version` and
/// `WeaveletInfo.protocol_version`, both field 1) never change, so a mismatch
/// is always reported as one, never as a decode failure.
pub const PROTOCOL_VERSION: u32 = 5;

/// Environment variable naming the descriptor the weavelet reads from
/// (envelope → weavelet).
pub const ENVELOPE_TO_WEAVELET_FD: &str = "ENVELOPE_TO_WEAVELET_FD";

/// Environment variable naming the descriptor the weavelet writes to
/// (weavelet → envelope).
pub const WEAVELET_TO_ENVELOPE_FD: &str = "WEAVELET_TO_ENVELOPE_FD";

/// The descriptor number of the envelope → weavelet pipe in the child.
pub const ENVELOPE_TO_WEAVELET_FD_NUM: i32 = 3;

/// The descriptor number of the weavelet → envelope pipe in the child.
pub const WEAVELET_TO_ENVELOPE_FD_NUM: i32 = 4;

#[cfg(test)]
mod version_guard {
    /// FNV-1a, 64 bits: stable across platforms and releases.
    fn fnv1a(bytes: &[u8]) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    }

    #[test]
    fn runtime_proto_changes_bump_the_protocol_version() {
        let text = include_str!("../proto/runtime.proto");
        let got = format!("{:016x}", fnv1a(text.as_bytes()));
        // If runtime.proto changed, bump PROTOCOL_VERSION and update both
        // constants below.
        let (want_version, want_hash) = (5, "9e684a07ffd76480");
        assert_eq!(
            (super::PROTOCOL_VERSION, got.as_str()),
            (want_version, want_hash),
            "runtime.proto changed: bump PROTOCOL_VERSION and update this test"
        );
    }
}
