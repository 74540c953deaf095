//! Length-prefixed framing: a 4-byte little-endian length, then the bytes.
//!
//! The same framing carries the envelope/weavelet messages over the pipes and
//! the `LogEntry` records in log files. A length above the codec's maximum is
//! rejected before any buffer for it is allocated.

use std::io::{self, Read, Write};
use std::marker::PhantomData;

use bytes::{Buf, BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// The default maximum frame size: 64 MiB.
pub const MAX_FRAME_LEN: usize = 64 << 20;

/// Size of the length prefix.
const PREFIX: usize = 4;

/// An error reading or writing frames.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The underlying stream failed.
    #[error("i/o error on frame stream")]
    Io(#[from] io::Error),
    /// A frame announced (or would need) more bytes than allowed.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// The announced length.
        len: u64,
        /// The maximum allowed.
        max: usize,
    },
    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a frame after {got} of {want} bytes")]
    Truncated {
        /// Bytes present (prefix included).
        got: usize,
        /// Bytes the frame needed (prefix included).
        want: usize,
    },
    /// The frame's bytes are not a valid message.
    #[error("frame is not a valid {what} message")]
    Decode {
        /// The expected message type.
        what: &'static str,
        /// The decoder's error.
        #[source]
        source: prost::DecodeError,
    },
}

/// A codec for raw frames (`BytesMut` payloads).
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    max: usize,
}

/// A codec that decodes frames into `In` and encodes `Out` into frames.
#[derive(Debug)]
pub struct MessageCodec<In, Out> {
    frames: FrameCodec,
    _types: PhantomData<fn(Out) -> In>,
}

// === impl FrameCodec ===

impl FrameCodec {
    /// A codec accepting frames up to `max` bytes (payload, prefix excluded).
    ///
    /// `max` is capped at `u32::MAX`, the most the length prefix can say.
    pub fn new(max: usize) -> Self {
        let prefix_max = usize::try_from(u32::MAX).unwrap_or(usize::MAX);
        Self {
            max: max.min(prefix_max),
        }
    }

    /// The maximum payload size.
    pub fn max(&self) -> usize {
        self.max
    }

    fn check(&self, len: u64) -> Result<usize, FrameError> {
        match usize::try_from(len) {
            Ok(n) if n <= self.max => Ok(n),
            _ => Err(FrameError::TooLarge { len, max: self.max }),
        }
    }
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new(MAX_FRAME_LEN)
    }
}

impl Decoder for FrameCodec {
    type Item = BytesMut;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        if src.len() < PREFIX {
            return Ok(None);
        }
        let mut prefix = [0u8; PREFIX];
        prefix.copy_from_slice(&src[..PREFIX]);
        let len = self.check(u64::from(u32::from_le_bytes(prefix)))?;
        if src.len() < PREFIX + len {
            // Let the buffer grow as bytes arrive; never reserve what a peer
            // merely claims.
            return Ok(None);
        }
        src.advance(PREFIX);
        Ok(Some(src.split_to(len)))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => Err(truncated(src)),
        }
    }
}

fn truncated(src: &[u8]) -> FrameError {
    let want = if src.len() >= PREFIX {
        let mut prefix = [0u8; PREFIX];
        prefix.copy_from_slice(&src[..PREFIX]);
        PREFIX + u32::from_le_bytes(prefix) as usize
    } else {
        PREFIX
    };
    FrameError::Truncated {
        got: src.len(),
        want,
    }
}

impl Encoder<&[u8]> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, item: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
        let len = self.check(item.len() as u64)?;
        dst.reserve(PREFIX + len);
        dst.put_u32_le(len as u32);
        dst.put_slice(item);
        Ok(())
    }
}

// === impl MessageCodec ===

impl<In, Out> MessageCodec<In, Out> {
    /// A codec accepting frames up to `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            frames: FrameCodec::new(max),
            _types: PhantomData,
        }
    }
}

impl<In, Out> Default for MessageCodec<In, Out> {
    fn default() -> Self {
        Self::new(MAX_FRAME_LEN)
    }
}

impl<In: prost::Message + Default, Out> Decoder for MessageCodec<In, Out> {
    type Item = In;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<In>, FrameError> {
        match self.frames.decode(src)? {
            Some(frame) => decode_message(&frame).map(Some),
            None => Ok(None),
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<In>, FrameError> {
        match self.frames.decode_eof(src)? {
            Some(frame) => decode_message(&frame).map(Some),
            None => Ok(None),
        }
    }
}

impl<In, Out: prost::Message> Encoder<Out> for MessageCodec<In, Out> {
    type Error = FrameError;

    fn encode(&mut self, item: Out, dst: &mut BytesMut) -> Result<(), FrameError> {
        let len = self.frames.check(item.encoded_len() as u64)?;
        dst.reserve(PREFIX + len);
        dst.put_u32_le(len as u32);
        item.encode(dst)
            .expect("reserved exactly the encoded length beforehand");
        Ok(())
    }
}

/// Decodes one message from a frame's payload.
///
/// # Errors
///
/// [`FrameError::Decode`] if the bytes are not a valid `M`.
pub fn decode_message<M: prost::Message + Default>(frame: &[u8]) -> Result<M, FrameError> {
    M::decode(frame).map_err(|source| FrameError::Decode {
        what: short_type_name::<M>(),
        source,
    })
}

fn short_type_name<M>() -> &'static str {
    let full = std::any::type_name::<M>();
    full.rsplit("::").next().unwrap_or(full)
}

/// Writes one message as a frame to a blocking writer.
///
/// # Errors
///
/// [`FrameError::TooLarge`] if the message exceeds [`MAX_FRAME_LEN`], or the
/// writer's error.
pub fn write_message<W: Write, M: prost::Message>(w: &mut W, msg: &M) -> Result<(), FrameError> {
    let len = FrameCodec::default().check(msg.encoded_len() as u64)?;
    let mut buf = Vec::with_capacity(PREFIX + len);
    buf.extend_from_slice(&(len as u32).to_le_bytes());
    msg.encode(&mut buf)
        .expect("a Vec grows to fit any message");
    w.write_all(&buf)?;
    Ok(())
}

/// Reads one frame from a blocking reader.
///
/// Returns `Ok(None)` at a clean end of stream (no byte of a new frame read).
///
/// # Errors
///
/// [`FrameError::TooLarge`] for a length above `max` (nothing is allocated
/// for it), [`FrameError::Truncated`] if the stream ends inside a frame, or
/// the reader's error.
pub fn read_frame<R: Read>(r: &mut R, max: usize) -> Result<Option<Vec<u8>>, FrameError> {
    let mut prefix = [0u8; PREFIX];
    let got = read_full(r, &mut prefix)?;
    if got == 0 {
        return Ok(None);
    }
    if got < PREFIX {
        return Err(FrameError::Truncated { got, want: PREFIX });
    }
    let len = FrameCodec::new(max).check(u64::from(u32::from_le_bytes(prefix)))?;
    let mut buf = Vec::new();
    let n = r.take(len as u64).read_to_end(&mut buf)?;
    if n < len {
        return Err(FrameError::Truncated {
            got: PREFIX + n,
            want: PREFIX + len,
        });
    }
    Ok(Some(buf))
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests;
