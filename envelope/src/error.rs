//! The one error type of this crate.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use weaver_proto::ConnError;

use crate::child::Exit;

/// An error starting, talking to or supervising a weavelet.
///
/// Every message is one paragraph meant for the operator running the
/// deployer. The type is `Clone` (I/O sources are shared through `Arc`) so
/// that [`Envelope::wait`](crate::Envelope::wait) can hand the same outcome to
/// every caller.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The application binary does not exist.
    #[error("binary {} does not exist", .binary.display())]
    BinaryNotFound {
        /// The configured binary.
        binary: PathBuf,
    },

    /// The application binary exists but cannot be executed.
    #[error("binary {} is not executable ({why})", .binary.display())]
    NotExecutable {
        /// The configured binary.
        binary: PathBuf,
        /// What is wrong with it, e.g. "it is a directory".
        why: &'static str,
    },

    /// The configured working directory is not a directory.
    #[error("working directory {} does not exist or is not a directory", .dir.display())]
    WorkingDir {
        /// The configured directory.
        dir: PathBuf,
    },

    /// Creating the pipes or forking the child failed.
    #[error("cannot start {}", .binary.display())]
    Spawn {
        /// The configured binary.
        binary: PathBuf,
        /// The operating system's error.
        #[source]
        source: Arc<io::Error>,
    },

    /// The dedicated thread that forks children is gone (it never exits
    /// unless it could not be created).
    #[error("the process spawner thread is not running")]
    Spawner,

    /// The child exited before it answered the handshake.
    #[error(
        "{} exited ({exit}) before completing the weaver handshake; {}",
        .binary.display(),
        stderr_summary(.stderr_tail)
    )]
    ExitedBeforeHandshake {
        /// The configured binary.
        binary: PathBuf,
        /// How it exited.
        exit: Exit,
        /// The last lines it wrote to stderr, oldest first.
        stderr_tail: Vec<String>,
    },

    /// The child did not answer the handshake in time.
    #[error(
        "{} did not complete the weaver handshake within {timeout:?}; is it a weaver application?",
        .binary.display()
    )]
    HandshakeTimeout {
        /// The configured binary.
        binary: PathBuf,
        /// The configured handshake timeout.
        timeout: Duration,
    },

    /// The child wrote something on its pipe that is not the weaver protocol,
    /// or closed the pipe, before completing the handshake.
    #[error(
        "{} did not complete the weaver handshake ({reason}); is it a weaver application?",
        .binary.display()
    )]
    NotWeavelet {
        /// The configured binary.
        binary: PathBuf,
        /// What went wrong on the pipe.
        reason: String,
    },

    /// The weavelet speaks another version of the protocol.
    #[error(
        "protocol version mismatch: the deployer speaks version {deployer} but the app binary \
         speaks version {app}; rebuild the app and the weaver tool from the same release"
    )]
    VersionMismatch {
        /// Our [`weaver_proto::PROTOCOL_VERSION`].
        deployer: u32,
        /// The version in the weavelet's handshake.
        app: u32,
    },

    /// The weavelet refused to run: its config does not match the binary.
    #[error("{}: {reason}", .binary.display())]
    Refused {
        /// The configured binary.
        binary: PathBuf,
        /// The weavelet's reason, e.g. an unknown key in a component section.
        reason: String,
    },

    /// The weavelet's handshake reply is malformed.
    #[error("{} sent an invalid weaver handshake: {reason}", .binary.display())]
    BadHandshake {
        /// The configured binary.
        binary: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A request to the weavelet failed: the weavelet answered with an error,
    /// or the pipe closed before the reply.
    #[error("{what} request to the weavelet failed")]
    Call {
        /// The request, e.g. "UpdateComponents".
        what: &'static str,
        /// Why.
        #[source]
        source: ConnError,
    },

    /// The weavelet answered a request with the wrong kind of reply.
    #[error("the weavelet answered {what} with an unexpected message ({got})")]
    UnexpectedReply {
        /// The request, e.g. "GetHealth".
        what: &'static str,
        /// The payload it sent instead.
        got: String,
    },

    /// The weavelet broke the protocol after the handshake (garbage or an
    /// oversized frame on its pipe), so the envelope killed it.
    #[error("the weavelet broke the pipe protocol ({reason}), so it was killed ({exit})")]
    Protocol {
        /// What went wrong on the pipe.
        reason: String,
        /// How the child ended.
        exit: Exit,
    },

    /// Waiting for the child's exit failed.
    #[error("cannot wait for the child process")]
    Wait {
        /// The operating system's error.
        #[source]
        source: Arc<io::Error>,
    },
}

fn stderr_summary(tail: &[String]) -> String {
    if tail.is_empty() {
        return "it wrote nothing to stderr".to_string();
    }
    format!("the last lines of its stderr:\n{}", tail.join("\n"))
}
