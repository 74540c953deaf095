//! The pages' `<main>` content, rendered from what the registry, the status
//! servers and the log store said. Pure functions: the server fetches, these
//! only format, so tests can render pages from hand-made data.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use weaver_babysitter::{MethodStats, MethodWindow, Metric, MetricKind, Status};
use weaver_proto::logging::{SYSTEM_ATTR, rfc3339_micros};
use weaver_proto::runtime::{LogEntry, log_attr};

use super::graph;
use super::html::{age, bytes, copy_button, escape, millis, query_value};
use crate::status::{short_component, short_id};

/// Which deployer's runs a dashboard shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tool {
    /// `weaver multi`: babysitters in the registry.
    Multi,
    /// `weaver single`: single-process runs.
    Single,
}

/// One deployment on the index page.
pub(crate) struct Row<'a> {
    /// Its app.
    pub(crate) app: &'a str,
    /// Its full id.
    pub(crate) id: &'a str,
    /// Its status, or why it could not be fetched.
    pub(crate) status: Result<&'a Status, String>,
}

/// What the deployment page shows besides the status: each part may fail
/// on its own.
pub(crate) struct Extra {
    /// Per-method statistics.
    pub(crate) methods: Result<Vec<MethodStats>, String>,
    /// The metrics, summed over replicas.
    pub(crate) metrics: Result<Vec<Metric>, String>,
}

/// `/`: every live deployment.
pub(crate) fn index(rows: &[Row<'_>], tool: Tool, now_micros: i64) -> String {
    let mut out = String::from("<h1>Deployments</h1><section class=\"card\" id=\"deployments\">");
    if rows.is_empty() {
        let start = match tool {
            Tool::Multi => "weaver multi deploy weaver.toml",
            Tool::Single => "weaver single deploy weaver.toml",
        };
        let _ = write!(
            out,
            "<p class=\"empty\" id=\"no-deployments\">No deployments are running. \
             Start one with <code>{start}</code>.</p></section>"
        );
        return out;
    }
    out.push_str(
        "<table><thead><tr><th>App</th><th>Deployment</th><th>Age</th>\
         <th class=\"num\">Components</th><th class=\"num\">Replicas</th><th>Health</th></tr>\
         </thead><tbody>",
    );
    for row in rows {
        let _ = write!(
            out,
            "<tr class=\"deployment\" data-app=\"{app}\" data-id=\"{id}\"><td>{app}</td>\
             <td><a class=\"mono\" href=\"/deployment?id={q}\">{id}</a></td>",
            app = escape(row.app),
            id = escape(row.id),
            q = query_value(row.id),
        );
        match &row.status {
            Ok(s) => {
                let replicas = processes(s).len();
                let _ = write!(
                    out,
                    "<td>{}</td><td class=\"num\">{}</td><td class=\"num\">{replicas}</td>\
                     <td class=\"ok\">answering</td></tr>",
                    age(since(s.submitted_at, now_micros)),
                    s.components.len(),
                );
            }
            Err(e) => {
                let _ = write!(
                    out,
                    "<td>-</td><td class=\"num\">-</td><td class=\"num\">-</td>\
                     <td class=\"bad\">{}</td></tr>",
                    escape(e)
                );
            }
        }
    }
    out.push_str("</tbody></table></section>");
    out
}

/// `/deployment`: summary, commands, components, methods and traffic.
pub(crate) fn deployment(s: &Status, extra: &Extra, tool: Tool, now_micros: i64) -> String {
    let mut out = format!(
        "<h1 id=\"title\">{} <span class=\"muted mono\">{}</span></h1>",
        escape(&s.app),
        escape(short_id(&s.deployment_id))
    );
    summary(&mut out, s, tool, now_micros);
    config(&mut out, s);
    commands(&mut out, s, tool);
    components(&mut out, s);
    out.push_str("<details class=\"card\" id=\"methods\" open><summary>Methods</summary>");
    match &extra.methods {
        Ok(methods) => methods_table(&mut out, methods),
        Err(e) => error(&mut out, "methods", e),
    }
    out.push_str(
        "</details><details class=\"card\" id=\"traffic\" open><summary>Traffic</summary>",
    );
    match &extra.metrics {
        Ok(metrics) => {
            let names: Vec<&str> = s.components.iter().map(|c| c.name.as_str()).collect();
            let edges = graph::edges(metrics);
            out.push_str(&graph::svg(&names, &edges));
            if edges.is_empty() {
                out.push_str("<p class=\"muted\">No calls between components yet.</p>");
            }
        }
        Err(e) => error(&mut out, "traffic", e),
    }
    out.push_str("</details>");
    out
}

fn summary(out: &mut String, s: &Status, tool: Tool, now_micros: i64) {
    let _ = write!(
        out,
        "<details class=\"card\" id=\"summary\" open><summary>Summary</summary><table>\
         <tr><th>App</th><td id=\"app\">{}</td></tr>\
         <tr><th>Deployment</th><td class=\"mono\" id=\"deployment-id\">{}</td></tr>\
         <tr><th>Started</th><td>{}</td></tr>\
         <tr><th>Age</th><td id=\"age\">{}</td></tr>",
        escape(&s.app),
        escape(&s.deployment_id),
        escape(&rfc3339_micros(s.submitted_at)),
        age(since(s.submitted_at, now_micros)),
    );
    if tool == Tool::Multi {
        let _ = write!(
            out,
            "<tr><th>Status server</th><td class=\"mono\">{}</td></tr>",
            s.status_addr
        );
    }
    let mut listeners: Vec<_> = s.listeners.iter().collect();
    listeners.sort_by(|a, b| a.name.cmp(&b.name));
    for l in listeners {
        let _ = write!(
            out,
            "<tr class=\"listener\" data-listener=\"{n}\"><th>Listener \"{n}\"</th>\
             <td class=\"mono address\">{a}</td></tr>",
            n = escape(&l.name),
            a = escape(&l.address),
        );
    }
    out.push_str("</table></details>");
}

fn commands(out: &mut String, s: &Status, tool: Tool) {
    let filter = format!("full_version == {:?}", s.deployment_id);
    let commands = match tool {
        Tool::Multi => vec![
            ("status", "weaver multi status".to_owned()),
            ("metrics", "weaver multi metrics".to_owned()),
            ("cat logs", format!("weaver multi logs '{filter}'")),
            (
                "follow logs",
                format!("weaver multi logs --follow '{filter}'"),
            ),
            (
                "prometheus",
                format!("curl http://{}/debug/weaver/prometheus", s.status_addr),
            ),
        ],
        Tool::Single => vec![
            ("status", "weaver single status".to_owned()),
            ("metrics", "weaver single metrics".to_owned()),
            (
                "prometheus",
                "weaver single metrics --format=prometheus".to_owned(),
            ),
        ],
    };
    out.push_str("<details class=\"card\" id=\"commands\"><summary>Commands</summary><table>");
    for (what, cmd) in commands {
        let _ = write!(
            out,
            "<tr><th>{what}</th><td><code>{}</code>{}</td></tr>",
            escape(&cmd),
            copy_button(&cmd)
        );
    }
    out.push_str("</table></details>");
}

/// The component sections of the config, as written (closed, as in Go).
fn config(out: &mut String, s: &Status) {
    if s.sections.is_empty() {
        return;
    }
    out.push_str("<details class=\"card\" id=\"config\"><summary>Config</summary>");
    for (component, text) in &s.sections {
        let _ = write!(
            out,
            "<div class=\"section\" data-section=\"{c}\"><code>[\"{c}\"]</code>\
             <pre class=\"mono\">{t}</pre></div>",
            c = escape(component),
            t = escape(text.trim_end()),
        );
    }
    out.push_str("</details>");
}

fn components(out: &mut String, s: &Status) {
    out.push_str(
        "<details class=\"card\" id=\"components\" open><summary>Components</summary>\
         <table><thead><tr><th>Component</th><th>Group</th><th class=\"num\">Replicas</th>\
         <th>PIDs</th><th>Weavelet IDs</th><th class=\"num\">Restarts</th></tr></thead><tbody>",
    );
    let mut components: Vec<_> = s.components.iter().collect();
    components.sort_by(|a, b| (&a.group, &a.name).cmp(&(&b.group, &b.name)));
    for c in components {
        let mut replicas: Vec<_> = c.replicas.iter().collect();
        replicas.sort_by_key(|r| r.pid);
        let pids: Vec<String> = replicas.iter().map(|r| r.pid.to_string()).collect();
        let ids: Vec<&str> = replicas.iter().map(|r| short_id(&r.weavelet_id)).collect();
        // Every listed replica is live: the babysitter drops dead ones at
        // once, and counts the restarts of each replica index.
        let restarts: u32 = replicas.iter().map(|r| r.restarts).sum();
        let _ = write!(
            out,
            "<tr class=\"component\" data-component=\"{n}\" data-replicas=\"{r}\" \
             data-pids=\"{p}\" data-restarts=\"{restarts}\"><td title=\"{n}\">{short}</td><td>{g}</td>\
             <td class=\"num replicas\">{r}</td><td class=\"mono pids\">{p}</td>\
             <td class=\"mono\">{i}</td><td class=\"num restarts\">{restarts}</td></tr>",
            n = escape(&c.name),
            short = escape(short_component(&c.name)),
            g = escape(&c.group),
            r = replicas.len(),
            p = pids.join(" "),
            i = escape(&ids.join(" ")),
        );
    }
    out.push_str("</tbody></table></details>");
}

/// The methods table: one row per method, and per column group (calls,
/// errors, latencies, bytes) the last minute, the last hour and all time.
fn methods_table(out: &mut String, methods: &[MethodStats]) {
    if methods.is_empty() {
        out.push_str("<p class=\"muted\">No method has been called yet.</p>");
        return;
    }
    const GROUPS: [&str; 7] = [
        "Calls",
        "Errors",
        "Mean (ms)",
        "p50 (ms)",
        "p99 (ms)",
        "Request",
        "Reply",
    ];
    out.push_str("<table class=\"methods\"><thead><tr><th rowspan=\"2\">Method</th>");
    for g in GROUPS {
        let _ = write!(out, "<th class=\"num\" colspan=\"3\">{g}</th>");
    }
    out.push_str("</tr><tr>");
    for _ in GROUPS {
        out.push_str(
            "<th class=\"num\">Min.</th><th class=\"num\">Hr.</th><th class=\"num\">All</th>",
        );
    }
    out.push_str("</tr></thead><tbody>");
    let mut sorted: Vec<_> = methods.iter().collect();
    sorted.sort_by(|a, b| (&a.component, &a.method).cmp(&(&b.component, &b.method)));
    for m in sorted {
        method_row(out, m);
    }
    out.push_str("</tbody></table>");
}

fn method_row(out: &mut String, m: &MethodStats) {
    let _ = write!(
        out,
        "<tr class=\"method\" data-component=\"{c}\" data-method=\"{n}\" data-calls=\"{calls}\">\
         <td title=\"{c}.{n}\">{short}.{n}</td>",
        c = escape(&m.component),
        n = escape(&m.method),
        short = escape(short_component(&m.component)),
        calls = m.total.calls,
    );
    let windows = [
        ("minute", &m.minute),
        ("hour", &m.hour),
        ("total", &m.total),
    ];
    type Cell = fn(&MethodWindow) -> String;
    let fields: [(&str, Cell); 7] = [
        ("calls", |w| w.calls.to_string()),
        ("errors", |w| w.errors.to_string()),
        ("mean", |w| millis(w.mean_latency_micros, w.calls)),
        ("p50", |w| millis(w.p50_micros, w.calls)),
        ("p99", |w| millis(w.p99_micros, w.calls)),
        ("request", |w| bytes(w.request_bytes)),
        ("reply", |w| bytes(w.reply_bytes)),
    ];
    for (field, cell) in fields {
        for (window, w) in windows {
            // A window of no length is one the source does not keep (a
            // single-process run keeps totals only).
            let text = if w.seconds == 0.0 {
                "-".to_owned()
            } else {
                cell(w)
            };
            let _ = write!(
                out,
                "<td class=\"num\" data-field=\"{field}\" data-window=\"{window}\">{text}</td>"
            );
        }
    }
    out.push_str("</tr>");
}

/// `/metrics`: one table per metric, summed over replicas.
pub(crate) fn metrics(s: &Status, metrics: &[Metric]) -> String {
    let q = query_value(&s.deployment_id);
    let mut out = format!(
        "<h1>{} metrics <span class=\"muted mono\">{}</span></h1>\
         <p>Summed over replicas. As Prometheus text: \
         <a id=\"prometheus-link\" href=\"/prometheus?id={q}\">every replica</a> · \
         <a href=\"/prometheus?id={q}&amp;replicas=sum\">summed</a>.</p>",
        escape(&s.app),
        escape(short_id(&s.deployment_id)),
    );
    let mut by_name: BTreeMap<(bool, &str), Vec<&Metric>> = BTreeMap::new();
    for m in metrics {
        // The app's own metrics first, then the runtime's.
        let generated = m.name.starts_with("serviceweaver_");
        by_name.entry((generated, &m.name)).or_default().push(m);
    }
    if by_name.is_empty() {
        out.push_str("<p class=\"empty\">No metrics yet.</p>");
    }
    for ((_, name), series) in by_name {
        metric_table(&mut out, name, &series);
    }
    out
}

fn metric_table(out: &mut String, name: &str, series: &[&Metric]) {
    let keys: std::collections::BTreeSet<&str> = series
        .iter()
        .flat_map(|m| m.labels.keys().map(String::as_str))
        .filter(|k| !k.starts_with("serviceweaver_"))
        .collect();
    let first = series[0];
    let kind = match first.kind {
        MetricKind::Counter => "counter",
        MetricKind::Gauge => "gauge",
        MetricKind::Histogram => "histogram",
        _ => "metric",
    };
    let _ = write!(
        out,
        "<details class=\"card metric\" data-metric=\"{n}\" open><summary>{n} \
         <span class=\"muted\">{kind}</span></summary><p class=\"muted\">{}</p><table><thead><tr>",
        escape(&first.help),
        n = escape(name),
    );
    for k in &keys {
        let _ = write!(out, "<th>{}</th>", escape(k));
    }
    if first.kind == MetricKind::Histogram {
        out.push_str(
            "<th class=\"num\">Count</th><th class=\"num\">Sum</th><th class=\"num\">Mean</th>",
        );
    } else {
        out.push_str("<th class=\"num\">Value</th>");
    }
    out.push_str("</tr></thead><tbody>");
    for m in series {
        out.push_str("<tr class=\"series\">");
        for k in &keys {
            let v = m.labels.get(*k).map_or("", String::as_str);
            let _ = write!(out, "<td>{}</td>", escape(v));
        }
        if m.kind == MetricKind::Histogram {
            let count: u64 = m.counts.iter().sum();
            let mean = if count == 0 {
                0.0
            } else {
                m.value / count as f64
            };
            let _ = write!(
                out,
                "<td class=\"num\">{count}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>",
                number(m.value),
                number(mean)
            );
        } else {
            let _ = write!(out, "<td class=\"num value\">{}</td>", number(m.value));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></details>");
}

/// What the logs page shows.
pub(crate) struct Logs<'a> {
    /// The deployment.
    pub(crate) id: &'a str,
    /// The app, if known.
    pub(crate) app: &'a str,
    /// The filter as typed.
    pub(crate) query: &'a str,
    /// The last entries that matched, oldest first, or why none could be
    /// read (a bad query, say).
    pub(crate) entries: Result<Vec<LogEntry>, String>,
    /// How many matched in all.
    pub(crate) matched: u64,
    /// Whether the deployment still runs.
    pub(crate) live: bool,
}

/// `/logs`: the filter box and the matching entries.
pub(crate) fn logs(l: &Logs<'_>) -> String {
    let mut out = format!(
        "<h1>{} logs <span class=\"muted mono\">{}</span></h1>\
         <form class=\"filter\" method=\"get\" action=\"/logs\">\
         <input type=\"hidden\" name=\"id\" value=\"{}\">\
         <input type=\"text\" name=\"q\" id=\"q\" value=\"{}\" \
         placeholder='CEL, e.g. level == \"error\" &amp;&amp; msg.contains(\"x\")'> \
         <button type=\"submit\">Filter</button>",
        escape(l.app),
        escape(short_id(l.id)),
        escape(l.id),
        escape(l.query),
    );
    if l.live {
        out.push_str(" <label><input type=\"checkbox\" id=\"follow\"> follow</label>");
    }
    out.push_str(
        "</form><p class=\"muted\">Variables: app, version, full_version, component, \
         full_component, node, full_node, time, level, source, msg, attrs.</p>",
    );
    if !l.live {
        out.push_str("<p class=\"muted\" id=\"ended\">This deployment has ended.</p>");
    }
    match &l.entries {
        Err(e) => {
            let _ = write!(
                out,
                "<p class=\"error\" id=\"query-error\">{}</p>",
                escape(e)
            );
        }
        Ok(entries) => log_table(&mut out, entries, l.matched),
    }
    out
}

fn log_table(out: &mut String, entries: &[LogEntry], matched: u64) {
    let _ = write!(
        out,
        "<p id=\"log-count\" data-matched=\"{matched}\" data-shown=\"{}\">{matched} matching \
         entries{}.</p>",
        entries.len(),
        if matched as usize > entries.len() {
            format!(", the last {} shown", entries.len())
        } else {
            String::new()
        }
    );
    out.push_str(
        "<section class=\"card\"><table id=\"logs\"><thead><tr><th>Time</th><th>Level</th>\
         <th>Component</th><th>Node</th><th>Source</th><th>Message</th><th>Attributes</th>\
         </tr></thead><tbody>",
    );
    for e in entries {
        let source = if e.file.is_empty() {
            String::new()
        } else {
            format!("{}:{}", e.file, e.line)
        };
        let _ = write!(
            out,
            "<tr class=\"log\" data-level=\"{lvl}\" data-component=\"{c}\"><td class=\"mono\">{t}</td>\
             <td>{lvl}</td><td title=\"{c}\">{sc}</td><td class=\"mono\">{node}</td>\
             <td class=\"mono\">{src}</td><td class=\"msg\">{msg}</td><td class=\"mono\">{attrs}</td></tr>",
            lvl = escape(&e.level),
            c = escape(&e.component),
            t = escape(&rfc3339_micros(e.time_micros)),
            sc = escape(short_component(&e.component)),
            node = escape(short_id(&e.node)),
            src = escape(&source),
            msg = escape(&e.msg),
            attrs = escape(&attrs(e)),
        );
    }
    out.push_str("</tbody></table></section>");
}

/// An entry's attributes as `k=v` pairs, system ones left out.
fn attrs(e: &LogEntry) -> String {
    let mut pairs: BTreeMap<&str, String> = BTreeMap::new();
    for kv in e.attrs.chunks(2) {
        if let [k, v] = kv
            && k != SYSTEM_ATTR
        {
            pairs.insert(k, format!("{v:?}"));
        }
    }
    for a in &e.typed_attrs {
        let v = match &a.value {
            Some(log_attr::Value::Str(s)) => format!("{s:?}"),
            Some(log_attr::Value::Int(i)) => i.to_string(),
            Some(log_attr::Value::Uint(u)) => u.to_string(),
            Some(log_attr::Value::Float(f)) => f.to_string(),
            Some(log_attr::Value::Bool(b)) => b.to_string(),
            None => "\"\"".to_owned(),
        };
        pairs.insert(&a.key, v);
    }
    let parts: Vec<String> = pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    parts.join(" ")
}

/// The page of a deployment that is no longer running.
pub(crate) fn ended(id: &str, why: &str, tool: Tool) -> String {
    let logs = match tool {
        Tool::Multi => format!(
            "Its logs are kept: <a href=\"/logs?id={}\">logs</a>. ",
            query_value(id)
        ),
        Tool::Single => String::new(),
    };
    format!(
        "<h1>Deployment ended</h1><section class=\"card\" id=\"ended\">\
         <p>Deployment <code>{}</code> has ended: {}.</p>\
         <p>{logs}<a href=\"/\">All deployments</a>.</p></section>",
        escape(id),
        escape(why),
    )
}

/// An error message page body.
pub(crate) fn problem(title: &str, message: &str) -> String {
    format!(
        "<h1>{}</h1><p class=\"error\" id=\"problem\">{}</p><p><a href=\"/\">All deployments</a></p>",
        escape(title),
        escape(message)
    )
}

fn error(out: &mut String, what: &str, e: &str) {
    let _ = write!(
        out,
        "<p class=\"error\" id=\"{what}-error\">Cannot fetch the {what}: {}</p>",
        escape(e)
    );
}

/// The distinct processes of a deployment (a group's replicas host every
/// component of the group).
fn processes(s: &Status) -> std::collections::BTreeSet<u32> {
    s.components
        .iter()
        .flat_map(|c| c.replicas.iter().map(|r| r.pid))
        .collect()
}

fn since(submitted_at: i64, now_micros: i64) -> Duration {
    Duration::from_micros(u64::try_from(now_micros - submitted_at).unwrap_or(0))
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.4}")
    }
}
