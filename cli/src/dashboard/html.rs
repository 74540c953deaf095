//! The page frame every dashboard page shares, and HTML text helpers.
//!
//! Everything a page needs is in the page itself: the style sheet, a few
//! lines of script; the favicon comes from the dashboard. Nothing is loaded
//! from another host, and the server's Content-Security-Policy forbids it.

use std::fmt::Write as _;
use std::time::Duration;

/// The style sheet, inlined in every page.
const CSS: &str = r#"
:root { --fg:#1d2433; --muted:#5b6577; --line:#d9dee7; --bg:#f5f7fa; --card:#fff;
  --accent:#2f5bd3; --ok:#1d7a46; --bad:#b42318; }
* { box-sizing: border-box; }
body { margin:0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color:var(--fg); background:var(--bg); }
nav { background:#1d2433; color:#fff; padding:10px 24px; display:flex; gap:20px; align-items:center; }
nav a { color:#fff; text-decoration:none; }
nav .brand { font-weight:600; }
nav .links a { opacity:.85; margin-right:14px; }
main { padding:16px 24px; max-width:1400px; }
h1 { font-size:20px; margin:8px 0 16px; }
details.card, section.card { background:var(--card); border:1px solid var(--line); border-radius:6px;
  margin:0 0 14px; padding:10px 14px; }
details.card > summary { font-weight:600; cursor:pointer; font-size:15px; }
table { border-collapse:collapse; width:100%; margin-top:8px; }
th, td { text-align:left; padding:4px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
th { color:var(--muted); font-weight:600; font-size:12px; }
td.num, th.num { text-align:right; font-variant-numeric: tabular-nums; }
code, pre, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size:12px; }
pre { white-space:pre-wrap; margin:4px 0; }
a { color:var(--accent); }
.muted { color:var(--muted); }
.ok { color:var(--ok); font-weight:600; }
.bad { color:var(--bad); font-weight:600; }
.error { background:#fdecea; border:1px solid #f5c2bd; color:var(--bad); padding:8px 12px; border-radius:6px; }
.empty { padding:24px; text-align:center; color:var(--muted); }
button.copy { font-size:12px; margin-left:8px; cursor:pointer; }
form.filter input[type=text] { width:70%; font-family:ui-monospace, monospace; padding:4px 6px; }
tr.log td { font-size:12px; }
tr.log[data-level=error] td { color:var(--bad); }
tr.log[data-level=warn] td { color:#9a6700; }
svg.traffic { background:#fbfcfe; border:1px solid var(--line); border-radius:4px; }
svg.traffic .node rect { fill:#e8eefc; stroke:#2f5bd3; }
svg.traffic .node text { font-size:12px; fill:#1d2433; }
svg.traffic .edge path { fill:none; stroke:#5b6577; }
svg.traffic .edge text { font-size:12px; fill:#b42318; font-weight:600; }
"#;

/// The script every page carries: copy buttons, and the live update that
/// re-fetches the page and swaps its `<main>` (so a deployment that ends
/// while its page is open says so).
const JS: &str = r#"
document.addEventListener('click', function (e) {
  var b = e.target.closest('button.copy');
  if (!b) return;
  var text = b.getAttribute('data-copy');
  if (navigator.clipboard) navigator.clipboard.writeText(text);
  b.textContent = 'copied';
});
(function () {
  var main = document.querySelector('main');
  var every = main && Number(main.getAttribute('data-refresh'));
  if (!every) return;
  setInterval(function () {
    var follow = document.getElementById('follow');
    if (follow && !follow.checked) return;
    if (document.activeElement && document.activeElement.tagName === 'INPUT' &&
        document.activeElement.type === 'text') return;
    fetch(location.href, {headers: {'Accept': 'text/html'}}).then(function (r) {
      return r.text();
    }).then(function (html) {
      var next = new DOMParser().parseFromString(html, 'text/html').querySelector('main');
      if (!next) return;
      var keep = follow ? follow.checked : null;
      main.innerHTML = next.innerHTML;
      main.setAttribute('data-updates', String(Number(main.getAttribute('data-updates') || 0) + 1));
      main.setAttribute('data-refresh', next.getAttribute('data-refresh') || '');
      var f = document.getElementById('follow');
      if (f && keep !== null) f.checked = keep;
      if (!next.getAttribute('data-refresh')) every = 0;
    }).catch(function () {
      if (document.getElementById('dashboard-gone')) return;
      main.insertAdjacentHTML('afterbegin',
        '<p class="error" id="dashboard-gone">The dashboard does not answer.</p>');
    });
  }, every * 1000);
})();
"#;

/// The favicon, a 🧶 as Go's dashboard has, served at `/favicon.svg`
/// (and `/favicon.ico`, where browsers look unasked).
pub(crate) const FAVICON: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 100 100\">\
<text y=\".9em\" font-size=\"90\">\u{1f9f6}</text></svg>";

/// What a page puts in the frame.
pub(crate) struct Page<'a> {
    /// The `<title>`.
    pub(crate) title: &'a str,
    /// The tool the navbar names (`weaver multi`).
    pub(crate) tool: &'a str,
    /// The deployment the page is about, for the navbar's links.
    pub(crate) deployment: Option<&'a str>,
    /// Whether the navbar links to the deployment's logs.
    pub(crate) logs: bool,
    /// Re-fetch the page every this many seconds (0: never).
    pub(crate) refresh_secs: u32,
    /// The content of `<main>`.
    pub(crate) body: String,
}

// === impl Page ===

impl Page<'_> {
    /// The whole HTML document.
    pub(crate) fn render(&self) -> String {
        let mut out = String::with_capacity(self.body.len() + CSS.len() + JS.len() + 1024);
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{}</title><link rel=\"icon\" href=\"/favicon.svg\"><style>{CSS}</style></head>\
             <body><nav><a class=\"brand\" href=\"/\">{} dashboard</a>",
            escape(self.title),
            escape(self.tool)
        );
        if let Some(id) = self.deployment {
            let id = escape(&query_value(id));
            let _ = write!(
                out,
                "<span class=\"links\"><a href=\"/deployment?id={id}\">Deployment</a>\
                 <a href=\"/metrics?id={id}\">Metrics</a>"
            );
            if self.logs {
                let _ = write!(out, "<a href=\"/logs?id={id}\">Logs</a>");
            }
            out.push_str("</span>");
        }
        let refresh = if self.refresh_secs > 0 {
            self.refresh_secs.to_string()
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "</nav><main data-refresh=\"{refresh}\">{}</main><script>{JS}</script></body></html>",
            self.body
        );
        out
    }
}

/// `s` with the characters HTML gives a meaning escaped, for text and
/// attribute values alike.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `s` percent-encoded for a query string value.
pub(crate) fn query_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A duration as Go prints a truncated one: `1h2m3s`, `4m5s`, `6s`.
pub(crate) fn age(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

/// Microseconds as milliseconds with 3 decimals (`-` without calls).
pub(crate) fn millis(micros: f64, calls: u64) -> String {
    if calls == 0 {
        "-".to_owned()
    } else {
        format!("{:.3}", micros / 1000.0)
    }
}

/// A byte count in B, KiB or MiB.
pub(crate) fn bytes(n: u64) -> String {
    if n < 1024 {
        format!("{n} B")
    } else if n < 1 << 20 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20))
    }
}

/// A button that copies `text` to the clipboard.
pub(crate) fn copy_button(text: &str) -> String {
    format!(
        "<button class=\"copy\" type=\"button\" data-copy=\"{}\">copy</button>",
        escape(text)
    )
}
