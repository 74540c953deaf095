//! The task that watches one child from handshake to reaping.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until, timeout};
use weaver_proto::Conn;
use weaver_proto::runtime::{EnvelopeMsg, WeaveletMsg};

use crate::child::{Child, Exit};
use crate::error::Error;
use crate::pipe::Pipes;
use crate::progress::Progress;

/// What the owner asks of the supervisor.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Command {
    Terminate,
    Kill,
}

/// The final outcome, published once.
pub(crate) type Outcome = watch::Sender<Option<Result<Exit, Error>>>;

/// Everything the supervisor owns.
pub(crate) struct Supervisor<C> {
    pub(crate) child: C,
    /// Tells why the weavelet's pipe closed.
    pub(crate) conn: Conn<EnvelopeMsg, WeaveletMsg>,
    pub(crate) pipes: Pipes,
    /// Fires when the serve loop has handled the last message the weavelet
    /// sent.
    pub(crate) read_done: oneshot::Receiver<()>,
    /// The tasks that read the child's pipes: the serve loop and the output
    /// captures. They end at end of stream.
    pub(crate) pumps: JoinSet<()>,
    /// Tells draining pumps from stuck ones.
    pub(crate) progress: Arc<Progress>,
    /// Closed when the `Envelope` is dropped.
    pub(crate) commands: mpsc::UnboundedReceiver<Command>,
    pub(crate) outcome: Outcome,
    pub(crate) stop_grace: Duration,
    pub(crate) drain_timeout: Duration,
}

/// What the supervisor has seen while it waits for the exit.
#[derive(Default)]
struct Watch {
    /// The connection closed (either direction); no need to watch it again.
    pipe_closed: bool,
    /// Everything the weavelet sent has been read and handled.
    read_ended: bool,
    /// The owner is gone; no more commands.
    detached: bool,
    /// When to kill a child that lingers.
    deadline: Option<Instant>,
    /// The pipe broke the protocol; the child was killed for it.
    violation: Option<String>,
}

// === impl Supervisor ===

impl<C: Child> Supervisor<C> {
    /// Waits for the exit, drains every pipe into the handler, reaps, and
    /// only then publishes the outcome.
    pub(crate) async fn run(mut self) {
        let (status, violation) = self.until_exit().await;
        if !drain(&mut self.pumps, self.drain_timeout, &self.progress).await {
            tracing::warn!(
                timeout = ?self.drain_timeout,
                "child exited but its pipes stay open and silent (held by a process it started?); \
                 stopped reading them"
            );
        }
        // The child is gone: requests still waiting, or made from now on,
        // fail at once instead of waiting on a pipe nobody answers.
        self.pipes.close_all();
        let outcome = match (status, violation) {
            (Ok(exit), None) => Ok(exit),
            (Ok(exit), Some(reason)) => Err(Error::Protocol { reason, exit }),
            (Err(source), _) => Err(Error::Wait {
                source: Arc::new(source),
            }),
        };
        match &outcome {
            Ok(exit) => tracing::info!(%exit, "weavelet exited"),
            Err(error) => tracing::warn!(%error, "weavelet ended"),
        }
        self.outcome.send_replace(Some(outcome));
    }

    async fn until_exit(&mut self) -> (io::Result<Exit>, Option<String>) {
        let mut watch = Watch::default();
        loop {
            let far = Instant::now() + Duration::from_secs(86_400);
            tokio::select! {
                status = self.child.wait() => return (status, watch.violation),
                served = &mut self.read_done, if !watch.read_ended => {
                    watch.read_ended = true;
                    match served {
                        Ok(()) => self.on_read_end(&mut watch).await,
                        Err(_) => {
                            // Nothing the weavelet sends can be handled now.
                            tracing::error!("serving the weavelet failed (a handler panicked?); killing it");
                            self.kill();
                        }
                    }
                }
                reason = self.conn.closed(), if !watch.pipe_closed => {
                    // A weavelet closes its pipes as it exits; give it time
                    // to do so.
                    tracing::debug!(%reason, "weavelet pipe closed");
                    watch.pipe_closed = true;
                    watch.arm(self.stop_grace);
                }
                command = self.commands.recv(), if !watch.detached => {
                    self.on_command(command, &mut watch);
                }
                () = sleep_until(watch.deadline.unwrap_or(far)), if watch.deadline.is_some() => {
                    tracing::warn!(grace = ?self.stop_grace, "weavelet outlived its pipe; killing it");
                    watch.deadline = None;
                    self.kill();
                }
            }
        }
    }

    async fn on_read_end(&mut self, watch: &mut Watch) {
        // The serve loop ended normally, so the reading has stopped and the
        // connection is closed already: this does not wait.
        let reason = self.conn.closed().await;
        if let Some(violation) = violation(self.pipes.saw_end(), &reason) {
            tracing::warn!(%violation, "weavelet broke the pipe protocol; killing it");
            watch.violation = Some(violation);
            self.kill();
        } else {
            watch.arm(self.stop_grace);
        }
    }

    fn on_command(&mut self, command: Option<Command>, watch: &mut Watch) {
        let result = match command {
            Some(Command::Terminate) => self.child.terminate(),
            Some(Command::Kill) => self.child.kill(),
            None => {
                // The owner dropped the envelope: close the pipe so the
                // weavelet exits on end of stream, and keep draining its
                // output until it does.
                watch.detached = true;
                self.pipes.close_to_weavelet();
                watch.arm(self.stop_grace);
                Ok(())
            }
        };
        if let Err(error) = result {
            tracing::warn!(%error, ?command, "cannot signal the weavelet");
        }
    }

    fn kill(&mut self) {
        if let Err(error) = self.child.kill() {
            tracing::warn!(%error, "cannot kill the weavelet");
        }
    }
}

// === impl Watch ===

impl Watch {
    /// Kills the child `grace` from now, unless an earlier kill is due.
    fn arm(&mut self, grace: Duration) {
        let at = Instant::now() + grace;
        self.deadline = Some(self.deadline.map_or(at, |d| d.min(at)));
    }
}

/// Waits for every pump to end, giving up (and aborting the rest) once
/// `idle` passes with no pump delivering anything and none inside a handler
/// call. Returns whether all ended.
pub(crate) async fn drain(pumps: &mut JoinSet<()>, idle: Duration, progress: &Progress) -> bool {
    loop {
        let step = timeout(idle, async {
            tokio::select! {
                next = pumps.join_next() => next.is_none(),
                () = progress.next() => false,
            }
        })
        .await;
        match step {
            Ok(true) => return true,
            Ok(false) => continue,
            // A slow handler is not a stuck pipe.
            Err(_) if progress.busy() => continue,
            Err(_) => {
                pumps.abort_all();
                return false;
            }
        }
    }
}

/// Why the weavelet's stream stopped being read, if it is because the
/// weavelet broke the protocol: `None` for a plain end of stream.
///
/// `reason` is the connection's close reason, `saw_end` whether the stream
/// itself ended (see [`Pipes::saw_end`]).
pub(crate) fn violation(saw_end: bool, reason: &str) -> Option<String> {
    if is_violation(reason) {
        return Some(reason.to_string());
    }
    // The stream did not end, so the frame codec stopped reading; a failed
    // write closed the connection first and hid the codec's reason.
    (!saw_end).then(|| "unparseable bytes".to_string())
}

/// Whether a connection close reason means the peer sent bytes that are not
/// the protocol, as opposed to a plain end of stream or a write failure.
///
/// The connection reports its reason only as text; these fragments are the
/// frame codec's messages (`weaver_proto::FrameError`).
fn is_violation(reason: &str) -> bool {
    ["exceeds the maximum", "is not a valid", "inside a frame"]
        .iter()
        .any(|fragment| reason.contains(fragment))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_are_classified() {
        assert!(!is_violation("end of stream"));
        assert!(!is_violation(
            "i/o error on frame stream: Broken pipe (os error 32)"
        ));
        assert!(is_violation(
            "frame of 4294967295 bytes exceeds the maximum of 67108864 bytes"
        ));
        assert!(is_violation(
            "frame is not a valid WeaveletMsg message: failed to decode"
        ));
        assert!(is_violation(
            "stream ended inside a frame after 3 of 4 bytes"
        ));
    }

    #[test]
    fn a_stream_that_never_ended_was_rejected_by_the_codec() {
        assert_eq!(violation(true, "end of stream"), None);
        assert_eq!(
            violation(true, "i/o error on frame stream: Broken pipe"),
            None
        );
        assert!(violation(false, "i/o error on frame stream: Broken pipe").is_some());
        let reason = "frame of 5 bytes exceeds the maximum of 4 bytes";
        assert_eq!(violation(true, reason).as_deref(), Some(reason));
    }

    #[tokio::test(start_paused = true)]
    async fn drain_gives_up_on_silent_pumps_but_not_on_busy_ones() {
        let progress = Arc::new(Progress::default());
        let mut pumps = JoinSet::new();
        let p = progress.clone();
        pumps.spawn(async move {
            // Delivering for 5 idle periods, then done.
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_millis(900)).await;
                p.made();
            }
        });
        assert!(drain(&mut pumps, Duration::from_secs(1), &progress).await);

        // A handler call far longer than the idle limit is waited for.
        let p = progress.clone();
        pumps.spawn(async move {
            p.handling(tokio::time::sleep(Duration::from_secs(30)))
                .await;
        });
        assert!(drain(&mut pumps, Duration::from_secs(1), &progress).await);

        pumps.spawn(std::future::pending());
        assert!(!drain(&mut pumps, Duration::from_secs(1), &progress).await);
        let aborted = pumps.join_next().await.expect("the silent pump");
        assert!(aborted.expect_err("aborted").is_cancelled());
    }
}
