//! Component instances of one process, built on first use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use super::{Registry, Runtime};
use crate::Result;
use crate::component::{Builder, Instance};

/// Built (or being built) components, by name.
#[derive(Default)]
pub(crate) struct Instances {
    cells: Mutex<HashMap<&'static str, Arc<OnceCell<Instance>>>>,
}

impl Instances {
    /// The instance of component `name`, building it on first use. Concurrent
    /// callers wait for the one build; a failed build is retried next time.
    pub(crate) async fn get(
        &self,
        name: &'static str,
        runtime: Arc<dyn Runtime>,
    ) -> Result<Instance> {
        let reg = Registry::get()?.find(name)?;
        let cell = self.cell(name);
        let instance = cell
            .get_or_try_init(|| {
                (reg.build)(Builder {
                    runtime,
                    component: reg.name,
                })
            })
            .await?;
        Ok(instance.clone())
    }

    fn cell(&self, name: &'static str) -> Arc<OnceCell<Instance>> {
        let mut map = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(name).or_default().clone()
    }
}
