use std::collections::BTreeMap;
use std::sync::Arc;

use weaver_proto::runtime::{MetricDef, MetricValue};

use super::registry::{Kind, Registry, Snapshot, Update};
use super::{Counter, CounterMap, Gauge, GaugeMap, HistogramMap, MetricLabels, Origin, check_name};

#[derive(crate::MetricLabels)]
#[weaver(crate = "crate")]
struct Call {
    method: &'static str,
    #[weaver(label = "remote")]
    is_remote: bool,
    shard: u32,
    caller: String,
}

#[derive(crate::MetricLabels)]
#[weaver(crate = "crate")]
struct Id {
    id: u64,
}

/// What a poller keeps: every metric it was told about, by id.
#[derive(Debug, Default, PartialEq)]
struct Importer {
    metrics: BTreeMap<u64, (MetricDef, Option<MetricValue>)>,
}

impl Importer {
    fn apply(&mut self, update: Update) {
        for def in update.defs {
            if let Some((known, _)) = self.metrics.get(&def.id) {
                assert_eq!(*known, def, "a resent definition is unchanged");
            } else {
                self.metrics.insert(def.id, (def, None));
            }
        }
        for value in update.values {
            let Some((_, v)) = self.metrics.get_mut(&value.id) else {
                panic!("unknown metric {}", value.id);
            };
            *v = Some(value);
        }
    }

    fn value(&self, name: &str) -> f64 {
        let (_, v) = self
            .metrics
            .values()
            .find(|(d, _)| d.name == name)
            .unwrap_or_else(|| panic!("no metric {name}"));
        v.as_ref().map_or(f64::NAN, |v| v.value)
    }
}

#[test]
fn counter_from_two_threads_sums_every_update() {
    // Whole and fractional increments land in per-thread shards; a read
    // sums them all.
    static FRACTIONS: Counter = Counter::new("test_two_threads_fractions", "");
    static HITS: Counter = Counter::new("test_two_threads_hits", "");
    static BY_ID: CounterMap<Id> = CounterMap::new("test_two_threads_by_id", "");
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for i in 0..100_000 {
                    HITS.inc();
                    FRACTIONS.add(0.5);
                    BY_ID.get(&Id { id: i % 4 }).inc();
                }
            });
        }
    });
    assert_eq!(HITS.get(), 200_000.0);
    assert_eq!(FRACTIONS.get(), 100_000.0);
    for id in 0..4 {
        assert_eq!(BY_ID.get(&Id { id }).get(), 50_000.0);
    }
}

#[test]
fn counter_ignores_negative_and_nan() {
    static C: Counter = Counter::new("test_counter_ignores", "");
    C.add(2.5);
    C.add(-1.0);
    C.add(f64::NAN);
    C.inc();
    C.add(3.0);
    assert_eq!(C.get(), 6.5);
    assert_eq!(
        format!("{C:?}"),
        r#"Counter { name: "test_counter_ignores", value: Some(6.5) }"#
    );
}

#[test]
fn gauge_goes_up_and_down() {
    static G: Gauge = Gauge::new("test_gauge_up_down", "");
    G.set(5.0);
    G.add(1.5);
    G.sub(4.0);
    assert_eq!(G.get(), 2.5);
}

#[test]
fn map_finds_each_label_set_again() {
    static BY_ID: GaugeMap<Id> = GaugeMap::new("test_map_by_id", "");
    // Enough label sets to fill several trie levels.
    for id in 0..2_000 {
        BY_ID.get(&Id { id }).set(id as f64);
    }
    for id in 0..2_000 {
        let first = BY_ID.get(&Id { id });
        assert!(std::ptr::eq(first, BY_ID.get(&Id { id })));
        assert_eq!(first.get(), id as f64);
    }
}

#[test]
fn derive_names_labels_by_field_or_rename() {
    assert_eq!(Call::NAMES, ["method", "remote", "shard", "caller"]);
    let call = Call {
        method: "add",
        is_remote: true,
        shard: 7,
        caller: "weaver::Main".into(),
    };
    assert_eq!(call.values(), ["add", "true", "7", "weaver::Main"]);
    assert!(call.__same(&call.__copy()));
    let other = Call {
        shard: 8,
        ..call.__copy()
    };
    assert!(!call.__same(&other));
}

#[test]
fn decimal_bucket_agrees_with_the_search_on_every_edge() {
    let bounds = &super::method::BUCKETS;
    let search = |v: u64| bounds.partition_point(|b| *b < v as f64);
    let mut edges = vec![0, 1, 2, 3, u64::MAX, u64::MAX - 1, 1 << 53];
    for b in bounds {
        let b = *b as u64;
        edges.extend([b - 1, b, b + 1]);
    }
    for v in edges.into_iter().chain(0..100_000) {
        assert_eq!(super::registry::decimal_bucket(v), search(v), "value {v}");
    }
}

#[test]
fn histogram_from_many_threads_sums_every_value_and_count() {
    let reg = Registry::new();
    let h = reg.histogram("h", "", &super::method::BUCKETS);
    let g = reg.histogram("g", "", &[10.0, 100.0]);
    // More threads at once than there are shards to own, so some share
    // the last one; then as many again, on shards given back.
    let threads = 2 * super::registry::shards() as u64 + 2;
    let all_hold_a_shard = std::sync::Barrier::new(threads as usize / 2);
    std::thread::scope(|s| {
        for t in 0..threads {
            let (h, g, barrier) = (&h, &g, &all_hold_a_shard);
            s.spawn(move || {
                if t < threads / 2 {
                    h.put(0.0);
                    barrier.wait();
                }
                for i in 0..10_000u64 {
                    h.put((i % 1000) as f64);
                    g.put((t * 10_000 + i) as f64 + 0.5);
                }
            });
        }
    });
    let mut want = vec![0u64; 31];
    want[0] = threads / 2;
    for i in 0..1000u64 {
        want[super::registry::decimal_bucket(i)] += threads * 10;
    }
    assert_eq!(h.counts(), want);
    assert_eq!(h.sum(), (threads * 10 * 999 * 1000 / 2) as f64);
    let n = threads * 10_000;
    assert_eq!(g.count(), n);
    assert_eq!(g.counts(), [10, 90, n - 100]);
    assert_eq!(g.sum(), (0..n).map(|v| v as f64 + 0.5).sum::<f64>());
}

#[test]
fn histogram_value_on_a_bound_is_in_that_bucket() {
    let reg = Registry::new();
    let h = reg.histogram("h", "", &[1.0, 2.0]);
    for v in [0.5, 1.0, 1.5, 2.0, 3.0, f64::NAN] {
        h.put(v);
    }
    assert_eq!(h.counts(), [2, 2, 1]);
    assert_eq!(h.count(), 5);
    assert_eq!(h.sum(), 8.0);
}

#[test]
#[should_panic(expected = "metric \"dup\" already exists")]
fn duplicate_name_panics_naming_it() {
    let reg = Registry::new();
    reg.counter("dup", "");
    reg.gauge("dup", "");
}

#[test]
#[should_panic(expected = "metric \"h\": histogram bounds must be strictly ascending")]
fn descending_bounds_panic() {
    Registry::new().histogram("h", "", &[2.0, 1.0]);
}

#[test]
#[should_panic(expected = "a metric name has only ASCII letters, digits, `_` and `:`")]
fn invalid_name_panics() {
    check_name("shop-requests");
}

#[test]
#[should_panic(expected = "a metric name cannot be empty")]
fn empty_name_panics() {
    check_name("");
}

// `unsafe_code` is denied in this crate, and linkme's `link_section` counts:
// in an app's crate the lint does not see into the macro's output.
#[allow(unsafe_code)]
mod linked {
    use super::{CounterMap, Gauge, Id};

    #[crate::metric(crate = "crate")]
    pub(super) static LINKED: Gauge = Gauge::new("test_linked_idle", "never touched");

    #[crate::metric(crate = "crate")]
    pub(super) static LINKED_MAP: CounterMap<Id> = CounterMap::new("test_linked_map", "");
}

#[test]
fn linked_metric_is_reported_at_zero_without_use() {
    super::declare_all();
    let all = super::registry::global().snapshot();
    let linked = all
        .iter()
        .find(|s| s.def.name == "test_linked_idle")
        .expect("a #[metric] static is registered by declare_all");
    assert_eq!(linked.value.value, 0.0);
    // A family has no series before its first label set, but its name is
    // taken.
    assert!(!all.iter().any(|s| s.def.name == "test_linked_map"));
    let taken = std::panic::catch_unwind(|| {
        static SAME: Counter = Counter::new("test_linked_map", "");
        SAME.inc();
    });
    assert!(taken.is_err());
    let _ = (&linked::LINKED, &linked::LINKED_MAP);
}

#[test]
fn declared_metric_is_reported_at_zero() {
    static IDLE: Counter = Counter::new("test_declared_idle", "never updated");
    static IDLE_BY_ID: HistogramMap<Id> = HistogramMap::new("test_declared_idle_h", "", &[1.0]);
    IDLE.register();
    IDLE_BY_ID.get(&Id { id: 1 });
    let all = super::registry::global().snapshot();
    let find = |name: &str| {
        all.iter()
            .find(|s| s.def.name == name)
            .unwrap_or_else(|| panic!("{name} is not reported"))
    };
    assert_eq!(find("test_declared_idle").value.value, 0.0);
    let h = find("test_declared_idle_h");
    assert_eq!(h.value.counts, [0, 0]);
    assert_eq!(h.def.labels["id"], "1");
}

/// Polls a small registry four times, updating it in between; with `lose`,
/// the second reply never reaches the poller.
fn poll_with(lose: bool) -> (Importer, Vec<Update>) {
    let reg = Registry::new();
    let requests = reg.counter("requests", "");
    let queue = reg.gauge("queue", "");
    let sizes = reg.histogram("sizes", "", &[10.0]);
    let mut importer = Importer::default();
    let mut ack = 0;
    let mut replies = Vec::new();
    let mut poll = |importer: &mut Importer, lost: bool| {
        let update = reg.export(ack);
        replies.push(update.clone());
        if !lost {
            ack = update.seq;
            importer.apply(update);
        }
    };

    poll(&mut importer, false);
    requests.inc();
    queue.set(4.0);
    sizes.put(12.0);
    poll(&mut importer, lose);
    let family = reg.family("calls", "", Kind::Counter, &["method"], &[]);
    family_counter(&reg, &family, "add").add(2.0);
    requests.inc();
    poll(&mut importer, false);
    poll(&mut importer, false);
    (importer, replies)
}

fn family_counter(
    reg: &Registry,
    family: &super::registry::FamilyDef,
    method: &str,
) -> Arc<super::registry::CounterCell> {
    reg.counter_in(family, vec![method.to_owned()])
}

#[test]
fn lost_reply_then_next_poll_gives_same_totals() {
    let (kept, replies) = poll_with(false);
    let (lost, lost_replies) = poll_with(true);
    assert_eq!(kept, lost);
    assert_eq!(lost.value("requests"), 2.0);
    assert_eq!(lost.value("queue"), 4.0);
    assert_eq!(lost.value("sizes"), 12.0);
    assert_eq!(lost.value("calls"), 2.0);
    // Without loss, the third reply carries only what changed after the
    // second; after a loss it carries the second's changes too.
    let ids = |u: &Update| u.values.iter().map(|v| v.id).collect::<Vec<_>>();
    assert_eq!(ids(&replies[2]), [1, 4]);
    assert_eq!(ids(&lost_replies[2]), [1, 2, 3, 4]);
    // Once acknowledged, nothing is sent again.
    assert_eq!(replies[3].values, []);
    assert_eq!(lost_replies[3].values, []);
    assert_eq!(lost_replies[3].defs, []);
}

#[test]
fn first_reply_has_every_definition_and_a_fresh_poller_gets_them_again() {
    let reg = Registry::new();
    reg.counter("a", "");
    reg.gauge("b", "");
    let first = reg.export(0);
    assert_eq!(first.seq, 1);
    assert_eq!(first.defs.len(), 2);
    assert_eq!(first.values.len(), 2);
    assert_eq!(reg.export(first.seq).defs, []);
    // A poller that starts over (acknowledges nothing) gets everything.
    let again = reg.export(0);
    assert_eq!(again.defs.len(), 2);
    assert_eq!(again.values.len(), 2);
}

/// Polls `reg` through [`super::reply`] as the envelope does, echoing the
/// last `seq` it received; with `lose`, a reply never reaches it.
struct Poller {
    ack: u64,
    importer: Importer,
}

impl Poller {
    fn poll(&mut self, reg: &Registry, lose: bool) {
        let origin = Origin {
            app: "bank".to_owned(),
            version: "dep-1".to_owned(),
            node: "node-1".to_owned(),
        };
        let reply = super::reply(reg, self.ack, &origin);
        if lose {
            return;
        }
        let update = reply.update.expect("a reply carries an update");
        self.ack = reply.seq;
        self.importer.apply(Update {
            seq: reply.seq,
            defs: update.defs,
            values: update.values,
        });
    }
}

/// Two weavelet replies, the first lost on the way: the poller ends with
/// the totals it has when nothing is lost.
fn reply_totals(lose: bool) -> Importer {
    let reg = Registry::new();
    let requests = reg.counter("requests", "");
    let sizes = reg.histogram("sizes", "", &[10.0]);
    let mut poller = Poller {
        ack: 0,
        importer: Importer::default(),
    };
    poller.poll(&reg, false);
    requests.add(3.0);
    sizes.put(4.0);
    poller.poll(&reg, lose);
    requests.inc();
    poller.poll(&reg, false);
    poller.importer
}

#[test]
fn weavelet_reply_lost_then_next_poll_gives_same_totals_and_labels() {
    let kept = reply_totals(false);
    let lost = reply_totals(true);
    assert_eq!(kept, lost);
    assert_eq!(lost.value("requests"), 4.0);
    assert_eq!(lost.value("sizes"), 4.0);
    for (def, _) in lost.metrics.values() {
        let origin: Vec<_> = def
            .labels
            .iter()
            .filter(|(k, _)| k.starts_with("serviceweaver_"))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            origin,
            [
                ("serviceweaver_app", "bank"),
                ("serviceweaver_node", "node-1"),
                ("serviceweaver_version", "dep-1"),
            ],
            "labels of {}",
            def.name
        );
    }
}

fn golden_registry() -> Vec<Snapshot> {
    let reg = Registry::new();
    reg.counter("shop_requests", "Requests served, by \\path\nand more")
        .add(42.0);
    let family = reg.family("shop_errors", "", Kind::Counter, &["path", "code"], &[]);
    reg.counter_in(&family, vec!["/cart\"x\"".into(), "500".into()])
        .inc();
    reg.counter_in(&family, vec!["/a\\b\nc".into(), "404".into()]);
    reg.gauge("shop_queue", "Queued orders").set(-2.5);
    let sizes = reg.family(
        "shop_size_bytes",
        "Cart sizes",
        Kind::Histogram,
        &["region"],
        &[1.0, 10.0, 1e9],
    );
    let eu = reg.histogram_in(&sizes, vec!["eu".into()]);
    for v in [0.5, 1.0, 7.25, 12e9] {
        eu.put(v);
    }
    reg.histogram_in(&sizes, vec!["us".into()]);
    let generated = reg.family(
        "serviceweaver_method_count",
        "Count of Service Weaver component method invocations",
        Kind::Counter,
        &[
            "serviceweaver_app",
            "serviceweaver_version",
            "serviceweaver_node",
            "method",
        ],
        &[],
    );
    reg.counter_in(
        &generated,
        vec![
            "shop".into(),
            "0a1b2c3d-v".into(),
            "2f9a61c8-1234-4c2e-9e0f-1b2c3d4e5f60".into(),
            "add".into(),
        ],
    )
    .add(3.0);
    reg.snapshot()
}

#[test]
fn prometheus_text_matches_golden_file() {
    let mut text = String::new();
    weaver_proto::prometheus::header(&mut text, "127.0.0.1:9090", "/debug/weaver/prometheus");
    weaver_proto::prometheus::encode(&mut text, &golden_registry());
    let golden = include_str!("testdata/registry.prom");
    if text != golden {
        panic!("Prometheus text differs from testdata/registry.prom; got:\n{text}");
    }
}
