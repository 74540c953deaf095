//! The weaver.toml parser on arbitrary text: a `Config` or a `ConfigError`,
//! never a panic or a stack overflow.

#![no_main]

use libfuzzer_sys::fuzz_target;
use weaver_babysitter::Config;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(config) = Config::parse(&text, "/fuzz/weaver.toml") {
        // Whatever parsed must answer its accessors.
        let _ = (
            config.app_name(),
            config.replicas(),
            config.listeners().count(),
        );
    }
});
