//! `weaver`: deploy, inspect and tear down Weaver for Rust applications.

fn main() {}
