//! Component RPC: the data plane between weavelets.
//!
//! One multiplexed connection per peer carries many calls at once, each
//! with a request id, the caller's deadline and a method key; a caller that
//! gives up sends a cancel frame. Connections run over Unix domain sockets
//! in the deployment's private directory, or over TCP.

mod client;
mod io;
mod server;
mod slice;
mod tune;
pub(crate) mod wire;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::PathBuf;

pub(crate) use client::Connection;
pub(crate) use server::{Dispatcher, Server};

/// Where a weavelet serves component RPC.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Addr {
    /// A Unix domain socket.
    Unix(PathBuf),
    /// A TCP address, `host:port`.
    Tcp(String),
}

impl Addr {
    /// Parses `unix:///path` or `tcp://host:port`.
    pub(crate) fn parse(s: &str) -> Option<Addr> {
        if let Some(path) = s.strip_prefix("unix://") {
            Some(Addr::Unix(PathBuf::from(path)))
        } else {
            s.strip_prefix("tcp://").map(|a| Addr::Tcp(a.to_string()))
        }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Unix(p) => write!(f, "unix://{}", p.display()),
            Addr::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

/// Hashes `u64` keys that need no real hashing (request ids, method keys
/// that are already hashes) with one multiplication, which spreads
/// sequential ids over the table.
#[derive(Default)]
pub(crate) struct U64Hasher(u64);

impl std::hash::Hasher for U64Hasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}
