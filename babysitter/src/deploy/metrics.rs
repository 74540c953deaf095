//! The deployment's metrics: what each replica's weavelet last reported,
//! polled on demand and every few seconds by the deployment's poller, and the
//! per-method [`History`] those polls build.
//!
//! A replica is one process, polled once however many components it hosts
//! (Go polls a colocated group once per member and counts it twice).
//! Replies are deltas, definitions once and then the absolute values of
//! what changed; the next poll acknowledges the reply it applied, so a reply
//! lost to a timeout is sent again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::history::{self, History, Methods};

use tokio::time::Instant;
use tracing::{debug, warn};
use weaver_envelope::Envelope;
use weaver_proto::metrics::MethodStats;
use weaver_proto::prometheus::Snapshot;
use weaver_proto::runtime::{GetMetricsReply, MetricDef, MetricValue};

/// The metrics of every live replica, by weavelet id.
pub(crate) struct Store {
    /// How long a replica may take to answer before it is skipped.
    timeout: Duration,
    /// Guards the replica map and the history, together, so a replica
    /// leaves both at once; never held across an await. Each replica's own
    /// lock orders its polls, so its replies are applied in the order they
    /// were asked for.
    state: Mutex<State>,
}

struct State {
    /// Every replica polled so far and still live, by weavelet id.
    replicas: HashMap<String, Arc<tokio::sync::Mutex<Replica>>>,
    /// What their methods counted, and snapshots of the totals.
    history: History,
    /// Replicas whose last poll failed: warned about once, until they
    /// answer again (the timer polls every few seconds).
    failing: HashSet<String>,
}

/// What one replica reported so far.
#[derive(Debug, Default)]
pub(crate) struct Replica {
    /// The `seq` of the last reply applied (0: none).
    ack: u64,
    /// Definitions, by metric id.
    defs: BTreeMap<u64, MetricDef>,
    /// Latest values, by metric id.
    values: BTreeMap<u64, MetricValue>,
}

// === impl Store ===

impl Store {
    /// A store for a deployment that started at `started`, whose replicas
    /// may take `timeout` to answer a poll.
    pub(crate) fn new(timeout: Duration, started: Instant) -> Self {
        Self {
            timeout,
            state: Mutex::new(State {
                replicas: HashMap::new(),
                history: History::new(started),
                failing: HashSet::new(),
            }),
        }
    }

    /// Polls every replica of `envelopes` at once and returns the series of
    /// those that answered in time (a replica that did not is skipped with
    /// a warning, and its last-known method counts are kept). Replicas no
    /// longer in `envelopes` are forgotten, their method counts kept in the
    /// history's totals. Records the totals in the history when done.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a reply lost to cancellation is sent again by the next
    /// poll.
    pub(crate) async fn poll(&self, envelopes: &[Arc<Envelope>]) -> Vec<Snapshot> {
        let targets: Vec<_> = {
            let mut st = self.lock();
            let State {
                replicas,
                history,
                failing,
            } = &mut *st;
            replicas.retain(|id, _| {
                let live = envelopes.iter().any(|e| weavelet_id(e) == id);
                if !live {
                    history.depart(id);
                    failing.remove(id);
                }
                live
            });
            envelopes
                .iter()
                .map(|e| {
                    let replica = replicas.entry(weavelet_id(e).to_owned()).or_default();
                    (e.clone(), replica.clone())
                })
                .collect()
        };
        let polls = targets.iter().map(|(e, r)| self.poll_one(e, r));
        let metrics = futures_util::future::join_all(polls)
            .await
            .into_iter()
            .flatten()
            .collect();
        self.lock().history.record(Instant::now());
        metrics
    }

    /// One row per method (per caller too if `by_caller`), from what the
    /// polls so far collected, as of `now`.
    pub(crate) fn methods(&self, now: Instant, by_caller: bool) -> Vec<MethodStats> {
        self.lock().history.stats(now, by_caller)
    }

    /// When the last poll ended.
    #[cfg(test)]
    pub(crate) fn last_poll(&self) -> Option<Instant> {
        self.lock().history.last_record()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets `replica`'s method counts in the history, unless it has left
    /// meanwhile (a concurrent poll saw it gone and moved its counts to the
    /// departed: adding them again would count them twice).
    fn update_history(
        &self,
        weavelet: &str,
        replica: &Arc<tokio::sync::Mutex<Replica>>,
        methods: Methods,
    ) {
        let mut st = self.lock();
        if st
            .replicas
            .get(weavelet)
            .is_some_and(|r| Arc::ptr_eq(r, replica))
        {
            st.history.update(weavelet, methods);
        }
    }

    async fn poll_one(
        &self,
        envelope: &Envelope,
        replica: &Arc<tokio::sync::Mutex<Replica>>,
    ) -> Vec<Snapshot> {
        let weavelet = weavelet_id(envelope);
        let polled = tokio::time::timeout(self.timeout, async {
            let mut r = replica.lock().await;
            let reply = envelope.get_metrics(r.ack).await?;
            r.apply(reply);
            self.update_history(weavelet, replica, r.methods());
            Ok::<_, weaver_envelope::Error>(r.snapshot())
        })
        .await;
        let error = match polled {
            Ok(Ok(metrics)) => {
                self.lock().failing.remove(weavelet);
                return metrics;
            }
            Ok(Err(error)) => format!("cannot get a replica's metrics: {error}"),
            Err(_) => format!(
                "a replica did not send its metrics within {:?}",
                self.timeout
            ),
        };
        if self.lock().failing.insert(weavelet.to_owned()) {
            warn!(%weavelet, "{error}; skipping it until it answers");
        } else {
            debug!(%weavelet, "{error}; skipping it");
        }
        Vec::new()
    }
}

fn weavelet_id(envelope: &Envelope) -> &str {
    &envelope.handle().args().id
}

// === impl Replica ===

impl Replica {
    /// Applies one reply: new definitions, then values (absolute, so a
    /// resent value does no harm).
    pub(crate) fn apply(&mut self, reply: GetMetricsReply) {
        let update = reply.update.unwrap_or_default();
        for def in update.defs {
            self.defs.entry(def.id).or_insert(def);
        }
        for value in update.values {
            if self.defs.contains_key(&value.id) {
                self.values.insert(value.id, value);
            } else {
                warn!(
                    id = value.id,
                    "a metric value without a definition; dropped"
                );
            }
        }
        self.ack = reply.seq;
    }

    /// What its methods counted.
    pub(crate) fn methods(&self) -> Methods {
        let zero = MetricValue::default();
        history::methods_of(
            self.defs
                .values()
                .map(|def| (def, self.values.get(&def.id).unwrap_or(&zero))),
        )
    }

    /// Every series, with its latest value (0 until one arrives).
    pub(crate) fn snapshot(&self) -> Vec<Snapshot> {
        self.defs
            .values()
            .map(|def| Snapshot {
                def: def.clone(),
                value: self.values.get(&def.id).cloned().unwrap_or(MetricValue {
                    id: def.id,
                    value: 0.0,
                    counts: vec![0; def.bounds.len() + 1],
                }),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use weaver_proto::runtime::{MetricType, MetricUpdate};

    use super::*;

    fn counter(id: u64) -> MetricDef {
        MetricDef {
            id,
            name: format!("c{id}"),
            typ: MetricType::Counter as i32,
            ..MetricDef::default()
        }
    }

    fn value(id: u64, v: f64) -> MetricValue {
        MetricValue {
            id,
            value: v,
            counts: Vec::new(),
        }
    }

    fn reply(seq: u64, defs: Vec<MetricDef>, values: Vec<MetricValue>) -> GetMetricsReply {
        GetMetricsReply {
            update: Some(MetricUpdate { defs, values }),
            seq,
        }
    }

    #[test]
    fn replica_keeps_definitions_once_and_latest_absolute_values() {
        let mut r = Replica::default();
        r.apply(reply(1, vec![counter(1), counter(2)], vec![value(1, 0.0)]));
        r.apply(reply(2, vec![], vec![value(1, 3.0), value(9, 1.0)]));
        // A resent definition (a poller that lost a reply) changes nothing.
        r.apply(reply(3, vec![counter(1)], vec![value(1, 5.0)]));
        assert_eq!(r.ack, 3);
        let got: Vec<_> = r
            .snapshot()
            .into_iter()
            .map(|s| (s.def.name, s.value.value))
            .collect();
        assert_eq!(got, [("c1".to_owned(), 5.0), ("c2".to_owned(), 0.0)]);
    }
}
