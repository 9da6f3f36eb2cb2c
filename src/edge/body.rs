//! Moving a message body from one stream to another as it arrives, never holding it whole:
//! Content-Length bodies are counted down, chunked bodies are validated and re-framed as nginx
//! does (the data passes without a copy, chunk extensions and trailers are dropped), and
//! read-until-close bodies are optionally re-chunked.

use std::io;
use std::time::Duration;

use bytes::BytesMut;

use crate::conn::Stream;
use crate::http::{
    encode_chunk_header, BodyFraming, ChunkError, ChunkedScanner, LengthCounter, LAST_CHUNK,
};

/// Read size per step: big enough for throughput, small enough to keep memory flat.
const STEP: usize = 64 * 1024;

/// Which side broke a relay, so the caller can answer the right status and log the right
/// cause.
#[derive(Debug)]
pub enum RelayError {
    /// Reading from the source failed or timed out.
    SourceRead(io::Error),
    /// The source ended before the body did.
    SourceTruncated,
    /// The source's timeout expired.
    SourceTimeout,
    /// The body was malformed.
    BadChunk(ChunkError),
    /// The body exceeded the allowed size.
    TooLarge,
    /// Writing to the destination failed.
    SinkWrite(io::Error),
    /// The destination's timeout expired.
    SinkTimeout,
}

/// Timeouts and limits of one relay.
pub struct RelayParams {
    /// Longest wait for one read from the source.
    pub read_timeout: Duration,
    /// Longest wait for one write to the destination.
    pub write_timeout: Duration,
    /// Largest decoded body allowed, 0 for no limit.
    pub max_body: u64,
    /// Wrap an `UntilClose` body in chunked framing (for an HTTP/1.1 client).
    pub rechunk: bool,
    /// Strip chunked framing and send only the data (for an HTTP/1.0 client, which cannot
    /// read chunked; the connection's close ends the body).
    pub dechunk: bool,
}

/// Relays one body. `buf` holds bytes already read after the head; on success it holds what
/// follows the body (a pipelined request), and the number of body bytes moved is returned.
pub async fn relay(
    src: &mut Stream,
    dst: &mut Stream,
    buf: &mut BytesMut,
    framing: BodyFraming,
    p: &RelayParams,
) -> Result<u64, RelayError> {
    let mut moved: u64 = 0;
    match framing {
        BodyFraming::None => Ok(0),
        BodyFraming::Length(n) => {
            if p.max_body != 0 && n > p.max_body {
                return Err(RelayError::TooLarge);
            }
            let mut counter = LengthCounter::new(n);
            loop {
                let scan = counter.feed(buf.len());
                if scan.consumed > 0 {
                    let chunk = buf.split_to(scan.consumed).freeze();
                    moved += chunk.len() as u64;
                    write(dst, chunk, p.write_timeout).await?;
                }
                if scan.done {
                    return Ok(moved);
                }
                let want = usize::try_from(counter.remaining())
                    .unwrap_or(STEP)
                    .min(STEP);
                if read(src, buf, want, p.read_timeout).await? == 0 {
                    return Err(RelayError::SourceTruncated);
                }
            }
        }
        BodyFraming::Chunked => {
            let mut scanner = ChunkedScanner::new();
            let mut data = Vec::new();
            loop {
                if !buf.is_empty() {
                    data.clear();
                    let scan = scanner
                        .feed_data(buf, |r| data.push(r))
                        .map_err(RelayError::BadChunk)?;
                    if p.max_body != 0 && scanner.decoded_len() > p.max_body {
                        return Err(RelayError::TooLarge);
                    }
                    let wire = buf.split_to(scan.consumed).freeze();
                    let parts = if p.dechunk {
                        data.iter().map(|r| wire.slice(r.clone())).collect()
                    } else {
                        reframe(&wire, &data, scan.done)
                    };
                    moved += parts.iter().map(|b| b.len() as u64).sum::<u64>();
                    if !parts.is_empty() {
                        write_parts(dst, &parts, p.write_timeout).await?;
                    }
                    if scan.done {
                        return Ok(moved);
                    }
                }
                if read(src, buf, STEP, p.read_timeout).await? == 0 {
                    return Err(RelayError::SourceTruncated);
                }
            }
        }
        BodyFraming::UntilClose => {
            let mut head = BytesMut::with_capacity(24);
            loop {
                if !buf.is_empty() {
                    let chunk = buf.split().freeze();
                    moved += chunk.len() as u64;
                    if p.rechunk {
                        head.clear();
                        encode_chunk_header(chunk.len(), &mut head);
                        write(dst, head.split().freeze(), p.write_timeout).await?;
                        write(dst, chunk, p.write_timeout).await?;
                        write(dst, bytes::Bytes::from_static(b"\r\n"), p.write_timeout).await?;
                    } else {
                        write(dst, chunk, p.write_timeout).await?;
                    }
                }
                if read(src, buf, STEP, p.read_timeout).await? == 0 {
                    if p.rechunk {
                        write(dst, bytes::Bytes::from_static(LAST_CHUNK), p.write_timeout).await?;
                    }
                    return Ok(moved);
                }
            }
        }
    }
}

/// The chunk data of one batch of input as one new chunk, and the last chunk when the body
/// ended: chunk extensions and trailers stay behind, as with nginx, so nothing but data and
/// sizes reaches the other side (a trailer cannot smuggle a framing, routing or identity field).
fn reframe(wire: &bytes::Bytes, data: &[std::ops::Range<usize>], done: bool) -> Vec<bytes::Bytes> {
    let len: usize = data.iter().map(|r| r.len()).sum();
    let mut parts = Vec::with_capacity(data.len() + 3);
    if len > 0 {
        let mut head = BytesMut::with_capacity(18);
        encode_chunk_header(len, &mut head);
        parts.push(head.freeze());
        parts.extend(data.iter().map(|r| wire.slice(r.clone())));
        parts.push(bytes::Bytes::from_static(b"\r\n"));
    }
    if done {
        parts.push(bytes::Bytes::from_static(LAST_CHUNK));
    }
    parts
}

async fn read(
    src: &mut Stream,
    buf: &mut BytesMut,
    max: usize,
    timeout: Duration,
) -> Result<usize, RelayError> {
    match crate::deadline::timeout(timeout, src.read_buf(buf, max)).await {
        Err(_) => Err(RelayError::SourceTimeout),
        Ok(Err(e)) => Err(RelayError::SourceRead(e)),
        Ok(Ok(n)) => Ok(n),
    }
}

async fn write_parts(
    dst: &mut Stream,
    parts: &[bytes::Bytes],
    timeout: Duration,
) -> Result<(), RelayError> {
    match crate::deadline::timeout(timeout, dst.write_parts(parts)).await {
        Err(_) => Err(RelayError::SinkTimeout),
        Ok(Err(e)) => Err(RelayError::SinkWrite(e)),
        Ok(Ok(())) => Ok(()),
    }
}

async fn write(dst: &mut Stream, data: bytes::Bytes, timeout: Duration) -> Result<(), RelayError> {
    match crate::deadline::timeout(timeout, dst.write_bytes(data)).await {
        Err(_) => Err(RelayError::SinkTimeout),
        Ok(Err(e)) => Err(RelayError::SinkWrite(e)),
        Ok(Ok(())) => Ok(()),
    }
}
