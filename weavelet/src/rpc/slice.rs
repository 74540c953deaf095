//! Asking the scheduler for a short time slice on a latency-sensitive
//! thread.
//!
//! Linux's EEVDF scheduler lets a thread ask for a shorter slice than the
//! default (`sched_attr.sched_runtime` for `SCHED_OTHER`, Linux 6.12 and
//! later, no privilege needed). A thread with a short slice gets an earlier
//! virtual deadline, so when it is woken it preempts a thread with the
//! default slice instead of waiting for it to block or use up its slice. An
//! RPC server thread runs for microseconds per request: with a short slice,
//! a caller on the same CPU that sends a request finds the reply there as
//! its send returns. Older kernels refuse or ignore the request; that only
//! costs the gain.
//!
//! `sched_setattr` has no safe wrapper in `nix` or `std`: this module is the
//! one `unsafe` call, on a struct it owns.
#![allow(unsafe_code)]

/// The slice asked for; the kernel's minimum is 100 µs.
const SLICE_NS: u64 = 100_000;

/// `struct sched_attr` (include/uapi/linux/sched/types.h), version 1.
#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    sched_policy: u32,
    sched_flags: u64,
    sched_nice: i32,
    sched_priority: u32,
    sched_runtime: u64,
    sched_deadline: u64,
    sched_period: u64,
    sched_util_min: u32,
    sched_util_max: u32,
}

/// Asks for a short slice for the calling thread, keeping its policy
/// (`SCHED_OTHER`) and nice value. Returns whether the kernel took it.
pub(crate) fn request_short_slice() -> bool {
    // `sched_setattr` sets the nice value too: pass on the current one.
    // SAFETY: `getpriority` only reads; on Linux, `PRIO_PROCESS` with id 0
    // is the calling thread. (-1 is a valid answer as well as the error
    // value; an error here can only be ESRCH for ourselves, which is not.)
    let current_nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        sched_policy: libc::SCHED_OTHER as u32,
        sched_nice: current_nice,
        sched_runtime: SLICE_NS,
        ..SchedAttr::default()
    };
    // SAFETY: `attr` is a valid, fully initialized `sched_attr` of the size
    // it declares, alive for the call; pid 0 is the calling thread; flags 0.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    rc == 0
}
