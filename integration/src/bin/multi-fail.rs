//! A fixture for the end-to-end tests: a body run by the multiprocess test
//! runner that starts two replicas in other processes, writes their pids to
//! the file `MULTI_FAIL_PIDS` names, then fails. The integration test runs
//! it and checks, from outside, that no replica is left.
//!
//! The runner re-executes this binary as the replicas; its `main` finds
//! itself a weavelet there and serves.

use std::io::Write as _;

use weaver::Context;
use weaver::testing::{Env, Runner};

/// Answers with the pid of the replica.
#[weaver::component]
pub(crate) trait Whoami {
    /// This replica's pid.
    async fn pid(&self, ctx: &Context) -> weaver::Result<u32>;
}

#[weaver::implements(Whoami)]
struct WhoamiImpl;

impl Whoami for WhoamiImpl {
    async fn pid(&self, _ctx: &Context) -> weaver::Result<u32> {
        Ok(std::process::id())
    }
}

fn main() {
    Runner::multi().run("multi_fail::fails", async |t: &Env| {
        let whoami = t.get::<dyn Whoami>();
        let mut pids = std::collections::BTreeSet::new();
        for _ in 0..200 {
            pids.insert(whoami.pid(&t.ctx()).await?);
            if pids.len() == 2 {
                break;
            }
        }
        let path = std::env::var("MULTI_FAIL_PIDS")
            .map_err(|_| weaver::Error::new("MULTI_FAIL_PIDS is not set"))?;
        let mut f = std::fs::File::create(&path).map_err(|e| weaver::Error::new(e.to_string()))?;
        for pid in &pids {
            writeln!(f, "{pid}").map_err(|e| weaver::Error::new(e.to_string()))?;
        }
        Err(weaver::Error::new("the fixture fails on purpose"))
    });
}
