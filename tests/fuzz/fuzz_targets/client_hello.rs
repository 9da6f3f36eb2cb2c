//! The ClientHello checks ringgate makes before rustls: no input panics, and a decision once
//! made does not change with the bytes that follow.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ringgate::tls::hello::fuzz(data));
