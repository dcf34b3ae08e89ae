//! `strata_parser::parse_bytes` on arbitrary bytes: any input is parsed or refused with
//! a `ParseError`, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = strata_parser::parse_bytes(data);
});
