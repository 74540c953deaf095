//! `status --format=json`: the document scripts and tests read instead of
//! scraping the tables.
//!
//! The field names and their meaning are a stable interface: fields may be
//! added, never renamed, removed or given another meaning. The document is
//! one object, pretty-printed and ended by a newline:
//!
//! ```text
//! {
//!   "deployments": [
//!     {
//!       "app": "hello",
//!       "deployment_id": "a4bba25b-6312-4af1-beec-447c33b8e805",
//!       "started_at": "2023-11-14T22:12:14.600000Z",
//!       "age_secs": 65,
//!       "pid": 695100,
//!       "status_addr": "127.0.0.1:40001",
//!       "components": [
//!         {
//!           "name": "hello::Reverser",
//!           "group": "hello::Reverser",
//!           "replicas": [{ "pid": 695136, "weavelet_id": "d0c0ffee-…", "restarts": 0 }]
//!         }
//!       ],
//!       "listeners": [{ "name": "hello", "address": "127.0.0.1:12345" }]
//!     }
//!   ]
//! }
//! ```
//!
//! Everything is listed in the tables' order (see [`super::order`]).

use serde::Serialize;
use weaver_babysitter::{ComponentStatus, ListenerStatus, ReplicaStatus};

use super::{Listed, order};

/// The whole document.
#[derive(Debug, Serialize)]
struct Document<'a> {
    /// Every live deployment (or single-process run).
    deployments: Vec<Deployment<'a>>,
}

/// One deployment.
#[derive(Debug, Serialize)]
struct Deployment<'a> {
    /// The app's name.
    app: &'a str,
    /// The full deployment id (a UUID).
    deployment_id: &'a str,
    /// When it started: RFC 3339, UTC, microseconds.
    started_at: String,
    /// Whole seconds since it started (0 if its clock is ahead of ours).
    age_secs: u64,
    /// The process that runs it: the babysitter for `multi`, the app itself
    /// for `single`.
    pid: u32,
    /// Where its babysitter's status server listens; null for `single`.
    status_addr: Option<String>,
    /// Every component started so far.
    components: Vec<Component<'a>>,
    /// Every listener exported so far, with the address clients connect to
    /// (the proxy's for `multi`, the process's own for `single`).
    listeners: Vec<Listener<'a>>,
}

/// One component, and the replicas of its colocation group.
#[derive(Debug, Serialize)]
struct Component<'a> {
    /// The full component name, e.g. `hello::Reverser`.
    name: &'a str,
    /// The colocation group that runs it.
    group: &'a str,
    /// The group's replicas, by pid.
    replicas: Vec<Replica<'a>>,
}

/// One replica: a process running a weavelet.
#[derive(Debug, Serialize)]
struct Replica<'a> {
    /// Its process id.
    pid: u32,
    /// Its weavelet id (for `single`, the deployment id: the process is the
    /// run's one weavelet).
    weavelet_id: &'a str,
    /// How many times the babysitter restarted this replica (always 0 for
    /// `single`).
    restarts: u32,
}

/// One listener.
#[derive(Debug, Serialize)]
struct Listener<'a> {
    /// The listener's name.
    name: &'a str,
    /// Where clients connect.
    address: &'a str,
}

/// Renders `listed` as the JSON document, as of `now_micros`
/// (microseconds since the Unix epoch). The text ends with a newline.
pub(crate) fn render_json(listed: &[Listed], now_micros: i64) -> String {
    let mut sorted: Vec<&Listed> = listed.iter().collect();
    sorted.sort_by(|a, b| order::deployment(&a.status).cmp(&order::deployment(&b.status)));
    let document = Document {
        deployments: sorted
            .into_iter()
            .map(|l| deployment(l, now_micros))
            .collect(),
    };
    let mut text = serde_json::to_string_pretty(&document)
        .expect("the document is strings, numbers and lists");
    text.push('\n');
    text
}

fn deployment(listed: &Listed, now_micros: i64) -> Deployment<'_> {
    let s = &listed.status;
    let mut components: Vec<&ComponentStatus> = s.components.iter().collect();
    components.sort_by(|a, b| order::component(a).cmp(&order::component(b)));
    let mut listeners: Vec<&ListenerStatus> = s.listeners.iter().collect();
    listeners.sort_by(|a, b| order::listener(a).cmp(&order::listener(b)));
    Deployment {
        app: &s.app,
        deployment_id: &s.deployment_id,
        started_at: weaver_proto::logging::rfc3339_micros(s.submitted_at),
        age_secs: order::age(s.submitted_at, now_micros).as_secs(),
        pid: listed.pid,
        status_addr: listed.has_status_server.then(|| s.status_addr.to_string()),
        components: components.into_iter().map(component).collect(),
        listeners: listeners
            .into_iter()
            .map(|l| Listener {
                name: &l.name,
                address: &l.address,
            })
            .collect(),
    }
}

fn component(c: &ComponentStatus) -> Component<'_> {
    let mut replicas: Vec<&ReplicaStatus> = c.replicas.iter().collect();
    replicas.sort_by(|a, b| order::replica(a).cmp(&order::replica(b)));
    Component {
        name: &c.name,
        group: &c.group,
        replicas: replicas
            .into_iter()
            .map(|r| Replica {
                pid: r.pid,
                weavelet_id: &r.weavelet_id,
                restarts: r.restarts,
            })
            .collect(),
    }
}
