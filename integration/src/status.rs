//! `weaver multi status --format=json` and `weaver single status
//! --format=json`, parsed: what tests read instead of scraping the boxed
//! tables. Unknown fields are ignored, as the format allows adding them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context as _, bail};
use serde::Deserialize;

use crate::{Deployment, weaver_in};

/// The whole document.
#[derive(Debug, Clone, Deserialize)]
pub struct StatusReport {
    /// Every live deployment (or single-process run).
    pub deployments: Vec<DeploymentStatus>,
}

/// One deployment.
#[derive(Debug, Clone, Deserialize)]
pub struct DeploymentStatus {
    /// The app's name.
    pub app: String,
    /// The full deployment id.
    pub deployment_id: String,
    /// When it started (RFC 3339, UTC).
    pub started_at: String,
    /// Whole seconds since it started.
    pub age_secs: u64,
    /// The babysitter's pid (`multi`) or the app's (`single`).
    pub pid: u32,
    /// The status server's address; `None` for `single`.
    pub status_addr: Option<String>,
    /// Every component started so far.
    pub components: Vec<ComponentStatus>,
    /// Every listener exported so far.
    pub listeners: Vec<ListenerStatus>,
}

/// One component and its group's replicas.
#[derive(Debug, Clone, Deserialize)]
pub struct ComponentStatus {
    /// The full component name.
    pub name: String,
    /// Its colocation group.
    pub group: String,
    /// The group's replicas.
    pub replicas: Vec<ReplicaStatus>,
}

/// One replica.
#[derive(Debug, Clone, Deserialize)]
pub struct ReplicaStatus {
    /// Its pid.
    pub pid: u32,
    /// Its full weavelet id.
    pub weavelet_id: String,
    /// How many times it was restarted.
    #[serde(default)]
    pub restarts: u32,
}

/// One listener.
#[derive(Debug, Clone, Deserialize)]
pub struct ListenerStatus {
    /// The listener's name.
    pub name: String,
    /// Where clients connect (the proxy, for `multi`).
    pub address: String,
}

/// Runs `weaver <tool> status --format=json` (`tool` is `multi` or
/// `single`) with data directory `data` and parses what it prints.
pub async fn status_in(data: &Path, tool: &str) -> anyhow::Result<StatusReport> {
    let out = weaver_in(data, &[tool, "status", "--format=json"]).await?;
    if !out.status.success() {
        bail!(
            "weaver {tool} status failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "weaver {tool} status --format=json printed:\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

// === impl StatusReport ===

impl StatusReport {
    /// The apps listed, each once.
    pub fn apps(&self) -> BTreeSet<&str> {
        self.deployments.iter().map(|d| d.app.as_str()).collect()
    }

    /// The deployment run by process `pid`.
    pub fn by_pid(&self, pid: u32) -> Option<&DeploymentStatus> {
        self.deployments.iter().find(|d| d.pid == pid)
    }
}

// === impl DeploymentStatus ===

impl DeploymentStatus {
    /// The component named `name`.
    pub fn component(&self, name: &str) -> Option<&ComponentStatus> {
        self.components.iter().find(|c| c.name == name)
    }

    /// The replica pids of component `name`; empty if it has not started.
    pub fn pids(&self, name: &str) -> BTreeSet<u32> {
        self.component(name)
            .map(|c| c.replicas.iter().map(|r| r.pid).collect())
            .unwrap_or_default()
    }

    /// Every component's replica pids, by component name.
    pub fn component_pids(&self) -> BTreeMap<String, BTreeSet<u32>> {
        self.components
            .iter()
            .map(|c| (c.name.clone(), self.pids(&c.name)))
            .collect()
    }

    /// The address of listener `name`.
    pub fn listener(&self, name: &str) -> Option<&str> {
        self.listeners
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.address.as_str())
    }
}

// === impl Deployment ===

impl Deployment {
    /// This deployment's entry in `weaver multi status --format=json`,
    /// found by its babysitter's pid.
    pub async fn status(&self) -> anyhow::Result<DeploymentStatus> {
        let report = status_in(self.data.path(), "multi").await?;
        report
            .by_pid(self.pid())
            .cloned()
            .with_context(|| format!("babysitter {} not in {report:?}", self.pid()))
    }
}
