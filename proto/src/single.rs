//! The registration a single-process run writes so `weaver single status`
//! can list it.
//!
//! The app runtime (the `weaver` crate) writes it and the CLI reads it; both
//! link this crate and neither links the other, so the record is typed here,
//! once. It is JSON in `<data dir>/single/registry/<deployment id>.json`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What a registration file's name ends with.
pub const SUFFIX: &str = ".json";

/// One single-process run, as recorded in the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// The deployment id (a UUID); also the file's name, and the node id in
    /// the run's log entries.
    pub deployment_id: String,
    /// The app's name.
    pub app: String,
    /// The process id.
    pub pid: u32,
    /// When the run started, in microseconds since the Unix epoch.
    pub started_at: i64,
    /// Every component built so far, by full name.
    #[serde(default)]
    pub components: BTreeSet<String>,
    /// Every listener created so far: name to the address it listens on.
    #[serde(default)]
    pub listeners: BTreeMap<String, String>,
    /// Where the process serves its metrics (`host:port` on loopback), at
    /// the paths of [`crate::metrics`]; none if it could not bind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_addr: Option<String>,
}

/// The registry directory under data directory `data_dir`.
pub fn registry_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("single").join("registry")
}

/// The file of deployment `deployment_id` in registry directory `dir`.
pub fn registration_path(dir: &Path, deployment_id: &str) -> PathBuf {
    dir.join(format!("{deployment_id}{SUFFIX}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The file format is read by other builds of the tool than the one that
    /// wrote it: its field names must not change by accident.
    #[test]
    fn registration_json_keeps_its_field_names() {
        let reg = Registration {
            deployment_id: "a4bba25b".into(),
            app: "hello".into(),
            pid: 42,
            started_at: 7,
            components: ["weaver::Main".to_owned()].into(),
            listeners: [("hello".to_owned(), "127.0.0.1:1".to_owned())].into(),
            metrics_addr: Some("127.0.0.1:2".to_owned()),
        };
        let json = serde_json::to_string(&reg).expect("encode");
        assert_eq!(
            json,
            r#"{"deployment_id":"a4bba25b","app":"hello","pid":42,"started_at":7,"components":["weaver::Main"],"listeners":{"hello":"127.0.0.1:1"},"metrics_addr":"127.0.0.1:2"}"#
        );
        let back: Registration = serde_json::from_str(&json).expect("decode");
        assert_eq!(back, reg);
        let bare: Registration =
            serde_json::from_str(r#"{"deployment_id":"x","app":"a","pid":1,"started_at":2}"#)
                .expect("decode without components and listeners");
        assert!(bare.components.is_empty() && bare.listeners.is_empty());
        assert_eq!(bare.metrics_addr, None);
    }

    #[test]
    fn files_live_under_single_registry() {
        let dir = registry_dir(Path::new("/data"));
        assert_eq!(dir, Path::new("/data/single/registry"));
        assert_eq!(
            registration_path(&dir, "abc"),
            Path::new("/data/single/registry/abc.json")
        );
    }
}
