//! `weaver multi profile` and `weaver single profile`: a CPU profile of a
//! running deployment (every group, merged by its babysitter) or of a
//! single process, written to `$TMPDIR/serviceweaver_<app>_cpu_profile_*.pb.gz`
//! (or, with `--format=svg`, a flame graph `….svg`), whose path is printed.
//!
//! The profile is collected where the app runs; this module checks the
//! request, finds the one deployment the prefix names, waits (with a
//! spinner on a terminal) and writes the file.

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use weaver_proto::profile::{self, PROFILE_PATH, Profile};
use weaver_proto::runtime::{GetProfileRequest, ProfileType};

use crate::UsageError;
use crate::status::{self, FetchedProfile};

/// How long past the profile's own duration the answer may take.
const SLACK: Duration = Duration::from_secs(30);

/// How often the spinner turns.
const SPIN: Duration = Duration::from_millis(100);

/// The spinner's frames.
const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/// Kinds of profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum Kind {
    /// Where the CPU time goes, sampled at 100 Hz.
    #[default]
    Cpu,
    /// Live heap allocations (not supported: no sampling allocator).
    Heap,
}

/// What `profile` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum Format {
    /// The gzipped pprof protobuf (`.pb.gz`), for pprof and speedscope.
    #[default]
    Pprof,
    /// A flame graph (`.svg`) to open in a browser.
    Svg,
}

/// The arguments both `profile` commands take.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// How long to profile for, e.g. 30s, 500ms, 1m.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub(crate) duration: Duration,
    /// The kind of profile.
    #[arg(long = "type", value_enum, default_value_t = Kind::Cpu)]
    pub(crate) kind: Kind,
    /// What to write.
    #[arg(long, value_enum, default_value_t = Format::Pprof)]
    pub(crate) format: Format,
    /// A prefix of the deployment id (as `status` shows it).
    pub(crate) prefix: String,
}

/// Something a prefix may name.
pub(crate) struct Candidate {
    /// The deployment id.
    pub(crate) id: String,
    /// The app's name.
    pub(crate) app: String,
    /// Where its profiles are served.
    pub(crate) addr: SocketAddr,
}

// === impl Args ===

impl Args {
    /// The request these arguments make.
    ///
    /// # Errors
    ///
    /// [`UsageError`] for a zero duration or a heap profile.
    pub(crate) fn request(&self) -> Result<GetProfileRequest, UsageError> {
        let req = GetProfileRequest {
            profile_type: match self.kind {
                Kind::Cpu => ProfileType::Cpu,
                Kind::Heap => ProfileType::Heap,
            } as i32,
            cpu_duration_ns: i64::try_from(self.duration.as_nanos()).unwrap_or(i64::MAX),
        };
        profile::validate(&req).map_err(|e| UsageError(e.to_string()))?;
        Ok(req)
    }
}

/// Parses `30s`, `1.5s`, `500ms`, `2m`, `1h`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text
        .find(|c: char| c.is_ascii_alphabetic())
        .map_or((text, ""), |i| text.split_at(i));
    let scale = match unit {
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("{text:?} is not a duration like 30s, 500ms or 2m")),
    };
    number
        .parse::<f64>()
        .ok()
        .map(|n| n * scale)
        .filter(|secs| secs.is_finite() && *secs >= 0.0 && *secs < 1e9)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{text:?} is not a duration like 30s, 500ms or 2m"))
}

/// The one candidate whose id starts with `prefix`.
///
/// # Errors
///
/// If none or several do.
pub(crate) fn pick(candidates: Vec<Candidate>, prefix: &str) -> anyhow::Result<Candidate> {
    let mut matching: Vec<Candidate> = candidates
        .into_iter()
        .filter(|c| c.id.starts_with(prefix))
        .collect();
    match matching.len() {
        0 => anyhow::bail!("no deployment with prefix {prefix:?}"),
        1 => Ok(matching.remove(0)),
        _ => {
            let ids: Vec<&str> = matching.iter().map(|c| c.id.as_str()).collect();
            anyhow::bail!(
                "multiple deployments with prefix {prefix:?}: {}",
                ids.join(", ")
            )
        }
    }
}

/// Profiles `target` as `req` asks, writes the file and prints its path.
///
/// # Errors
///
/// If the profile cannot be collected or the file cannot be written.
pub(crate) async fn profile(
    target: &Candidate,
    req: GetProfileRequest,
    format: Format,
) -> anyhow::Result<()> {
    let duration = Duration::from_nanos(u64::try_from(req.cpu_duration_ns).unwrap_or(0));
    let path = format!("{PROFILE_PATH}?{}", profile::to_query(&req));
    let fetch = status::fetch_profile(target.addr, &path, duration + SLACK);
    let spin = duration > Duration::from_secs(1) && std::io::stderr().is_terminal();
    let fetched = if spin {
        with_spinner(fetch, duration).await
    } else {
        fetch.await
    }
    .with_context(|| format!("cannot profile deployment {}", target.id))?;
    let FetchedProfile { data, partial } = fetched;
    if let Some(errors) = partial {
        eprintln!("Partial profile data received: {errors}");
    }
    let file = match format {
        Format::Pprof => write(&target.app, ".pb.gz", &data)?,
        Format::Svg => {
            let p = profile::decode(&data).context("the profile received is not valid")?;
            let title = format!("{} CPU profile ({duration:?})", target.app);
            write(&target.app, ".svg", &flame_graph(&p, &title))?
        }
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", file.display())?;
    out.flush()?;
    Ok(())
}

/// Awaits `fut`, drawing `⠋ [8s/30s] Profiling in progress...` on stderr
/// meanwhile, and erases it when done.
async fn with_spinner<T>(fut: impl Future<Output = T>, duration: Duration) -> T {
    let start = Instant::now();
    let mut tick = tokio::time::interval(SPIN);
    tokio::pin!(fut);
    let mut frame = 0;
    let out = loop {
        tokio::select! {
            out = &mut fut => break out,
            _ = tick.tick() => {
                let elapsed = start.elapsed().as_secs().min(duration.as_secs());
                eprint!(
                    "\r{} [{elapsed}s/{}s] Profiling in progress...",
                    FRAMES[frame % FRAMES.len()],
                    duration.as_secs()
                );
                frame += 1;
            }
        }
    };
    eprint!("\r\x1b[K");
    out
}

/// `p`'s distinct stacks, root first, with their sample counts (each
/// sample's first value), sorted.
fn stacks(p: &Profile) -> Vec<(Vec<String>, u64)> {
    let name = |id: u64| {
        p.function
            .iter()
            .find(|f| f.id == id)
            .and_then(|f| p.string_table.get(usize::try_from(f.name).ok()?))
            .map_or("?", String::as_str)
    };
    let mut stacks: BTreeMap<Vec<String>, i64> = BTreeMap::new();
    for s in &p.sample {
        let mut frames = Vec::new();
        // A sample lists its locations leaf first, and a location its
        // inlined callee first: reversing both puts the root first.
        for id in s.location_id.iter().rev() {
            let Some(loc) = p.location.iter().find(|l| l.id == *id) else {
                continue;
            };
            for line in loc.line.iter().rev() {
                frames.push(name(line.function_id).to_owned());
            }
        }
        if frames.is_empty() {
            frames.push("[unknown]".to_owned());
        }
        *stacks.entry(frames).or_default() += s.value.first().copied().unwrap_or(0);
    }
    stacks
        .into_iter()
        .filter_map(|(stack, n)| Some((stack, u64::try_from(n).ok().filter(|n| *n > 0)?)))
        .collect()
}

/// The flame graph of `p`, as SVG.
fn flame_graph(p: &Profile, title: &str) -> Vec<u8> {
    crate::flame::svg(title, &stacks(p)).into_bytes()
}

/// Writes `data` to a new `serviceweaver_<app>_cpu_profile_*<suffix>` in
/// the temporary directory; returns its path.
fn write(app: &str, suffix: &str, data: &[u8]) -> anyhow::Result<PathBuf> {
    let safe: String = app
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut file = tempfile::Builder::new()
        .prefix(&format!("serviceweaver_{safe}_cpu_profile_"))
        .suffix(suffix)
        .tempfile_in(std::env::temp_dir())
        .context("cannot create the profile file")?;
    file.write_all(data)
        .context("cannot write the profile file")?;
    let (_, path) = file.keep().context("cannot keep the profile file")?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(id: &str) -> Candidate {
        Candidate {
            id: id.to_owned(),
            app: "app".to_owned(),
            addr: SocketAddr::from(([127, 0, 0, 1], 1)),
        }
    }

    #[test]
    fn durations_parse_in_the_usual_units() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        for bad in ["30", "s", "-1s", "1d", ""] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn zero_durations_and_heap_profiles_are_refused_up_front() {
        let args = |duration, kind| Args {
            duration,
            kind,
            format: Format::Pprof,
            prefix: String::new(),
        };
        assert_eq!(
            args(Duration::ZERO, Kind::Cpu).request().unwrap_err().0,
            "invalid zero duration for the CPU profile collection"
        );
        let heap = args(Duration::from_secs(1), Kind::Heap).request();
        assert!(
            heap.unwrap_err()
                .0
                .starts_with("heap profiles are not supported")
        );
        let ok = args(Duration::from_millis(1500), Kind::Cpu)
            .request()
            .unwrap();
        assert_eq!(ok.cpu_duration_ns, 1_500_000_000);
    }

    #[test]
    fn a_prefix_must_name_exactly_one_deployment() {
        let all = || vec![candidate("abc-1"), candidate("abd-2")];
        assert_eq!(pick(all(), "abc").unwrap().id, "abc-1");
        assert_eq!(
            pick(all(), "x").err().unwrap().to_string(),
            "no deployment with prefix \"x\""
        );
        assert_eq!(
            pick(all(), "ab").err().unwrap().to_string(),
            "multiple deployments with prefix \"ab\": abc-1, abd-2"
        );
    }

    #[test]
    fn the_file_is_named_after_the_app_in_the_temporary_directory() {
        let path = write("my app", ".pb.gz", b"data").unwrap();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(
            name.starts_with("serviceweaver_my_app_cpu_profile_"),
            "{name}"
        );
        assert!(name.ends_with(".pb.gz"), "{name}");
        assert_eq!(std::fs::read(&path).unwrap(), b"data");
        std::fs::remove_file(path).unwrap();
    }

    /// A profile of two stacks: main → spin (3 samples, twice) and main
    /// (1 sample), the spin frame an inlined call in main's location.
    fn two_stacks() -> Profile {
        use weaver_proto::profile::{Function, Line, Location, Sample};
        let strings = ["", "samples", "count", "app::main", "app::spin;x"];
        let function = |id, name| Function {
            id,
            name,
            ..Default::default()
        };
        let line = |function_id| Line {
            function_id,
            line: 0,
            column: 0,
        };
        let sample = |location_id: Vec<u64>, n| Sample {
            location_id,
            value: vec![n],
            label: vec![],
        };
        Profile {
            string_table: strings.map(String::from).to_vec(),
            function: vec![function(1, 3), function(2, 4)],
            location: vec![
                Location {
                    id: 10,
                    line: vec![line(2), line(1)],
                    ..Default::default()
                },
                Location {
                    id: 11,
                    line: vec![line(1)],
                    ..Default::default()
                },
            ],
            sample: vec![
                sample(vec![10], 3),
                sample(vec![11], 1),
                sample(vec![10], 3),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn stacks_fold_root_first_with_inlined_frames_expanded() {
        let owned = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            stacks(&two_stacks()),
            [
                (owned(&["app::main"]), 1),
                (owned(&["app::main", "app::spin;x"]), 6)
            ]
        );
    }

    #[test]
    fn the_flame_graph_names_the_functions() {
        let svg = String::from_utf8(flame_graph(&two_stacks(), "app CPU profile")).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("app::spin;x"), "{svg}");
        assert!(svg.contains("app CPU profile"), "{svg}");
        let empty = String::from_utf8(flame_graph(&Profile::default(), "t")).unwrap();
        assert!(empty.contains("no samples"), "{empty}");
    }
}
