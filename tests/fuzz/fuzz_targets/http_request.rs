//! The HTTP request head parser, and the head as forwarded upstream parsed again.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ringgate::http::fuzz::http_request(data));
