//! The deployer's answers to one replica's requests.

use std::future::Future;
use std::sync::{Arc, Weak};

use weaver_envelope::{EnvelopeHandler, Handle, HandlerError};
use weaver_proto::runtime::{
    ActivateComponentReply, ActivateComponentRequest, ExportListenerReply, ExportListenerRequest,
    GetListenerAddressReply, GetListenerAddressRequest, LogEntryBatch,
};

use super::{DeployError, Shared};

/// Serves one replica of `group`.
pub(crate) struct ReplicaHandler {
    shared: Weak<Shared>,
    group: String,
}

impl ReplicaHandler {
    pub(crate) fn new(shared: Weak<Shared>, group: String) -> Self {
        Self { shared, group }
    }

    fn shared(&self) -> Result<Arc<Shared>, DeployError> {
        self.shared
            .upgrade()
            .ok_or_else(|| DeployError::Internal("the deployment is gone".into()))
    }
}

impl EnvelopeHandler for ReplicaHandler {
    fn activate_component(
        &self,
        from: &Handle,
        req: ActivateComponentRequest,
    ) -> impl Future<Output = Result<ActivateComponentReply, HandlerError>> + Send {
        let (shared, from) = (self.shared(), from.clone());
        async move {
            shared?.activate(&from, &req.component, req.routed).await?;
            Ok(ActivateComponentReply {})
        }
    }

    async fn get_listener_address(
        &self,
        _from: &Handle,
        _req: GetListenerAddressRequest,
    ) -> Result<GetListenerAddressReply, HandlerError> {
        // Replicas listen on loopback; the proxy is what the world sees.
        Ok(GetListenerAddressReply {
            address: "127.0.0.1:0".to_string(),
        })
    }

    fn export_listener(
        &self,
        from: &Handle,
        req: ExportListenerRequest,
    ) -> impl Future<Output = Result<ExportListenerReply, HandlerError>> + Send {
        let (shared, from) = (self.shared(), from.clone());
        async move {
            let shared = shared?;
            // A listener error is an answer, not a failed request: the
            // weavelet must not retry it.
            Ok(
                match shared
                    .export_listener(&from, &req.listener, &req.address)
                    .await
                {
                    Ok(addr) => ExportListenerReply {
                        proxy_address: addr.to_string(),
                        error: String::new(),
                    },
                    Err(e) => ExportListenerReply {
                        proxy_address: String::new(),
                        error: error_chain(&e),
                    },
                },
            )
        }
    }

    fn handle_log_batch(&self, batch: LogEntryBatch) -> impl Future<Output = ()> + Send {
        let (shared, group) = (self.shared(), self.group.clone());
        // Waits while the log store is behind: the envelope reads no more
        // of this replica's pipe until the batch is queued.
        async move {
            match shared {
                Ok(shared) => shared.write_logs(batch.entries).await,
                Err(_) => tracing::debug!(%group, "log batch after the deployment ended"),
            }
        }
    }
}

/// The error and its sources, joined by ": ".
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
