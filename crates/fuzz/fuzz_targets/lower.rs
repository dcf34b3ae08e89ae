//! `strata_dockerfile::lower` on arbitrary bytes, with no images known and unresolved
//! bases allowed (as `--check` runs it): parsing, instruction checks, lints, ARG/ENV
//! scopes and stage wiring either give a graph or a `LowerError`, never a panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use strata_dockerfile::{LowerOptions, NoImages};

fn options() -> &'static LowerOptions {
    static OPTIONS: OnceLock<LowerOptions> = OnceLock::new();
    OPTIONS.get_or_init(|| LowerOptions {
        allow_unresolved: true,
        ..Default::default()
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = strata_dockerfile::lower(data, options(), &NoImages);
});
