//! Routing of a component over its group's replicas (shared with the
//! other deployers, in `weaver_proto::routing`).

pub(crate) use weaver_proto::routing::{local_info, routing_info};
