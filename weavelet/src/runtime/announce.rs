//! Announces a single-process run so `weaver single status` can list it.
//!
//! The process writes `<data>/single/registry/<deployment>.json` (atomically:
//! a temporary file, then a rename) whenever a component is built or a
//! listener created. Readers drop files whose process is gone. Failing to
//! write is not an error for the app: it only hides it from the tool. The
//! record's type lives in `weaver_proto::single`, which the CLI reads with.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Mutex;

use weaver_proto::single::{self, Registration};

/// The process's registration file.
pub(crate) struct Announcer {
    path: Option<PathBuf>,
    /// The record, rewritten on every change.
    record: Mutex<Registration>,
}

impl Announcer {
    pub(crate) fn new(app: &str, deployment_id: &str) -> Announcer {
        let path = weaver_proto::paths::data_dir()
            .map(|d| single::registration_path(&single::registry_dir(&d), deployment_id));
        Announcer {
            path,
            record: Mutex::new(Registration {
                deployment_id: deployment_id.to_string(),
                app: app.to_string(),
                pid: std::process::id(),
                started_at: crate::logger::now_micros(),
                components: BTreeSet::new(),
                listeners: BTreeMap::new(),
                metrics_addr: None,
            }),
        }
    }

    /// Records a built component.
    pub(crate) fn component(&self, name: &str) {
        let changed = self.lock().components.insert(name.to_string());
        if changed {
            self.write();
        }
    }

    /// Records a listener and its address.
    pub(crate) fn listener(&self, name: &str, address: String) {
        self.lock().listeners.insert(name.to_string(), address);
        self.write();
    }

    /// Records where the metrics endpoint listens.
    pub(crate) fn metrics(&self, addr: std::net::SocketAddr) {
        self.lock().metrics_addr = Some(addr.to_string());
        self.write();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registration> {
        self.record.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) {
        let Some(path) = &self.path else { return };
        let text = match serde_json::to_vec_pretty(&*self.lock()) {
            Ok(t) => t,
            Err(e) => {
                tracing::debug!(error = %e, "cannot encode the single-process registration");
                return;
            }
        };
        if let Err(e) = write_atomically(path, &text) {
            tracing::debug!(error = %e, path = %path.display(), "cannot write the single-process registration");
        }
    }
}

fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let tmp = path.with_extension(format!("json.tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
