//! The multiprocess deployer behind `weaver multi deploy`.
//!
//! The babysitter reads `weaver.toml`, spawns replicas of the application
//! binary through envelopes, starts colocation groups on first activation,
//! pushes routing to subscribers, runs one proxy per listener and tears the
//! whole deployment down on ctrl-c. It runs inside the `weaver` CLI process;
//! the CLI's `multi status` talks to it through the [`Registry`] and its
//! [`StatusServer`].

mod config;
mod deploy;
mod registry;
mod status;

pub use config::{Config, ConfigError, RestartPolicy, Transport};
pub use deploy::{DeployError, Deployment, Options, error_chain};
pub use registry::{DATA_DIR_ENV, Registration, Registry, RegistryError, data_dir, runtime_dir};
pub use status::{
    ComponentStatus, ListenerStatus, METHODS_PATH, METRICS_PATH, MethodStats, MethodWindow,
    MethodsProvider, Metric, MetricKind, MetricsProvider, PARTIAL_HEADER, PROFILE_PATH,
    PROMETHEUS_PATH, ProfileProvider, Profiled, ReplicaStatus, STATUS_PATH, Status, StatusError,
    StatusProvider, StatusServer,
};
