//! Bytes read from a stream, cut into frames in place: a frame's body is
//! borrowed from the buffer, never copied out.

use std::io;
use std::task::{Context, Poll, ready};

use super::Stream;
use crate::rpc::wire::{self, Kind};

/// Bytes read from a stream, cut into frames.
pub(crate) struct ReadBuffer {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

/// One frame, borrowed from a [`ReadBuffer`].
pub(crate) struct FrameRef<'a> {
    pub(crate) kind: Kind,
    pub(crate) id: u64,
    pub(crate) body: &'a [u8],
}

const READ_CHUNK: usize = 16 << 10;

// === impl ReadBuffer ===

impl ReadBuffer {
    pub(crate) fn new() -> ReadBuffer {
        ReadBuffer {
            buf: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
        }
    }

    /// The next complete frame, if there is one.
    pub(crate) fn next_frame(&mut self) -> Result<Option<FrameRef<'_>>, wire::WireError> {
        let Some((kind, id, len)) = wire::parse_header(&self.buf[self.start..self.end])? else {
            return Ok(None);
        };
        let body_start = self.start + wire::HEADER;
        let body_end = self.start + len;
        self.start = body_end;
        Ok(Some(FrameRef {
            kind,
            id,
            body: &self.buf[body_start..body_end],
        }))
    }

    /// Reads more bytes; `Ok(0)` at end of stream.
    pub(crate) fn poll_fill(
        &mut self,
        cx: &mut Context<'_>,
        io: &Stream,
    ) -> Poll<io::Result<usize>> {
        self.make_room();
        let n = ready!(io.poll_read(cx, &mut self.buf[self.end..]))?;
        self.filled(n);
        Poll::Ready(Ok(n))
    }

    /// Reads more bytes, blocking the thread until some come; `Ok(0)` at end
    /// of stream. For [`Stream::blocking`] sockets.
    pub(crate) fn fill_blocking(&mut self, io: &Stream) -> io::Result<usize> {
        self.make_room();
        let n = io.read_blocking(&mut self.buf[self.end..])?;
        self.filled(n);
        Ok(n)
    }

    /// Reads what has arrived, without waiting; `WouldBlock` if nothing has.
    pub(crate) fn try_fill(&mut self, io: &Stream) -> io::Result<usize> {
        self.make_room();
        let n = io.try_read(&mut self.buf[self.end..])?;
        self.filled(n);
        Ok(n)
    }

    fn make_room(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            // Give back memory lent to a huge frame once it is consumed.
            if self.buf.len() > 4 * READ_CHUNK {
                self.buf = vec![0; READ_CHUNK];
            }
        }
        // Room for at least the rest of the frame under way, and a chunk.
        let need = wire::frame_len(&self.buf[self.start..self.end])
            .unwrap_or(0)
            .max(READ_CHUNK);
        if self.buf.len() - self.start < need {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.buf.len() < need {
                self.buf.resize(need, 0);
            }
        } else if self.buf.len() - self.end < READ_CHUNK / 4 && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }

    fn filled(&mut self, n: usize) {
        self.end += n;
    }
}
