//! nginx.conf lexer, parser and translator on arbitrary bytes: no panic, valid TOML out.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ringgate::tools::nginx::fuzz::nginx_parse(data));
