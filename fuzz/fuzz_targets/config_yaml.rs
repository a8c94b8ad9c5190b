//! `nodepool.yaml` and the secure file: the YAML loader and the validator must answer any
//! text with a configuration or diagnostics, never a panic or a hang.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // The first NUL splits the input into the main file and the secure file.
    let (main, secure) = match text.split_once('\0') {
        Some((main, secure)) => (main, Some(secure)),
        None => (text.as_ref(), None),
    };
    let _ = nodepool_config::parse_config(
        Path::new("nodepool.yaml"),
        main,
        secure.map(|s| (Path::new("secure.conf"), s)),
        &nodepool_config::Env::new(),
    );
});
