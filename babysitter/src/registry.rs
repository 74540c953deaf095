//! The registry of running deployments: one small JSON file per deployment,
//! so any process (`weaver multi status`, another deploy) can read it while
//! the babysitters run, with no shared database lock.
//!
//! A babysitter [registers](Registry::register) its deployment after its
//! status server is up and [unregisters](Registry::unregister) it at teardown.
//! A babysitter that was killed leaves its file behind; readers (the CLI)
//! check each [listed](Registry::list) registration against its status
//! server and unregister the dead ones.

use std::ffi::OsString;
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

/// Overrides the data directory (used by tests to isolate themselves).
pub use weaver_proto::paths::DATA_DIR_ENV;

/// What a registration file's name ends with.
const SUFFIX: &str = ".registration.json";

/// Numbers temporary files, so concurrent writers in one process never collide.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A registry directory.
#[derive(Debug, Clone)]
pub struct Registry {
    dir: PathBuf,
}

/// One running deployment, as recorded in the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// The deployment id (a UUID); also the file's name.
    pub deployment_id: String,
    /// The app's name.
    pub app: String,
    /// Where the babysitter's status server listens.
    pub status_addr: SocketAddr,
    /// The babysitter's process id.
    pub pid: u32,
    /// When the deployment started, in microseconds since the Unix epoch.
    pub started_at: i64,
}

/// An error using the registry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// None of `WEAVER_DATA_DIR`, `XDG_DATA_HOME` and `HOME` is set.
    #[error("cannot find a data directory: set WEAVER_DATA_DIR, XDG_DATA_HOME or HOME")]
    NoDataDir,
    /// A directory could not be created.
    #[error("cannot create directory {}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why creating it failed.
        #[source]
        source: std::io::Error,
    },
    /// The registry directory could not be listed.
    #[error("cannot list the registry {}", path.display())]
    List {
        /// The registry directory.
        path: PathBuf,
        /// Why listing failed.
        #[source]
        source: std::io::Error,
    },
    /// A registration could not be written.
    #[error("cannot write registration {}", path.display())]
    Write {
        /// The file being written.
        path: PathBuf,
        /// Why writing failed.
        #[source]
        source: std::io::Error,
    },
    /// A registration could not be removed.
    #[error("cannot remove registration {}", path.display())]
    Remove {
        /// The file.
        path: PathBuf,
        /// Why removing failed.
        #[source]
        source: std::io::Error,
    },
    /// A deployment id that cannot be a file name.
    #[error("invalid deployment id {id:?}: only letters, digits, '-' and '_' are allowed")]
    InvalidId {
        /// The id.
        id: String,
    },
}

/// The private directory (mode 0700) holding a deployment's Unix sockets,
/// removed at teardown.
pub fn runtime_dir(deployment_id: &str) -> PathBuf {
    std::env::temp_dir().join(format!("weaver-{deployment_id}"))
}

/// The data directory, created (mode 0700) if missing: `$WEAVER_DATA_DIR`,
/// else `$XDG_DATA_HOME/weaver`, else `$HOME/.local/share/weaver`.
///
/// # Errors
///
/// [`RegistryError::NoDataDir`] if no variable is set,
/// [`RegistryError::CreateDir`] if the directory cannot be created.
pub fn data_dir() -> Result<PathBuf, RegistryError> {
    let dir = data_dir_from(|name| std::env::var_os(name))?;
    create_private_dir(&dir)?;
    Ok(dir)
}

/// Picks the data directory from environment variables read by `var`.
fn data_dir_from(var: impl Fn(&str) -> Option<OsString>) -> Result<PathBuf, RegistryError> {
    weaver_proto::paths::data_dir_from(var).ok_or(RegistryError::NoDataDir)
}

fn create_private_dir(dir: &Path) -> Result<(), RegistryError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| RegistryError::CreateDir {
            path: dir.to_owned(),
            source,
        })
}

// === impl Registry ===

impl Registry {
    /// Opens the registry in `dir`, creating the directory (mode 0700) if
    /// missing.
    ///
    /// # Errors
    ///
    /// [`RegistryError::CreateDir`] if it cannot be created.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Registry, RegistryError> {
        let dir = dir.into();
        create_private_dir(&dir)?;
        Ok(Registry { dir })
    }

    /// Opens the default registry, `<data dir>/multi/registry`.
    ///
    /// # Errors
    ///
    /// The errors of [`data_dir`] and [`Registry::new`].
    pub fn open_default() -> Result<Registry, RegistryError> {
        Registry::new(data_dir()?.join("multi").join("registry"))
    }

    /// The registry directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Records a deployment. The file appears whole or not at all: it is
    /// written under a temporary name in the same directory, then renamed.
    ///
    /// # Errors
    ///
    /// [`RegistryError::InvalidId`] for an id that cannot be a file name,
    /// [`RegistryError::Write`] if writing fails.
    pub fn register(&self, registration: &Registration) -> Result<(), RegistryError> {
        let path = self.path_of(&registration.deployment_id)?;
        let json = serde_json::to_vec_pretty(registration)
            .expect("a registration is plain strings and numbers");
        // Names starting with '.' and not ending in SUFFIX are skipped by
        // readers, so a half-written temporary file is never listed.
        let tmp = self.dir.join(format!(
            ".{}{SUFFIX}.tmp.{}.{}",
            registration.deployment_id,
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed),
        ));
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create_new(&tmp)?;
            file.write_all(&json)?;
            // No fsync: a registration describes running processes, and after
            // a machine crash none of them runs anyway.
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|source| {
            let _ = std::fs::remove_file(&tmp);
            RegistryError::Write { path, source }
        })?;
        debug!(deployment = %registration.deployment_id, "registered");
        Ok(())
    }

    /// Removes a deployment's registration; removing one that is already gone
    /// succeeds.
    ///
    /// # Errors
    ///
    /// [`RegistryError::InvalidId`] or [`RegistryError::Remove`].
    pub fn unregister(&self, deployment_id: &str) -> Result<(), RegistryError> {
        let path = self.path_of(deployment_id)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(RegistryError::Remove { path, source }),
        }
    }

    /// Every registration, oldest first, without liveness checks. Files with
    /// other names are ignored; unreadable or corrupt ones are skipped with a
    /// warning.
    ///
    /// # Errors
    ///
    /// [`RegistryError::List`] if the directory cannot be read.
    pub fn list(&self) -> Result<Vec<Registration>, RegistryError> {
        let list_err = |source| RegistryError::List {
            path: self.dir.clone(),
            source,
        };
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(list_err)? {
            let entry = entry.map_err(list_err)?;
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(SUFFIX)) else {
                continue;
            };
            if id.starts_with('.') {
                continue;
            }
            if let Some(registration) = read_registration(&entry.path(), id) {
                out.push(registration);
            }
        }
        out.sort_by(|a, b| (a.started_at, &a.deployment_id).cmp(&(b.started_at, &b.deployment_id)));
        Ok(out)
    }

    fn path_of(&self, deployment_id: &str) -> Result<PathBuf, RegistryError> {
        let valid = !deployment_id.is_empty()
            && deployment_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(RegistryError::InvalidId {
                id: deployment_id.to_owned(),
            });
        }
        Ok(self.dir.join(format!("{deployment_id}{SUFFIX}")))
    }
}

/// Reads one registration file; `None` (with a warning) if it is unreadable,
/// corrupt or names another deployment than its file name.
fn read_registration(path: &Path, id: &str) -> Option<Registration> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        // Unregistered between listing and reading.
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return None,
        Err(err) => {
            warn!(path = %path.display(), error = %err, "cannot read registration; skipping it");
            return None;
        }
    };
    match serde_json::from_slice::<Registration>(&bytes) {
        Ok(registration) if registration.deployment_id == id => Some(registration),
        Ok(registration) => {
            warn!(path = %path.display(), deployment = %registration.deployment_id,
                "registration names another deployment than its file; skipping it");
            None
        }
        Err(err) => {
            warn!(path = %path.display(), error = %err, "corrupt registration; skipping it");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn pick(vars: &[(&str, &str)]) -> Result<PathBuf, RegistryError> {
        let vars: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
            .collect();
        data_dir_from(|name| vars.get(name).cloned())
    }

    #[test]
    fn data_dir_prefers_weaver_then_xdg_then_home() {
        let all = [
            ("WEAVER_DATA_DIR", "/w"),
            ("XDG_DATA_HOME", "/x"),
            ("HOME", "/h"),
        ];
        assert_eq!(pick(&all).unwrap(), Path::new("/w"));
        assert_eq!(pick(&all[1..]).unwrap(), Path::new("/x/weaver"));
        assert_eq!(
            pick(&all[2..]).unwrap(),
            Path::new("/h/.local/share/weaver")
        );
    }

    #[test]
    fn data_dir_skips_empty_and_relative_values() {
        let vars = [
            ("WEAVER_DATA_DIR", ""),
            ("XDG_DATA_HOME", "relative/dir"),
            ("HOME", "/h"),
        ];
        assert_eq!(pick(&vars).unwrap(), Path::new("/h/.local/share/weaver"));
        assert!(matches!(pick(&[]), Err(RegistryError::NoDataDir)));
    }
}
