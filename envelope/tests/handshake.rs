//! A healthy weavelet: handshake, then requests both ways.

use weaver_envelope::Envelope;
use weaver_envelope::weaver_proto::PROTOCOL_VERSION;
use weaver_envelope::weaver_proto::runtime::*;

use crate::common::*;

#[tokio::test]
async fn handshake_then_requests_flow_both_ways() {
    trace_init();
    let (handler, mut events) = recorder();
    let envelope = within("start", Envelope::start(fake("normal"), args(), handler))
        .await
        .expect("start");

    let info = envelope.info();
    assert_eq!(info.protocol_version, PROTOCOL_VERSION);
    assert_eq!(info.dial_addr, "tcp://127.0.0.1:1");
    assert_eq!(info.pid, i64::from(envelope.pid()));
    assert_eq!(envelope.handle().args().id, "node-1");
    assert_eq!(
        process_group(envelope.pid()),
        envelope.pid(),
        "own process group"
    );

    // Weavelet -> envelope: the fake activates, asks for a listener address
    // and exports it, logging each answer.
    let mut seen = events.until_log("requests done").await;
    let activations: Vec<_> = seen
        .iter()
        .filter_map(|e| match e {
            Event::Activate(r) => Some((r.component.as_str(), r.routed)),
            _ => None,
        })
        .collect();
    assert_eq!(activations, [("fake::Comp", true)]);
    assert!(
        seen.iter()
            .any(|e| matches!(e, Event::ListenerAddress(r) if r.name == "lis"))
    );
    assert!(seen.iter().any(
        |e| matches!(e, Event::Export(r) if r.listener == "lis" && r.address == "127.0.0.1:5555")
    ));
    let fake_logs = messages(&seen, "fake");
    assert_eq!(&fake_logs[..3], ["log 0", "log 1", "log 2"]);
    // The routing the handler pushed from inside the activation arrived
    // before the activation's reply.
    assert_eq!(
        &fake_logs[3..],
        [
            "routing: fake::Comp local=true",
            "activate: ok",
            "listener address: 127.0.0.1:0",
            "proxy address: 127.0.0.1:9999",
            "requests done",
        ]
    );
    let entry = logs(&seen)[0];
    assert_eq!(
        (
            entry.app.as_str(),
            entry.version.as_str(),
            entry.node.as_str()
        ),
        ("app", "dep-1", "node-1")
    );

    // Envelope -> weavelet.
    within(
        "update components",
        envelope.update_components(vec!["a".into(), "b".into()]),
    )
    .await
    .expect("update components");
    seen.extend(events.until_log("components: a,b").await);
    let routing = RoutingInfo {
        component: "x::Y".into(),
        ..Default::default()
    };
    within("update routing", envelope.update_routing_info(routing))
        .await
        .expect("update routing");
    seen.extend(events.until_log("routing: x::Y local=false").await);
    let health = within("health", envelope.get_health())
        .await
        .expect("health");
    assert_eq!(health, HealthStatus::Healthy);
    let reply = within("metrics", envelope.get_metrics(3))
        .await
        .expect("metrics");
    assert_eq!(reply.seq, 4, "the fake numbers its reply after the ack");
    let metrics = reply.update.expect("an update");
    assert_eq!(metrics.defs[0].name, "fake_calls");
    assert_eq!(metrics.values[0].value, 7.0);
    within("load", envelope.get_load()).await.expect("load");
    let profile = within(
        "profile",
        envelope.get_profile(GetProfileRequest::default()),
    )
    .await
    .expect("profile");
    assert_eq!(profile, b"fake profile");

    envelope.kill();
    within("wait", envelope.wait()).await.expect("wait");
    seen.extend(events.now());
    assert_eq!(messages(&seen, "stderr"), ["stderr line"]);
    assert_eq!(
        messages(&seen, "stdout"),
        ["stdout 0", "stdout 1", "stdout 2"]
    );
}

#[tokio::test]
async fn handler_errors_reach_the_weavelet_as_text() {
    trace_init();
    let (handler, mut events) = recorder_with(Export::Fail("address 127.0.0.1:5555 in use".into()));
    let envelope = within("start", Envelope::start(fake("normal"), args(), handler))
        .await
        .expect("start");
    let seen = events.until_log("requests done").await;
    assert!(
        messages(&seen, "fake").contains(&"export: error: address 127.0.0.1:5555 in use"),
        "{seen:?}"
    );
    envelope.kill();
    within("wait", envelope.wait()).await.expect("wait");
}

#[tokio::test]
async fn a_panicking_handler_still_answers_and_the_envelope_goes_on() {
    trace_init();
    let (handler, mut events) = recorder_with(Export::Panic);
    let envelope = within("start", Envelope::start(fake("normal"), args(), handler))
        .await
        .expect("start");
    let seen = events.until_log("requests done").await;
    assert!(
        messages(&seen, "fake")
            .contains(&"export: error: the deployer failed while handling the request"),
        "{seen:?}"
    );
    let health = within("health", envelope.get_health())
        .await
        .expect("health");
    assert_eq!(health, HealthStatus::Healthy);
    envelope.kill();
    within("wait", envelope.wait()).await.expect("wait");
}

/// The process group of `pid`, from /proc/<pid>/stat.
fn process_group(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // The command name may hold spaces; fields resume after its ')'.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    rest.split(' ')
        .nth(2)
        .expect("pgrp")
        .parse()
        .expect("number")
}
