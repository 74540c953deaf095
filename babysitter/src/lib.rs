//! The multiprocess deployer behind `weaver multi deploy`.
//!
//! The babysitter reads `weaver.toml`, spawns replicas of the application
//! binary through envelopes, starts colocation groups on first activation,
//! pushes routing to subscribers, runs one proxy per listener and tears the
//! whole deployment down on ctrl-c.

pub mod config;
pub mod deploy;
pub mod registry;
pub mod status;

pub use config::{Config, ConfigError, RestartPolicy};
pub use deploy::{DeployError, Deployment, Options};
pub use registry::{Registration, Registry, RegistryError};
pub use status::{Status, StatusError, StatusServer};
