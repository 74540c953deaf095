//! What the deployer knows: groups and their replicas, started components,
//! subscribers and proxies. Guarded by `Shared::state`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::OnceCell;
use weaver_envelope::{Envelope, Handle};
use weaver_proto::runtime::RoutingInfo;
use weaver_proxy::Proxy;

use super::routing;

/// A proxy created on first export (or the error that prevented it).
pub(crate) type ProxyCell = Arc<OnceCell<Arc<Proxy>>>;

#[derive(Default)]
pub(crate) struct State {
    pub(crate) groups: HashMap<String, Group>,
    /// Started components, with whether each is routed.
    pub(crate) started: BTreeMap<String, bool>,
    /// Subscribers of each component, by weavelet id.
    pub(crate) subscribers: HashMap<String, HashMap<String, Handle>>,
    pub(crate) proxies: HashMap<String, ProxyCell>,
    /// Components the binary declares (from the first handshake).
    pub(crate) known_components: Vec<String>,
    /// Every listener the binary's components declare, from the first
    /// handshake.
    pub(crate) known_listeners: Vec<String>,
}

/// A colocation group.
#[derive(Default)]
pub(crate) struct Group {
    /// Started components the group hosts.
    pub(crate) components: BTreeSet<String>,
    /// Live replicas.
    pub(crate) replicas: Vec<Replica>,
    /// Bumped on every change of the replica set.
    pub(crate) version: u64,
    /// Set once the group's first replicas are up.
    pub(crate) start: Arc<OnceCell<()>>,
    /// Restarts so far, by replica index.
    pub(crate) restarts: BTreeMap<u32, u32>,
}

/// One live replica.
pub(crate) struct Replica {
    pub(crate) index: u32,
    pub(crate) weavelet_id: String,
    pub(crate) pid: u32,
    pub(crate) dial_addr: String,
    pub(crate) envelope: Arc<Envelope>,
    /// Listeners it exported: (name, address).
    pub(crate) listeners: Vec<(String, SocketAddr)>,
}

impl State {
    /// Marks `component` (in `group`) started; true the first time.
    pub(crate) fn mark_started(&mut self, component: &str, group: &str, routed: bool) -> bool {
        if self.started.contains_key(component) {
            return false;
        }
        self.started.insert(component.to_string(), routed);
        self.group_mut(group)
            .components
            .insert(component.to_string());
        true
    }

    pub(crate) fn group_mut(&mut self, group: &str) -> &mut Group {
        self.groups.entry(group.to_string()).or_default()
    }

    pub(crate) fn subscribe(&mut self, component: &str, handle: Handle) {
        self.subscribers
            .entry(component.to_string())
            .or_default()
            .insert(handle.args().id.clone(), handle);
    }

    /// The current routing of `component`.
    pub(crate) fn routing_of(&self, component: &str) -> RoutingInfo {
        let routed = self.started.get(component).copied().unwrap_or(false);
        let group = self.group_name_of(component);
        let (replicas, version) = match group.and_then(|g| self.groups.get(g)) {
            Some(g) => (g.dial_addrs(), g.version),
            None => (Vec::new(), 0),
        };
        routing::routing_info(component, routed, &replicas, version)
    }

    fn group_name_of(&self, component: &str) -> Option<&str> {
        self.groups
            .iter()
            .find(|(_, g)| g.components.contains(component))
            .map(|(name, _)| name.as_str())
    }

    /// Routing to push to every subscriber of every component of `group`;
    /// forgets subscribers whose pipe has closed.
    pub(crate) fn group_pushes(&mut self, group: &str) -> Vec<(Handle, RoutingInfo)> {
        let components: Vec<String> = match self.groups.get(group) {
            Some(g) => g.components.iter().cloned().collect(),
            None => return Vec::new(),
        };
        let mut pushes = Vec::new();
        for c in components {
            let info = self.routing_of(&c);
            if let Some(subs) = self.subscribers.get_mut(&c) {
                subs.retain(|_, h| !h.is_closed());
                pushes.extend(subs.values().map(|h| (h.clone(), info.clone())));
            }
        }
        pushes
    }

    /// Removes a replica; returns it with the proxies it may have joined.
    pub(crate) fn remove_replica(
        &mut self,
        group: &str,
        weavelet_id: &str,
    ) -> Option<(Replica, HashMap<String, Arc<Proxy>>)> {
        let g = self.groups.get_mut(group)?;
        let i = g
            .replicas
            .iter()
            .position(|r| r.weavelet_id == weavelet_id)?;
        let replica = g.replicas.remove(i);
        g.version += 1;
        for subs in self.subscribers.values_mut() {
            subs.remove(weavelet_id);
        }
        let proxies = self
            .proxies
            .iter()
            .filter_map(|(n, c)| c.get().map(|p| (n.clone(), p.clone())))
            .collect();
        Some((replica, proxies))
    }

    pub(crate) fn proxy_cell(&mut self, name: &str) -> ProxyCell {
        self.proxies.entry(name.to_string()).or_default().clone()
    }

    pub(crate) fn record_listener(
        &mut self,
        group: &str,
        weavelet_id: &str,
        name: &str,
        addr: SocketAddr,
    ) {
        if let Some(r) = self
            .groups
            .get_mut(group)
            .and_then(|g| g.replicas.iter_mut().find(|r| r.weavelet_id == weavelet_id))
        {
            r.listeners.push((name.to_string(), addr));
        }
    }

    pub(crate) fn all_envelopes(&self) -> Vec<Arc<Envelope>> {
        self.groups.values().flat_map(|g| g.envelopes()).collect()
    }
}

impl Group {
    pub(crate) fn add_replica(&mut self, replica: Replica) {
        self.replicas.push(replica);
        self.replicas.sort_by_key(|r| r.index);
        self.version += 1;
    }

    pub(crate) fn envelopes(&self) -> Vec<Arc<Envelope>> {
        self.replicas.iter().map(|r| r.envelope.clone()).collect()
    }

    fn dial_addrs(&self) -> Vec<String> {
        self.replicas.iter().map(|r| r.dial_addr.clone()).collect()
    }
}
