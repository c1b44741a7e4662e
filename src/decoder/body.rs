//! [`BodyDecoder`]: the body of a streamed answer, decoded. Bytes go in as
//! they come, from wherever they come (the library's own connection, the
//! host that carries a detached stream, canned replies in memory); events
//! and the assembled answer come out. No I/O: the one place the rules of
//! a stream's body live (SSE, chunks, `[DONE]`, the end of the body and
//! truncation), for every kind of stream and for each attempt of a race
//! to the first event (whose winner's decoder becomes its stream's).

use crate::decoder::answer::Answer;
use crate::decoder::chunk::{ChunkEvent, ChunkReader, Received};
use crate::decoder::event::Events;
use crate::decoder::sse::SseDecoder;
use crate::error::Error;

/// How many bytes one read of the body may bring.
const READ_BUFFER_BYTES: usize = 16 * 1024;

/// A stream body's decoder: SSE → chunks → events, and the answer.
pub(crate) struct BodyDecoder {
    sse: SseDecoder,
    /// Interprets the events (and remembers the shape of their chunks).
    reader: ChunkReader,
    /// The events of the chunk being handed out.
    pub(crate) events: Events,
    /// Every chunk read so far, assembled.
    pub(crate) answer: Answer,
    buffer: Box<[u8]>,
    /// Bytes read and not decoded yet are `buffer[start..end]`.
    start: usize,
    end: usize,
    /// The body has ended: no more bytes.
    eof: bool,
    /// What the SSE decoder held at the end has been decoded.
    finished: bool,
    /// `data: [DONE]` came.
    done: bool,
    /// Chunks and body bytes read, for the trace.
    pub(crate) chunks: u64,
    pub(crate) bytes: u64,
}

/// What [`BodyDecoder::next`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// A chunk: its events, if any, are queued.
    Chunk,
    /// `data: [DONE]` (again at every later call).
    Done,
    /// The body has ended without `[DONE]`: see
    /// [`end_of_body`](BodyDecoder::end_of_body).
    BodyEnd,
    /// Every byte was decoded: read more into
    /// [`room`](BodyDecoder::room).
    NeedBytes,
}

impl BodyDecoder {
    /// A decoder whose events may be up to `max_event_bytes` long.
    pub(crate) fn new(max_event_bytes: usize) -> BodyDecoder {
        BodyDecoder {
            sse: SseDecoder::new(max_event_bytes),
            reader: ChunkReader::default(),
            events: Events::default(),
            answer: Answer::default(),
            buffer: vec![0; READ_BUFFER_BYTES].into_boxed_slice(),
            start: 0,
            end: 0,
            eof: false,
            finished: false,
            done: false,
            chunks: 0,
            bytes: 0,
        }
    }

    /// The next chunk in the bytes read so far, `[DONE]`, the end of the
    /// body, or that more bytes are needed.
    pub(crate) fn next(&mut self) -> Result<Decoded, Error> {
        if self.done {
            return Ok(Decoded::Done);
        }
        while self.start < self.end {
            let (used, event) = self
                .sse
                .decode(&self.buffer[self.start..self.end])
                .map_err(|e| Error::InvalidResponse(e.to_string()))?;
            self.start += used;
            if let Some(event) = event {
                let mut received = Received {
                    events: &mut self.events,
                    answer: &mut self.answer,
                };
                let read = self.reader.read_event(&event, &mut received)?;
                return Ok(self.count(read));
            }
        }
        if !self.eof {
            return Ok(Decoded::NeedBytes);
        }
        if !self.finished {
            self.finished = true;
            let event = self
                .sse
                .finish()
                .map_err(|e| Error::InvalidResponse(e.to_string()))?;
            if let Some(event) = event {
                let mut received = Received {
                    events: &mut self.events,
                    answer: &mut self.answer,
                };
                // This event never got its blank line: data that does not
                // parse was cut off, not garbled.
                return match self.reader.read_event(&event, &mut received) {
                    Ok(read) => Ok(self.count(read)),
                    Err(Error::InvalidResponse(_)) => Err(truncated()),
                    Err(err) => Err(err),
                };
            }
        }
        Ok(Decoded::BodyEnd)
    }

    fn count(&mut self, read: ChunkEvent) -> Decoded {
        match read {
            ChunkEvent::Chunk => {
                self.chunks += 1;
                Decoded::Chunk
            }
            ChunkEvent::Done => {
                self.done = true;
                Decoded::Done
            }
        }
    }

    /// How a body that ended without `[DONE]` ended: cleanly after a
    /// `finish_reason`, truncated otherwise (as on every path).
    pub(crate) fn end_of_body(&self) -> Result<(), Error> {
        if self.answer.meta.finish_reason.is_some() {
            Ok(())
        } else {
            Err(truncated())
        }
    }

    /// Room for the next bytes of the body, once
    /// [`next`](Self::next) said it needs them: read into it, then call
    /// [`filled`](Self::filled).
    pub(crate) fn room(&mut self) -> &mut [u8] {
        debug_assert!(self.start == self.end, "bytes left to decode");
        &mut self.buffer
    }

    /// `n` bytes were read into [`room`](Self::room); 0: the body ended.
    pub(crate) fn filled(&mut self, n: usize) {
        self.bytes += n as u64;
        self.start = 0;
        self.end = n;
        if n == 0 {
            self.eof = true;
        }
    }

    /// The read buffer, to read what follows `[DONE]` into (and drop).
    pub(crate) fn scratch(&mut self) -> &mut [u8] {
        self.start = self.end;
        &mut self.buffer
    }

    /// Whether [`next`](Self::next) has something to do without more
    /// bytes (bytes read and not decoded, or the end of the body).
    pub(crate) fn has_unread(&self) -> bool {
        self.start < self.end || self.eof
    }

    /// The events a plain JSON answer was cut into (see
    /// [`crate::decoder::answer::chunks_of`]) are one piece of memory: its length
    /// is their cap.
    pub(crate) fn expect_events_of(&mut self, len: usize) {
        self.sse = SseDecoder::new(len.max(1));
    }

    /// Frees the read buffer: the body is over.
    pub(crate) fn release(&mut self) {
        self.buffer = Box::default();
        self.start = 0;
        self.end = 0;
    }
}

fn truncated() -> Error {
    Error::Transport(
        "the stream was truncated: the connection ended before `data: [DONE]` \
         or a finish_reason"
            .into(),
    )
}
