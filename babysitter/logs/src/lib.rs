//! The log store of `weaver multi` deployments and CEL queries over it.
//!
//! Two processes use this crate at the same time, on the same directory:
//!
//! - the **babysitter** (`weaver multi deploy`) owns a [`Writer`]: it appends
//!   every `LogEntry` its weavelets send, and every line its children print,
//!   and flushes after each batch and at teardown. Several babysitters may
//!   share a directory, since each writes only its own files;
//! - the **`weaver multi logs` CLI** reads while they write: [`cat`] prints
//!   what is stored, in time order, and [`follow`] keeps printing entries as
//!   they arrive, from files that exist and files created later. Both filter
//!   with a [`Query`], a CEL expression over the entry's fields.
//!
//! # Storage
//!
//! The caller passes the directory (for example `<data dir>/logs`). It holds
//! one file per (app, deployment, weavelet, level), named
//! `<app>#<deployment id>#<weavelet id>#<level>.log`, containing
//! length-prefixed `LogEntry` frames (a 4-byte little-endian length, then the
//! protobuf bytes; see [`weaver_proto::frame`]). Each file has exactly one
//! writer, so no locking is needed, and a reader only ever sees a file grow.
//! Readers skip a corrupt or truncated frame with a warning and carry on
//! with the next valid one; while following, a frame still being written at
//! the end of a file is simply waited for.
//!
//! This is Service Weaver's own design. An embedded database such as sled
//! would not do: it takes an exclusive lock, so the CLI could not open the
//! store while the babysitter runs.
//!
//! # Queries
//!
//! See [`Query`] for the variables and the dialect; file names let a query
//! such as `level == "error"` skip whole files without reading them.
//!
//! # Example
//!
//! ```no_run
//! use std::path::Path;
//!
//! use weaver_logs::{Format, Printer, Query, Writer};
//! use weaver_proto::runtime::LogEntry;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = Path::new("/var/lib/weaver/logs");
//!
//! // In the babysitter, for each batch a weavelet sends:
//! let mut writer = Writer::new(dir);
//! let mut e = LogEntry {
//!     app: "hello".into(),
//!     level: "info".into(),
//!     line: -1,
//!     msg: "hi".into(),
//!     ..Default::default()
//! };
//! writer.append(&mut e)?;
//! writer.flush()?;
//!
//! // In `weaver multi logs 'level == "info"'`, in another process:
//! let query = Query::parse(r#"level == "info""#, false)?;
//! let mut out = Printer::new(std::io::stdout().lock(), Format::Pretty { color: false });
//! weaver_logs::cat(dir, &query, &mut out)?;
//! # Ok(())
//! # }
//! ```

mod error;
mod output;
mod query;
mod read;
mod store;
mod view;

pub use error::{Error, EvalError, EvalErrors, Position, QueryError};
pub use output::{Format, Printer};
pub use query::Query;
pub use read::{Stop, cat, follow, for_each, purge};
pub use store::Writer;
