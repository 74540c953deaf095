//! Test fixture for `weaver-envelope`: a fake weavelet.
//!
//! The integration tests in `envelope/tests/` spawn this binary (through
//! `env!("CARGO_BIN_EXE_fake-weavelet")`) as the child of an envelope. It
//! speaks the weavelet side of the pipe protocol over fds 3 and 4 and behaves
//! according to `FAKE_MODE`:
//!
//! - `normal` (default): handshake; send `FAKE_LOG_BATCHES` log batches; print
//!   `FAKE_LINES` stdout lines and one stderr line; call ActivateComponent,
//!   GetListenerAddress and ExportListener and log each answer; answer the
//!   envelope's requests, logging what they carried; exit 0 at end of stream
//!   on fd 3 (first writing `eof` to `FAKE_EOF_FILE`, if set).
//! - `ignore-eof`: like `normal` without the calls, but lingers after end of
//!   stream on fd 3 (to test the parent-death signal).
//! - `wrong-version`: answer the handshake with the next protocol version.
//! - `exit-before-handshake`: print `FAKE_LINES` lines to stderr, exit 3.
//! - `silent`: never answer.
//! - `garbage`: write text (not frames) on fd 4.
//! - `garbage-after-handshake`: handshake, then send an oversized frame.
//! - `lines`: handshake, send `FAKE_LOG_BATCHES` log batches, print
//!   `FAKE_LINES` stdout lines (the last without a newline) and exit 0.
//! - `deployer`: a tiny deployer: start this binary in `ignore-eof` mode
//!   under an envelope, print its pid, and linger.
//!
//! Every mode writes its pid to `FAKE_PID_FILE` first, if set. Lingering
//! ends after a minute, so a failed test leaves nothing running for long.
//! It is not a tool; nothing but the tests should run it.

use std::env;
use std::fs::File;
use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::unix::pipe;
use weaver_envelope::weaver_proto::runtime::*;
use weaver_envelope::weaver_proto::{
    self, Conn, ENVELOPE_TO_WEAVELET_FD, ENVELOPE_TO_WEAVELET_FD_NUM, Incoming, MAX_FRAME_LEN,
    PROTOCOL_VERSION, WEAVELET_TO_ENVELOPE_FD, WEAVELET_TO_ENVELOPE_FD_NUM, frame,
};
use weaver_envelope::{Config, Envelope, EnvelopeHandler, Handle, HandlerError};

type WeaveletConn = Conn<WeaveletMsg, EnvelopeMsg>;

/// How long a lingering fake stays around at most.
const LINGER: Duration = Duration::from_secs(60);

mod fds {
    //! Taking the inherited pipe descriptors, the fixture's only unsafe code.
    #![allow(unsafe_code)]

    use std::os::fd::{FromRawFd, OwnedFd};

    /// Takes ownership of the descriptor named by the environment variable
    /// `var` (falling back to `default`).
    ///
    /// Call at most once per descriptor.
    pub(crate) fn inherited(var: &str, default: i32) -> OwnedFd {
        let fd = std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default);
        // SAFETY: the envelope put this descriptor in place before exec and
        // nothing else in this process owns it; main takes each one once.
        unsafe { OwnedFd::from_raw_fd(fd) }
    }
}

fn main() -> ExitCode {
    let mode = env::var("FAKE_MODE").unwrap_or_else(|_| "normal".into());
    if let Ok(path) = env::var("FAKE_PID_FILE")
        && !path.is_empty()
    {
        let _ = std::fs::write(path, std::process::id().to_string());
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("runtime: {e}")),
    };
    let result = match mode.as_str() {
        "exit-before-handshake" => return exit_before_handshake(),
        "silent" => {
            runtime.block_on(linger());
            Ok(())
        }
        "garbage" => garbage().map(|()| runtime.block_on(linger())),
        "garbage-after-handshake" => garbage_after_handshake().map(|()| runtime.block_on(linger())),
        "wrong-version" => wrong_version(),
        "lines" => lines(),
        "deployer" => runtime.block_on(deployer()),
        "normal" | "ignore-eof" => runtime.block_on(weavelet(&mode)),
        other => Err(format!("unknown FAKE_MODE {other:?}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(why: &str) -> ExitCode {
    eprintln!("fake-weavelet: {why}");
    ExitCode::from(2)
}

fn count(var: &str, default: usize) -> usize {
    env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn linger() {
    tokio::time::sleep(LINGER).await;
}

fn exit_before_handshake() -> ExitCode {
    for i in 0..count("FAKE_LINES", 30) {
        eprintln!("err {i}");
    }
    ExitCode::from(3)
}

// === Blocking modes ===

fn blocking_pipes() -> (File, File) {
    (
        File::from(fds::inherited(
            ENVELOPE_TO_WEAVELET_FD,
            ENVELOPE_TO_WEAVELET_FD_NUM,
        )),
        File::from(fds::inherited(
            WEAVELET_TO_ENVELOPE_FD,
            WEAVELET_TO_ENVELOPE_FD_NUM,
        )),
    )
}

/// Reads the WeaveletArgs and answers with `version`.
fn blocking_handshake(r: &mut File, w: &mut File, version: u32) -> Result<WeaveletArgs, String> {
    let frame = frame::read_frame(r, MAX_FRAME_LEN)
        .map_err(|e| format!("read handshake: {e}"))?
        .ok_or("no handshake")?;
    let msg: EnvelopeMsg = frame::decode_message(&frame).map_err(|e| e.to_string())?;
    let Some(envelope_msg::Msg::WeaveletArgs(args)) = msg.msg else {
        return Err("first message is not weavelet_args".into());
    };
    let info = WeaveletMsg {
        msg: Some(weavelet_msg::Msg::WeaveletInfo(info(version))),
        ..Default::default()
    };
    frame::write_message(w, &info).map_err(|e| format!("write handshake: {e}"))?;
    Ok(args)
}

fn info(version: u32) -> WeaveletInfo {
    WeaveletInfo {
        protocol_version: version,
        dial_addr: "tcp://127.0.0.1:1".into(),
        pid: i64::from(std::process::id()),
        components: Vec::new(),
        error: String::new(),
    }
}

fn garbage() -> Result<(), String> {
    let (_r, mut w) = blocking_pipes();
    w.write_all(b"hello, I am not a weavelet\n")
        .map_err(|e| e.to_string())
}

fn garbage_after_handshake() -> Result<(), String> {
    let (mut r, mut w) = blocking_pipes();
    blocking_handshake(&mut r, &mut w, PROTOCOL_VERSION)?;
    w.write_all(&u32::MAX.to_le_bytes())
        .map_err(|e| e.to_string())
}

fn wrong_version() -> Result<(), String> {
    let (mut r, mut w) = blocking_pipes();
    blocking_handshake(&mut r, &mut w, PROTOCOL_VERSION + 1)?;
    // Wait for the envelope to give up on us.
    while let Ok(Some(_)) = frame::read_frame(&mut r, MAX_FRAME_LEN) {}
    Ok(())
}

fn lines() -> Result<(), String> {
    let (mut r, mut w) = blocking_pipes();
    let args = blocking_handshake(&mut r, &mut w, PROTOCOL_VERSION)?;
    for i in 0..count("FAKE_LOG_BATCHES", 3) {
        frame::write_message(&mut w, &log_msg(&args, format!("log {i}")))
            .map_err(|e| e.to_string())?;
    }
    let mut out = io::BufWriter::new(io::stdout().lock());
    let n = count("FAKE_LINES", 3);
    for i in 0..n {
        let end = if i + 1 == n { "" } else { "\n" };
        write!(out, "line {i}{end}").map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())
}

fn log_msg(args: &WeaveletArgs, msg: String) -> WeaveletMsg {
    let entry = LogEntry {
        app: args.app.clone(),
        version: args.deployment_id.clone(),
        component: "fake".into(),
        node: args.id.clone(),
        level: "info".into(),
        line: -1,
        msg,
        ..Default::default()
    };
    WeaveletMsg {
        msg: Some(weavelet_msg::Msg::LogEntryBatch(LogEntryBatch {
            entries: vec![entry],
        })),
        ..Default::default()
    }
}

// === Async modes ===

async fn weavelet(mode: &str) -> Result<(), String> {
    let reader = pipe::Receiver::from_owned_fd(fds::inherited(
        ENVELOPE_TO_WEAVELET_FD,
        ENVELOPE_TO_WEAVELET_FD_NUM,
    ))
    .map_err(|e| e.to_string())?;
    let writer = pipe::Sender::from_owned_fd(fds::inherited(
        WEAVELET_TO_ENVELOPE_FD,
        WEAVELET_TO_ENVELOPE_FD_NUM,
    ))
    .map_err(|e| e.to_string())?;
    let (conn, mut incoming): (WeaveletConn, _) = Conn::new(reader, writer, MAX_FRAME_LEN);
    let first = incoming.recv().await.ok_or("no handshake")?;
    let Some(envelope_msg::Msg::WeaveletArgs(args)) = first.msg else {
        return Err("first message is not weavelet_args".into());
    };
    let hello = WeaveletMsg {
        msg: Some(weavelet_msg::Msg::WeaveletInfo(info(PROTOCOL_VERSION))),
        ..Default::default()
    };
    conn.send(hello).map_err(|e| e.to_string())?;
    if mode == "normal" {
        tokio::spawn(drive(conn.clone(), args.clone()));
    }
    serve(&conn, &mut incoming, &args).await;
    if let Ok(path) = env::var("FAKE_EOF_FILE") {
        let _ = std::fs::write(path, "eof");
    }
    if mode == "ignore-eof" {
        linger().await;
    }
    Ok(())
}

/// What a weavelet does on its own: logs, output and requests.
async fn drive(conn: WeaveletConn, args: WeaveletArgs) {
    let log = |msg: String| {
        let _ = conn.send(log_msg(&args, msg));
    };
    for i in 0..count("FAKE_LOG_BATCHES", 3) {
        log(format!("log {i}"));
    }
    {
        let mut out = io::stdout().lock();
        for i in 0..count("FAKE_LINES", 3) {
            let _ = writeln!(out, "stdout {i}");
        }
        let _ = out.flush();
    }
    eprintln!("stderr line");
    let activate = weavelet_msg::Msg::ActivateComponentReq(ActivateComponentRequest {
        component: "fake::Comp".into(),
        routed: true,
    });
    log(match call(&conn, activate).await {
        Ok(_) => "activate: ok".into(),
        Err(e) => format!("activate: error: {e}"),
    });
    let address =
        weavelet_msg::Msg::GetListenerAddressReq(GetListenerAddressRequest { name: "lis".into() });
    log(match call(&conn, address).await {
        Ok(envelope_msg::Msg::GetListenerAddressReply(r)) => {
            format!("listener address: {}", r.address)
        }
        other => format!("listener address: unexpected {other:?}"),
    });
    let export = weavelet_msg::Msg::ExportListenerReq(ExportListenerRequest {
        listener: "lis".into(),
        address: "127.0.0.1:5555".into(),
    });
    log(match call(&conn, export).await {
        Ok(envelope_msg::Msg::ExportListenerReply(r)) => {
            format!("proxy address: {}", r.proxy_address)
        }
        Ok(other) => format!("export: unexpected {other:?}"),
        Err(e) => format!("export: error: {e}"),
    });
    log("requests done".into());
}

async fn call(
    conn: &WeaveletConn,
    msg: weavelet_msg::Msg,
) -> Result<envelope_msg::Msg, weaver_proto::ConnError> {
    let reply = conn
        .call(WeaveletMsg {
            msg: Some(msg),
            ..Default::default()
        })
        .await?;
    reply
        .msg
        .ok_or_else(|| weaver_proto::ConnError::Remote("empty reply".into()))
}

/// Answers the envelope's requests until end of stream on fd 3.
async fn serve(conn: &WeaveletConn, incoming: &mut Incoming<EnvelopeMsg>, args: &WeaveletArgs) {
    use envelope_msg::Msg as In;
    use weavelet_msg::Msg as Out;
    while let Some(msg) = incoming.recv().await {
        let reply = match msg.msg {
            Some(In::UpdateComponentsReq(r)) => {
                let _ = conn.send(log_msg(
                    args,
                    format!("components: {}", r.components.join(",")),
                ));
                Out::UpdateComponentsReply(UpdateComponentsReply {})
            }
            Some(In::UpdateRoutingInfoReq(r)) => {
                let routing = r.routing_info.unwrap_or_default();
                let text = format!("routing: {} local={}", routing.component, routing.local);
                let _ = conn.send(log_msg(args, text));
                Out::UpdateRoutingInfoReply(UpdateRoutingInfoReply {})
            }
            Some(In::GetHealthReq(_)) => Out::GetHealthReply(GetHealthReply {
                status: HealthStatus::Healthy.into(),
            }),
            // Every reply carries everything, numbered after the ack.
            Some(In::GetMetricsReq(r)) => Out::GetMetricsReply(GetMetricsReply {
                update: Some(metrics()),
                seq: r.ack + 1,
            }),
            Some(In::GetLoadReq(_)) => Out::GetLoadReply(GetLoadReply::default()),
            Some(In::GetProfileReq(_)) => Out::GetProfileReply(GetProfileReply {
                data: b"fake profile".to_vec(),
            }),
            other => {
                let _ = conn.reply_error(msg.id, format!("fake cannot handle {other:?}"));
                continue;
            }
        };
        let reply = WeaveletMsg {
            msg: Some(reply),
            ..Default::default()
        };
        let _ = conn.reply(msg.id, reply);
    }
}

/// One counter, always 7.
fn metrics() -> MetricUpdate {
    MetricUpdate {
        defs: vec![MetricDef {
            id: 1,
            name: "fake_calls".into(),
            typ: MetricType::Counter.into(),
            ..Default::default()
        }],
        values: vec![MetricValue {
            id: 1,
            value: 7.0,
            counts: Vec::new(),
        }],
    }
}

// === Deployer mode ===

/// A handler that answers everything and keeps nothing.
struct Quiet;

impl EnvelopeHandler for Quiet {
    async fn activate_component(
        &self,
        _from: &Handle,
        _req: ActivateComponentRequest,
    ) -> Result<ActivateComponentReply, HandlerError> {
        Ok(ActivateComponentReply {})
    }

    async fn get_listener_address(
        &self,
        _from: &Handle,
        _req: GetListenerAddressRequest,
    ) -> Result<GetListenerAddressReply, HandlerError> {
        Ok(GetListenerAddressReply {
            address: "127.0.0.1:0".into(),
        })
    }

    async fn export_listener(
        &self,
        _from: &Handle,
        req: ExportListenerRequest,
    ) -> Result<ExportListenerReply, HandlerError> {
        Ok(ExportListenerReply {
            proxy_address: req.address,
            error: String::new(),
        })
    }

    async fn handle_log_batch(&self, _batch: LogEntryBatch) {}
}

async fn deployer() -> Result<(), String> {
    let exe = env::current_exe().map_err(|e| e.to_string())?;
    let config = Config::new(exe)
        .env("FAKE_MODE", "ignore-eof")
        .env("FAKE_PID_FILE", "");
    let args = WeaveletArgs {
        app: "fake".into(),
        ..Default::default()
    };
    let envelope = Envelope::start(config, args, Arc::new(Quiet))
        .await
        .map_err(|e| e.to_string())?;
    let mut out = io::stdout().lock();
    writeln!(out, "{}", envelope.pid()).map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())?;
    drop(out);
    linger().await;
    Ok(())
}
