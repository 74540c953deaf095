//! A [`Spawner`] whose replicas are weavelets in memory: an envelope over
//! `duplex` pipes, with a task playing the weavelet as the test scripts it.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use weaver_envelope::{Child, ChildIo, Config, Envelope, Exit};
use weaver_proto::runtime::{
    ActivateComponentRequest, EnvelopeMsg, GetMetricsReply, MetricDef, MetricType, MetricUpdate,
    MetricValue, RoutingInfo, UpdateComponentsReply, UpdateRoutingInfoReply, WeaveletArgs,
    WeaveletInfo, WeaveletMsg, envelope_msg, weavelet_msg,
};
use weaver_proto::{Conn, Incoming, MAX_FRAME_LEN, PROTOCOL_VERSION};

use crate::deploy::handler::ReplicaHandler;
use crate::deploy::spawn::{Spawner, Spawning};

/// What one spawned replica does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fate {
    /// Completes the handshake and serves until the test ends it.
    Serve,
    /// Completes the handshake, takes its components, and exits with code 1
    /// at once.
    ExitAfterHandshake,
    /// Exits with code 1 before answering the handshake.
    FailHandshake,
    /// Never answers the handshake; exits when signalled.
    Silent,
    /// Serves, but never answers `GetMetrics`.
    MuteMetrics,
}

/// Spawns in-memory replicas, each with the next [`Fate`] planned for its
/// group ([`Fate::Serve`] once the plan runs out), and hands the test a
/// [`Weavelet`] for each.
pub(super) struct MemSpawner {
    plans: Mutex<HashMap<String, VecDeque<Fate>>>,
    spawned: mpsc::UnboundedSender<Weavelet>,
    count: AtomicU32,
}

/// The test's side of one spawned replica.
pub(super) struct Weavelet {
    pub(super) group: String,
    pub(super) replica: u32,
    pub(super) id: String,
    pub(super) dial_addr: String,
    pub(super) fate: Fate,
    /// When it was spawned.
    pub(super) at: Instant,
    /// Routing pushed to it, in order.
    routing: mpsc::UnboundedReceiver<RoutingInfo>,
    commands: mpsc::UnboundedSender<Command>,
    /// The calls it reports of `weaver::Main` to `mem::B.ping`.
    calls: Arc<AtomicU64>,
}

enum Command {
    /// Call `ActivateComponent` and report the answer.
    Activate {
        component: String,
        routed: bool,
        answer: oneshot::Sender<Result<(), String>>,
    },
    /// Crash: close the pipes and exit.
    Exit(Exit),
}

/// A child whose exit is set by its weavelet task, or by a signal.
struct MemChild {
    exit: Arc<watch::Sender<Option<Exit>>>,
}

/// The weavelet task's state.
struct Task {
    /// The weavelet id, the `serviceweaver_node` of its metrics.
    id: String,
    conn: Conn<WeaveletMsg, EnvelopeMsg>,
    incoming: Incoming<EnvelopeMsg>,
    fate: Fate,
    info: WeaveletInfo,
    commands: mpsc::UnboundedReceiver<Command>,
    routing: mpsc::UnboundedSender<RoutingInfo>,
    exit: Arc<watch::Sender<Option<Exit>>>,
    /// See [`Weavelet::set_calls`].
    calls: Arc<AtomicU64>,
}

// === impl MemSpawner ===

impl MemSpawner {
    /// A spawner with `plans` (group, fates in spawn order), and where the
    /// test receives the replicas it spawns.
    pub(super) fn new(
        plans: impl IntoIterator<Item = (&'static str, Vec<Fate>)>,
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<Weavelet>) {
        let (spawned, rx) = mpsc::unbounded_channel();
        let plans = plans
            .into_iter()
            .map(|(g, fates)| (g.to_string(), fates.into()))
            .collect();
        let spawner = Arc::new(Self {
            plans: Mutex::new(plans),
            spawned,
            count: AtomicU32::new(0),
        });
        (spawner, rx)
    }

    fn next_fate(&self, group: &str) -> Fate {
        let mut plans = self.plans.lock().expect("plans lock");
        plans
            .get_mut(group)
            .and_then(VecDeque::pop_front)
            .unwrap_or(Fate::Serve)
    }
}

impl Spawner for MemSpawner {
    fn spawn(
        &self,
        config: Config,
        args: WeaveletArgs,
        handler: Arc<ReplicaHandler>,
    ) -> Spawning<'_> {
        let n = self.count.fetch_add(1, Ordering::SeqCst);
        let fate = self.next_fate(&args.group);
        let (env_to_wv, wv_from_env) = tokio::io::duplex(1 << 16);
        let (wv_to_env, env_from_wv) = tokio::io::duplex(1 << 16);
        let exit = Arc::new(watch::channel(None).0);
        let (commands_tx, commands) = mpsc::unbounded_channel();
        let (routing_tx, routing) = mpsc::unbounded_channel();
        let dial_addr = format!("mem://{}/{n}", args.group);
        let calls = Arc::new(AtomicU64::new(0));
        if fate == Fate::FailHandshake {
            // As a process that dies at once: its pipes close with it.
            drop((wv_from_env, wv_to_env));
            exit.send_replace(Some(Exit::from_code(1)));
        } else {
            let (conn, incoming) = Conn::new(wv_from_env, wv_to_env, MAX_FRAME_LEN);
            let task = Task {
                id: args.id.clone(),
                conn,
                incoming,
                fate,
                info: info(&dial_addr, n),
                commands,
                routing: routing_tx,
                exit: exit.clone(),
                calls: calls.clone(),
            };
            tokio::spawn(task.run());
        }
        let weavelet = Weavelet {
            group: args.group.clone(),
            replica: args.replica,
            id: args.id.clone(),
            dial_addr,
            fate,
            at: Instant::now(),
            routing,
            commands: commands_tx,
            calls,
        };
        // The test may have stopped listening; the replica runs all the same.
        let _ = self.spawned.send(weavelet);
        let child = MemChild { exit };
        let io = ChildIo {
            to_weavelet: Box::new(env_to_wv),
            from_weavelet: Box::new(env_from_wv),
            stdout: None,
            stderr: None,
        };
        Box::pin(Envelope::start_child(child, io, config, args, handler))
    }
}

/// The handshake reply of the `n`th replica spawned.
fn info(dial_addr: &str, n: u32) -> WeaveletInfo {
    WeaveletInfo {
        protocol_version: PROTOCOL_VERSION,
        dial_addr: dial_addr.to_string(),
        pid: i64::from(1000 + n),
        components: Vec::new(),
        error: String::new(),
    }
}

// === impl Weavelet ===

impl Weavelet {
    /// Calls `ActivateComponent(component)` as the weavelet would.
    pub(super) async fn activate(&self, component: &str, routed: bool) -> Result<(), String> {
        let (answer, answered) = oneshot::channel();
        let command = Command::Activate {
            component: component.to_string(),
            routed,
            answer,
        };
        self.commands
            .send(command)
            .map_err(|_| "the weavelet is gone".to_string())?;
        answered
            .await
            .map_err(|_| "the weavelet is gone".to_string())?
    }

    /// Sets the calls of `weaver::Main` to `mem::B.ping` it reports from
    /// now on, each taking 100 µs.
    pub(super) fn set_calls(&self, calls: u64) {
        self.calls.store(calls, Ordering::SeqCst);
    }

    /// Makes the replica crash with `exit`.
    pub(super) fn crash(&self, exit: Exit) {
        let _ = self.commands.send(Command::Exit(exit));
    }

    /// The next routing pushed to this replica for `component`; `None` if
    /// the replica has ended.
    pub(super) async fn next_routing(&mut self, component: &str) -> Option<RoutingInfo> {
        loop {
            let info = self.routing.recv().await?;
            if info.component == component {
                return Some(info);
            }
        }
    }
}

// === impl Task ===

impl Task {
    /// Handshake, then requests and the test's commands until the replica
    /// exits. Dropping the connection on the way out closes the weavelet's
    /// ends of the pipes, as a process exit does.
    async fn run(mut self) {
        let exit = self.serve().await;
        let Task { conn, incoming, .. } = self;
        drop((conn, incoming));
        self.exit.send_if_modified(|slot| {
            let first = slot.is_none();
            if first {
                *slot = Some(exit);
            }
            first
        });
    }

    /// Returns how the replica exits.
    async fn serve(&mut self) -> Exit {
        let Some(hello) = self.incoming.recv().await else {
            return Exit::from_code(1);
        };
        let Some(envelope_msg::Msg::WeaveletArgs(_)) = hello.msg else {
            return Exit::from_code(2);
        };
        let mut signalled = self.exit.subscribe();
        if self.fate == Fate::Silent {
            let signal = signalled.wait_for(Option::is_some).await;
            return signal.ok().and_then(|s| *s).unwrap_or(Exit::from_signal(9));
        }
        let info = weavelet_msg::Msg::WeaveletInfo(self.info.clone());
        if self.send(info).is_err() {
            return Exit::from_code(1);
        }
        let mut commands_open = true;
        loop {
            tokio::select! {
                msg = self.incoming.recv() => {
                    let Some(msg) = msg else { return Exit::from_code(0) };
                    if self.on_request(msg) {
                        return Exit::from_code(1);
                    }
                }
                command = self.commands.recv(), if commands_open => match command {
                    Some(Command::Exit(exit)) => return exit,
                    Some(Command::Activate { component, routed, answer }) => {
                        self.activate(component, routed, answer);
                    }
                    None => commands_open = false,
                },
                // SIGTERM or SIGKILL from the envelope.
                signal = signalled.wait_for(Option::is_some) => {
                    let exit = signal.ok().and_then(|s| *s);
                    return exit.unwrap_or(Exit::from_signal(9));
                }
            }
        }
    }

    /// Answers one request; true if the replica exits now.
    fn on_request(&self, msg: EnvelopeMsg) -> bool {
        let reply = match msg.msg {
            Some(envelope_msg::Msg::UpdateComponentsReq(_)) => {
                weavelet_msg::Msg::UpdateComponentsReply(UpdateComponentsReply {})
            }
            Some(envelope_msg::Msg::UpdateRoutingInfoReq(req)) => {
                if let Some(info) = req.routing_info {
                    let _ = self.routing.send(info);
                }
                weavelet_msg::Msg::UpdateRoutingInfoReply(UpdateRoutingInfoReply {})
            }
            Some(envelope_msg::Msg::GetMetricsReq(_)) if self.fate == Fate::MuteMetrics => {
                return false;
            }
            Some(envelope_msg::Msg::GetMetricsReq(req)) => {
                weavelet_msg::Msg::GetMetricsReply(self.metrics(req.ack))
            }
            other => {
                let _ = self
                    .conn
                    .reply_error(msg.id, format!("in-memory weavelet: unexpected {other:?}"));
                return false;
            }
        };
        let exits = self.fate == Fate::ExitAfterHandshake
            && matches!(reply, weavelet_msg::Msg::UpdateComponentsReply(_));
        let reply = WeaveletMsg {
            msg: Some(reply),
            ..Default::default()
        };
        let _ = self.conn.reply(msg.id, reply);
        exits
    }

    /// A counter, `mem_requests`, always 1, and the method metrics of the
    /// calls set by [`Weavelet::set_calls`]; every reply resends every
    /// definition and value, numbered after `ack`.
    fn metrics(&self, ack: u64) -> GetMetricsReply {
        let calls = self.calls.load(Ordering::SeqCst);
        let node = ("serviceweaver_node", self.id.as_str());
        let method = [
            ("caller", "weaver::Main"),
            ("component", "mem::B"),
            ("method", "ping"),
            node,
        ];
        let series = [
            (
                "mem_requests",
                MetricType::Counter,
                &[node][..],
                1.0,
                vec![],
            ),
            (
                "serviceweaver_method_count",
                MetricType::Counter,
                &method[..],
                calls as f64,
                vec![],
            ),
            (
                "serviceweaver_method_latency_micros",
                MetricType::Histogram,
                &method[..],
                100.0 * calls as f64,
                vec![calls, 0],
            ),
        ];
        let (defs, values) = series
            .into_iter()
            .zip(1..)
            .map(|((name, typ, labels, value, counts), id)| {
                let bounds = if counts.is_empty() {
                    vec![]
                } else {
                    vec![1000.0]
                };
                let def = MetricDef {
                    id,
                    name: name.to_string(),
                    typ: typ as i32,
                    labels: labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    bounds,
                    ..MetricDef::default()
                };
                (def, MetricValue { id, value, counts })
            })
            .unzip();
        GetMetricsReply {
            update: Some(MetricUpdate { defs, values }),
            seq: ack + 1,
        }
    }

    fn activate(
        &self,
        component: String,
        routed: bool,
        answer: oneshot::Sender<Result<(), String>>,
    ) {
        let conn = self.conn.clone();
        tokio::spawn(async move {
            let req = ActivateComponentRequest { component, routed };
            let msg = WeaveletMsg {
                msg: Some(weavelet_msg::Msg::ActivateComponentReq(req)),
                ..Default::default()
            };
            let result = conn.call(msg).await.map(|_| ()).map_err(|e| e.to_string());
            let _ = answer.send(result);
        });
    }

    fn send(&self, msg: weavelet_msg::Msg) -> Result<(), weaver_proto::ConnError> {
        self.conn.send(WeaveletMsg {
            msg: Some(msg),
            ..Default::default()
        })
    }
}

// === impl MemChild ===

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

impl MemChild {
    fn end(&self, exit: Exit) {
        self.exit.send_if_modified(|slot| {
            let first = slot.is_none();
            if first {
                *slot = Some(exit);
            }
            first
        });
    }
}
