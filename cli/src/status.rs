//! What `weaver multi status` and `weaver single status` print, and how
//! they learn it.
//!
//! Each babysitter serves its deployment's [`Status`](weaver_babysitter::Status)
//! on a loopback port recorded in the registry. `multi status` lists the
//! registry, keeps the [live](live::live) deployments (deleting the dead
//! ones), [fetches](client::fetch_status) their status and prints
//! [tables](render::render_status). The babysitter only serves; fetching and
//! printing happen here, in the one crate that needs them.

mod client;
mod live;
mod render;
#[cfg(test)]
mod tests;

pub(crate) use live::{live, process_exists};
pub(crate) use render::{color_enabled, render_status};
