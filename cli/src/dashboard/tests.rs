use std::collections::BTreeMap;

use weaver_babysitter::{
    ComponentStatus, ListenerStatus, MethodStats, MethodWindow, Metric, MetricKind, ReplicaStatus,
    Status,
};

use super::{graph, html, methods, pages, parse_query};

fn status() -> Status {
    let replica = |pid, id: &str| ReplicaStatus {
        pid,
        weavelet_id: id.to_owned(),
        index: 0,
        // The Main replica with pid 12 was restarted twice.
        restarts: if pid == 12 { 2 } else { 0 },
    };
    Status {
        app: "hello".into(),
        deployment_id: "a4bba25b-6312-4af1-beec-447c33b8e805".into(),
        submitted_at: 1_000_000,
        status_addr: "127.0.0.1:4000".parse().expect("an address"),
        components: vec![
            ComponentStatus {
                name: "weaver::Main".into(),
                group: "main".into(),
                replicas: vec![replica(11, "11111111-aaaa"), replica(12, "12121212-bbbb")],
            },
            ComponentStatus {
                name: "hello::Reverser".into(),
                group: "hello::Reverser".into(),
                replicas: vec![replica(21, "21212121-cccc")],
            },
        ],
        listeners: vec![ListenerStatus {
            name: "hello".into(),
            address: "127.0.0.1:12345".into(),
        }],
        sections: [(
            "hello::Reverser".to_owned(),
            "greeting = \"<hi>\"\n".to_owned(),
        )]
        .into(),
    }
}

fn count(caller: &str, component: &str, value: f64) -> Metric {
    let labels: BTreeMap<String, String> = [
        ("caller", caller),
        ("component", component),
        ("method", "reverse"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    Metric {
        name: "serviceweaver_method_count".into(),
        kind: MetricKind::Counter,
        help: String::new(),
        labels,
        value,
        bounds: vec![],
        counts: vec![],
    }
}

#[test]
fn edges_add_up_replicas_and_leave_out_the_runtime() {
    let metrics = [
        count("weaver::Main", "hello::Reverser", 3.0),
        count("weaver::Main", "hello::Reverser", 2.0),
        count("weaver::weaveletControl", "weaver::Main", 7.0),
        count("", "hello::Reverser", 1.0),
    ];
    let edges = graph::edges(&metrics);
    let want: graph::Edges = [(("weaver::Main".into(), "hello::Reverser".into()), 5)].into();
    assert_eq!(edges, want);
    let svg = graph::svg(&["weaver::Main", "hello::Reverser", "weaver::Ctl"], &edges);
    assert!(svg.contains(
        "<g class=\"edge\" data-from=\"weaver::Main\" data-to=\"hello::Reverser\" data-calls=\"5\">"
    ));
    assert_eq!(svg.matches("<g class=\"node\"").count(), 2, "{svg}");
    assert!(!svg.contains("weaver::Ctl"));
    // The caller sits left of the callee.
    let x = |name: &str| {
        let at = svg
            .find(&format!("data-component=\"{name}\""))
            .expect("a node");
        let rest = &svg[at..];
        let x = rest.split("x=\"").nth(1).expect("an x");
        x.split('"')
            .next()
            .expect("a number")
            .parse::<u32>()
            .expect("a number")
    };
    assert!(x("weaver::Main") < x("hello::Reverser"));
}

#[test]
fn cycles_and_self_calls_still_lay_out() {
    let edges: graph::Edges = [
        (("a::A".into(), "b::B".into()), 1),
        (("b::B".into(), "a::A".into()), 1),
        (("b::B".into(), "b::B".into()), 1),
    ]
    .into();
    let svg = graph::svg(&[], &edges);
    assert_eq!(svg.matches("<g class=\"edge\"").count(), 3, "{svg}");
    assert_eq!(svg.matches("<g class=\"node\"").count(), 2, "{svg}");
}

#[test]
fn the_deployment_page_shows_components_methods_and_listeners() {
    let window = |calls| MethodWindow {
        seconds: 60.0,
        calls,
        errors: 0,
        mean_latency_micros: 1500.0,
        p50_micros: 1000.0,
        p99_micros: 3000.0,
        request_bytes: 10,
        reply_bytes: 2048,
    };
    let extra = pages::Extra {
        methods: Ok(vec![MethodStats {
            component: "hello::Reverser".into(),
            method: "reverse".into(),
            caller: None,
            minute: window(2),
            hour: window(5),
            total: window(5),
        }]),
        metrics: Err("connection refused".into()),
    };
    let page = pages::deployment(&status(), &extra, pages::Tool::Multi, 66_000_000);
    assert!(
        page.contains("<td class=\"mono address\">127.0.0.1:12345</td>"),
        "{page}"
    );
    assert!(page.contains(
        "data-component=\"weaver::Main\" data-replicas=\"2\" data-pids=\"11 12\" data-restarts=\"2\""
    ));
    assert!(page.contains("data-component=\"hello::Reverser\" data-replicas=\"1\" data-pids=\"21\" data-restarts=\"0\""));
    // The config sections, escaped.
    assert!(
        page.contains("<code>[\"hello::Reverser\"]</code><pre class=\"mono\">greeting = &quot;&lt;hi&gt;&quot;</pre>"),
        "{page}"
    );
    assert!(
        page.contains("data-method=\"reverse\" data-calls=\"5\""),
        "{page}"
    );
    assert!(
        page.contains("data-field=\"calls\" data-window=\"minute\">2<"),
        "{page}"
    );
    assert!(
        page.contains("data-field=\"p99\" data-window=\"total\">3.000<"),
        "{page}"
    );
    assert!(
        page.contains("data-field=\"reply\" data-window=\"hour\">2.0 KiB<"),
        "{page}"
    );
    assert!(page.contains("<td id=\"age\">1m5s</td>"), "{page}");
    assert!(page.contains("id=\"traffic-error\">Cannot fetch the traffic: connection refused"));
    assert!(page.contains("weaver multi logs &#39;full_version == &quot;a4bba25b"));
}

#[test]
fn pages_escape_what_they_show() {
    let mut s = status();
    s.app = "<script>x</script>".into();
    let rows = [pages::Row {
        app: &s.app,
        id: &s.deployment_id,
        status: Ok(&s),
    }];
    let page = pages::index(&rows, pages::Tool::Multi, 0);
    assert!(!page.contains("<script>"), "{page}");
    assert!(page.contains("&lt;script&gt;"), "{page}");
    assert!(pages::index(&[], pages::Tool::Single, 0).contains("id=\"no-deployments\""));
}

#[test]
fn queries_are_percent_decoded() {
    let q = parse_query("id=a%2Db&q=msg+%3D%3D+%22x%22&q=second&bad=%zz");
    assert_eq!(q["id"], "a-b");
    assert_eq!(q["q"], "msg == \"x\"");
    assert_eq!(q["bad"], "%zz");
    assert_eq!(html::query_value("a b&c"), "a%20b%26c");
}

#[test]
fn the_frame_loads_nothing_from_elsewhere() {
    let page = html::Page {
        title: "t",
        tool: "weaver multi",
        deployment: Some("abc"),
        logs: true,
        refresh_secs: 5,
        body: String::new(),
    }
    .render();
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "{page}"
    );
    assert!(
        !page.contains("<script src") && !page.contains("<link href"),
        "{page}"
    );
    assert!(page.contains("<main data-refresh=\"5\">"));
}

#[test]
fn single_runs_get_method_totals_from_their_metrics() {
    let mut latency = count("weaver::Main", "hello::Reverser", 400.0);
    latency.name = "serviceweaver_method_latency_micros".into();
    latency.kind = MetricKind::Histogram;
    latency.bounds = vec![100.0, 200.0];
    latency.counts = vec![1, 3, 0];
    let metrics = [count("weaver::Main", "hello::Reverser", 4.0), latency];
    let totals = methods::totals(&metrics);
    assert_eq!(totals.len(), 1);
    let t = &totals[0];
    assert_eq!(
        (t.component.as_str(), t.method.as_str()),
        ("hello::Reverser", "reverse")
    );
    assert_eq!((t.total.calls, t.total.mean_latency_micros), (4, 100.0));
    // Rank 2 of 4 lies a third into the (100, 200] bucket.
    assert!(
        (t.total.p50_micros - 100.0 - 100.0 / 3.0).abs() < 1e-9,
        "{t:?}"
    );
    // No minute or hour: those cells read "-".
    let extra = pages::Extra {
        methods: Ok(totals),
        metrics: Ok(metrics.to_vec()),
    };
    let page = pages::deployment(&status(), &extra, pages::Tool::Single, 0);
    assert!(
        page.contains("data-field=\"calls\" data-window=\"minute\">-<"),
        "{page}"
    );
    assert!(
        page.contains("data-field=\"calls\" data-window=\"total\">4<"),
        "{page}"
    );
    assert!(page.contains("weaver single status"), "{page}");
}
