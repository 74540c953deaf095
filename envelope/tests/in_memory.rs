//! The `Child` seam: an envelope over an in-memory child, with the test
//! playing the weavelet.

use std::io;
use std::sync::Arc;

use tokio::sync::watch;
use weaver_envelope::weaver_proto::runtime::*;
use weaver_envelope::weaver_proto::{Conn, MAX_FRAME_LEN, PROTOCOL_VERSION};
use weaver_envelope::{Child, ChildIo, Config, Envelope, Exit};

use crate::common::*;

/// A child whose exit is whatever the test (or a signal) says.
struct MemChild {
    exit: Arc<watch::Sender<Option<Exit>>>,
}

impl MemChild {
    fn end(&self, exit: Exit) {
        self.exit
            .send_if_modified(|slot| slot.is_none() && slot.replace(exit).is_none());
    }
}

impl Child for MemChild {
    fn id(&self) -> Option<u32> {
        None
    }

    fn terminate(&mut self) -> io::Result<()> {
        self.end(Exit::from_signal(15));
        Ok(())
    }

    fn kill(&mut self) -> io::Result<()> {
        self.end(Exit::from_signal(9));
        Ok(())
    }

    async fn wait(&mut self) -> io::Result<Exit> {
        let mut rx = self.exit.subscribe();
        let exit = rx
            .wait_for(Option::is_some)
            .await
            .map_err(io::Error::other)?;
        Ok(exit.expect("checked by wait_for"))
    }
}

#[tokio::test]
async fn in_memory_child_speaks_the_same_protocol() {
    trace_init();
    let (env_to_wv, wv_from_env) = tokio::io::duplex(1 << 16);
    let (wv_to_env, env_from_wv) = tokio::io::duplex(1 << 16);
    let exit = Arc::new(watch::channel(None).0);
    let child = MemChild { exit: exit.clone() };
    let io = ChildIo {
        to_weavelet: Box::new(env_to_wv),
        from_weavelet: Box::new(env_from_wv),
        stdout: None,
        stderr: None,
    };

    // The weavelet: handshake, one log batch, answer one health check, then
    // exit 0 at end of stream.
    let weavelet = tokio::spawn(async move {
        let (conn, mut incoming): (Conn<WeaveletMsg, EnvelopeMsg>, _) =
            Conn::new(wv_from_env, wv_to_env, MAX_FRAME_LEN);
        let hello = incoming.recv().await.expect("handshake");
        let Some(envelope_msg::Msg::WeaveletArgs(args)) = hello.msg else {
            panic!("not a handshake: {hello:?}");
        };
        assert_eq!(args.protocol_version, PROTOCOL_VERSION);
        let info = WeaveletInfo {
            protocol_version: PROTOCOL_VERSION,
            dial_addr: "unix:///tmp/x".into(),
            pid: 42,
            components: Vec::new(),
            error: String::new(),
        };
        conn.send(WeaveletMsg {
            msg: Some(weavelet_msg::Msg::WeaveletInfo(info)),
            ..Default::default()
        })
        .expect("send info");
        let entry = LogEntry {
            msg: "hello from memory".into(),
            ..Default::default()
        };
        let batch = LogEntryBatch {
            entries: vec![entry],
        };
        conn.send(WeaveletMsg {
            msg: Some(weavelet_msg::Msg::LogEntryBatch(batch)),
            ..Default::default()
        })
        .expect("send log");
        while let Some(req) = incoming.recv().await {
            let reply = GetHealthReply {
                status: HealthStatus::Unhealthy.into(),
            };
            let reply = WeaveletMsg {
                msg: Some(weavelet_msg::Msg::GetHealthReply(reply)),
                ..Default::default()
            };
            conn.reply(req.id, reply).expect("reply");
        }
        exit.send_replace(Some(Exit::from_code(0)));
    });

    let (handler, mut events) = recorder();
    let config = Config::new("in-memory");
    let envelope = within(
        "start",
        Envelope::start_child(child, io, config, args(), handler),
    )
    .await
    .expect("start");
    assert_eq!(envelope.pid(), 42, "falls back to the reported pid");
    let health = within("health", envelope.get_health())
        .await
        .expect("health");
    assert_eq!(health, HealthStatus::Unhealthy);
    // Dropping a clone-holding handle does not matter; dropping the envelope
    // closes the pipe, and the weavelet exits.
    let handle = envelope.handle().clone();
    drop(envelope);
    within("weavelet exit", weavelet)
        .await
        .expect("weavelet task");
    assert!(handle.is_closed() || within("close", handle.get_health()).await.is_err());
    assert_eq!(messages(&events.now(), ""), ["hello from memory"]);
}
