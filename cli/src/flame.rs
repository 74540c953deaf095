//! A flame graph of sampled stacks as a self-contained SVG: one box per
//! frame, as wide as the samples that passed through it, callers below
//! callees, a tooltip (`<title>`) with the frame and its share.
//!
//! Frames at one depth are merged by name under the same parent, and laid
//! out in name order, as flame graphs usually are (the x axis is not time).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::dashboard::escape;

/// Width of the drawing, in pixels.
const WIDTH: f64 = 1200.0;
/// Height of one frame row.
const ROW: f64 = 16.0;
/// Room above the rows for the title.
const TOP: f64 = 28.0;
/// Boxes narrower than this are not drawn (their samples still count in
/// their parents' widths).
const MIN_WIDTH: f64 = 0.1;

/// A node of the merged call tree.
#[derive(Default)]
struct Node {
    samples: u64,
    children: BTreeMap<String, Node>,
}

/// The SVG of `stacks`: each a list of frames, outermost first, with its
/// sample count. `title` heads the picture.
pub(crate) fn svg(title: &str, stacks: &[(Vec<String>, u64)]) -> String {
    let mut root = Node::default();
    for (frames, n) in stacks {
        root.samples += n;
        let mut node = &mut root;
        for f in frames {
            node = node.children.entry(f.clone()).or_default();
            node.samples += n;
        }
    }
    let depth = max_depth(&root);
    let height = TOP + ROW * (depth as f64 + 1.0) + 4.0;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="monospace" font-size="11">"#
    );
    let _ = write!(
        out,
        r##"<rect width="100%" height="100%" fill="#fdfdf6"/><text x="{}" y="18" text-anchor="middle" font-size="14">{}</text>"##,
        WIDTH / 2.0,
        escape(title)
    );
    if root.samples == 0 {
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" text-anchor="middle">no samples</text>"#,
            WIDTH / 2.0,
            TOP + ROW
        );
    } else {
        let scale = WIDTH / root.samples as f64;
        let bottom = height - 4.0 - ROW;
        draw(&mut out, "all", &root, root.samples, 0.0, bottom, scale, 0);
    }
    out.push_str("</svg>\n");
    out
}

fn max_depth(node: &Node) -> usize {
    node.children
        .values()
        .map(|c| 1 + max_depth(c))
        .max()
        .unwrap_or(0)
}

/// Draws `node` at `x`, row top `y`, then its children one row up.
#[allow(clippy::too_many_arguments)]
fn draw(
    out: &mut String,
    name: &str,
    node: &Node,
    total: u64,
    x: f64,
    y: f64,
    scale: f64,
    depth: usize,
) {
    let w = node.samples as f64 * scale;
    if w < MIN_WIDTH {
        return;
    }
    let share = 100.0 * node.samples as f64 / total as f64;
    let tip = format!(
        "{} ({} sample{}, {share:.2}%)",
        name,
        node.samples,
        if node.samples == 1 { "" } else { "s" }
    );
    let _ = write!(
        out,
        r#"<g class="frame"><title>{}</title><rect x="{x:.2}" y="{y:.2}" width="{w:.2}" height="{:.1}" fill="{}" rx="2"/>"#,
        escape(&tip),
        ROW - 1.0,
        color(name, depth)
    );
    // A label when it fits, cut to the box (about 7 px a character).
    let fits = ((w - 6.0) / 7.0).floor();
    if fits >= 3.0 {
        let label: String = if name.chars().count() as f64 > fits {
            let keep = (fits as usize).saturating_sub(2);
            name.chars().take(keep).chain("..".chars()).collect()
        } else {
            name.to_string()
        };
        let _ = write!(
            out,
            r#"<text x="{:.2}" y="{:.2}">{}</text>"#,
            x + 3.0,
            y + ROW - 4.5,
            escape(&label)
        );
    }
    out.push_str("</g>");
    let mut cx = x;
    for (child, c) in &node.children {
        draw(out, child, c, total, cx, y - ROW, scale, depth + 1);
        cx += c.samples as f64 * scale;
    }
}

/// A warm colour that stays the same for a name.
fn color(name: &str, depth: usize) -> String {
    let h = name.bytes().fold(depth as u32, |h, b| {
        h.wrapping_mul(31).wrapping_add(u32::from(b))
    });
    let r = 200 + (h % 55);
    let g = 80 + ((h / 55) % 130);
    let b = (h / 7150) % 60;
    format!("rgb({r},{g},{b})")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stacks(v: &[(&[&str], u64)]) -> Vec<(Vec<String>, u64)> {
        v.iter()
            .map(|(f, n)| (f.iter().map(|s| (*s).to_string()).collect(), *n))
            .collect()
    }

    /// The (tooltip, x, width) of every drawn frame.
    fn frames(svg: &str) -> Vec<(String, f64, f64)> {
        svg.split("<g class=\"frame\">")
            .skip(1)
            .map(|g| {
                let title = g
                    .split("<title>")
                    .nth(1)
                    .and_then(|t| t.split("</title>").next())
                    .unwrap_or_default()
                    .to_string();
                let attr = |name: &str| -> f64 {
                    g.split(&format!(" {name}=\""))
                        .nth(1)
                        .and_then(|v| v.split('"').next())
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(f64::NAN)
                };
                (title, attr("x"), attr("width"))
            })
            .collect()
    }

    #[test]
    fn frames_are_as_wide_as_their_samples_and_merged_by_parent() {
        let svg = svg(
            "cpu",
            &stacks(&[
                (&["main", "spin"], 3),
                (&["main", "idle"], 1),
                (&["main", "spin"], 1),
            ]),
        );
        let f = frames(&svg);
        let find = |prefix: &str| {
            f.iter()
                .find(|(t, _, _)| t.starts_with(prefix))
                .cloned()
                .unwrap_or_else(|| panic!("no {prefix} in {svg}"))
        };
        assert_eq!(f.len(), 4, "all, main, idle, spin: {f:?}");
        assert_eq!(find("all ").2, WIDTH);
        assert_eq!(find("main ").2, WIDTH);
        let spin = find("spin ");
        assert_eq!(spin.0, "spin (4 samples, 80.00%)");
        assert!((spin.2 - WIDTH * 0.8).abs() < 0.01, "{spin:?}");
        // Name order: idle first, then spin right after it.
        let idle = find("idle ");
        assert_eq!(idle.1, 0.0);
        assert!((spin.1 - idle.2).abs() < 0.01);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn names_are_escaped_and_empty_profiles_say_so() {
        let svg = svg("<t>", &stacks(&[(&["a<b>&\"c\""], 1)]));
        assert!(svg.contains("a&lt;b&gt;&amp;&quot;c&quot;"), "{svg}");
        assert!(svg.contains("&lt;t&gt;"));
        assert!(!svg.contains("a<b>"));
        let empty = super::svg("cpu", &[]);
        assert!(empty.contains("no samples"));
        assert!(frames(&empty).is_empty());
    }

    #[test]
    fn tiny_frames_are_left_out_but_count_in_their_parents() {
        let svg = svg(
            "cpu",
            &stacks(&[(&["main", "big"], 1_000_000), (&["main", "tiny"], 1)]),
        );
        let f = frames(&svg);
        assert!(
            f.iter()
                .any(|(t, _, _)| t.starts_with("main (1000001 samples"))
        );
        assert!(!f.iter().any(|(t, _, _)| t.starts_with("tiny")), "{f:?}");
    }
}
