//! `weaver::Context`: the first argument of every component method.

use std::time::{Duration, Instant};

/// Per-call context: the deadline, carried across process boundaries.
///
/// Cancellation follows Rust's rules: dropping a call's future cancels it,
/// and a remote call that is dropped tells the remote replica to cancel the
/// handler.
#[derive(Debug, Clone, Default)]
pub struct Context {
    deadline: Option<Instant>,
}

impl Context {
    /// A context without a deadline.
    pub fn new() -> Self {
        Self::default()
    }

    /// This context with a deadline `timeout` from now (or the existing
    /// deadline, if that is sooner).
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        self.with_deadline(Instant::now() + timeout)
    }

    /// This context with the given deadline (or the existing one, if sooner).
    pub fn with_deadline(&self, deadline: Instant) -> Self {
        let deadline = match self.deadline {
            Some(d) if d < deadline => d,
            _ => deadline,
        };
        Self {
            deadline: Some(deadline),
        }
    }

    /// The deadline, if any.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Time left before the deadline; `None` without a deadline, zero once
    /// it has passed.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }
}
