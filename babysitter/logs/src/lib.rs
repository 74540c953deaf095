//! The log store of `weaver multi` deployments and CEL queries over it.
