//! `weaver single`: applications run directly as one process.

use clap::Subcommand;

use crate::Outcome;

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Print the weaver version.
    Version,
}

pub(crate) fn run(cmd: Command) -> anyhow::Result<Outcome> {
    match cmd {
        Command::Version => {
            println!("{}", crate::version());
            Ok(Outcome::Ok)
        }
    }
}
