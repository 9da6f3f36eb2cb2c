//! A receive buffer for incremental parsers: bytes read and not yet parsed are
//! `buf[start..end]`; `space` compacts or grows before the next read.

/// Bytes received and not yet consumed, with room for the next read.
pub struct RecvBuf {
    pub buf: Vec<u8>,
    pub start: usize,
    pub end: usize,
}

impl RecvBuf {
    /// An empty buffer of `size` bytes (it grows when a message needs more).
    pub fn new(size: usize) -> Self {
        RecvBuf {
            buf: vec![0; size],
            start: 0,
            end: 0,
        }
    }

    /// Drops what is buffered.
    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Room to read into; call `filled` with the number of bytes written there.
    pub fn space(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                let n = self.buf.len() * 2;
                self.buf.resize(n, 0);
            }
        }
        &mut self.buf[self.end..]
    }

    /// Marks `n` bytes of `space()` as received.
    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// The bytes received and not yet consumed.
    pub fn available(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }
}
