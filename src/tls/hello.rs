//! The ClientHello as it arrives, checked before rustls sees it, for the refusals RFC 8446 names
//! and rustls does not send: a plaintext record over 2^14 bytes (`record_overflow`, §5.1), a
//! `legacy_version` of 0x0300 or less, or below 0x0303 in a TLS 1.3 hello (`protocol_version`,
//! §4.1.2, App. D.5), `supported_groups` without `key_share` or the reverse in a TLS 1.3 hello
//! (`missing_extension`, §9.2), a first handshake message that is not a ClientHello
//! (`unexpected_message`, whatever the split of its bytes), and a ClientHello longer than rustls
//! accepts (`decode_error` instead of a silent close). Anything else, malformed or not, is left to rustls: this reads
//! only what those rules need, and never more than the first handshake message.

use rustls::AlertDescription;

/// Largest plaintext record fragment (RFC 8446 §5.1).
const MAX_FRAGMENT: usize = 1 << 14;

/// Largest handshake message rustls takes (its deframer's limit).
const MAX_HELLO: usize = 0xffff;

/// Record content type of handshake messages.
const HANDSHAKE: u8 = 22;

/// Handshake message type of a ClientHello.
const CLIENT_HELLO: u8 = 1;

/// Extension numbers read here.
const SUPPORTED_GROUPS: u16 = 10;
const SUPPORTED_VERSIONS: u16 = 43;
const KEY_SHARE: u16 = 51;

/// TLS 1.3 in `supported_versions`; 0x0303 is TLS 1.2, the `legacy_version` TLS 1.3 requires.
const TLS13: u16 = 0x0304;
const TLS12: u16 = 0x0303;

/// What the bytes read so far say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// The first handshake message is not complete yet: read more.
    NeedMore,
    /// Nothing to refuse here: hand the bytes to rustls.
    Pass,
    /// Refuse with this alert.
    Refuse(Refusal),
}

/// An alert ringgate sends itself, and why (for the log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The alert the RFC names.
    pub alert: AlertDescription,
    /// What was wrong, for the log.
    pub reason: &'static str,
}

impl Refusal {
    /// The alert as a plaintext record (no keys exist yet): fatal level.
    pub fn record(&self) -> [u8; 7] {
        [21, 3, 3, 0, 2, 2, u8::from(self.alert)]
    }
}

fn refuse(alert: AlertDescription, reason: &'static str) -> Scan {
    Scan::Refuse(Refusal { alert, reason })
}

/// Scans the bytes a client sent from the start of the connection.
pub fn scan(buf: &[u8]) -> Scan {
    // Reassemble the first handshake message from its records, checking each record's size.
    let mut message: Vec<u8> = Vec::new();
    let mut rest = buf;
    loop {
        let Some(header) = rest.get(..5) else {
            return Scan::NeedMore;
        };
        if header[0] != HANDSHAKE {
            return Scan::Pass;
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if len > MAX_FRAGMENT {
            return refuse(
                AlertDescription::RecordOverflow,
                "a plaintext record longer than 2^14 bytes",
            );
        }
        let Some(fragment) = rest.get(5..5 + len) else {
            return Scan::NeedMore;
        };
        rest = &rest[5 + len..];
        message.extend_from_slice(fragment);
        if message.first().is_some_and(|&kind| kind != CLIENT_HELLO) {
            return refuse(
                AlertDescription::UnexpectedMessage,
                "a first handshake message that is not a ClientHello",
            );
        }
        let Some(head) = message.get(..4) else {
            continue;
        };
        let body_len =
            usize::from(head[1]) << 16 | usize::from(head[2]) << 8 | usize::from(head[3]);
        if body_len > MAX_HELLO {
            return refuse(
                AlertDescription::DecodeError,
                "a ClientHello longer than 65535 bytes",
            );
        }
        if let Some(body) = message.get(4..4 + body_len) {
            return check_hello(body);
        }
    }
}

/// The checks on a complete ClientHello body; a body too short for them passes to rustls.
fn check_hello(body: &[u8]) -> Scan {
    let Some(facts) = HelloFacts::parse(body) else {
        return Scan::Pass;
    };
    if facts.legacy_version <= 0x0300 {
        return refuse(
            AlertDescription::ProtocolVersion,
            "a ClientHello legacy_version of SSL 3.0 or older",
        );
    }
    if !facts.offers_tls13 {
        return Scan::Pass;
    }
    if facts.legacy_version < TLS12 {
        return refuse(
            AlertDescription::ProtocolVersion,
            "a TLS 1.3 ClientHello with a legacy_version below TLS 1.2",
        );
    }
    if facts.supported_groups != facts.key_share {
        return refuse(
            AlertDescription::MissingExtension,
            "a TLS 1.3 ClientHello with supported_groups or key_share but not both",
        );
    }
    Scan::Pass
}

/// The fields of a ClientHello the checks read.
#[derive(Debug, Default)]
struct HelloFacts {
    legacy_version: u16,
    offers_tls13: bool,
    supported_groups: bool,
    key_share: bool,
}

impl HelloFacts {
    /// Reads a ClientHello body: version, random, session id, suites, compression, extensions.
    fn parse(body: &[u8]) -> Option<HelloFacts> {
        let mut r = Reader(body);
        let legacy_version = r.u16()?;
        r.take(32)?;
        r.vec8()?;
        r.vec16()?;
        r.vec8()?;
        let mut facts = HelloFacts {
            legacy_version,
            ..HelloFacts::default()
        };
        let mut extensions = Reader(r.vec16().unwrap_or_default());
        while let Some(kind) = extensions.u16() {
            let data = extensions.vec16()?;
            match kind {
                SUPPORTED_GROUPS => facts.supported_groups = true,
                KEY_SHARE => facts.key_share = true,
                SUPPORTED_VERSIONS => {
                    let mut list = Reader(Reader(data).vec8()?);
                    while let Some(v) = list.u16() {
                        facts.offers_tls13 |= v == TLS13;
                    }
                }
                _ => {}
            }
        }
        Some(facts)
    }
}

/// A bounds-checked cursor: every read returns None past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = usize::from(*self.take(1)?.first()?);
        self.take(n)
    }

    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = usize::from(self.u16()?);
        self.take(n)
    }
}

/// Fuzz entry point (`tests/fuzz`, target `client_hello`; its corpus is replayed by a unit
/// test): no input panics, and a decision, once made, does not change with what follows it (the
/// checks read only the first handshake message).
pub fn fuzz(data: &[u8]) {
    let whole = scan(data);
    for cut in [data.len() / 3, data.len() / 2, data.len().saturating_sub(1)] {
        let Some(prefix) = data.get(..cut) else {
            continue;
        };
        let early = scan(prefix);
        assert!(
            early == Scan::NeedMore || early == whole,
            "{early:?} on {cut} bytes, {whole:?} on all {}",
            data.len()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::test_util::Rng;

    /// A ClientHello with these extensions (type, data), in records of at most `fragment` bytes.
    fn hello(version: u16, extensions: &[(u16, Vec<u8>)], fragment: usize) -> Vec<u8> {
        let mut body = version.to_be_bytes().to_vec();
        body.extend_from_slice(&[7; 32]);
        body.push(0);
        body.extend_from_slice(&[0, 2, 0x13, 0x01]);
        body.extend_from_slice(&[1, 0]);
        let mut ext = Vec::new();
        for (kind, data) in extensions {
            ext.extend_from_slice(&kind.to_be_bytes());
            ext.extend_from_slice(&(data.len() as u16).to_be_bytes());
            ext.extend_from_slice(data);
        }
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend_from_slice(&ext);
        let mut message = vec![CLIENT_HELLO];
        message.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        message.extend_from_slice(&body);
        records(&message, fragment)
    }

    fn records(message: &[u8], fragment: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for piece in message.chunks(fragment) {
            out.extend_from_slice(&[HANDSHAKE, 3, 1]);
            out.extend_from_slice(&(piece.len() as u16).to_be_bytes());
            out.extend_from_slice(piece);
        }
        out
    }

    fn versions(list: &[u16]) -> (u16, Vec<u8>) {
        let mut data = vec![(list.len() * 2) as u8];
        for v in list {
            data.extend_from_slice(&v.to_be_bytes());
        }
        (SUPPORTED_VERSIONS, data)
    }

    fn tls13(version: u16, groups: bool, share: bool) -> Vec<u8> {
        let mut ext = vec![versions(&[TLS13, TLS12])];
        if groups {
            ext.push((SUPPORTED_GROUPS, vec![0, 2, 0, 23]));
        }
        if share {
            ext.push((KEY_SHARE, vec![0, 0]));
        }
        hello(version, &ext, MAX_FRAGMENT)
    }

    fn alert(s: Scan) -> Option<AlertDescription> {
        match s {
            Scan::Refuse(r) => Some(r.alert),
            _ => None,
        }
    }

    #[test]
    fn a_good_hello_passes_whole_or_in_pieces() {
        let h = tls13(TLS12, true, true);
        assert_eq!(scan(&h), Scan::Pass);
        for cut in [0, 3, 5, 9, h.len() - 1] {
            assert_eq!(scan(&h[..cut]), Scan::NeedMore, "cut at {cut}");
        }
        // One byte per record: reassembled across records.
        let tiny = hello(TLS12, &[versions(&[TLS13])], 1);
        assert_eq!(scan(&tiny), Scan::Pass);
        assert_eq!(scan(&tiny[..tiny.len() - 1]), Scan::NeedMore);
        // TLS 1.2 without key_share is fine.
        assert_eq!(
            scan(&hello(TLS12, &[(SUPPORTED_GROUPS, vec![0, 2, 0, 23])], 100)),
            Scan::Pass
        );
    }

    #[test]
    fn legacy_versions() {
        for v in [
            0x0000, 0x0001, 0x0002, 0x0100, 0x0102, 0x0103, 0x0200, 0x0300,
        ] {
            assert_eq!(
                alert(scan(&tls13(v, true, true))),
                Some(AlertDescription::ProtocolVersion),
                "{v:#06x}"
            );
            assert_eq!(
                alert(scan(&hello(v, &[], 100))),
                Some(AlertDescription::ProtocolVersion),
                "{v:#06x} without TLS 1.3"
            );
        }
        for v in [0x0301, 0x0302] {
            assert_eq!(
                alert(scan(&tls13(v, true, true))),
                Some(AlertDescription::ProtocolVersion)
            );
            // Without TLS 1.3 offered, rustls decides.
            assert_eq!(scan(&hello(v, &[], 100)), Scan::Pass);
        }
    }

    #[test]
    fn key_share_and_supported_groups_go_together_in_tls13() {
        assert_eq!(
            alert(scan(&tls13(TLS12, true, false))),
            Some(AlertDescription::MissingExtension)
        );
        assert_eq!(
            alert(scan(&tls13(TLS12, false, true))),
            Some(AlertDescription::MissingExtension)
        );
        // Neither (a PSK-only hello): rustls decides.
        assert_eq!(scan(&tls13(TLS12, false, false)), Scan::Pass);
    }

    #[test]
    fn oversized_records_and_hellos() {
        let mut h = tls13(TLS12, true, true);
        // Claim a 16385-byte record.
        h[3] = 0x40;
        h[4] = 0x01;
        assert_eq!(alert(scan(&h[..5])), Some(AlertDescription::RecordOverflow));
        let big = hello(TLS12, &[(80, vec![0; 0xffff - 200])], MAX_FRAGMENT);
        assert_eq!(scan(&big), Scan::Pass);
        let mut huge = vec![CLIENT_HELLO, 1, 0, 0];
        huge.extend_from_slice(&[0; 100]);
        assert_eq!(
            alert(scan(&records(&huge, 100))),
            Some(AlertDescription::DecodeError)
        );
    }

    #[test]
    fn what_is_not_a_handshake_passes_to_rustls() {
        assert_eq!(scan(b"GET / HTTP/1.1\r\n\r\n"), Scan::Pass);
        assert_eq!(scan(&[21, 3, 3, 0, 2, 2, 40]), Scan::Pass);
    }

    /// Another handshake message first is unexpected_message as soon as its type is read,
    /// whether or not the rest has arrived (rustls answered decode_error or unexpected_message
    /// depending on how the bytes were split).
    #[test]
    fn a_first_handshake_message_other_than_client_hello_is_unexpected() {
        for kind in [0u8, 2, 8, 11, 15, 22, 25, 255] {
            let message = [kind, 0, 0, 4, 1, 2, 3, 4];
            assert_eq!(
                alert(scan(&records(&message, 8))),
                Some(AlertDescription::UnexpectedMessage),
                "{kind}"
            );
            assert_eq!(
                alert(scan(&records(&message, 1)[..6])),
                Some(AlertDescription::UnexpectedMessage),
                "{kind}, a first record with its type byte only"
            );
        }
    }

    #[test]
    fn never_panics_on_random_input() {
        let mut rng = Rng(0x5eed_cafe_f00d_0001);
        let seed = tls13(TLS12, true, true);
        for i in 0..20_000 {
            let input = if i % 2 == 0 {
                let len = rng.below(300);
                rng.bytes(len)
            } else {
                rng.mutate(&seed)
            };
            fuzz(&input);
        }
    }

    #[test]
    fn client_hello_corpus_replays() {
        for f in crate::http::fuzz::corpus("client_hello", 10) {
            fuzz(&std::fs::read(&f).unwrap());
        }
    }

    #[test]
    fn the_alert_record_is_plaintext_and_fatal() {
        let r = Refusal {
            alert: AlertDescription::RecordOverflow,
            reason: "x",
        };
        assert_eq!(r.record(), [21, 3, 3, 0, 2, 2, 22]);
    }
}
