//! Where a deployment's log entries go: pretty-printed to the operator's
//! terminal and appended to the log store `weaver multi logs` reads.

use std::io::Write;

use weaver_logs::Writer;
use weaver_proto::logging::PrettyPrinter;
use weaver_proto::runtime::LogEntry;

/// The deployment's log output.
pub(crate) struct LogOutput {
    printer: PrettyPrinter,
    out: Box<dyn Write + Send>,
    store: Writer,
    /// Whether a store failure was already reported (report once).
    store_failed: bool,
}

impl LogOutput {
    pub(crate) fn new(out: Box<dyn Write + Send>, color: bool, store: Writer) -> Self {
        Self {
            printer: PrettyPrinter::new(color),
            out,
            store,
            store_failed: false,
        }
    }

    /// Stores and prints `entries`, then flushes both, so readers in other
    /// processes see them at once.
    pub(crate) fn write(&mut self, entries: impl IntoIterator<Item = LogEntry>) {
        let mut text = String::new();
        for mut e in entries {
            if let Err(err) = self.store.append(&mut e) {
                self.report_store_failure(&err);
            }
            // The runtime's own chatter is stored (see `--system`) but not
            // printed; its warnings and errors are.
            if e.level == "debug" && weaver_proto::logging::is_system(&e) {
                continue;
            }
            self.printer.format_into(&e, &mut text);
            text.push('\n');
        }
        if let Err(err) = self.store.flush() {
            self.report_store_failure(&err);
        }
        // A closed stdout (e.g. `| head`) must not stop the deployment.
        let _ = self.out.write_all(text.as_bytes());
        let _ = self.out.flush();
    }

    /// Writes raw text (the app/deployment box) to the output.
    pub(crate) fn write_raw(&mut self, text: &str) {
        let _ = self.out.write_all(text.as_bytes());
        let _ = self.out.flush();
    }

    pub(crate) fn flush(&mut self) {
        if let Err(err) = self.store.flush() {
            self.report_store_failure(&err);
        }
        let _ = self.out.flush();
    }

    fn report_store_failure(&mut self, err: &weaver_logs::Error) {
        if !self.store_failed {
            self.store_failed = true;
            tracing::error!(error = %err, "cannot write the log store; entries are still printed");
        }
    }
}
