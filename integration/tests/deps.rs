//! The workspace's dependency edges are the ones in `deps.txt`: a new edge
//! between our crates (say, an app library pulling in the babysitter) fails
//! here until it is reviewed and written down.

use std::collections::BTreeSet;
use std::path::Path;

#[test]
fn workspace_edges_match_deps_txt() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let workspace: toml_lite::Table =
        toml_lite::parse(&std::fs::read_to_string(root.join("Cargo.toml"))?);
    let mut members = toml_lite::string_array(&workspace, "members");
    // The benchmarks are a workspace of their own (kept out of `cargo test
    // --workspace`), but their edges into our crates are reviewed all the
    // same.
    members.push("benches".to_string());
    let mut packages = Vec::new();
    for m in &members {
        let text = std::fs::read_to_string(root.join(m).join("Cargo.toml"))?;
        let t = toml_lite::parse(&text);
        packages.push((
            toml_lite::package_name(&t),
            toml_lite::dependency_names(&text),
        ));
    }
    let ours: BTreeSet<&str> = packages.iter().map(|(n, _)| n.as_str()).collect();
    let got: BTreeSet<String> = packages
        .iter()
        .flat_map(|(n, deps)| {
            deps.iter()
                .filter(|d| ours.contains(d.as_str()))
                .map(move |d| format!("{n} -> {d}"))
        })
        .collect();
    let want: BTreeSet<String> = std::fs::read_to_string(root.join("deps.txt"))?
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    assert_eq!(
        got, want,
        "workspace dependency edges changed; update deps.txt if intended"
    );
    Ok(())
}

/// Just enough TOML reading for Cargo manifests (no extra dependency).
mod toml_lite {
    pub(crate) type Table = Vec<(String, String)>;

    /// `key = value` lines with their section prefix, e.g.
    /// `package.name = "x"`.
    pub(crate) fn parse(text: &str) -> Table {
        let mut section = String::new();
        let mut out = Vec::new();
        let mut lines = text.lines().peekable();
        while let Some(line) = lines.next() {
            let line = line.trim();
            if line.starts_with('[') {
                section = line.trim_matches(['[', ']']).to_string();
            } else if let Some((k, v)) = line.split_once('=') {
                let mut v = v.trim().to_string();
                // Multi-line arrays.
                if v.starts_with('[') && !v.contains(']') {
                    for more in lines.by_ref() {
                        v.push_str(more.trim());
                        if more.contains(']') {
                            break;
                        }
                    }
                }
                out.push((format!("{section}.{}", k.trim()), v));
            }
        }
        out
    }

    pub(crate) fn string_array(t: &Table, key: &str) -> Vec<String> {
        t.iter()
            .find(|(k, _)| k.ends_with(&format!(".{key}")))
            .map(|(_, v)| {
                v.trim_matches(['[', ']'])
                    .split(',')
                    .map(|s| s.trim().trim_matches('"').to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) fn package_name(t: &Table) -> String {
        t.iter()
            .find(|(k, _)| k == "package.name")
            .map(|(_, v)| v.trim_matches('"').to_string())
            .unwrap_or_default()
    }

    /// Names in `[dependencies]` (not dev- or build-dependencies).
    pub(crate) fn dependency_names(text: &str) -> Vec<String> {
        let mut in_deps = false;
        let mut names = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                in_deps = line == "[dependencies]";
            } else if in_deps
                && let Some(name) = line.split(['.', '=', ' ']).next().filter(|n| !n.is_empty())
            {
                names.push(name.to_string());
            }
        }
        names
    }
}
