//! Watching an answer's body for its first event ([`FirstEvent`]): the
//! body's bytes go through a decoder of their own (SSE → chunks → events),
//! and are kept, so that the attempt that wins a race hands them to its
//! stream, which reads them as if they came from the network. SSE
//! comments, keep-alive bytes and role-only or empty deltas bring no event,
//! so they do not count.

use crate::answer::Answer;
use crate::chunk::{ChunkEvent, ChunkReader, Received};
use crate::event::Events;
use crate::sse::SseDecoder;
use crate::Error;

/// How many bytes before the first event are kept whole; past it, only
/// those of the event being read are (a server that sends megabytes of
/// comments costs no memory; the metadata of a role-only chunk that far
/// back is then read again from the next chunk, which carries it too).
const KEPT_BYTES: usize = 1024 * 1024;

/// The first-event watcher of one attempt.
pub(crate) struct FirstEvent {
    decoder: SseDecoder,
    reader: ChunkReader,
    events: Events,
    answer: Answer,
    /// Every byte read, for the stream (see [`KEPT_BYTES`]).
    seen: Vec<u8>,
    /// Where in `seen` the decoder is.
    decoded: usize,
}

impl FirstEvent {
    pub(crate) fn new(max_event_bytes: usize) -> FirstEvent {
        FirstEvent {
            decoder: SseDecoder::new(max_event_bytes),
            reader: ChunkReader::default(),
            events: Events::default(),
            answer: Answer::default(),
            seen: Vec::new(),
            decoded: 0,
        }
    }

    /// Takes the next bytes of the body: `Ok(true)` once an event, or the
    /// answer's `[DONE]`, has come.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Result<bool, Error> {
        if self.seen.len() > KEPT_BYTES && self.decoded == self.seen.len() {
            self.seen.clear();
            self.decoded = 0;
        }
        self.seen.extend_from_slice(bytes);
        while self.decoded < self.seen.len() {
            let (used, event) = self
                .decoder
                .decode(&self.seen[self.decoded..])
                .map_err(|e| Error::InvalidResponse(e.to_string()))?;
            let Some(event) = event else {
                self.decoded += used;
                break;
            };
            let mut received = Received {
                events: &mut self.events,
                answer: &mut self.answer,
            };
            let read = self.reader.read_event(&event, &mut received)?;
            self.decoded += used;
            if read == ChunkEvent::Done || self.events.has_next() {
                return Ok(true);
            }
            self.events.clear();
        }
        Ok(false)
    }

    /// The body ended before any event: `Ok(())` when the answer finished
    /// (an empty one), the error when it was cut short.
    pub(crate) fn end(&mut self) -> Result<(), Error> {
        let event = self
            .decoder
            .finish()
            .map_err(|e| Error::InvalidResponse(e.to_string()))?;
        if let Some(event) = event {
            let mut received = Received {
                events: &mut self.events,
                answer: &mut self.answer,
            };
            if self.reader.read_event(&event, &mut received).is_ok() {
                return Ok(());
            }
        }
        if self.answer.meta.finish_reason.is_some() {
            return Ok(());
        }
        Err(Error::Transport(
            "the stream was truncated before its first event".into(),
        ))
    }

    /// The bytes read, for the stream that reads them again.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.seen
    }
}
