//! Entry points shared by the HTTP fuzz targets (tests/fuzz/) and the unit test that replays
//! their corpus, so both exercise exactly the same code. Beyond "no input panics", each checks
//! a property a proxy relies on to never disagree with its peers about where a message ends.

use bytes::BytesMut;

use super::{
    parse_request, parse_response, write_client_response, write_upstream_request, BodyFraming,
    ChunkError, ChunkedScanner, ClientResponseParams, Limits, UpstreamRequestParams,
};

/// Limits small enough for the fuzzer to reach them.
const SMALL: Limits = Limits {
    max_head_bytes: 256,
    max_headers: 8,
    max_line_bytes: 128,
};

/// http_request: the request head parser on arbitrary bytes. A head it accepts must lie inside
/// the input, parse the same without what follows it, and, rewritten for the upstream as the
/// proxy forwards it, parse again with the same method and body framing (so that the upstream
/// can only see the message the proxy saw).
pub fn http_request(data: &[u8]) {
    for limits in [Limits::default(), SMALL] {
        let Ok(Some(head)) = parse_request(data, &limits) else {
            continue;
        };
        assert!(head.head_len <= data.len(), "head past the input");
        let alone = parse_request(&data[..head.head_len], &limits);
        assert_eq!(
            alone.as_ref().ok().and_then(|h| h.as_ref()),
            Some(&head),
            "the bytes after the head changed it"
        );
        let _ = head.host_for_nginx(data);
        let _ = head.is_idempotent(data);
        let target = head.path_and_query.get(data);
        let target = if target.starts_with(b"/") || target == b"*" {
            target
        } else {
            b"/"
        };
        // The upgrade a WebSocket location would forward for this request, if any.
        let allowed = ["websocket".to_string()];
        let upgrade = super::upgrade::requested(&head, data, &allowed);
        let mut out = BytesMut::new();
        write_upstream_request(
            &mut out,
            &head,
            data,
            &UpstreamRequestParams {
                target,
                host: b"app",
                x_forwarded_for: Some(b"127.0.0.1"),
                x_forwarded_proto: Some(b"https"),
                set_headers: &[],
                remove_headers: &[],
                keep_alive_upstream: true,
                upgrade: upgrade.as_deref(),
            },
        );
        let big = Limits {
            max_head_bytes: out.len() + 1,
            max_headers: head.headers.len() + 8,
            max_line_bytes: 64 * 1024,
        };
        match parse_request(&out, &big) {
            Ok(Some(again)) => {
                assert_eq!(again.head_len, out.len(), "forwarded head length");
                assert_eq!(again.method, head.method);
                assert_eq!(again.framing, head.framing, "forwarded framing differs");
            }
            other => panic!(
                "the forwarded head does not parse: {other:?}\n{:?}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
}

/// http_response: the response head parser on arbitrary bytes. An accepted head must lie inside
/// the input and, rewritten for an HTTP/1.1 client as the proxy sends it, parse again with the
/// same status and body framing.
pub fn http_response(data: &[u8]) {
    for (limits, head_request) in [(Limits::default(), false), (SMALL, true)] {
        let Ok(Some(resp)) = parse_response(data, head_request, &limits) else {
            continue;
        };
        assert!(resp.head_len <= data.len(), "head past the input");
        let _ = resp.interim();
        let mut out = BytesMut::new();
        let until_close = resp.framing == BodyFraming::UntilClose;
        write_client_response(
            &mut out,
            &resp,
            data,
            &ClientResponseParams {
                keep_alive: true,
                client_version_minor: 1,
                rechunk: until_close,
                dechunk: false,
                hide_headers: super::rewrite::NGINX_HIDDEN_RESPONSE_HEADERS,
                add_headers: &[(b"Server", b"ringgate")],
                upgrade: None,
            },
        );
        let big = Limits {
            max_head_bytes: out.len() + 1,
            max_headers: resp.headers.len() + 8,
            max_line_bytes: 64 * 1024,
        };
        match parse_response(&out, head_request, &big) {
            Ok(Some(again)) => {
                assert_eq!(again.head_len, out.len(), "client head length");
                assert_eq!(again.status, resp.status);
                let want = if until_close && !head_request {
                    BodyFraming::Chunked
                } else {
                    resp.framing
                };
                assert_eq!(again.framing, want, "client framing differs");
            }
            other => panic!(
                "the client's head does not parse: {other:?}\n{:?}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
}

/// What a chunked scan produced: the outcome (bytes of the body and whether it ended, or the
/// error) and the decoded data.
#[derive(Debug, PartialEq, Eq)]
struct Decoded {
    outcome: Result<(usize, bool), ChunkError>,
    data: Vec<u8>,
    decoded_len: u64,
}

/// Scans `input` fed in pieces whose sizes `next` gives.
fn decode_in_pieces(input: &[u8], next: &mut dyn FnMut() -> usize) -> Decoded {
    let mut scanner = ChunkedScanner::new();
    let mut data = Vec::new();
    let mut pos = 0;
    let outcome = loop {
        if pos >= input.len() {
            break Ok((pos, false));
        }
        let end = pos.saturating_add(next().max(1)).min(input.len());
        let piece = &input[pos..end];
        match scanner.feed_data(piece, |r| data.extend_from_slice(&piece[r])) {
            Err(e) => break Err(e),
            Ok(scan) => {
                assert!(scan.consumed <= piece.len());
                pos += scan.consumed;
                if scan.done {
                    break Ok((pos, true));
                }
                assert_eq!(scan.consumed, piece.len(), "stopped early without an end");
            }
        }
    };
    Decoded {
        outcome,
        data,
        decoded_len: scanner.decoded_len(),
    }
}

/// chunked: the streaming chunked decoder on arbitrary bytes, fed whole, a byte at a time and
/// in pseudo-random pieces (seeded by the input): every way must give the same outcome (where
/// the body ends, or the same error) and the same decoded data.
pub fn chunked(data: &[u8]) {
    let whole = decode_in_pieces(data, &mut || usize::MAX);
    assert_eq!(whole.decoded_len, whole.data.len() as u64);
    let bytewise = decode_in_pieces(data, &mut || 1);
    assert_eq!(bytewise, whole, "a byte at a time");
    let mut seed = data.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    }) | 1;
    let mut random = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % 23) as usize + 1
    };
    let split = decode_in_pieces(data, &mut random);
    assert_eq!(split, whole, "random pieces");
}

/// The committed corpus of a fuzz target (`tests/fuzz/corpus/TARGET`), for the replay tests
/// here and in `nginx::fuzz`; fewer than `min` files fails the test.
#[cfg(test)]
pub(crate) fn corpus(target: &str, min: usize) -> Vec<std::path::PathBuf> {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/corpus")
        .join(target);
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(
        files.len() >= min,
        "thin corpus {}: {} files, {min} wanted",
        dir.display(),
        files.len()
    );
    files
}

#[cfg(test)]
mod tests {
    fn corpus(target: &str) -> Vec<std::path::PathBuf> {
        super::corpus(target, 10)
    }

    #[test]
    fn http_request_corpus_replays() {
        for f in corpus("http_request") {
            super::http_request(&std::fs::read(&f).unwrap());
        }
    }

    #[test]
    fn http_response_corpus_replays() {
        for f in corpus("http_response") {
            super::http_response(&std::fs::read(&f).unwrap());
        }
    }

    #[test]
    fn chunked_corpus_replays() {
        for f in corpus("chunked") {
            super::chunked(&std::fs::read(&f).unwrap());
        }
    }
}
