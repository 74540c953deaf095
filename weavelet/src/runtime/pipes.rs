//! Opening the control pipes the envelope passed on fixed descriptors.
//!
//! This is the one place the weavelet takes ownership of raw descriptors,
//! which needs `unsafe`.
#![allow(unsafe_code)]

use std::os::fd::{FromRawFd, OwnedFd};

use tokio::net::unix::pipe;
use weaver_proto::{ENVELOPE_TO_WEAVELET_FD, WEAVELET_TO_ENVELOPE_FD};

use crate::{Error, Result};

/// Whether this process was started by an envelope.
///
/// # Errors
///
/// If exactly one of the two variables is set.
pub(crate) fn under_envelope() -> Result<bool> {
    let r = std::env::var_os(ENVELOPE_TO_WEAVELET_FD).is_some();
    let w = std::env::var_os(WEAVELET_TO_ENVELOPE_FD).is_some();
    match (r, w) {
        (true, true) => Ok(true),
        (false, false) => Ok(false),
        _ => Err(Error::construction(format!(
            "only one of {ENVELOPE_TO_WEAVELET_FD} and {WEAVELET_TO_ENVELOPE_FD} is set; \
             a deployer must set both or neither"
        ))),
    }
}

/// Opens the envelope → weavelet and weavelet → envelope pipes.
///
/// # Errors
///
/// If a variable is not a descriptor number or the descriptor is not the
/// right end of a pipe.
pub(crate) fn open() -> Result<(pipe::Receiver, pipe::Sender)> {
    let r = fd_from_env(ENVELOPE_TO_WEAVELET_FD)?;
    let w = fd_from_env(WEAVELET_TO_ENVELOPE_FD)?;
    let bad = |var: &str, e: std::io::Error| {
        Error::construction(format!("descriptor in {var} is not a usable pipe: {e}"))
    };
    let rx = pipe::Receiver::from_owned_fd(r).map_err(|e| bad(ENVELOPE_TO_WEAVELET_FD, e))?;
    let tx = pipe::Sender::from_owned_fd(w).map_err(|e| bad(WEAVELET_TO_ENVELOPE_FD, e))?;
    Ok((rx, tx))
}

fn fd_from_env(var: &str) -> Result<OwnedFd> {
    let value = std::env::var(var).unwrap_or_default();
    let fd: i32 = value.parse().map_err(|_| {
        Error::construction(format!("{var}={value:?} is not a file descriptor number"))
    })?;
    // SAFETY: F_GETFD only reads the descriptor's flags; on a closed
    // descriptor it fails with EBADF and touches nothing.
    if fd < 3 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(Error::construction(format!(
            "{var}={fd} does not name an open descriptor"
        )));
    }
    // The descriptor arrived without close-on-exec (dup2 clears it); set it,
    // or the app's own subprocesses would hold the control pipe open.
    // SAFETY: F_SETFD only changes the descriptor's flags.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
        return Err(Error::construction(format!(
            "{var}={fd}: cannot set close-on-exec: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: the envelope opened this descriptor for us and nothing else in
    // the process owns it; we checked above that it is open. It is taken
    // exactly once, at startup.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
