//! The streaming chunked decoder: whole, a byte at a time and in random pieces agree.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ringgate::http::fuzz::chunked(data));
