//! Serving what the weavelet sends: requests, logs and spans.

use std::sync::Arc;

use tokio::sync::oneshot;
use tracing::Instrument;
use weaver_proto::Incoming;
use weaver_proto::runtime::{EnvelopeMsg, WeaveletMsg, envelope_msg, weavelet_msg};

use crate::envelope::Handle;
use crate::handler::{EnvelopeHandler, HandlerError};
use crate::progress::Progress;

/// Serves `incoming` until the weavelet's pipe closes and every message that
/// arrived has been handled; then fires `done`.
///
/// Telemetry is handled here, one message at a time, which keeps it in
/// order. Each request runs in a task of its own, so a slow one (starting a
/// whole group of processes, say) holds up nothing else.
pub(crate) async fn serve<H: EnvelopeHandler>(
    mut incoming: Incoming<WeaveletMsg>,
    from: Handle,
    handler: Arc<H>,
    progress: Arc<Progress>,
    done: oneshot::Sender<()>,
) {
    while let Some(msg) = incoming.recv().await {
        let id = msg.id;
        match msg.msg {
            Some(weavelet_msg::Msg::LogEntryBatch(batch)) => {
                progress.handling(handler.handle_log_batch(batch)).await;
            }
            Some(weavelet_msg::Msg::TraceSpans(spans)) => {
                progress.handling(handler.handle_trace_spans(spans)).await;
            }
            Some(request) if id > 0 => dispatch(id, request, &from, &handler),
            other => {
                tracing::warn!(
                    id,
                    payload = describe(other.as_ref()),
                    "ignoring unexpected message from the weavelet"
                );
                if id > 0 {
                    let _ = from.conn().reply_error(id, "unexpected message".into());
                }
            }
        }
        progress.made();
    }
    tracing::debug!("weavelet pipe drained");
    let _ = done.send(());
}

/// Starts the task that answers request `id`.
///
/// The handler runs in a task of its own so that, should it panic, the
/// weavelet still gets an answer instead of waiting forever.
fn dispatch<H: EnvelopeHandler>(
    id: i64,
    request: weavelet_msg::Msg,
    from: &Handle,
    handler: &Arc<H>,
) {
    let call = tokio::spawn(answer(request, from.clone(), handler.clone()).in_current_span());
    let from = from.clone();
    let task = async move {
        let reply = call.await.unwrap_or_else(|error| {
            tracing::error!(id, %error, "request handler failed");
            Err(HandlerError::new(
                "the deployer failed while handling the request",
            ))
        });
        respond(&from, id, reply);
    };
    tokio::spawn(task.in_current_span());
}

/// Asks the handler for the answer to `request`.
async fn answer<H: EnvelopeHandler>(
    request: weavelet_msg::Msg,
    from: Handle,
    handler: Arc<H>,
) -> Result<envelope_msg::Msg, HandlerError> {
    use envelope_msg::Msg as Reply;
    match request {
        weavelet_msg::Msg::ActivateComponentReq(req) => handler
            .activate_component(&from, req)
            .await
            .map(Reply::ActivateComponentReply),
        weavelet_msg::Msg::GetListenerAddressReq(req) => handler
            .get_listener_address(&from, req)
            .await
            .map(Reply::GetListenerAddressReply),
        weavelet_msg::Msg::ExportListenerReq(req) => handler
            .export_listener(&from, req)
            .await
            .map(Reply::ExportListenerReply),
        other => Err(HandlerError::new(format!(
            "unexpected request {}",
            describe(Some(&other))
        ))),
    }
}

fn respond(from: &Handle, id: i64, reply: Result<envelope_msg::Msg, HandlerError>) {
    let sent = match reply {
        Ok(msg) => from.conn().reply(
            id,
            EnvelopeMsg {
                msg: Some(msg),
                ..Default::default()
            },
        ),
        Err(error) => {
            tracing::debug!(id, %error, "request failed");
            from.conn().reply_error(id, error.message().to_string())
        }
    };
    if let Err(error) = sent {
        tracing::debug!(id, %error, "reply dropped: the weavelet is gone");
    }
}

/// The protobuf name of a payload, for diagnostics.
pub(crate) fn describe(msg: Option<&weavelet_msg::Msg>) -> &'static str {
    use weavelet_msg::Msg;
    match msg {
        None => "an empty message",
        Some(Msg::WeaveletInfo(_)) => "weavelet_info",
        Some(Msg::LogEntryBatch(_)) => "log_entry_batch",
        Some(Msg::TraceSpans(_)) => "trace_spans",
        Some(Msg::GetHealthReply(_)) => "get_health_reply",
        Some(Msg::GetMetricsReply(_)) => "get_metrics_reply",
        Some(Msg::GetLoadReply(_)) => "get_load_reply",
        Some(Msg::GetProfileReply(_)) => "get_profile_reply",
        Some(Msg::UpdateRoutingInfoReply(_)) => "update_routing_info_reply",
        Some(Msg::UpdateComponentsReply(_)) => "update_components_reply",
        Some(Msg::ActivateComponentReq(_)) => "activate_component_req",
        Some(Msg::GetListenerAddressReq(_)) => "get_listener_address_req",
        Some(Msg::ExportListenerReq(_)) => "export_listener_req",
    }
}
