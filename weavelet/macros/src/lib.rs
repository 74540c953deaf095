//! Procedural macros of Weaver for Rust.
