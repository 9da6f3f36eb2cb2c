//! The HTTP response head parser, and the head as sent to the client parsed again.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ringgate::http::fuzz::http_response(data));
