//! CPU profiles of this process, for `weaver multi profile` (asked through
//! the envelope) and `weaver single profile` (asked on the loopback
//! endpoint).
//!
//! The `pprof` crate samples every thread at 100 Hz with `SIGPROF` and
//! unwinds the stack inside the signal handler. That unwinder is not
//! async-signal-safe: a sample landing inside libc, libgcc or the vDSO
//! can deadlock or crash (tikv/pprof-rs#36, #203), so those libraries are
//! blocklisted (their samples are dropped). One profile runs at a time per
//! process; the profiler is off the rest of the time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use weaver_proto::profile::{
    self, Function, Label, Line, Location, Profile, RequestError, Sample, ValueType,
};
use weaver_proto::runtime::GetProfileRequest;

/// Samples per second, as Go's `pprof.StartCPUProfile`.
const FREQUENCY: i32 = 100;

/// Libraries whose frames the signal handler must not unwind.
const BLOCKLIST: &[&str] = &["libc", "libgcc", "pthread", "vdso"];

/// Set while a profile is being collected in this process.
static PROFILING: AtomicBool = AtomicBool::new(false);

/// Why no profile was collected.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProfileError {
    /// The request asks for something that cannot be collected.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// Another profile of this process is under way.
    #[error("a profile of this process is already being collected; try again when it is done")]
    Busy,
    /// The profiler could not start or report.
    #[error("the CPU profiler failed")]
    Profiler(#[source] pprof::Error),
    /// The profiling thread panicked.
    #[error("the CPU profiler thread panicked")]
    Panicked,
}

/// Releases [`PROFILING`] when dropped.
struct Busy;

// === impl ProfileError ===

impl ProfileError {
    /// The message with its whole chain of causes, for a reply.
    pub(crate) fn chain(&self) -> String {
        crate::error::chain(self)
    }

    /// Whether the request, not the process, is at fault.
    pub(crate) fn is_bad_request(&self) -> bool {
        matches!(self, ProfileError::Request(_))
    }
}

// === impl Busy ===

impl Busy {
    fn acquire() -> Result<Busy, ProfileError> {
        PROFILING
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| Busy)
            .map_err(|_| ProfileError::Busy)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        PROFILING.store(false, Ordering::Release);
    }
}

/// Collects what `req` asks for and returns it as a gzipped pprof
/// protobuf.
///
/// # Errors
///
/// [`ProfileError::Request`] for a zero duration, a heap or unspecified
/// type; [`ProfileError::Busy`] while another profile runs;
/// [`ProfileError::Profiler`] if the profiler fails.
///
/// # Cancel safety
///
/// Dropping the future stops the profile early; the next one can start
/// once the profiler thread has noticed.
pub(crate) async fn collect(req: &GetProfileRequest) -> Result<Vec<u8>, ProfileError> {
    let duration = profile::validate(req)?;
    let busy = Busy::acquire()?;
    // Dropping `_stop` (on cancellation) wakes the profiler thread early.
    let (_stop, stopped) = mpsc::channel::<()>();
    let task = tokio::task::spawn_blocking(move || {
        let _busy = busy;
        cpu(duration, &stopped)
    });
    let profile = task.await.map_err(|_| ProfileError::Panicked)??;
    Ok(profile::encode(&profile))
}

/// Profiles the process's CPU for `duration`, or until `stopped`'s sender
/// is dropped. Blocks.
fn cpu(duration: Duration, stopped: &mpsc::Receiver<()>) -> Result<Profile, ProfileError> {
    let builder = pprof::ProfilerGuardBuilder::default().frequency(FREQUENCY);
    #[cfg(any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        target_arch = "riscv64",
        target_arch = "loongarch64"
    ))]
    let builder = builder.blocklist(BLOCKLIST);
    let guard = builder.build().map_err(ProfileError::Profiler)?;
    tracing::debug!(?duration, "CPU profile started");
    let _ = stopped.recv_timeout(duration);
    let report = guard.report().build().map_err(ProfileError::Profiler)?;
    drop(guard);
    tracing::debug!(stacks = report.data.len(), "CPU profile collected");
    Ok(to_profile(&report))
}

/// `report` as a pprof profile: two sample types (samples/count and
/// cpu/nanoseconds), one function and location per distinct symbol, a
/// `thread` label per sample.
fn to_profile(report: &pprof::Report) -> Profile {
    let mut b = Builder::default();
    b.intern("");
    let samples = ValueType {
        r#type: b.intern("samples"),
        unit: b.intern("count"),
    };
    let cpu = ValueType {
        r#type: b.intern("cpu"),
        unit: b.intern("nanoseconds"),
    };
    let thread = b.intern("thread");
    let frequency = i64::from(report.timing.frequency.max(1));
    let period = 1_000_000_000 / frequency;
    for (frames, count) in &report.data {
        let mut location_id = Vec::new();
        for symbol in frames.frames.iter().flatten() {
            location_id.push(b.location(symbol));
        }
        let count = *count as i64;
        let label = Label {
            key: thread,
            str: b.intern(&frames.thread_name_or_id()),
            ..Default::default()
        };
        b.out.sample.push(Sample {
            location_id,
            value: vec![count, count * period],
            label: vec![label],
        });
    }
    let mut out = b.out;
    out.sample_type = vec![samples, cpu];
    out.period_type = Some(cpu);
    out.period = period;
    out.time_nanos = report
        .timing
        .start_time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    out.duration_nanos = report.timing.duration.as_nanos() as i64;
    out
}

/// A profile under construction, with its string and function tables.
#[derive(Default)]
struct Builder {
    out: Profile,
    strings: HashMap<String, i64>,
    /// Demangled name → function (and location: one per function) id.
    functions: HashMap<String, u64>,
}

impl Builder {
    fn intern(&mut self, s: &str) -> i64 {
        if let Some(i) = self.strings.get(s) {
            return *i;
        }
        let i = self.out.string_table.len() as i64;
        self.out.string_table.push(s.to_owned());
        self.strings.insert(s.to_owned(), i);
        i
    }

    /// The location of `symbol`, added on first sight.
    fn location(&mut self, symbol: &pprof::Symbol) -> u64 {
        let name = symbol.name();
        if let Some(id) = self.functions.get(&name) {
            return *id;
        }
        let id = self.out.function.len() as u64 + 1;
        let function = Function {
            id,
            name: self.intern(&name),
            system_name: self.intern(&symbol.sys_name()),
            filename: self.intern(&symbol.filename()),
            start_line: 0,
        };
        self.out.function.push(function);
        self.out.location.push(Location {
            id,
            line: vec![Line {
                function_id: id,
                line: i64::from(symbol.lineno()),
                column: 0,
            }],
            ..Default::default()
        });
        self.functions.insert(name, id);
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weaver_proto::runtime::ProfileType;

    fn cpu_request(ns: i64) -> GetProfileRequest {
        GetProfileRequest {
            profile_type: ProfileType::Cpu as i32,
            cpu_duration_ns: ns,
        }
    }

    /// Spins until `stop` is set.
    #[inline(never)]
    fn spin_for_the_profile(stop: &AtomicBool) -> u64 {
        let mut x = 0u64;
        while !stop.load(Ordering::Relaxed) {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
        }
        x
    }

    /// One test, so no other test of this binary holds the profiler.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cpu_profile_decodes_and_names_the_busy_function() {
        bad_requests_and_a_second_profile_are_refused().await;
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let spinner = std::thread::spawn({
            let stop = stop.clone();
            move || spin_for_the_profile(&stop)
        });
        let data = collect(&cpu_request(500_000_000)).await;
        stop.store(true, Ordering::Relaxed);
        spinner.join().expect("spinner");
        let data = data.expect("profile");

        let p = profile::decode(&data).expect("a gzipped pprof profile");
        let s = |i: i64| p.string_table[i as usize].as_str();
        let types: Vec<(&str, &str)> = p
            .sample_type
            .iter()
            .map(|t| (s(t.r#type), s(t.unit)))
            .collect();
        assert_eq!(types, [("samples", "count"), ("cpu", "nanoseconds")]);
        assert_eq!(p.period, 10_000_000);
        assert!(!p.sample.is_empty(), "a spinning thread is sampled");
        for sample in &p.sample {
            assert_eq!(sample.value[1], sample.value[0] * p.period);
            for id in &sample.location_id {
                assert!(p.location.iter().any(|l| l.id == *id), "location {id}");
            }
        }
        assert!(
            p.function
                .iter()
                .any(|f| s(f.name).contains("spin_for_the_profile")),
            "the busy function's frame is in the profile"
        );
    }

    async fn bad_requests_and_a_second_profile_are_refused() {
        let zero = collect(&cpu_request(0)).await.unwrap_err();
        assert_eq!(
            zero.chain(),
            "invalid zero duration for the CPU profile collection"
        );
        assert!(zero.is_bad_request());
        let heap = GetProfileRequest {
            profile_type: ProfileType::Heap as i32,
            cpu_duration_ns: 1,
        };
        let heap = collect(&heap).await.unwrap_err().chain();
        assert!(
            heap.starts_with("heap profiles are not supported"),
            "{heap}"
        );

        let held = Busy::acquire().expect("no profile runs yet");
        let busy = collect(&cpu_request(1_000_000)).await.unwrap_err();
        assert!(matches!(busy, ProfileError::Busy), "{busy}");
        drop(held);
    }
}
