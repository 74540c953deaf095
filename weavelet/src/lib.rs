//! Weaver for Rust.
