//! Output capture: nothing the child wrote is lost, and it all arrives
//! before its exit is reported.

use weaver_envelope::Envelope;
use weaver_envelope::weaver_proto::runtime::LogEntry;

use crate::common::*;

#[tokio::test]
async fn every_line_is_delivered_before_the_exit_is_reported() {
    trace_init();
    const LINES: usize = 10_000;
    const BATCHES: usize = 50;
    let config = fake("lines")
        .env("FAKE_LINES", LINES.to_string())
        .env("FAKE_LOG_BATCHES", BATCHES.to_string());
    let (handler, mut events) = recorder();
    let envelope = within("start", Envelope::start(config, args(), handler))
        .await
        .expect("start");
    let exit = within("wait", envelope.wait()).await.expect("exit");
    assert!(exit.success(), "{exit}");

    // Everything must be there already: no waiting after wait().
    let seen = events.now();
    let stdout = messages(&seen, "stdout");
    assert_eq!(
        stdout.len(),
        LINES,
        "stdout lines delivered before the exit"
    );
    for (i, line) in stdout.iter().enumerate() {
        assert_eq!(*line, format!("line {i}"), "line {i} out of order");
    }
    let pipe_logs = messages(&seen, "fake");
    let want: Vec<String> = (0..BATCHES).map(|i| format!("log {i}")).collect();
    assert_eq!(pipe_logs, want, "pipe logs delivered in order");

    let entry = logs(&seen)
        .into_iter()
        .find(|e| e.component == "stdout")
        .expect("a stdout entry");
    assert_eq!(entry.level, "stdout");
    assert_eq!(entry.app, "app");
    assert_eq!(entry.version, "dep-1");
    assert_eq!(entry.node, "node-1");
    assert_eq!(entry.file, "");
    assert_eq!(entry.line, -1);
    assert!(entry.time_micros > 0);
}

#[tokio::test]
async fn exit_waits_for_a_slow_handler() {
    trace_init();
    // Little enough output to fit the pipe buffers, so the child can exit
    // while the handler has taken none of it yet.
    const LINES: usize = 2_000;
    const BATCHES: usize = 20;
    let config = fake("lines")
        .env("FAKE_LINES", LINES.to_string())
        .env("FAKE_LOG_BATCHES", BATCHES.to_string());
    let (handler, mut events, gate) = gated_recorder();
    let (child, io, mut reaped) = watched(&config).await;
    let envelope = Envelope::start_child(child, io, config, args(), handler);
    let envelope = within("start", envelope).await.expect("start");
    let envelope = std::sync::Arc::new(envelope);
    let waiter = tokio::spawn({
        let envelope = envelope.clone();
        async move { envelope.wait().await }
    });
    // The envelope has the exit status; the handler has taken no output.
    let exit = within("child exit", reaped.wait_for(Option::is_some)).await;
    assert!(exit.expect("child watched").is_some_and(|e| e.success()));
    // Let the supervisor act on the exit: a broken one would report it now.
    for _ in 0..16 {
        tokio::task::yield_now().await;
    }
    assert!(
        !waiter.is_finished(),
        "exit reported before the output was handled"
    );

    gate.send_replace(true);
    let exit = within("wait", waiter).await.expect("join").expect("exit");
    assert!(exit.success(), "{exit}");
    let seen = events.now();
    assert_eq!(messages(&seen, "stdout").len(), LINES);
    assert_eq!(messages(&seen, "fake").len(), BATCHES);
    let last: Vec<&LogEntry> = logs(&seen)
        .into_iter()
        .filter(|e| e.component == "stdout")
        .collect();
    assert_eq!(last.last().map(|e| e.msg.as_str()), Some("line 1999"));
}
