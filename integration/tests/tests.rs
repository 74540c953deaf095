//! End-to-end tests: real deployments driven through the `weaver` binary.
//!
//! One test binary (see STYLE.md): modules are prefixed by area.

mod dashboard;
mod deps;
mod examples;
mod hygiene;
mod lifecycle;
mod multi_correctness;
mod multi_deploy;
mod multi_metrics;
mod operator;
mod profile;
mod promtool;
mod single_deploy;
mod testing;
