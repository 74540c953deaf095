//! Integration tests of `weaver-envelope`, in one binary (linking is slow on
//! two cores). Most spawn the fake weavelet (src/bin/fake-weavelet.rs).

mod common;

mod failures;
mod handshake;
mod in_memory;
mod lifecycle;
mod output;
