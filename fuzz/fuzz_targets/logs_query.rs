//! The `weaver multi logs` query front end on arbitrary text: a `Query` or
//! a `QueryError` (whose `Display` points into the source), never a panic.
//!
//! The first byte says whether system logs are included.

#![no_main]

use libfuzzer_sys::fuzz_target;
use weaver_logs::Query;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, src)) = data.split_first() else {
        return;
    };
    let src = String::from_utf8_lossy(src);
    match Query::parse(&src, flags & 1 == 1) {
        Ok(query) => assert_eq!(query.source(), src),
        Err(err) => {
            let _ = err.to_string();
        }
    }
});
