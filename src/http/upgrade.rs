//! HTTP/1.1 protocol upgrades (RFC 9110 §7.8): which requests may switch protocols, and
//! whether an upstream's `101 Switching Protocols` answers what was asked.
//!
//! `Upgrade` is hop-by-hop, so a proxy forwards it only by decision: here, for the tokens a
//! location allows, on an HTTP/1.1 request without a body that also lists `upgrade` in its
//! `Connection` header (a sender of `Upgrade` must, and a request without it is not asking to
//! switch). `h2c` is never forwarded whatever a location says: an h2c upgrade gives the
//! client an HTTP/2 connection to the upstream on which no further request passes the
//! proxy's access rules (h2c smuggling).

use super::{comma_list, BodyFraming, HeaderSpan, RequestHead, ResponseHead};

/// The protocol name of an `Upgrade` token: `websocket` of `WebSocket/13`.
fn protocol_name(token: &[u8]) -> &[u8] {
    token.split(|&b| b == b'/').next().unwrap_or(token)
}

/// The comma-separated values of every `name` field, in order.
fn list_values<'a>(
    headers: &'a [HeaderSpan],
    buf: &'a [u8],
    name: &'a [u8],
) -> impl Iterator<Item = &'a [u8]> + 'a {
    headers
        .iter()
        .filter(move |h| h.name.get(buf).eq_ignore_ascii_case(name))
        .flat_map(move |h| comma_list(h.value.get(buf)))
}

/// The `Upgrade` value to send upstream when this request asks to switch to protocols the
/// location allows (`allowed`: lowercase names): the tokens it asked for that are allowed, in
/// its order. `None` when the request does not qualify; it is then an ordinary request and
/// its `Upgrade` is dropped as hop-by-hop.
pub fn requested(head: &RequestHead, buf: &[u8], allowed: &[String]) -> Option<Vec<u8>> {
    if allowed.is_empty() || head.version_minor != 1 || head.framing != BodyFraming::None {
        return None;
    }
    let connection_lists_upgrade =
        list_values(&head.headers, buf, b"connection").any(|t| t.eq_ignore_ascii_case(b"upgrade"));
    if !connection_lists_upgrade {
        return None;
    }
    let mut value = Vec::new();
    for token in list_values(&head.headers, buf, b"upgrade") {
        let name = protocol_name(token);
        let permitted = !name.eq_ignore_ascii_case(b"h2c")
            && allowed
                .iter()
                .any(|a| name.eq_ignore_ascii_case(a.as_bytes()));
        if permitted {
            if !value.is_empty() {
                value.extend_from_slice(b", ");
            }
            value.extend_from_slice(token);
        }
    }
    (!value.is_empty()).then_some(value)
}

/// Whether a `101` answers the upgrade that was sent (`requested`, the value of the `Upgrade`
/// sent upstream): its `Upgrade` names one of the requested protocols. A 101 for anything
/// else means the upstream now speaks a protocol nobody asked for.
pub fn accepted(resp: &ResponseHead, buf: &[u8], requested: &[u8]) -> bool {
    let Some(chosen) = list_values(&resp.headers, buf, b"upgrade").next() else {
        return false;
    };
    let chosen = protocol_name(chosen);
    comma_list(requested).any(|t| protocol_name(t).eq_ignore_ascii_case(chosen))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{parse_request, parse_response, Limits};

    fn ask(raw: &str, allowed: &[&str]) -> Option<String> {
        let buf = raw.as_bytes();
        let head = parse_request(buf, &Limits::default()).unwrap().unwrap();
        let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
        requested(&head, buf, &allowed).map(|v| String::from_utf8(v).unwrap())
    }

    const WS: &str = "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\r\n";

    #[test]
    fn an_allowed_token_with_connection_upgrade_is_requested() {
        assert_eq!(ask(WS, &["websocket"]).as_deref(), Some("websocket"));
        let versioned =
            "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: WebSocket/13\r\nConnection: upgrade\r\n\r\n";
        assert_eq!(
            ask(versioned, &["websocket"]).as_deref(),
            Some("WebSocket/13")
        );
    }

    #[test]
    fn nothing_is_requested_unless_every_condition_holds() {
        // The location allows no upgrade, or another protocol.
        assert_eq!(ask(WS, &[]), None);
        assert_eq!(ask(WS, &["foo"]), None);
        // No `Connection: upgrade`.
        let bare = "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n";
        assert_eq!(ask(bare, &["websocket"]), None);
        // HTTP/1.0 has no upgrade.
        let old = "GET / HTTP/1.0\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n";
        assert_eq!(ask(old, &["websocket"]), None);
        // A request with a body.
        let body = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\nabc";
        assert_eq!(ask(body, &["websocket"]), None);
        let chunked = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n0\r\n\r\n";
        assert_eq!(ask(chunked, &["websocket"]), None);
    }

    #[test]
    fn h2c_is_never_requested_and_other_tokens_are_filtered() {
        let h2c = "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n";
        assert_eq!(ask(h2c, &["websocket"]), None);
        assert_eq!(ask(h2c, &["h2c"]), None, "not even when a list names it");
        let mixed =
            "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c, websocket, foo\r\nConnection: upgrade\r\n\r\n";
        assert_eq!(ask(mixed, &["websocket"]).as_deref(), Some("websocket"));
    }

    fn switched(raw: &str, requested: &str) -> bool {
        let buf = raw.as_bytes();
        let resp = parse_response(buf, false, &Limits::default())
            .unwrap()
            .unwrap();
        accepted(&resp, buf, requested.as_bytes())
    }

    #[test]
    fn a_101_must_name_a_requested_protocol() {
        let ws =
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n\r\n";
        assert!(switched(ws, "websocket"));
        assert!(switched(ws, "foo, websocket/13"));
        assert!(!switched(ws, "foo"));
        let h2c = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n";
        assert!(!switched(h2c, "websocket"));
        let none = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\r\n";
        assert!(!switched(none, "websocket"));
    }
}
