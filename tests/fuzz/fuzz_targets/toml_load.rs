//! The TOML configuration loader on arbitrary text: no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ringgate::tools::nginx::fuzz::toml_load(data));
