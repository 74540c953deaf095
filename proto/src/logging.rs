//! Formatting of `LogEntry` records, shared by every process that prints them.
