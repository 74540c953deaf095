//! What `weaver multi status` and `weaver single status` print, and how
//! they learn it.
//!
//! Each babysitter serves its deployment's [`Status`] on a loopback port
//! recorded in the registry. `multi status` lists the registry, keeps the
//! [live](live::live) deployments (deleting the dead ones),
//! [fetches](client::fetch_status) their status and prints
//! [tables](render::render_status) or [JSON](json::render_json). The
//! babysitter only serves; fetching and printing happen here, in the one
//! crate that needs them.

mod client;
mod json;
mod live;
mod order;
mod render;
#[cfg(test)]
mod tests;

use std::io::Write as _;

use weaver_babysitter::Status;

pub(crate) use client::{
    FetchError, FetchedProfile, fetch_methods, fetch_metrics, fetch_profile, fetch_prometheus,
    fetch_status, fetch_summed_metrics,
};
pub(crate) use live::{live, process_exists};
pub(crate) use render::{STYLE, color_enabled, short_component, short_id};

/// How `status` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum Format {
    /// Boxed tables for people.
    #[default]
    Table,
    /// One JSON document for scripts; its fields are stable.
    Json,
}

/// One deployment as `status` lists it.
#[derive(Debug, Clone)]
pub(crate) struct Listed {
    /// The process that runs it: the babysitter for `multi`, the app itself
    /// for `single`.
    pub(crate) pid: u32,
    /// Whether `status.status_addr` means anything (it does for `multi`).
    pub(crate) has_status_server: bool,
    /// Its status.
    pub(crate) status: Status,
}

/// Prints `listed` to stdout in `format`.
///
/// # Errors
///
/// If stdout cannot be written (a broken pipe is left to `main`).
pub(crate) fn print(listed: Vec<Listed>, format: Format) -> anyhow::Result<()> {
    let text = format_listed(listed, format, crate::now_micros(), color_enabled());
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// The text [`print()`] prints, as of `now_micros`; `color` applies to tables
/// only.
fn format_listed(listed: Vec<Listed>, format: Format, now_micros: i64, color: bool) -> String {
    match format {
        Format::Table => {
            let statuses: Vec<Status> = listed.into_iter().map(|l| l.status).collect();
            render::render_status(&statuses, now_micros, color)
        }
        Format::Json => json::render_json(&listed, now_micros),
    }
}
