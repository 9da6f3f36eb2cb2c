//! Request smuggling and malformed messages, one test per case. Each test sends the
//! hostile request through the real binary over mTLS, with a second request pipelined behind
//! it, and asserts both sides: what the client gets (the status nginx 1.22 answers, then a
//! closed connection) and what the upstream saw (no request, or at most the head of the one
//! whose body turned out malformed, and never the pipelined one).
//!
//! Where nginx 1.22 is laxer than RFC 9112 (it passes bare LF line endings, control bytes in
//! header values, malformed chunk extensions and non-http absolute targets), ringgate refuses
//! with 400 and the case says so.

use std::time::Duration;

use crate::support::client::{self, Conn, Response};
use crate::support::pki::Pki;
use crate::support::proxy::Proxy;
use crate::support::upstream::{Mode, Upstream};
use crate::support::{client_for, Cfg};

/// What the pipelined follower looks like; it must never reach the upstream.
const SMUGGLED: &[u8] = b"GET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n";

struct Setup {
    pki: Pki,
    up: Upstream,
    proxy: Proxy,
}

fn setup(mode: Mode) -> Setup {
    let pki = Pki::new();
    let up = Upstream::start(mode);
    let proxy = Cfg::new(&pki, &up).start();
    Setup { pki, up, proxy }
}

fn connect(s: &Setup) -> Conn {
    client::connect(
        s.proxy.addr(),
        "localhost",
        &client_for(&s.pki, Some(&s.pki.client)),
    )
    .expect("handshake")
}

/// Where a refused request may have got to before it was refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Reach {
    /// Refused from its head: the upstream was never even connected to.
    Nothing,
    /// Refused in its (streamed) body: the upstream got the head and part of the body, then a
    /// closed connection, and so never a complete request.
    HeadOnly,
}

/// Sends `request` followed by a pipelined GET, and checks: the client gets `status` and then
/// a closed connection; a log line contains `log`; the upstream got no complete request and
/// never the pipelined one.
#[track_caller]
fn refused(request: &[u8], status: u16, log: &str, reach: Reach) {
    let s = setup(Mode::Echo);
    let mut c = connect(&s);
    let mut bytes = request.to_vec();
    bytes.extend_from_slice(SMUGGLED);
    c.send(&bytes).expect("send");
    let r = c.read_response().expect("a response");
    assert_eq!(
        r.status,
        status,
        "{:?} answered {}",
        String::from_utf8_lossy(request),
        r.head
    );
    assert_eq!(r.header("connection"), Some("close"), "{}", r.head);
    assert!(
        c.closed_by_server(Duration::from_secs(3)),
        "connection left open after {status}"
    );
    s.proxy.assert_log(&[log, &format!("({status})")]);
    // Give a wrongly forwarded request time to arrive before looking.
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        s.up.seen().is_empty(),
        "the upstream saw a complete request: {:?}",
        s.up.seen()
    );
    assert!(
        !s.up.received(b"/smuggled"),
        "the pipelined request reached the upstream"
    );
    match reach {
        Reach::Nothing => assert_eq!(s.up.accepts(), 0, "the upstream was connected to"),
        Reach::HeadOnly => {
            let deadline = std::time::Instant::now() + Duration::from_secs(3);
            while s.up.open_conns() > 0 && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            assert_eq!(
                s.up.open_conns(),
                0,
                "the upstream connection carrying the broken body was kept"
            );
        }
    }
}

/// A request with these header lines after `Host`, and `body`.
fn req(first_line: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut v = format!("{first_line}\r\nHost: localhost\r\n{headers}\r\n").into_bytes();
    v.extend_from_slice(body);
    v
}

fn post(headers: &str, body: &[u8]) -> Vec<u8> {
    req("POST /upload HTTP/1.1", headers, body)
}

fn chunked(body: &[u8]) -> Vec<u8> {
    post("Transfer-Encoding: chunked\r\n", body)
}

// --- Content-Length and Transfer-Encoding -------------------------------------------------

#[test]
fn cl_and_te_is_400() {
    // CL.TE: a front end that used Content-Length would forward `0\r\n\r\nG` as the body and
    // leave `G` to prefix the next request.
    refused(
        &post(
            "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n",
            b"0\r\n\r\nG",
        ),
        400,
        "both Content-Length and Transfer-Encoding",
        Reach::Nothing,
    );
}

#[test]
fn te_and_cl_is_400() {
    refused(
        &post(
            "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
            b"8\r\nSMUGGLED\r\n0\r\n\r\n",
        ),
        400,
        "both Content-Length and Transfer-Encoding",
        Reach::Nothing,
    );
}

#[test]
fn identical_duplicate_content_length_is_400() {
    // RFC 9110 §8.6 would allow merging identical values; nginx refuses any duplicate
    // ("client sent duplicate header line"), and so does ringgate.
    refused(
        &post("Content-Length: 5\r\nContent-Length: 5\r\n", b"hello"),
        400,
        "duplicate Content-Length",
        Reach::Nothing,
    );
}

#[test]
fn differing_content_lengths_are_400() {
    refused(
        &post("Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!"),
        400,
        "duplicate Content-Length",
        Reach::Nothing,
    );
}

#[test]
fn content_length_list_is_400() {
    refused(
        &post("Content-Length: 5, 5\r\n", b"hello"),
        400,
        "invalid Content-Length",
        Reach::Nothing,
    );
}

#[test]
fn signed_content_length_is_400() {
    refused(
        &post("Content-Length: +5\r\n", b"hello"),
        400,
        "invalid Content-Length",
        Reach::Nothing,
    );
}

#[test]
fn overflowing_content_length_is_400() {
    refused(
        &post("Content-Length: 99999999999999999999\r\n", b""),
        400,
        "invalid Content-Length",
        Reach::Nothing,
    );
}

#[test]
fn unknown_transfer_coding_is_501() {
    refused(
        &post("Transfer-Encoding: gzip\r\n", b""),
        501,
        "unsupported Transfer-Encoding",
        Reach::Nothing,
    );
}

#[test]
fn chunked_not_final_is_501() {
    refused(
        &post("Transfer-Encoding: chunked, gzip\r\n", b"0\r\n\r\n"),
        501,
        "unsupported Transfer-Encoding",
        Reach::Nothing,
    );
}

#[test]
fn coding_list_ending_in_chunked_is_501() {
    // RFC 9112 allows `gzip, chunked`; nginx answers 501 as for any coding but `chunked`.
    refused(
        &post("Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n"),
        501,
        "unsupported Transfer-Encoding",
        Reach::Nothing,
    );
}

#[test]
fn identity_transfer_coding_is_501() {
    refused(
        &post("Transfer-Encoding: identity\r\n", b""),
        501,
        "unsupported Transfer-Encoding",
        Reach::Nothing,
    );
}

#[test]
fn duplicate_transfer_encoding_is_400() {
    refused(
        &post(
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            b"0\r\n\r\n",
        ),
        400,
        "duplicate Transfer-Encoding",
        Reach::Nothing,
    );
}

#[test]
fn space_before_colon_in_transfer_encoding_is_400() {
    // `Transfer-Encoding : chunked` is read as chunked by some servers and ignored by others.
    refused(
        &post("Transfer-Encoding : chunked\r\n", b"0\r\n\r\n"),
        400,
        "invalid header name",
        Reach::Nothing,
    );
}

#[test]
fn http10_with_transfer_encoding_is_400() {
    refused(
        b"POST /upload HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
        "Transfer-Encoding in HTTP/1.0",
        Reach::Nothing,
    );
}

// --- Chunked bodies (streamed: the head is already upstream when the body breaks) ----------

#[test]
fn chunk_size_overflow_is_400() {
    refused(
        &chunked(b"1FFFFFFFFFFFFFFFF\r\nx\r\n0\r\n\r\n"),
        400,
        "malformed chunked body",
        Reach::HeadOnly,
    );
}

#[test]
fn non_hex_chunk_size_is_400() {
    refused(
        &chunked(b"zz\r\nx\r\n0\r\n\r\n"),
        400,
        "malformed chunked body",
        Reach::HeadOnly,
    );
}

#[test]
fn hex_prefixed_chunk_size_is_400() {
    refused(
        &chunked(b"0x1\r\nx\r\n0\r\n\r\n"),
        400,
        "malformed chunked body",
        Reach::HeadOnly,
    );
}

#[test]
fn bare_lf_in_chunk_line_is_400() {
    // nginx 1.22 accepts `1\n`; a peer that does not would read a different body.
    refused(
        &chunked(b"1\nx\r\n0\r\n\r\n"),
        400,
        "malformed chunked body",
        Reach::HeadOnly,
    );
}

#[test]
fn bare_cr_in_chunk_line_is_400() {
    refused(
        &chunked(b"1\rx\r\n0\r\n\r\n"),
        400,
        "malformed chunked body",
        Reach::HeadOnly,
    );
}

#[test]
fn control_byte_in_chunk_extension_is_400() {
    // nginx 1.22 skips extensions unchecked; ringgate validates their grammar.
    refused(
        &chunked(b"1;a\x01b\r\nx\r\n0\r\n\r\n"),
        400,
        "malformed chunked body",
        Reach::HeadOnly,
    );
}

#[test]
fn chunk_data_longer_than_its_size_is_400() {
    refused(
        &chunked(b"1\r\nxy\r\n0\r\n\r\n"),
        400,
        "malformed chunked body",
        Reach::HeadOnly,
    );
}

#[test]
fn smuggled_request_in_a_later_chunk_line_is_400() {
    // A valid first chunk, then a request where the next size line should be.
    let mut body = b"5\r\nhello\r\n".to_vec();
    body.extend_from_slice(SMUGGLED);
    refused(
        &chunked(&body),
        400,
        "malformed chunked body",
        Reach::HeadOnly,
    );
}

// --- Header syntax ------------------------------------------------------------------------

#[test]
fn obs_fold_with_space_is_400() {
    refused(
        &req("GET / HTTP/1.1", "X-A: b\r\n c\r\n", b""),
        400,
        "bad request",
        Reach::Nothing,
    );
}

#[test]
fn obs_fold_with_tab_is_400() {
    refused(
        &req("GET / HTTP/1.1", "X-A: b\r\n\tc\r\n", b""),
        400,
        "bad request",
        Reach::Nothing,
    );
}

#[test]
fn bare_cr_in_header_value_is_400() {
    refused(
        &req("GET / HTTP/1.1", "X-A: b\rc\r\n", b""),
        400,
        "bad request",
        Reach::Nothing,
    );
}

#[test]
fn bare_cr_ending_the_request_line_is_400() {
    refused(
        b"GET / HTTP/1.1\rHost: localhost\r\n\r\n",
        400,
        "bad request",
        Reach::Nothing,
    );
}

#[test]
fn bare_lf_line_endings_are_400() {
    // nginx 1.22 accepts bare LF; RFC 9112 §2.2 lets a recipient refuse it, and a proxy must,
    // so that it never frames a message differently from a stricter upstream.
    refused(
        b"GET / HTTP/1.1\nHost: localhost\n\n",
        400,
        "bad request",
        Reach::Nothing,
    );
}

#[test]
fn nul_in_header_value_is_400() {
    refused(
        &req("GET / HTTP/1.1", "X-A: b\x00c\r\n", b""),
        400,
        "bad request",
        Reach::Nothing,
    );
}

#[test]
fn nul_in_header_name_is_400() {
    refused(
        &req("GET / HTTP/1.1", "X-\x00A: b\r\n", b""),
        400,
        "bad request",
        Reach::Nothing,
    );
}

#[test]
fn control_byte_in_header_value_is_400() {
    // nginx 1.22 passes 0x01 in a value; RFC 9110 §5.5 excludes CTLs from field values.
    refused(
        &req("GET / HTTP/1.1", "X-A: b\x01c\r\n", b""),
        400,
        "bad request",
        Reach::Nothing,
    );
}

#[test]
fn del_in_header_value_is_400() {
    refused(
        &req("GET / HTTP/1.1", "X-A: b\x7fc\r\n", b""),
        400,
        "bad request",
        Reach::Nothing,
    );
}

#[test]
fn control_byte_in_header_name_is_400() {
    refused(
        &req("GET / HTTP/1.1", "X-\x01A: b\r\n", b""),
        400,
        "bad request",
        Reach::Nothing,
    );
}

#[test]
fn space_before_colon_is_400() {
    refused(
        &req("GET / HTTP/1.1", "X-A : b\r\n", b""),
        400,
        "invalid header name",
        Reach::Nothing,
    );
}

#[test]
fn tab_before_colon_is_400() {
    refused(
        &req("GET / HTTP/1.1", "X-A\t: b\r\n", b""),
        400,
        "invalid header name",
        Reach::Nothing,
    );
}

#[test]
fn space_before_colon_in_content_length_is_400() {
    refused(
        &post("Content-Length : 5\r\n", b"hello"),
        400,
        "invalid header name",
        Reach::Nothing,
    );
}

#[test]
fn empty_header_name_is_400() {
    refused(
        &req("GET / HTTP/1.1", ": b\r\n", b""),
        400,
        "bad request",
        Reach::Nothing,
    );
}

#[test]
fn duplicate_host_is_400() {
    refused(
        &req("GET / HTTP/1.1", "Host: other\r\n", b""),
        400,
        "duplicate Host header",
        Reach::Nothing,
    );
}

#[test]
fn missing_host_is_400() {
    refused(
        b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n",
        400,
        "missing Host header",
        Reach::Nothing,
    );
}

// --- Request line ---------------------------------------------------------------------------

#[test]
fn invalid_method_is_400() {
    refused(
        &req("G(T / HTTP/1.1", "", b""),
        400,
        "invalid method",
        Reach::Nothing,
    );
}

#[test]
fn lowercase_method_is_400() {
    refused(
        &req("get / HTTP/1.1", "", b""),
        400,
        "invalid method",
        Reach::Nothing,
    );
}

#[test]
fn trace_is_405() {
    refused(
        &req("TRACE / HTTP/1.1", "", b""),
        405,
        "method not allowed",
        Reach::Nothing,
    );
}

#[test]
fn connect_with_authority_is_400() {
    refused(
        &req("CONNECT localhost:443 HTTP/1.1", "", b""),
        400,
        "invalid request target",
        Reach::Nothing,
    );
}

#[test]
fn relative_target_is_400() {
    refused(
        &req("GET foo HTTP/1.1", "", b""),
        400,
        "invalid request target",
        Reach::Nothing,
    );
}

#[test]
fn asterisk_target_outside_options_is_400() {
    refused(
        &req("GET * HTTP/1.1", "", b""),
        400,
        "invalid request target",
        Reach::Nothing,
    );
}

#[test]
fn space_in_target_is_400() {
    refused(
        &req("GET /a b HTTP/1.1", "", b""),
        400,
        "bad request",
        Reach::Nothing,
    );
}

#[test]
fn control_byte_in_target_is_400() {
    refused(
        &req("GET /a\x01b HTTP/1.1", "", b""),
        400,
        "bad request",
        Reach::Nothing,
    );
}

#[test]
fn absolute_target_with_userinfo_is_400() {
    refused(
        &req("GET http://user@localhost/x HTTP/1.1", "", b""),
        400,
        "invalid request target",
        Reach::Nothing,
    );
}

#[test]
fn absolute_target_with_other_scheme_is_400() {
    // nginx 1.22 accepts any scheme here; ringgate only http and https.
    refused(
        &req("GET ftp://localhost/x HTTP/1.1", "", b""),
        400,
        "invalid request target",
        Reach::Nothing,
    );
}

#[test]
fn garbage_request_line_is_400() {
    refused(
        b"\x16\x03\x01\x02\x00garbage\r\n\r\n",
        400,
        "bad request",
        Reach::Nothing,
    );
}

#[test]
fn extra_token_in_request_line_is_400() {
    refused(
        &req("GET / HTTP/1.1 extra", "", b""),
        400,
        "bad request",
        Reach::Nothing,
    );
}

#[test]
fn unknown_http_version_is_505() {
    refused(
        &req("GET / HTTP/2.0", "", b""),
        505,
        "unsupported HTTP version",
        Reach::Nothing,
    );
}

#[test]
fn malformed_http_version_is_400() {
    refused(
        &req("GET / HTXP/1.1", "", b""),
        400,
        "bad request",
        Reach::Nothing,
    );
}

// --- What is accepted, and that framing stays in step ----------------------------------------

#[test]
fn absolute_form_target_is_forwarded_in_origin_form() {
    let s = setup(Mode::Echo);
    let mut c = connect(&s);
    c.send(b"GET http://localhost/abs?q=1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("send");
    let r = c.read_response().expect("response");
    assert_eq!(r.status, 200, "{}", r.head);
    let seen = s.up.last();
    assert_eq!(seen.target, "/abs?q=1");
    assert!(!s.up.received(b"http://localhost/abs"));
}

#[test]
fn pipelined_request_after_a_refused_one_is_never_forwarded() {
    let s = setup(Mode::Echo);
    let mut c = connect(&s);
    let mut bytes = b"GET /first HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec();
    bytes.extend_from_slice(&post("Content-Length: 1\r\nContent-Length: 2\r\n", b"xx"));
    bytes.extend_from_slice(SMUGGLED);
    c.send(&bytes).expect("send");
    let first: Response = c.read_response().expect("first response");
    assert_eq!(first.status, 200, "{}", first.head);
    let second = c.read_response().expect("second response");
    assert_eq!(second.status, 400, "{}", second.head);
    assert!(c.closed_by_server(Duration::from_secs(3)));
    std::thread::sleep(Duration::from_millis(200));
    let targets: Vec<String> = s.up.seen().iter().map(|r| r.target.clone()).collect();
    assert_eq!(targets, vec!["/first".to_string()]);
    assert!(!s.up.received(b"/smuggled") && !s.up.received(b"/upload"));
}

#[test]
fn valid_chunked_body_and_pipelined_request_stay_two_requests() {
    let s = setup(Mode::Echo);
    let mut c = connect(&s);
    let mut bytes = chunked(b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n");
    bytes.extend_from_slice(b"GET /next HTTP/1.1\r\nHost: localhost\r\n\r\n");
    c.send(&bytes).expect("send");
    let a = c.read_response().expect("first");
    let b = c.read_response().expect("second");
    assert_eq!((a.status, a.text().as_str()), (200, "hello world"));
    assert_eq!(b.status, 200);
    let seen = s.up.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(
        (seen[0].target.as_str(), seen[0].body.as_slice()),
        ("/upload", &b"hello world"[..])
    );
    assert_eq!(seen[1].target, "/next");
}

/// Chunked bodies are re-framed as nginx does: the data arrives unchanged, chunk extensions and
/// trailers stay behind, so a trailer can carry no framing, routing or identity field onward.
#[test]
fn chunked_bodies_are_reframed_without_extensions_or_trailers() {
    let s = setup(Mode::Echo);
    let mut c = connect(&s);
    c.send(&chunked(
        b"5;name=value;q=\"a b\"\r\nhello\r\n6\r\n world\r\n0;last=1\r\n\
Transfer-Encoding: chunked\r\nX-Client-Role: admin\r\nHost: evil\r\n\r\n",
    ))
    .expect("send");
    let r = c.read_response().expect("response");
    assert_eq!((r.status, r.text().as_str()), (200, "hello world"));
    std::thread::sleep(Duration::from_millis(100));
    let raw = s.up.raw_all();
    let text = String::from_utf8_lossy(&raw).into_owned();
    for absent in ["name=value", ";q=", "last=1", "X-Client-Role", "evil"] {
        assert!(
            !text.contains(absent),
            "{absent:?} reached the upstream: {text:?}"
        );
    }
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a request head")
        + 4;
    // Decode what the upstream got: every size line bare hex, then the data, and after the
    // last chunk only the final CRLF.
    let mut rest = &raw[head_end..];
    let mut data = Vec::new();
    loop {
        let eol = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("a size line");
        let line = std::str::from_utf8(&rest[..eol]).expect("ascii");
        assert!(
            !line.is_empty() && line.bytes().all(|b| b.is_ascii_hexdigit()),
            "size line {line:?} in {text:?}"
        );
        let n = usize::from_str_radix(line, 16).expect("hex");
        rest = &rest[eol + 2..];
        if n == 0 {
            assert_eq!(rest, b"\r\n", "trailers reached the upstream: {text:?}");
            break;
        }
        data.extend_from_slice(&rest[..n]);
        assert_eq!(&rest[n..n + 2], b"\r\n");
        rest = &rest[n + 2..];
    }
    assert_eq!(data, b"hello world");
}

/// The same both ways: an upstream's chunk extensions and trailers do not reach the client.
#[test]
fn chunked_responses_are_reframed_without_extensions_or_trailers() {
    let s = setup(Mode::Raw(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
3;ext=x\r\nabc\r\n4\r\ndefg\r\n0\r\nX-Trailer: leak\r\nContent-Length: 1\r\n\r\n"
            .to_vec(),
    ));
    let mut c = connect(&s);
    c.send(b"GET /r HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("send");
    let (status, _, _) = c.read_head().expect("head");
    assert_eq!(status, 200);
    let body = c.read_rest(Duration::from_secs(5), |b| b.ends_with(b"0\r\n\r\n"));
    let body = String::from_utf8_lossy(&body).into_owned();
    assert!(body.ends_with("0\r\n\r\n"), "{body:?}");
    for absent in ["ext=x", "X-Trailer", "leak", "Content-Length"] {
        assert!(
            !body.contains(absent),
            "{absent:?} reached the client: {body:?}"
        );
    }
    let data: String = body
        .split("\r\n")
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, l)| l)
        .collect();
    assert_eq!(data, "abcdefg", "{body:?}");
}

// --- Upstream responses of the same shapes: 502 before anything was sent ----------------------

/// The upstream answers `response`; the client must get `status` (a 502 page) and a log line
/// containing `log`.
#[track_caller]
fn bad_response(response: &[u8], log: &str) {
    let s = setup(Mode::Raw(response.to_vec()));
    let mut c = connect(&s);
    c.send(b"GET /r HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("send");
    let r = c.read_response().expect("a response");
    assert_eq!(
        r.status,
        502,
        "{:?} answered {}",
        String::from_utf8_lossy(response),
        r.head
    );
    assert!(
        !r.text().contains("SMUGGLED"),
        "upstream bytes reached the client"
    );
    assert!(c.closed_by_server(Duration::from_secs(3)));
    s.proxy
        .assert_log(&["upstream sent an invalid response", log, "(502)"]);
}

#[test]
fn upstream_cl_and_te_is_502() {
    bad_response(
        b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nTransfer-Encoding: chunked\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
        "both Content-Length and Transfer-Encoding",
    );
}

#[test]
fn upstream_duplicate_content_length_is_502() {
    bad_response(
        b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nContent-Length: 8\r\n\r\nSMUGGLED",
        "duplicate Content-Length",
    );
}

#[test]
fn upstream_differing_content_lengths_are_502() {
    bad_response(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 8\r\n\r\nSMUGGLED",
        "duplicate Content-Length",
    );
}

#[test]
fn upstream_invalid_content_length_is_502() {
    bad_response(
        b"HTTP/1.1 200 OK\r\nContent-Length: -8\r\n\r\nSMUGGLED",
        "invalid Content-Length",
    );
}

#[test]
fn upstream_unknown_transfer_coding_is_502() {
    bad_response(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nSMUGGLED",
        "unsupported Transfer-Encoding",
    );
}

#[test]
fn upstream_http10_with_transfer_encoding_is_502() {
    bad_response(
        b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
        "Transfer-Encoding in HTTP/1.0",
    );
}

#[test]
fn upstream_obs_fold_is_502() {
    bad_response(
        b"HTTP/1.1 200 OK\r\nX-A: b\r\n Content-Length: 8\r\n\r\nSMUGGLED",
        "invalid",
    );
}

#[test]
fn upstream_bare_lf_is_502() {
    bad_response(b"HTTP/1.1 200 OK\nContent-Length: 8\n\nSMUGGLED", "invalid");
}

#[test]
fn upstream_bare_cr_is_502() {
    bad_response(
        b"HTTP/1.1 200 OK\r\nX-A: b\rContent-Length: 8\r\n\r\nSMUGGLED",
        "invalid",
    );
}

#[test]
fn upstream_nul_in_header_is_502() {
    bad_response(
        b"HTTP/1.1 200 OK\r\nX-A: b\x00c\r\nContent-Length: 8\r\n\r\nSMUGGLED",
        "invalid",
    );
}

#[test]
fn upstream_space_before_colon_is_502() {
    bad_response(
        b"HTTP/1.1 200 OK\r\nContent-Length : 8\r\n\r\nSMUGGLED",
        "invalid header name",
    );
}

#[test]
fn upstream_invalid_status_is_502() {
    bad_response(
        b"HTTP/1.1 2000 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED",
        "invalid",
    );
}

#[test]
fn upstream_garbage_is_502() {
    bad_response(b"SMUGGLED garbage, not HTTP\r\n\r\n", "invalid");
}

// --- Upstream responses that break after they started: the client connection is closed ------

#[test]
fn upstream_malformed_chunk_after_the_head_closes_the_client() {
    let s = setup(Mode::RawHold(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nSMUGGLED\r\n0\r\n\r\n"
            .to_vec(),
        Duration::from_secs(5),
    ));
    let mut c = connect(&s);
    c.send(b"GET /r HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("send");
    let err = c.read_response();
    assert!(err.is_err(), "a whole response arrived: {err:?}");
    s.proxy
        .assert_log(&["upstream `app`", "invalid chunked response body"]);
}

#[test]
fn upstream_extra_bytes_after_the_body_never_reach_another_request() {
    // Response splitting: a second response hidden after the first's declared end must not be
    // handed to the next request (the connection is not pooled).
    let s = setup(Mode::RawHold(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED"
            .to_vec(),
        Duration::from_millis(300),
    ));
    let mut c = connect(&s);
    c.send(b"GET /a HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("send");
    let a = c.read_response().expect("first");
    assert_eq!((a.status, a.text().as_str()), (200, "ok"));
    s.up.set_mode(Mode::Echo);
    c.send(b"GET /b HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("send");
    let b = c.read_response().expect("second");
    assert_eq!(b.status, 200, "{}", b.head);
    assert!(!b.text().contains("SMUGGLED"), "{}", b.text());
    assert_eq!(
        s.up.accepts(),
        2,
        "the first upstream connection was reused"
    );
}
