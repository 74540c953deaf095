//! The order both formats list things in, so the tables and the JSON agree:
//! deployments by app, then start time; components and listeners by name;
//! replicas by pid.

use std::time::Duration;

use weaver_babysitter::{ComponentStatus, ListenerStatus, ReplicaStatus, Status};

pub(super) fn deployment(s: &Status) -> (&str, i64, &str) {
    (&s.app, s.submitted_at, &s.deployment_id)
}

pub(super) fn component(c: &ComponentStatus) -> (&str, &str) {
    (&c.name, &c.group)
}

pub(super) fn replica(r: &ReplicaStatus) -> (u32, &str) {
    (r.pid, &r.weavelet_id)
}

pub(super) fn listener(l: &ListenerStatus) -> (&str, &str) {
    (&l.name, &l.address)
}

/// How long ago `submitted_at` was at `now` (both in microseconds since the
/// Unix epoch); zero if it is in the future.
pub(super) fn age(submitted_at: i64, now: i64) -> Duration {
    Duration::from_micros(u64::try_from(now.saturating_sub(submitted_at)).unwrap_or(0))
}
