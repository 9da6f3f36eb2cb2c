//! Upstream response head parsing. The same smuggling rules as for requests
//! apply (a confused upstream must not desynchronise the client connection),
//! but every failure maps to 502 Bad Gateway.

use super::request::{framing_reason, looks_like_http_version};
use super::{
    analyze_headers, has_bad_line_endings, header_spans, with_header_array, BodyFraming,
    FramingError, HeaderSpan, Limits, Span,
};

/// Why an upstream response head was refused; all map to 502.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// Head larger than `max_head_bytes`.
    #[error("upstream sent too big header")]
    HeaderTooLarge,
    /// More than `max_headers` fields.
    #[error("upstream sent too many headers")]
    TooManyHeaders,
    /// Malformed status line or header; the string says what.
    #[error("upstream sent invalid response: {0}")]
    BadSyntax(&'static str),
    /// Status line with a version other than HTTP/1.0 or HTTP/1.1.
    #[error("upstream sent unsupported HTTP version")]
    VersionNotSupported,
    /// Ambiguous or unsupported body framing.
    #[error("upstream framing: {0}")]
    Framing(FramingError),
}

impl ResponseError {
    /// HTTP status to send the client: always 502 Bad Gateway, as nginx does
    /// for "upstream sent invalid header".
    pub fn status(&self) -> u16 {
        502
    }

    /// Short static reason for the error log.
    pub fn reason(&self) -> &'static str {
        match self {
            ResponseError::HeaderTooLarge => "upstream sent too big header",
            ResponseError::TooManyHeaders => "upstream sent too many headers",
            ResponseError::BadSyntax(why) => why,
            ResponseError::VersionNotSupported => "upstream sent unsupported HTTP version",
            ResponseError::Framing(f) => framing_reason(f),
        }
    }
}

/// A parsed upstream response head: spans into the caller's buffer plus the
/// interpreted framing and connection facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// Bytes of the head including the final CRLF; the body starts here.
    pub head_len: usize,
    /// Three-digit status code.
    pub status: u16,
    /// Reason phrase as sent (may be empty).
    pub reason: Span,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version_minor: u8,
    /// All header fields in order.
    pub headers: Vec<HeaderSpan>,
    /// How the body is delimited (RFC 9112 §6.3).
    pub framing: BodyFraming,
    /// Whether the upstream connection may be reused (pooled) afterwards.
    pub keep_alive: bool,
}

impl ResponseHead {
    /// What this head means for the exchange and the upstream connection that carried it:
    /// after an interim 1xx (not 101) the final response follows on the same connection, so
    /// the caller skips this one and parses again after `head_len`.
    pub fn interim(&self) -> Interim {
        match self.status {
            101 => Interim::SwitchingProtocols,
            100 | 103 => Interim::Expected,
            s if (100..200).contains(&s) => Interim::Unexpected,
            _ => Interim::Final,
        }
    }

    /// Finds the first header with this (case-insensitive) name.
    pub fn header<'a>(&self, buf: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .find(|h| h.name.get(buf).eq_ignore_ascii_case(name))
            .map(|h| h.value.get(buf))
    }
}

/// How a response head bears on the exchange and on reusing its upstream connection.
///
/// An upstream connection may be pooled only after a complete final response to a complete
/// request: anything that leaves doubt about where the next response starts (an interim
/// response nobody asked for, a protocol switch) ends the connection's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interim {
    /// A final response (2xx..9xx).
    Final,
    /// `100 Continue` or `103 Early Hints`: skipped, the connection stays reusable.
    Expected,
    /// Another 1xx (102, 104..199): skipped, but the connection is closed after the exchange.
    Unexpected,
    /// `101 Switching Protocols`: after it the connection speaks another protocol, so it is
    /// never reused, and without a matching requested upgrade it is a 502.
    SwitchingProtocols,
}

/// Parses an upstream response head from the start of `buf`.
///
/// `request_method_is_head` matters because a response to HEAD never has a
/// body whatever its headers say. `Ok(None)` means more bytes are needed.
pub fn parse_response(
    buf: &[u8],
    request_method_is_head: bool,
    limits: &Limits,
) -> Result<Option<ResponseHead>, ResponseError> {
    let window = &buf[..buf.len().min(limits.max_head_bytes)];
    let parsed = with_header_array(limits.max_headers, |headers| {
        let mut resp = httparse::Response::new(&mut []);
        let config = httparse::ParserConfig::default();
        match config.parse_response_with_uninit_headers(&mut resp, window, headers) {
            Ok(httparse::Status::Complete(head_len)) => Ok(Some(RawResponse {
                head_len,
                status: resp.code.unwrap_or(0),
                reason: Span::of(window, resp.reason.unwrap_or("").as_bytes()),
                version_minor: resp.version.unwrap_or(1),
                headers: header_spans(window, resp.headers),
            })),
            Ok(httparse::Status::Partial) => Ok(None),
            Err(e) => Err(map_httparse_error(e, window)),
        }
    });
    match parsed? {
        Some(raw) => build_head(window, raw, request_method_is_head).map(Some),
        None if buf.len() > limits.max_head_bytes => Err(ResponseError::HeaderTooLarge),
        None => Ok(None),
    }
}

/// What httparse found, detached from its borrowed header array.
struct RawResponse {
    head_len: usize,
    status: u16,
    reason: Span,
    version_minor: u8,
    headers: Vec<HeaderSpan>,
}

/// Maps httparse's syntax errors to our variants.
fn map_httparse_error(e: httparse::Error, buf: &[u8]) -> ResponseError {
    match e {
        httparse::Error::TooManyHeaders => ResponseError::TooManyHeaders,
        httparse::Error::Version => {
            let first = buf.split(|&b| b == b' ').next().unwrap_or(&[]);
            if looks_like_http_version(first) {
                ResponseError::VersionNotSupported
            } else {
                ResponseError::BadSyntax("invalid status line")
            }
        }
        httparse::Error::Status => ResponseError::BadSyntax("invalid status code"),
        httparse::Error::HeaderName => ResponseError::BadSyntax("invalid header name"),
        httparse::Error::HeaderValue => ResponseError::BadSyntax("invalid header value"),
        httparse::Error::NewLine => ResponseError::BadSyntax("invalid line ending"),
        _ => ResponseError::BadSyntax("malformed response head"),
    }
}

/// Applies framing rules (RFC 9112 §6.3) on top of httparse's syntax checks.
fn build_head(
    buf: &[u8],
    raw: RawResponse,
    request_method_is_head: bool,
) -> Result<ResponseHead, ResponseError> {
    let head = buf.get(..raw.head_len).unwrap_or(buf);
    if has_bad_line_endings(head) {
        return Err(ResponseError::BadSyntax("bare CR, bare LF or NUL in head"));
    }
    if !(100..=999).contains(&raw.status) {
        return Err(ResponseError::BadSyntax("invalid status code"));
    }
    let facts =
        analyze_headers(buf, &raw.headers, raw.version_minor).map_err(ResponseError::Framing)?;
    let no_body = request_method_is_head
        || (100..200).contains(&raw.status)
        || raw.status == 204
        || raw.status == 304;
    // RFC 9112 §6.3: items 1-2 (no body), 4 (chunked), 6 (length), 8 (close).
    let framing = match (no_body, facts.chunked, facts.content_length) {
        (true, _, _) => BodyFraming::None,
        (false, true, _) => BodyFraming::Chunked,
        (false, false, Some(0)) => BodyFraming::None,
        (false, false, Some(n)) => BodyFraming::Length(n),
        (false, false, None) => BodyFraming::UntilClose,
    };
    let keep_alive = framing != BodyFraming::UntilClose
        && !facts.conn_close
        && (raw.version_minor == 1 || facts.conn_keep_alive);
    Ok(ResponseHead {
        head_len: raw.head_len,
        status: raw.status,
        reason: raw.reason,
        version_minor: raw.version_minor,
        headers: raw.headers,
        framing,
        keep_alive,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::test_util::Rng;

    fn ok(s: &[u8], head: bool) -> ResponseHead {
        match parse_response(s, head, &Limits::default()) {
            Ok(Some(h)) => h,
            other => panic!(
                "expected head for {:?}: {other:?}",
                String::from_utf8_lossy(s)
            ),
        }
    }

    fn err(s: &[u8]) -> ResponseError {
        match parse_response(s, false, &Limits::default()) {
            Err(e) => e,
            other => panic!(
                "expected error for {:?}: {other:?}",
                String::from_utf8_lossy(s)
            ),
        }
    }

    #[test]
    fn basic_length() {
        let buf = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\nhello";
        let h = ok(buf, false);
        assert_eq!(h.status, 200);
        assert_eq!(h.reason.get(buf), b"OK");
        assert_eq!(h.framing, BodyFraming::Length(5));
        assert_eq!(h.head_len, buf.len() - 5);
        assert!(h.keep_alive);
        assert_eq!(h.interim(), Interim::Final);
        assert_eq!(h.header(buf, b"server"), Some(&b"x"[..]));
    }

    #[test]
    fn no_body_cases() {
        for buf in [
            &b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"[..],
            b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\n",
        ] {
            assert_eq!(ok(buf, false).framing, BodyFraming::None);
        }
        let h = ok(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true);
        assert_eq!(h.framing, BodyFraming::None);
        assert!(h.keep_alive);
    }

    #[test]
    fn interim() {
        let buf = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        let h = ok(buf, false);
        assert_eq!(h.interim(), Interim::Expected);
        let h2 = ok(&buf[h.head_len..], false);
        assert_eq!(h2.status, 200);
        assert_eq!(h2.interim(), Interim::Final);
        let switch = ok(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
            false,
        );
        assert_eq!(switch.interim(), Interim::SwitchingProtocols);
        assert_eq!(switch.framing, BodyFraming::None);
        let hints = ok(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", false);
        assert_eq!(hints.interim(), Interim::Expected);
        for code in [102, 104, 150, 199] {
            let head = format!("HTTP/1.1 {code} Something\r\n\r\n");
            assert_eq!(
                ok(head.as_bytes(), false).interim(),
                Interim::Unexpected,
                "{code}"
            );
        }
    }

    #[test]
    fn chunked_and_until_close() {
        let h = ok(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
        );
        assert_eq!(h.framing, BodyFraming::Chunked);
        let h = ok(b"HTTP/1.1 200 OK\r\n\r\n", false);
        assert_eq!(h.framing, BodyFraming::UntilClose);
        assert!(!h.keep_alive);
    }

    #[test]
    fn keep_alive_rules() {
        assert!(
            !ok(
                b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                false
            )
            .keep_alive
        );
        assert!(!ok(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false).keep_alive);
        assert!(
            ok(
                b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
                false
            )
            .keep_alive
        );
    }

    #[test]
    fn smuggling_rejected_as_502() {
        let cases: &[&[u8]] = &[
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
            b"HTTP/1.1 200 OK\nX: a\n\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX : a\r\n\r\n",
        ];
        for buf in cases {
            let e = err(buf);
            assert_eq!(e.status(), 502, "{:?}", String::from_utf8_lossy(buf));
            assert!(!e.reason().is_empty());
        }
        assert_eq!(
            err(b"HTTP/2.0 200 OK\r\n\r\n"),
            ResponseError::VersionNotSupported
        );
    }

    #[test]
    fn partial_and_limits() {
        let limits = Limits {
            max_head_bytes: 20,
            max_headers: 2,
            max_line_bytes: 64 * 1024,
        };
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\n", false, &limits),
            Ok(None)
        );
        let long = b"HTTP/1.1 200 OK\r\nX-Long: aaaaaaaaaaaaaa\r\n\r\n";
        assert_eq!(
            parse_response(long, false, &limits),
            Err(ResponseError::HeaderTooLarge)
        );
        let many = b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
        let limits = Limits {
            max_head_bytes: 1000,
            max_headers: 2,
            max_line_bytes: 64 * 1024,
        };
        assert_eq!(
            parse_response(many, false, &limits),
            Err(ResponseError::TooManyHeaders)
        );
    }

    #[test]
    fn never_panics_on_random_input() {
        let mut rng = Rng(0xdead_beef_cafe_f00d);
        let seeds: &[&[u8]] = &[
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: keep-alive\r\n\r\n",
            b"HTTP/1.0 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\n",
        ];
        for i in 0..6000 {
            let input = if i % 2 == 0 {
                let len = rng.below(200);
                rng.bytes(len)
            } else {
                {
                    let seed = seeds[rng.below(seeds.len())];
                    rng.mutate(seed)
                }
            };
            if let Ok(Some(h)) = parse_response(&input, i % 3 == 0, &Limits::default()) {
                assert!(h.head_len <= input.len());
            }
        }
    }
}
