//! Integration tests of the proxy against in-process backends on loopback.
//! One test binary with a module per area, to keep linking cheap.

mod support;

mod headers;
mod lifecycle;
mod protocol;
mod retry;
mod routing;
mod streaming;
