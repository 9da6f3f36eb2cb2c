//! The log phase: one access-log line per request, rendered with the request's variables and
//! handed to this core's buffer ([`writer`]).

pub mod writer;
