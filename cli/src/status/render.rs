//! The tables `weaver multi status` prints, laid out like the Go tool's:
//!
//! ```text
//! ╭────────────────────────────────────────────────────╮
//! │ DEPLOYMENTS                                        │
//! ├───────┬──────────────────────────────────────┬─────┤
//! │ APP   │ DEPLOYMENT                           │ AGE │
//! ├───────┼──────────────────────────────────────┼─────┤
//! │ hello │ a4bba25b-6312-4af1-beec-447c33b8e805 │ 26s │
//! ╰───────┴──────────────────────────────────────┴─────╯
//! ```
//!
//! comfy-table lays the table out from plain text; the title box is added on
//! top of its lines (comfy-table has no title or column span). Color escapes
//! would count as width in comfy-table, so colored rows are repainted into the
//! widths it computed.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::time::Duration;

use comfy_table::{ContentArrangement, ContentLineStyle, LineStyle, Table, TableStyle};
use unicode_width::UnicodeWidthStr;

use weaver_babysitter::Status;

use super::order;

/// Rounded outer corners, solid inner lines, no line between data rows.
pub(crate) const STYLE: TableStyle = TableStyle::new()
    .top_border(LineStyle::new('╭', '─', '┬', '╮'))
    .header_lines(ContentLineStyle::new('│', '│', '│'))
    .header_separator(LineStyle::new('├', '─', '┼', '┤'))
    .content_lines(ContentLineStyle::new('│', '│', '│'))
    .bottom_border(LineStyle::new('╰', '─', '┴', '╯'));

const RESET: &str = "\x1b[0m";
const BOLD: &str = "\x1b[1m";
const UNDERLINE: &str = "\x1b[4m";
/// The 256-color of cells that repeat the row above (a light gray).
const DIM_COLOR: u8 = 245;

/// The 256-colors that read well on both light and dark backgrounds; an id's
/// color is picked from them by hash, the same way the Go tool does, so one
/// deployment gets the same color in both tools.
const PALETTE: [u8; 160] = palette();

/// Text style of one piece of a cell.
#[derive(Debug, Clone, Copy, Default)]
struct Style {
    color: Option<u8>,
    underline: bool,
    bold: bool,
}

/// A piece of a cell with one style.
#[derive(Debug, Clone)]
struct Atom {
    text: String,
    style: Style,
}

type Cell = Vec<Atom>;

/// One table before layout.
struct Grid {
    title: &'static str,
    header: &'static [&'static str],
    rows: Vec<Vec<Cell>>,
}

/// Renders the DEPLOYMENTS, COMPONENTS and LISTENERS tables for `deployments`,
/// as of `now_micros` (microseconds since the Unix epoch). With `color`, titles
/// are bold, deployment ids colored by hash and cells repeating the row above
/// dimmed. The text ends with a newline.
pub(crate) fn render_status(deployments: &[Status], now_micros: i64, color: bool) -> String {
    let mut sorted: Vec<&Status> = deployments.iter().collect();
    sorted.sort_by(|a, b| order::deployment(a).cmp(&order::deployment(b)));
    let mut out = String::new();
    deployments_grid(&sorted, now_micros).render(color, &mut out);
    components_grid(&sorted).render(color, &mut out);
    listeners_grid(&sorted).render(color, &mut out);
    out
}

/// Formats an age like Go's `Duration.String` after truncating to seconds:
/// `0s`, `3s`, `1m5s`, `2h0m3s`.
pub(crate) fn format_age(age: Duration) -> String {
    let secs = age.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// Shortens a full component name to its last two `::` segments:
/// `my_app::hello::Reverser` becomes `hello::Reverser`.
pub(crate) fn short_component(name: &str) -> &str {
    match name.rmatch_indices("::").nth(1) {
        Some((i, _)) => &name[i + 2..],
        None => name,
    }
}

/// The first 8 characters of an id.
pub(crate) fn short_id(id: &str) -> &str {
    id.char_indices().nth(8).map_or(id, |(i, _)| &id[..i])
}

/// Whether status output should be colored: `NO_COLOR` is unset, `TERM` is
/// not `dumb` and stdout is a terminal.
pub(crate) fn color_enabled() -> bool {
    std::env::var_os("NO_COLOR").is_none()
        && std::env::var_os("TERM").is_none_or(|term| term != "dumb")
        && std::io::stdout().is_terminal()
}

// === tables ===

fn deployments_grid(deployments: &[&Status], now_micros: i64) -> Grid {
    let rows = deployments
        .iter()
        .map(|d| {
            let color = Some(id_color(&d.deployment_id));
            let short = short_id(&d.deployment_id);
            let id = vec![
                atom(
                    short,
                    Style {
                        color,
                        underline: true,
                        bold: false,
                    },
                ),
                atom(
                    &d.deployment_id[short.len()..],
                    Style {
                        color,
                        ..Style::default()
                    },
                ),
            ];
            let age = format_age(order::age(d.submitted_at, now_micros));
            vec![plain(&d.app), id, plain(&age)]
        })
        .collect();
    Grid {
        title: "DEPLOYMENTS",
        header: &["APP", "DEPLOYMENT", "AGE"],
        rows,
    }
}

fn components_grid(deployments: &[&Status]) -> Grid {
    let mut rows = Vec::new();
    for d in deployments {
        let mut components: Vec<_> = d.components.iter().collect();
        components.sort_by(|a, b| order::component(a).cmp(&order::component(b)));
        for c in components {
            let mut replicas: Vec<_> = c.replicas.iter().collect();
            replicas.sort_by(|a, b| order::replica(a).cmp(&order::replica(b)));
            let pids: Vec<String> = replicas.iter().map(|r| r.pid.to_string()).collect();
            let ids: Vec<&str> = replicas.iter().map(|r| short_id(&r.weavelet_id)).collect();
            rows.push(vec![
                plain(&d.app),
                short_id_cell(&d.deployment_id),
                plain(short_component(&c.name)),
                plain(&pids.join(", ")),
                plain(&ids.join(", ")),
            ]);
        }
    }
    Grid {
        title: "COMPONENTS",
        header: &[
            "APP",
            "DEPLOYMENT",
            "COMPONENT",
            "REPLICA PIDS",
            "WEAVELET IDS",
        ],
        rows,
    }
}

fn listeners_grid(deployments: &[&Status]) -> Grid {
    let mut rows = Vec::new();
    for d in deployments {
        let mut listeners: Vec<_> = d.listeners.iter().collect();
        listeners.sort_by(|a, b| order::listener(a).cmp(&order::listener(b)));
        for l in listeners {
            rows.push(vec![
                plain(&d.app),
                short_id_cell(&d.deployment_id),
                plain(&l.name),
                plain(&l.address),
            ]);
        }
    }
    Grid {
        title: "LISTENERS",
        header: &["APP", "DEPLOYMENT", "LISTENER", "ADDRESS"],
        rows,
    }
}

// === impl Grid ===

impl Grid {
    fn render(&self, color: bool, out: &mut String) {
        let mut table = Table::new();
        table
            .load_style(STYLE)
            .set_content_arrangement(ContentArrangement::Disabled)
            .set_header(self.header.to_vec());
        for row in &self.rows {
            table.add_row(row.iter().map(text_of).collect::<Vec<_>>());
        }
        let widths = table.column_max_content_widths();
        let lines: Vec<String> = table.lines().collect();
        let [top, header, separator, body @ ..] = lines.as_slice() else {
            // comfy-table always draws a border, the header and a separator;
            // should that change, print what it drew rather than panic.
            lines.iter().for_each(|line| push_line(out, line));
            return;
        };
        self.render_title(top, color, out);
        for line in [header, separator] {
            push_line(out, line);
        }
        let (rows, bottom) = body.split_at(body.len().saturating_sub(1));
        for (i, line) in rows.iter().enumerate() {
            match self.rows.get(i).filter(|_| color) {
                Some(row) => {
                    let dim = if i == 0 {
                        0
                    } else {
                        repeated_prefix(&self.rows[i - 1], row)
                    };
                    push_line(out, &repaint(line, row, &widths, dim));
                }
                None => push_line(out, line),
            }
        }
        bottom.iter().for_each(|line| push_line(out, line));
    }

    /// Adds the title box; comfy-table's top border becomes the line between
    /// the title and the header.
    fn render_title(&self, top: &str, color: bool, out: &mut String) {
        // Border lines are box-drawing characters, one column each.
        let width = top.chars().count();
        let inner: String = top.chars().skip(1).take(width.saturating_sub(2)).collect();
        let pad = width.saturating_sub(4 + self.title.width());
        let title = if color {
            format!("{BOLD}{}{RESET}", self.title)
        } else {
            self.title.to_owned()
        };
        let _ = writeln!(out, "╭{}╮", "─".repeat(width.saturating_sub(2)));
        let _ = writeln!(out, "│ {title}{} │", " ".repeat(pad));
        let _ = writeln!(out, "├{inner}┤");
    }
}

/// Rebuilds a row line with colors, in the column widths of the plain
/// layout. If the rebuilt line would not match the plain one (a layout this
/// code does not expect), the plain line is kept: losing color beats a
/// broken table.
fn repaint(line: &str, row: &[Cell], widths: &[u16], dim: usize) -> String {
    let build = |paint: bool| {
        let mut s = String::from("│");
        for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
            let text = text_of(cell);
            let pad = usize::from(*width).saturating_sub(text.width());
            let shown = if paint { painted(cell, i < dim) } else { text };
            let _ = write!(s, " {shown}{} │", " ".repeat(pad));
        }
        s
    };
    if build(false) == line {
        build(true)
    } else {
        line.to_owned()
    }
}

/// How many leading cells of `row` equal those of `prev`.
fn repeated_prefix(prev: &[Cell], row: &[Cell]) -> usize {
    prev.iter()
        .zip(row)
        .take_while(|(a, b)| text_of(a) == text_of(b))
        .count()
}

fn push_line(out: &mut String, line: &str) {
    out.push_str(line);
    out.push('\n');
}

// === cells ===

fn atom(text: &str, style: Style) -> Atom {
    Atom {
        text: sanitize(text),
        style,
    }
}

fn plain(text: &str) -> Cell {
    vec![atom(text, Style::default())]
}

/// The 8-character deployment id, underlined in the id's color.
fn short_id_cell(id: &str) -> Cell {
    let style = Style {
        color: Some(id_color(id)),
        underline: true,
        bold: false,
    };
    vec![atom(short_id(id), style)]
}

fn text_of(cell: &Cell) -> String {
    cell.iter().map(|a| a.text.as_str()).collect()
}

fn painted(cell: &Cell, dim: bool) -> String {
    let mut s = String::new();
    for a in cell {
        let color = if dim { Some(DIM_COLOR) } else { a.style.color };
        let styled = color.is_some() || a.style.underline || a.style.bold;
        if let Some(color) = color {
            let _ = write!(s, "\x1b[38;5;{color}m");
        }
        if a.style.underline {
            s.push_str(UNDERLINE);
        }
        if a.style.bold {
            s.push_str(BOLD);
        }
        s.push_str(&a.text);
        if styled {
            s.push_str(RESET);
        }
    }
    s
}

/// Escapes control characters, which would break the layout (a newline makes
/// a cell two lines high) or smuggle escapes onto the terminal.
fn sanitize(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The color of an id: the byte sum (mod 256) picks a palette entry.
pub(super) fn id_color(id: &str) -> u8 {
    let sum = id.bytes().fold(0u8, u8::wrapping_add);
    PALETTE[usize::from(sum) % PALETTE.len()]
}

pub(super) const fn palette() -> [u8; 160] {
    // Runs of readable colors; black, white, dark blues, light yellows and
    // most grays are left out.
    const RUNS: [(u8, u8); 13] = [
        (1, 3),
        (5, 6),
        (9, 14),
        (22, 51),
        (58, 58),
        (62, 82),
        (88, 101),
        (103, 107),
        (110, 117),
        (124, 143),
        (148, 148),
        (160, 184),
        (196, 219),
    ];
    let mut out = [0; 160];
    let (mut n, mut r) = (0, 0);
    while r < RUNS.len() {
        let (mut c, last) = RUNS[r];
        while c <= last {
            out[n] = c;
            n += 1;
            c += 1;
        }
        r += 1;
    }
    assert!(n == out.len(), "the runs fill the palette exactly");
    out
}
