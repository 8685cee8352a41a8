//! Reading ahead: one system call for what a round of reads will need.
//!
//! Walking a thread's stack is a chain of dependent reads (thread state,
//! then its frame pointer, then the frames, then their code objects), and
//! each link costs a `process_vm_readv`. From one sample to the next the
//! chain mostly lands on the same addresses, so [`PrefetchingMemory`]
//! remembers which ranges a round needed after its first read, and adds
//! them to the first read of the next round. Later reads that fall inside
//! a range read ahead are served from it; the others go to the target. The
//! result is exactly what reading at that first instant would have given,
//! only with fewer system calls.

use std::cell::RefCell;

use crate::error::ReadError;
use crate::memory::{MemoryReader, ReadRequest, RoundCopy};

/// Page size used to round up large ranges (reading to the end of a page
/// of a mapped range can never fault).
const PAGE: u64 = 4096;
/// Ranges at least this long (frame areas) are read to the end of their
/// page, so that a stack a few frames deeper is still covered.
const ROUND_UP_FROM: usize = 256;
/// Ranges closer than this are read as one.
const MERGE_GAP: u64 = 64;
/// Most bytes read ahead per round.
const MAX_PLAN_BYTES: usize = 256 * 1024;
/// Most ranges read ahead per round.
const MAX_PLAN_RANGES: usize = 512;

/// A [`MemoryReader`] that reads ahead, in the first read of each round,
/// the ranges the previous round needed after its first read.
///
/// A round is what lies between [`PrefetchingMemory::begin_round`] and
/// [`PrefetchingMemory::end_round`]; outside rounds it reads straight
/// through.
#[derive(Debug)]
pub struct PrefetchingMemory<M> {
    inner: M,
    state: RefCell<RoundState>,
}

#[derive(Debug, Default)]
struct RoundState {
    /// Inside a round.
    active: bool,
    /// The round's first read has not happened yet.
    first_read_pending: bool,
    /// Ranges read ahead in this round, sorted by address, each with its
    /// second copy if it was planned to be read twice.
    ahead: Vec<(u64, Vec<u8>, Option<Vec<u8>>)>,
    /// Ranges this round needed after its first read, and whether each is
    /// to be copied twice.
    needed: Vec<Planned>,
    /// Reads that went to the target in this round.
    target_reads: usize,
    /// What the next round reads ahead.
    plan: Vec<Planned>,
    /// When the round's first read from the target began and its last one
    /// ended (`CLOCK_MONOTONIC` nanoseconds): what it read, it read then.
    reads_span: Option<(u64, u64)>,
}

impl RoundState {
    /// Counts a read from the target that began at `started`.
    fn read_from_target(&mut self, started: u64) {
        self.target_reads += 1;
        let ended = crate::monotonic_ns();
        let began = self.reads_span.map_or(started, |(began, _)| began);
        self.reads_span = Some((began, ended));
    }
}

/// A range to read ahead: address, length, and whether to copy it twice.
type Planned = (u64, usize, bool);

impl<M: MemoryReader> PrefetchingMemory<M> {
    /// Reads through `inner`.
    pub fn new(inner: M) -> Self {
        Self {
            inner,
            state: RefCell::new(RoundState::default()),
        }
    }

    /// The reader underneath.
    pub fn inner(&self) -> &M {
        &self.inner
    }

    /// Starts a round: its first read also reads the planned ranges.
    pub fn begin_round(&self) {
        let mut state = self.state.borrow_mut();
        state.active = true;
        state.first_read_pending = true;
        state.ahead.clear();
        state.needed.clear();
        state.target_reads = 0;
        state.reads_span = None;
    }

    /// When the last round's reads from the target began and ended
    /// (`CLOCK_MONOTONIC` nanoseconds; `None` before any round read): every
    /// byte the round read was copied in that span.
    pub fn round_reads_span(&self) -> Option<(u64, u64)> {
        self.state.borrow().reads_span
    }

    /// Ends a round and plans the next one from what this one needed.
    pub fn end_round(&self) {
        let mut state = self.state.borrow_mut();
        state.active = false;
        state.first_read_pending = false;
        state.ahead.clear();
        let needed = std::mem::take(&mut state.needed);
        state.plan = plan(needed);
    }

    /// The first read of a round: `requests` plus the plan, then the
    /// second copies of the ranges planned twice, in one batch.
    fn first_batch(&self, requests: &mut [ReadRequest<'_>]) -> Result<(), ReadError> {
        let plan = {
            let mut state = self.state.borrow_mut();
            state.first_read_pending = false;
            std::mem::take(&mut state.plan)
        };
        let started = crate::monotonic_ns();
        let mut buffers: Vec<Vec<u8>> = plan.iter().map(|&(_, len, _)| vec![0u8; len]).collect();
        let twice: Vec<&Planned> = plan.iter().filter(|p| p.2).collect();
        let mut seconds: Vec<Vec<u8>> = twice.iter().map(|p| vec![0u8; p.1]).collect();
        let done = {
            let mut all: Vec<ReadRequest<'_>> = requests
                .iter_mut()
                .map(|r| ReadRequest::new(r.addr, &mut *r.buf))
                .collect();
            all.extend(
                buffers
                    .iter_mut()
                    .zip(&plan)
                    .map(|(buf, &(addr, _, _))| ReadRequest::new(addr, buf)),
            );
            all.extend(
                seconds
                    .iter_mut()
                    .zip(&twice)
                    .map(|(buf, &&(addr, _, _))| ReadRequest::new(addr, buf)),
            );
            let read = self.inner.read_batch(&mut all);
            self.state.borrow_mut().read_from_target(started);
            read?;
            all.iter().map(|r| r.done).collect::<Vec<bool>>()
        };
        for (request, &done) in requests.iter_mut().zip(&done) {
            request.done = done;
        }
        let (firsts_done, seconds_done) = done[requests.len()..].split_at(plan.len());
        let mut seconds = seconds
            .into_iter()
            .zip(seconds_done)
            .map(|(bytes, &done)| done.then_some(bytes));
        let mut state = self.state.borrow_mut();
        state.ahead = plan
            .iter()
            .zip(buffers)
            .zip(firsts_done)
            .filter_map(|((&(addr, _, twice), bytes), &done)| {
                let second = if twice {
                    seconds.next().flatten()
                } else {
                    None
                };
                done.then_some((addr, bytes, second))
            })
            .collect();
        state.ahead.sort_by_key(|(addr, _, _)| *addr);
        Ok(())
    }

    /// Fills `request` from a range read ahead, if one holds all of it.
    fn from_ahead(state: &RoundState, request: &mut ReadRequest<'_>) -> bool {
        let len = request.buf.len() as u64;
        let index = state
            .ahead
            .partition_point(|(addr, _, _)| *addr <= request.addr);
        let Some((start, bytes, _)) = index.checked_sub(1).map(|i| &state.ahead[i]) else {
            return false;
        };
        let offset = request.addr - start;
        match offset.checked_add(len) {
            Some(end) if end <= bytes.len() as u64 => {
                request
                    .buf
                    .copy_from_slice(&bytes[offset as usize..end as usize]);
                request.done = true;
                true
            }
            _ => false,
        }
    }
}

impl<M: MemoryReader> MemoryReader for PrefetchingMemory<M> {
    fn read_into(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        let len = buf.len();
        let mut request = [ReadRequest::new(addr, buf)];
        self.read_batch(&mut request)?;
        if request[0].done {
            Ok(())
        } else {
            Err(ReadError::new(
                addr,
                len,
                crate::error::ReadErrorKind::Unmapped,
            ))
        }
    }

    fn read_batch(&self, requests: &mut [ReadRequest<'_>]) -> Result<(), ReadError> {
        let (active, first) = {
            let state = self.state.borrow();
            (state.active, state.first_read_pending)
        };
        if !active {
            return self.inner.read_batch(requests);
        }
        if first {
            return self.first_batch(requests);
        }
        let mut missing: Vec<usize> = Vec::new();
        {
            let mut state = self.state.borrow_mut();
            for (index, request) in requests.iter_mut().enumerate() {
                state.needed.push((request.addr, request.buf.len(), false));
                if !Self::from_ahead(&state, request) {
                    missing.push(index);
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let started = crate::monotonic_ns();
        let mut rest: Vec<ReadRequest<'_>> = requests
            .iter_mut()
            .enumerate()
            .filter(|(index, _)| missing.contains(index))
            .map(|(_, r)| ReadRequest::new(r.addr, &mut *r.buf))
            .collect();
        let read = self.inner.read_batch(&mut rest);
        self.state.borrow_mut().read_from_target(started);
        read?;
        let done: Vec<bool> = rest.iter().map(|r| r.done).collect();
        drop(rest);
        for (&index, done) in missing.iter().zip(done) {
            requests[index].done = done;
        }
        Ok(())
    }

    fn read_batch_now(&self, requests: &mut [ReadRequest<'_>]) -> Result<(), ReadError> {
        let active = {
            let mut state = self.state.borrow_mut();
            if state.active {
                // Planned for the next round like any other read, but read
                // afresh: the point of this read is to see the target now.
                let ranges = requests.iter().map(|r| (r.addr, r.buf.len(), false));
                state.needed.extend(ranges);
            }
            state.active
        };
        let started = crate::monotonic_ns();
        let read = self.inner.read_batch(requests);
        if active {
            self.state.borrow_mut().read_from_target(started);
        }
        read
    }

    fn round_is_one_read(&self) -> bool {
        let state = self.state.borrow();
        state.active && state.target_reads == 1
    }

    fn expect_next_round(&self, ranges: &[(u64, usize)]) {
        let mut state = self.state.borrow_mut();
        if state.active {
            state
                .needed
                .extend(ranges.iter().map(|&(addr, len)| (addr, len, false)));
        }
    }

    fn expect_next_round_twice(&self, ranges: &[(u64, usize)]) {
        let mut state = self.state.borrow_mut();
        if state.active {
            state
                .needed
                .extend(ranges.iter().map(|&(addr, len)| (addr, len, true)));
        }
    }

    fn with_round_copies(&self, check: &mut dyn FnMut(&[RoundCopy<'_>])) {
        let state = self.state.borrow();
        let copies: Vec<RoundCopy<'_>> = state
            .ahead
            .iter()
            .filter_map(|(addr, first, second)| {
                second.as_ref().map(|second| RoundCopy {
                    addr: *addr,
                    first,
                    second,
                })
            })
            .collect();
        check(&copies)
    }
}

/// The ranges to read ahead for `needed`: large ones rounded up to the end
/// of their page, neighbours merged (copied twice if any part is), within
/// the size limits (second copies counted).
fn plan(mut needed: Vec<Planned>) -> Vec<Planned> {
    needed.retain(|&(addr, len, _)| len > 0 && addr.checked_add(len as u64).is_some());
    needed.sort_unstable();
    let mut ranges: Vec<(u64, u64, bool)> = Vec::new();
    for (addr, len, twice) in needed {
        let mut end = addr + len as u64;
        if len >= ROUND_UP_FROM {
            end = (end - 1) / PAGE * PAGE + PAGE;
        }
        match ranges.last_mut() {
            Some((_, last_end, last_twice))
                if addr <= *last_end
                    || (addr <= *last_end + MERGE_GAP && same_page(*last_end, addr)) =>
            {
                *last_end = (*last_end).max(end);
                *last_twice |= twice;
            }
            _ => ranges.push((addr, end, twice)),
        }
    }
    let mut total = 0usize;
    ranges
        .into_iter()
        .map(|(start, end, twice)| (start, (end - start) as usize, twice))
        .take(MAX_PLAN_RANGES)
        .take_while(|&(_, len, twice)| {
            total += if twice { 2 * len } else { len };
            total <= MAX_PLAN_BYTES
        })
        .collect()
}

/// Whether the gap between a range ending at `end` and one starting at
/// `next` stays within one page, so that reading across it cannot fault
/// where the two ranges themselves do not.
fn same_page(end: u64, next: u64) -> bool {
    end.saturating_sub(1) / PAGE == next / PAGE
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{FakeMemory, ReadExt};
    use std::cell::Cell;

    /// Counts the batches that reach the memory underneath.
    struct Counting {
        memory: FakeMemory,
        batches: Cell<usize>,
    }

    impl MemoryReader for Counting {
        fn read_into(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadError> {
            self.batches.set(self.batches.get() + 1);
            self.memory.read_into(addr, buf)
        }

        fn read_batch(&self, requests: &mut [ReadRequest<'_>]) -> Result<(), ReadError> {
            self.batches.set(self.batches.get() + 1);
            for request in requests.iter_mut() {
                request.done = self.memory.read_into(request.addr, request.buf).is_ok();
            }
            Ok(())
        }
    }

    /// A chain: a pointer at 0x1000 to a pointer at 0x2000 to a value.
    fn chain(value: u64) -> FakeMemory {
        let mut memory = FakeMemory::default();
        memory.insert(0x1000, 0x2000u64.to_le_bytes().to_vec());
        memory.insert(0x2000, 0x3000u64.to_le_bytes().to_vec());
        memory.insert(0x3000, value.to_le_bytes().to_vec());
        memory
    }

    fn follow(memory: &PrefetchingMemory<Counting>) -> u64 {
        memory.begin_round();
        let second = memory.read_u64(0x1000).unwrap();
        let third = memory.read_u64(second).unwrap();
        let value = memory.read_u64(third).unwrap();
        memory.end_round();
        value
    }

    #[test]
    fn a_repeated_chain_takes_one_read_per_round() {
        let memory = PrefetchingMemory::new(Counting {
            memory: chain(42),
            batches: Cell::new(0),
        });
        assert_eq!(follow(&memory), 42);
        assert_eq!(memory.inner().batches.get(), 3);
        for _ in 0..3 {
            memory.inner().batches.set(0);
            assert_eq!(follow(&memory), 42);
            assert_eq!(memory.inner().batches.get(), 1);
        }
    }

    #[test]
    fn a_changed_chain_reads_what_is_not_ahead() {
        let memory = PrefetchingMemory::new(Counting {
            memory: chain(42),
            batches: Cell::new(0),
        });
        follow(&memory);
        let mut moved = chain(7);
        moved.insert(0x2000, 0x4000u64.to_le_bytes().to_vec());
        moved.insert(0x4000, 9u64.to_le_bytes().to_vec());
        let memory = PrefetchingMemory {
            inner: Counting {
                memory: moved,
                batches: Cell::new(0),
            },
            state: memory.state,
        };
        assert_eq!(follow(&memory), 9);
        assert_eq!(memory.inner().batches.get(), 2);
    }

    #[test]
    fn a_round_tells_when_it_read_the_target() {
        let memory = PrefetchingMemory::new(Counting {
            memory: chain(42),
            batches: Cell::new(0),
        });
        assert_eq!(memory.round_reads_span(), None);
        let before = crate::monotonic_ns();
        follow(&memory);
        let first = memory.round_reads_span().unwrap();
        assert!(before <= first.0 && first.0 <= first.1);
        assert!(first.1 <= crate::monotonic_ns());
        // Its three reads from the first to the last; the next round, one.
        follow(&memory);
        let second = memory.round_reads_span().unwrap();
        assert!(second.0 >= first.1);
    }

    #[test]
    fn outside_a_round_reads_go_straight_through() {
        let memory = PrefetchingMemory::new(Counting {
            memory: chain(42),
            batches: Cell::new(0),
        });
        follow(&memory);
        memory.inner().batches.set(0);
        assert_eq!(memory.read_u64(0x3000).unwrap(), 42);
        assert!(memory.read_u64(0x5000).is_err());
        assert_eq!(memory.inner().batches.get(), 2);
    }

    #[test]
    fn plans_round_large_ranges_to_their_page_and_merge_neighbours() {
        let planned = plan(vec![
            (0x1000, 8, false),
            (0x1010, 8, true),
            (0x7000_0100, 1000, false),
            (0x9000, 8, false),
        ]);
        assert_eq!(
            planned,
            [
                (0x1000, 0x18, true),
                (0x9000, 8, false),
                (0x7000_0100, 0x1000 - 0x100, false)
            ]
        );
    }

    /// Memory whose word at 0x1000 counts the reads of it.
    struct Ticking {
        reads: Cell<u64>,
    }

    impl MemoryReader for Ticking {
        fn read_into(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadError> {
            if addr != 0x1000 || buf.len() != 8 {
                return Err(ReadError::new(
                    addr,
                    buf.len(),
                    crate::ReadErrorKind::Unmapped,
                ));
            }
            self.reads.set(self.reads.get() + 1);
            buf.copy_from_slice(&self.reads.get().to_le_bytes());
            Ok(())
        }
    }

    #[test]
    fn ranges_planned_twice_are_copied_again_at_the_end_of_the_first_read() {
        let memory = PrefetchingMemory::new(Ticking {
            reads: Cell::new(0),
        });
        memory.begin_round();
        let _ = memory.read_u64(0x1000);
        memory.expect_next_round_twice(&[(0x1000, 8)]);
        memory.end_round();
        memory.begin_round();
        // The round's own request, then the planned copy, then the second.
        assert_eq!(memory.read_u64(0x1000).unwrap(), 2);
        let mut seen = Vec::new();
        memory.with_round_copies(&mut |copies| {
            seen = copies
                .iter()
                .map(|c| (c.addr, c.first.to_vec(), c.second.to_vec()))
                .collect();
        });
        memory.end_round();
        assert_eq!(
            seen,
            [(
                0x1000,
                3u64.to_le_bytes().to_vec(),
                4u64.to_le_bytes().to_vec()
            )]
        );
        assert_eq!(memory.inner().reads.get(), 4);
    }

    #[test]
    fn plans_stay_within_their_limits() {
        let many: Vec<Planned> = (0..2000u64).map(|i| (i * 0x10000, 8, false)).collect();
        assert_eq!(plan(many).len(), MAX_PLAN_RANGES);
        let big: Vec<Planned> = (0..100u64).map(|i| (i * 0x100000, 8192, true)).collect();
        let total: usize = plan(big).iter().map(|(_, len, _)| 2 * len).sum();
        assert!(total <= MAX_PLAN_BYTES);
    }
}
