//! Where Weaver keeps its state on this machine, shared by the app runtime
//! (single-process registrations) and the tools (registry, log store).

use std::ffi::OsString;
use std::path::PathBuf;

/// The environment variable that overrides the data directory.
pub const DATA_DIR_ENV: &str = "WEAVER_DATA_DIR";

/// The data directory chosen from environment variables read by `var`:
/// `$WEAVER_DATA_DIR`, else `$XDG_DATA_HOME/weaver` (absolute paths only,
/// as the XDG spec says), else `$HOME/.local/share/weaver`. `None` if none
/// is set.
pub fn data_dir_from(var: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let set = |name: &str| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = set(DATA_DIR_ENV) {
        return Some(dir);
    }
    if let Some(dir) = set("XDG_DATA_HOME").filter(|d| d.is_absolute()) {
        return Some(dir.join("weaver"));
    }
    set("HOME").map(|home| home.join(".local/share/weaver"))
}

/// [`data_dir_from`] over the process environment.
pub fn data_dir() -> Option<PathBuf> {
    data_dir_from(|name| std::env::var_os(name))
}
