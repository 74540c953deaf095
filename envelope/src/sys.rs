//! The crate's only unsafe code: setting up the forked child before exec.
//!
//! It runs between fork and exec in a copy of a multithreaded process, where
//! only async-signal-safe calls are allowed: no allocation, no locks. Every
//! call below is a plain system call on integers.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::RawFd;

use nix::sys::prctl;
use nix::sys::signal::Signal;
use nix::unistd;
use weaver_proto::{ENVELOPE_TO_WEAVELET_FD_NUM, WEAVELET_TO_ENVELOPE_FD_NUM};

/// The lowest descriptor used for the intermediate copies: above 3 and 4, so
/// neither copy can already sit on a target number.
const SCRATCH_FD_MIN: libc::c_int = 10;

/// Arranges for the child to get `read_end` as fd 3 and `write_end` as fd 4,
/// and SIGKILL when the thread that forks it dies.
///
/// Both descriptors must be close-on-exec (so the originals vanish at exec)
/// and stay open until the spawn returns.
pub(crate) fn wire_child(cmd: &mut tokio::process::Command, read_end: RawFd, write_end: RawFd) {
    let parent = unistd::getpid();
    // SAFETY: the closure runs in the forked child before exec. It only makes
    // async-signal-safe system calls (prctl, getppid, fcntl, dup2), allocates
    // nothing and takes no locks. `read_end` and `write_end` are valid in the
    // child because the caller keeps them open until `spawn` returns.
    unsafe {
        cmd.pre_exec(move || {
            prctl::set_pdeathsig(Signal::SIGKILL)?;
            // If the deployer died between fork and prctl, no signal will
            // come: give up now instead of running unsupervised.
            if unistd::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            move_fd(read_end, ENVELOPE_TO_WEAVELET_FD_NUM)?;
            move_fd(write_end, WEAVELET_TO_ENVELOPE_FD_NUM)
        });
    }
}

/// Makes `target` a copy of `fd` that survives exec.
///
/// `dup2(fd, fd)` is a no-op that keeps FD_CLOEXEC, and `fd` may already sit
/// on the other target; copying to a scratch number first avoids both. The
/// scratch copy is close-on-exec and disappears at exec.
fn move_fd(fd: RawFd, target: RawFd) -> io::Result<()> {
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) only reads integers and returns a new
    // descriptor; it is async-signal-safe.
    let scratch = check(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, SCRATCH_FD_MIN) })?;
    // SAFETY: dup2 on two descriptors is async-signal-safe; replacing
    // whatever `target` held is intended, and dup2 clears FD_CLOEXEC on it.
    check(unsafe { libc::dup2(scratch, target) })?;
    Ok(())
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}
