//! Component instances of one process, built on first use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use super::{Registry, Runtime};
use crate::Result;
use crate::component::{Builder, Built, Instance};

/// Built (or being built) components, by name.
#[derive(Default)]
pub(crate) struct Instances {
    cells: Mutex<HashMap<&'static str, Arc<OnceCell<Built>>>>,
}

impl Instances {
    /// The instance of component `name`, building it on first use. Concurrent
    /// callers wait for the one build; a failed build is retried next time.
    pub(crate) async fn get(
        &self,
        name: &'static str,
        runtime: Arc<dyn Runtime>,
    ) -> Result<Instance> {
        Ok(self.built(name, runtime).await?.instance)
    }

    /// The implementation object of component `name` (an `Arc<T>`),
    /// building it on first use.
    pub(crate) async fn object(
        &self,
        name: &'static str,
        runtime: Arc<dyn Runtime>,
    ) -> Result<Arc<dyn std::any::Any + Send + Sync>> {
        Ok(self.built(name, runtime).await?.object)
    }

    async fn built(&self, name: &'static str, runtime: Arc<dyn Runtime>) -> Result<Built> {
        let reg = Registry::get()?.find(name)?;
        let cell = self.cell(name);
        let built = cell
            .get_or_try_init(|| {
                (reg.build)(Builder {
                    runtime,
                    component: reg.name,
                })
            })
            .await?;
        Ok(built.clone())
    }

    fn cell(&self, name: &'static str) -> Arc<OnceCell<Built>> {
        let mut map = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(name).or_default().clone()
    }
}
