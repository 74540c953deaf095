//! The traffic graph: components as nodes, caller → callee edges labelled
//! with their calls, drawn as inline SVG on the server.
//!
//! Go's dashboard draws it in the browser with cytoscape from a CDN, and its
//! graph was empty under `weaver multi` because the runtime's own control
//! components crowded it (weaver#793, #794). Here it is plain SVG in the
//! page, inspectable in the DOM, with the runtime's components left out.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use weaver_babysitter::Metric;

use super::html::escape;
use crate::status::short_component;

/// The counter whose series, one per (caller, component, method), the edges
/// add up.
const METHOD_COUNT: &str = "serviceweaver_method_count";

/// Node box size and the gaps between boxes, in pixels.
const NODE_W: u32 = 200;
const NODE_H: u32 = 40;
const GAP_X: u32 = 120;
const GAP_Y: u32 = 30;
const MARGIN: u32 = 20;

/// Calls per (caller, callee), over every method and replica.
pub(crate) type Edges = BTreeMap<(String, String), u64>;

/// Whether `name` is one of the runtime's own components rather than the
/// app's (`weaver::Main` is the app's).
pub(crate) fn is_system(name: &str) -> bool {
    name.is_empty() || (name.starts_with("weaver::") && name != "weaver::Main")
}

/// The edges in `metrics` (summed over replicas, or not: series are added
/// up either way), leaving out the runtime's components.
pub(crate) fn edges(metrics: &[Metric]) -> Edges {
    let mut edges = Edges::new();
    for m in metrics.iter().filter(|m| m.name == METHOD_COUNT) {
        let label = |k: &str| m.labels.get(k).map_or("", String::as_str);
        let (from, to) = (label("caller"), label("component"));
        if is_system(from) || is_system(to) || !m.value.is_finite() || m.value <= 0.0 {
            continue;
        }
        // Counters are whole numbers.
        *edges.entry((from.to_owned(), to.to_owned())).or_default() += m.value.round() as u64;
    }
    edges
}

/// The graph of `components` (the app's; system ones are dropped) and
/// `edges` as an `<svg>` element. Nodes are laid out in columns by their
/// distance from the components nobody calls.
pub(crate) fn svg(components: &[&str], edges: &Edges) -> String {
    let mut nodes: BTreeSet<&str> = components
        .iter()
        .copied()
        .filter(|c| !is_system(c))
        .collect();
    for (from, to) in edges.keys() {
        nodes.insert(from);
        nodes.insert(to);
    }
    let columns = layers(&nodes, edges);
    let place = positions(&columns);
    let rows = columns.iter().map(Vec::len).max().unwrap_or(0) as u32;
    let width = 2 * MARGIN + columns.len() as u32 * (NODE_W + GAP_X);
    let height = 2 * MARGIN + rows.max(1) * (NODE_H + GAP_Y);
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg class=\"traffic\" id=\"traffic-graph\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"traffic graph\">\
         <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" \
         markerUnits=\"userSpaceOnUse\" markerWidth=\"10\" markerHeight=\"10\" orient=\"auto-start-reverse\">\
         <path d=\"M 0 0 L 10 5 L 0 10 z\" fill=\"#5b6577\"/></marker></defs>"
    );
    let total: u64 = edges.values().sum();
    for ((from, to), calls) in edges {
        let (Some(a), Some(b)) = (place.get(from.as_str()), place.get(to.as_str())) else {
            continue;
        };
        edge(&mut out, (from, to), *a, *b, *calls, total);
    }
    for (name, (x, y)) in &place {
        let _ = write!(
            out,
            "<g class=\"node\" data-component=\"{n}\"><title>{n}</title>\
             <rect x=\"{x}\" y=\"{y}\" width=\"{NODE_W}\" height=\"{NODE_H}\" rx=\"6\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text></g>",
            x + NODE_W / 2,
            y + NODE_H / 2 + 4,
            escape(short_component(name)),
            n = escape(name),
        );
    }
    out.push_str("</svg>");
    out
}

/// One edge from the box at `a` to the box at `b`, its width growing with
/// its share of all calls.
fn edge(
    out: &mut String,
    (from, to): (&str, &str),
    a: (u32, u32),
    b: (u32, u32),
    calls: u64,
    total: u64,
) {
    let share = calls as f64 / total.max(1) as f64;
    let width = 1.5 + 3.0 * share;
    let (x1, y1) = (f64::from(a.0 + NODE_W), f64::from(a.1 + NODE_H / 2));
    let (x2, y2) = (f64::from(b.0), f64::from(b.1 + NODE_H / 2));
    // A call back to an earlier column (or its own) loops below the boxes.
    let d = if x2 > x1 {
        let mid = (x1 + x2) / 2.0;
        format!("M {x1} {y1} C {mid} {y1}, {mid} {y2}, {x2} {y2}")
    } else {
        let below = y1.max(y2) + f64::from(NODE_H);
        format!(
            "M {x1} {y1} C {} {below}, {} {below}, {x2} {y2}",
            x1 + 60.0,
            x2 - 60.0
        )
    };
    let (lx, ly) = ((x1 + x2) / 2.0, (y1 + y2) / 2.0 - 6.0);
    let _ = write!(
        out,
        "<g class=\"edge\" data-from=\"{f}\" data-to=\"{t}\" data-calls=\"{calls}\">\
         <title>{f} → {t}: {calls} calls</title>\
         <path d=\"{d}\" stroke-width=\"{width:.1}\" marker-end=\"url(#arrow)\"/>\
         <text class=\"calls\" x=\"{lx}\" y=\"{ly}\" text-anchor=\"middle\">{calls}</text></g>",
        f = escape(from),
        t = escape(to),
    );
}

/// `nodes` in columns: a node's column is the length of the longest chain
/// of callers above it (cycles cut), so callers sit left of callees.
fn layers<'a>(nodes: &BTreeSet<&'a str>, edges: &Edges) -> Vec<Vec<&'a str>> {
    let mut depth: BTreeMap<&str, usize> = nodes.iter().map(|n| (*n, 0)).collect();
    // Longest path by relaxation; at most |nodes| rounds, which also ends
    // cycles.
    for _ in 0..nodes.len() {
        let mut changed = false;
        for (from, to) in edges.keys() {
            if from == to {
                continue;
            }
            let d = depth.get(from.as_str()).copied().unwrap_or(0) + 1;
            if let Some(t) = depth.get_mut(to.as_str())
                && *t < d
                && d < nodes.len()
            {
                *t = d;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut columns: Vec<Vec<&str>> = Vec::new();
    for (node, d) in depth {
        if columns.len() <= d {
            columns.resize_with(d + 1, Vec::new);
        }
        columns[d].push(node);
    }
    columns.retain(|c| !c.is_empty());
    columns
}

/// The top-left corner of each node's box.
fn positions<'a>(columns: &[Vec<&'a str>]) -> BTreeMap<&'a str, (u32, u32)> {
    let mut place = BTreeMap::new();
    for (i, column) in columns.iter().enumerate() {
        for (j, node) in column.iter().enumerate() {
            let x = MARGIN + i as u32 * (NODE_W + GAP_X);
            let y = MARGIN + j as u32 * (NODE_H + GAP_Y);
            place.insert(*node, (x, y));
        }
    }
    place
}
