//! Request head parsing: httparse for the syntax, then the RFC 9112 framing
//! and nginx-compatible semantic checks a front proxy must enforce so that
//! it and the upstream never disagree on where a request ends.

use std::borrow::Cow;

use super::{
    analyze_headers, has_bad_line_endings, header_spans, with_header_array, BodyFraming,
    FramingError, HeaderSpan, Limits, Span,
};

/// Request method; the common ones get a variant so the proxy can branch
/// cheaply (HEAD changes response framing, idempotency drives retries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// HEAD (its response never has a body).
    Head,
    /// POST
    Post,
    /// PUT
    Put,
    /// DELETE
    Delete,
    /// OPTIONS (the only method allowed with an asterisk target).
    Options,
    /// PATCH
    Patch,
    /// Any other valid token; the bytes are in [`RequestHead::method_span`].
    Other,
}

impl Method {
    /// Classifies a method token (case-sensitive, RFC 9110 §9.1).
    fn from_bytes(m: &[u8]) -> Method {
        match m {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"OPTIONS" => Method::Options,
            b"PATCH" => Method::Patch,
            _ => Method::Other,
        }
    }
}

/// Why a request head was refused; each maps to the status nginx would send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The head exceeds `max_head_bytes` (nginx's 400 "Request Header Or Cookie Too Large").
    #[error("request header too large")]
    HeaderTooLarge,
    /// One header line longer than `max_line_bytes` (400, as nginx).
    #[error("request header line too long")]
    HeaderLineTooLong,
    /// The request line is longer than `max_line_bytes` (414, as nginx).
    #[error("request line too long")]
    UriTooLong,
    /// More than `max_headers` fields (400).
    #[error("too many request headers")]
    TooManyHeaders,
    /// Malformed syntax; the string says what (400).
    #[error("bad request: {0}")]
    BadSyntax(&'static str),
    /// Request target is not origin-, absolute- or asterisk-form (400).
    #[error("invalid request target")]
    BadTarget,
    /// Methods nginx refuses outright: TRACE and CONNECT (405).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Version is well-formed but not HTTP/1.0 or HTTP/1.1 (505).
    #[error("HTTP version not supported")]
    VersionNotSupported,
    /// RFC 9112 §3.2: HTTP/1.1 requests must carry Host (400).
    #[error("missing Host header")]
    MissingHost,
    /// RFC 9112 §3.2: more than one Host field (400).
    #[error("duplicate Host header")]
    DuplicateHost,
    /// Host value nginx would refuse (empty, `/`, `..`, NUL) (400).
    #[error("invalid Host header")]
    InvalidHost,
    /// Ambiguous or unsupported body framing (400, or 501 for unknown TE).
    #[error("{0}")]
    Framing(FramingError),
}

impl RequestError {
    /// HTTP status to answer with before closing the connection (the page's).
    pub fn status(&self) -> u16 {
        self.page().status()
    }

    /// The page to answer with: nginx's own for oversized heads (a 400), 414 for a long
    /// request line, 405, 505, 501 for a transfer coding we do not implement, else 400.
    pub fn page(&self) -> super::Canned {
        use super::Canned;
        match self {
            RequestError::HeaderTooLarge
            | RequestError::HeaderLineTooLong
            | RequestError::TooManyHeaders => Canned::HeaderTooLarge,
            RequestError::UriTooLong => Canned::UriTooLong,
            RequestError::MethodNotAllowed => Canned::MethodNotAllowed,
            RequestError::VersionNotSupported => Canned::VersionNotSupported,
            RequestError::Framing(FramingError::UnsupportedTransferEncoding) => {
                Canned::NotImplemented
            }
            _ => Canned::BadRequest,
        }
    }

    /// Short static reason for the access/error log.
    pub fn reason(&self) -> &'static str {
        match self {
            RequestError::HeaderTooLarge => "request header too large",
            RequestError::HeaderLineTooLong => "request header line too long",
            RequestError::UriTooLong => "request line too long",
            RequestError::TooManyHeaders => "too many request headers",
            RequestError::BadSyntax(why) => why,
            RequestError::BadTarget => "invalid request target",
            RequestError::MethodNotAllowed => "method not allowed",
            RequestError::VersionNotSupported => "unsupported HTTP version",
            RequestError::MissingHost => "missing Host header",
            RequestError::DuplicateHost => "duplicate Host header",
            RequestError::InvalidHost => "invalid Host header",
            RequestError::Framing(f) => framing_reason(f),
        }
    }
}

/// Static log reason for a framing error.
pub(crate) fn framing_reason(f: &FramingError) -> &'static str {
    match f {
        FramingError::LengthAndChunked => "both Content-Length and Transfer-Encoding",
        FramingError::DuplicateLength => "duplicate Content-Length",
        FramingError::InvalidLength => "invalid Content-Length",
        FramingError::DuplicateTransferEncoding => "duplicate Transfer-Encoding",
        FramingError::UnsupportedTransferEncoding => "unsupported Transfer-Encoding",
        FramingError::TransferEncodingOnHttp10 => "Transfer-Encoding in HTTP/1.0",
    }
}

/// A parsed request head: spans into the caller's buffer plus the
/// interpreted facts the proxy needs to forward it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// Bytes of the head including the final CRLF; the body starts here.
    pub head_len: usize,
    /// Classified method.
    pub method: Method,
    /// Method token as sent.
    pub method_span: Span,
    /// Full request target as sent.
    pub target: Span,
    /// Path and query of the target (for absolute-form, the part after the
    /// authority; empty means "/"). For `*` it is the asterisk.
    pub path_and_query: Span,
    /// Authority of an absolute-form target (nginx uses it as `$host`).
    pub authority: Option<Span>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version_minor: u8,
    /// All header fields in order.
    pub headers: Vec<HeaderSpan>,
    /// How the body is delimited.
    pub framing: BodyFraming,
    /// Whether the client connection may be reused after this exchange.
    pub keep_alive: bool,
    /// Client sent `Expect: 100-continue` (HTTP/1.1 only).
    pub expect_continue: bool,
    /// Value of the single Host header, if any.
    pub host: Option<Span>,
}

impl RequestHead {
    /// HEAD responses carry no body, so the response parser must know.
    pub fn is_head(&self) -> bool {
        self.method == Method::Head
    }

    /// RFC 9110 §9.2.2 idempotent methods, which may be retried on another
    /// upstream after a connection failure.
    pub fn is_idempotent(&self, buf: &[u8]) -> bool {
        match self.method {
            Method::Get | Method::Head | Method::Put | Method::Delete | Method::Options => true,
            Method::Post | Method::Patch => false,
            Method::Other => self.method_span.get(buf) == b"TRACE",
        }
    }

    /// nginx's `$host`: the absolute-form authority, else the Host header,
    /// without port and trailing dot, lowercased. `None` means "use the
    /// server name" (HTTP/1.0 without Host).
    pub fn host_for_nginx<'a>(&self, buf: &'a [u8]) -> Option<Cow<'a, [u8]>> {
        let raw = self.authority.or(self.host)?.get(buf);
        let len = validate_host(raw)?;
        let host = raw.get(..len)?;
        if host.iter().any(u8::is_ascii_uppercase) {
            Some(Cow::Owned(host.to_ascii_lowercase()))
        } else {
            Some(Cow::Borrowed(host))
        }
    }

    /// Finds the first header with this (case-insensitive) name; a
    /// convenience for the proxy's variable lookups.
    pub fn header<'a>(&self, buf: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .find(|h| h.name.get(buf).eq_ignore_ascii_case(name))
            .map(|h| h.value.get(buf))
    }
}

/// Parses a request head from the start of `buf`.
///
/// `Ok(None)` means more bytes are needed. nginx's buffer model bounds the head: every line
/// within `max_line_bytes` (a longer request line is 414, a longer field 400, refused as soon as
/// it is seen), the whole head within `max_head_bytes`.
pub fn parse_request(buf: &[u8], limits: &Limits) -> Result<Option<RequestHead>, RequestError> {
    let window = &buf[..buf.len().min(limits.max_head_bytes)];
    let parsed = with_header_array(limits.max_headers, |headers| {
        let mut req = httparse::Request::new(&mut []);
        match req.parse_with_uninit_headers(window, headers) {
            Ok(httparse::Status::Complete(head_len)) => Ok(Some(raw_parts(window, &req, head_len))),
            Ok(httparse::Status::Partial) => Ok(None),
            Err(e) => Err(map_httparse_error(e, window)),
        }
    });
    match parsed? {
        Some(raw) => {
            check_complete_lines(&raw, limits)?;
            build_head(window, raw).map(Some)
        }
        None => {
            check_partial_lines(window, limits)?;
            if buf.len() > limits.max_head_bytes {
                Err(if window.contains(&b'\n') {
                    RequestError::HeaderTooLarge
                } else {
                    RequestError::UriTooLong
                })
            } else {
                Ok(None)
            }
        }
    }
}

/// Each line of a complete head within one header buffer, measured between the fields' spans
/// (no second pass over the bytes on the common path).
fn check_complete_lines(raw: &RawRequest, limits: &Limits) -> Result<(), RequestError> {
    let end = raw.head_len.saturating_sub(2);
    let starts = raw.headers.iter().map(|h| h.name.start).chain([end]);
    let mut line_start = 0;
    for (i, next) in starts.enumerate() {
        if next.saturating_sub(line_start) > limits.max_line_bytes {
            return Err(line_too_long(i == 0));
        }
        line_start = next;
    }
    Ok(())
}

/// Each line of an incomplete head (the last one possibly cut short) within one header buffer,
/// so a line that outgrows its buffer is refused before the head is complete.
fn check_partial_lines(head: &[u8], limits: &Limits) -> Result<(), RequestError> {
    for (i, line) in head.split_inclusive(|&b| b == b'\n').enumerate() {
        if line.len() > limits.max_line_bytes {
            return Err(line_too_long(i == 0));
        }
    }
    Ok(())
}

/// nginx's answers to a line longer than a buffer: 414 for the request line, 400 for a field.
fn line_too_long(request_line: bool) -> RequestError {
    if request_line {
        RequestError::UriTooLong
    } else {
        RequestError::HeaderLineTooLong
    }
}

/// What httparse found, detached from its borrowed header array.
struct RawRequest {
    head_len: usize,
    method: Span,
    target: Span,
    version_minor: u8,
    headers: Vec<HeaderSpan>,
}

/// Copies httparse's borrowed results into spans.
fn raw_parts(buf: &[u8], req: &httparse::Request<'_, '_>, head_len: usize) -> RawRequest {
    RawRequest {
        head_len,
        method: Span::of(buf, req.method.unwrap_or("").as_bytes()),
        target: Span::of(buf, req.path.unwrap_or("").as_bytes()),
        version_minor: req.version.unwrap_or(1),
        headers: header_spans(buf, req.headers),
    }
}

/// Maps httparse's syntax errors to our variants (431 / 505 / 400).
fn map_httparse_error(e: httparse::Error, buf: &[u8]) -> RequestError {
    match e {
        httparse::Error::TooManyHeaders => RequestError::TooManyHeaders,
        // A well-formed three-part line with a version we do not speak is 505; anything else
        // (`GET /a b HTTP/1.1`, a space inside the target) is a bad request line, as in nginx.
        httparse::Error::Version
            if first_line_parts(buf) == 3
                && looks_like_http_version(first_line_last_token(buf)) =>
        {
            RequestError::VersionNotSupported
        }
        httparse::Error::Version => RequestError::BadSyntax("invalid HTTP version"),
        httparse::Error::Token => RequestError::BadSyntax("invalid method"),
        httparse::Error::HeaderName => RequestError::BadSyntax("invalid header name"),
        httparse::Error::HeaderValue => RequestError::BadSyntax("invalid header value"),
        httparse::Error::NewLine => RequestError::BadSyntax("invalid line ending"),
        _ => RequestError::BadSyntax("malformed request head"),
    }
}

/// How many space-separated parts the first line has.
fn first_line_parts(buf: &[u8]) -> usize {
    let line_end = buf.iter().position(|&b| b == b'\r' || b == b'\n');
    buf[..line_end.unwrap_or(buf.len())]
        .split(|&b| b == b' ')
        .count()
}

/// The last space-separated token of the first line (the version).
fn first_line_last_token(buf: &[u8]) -> &[u8] {
    let line_end = buf.iter().position(|&b| b == b'\r' || b == b'\n');
    let line = &buf[..line_end.unwrap_or(buf.len())];
    line.rsplit(|&b| b == b' ').next().unwrap_or(&[])
}

/// `HTTP/DIGIT.DIGIT` or `HTTP/DIGIT` (HTTP/2, HTTP/3 preface-style lines):
/// a real version we do not speak (505) rather than garbage (400).
pub(crate) fn looks_like_http_version(v: &[u8]) -> bool {
    match v {
        [b'H', b'T', b'T', b'P', b'/', d] => d.is_ascii_digit(),
        [b'H', b'T', b'T', b'P', b'/', a, b'.', b] => a.is_ascii_digit() && b.is_ascii_digit(),
        _ => false,
    }
}

/// Applies the semantic checks on top of httparse's syntax checks.
fn build_head(buf: &[u8], raw: RawRequest) -> Result<RequestHead, RequestError> {
    let head = buf.get(..raw.head_len).unwrap_or(buf);
    if has_bad_line_endings(head) {
        return Err(RequestError::BadSyntax("bare CR, bare LF or NUL in head"));
    }
    let method_bytes = raw.method.get(buf);
    // nginx's method alphabet (`A`-`Z`, `_`, `-`), stricter than RFC 9110's token: `get` or
    // `G1` are refused with 400 rather than handed to an upstream that may read them
    // case-insensitively.
    if method_bytes.is_empty() || !method_bytes.iter().copied().all(is_method_char) {
        return Err(RequestError::BadSyntax("invalid method"));
    }
    if method_bytes == b"CONNECT" && raw.target.get(buf).first() != Some(&b'/') {
        // nginx: an authority-form target is an invalid request line (400); CONNECT with an
        // origin-form target is a method it does not serve (405).
        return Err(RequestError::BadTarget);
    }
    if method_bytes == b"TRACE" || method_bytes == b"CONNECT" {
        return Err(RequestError::MethodNotAllowed);
    }
    let method = Method::from_bytes(method_bytes);
    let (path_and_query, authority) = classify_target(buf, raw.target, method)?;
    let facts =
        analyze_headers(buf, &raw.headers, raw.version_minor).map_err(RequestError::Framing)?;
    check_host(
        buf,
        raw.version_minor,
        facts.host_count,
        facts.host,
        authority,
    )?;
    let framing = match (facts.chunked, facts.content_length) {
        (true, _) => BodyFraming::Chunked,
        (false, Some(0)) | (false, None) => BodyFraming::None,
        (false, Some(n)) => BodyFraming::Length(n),
    };
    let keep_alive = if raw.version_minor == 0 {
        facts.conn_keep_alive && !facts.conn_close
    } else {
        !facts.conn_close
    };
    Ok(RequestHead {
        head_len: raw.head_len,
        method,
        method_span: raw.method,
        target: raw.target,
        path_and_query,
        authority,
        version_minor: raw.version_minor,
        headers: raw.headers,
        framing,
        keep_alive,
        expect_continue: facts.expect_continue && raw.version_minor == 1,
        host: facts.host,
    })
}

/// A method byte as nginx accepts it: upper-case letters, `_` and `-`.
fn is_method_char(b: u8) -> bool {
    b.is_ascii_uppercase() || b == b'_' || b == b'-'
}

/// RFC 9112 §3.2: Host is mandatory in HTTP/1.1 and must be unique; its
/// value (and an absolute-form authority) must pass nginx's host checks.
fn check_host(
    buf: &[u8],
    version_minor: u8,
    count: usize,
    host: Option<Span>,
    authority: Option<Span>,
) -> Result<(), RequestError> {
    if count > 1 {
        return Err(RequestError::DuplicateHost);
    }
    if count == 0 && version_minor == 1 {
        return Err(RequestError::MissingHost);
    }
    for span in [host, authority].into_iter().flatten() {
        if validate_host(span.get(buf)).is_none() {
            return Err(RequestError::InvalidHost);
        }
    }
    Ok(())
}

/// RFC 9112 §3.2: accepts origin-form, absolute-form (http/https) and
/// asterisk-form (OPTIONS only); authority-form is CONNECT-only and CONNECT
/// is refused earlier. Returns (path-and-query, authority).
fn classify_target(
    buf: &[u8],
    target: Span,
    method: Method,
) -> Result<(Span, Option<Span>), RequestError> {
    let t = target.get(buf);
    match t.first() {
        Some(b'/') => Ok((target, None)),
        Some(b'*') if t.len() == 1 && method == Method::Options => Ok((target, None)),
        Some(_) => absolute_form(target, t),
        None => Err(RequestError::BadTarget),
    }
}

/// Splits `http://authority/path?query` into its path-and-query and
/// authority spans; rejects other schemes, empty authorities and userinfo
/// (RFC 9110 §4.2.4 deprecates it; it only serves to confuse logs).
fn absolute_form(target: Span, t: &[u8]) -> Result<(Span, Option<Span>), RequestError> {
    let scheme_len = if starts_with_ci(t, b"http://") {
        7
    } else if starts_with_ci(t, b"https://") {
        8
    } else {
        return Err(RequestError::BadTarget);
    };
    let rest = &t[scheme_len..];
    let auth_len = rest
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let authority = &rest[..auth_len];
    if authority.is_empty() || authority.contains(&b'@') {
        return Err(RequestError::BadTarget);
    }
    if rest.get(auth_len) == Some(&b'#') {
        return Err(RequestError::BadTarget);
    }
    let auth_start = target.start + scheme_len;
    let path_start = auth_start + auth_len;
    Ok((
        Span::new(path_start, target.end),
        Some(Span::new(auth_start, path_start)),
    ))
}

/// ASCII case-insensitive prefix test.
fn starts_with_ci(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// nginx's `ngx_http_validate_host`: returns the length of the host part
/// (port and one trailing dot removed) or `None` when nginx would answer
/// 400 (empty host, `/` or `\`, `..`, NUL, control bytes).
pub(crate) fn validate_host(h: &[u8]) -> Option<usize> {
    let mut dot_pos: Option<usize> = None;
    let mut host_len = h.len();
    let mut in_literal = false;
    let mut in_port = false;
    for (i, &c) in h.iter().enumerate() {
        match c {
            b'.' if !in_port => {
                if dot_pos.is_some_and(|d| d + 1 == i) {
                    return None;
                }
                dot_pos = Some(i);
            }
            b':' if !in_port && !in_literal => {
                host_len = i;
                in_port = true;
            }
            b'[' if i == 0 => in_literal = true,
            b']' if in_literal => {
                host_len = i + 1;
                in_literal = false;
                in_port = true;
            }
            b'/' | b'\\' | 0..=0x20 | 0x7f => return None,
            _ => {}
        }
    }
    if host_len > 0 && dot_pos.is_some_and(|d| d + 1 == host_len) {
        host_len -= 1;
    }
    (host_len > 0).then_some(host_len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::test_util::Rng;

    fn parse(s: &[u8]) -> Result<Option<RequestHead>, RequestError> {
        parse_request(s, &Limits::default())
    }

    fn ok(s: &[u8]) -> RequestHead {
        match parse(s) {
            Ok(Some(h)) => h,
            other => panic!(
                "expected a head for {:?}, got {other:?}",
                String::from_utf8_lossy(s)
            ),
        }
    }

    fn err(s: &[u8]) -> RequestError {
        match parse(s) {
            Err(e) => e,
            other => panic!(
                "expected an error for {:?}, got {other:?}",
                String::from_utf8_lossy(s)
            ),
        }
    }

    #[test]
    fn each_request_error_answers_with_its_nginx_status() {
        use super::super::FramingError;
        let cases = [
            (RequestError::UriTooLong, 414),
            (RequestError::MethodNotAllowed, 405),
            (RequestError::VersionNotSupported, 505),
            (
                RequestError::Framing(FramingError::UnsupportedTransferEncoding),
                501,
            ),
            (RequestError::HeaderTooLarge, 400),
            (RequestError::MissingHost, 400),
            (RequestError::BadTarget, 400),
        ];
        for (e, status) in cases {
            assert_eq!(e.status(), status, "{e:?}");
            assert_eq!(e.page().status(), status, "{e:?}");
        }
        assert_eq!(
            RequestError::HeaderTooLarge.page(),
            crate::http::Canned::HeaderTooLarge
        );
    }

    #[test]
    fn simple_get() {
        let buf = b"GET /a?b=1 HTTP/1.1\r\nHost: Example.COM:8443\r\nX-A: 1\r\n\r\nNEXT";
        let h = ok(buf);
        assert_eq!(h.head_len, buf.len() - 4);
        assert_eq!(h.method, Method::Get);
        assert_eq!(h.target.get(buf), b"/a?b=1");
        assert_eq!(h.path_and_query.get(buf), b"/a?b=1");
        assert_eq!(h.version_minor, 1);
        assert_eq!(h.framing, BodyFraming::None);
        assert!(h.keep_alive && !h.expect_continue && !h.is_head());
        assert!(h.is_idempotent(buf));
        assert_eq!(h.headers.len(), 2);
        assert_eq!(h.headers[1].name.get(buf), b"X-A");
        assert_eq!(h.header(buf, b"x-a"), Some(&b"1"[..]));
        assert_eq!(h.host_for_nginx(buf).as_deref(), Some(&b"example.com"[..]));
    }

    #[test]
    fn partial_and_too_large() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: a\r\n"), Ok(None));
        assert_eq!(parse(b""), Ok(None));
        let limits = Limits {
            max_head_bytes: 32,
            max_headers: 100,
            max_line_bytes: 32,
        };
        let big = b"GET / HTTP/1.1\r\nHost: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
        assert_eq!(parse_request(&big[..20], &limits), Ok(None));
        assert_eq!(
            parse_request(big, &limits),
            Err(RequestError::HeaderTooLarge)
        );
        assert_eq!(RequestError::HeaderTooLarge.status(), 400);
        assert_eq!(
            RequestError::HeaderTooLarge.page(),
            crate::http::Canned::HeaderTooLarge
        );
    }

    /// nginx's `large_client_header_buffers 4 8k`: three 6 KB fields and 101 fields are
    /// served; one 9 KB field is 400, a 9 KB request line 414, a head over 32 KB 400.
    #[test]
    fn nginx_header_buffer_model() {
        let field = |n: usize| format!("X-Big: {}\r\n", "a".repeat(n));
        let three = format!("GET / HTTP/1.1\r\nHost: a\r\n{}\r\n", field(6000).repeat(3));
        assert!(ok(three.as_bytes()).headers.len() == 4);
        let many: String = (0..101).map(|i| format!("X-{i}: v\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n");
        assert_eq!(ok(many.as_bytes()).headers.len(), 102);
        let long_field = format!("GET / HTTP/1.1\r\nHost: a\r\n{}\r\n", field(9000));
        assert_eq!(err(long_field.as_bytes()), RequestError::HeaderLineTooLong);
        // Refused as soon as the line outgrows a buffer, before the head is complete.
        assert_eq!(
            err(&long_field.as_bytes()[..8300]),
            RequestError::HeaderLineTooLong
        );
        let long_target = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(9000));
        assert_eq!(err(long_target.as_bytes()), RequestError::UriTooLong);
        assert_eq!(
            err(&long_target.as_bytes()[..8300]),
            RequestError::UriTooLong
        );
        assert_eq!(RequestError::UriTooLong.status(), 414);
        let huge = format!("GET / HTTP/1.1\r\nHost: a\r\n{}\r\n", field(7000).repeat(5));
        assert_eq!(err(huge.as_bytes()), RequestError::HeaderTooLarge);
    }

    /// A line of exactly one buffer (its CRLF included) is accepted, one byte more is not; the
    /// complete and the incomplete head measure it alike.
    #[test]
    fn line_limit_boundary() {
        let limits = Limits {
            max_head_bytes: 4096,
            max_headers: 100,
            max_line_bytes: 32,
        };
        let line = |n: usize| format!("X: {}\r\n", "a".repeat(n - 5));
        for (len, fits) in [(32, true), (33, false)] {
            let head = format!("GET / HTTP/1.1\r\nHost: a\r\n{}\r\n", line(len));
            let complete = parse_request(head.as_bytes(), &limits);
            let partial = parse_request(&head.as_bytes()[..head.len() - 2], &limits);
            if fits {
                assert!(matches!(complete, Ok(Some(_))), "{len}: {complete:?}");
                assert_eq!(partial, Ok(None), "{len}");
            } else {
                assert_eq!(complete, Err(RequestError::HeaderLineTooLong), "{len}");
                assert_eq!(partial, Err(RequestError::HeaderLineTooLong), "{len}");
            }
        }
        let target = |n: usize| format!("GET /{} HTTP/1.1\r\n", "a".repeat(n - 16));
        for (len, fits) in [(32, true), (33, false)] {
            let head = format!("{}Host: a\r\n\r\n", target(len));
            let got = parse_request(head.as_bytes(), &limits);
            if fits {
                assert!(matches!(got, Ok(Some(_))), "{len}: {got:?}");
            } else {
                assert_eq!(got, Err(RequestError::UriTooLong), "{len}");
            }
        }
    }

    #[test]
    fn too_many_headers() {
        let limits = Limits {
            max_head_bytes: 16384,
            max_headers: 3,
            max_line_bytes: 8192,
        };
        let buf = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
        let e = parse_request(buf, &limits).unwrap_err();
        assert_eq!(e, RequestError::TooManyHeaders);
        assert_eq!(e.status(), 400);
        let big = Limits {
            max_head_bytes: 16384,
            max_headers: 500,
            max_line_bytes: 8192,
        };
        assert!(parse_request(buf, &big).unwrap().is_some());
    }

    #[test]
    fn framing_length_and_chunked() {
        let h = ok(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n");
        assert_eq!(h.framing, BodyFraming::Length(12));
        assert!(!h.is_idempotent(b""));
        let h = ok(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n");
        assert_eq!(h.framing, BodyFraming::Chunked);
        let h = ok(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(h.framing, BodyFraming::None);
    }

    #[test]
    fn smuggling_rejected() {
        let cases: &[(&[u8], RequestError, u16)] = &[
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                RequestError::Framing(FramingError::LengthAndChunked),
                400,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
                RequestError::Framing(FramingError::DuplicateLength),
                400,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n",
                RequestError::Framing(FramingError::InvalidLength),
                400,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
                RequestError::Framing(FramingError::InvalidLength),
                400,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
                RequestError::Framing(FramingError::InvalidLength),
                400,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                RequestError::Framing(FramingError::UnsupportedTransferEncoding),
                501,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                RequestError::Framing(FramingError::DuplicateTransferEncoding),
                400,
            ),
            (
                b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                RequestError::Framing(FramingError::TransferEncodingOnHttp10),
                400,
            ),
        ];
        for (buf, want, status) in cases {
            let e = err(buf);
            assert_eq!(&e, want, "{}", String::from_utf8_lossy(buf));
            assert_eq!(e.status(), *status);
            assert!(!e.reason().is_empty());
        }
    }

    #[test]
    fn syntax_rejected() {
        let bad: &[&[u8]] = &[
            b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nX\0: b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n",
            b"GET / HTTP/1.1\nHost: a\n\n",
            b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\n: a\r\nHost: a\r\n\r\n",
        ];
        for buf in bad {
            let e = err(buf);
            assert_eq!(
                e.status(),
                400,
                "{:?} -> {e:?}",
                String::from_utf8_lossy(buf)
            );
        }
    }

    #[test]
    fn targets() {
        assert_eq!(
            err(b"GET foo HTTP/1.1\r\nHost: a\r\n\r\n"),
            RequestError::BadTarget
        );
        assert_eq!(
            err(b"GET * HTTP/1.1\r\nHost: a\r\n\r\n"),
            RequestError::BadTarget
        );
        assert_eq!(
            err(b"GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n"),
            RequestError::BadTarget
        );
        assert_eq!(
            err(b"GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n"),
            RequestError::BadTarget
        );
        assert_eq!(
            err(b"GET http://u@h/ HTTP/1.1\r\nHost: a\r\n\r\n"),
            RequestError::BadTarget
        );
        assert_eq!(
            err(b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n"),
            RequestError::BadTarget
        );
        assert_eq!(
            err(b"CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n"),
            RequestError::MethodNotAllowed
        );
        assert_eq!(err(b"TRACE / HTTP/1.1\r\nHost: a\r\n\r\n").status(), 405);
        let buf = b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(ok(buf).path_and_query.get(buf), b"*");
    }

    #[test]
    fn absolute_form_authority_is_host() {
        let buf = b"GET HTTP://Other.Example:81/p?q HTTP/1.1\r\nHost: a.example\r\n\r\n";
        let h = ok(buf);
        assert_eq!(
            h.authority.map(|a| a.get(buf)),
            Some(&b"Other.Example:81"[..])
        );
        assert_eq!(h.path_and_query.get(buf), b"/p?q");
        assert_eq!(
            h.host_for_nginx(buf).as_deref(),
            Some(&b"other.example"[..])
        );
        let buf = b"GET http://x.example?q HTTP/1.0\r\n\r\n";
        let h = ok(buf);
        assert_eq!(h.path_and_query.get(buf), b"?q");
        assert_eq!(h.host_for_nginx(buf).as_deref(), Some(&b"x.example"[..]));
    }

    #[test]
    fn versions() {
        let e = err(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n");
        assert_eq!((e, e.status()), (RequestError::VersionNotSupported, 505));
        assert_eq!(err(b"GET / HTTP/1.2\r\nHost: a\r\n\r\n").status(), 505);
        assert_eq!(err(b"GET / HTXP/1.1\r\nHost: a\r\n\r\n").status(), 400);
        assert_eq!(err(b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n").status(), 400);
        let h = ok(b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(h.version_minor, 0);
        assert!(!h.keep_alive);
        assert_eq!(h.host_for_nginx(b"GET / HTTP/1.0\r\n\r\n"), None);
    }

    #[test]
    fn host_rules() {
        assert_eq!(err(b"GET / HTTP/1.1\r\n\r\n"), RequestError::MissingHost);
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"),
            RequestError::DuplicateHost
        );
        for bad in [&b""[..], b"a/b", b"a..b", b"a\\b", b":80", b"."] {
            let mut buf = b"GET / HTTP/1.1\r\nHost: ".to_vec();
            buf.extend_from_slice(bad);
            buf.extend_from_slice(b"\r\n\r\n");
            assert_eq!(err(&buf), RequestError::InvalidHost, "{:?}", bad);
        }
        let buf = b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n";
        assert_eq!(ok(buf).host_for_nginx(buf).as_deref(), Some(&b"[::1]"[..]));
        let buf = b"GET / HTTP/1.1\r\nHost: example.com.\r\n\r\n";
        assert!(matches!(
            ok(buf).host_for_nginx(buf),
            Some(Cow::Borrowed(b"example.com"))
        ));
    }

    #[test]
    fn connection_semantics() {
        assert!(
            !ok(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Close\r\n\r\n").keep_alive
        );
        assert!(ok(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        assert!(!ok(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
        let h =
            ok(b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n");
        assert!(h.expect_continue);
        assert!(!ok(b"PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n").expect_continue);
    }

    #[test]
    fn methods() {
        for (m, want) in [
            (&b"HEAD"[..], Method::Head),
            (b"POST", Method::Post),
            (b"PUT", Method::Put),
            (b"DELETE", Method::Delete),
            (b"OPTIONS", Method::Options),
            (b"PATCH", Method::Patch),
            (b"PROPFIND", Method::Other),
        ] {
            let mut buf = m.to_vec();
            buf.extend_from_slice(b" / HTTP/1.1\r\nHost: a\r\n\r\n");
            let h = ok(&buf);
            assert_eq!(h.method, want);
            assert_eq!(h.method_span.get(&buf), m);
        }
        assert!(ok(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n").is_head());
        ok(b"M_-X / HTTP/1.1\r\nHost: a\r\n\r\n");
        for bad in [&b"get"[..], b"Get", b"M1", b"M.X", b"M!"] {
            let mut buf = bad.to_vec();
            buf.extend_from_slice(b" / HTTP/1.1\r\nHost: a\r\n\r\n");
            assert_eq!(
                err(&buf),
                RequestError::BadSyntax("invalid method"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn never_panics_on_random_input() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        let seeds: &[&[u8]] = &[
            b"GET /a HTTP/1.1\r\nHost: a.b\r\nContent-Length: 10\r\n\r\n",
            b"POST http://x.y/z HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            b"OPTIONS * HTTP/1.0\r\nExpect: 100-continue\r\n\r\n",
        ];
        let small = Limits {
            max_head_bytes: 64,
            max_headers: 4,
            max_line_bytes: 64,
        };
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
            for limits in [Limits::default(), small] {
                if let Ok(Some(h)) = parse_request(&input, &limits) {
                    assert!(h.head_len <= input.len());
                    let _ = h.host_for_nginx(&input);
                    let _ = h.is_idempotent(&input);
                }
            }
        }
    }
}
