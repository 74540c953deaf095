//! A CPU profile of the whole deployment at [`PROFILE_PATH`]
//! (`?seconds=N&type=cpu`): the gzipped pprof protobuf that `weaver multi
//! profile` writes to a file. A group that could not be profiled is named
//! in the [`PARTIAL_HEADER`] response header, and the others are still
//! served; if none could be, the answer is 502 with the reasons.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use weaver_proto::runtime::GetProfileRequest;

pub use weaver_proto::profile::{PARTIAL_HEADER, PROFILE_PATH};

/// What profiling a deployment produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profiled {
    /// The merged profile of every group that answered, gzipped; empty if
    /// none did.
    pub data: Vec<u8>,
    /// Why each other group has no profile, one sentence each.
    pub errors: Vec<String>,
}

/// Profiles the deployment on every request to [`PROFILE_PATH`], with a
/// request already checked to be valid. It takes as long as the profile
/// does.
pub type ProfileProvider =
    Arc<dyn Fn(GetProfileRequest) -> Pin<Box<dyn Future<Output = Profiled> + Send>> + Send + Sync>;

/// `errors` as one header value: joined by `; `, every byte a header may
/// not carry replaced by `?`.
pub(crate) fn header_value(errors: &[String]) -> String {
    errors
        .join("; ")
        .chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect()
}
