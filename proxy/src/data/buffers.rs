//! Spare buffer sets, per worker thread.
//!
//! A keep-alive client connection that waits for its next request holds no buffers: it
//! hands them here ([`put`]) and takes a set back ([`take`]) when bytes arrive. Ten
//! thousand idle connections then cost their task and socket, not ten thousand sets of
//! buffers; a busy connection gets the set it just gave back, so steady-state requests
//! still allocate nothing.

use std::cell::RefCell;

use bytes::BytesMut;

use crate::http1::fields::HeaderField;

/// Sets kept per thread: enough for the connections one worker serves at once.
const KEEP: usize = 256;
/// A buffer that grew past this (a large head or body chunk) is freed, not kept.
const MAX_KEPT_BYTES: usize = 128 * 1024;
/// A field vector that grew past this many entries is freed, not kept.
const MAX_KEPT_FIELDS: usize = 128;

/// The buffers of one client connection (see [`crate::data::conn::ClientConn`]).
#[derive(Debug, Default)]
pub(crate) struct BufferSet {
    pub(crate) rbuf: BytesMut,
    pub(crate) wbuf: BytesMut,
    pub(crate) upbuf: BytesMut,
    pub(crate) out: BytesMut,
    pub(crate) fields: Vec<HeaderField>,
    pub(crate) response_fields: Vec<HeaderField>,
}

impl BufferSet {
    /// Whether the set holds memory worth keeping (a new connection's set holds none),
    /// and every buffer is empty and small enough to keep.
    fn keepable(&self) -> bool {
        let bytes_ok = |b: &BytesMut| b.is_empty() && b.capacity() <= MAX_KEPT_BYTES;
        self.rbuf.capacity() > 0
            && bytes_ok(&self.rbuf)
            && bytes_ok(&self.wbuf)
            && bytes_ok(&self.upbuf)
            && bytes_ok(&self.out)
            && self.fields.capacity() <= MAX_KEPT_FIELDS
            && self.response_fields.capacity() <= MAX_KEPT_FIELDS
    }
}

thread_local! {
    static SPARE: RefCell<Vec<BufferSet>> = const { RefCell::new(Vec::new()) };
}

/// Keeps `set` for the next [`take`] on this thread; frees it when the thread keeps
/// enough already or a buffer is not empty or grew large.
pub(crate) fn put(mut set: BufferSet) {
    // Scratch space: what it last held does not matter.
    set.out.clear();
    if !set.keepable() {
        return;
    }
    set.fields.clear();
    set.response_fields.clear();
    SPARE.with(|spare| {
        let mut spare = spare.borrow_mut();
        if spare.len() < KEEP {
            spare.push(set);
        }
    });
}

/// A set kept on this thread, else a new one (whose buffers allocate on first use).
pub(crate) fn take() -> BufferSet {
    SPARE.with(|spare| spare.borrow_mut().pop()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_put_back_is_taken_again_with_its_capacity() {
        let mut set = take();
        set.rbuf.reserve(4096);
        let cap = set.rbuf.capacity();
        put(set);
        let again = take();
        assert_eq!(again.rbuf.capacity(), cap);
        assert!(again.rbuf.is_empty());
    }

    #[test]
    fn a_set_with_unread_bytes_or_a_grown_buffer_is_not_kept() {
        while SPARE.with(|s| s.borrow_mut().pop()).is_some() {}
        let mut pending = BufferSet::default();
        pending.rbuf.extend_from_slice(b"GET");
        put(pending);
        let mut grown = BufferSet::default();
        grown.rbuf.reserve(16);
        grown.wbuf.reserve(MAX_KEPT_BYTES * 2);
        put(grown);
        put(BufferSet::default());
        assert_eq!(SPARE.with(|s| s.borrow().len()), 0);
    }

    #[test]
    fn at_most_keep_sets_are_kept_per_thread() {
        for _ in 0..KEEP + 10 {
            let mut set = BufferSet::default();
            set.rbuf.reserve(16);
            put(set);
        }
        assert_eq!(SPARE.with(|s| s.borrow().len()), KEEP);
    }
}
