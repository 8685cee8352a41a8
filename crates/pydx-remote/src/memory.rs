//! The [`MemoryReader`] abstraction and an in-memory image for tests.

use std::collections::BTreeMap;

use crate::error::{ReadError, ReadErrorKind};

/// One piece of a batched read: fill `buf` from `addr`.
#[derive(Debug)]
pub struct ReadRequest<'a> {
    /// Address in the target.
    pub addr: u64,
    /// Destination; its length is the number of bytes read.
    pub buf: &'a mut [u8],
    /// Set by [`MemoryReader::read_batch`]: whether `buf` was filled.
    pub done: bool,
}

impl<'a> ReadRequest<'a> {
    /// A request to fill `buf` from `addr`.
    pub fn new(addr: u64, buf: &'a mut [u8]) -> Self {
        Self {
            addr,
            buf,
            done: false,
        }
    }
}

/// Reads bytes out of a target's address space.
pub trait MemoryReader {
    /// Fills `buf` with the bytes at `addr`, or fails without a partial result.
    fn read_into(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadError>;

    /// Reads many ranges, ideally in one system call, and marks each request
    /// that was filled. Fails only when the process is gone or access is
    /// denied; unmapped ranges just stay not `done`.
    fn read_batch(&self, requests: &mut [ReadRequest<'_>]) -> Result<(), ReadError> {
        for request in requests.iter_mut() {
            match self.read_into(request.addr, request.buf) {
                Ok(()) => request.done = true,
                Err(e) if e.kind == ReadErrorKind::Unmapped => request.done = false,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Like [`MemoryReader::read_batch`], but always from the target as it
    /// is now, never from bytes a reader kept from an earlier read: for
    /// re-reading something to check that it has not changed.
    fn read_batch_now(&self, requests: &mut [ReadRequest<'_>]) -> Result<(), ReadError> {
        self.read_batch(requests)
    }

    /// Whether everything read since the current round of reads began came
    /// from one system call, and so shows the target at one instant. Readers
    /// without rounds say `false`.
    fn round_is_one_read(&self) -> bool {
        false
    }

    /// Tells a reader that reads ahead that the next round of reads will
    /// likely need `ranges` too (address, length). Others ignore it.
    fn expect_next_round(&self, ranges: &[(u64, usize)]) {
        let _ = ranges;
    }

    /// Like [`MemoryReader::expect_next_round`], for ranges that the next
    /// round's first read should also copy a second time, last, so that
    /// whether they held still can be checked (see
    /// [`MemoryReader::with_round_copies`]).
    fn expect_next_round_twice(&self, ranges: &[(u64, usize)]) {
        self.expect_next_round(ranges)
    }

    /// Runs `check` on the ranges this round's first read copied twice
    /// (none, for readers that do not read ahead).
    fn with_round_copies(&self, check: &mut dyn FnMut(&[RoundCopy<'_>])) {
        check(&[])
    }
}

/// A range the first read of a round copied twice: once with the rest of
/// the read, once again at its end.
#[derive(Debug, Clone, Copy)]
pub struct RoundCopy<'a> {
    /// Address in the target.
    pub addr: u64,
    /// The bytes of the first copy.
    pub first: &'a [u8],
    /// The bytes of the second copy, as long as the first.
    pub second: &'a [u8],
}

impl<T: MemoryReader + ?Sized> MemoryReader for &T {
    fn read_into(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        (**self).read_into(addr, buf)
    }

    fn read_batch(&self, requests: &mut [ReadRequest<'_>]) -> Result<(), ReadError> {
        (**self).read_batch(requests)
    }

    fn read_batch_now(&self, requests: &mut [ReadRequest<'_>]) -> Result<(), ReadError> {
        (**self).read_batch_now(requests)
    }

    fn round_is_one_read(&self) -> bool {
        (**self).round_is_one_read()
    }

    fn expect_next_round(&self, ranges: &[(u64, usize)]) {
        (**self).expect_next_round(ranges)
    }

    fn expect_next_round_twice(&self, ranges: &[(u64, usize)]) {
        (**self).expect_next_round_twice(ranges)
    }

    fn with_round_copies(&self, check: &mut dyn FnMut(&[RoundCopy<'_>])) {
        (**self).with_round_copies(check)
    }
}

/// Typed little-endian reads on top of any [`MemoryReader`].
pub trait ReadExt: MemoryReader {
    /// Reads `N` bytes at `addr`.
    fn read_array<const N: usize>(&self, addr: u64) -> Result<[u8; N], ReadError> {
        let mut buf = [0u8; N];
        self.read_into(addr, &mut buf)?;
        Ok(buf)
    }

    /// Reads a little-endian `u64` (also used for pointers).
    fn read_u64(&self, addr: u64) -> Result<u64, ReadError> {
        self.read_array::<8>(addr).map(u64::from_le_bytes)
    }

    /// Reads a little-endian `i64`.
    fn read_i64(&self, addr: u64) -> Result<i64, ReadError> {
        self.read_array::<8>(addr).map(i64::from_le_bytes)
    }

    /// Reads a little-endian `u32`.
    fn read_u32(&self, addr: u64) -> Result<u32, ReadError> {
        self.read_array::<4>(addr).map(u32::from_le_bytes)
    }

    /// Reads a little-endian `i32`.
    fn read_i32(&self, addr: u64) -> Result<i32, ReadError> {
        self.read_array::<4>(addr).map(i32::from_le_bytes)
    }

    /// Reads one byte.
    fn read_u8(&self, addr: u64) -> Result<u8, ReadError> {
        self.read_array::<1>(addr).map(|b| b[0])
    }

    /// Reads `len` bytes into a new vector. `len` must already be bounded by
    /// the caller: this never allocates more than `max_len` bytes.
    fn read_vec(&self, addr: u64, len: usize, max_len: usize) -> Result<Vec<u8>, ReadError> {
        if len > max_len {
            return Err(ReadError::new(addr, len, ReadErrorKind::Implausible));
        }
        let mut buf = vec![0u8; len];
        self.read_into(addr, &mut buf)?;
        Ok(buf)
    }

    /// Reads each `(addr, len)` span into a buffer of its own, all in one
    /// batch; `None` for an empty span or one not read whole. The lengths
    /// must already be bounded by the caller.
    fn read_spans(&self, spans: &[(u64, usize)]) -> Vec<Option<Vec<u8>>> {
        let mut buffers: Vec<Vec<u8>> = spans.iter().map(|&(_, len)| vec![0u8; len]).collect();
        let mut requests: Vec<ReadRequest<'_>> = buffers
            .iter_mut()
            .zip(spans)
            .filter(|(buf, _)| !buf.is_empty())
            .map(|(buf, &(addr, _))| ReadRequest::new(addr, buf))
            .collect();
        let done: Vec<bool> = match self.read_batch(&mut requests) {
            Ok(()) => requests.iter().map(|r| r.done).collect(),
            Err(_) => vec![false; requests.len()],
        };
        drop(requests);
        let mut done = done.into_iter();
        buffers
            .into_iter()
            .map(|buf| match buf.is_empty() {
                true => None,
                false => done.next().unwrap_or(false).then_some(buf),
            })
            .collect()
    }

    /// Reads a NUL-terminated C string of at most `max_len` bytes, reading in
    /// small steps so that a string near the end of a mapping still reads.
    fn read_c_string(&self, addr: u64, max_len: usize) -> Result<Vec<u8>, ReadError> {
        const STEP: usize = 64;
        let mut out = Vec::new();
        let mut chunk = [0u8; STEP];
        while out.len() < max_len {
            let at = addr + out.len() as u64;
            // Never cross a page boundary in one read: the next page may be unmapped.
            let to_page_end = (4096 - (at % 4096)) as usize;
            let mut n = STEP.min(to_page_end).min(max_len - out.len());
            if self.read_into(at, &mut chunk[..n]).is_err() {
                // The string may end just before an unreadable byte: go one
                // byte at a time for this step.
                n = 1;
                self.read_into(at, &mut chunk[..1])?;
            }
            if let Some(end) = chunk[..n].iter().position(|&b| b == 0) {
                out.extend_from_slice(&chunk[..end]);
                return Ok(out);
            }
            out.extend_from_slice(&chunk[..n]);
        }
        Err(ReadError::new(addr, max_len, ReadErrorKind::Implausible))
    }
}

impl<T: MemoryReader + ?Sized> ReadExt for T {}

/// A sparse memory image built in a test: a set of byte regions at addresses.
/// Reads that are not entirely inside one region fail as unmapped.
#[derive(Debug, Default, Clone)]
pub struct FakeMemory {
    regions: BTreeMap<u64, Vec<u8>>,
}

impl FakeMemory {
    /// Places `bytes` at `addr`, replacing any region that starts there.
    pub fn insert(&mut self, addr: u64, bytes: Vec<u8>) {
        self.regions.insert(addr, bytes);
    }

    /// Writes a little-endian `u64` at `addr`, inside an existing region or as
    /// a new 8-byte region.
    pub fn write_u64(&mut self, addr: u64, value: u64) {
        self.write(addr, &value.to_le_bytes());
    }

    /// Writes `bytes` at `addr`, inside an existing region if one covers it.
    pub fn write(&mut self, addr: u64, bytes: &[u8]) {
        if let Some((start, region)) = self.regions.range_mut(..=addr).next_back() {
            let offset = (addr - start) as usize;
            if offset + bytes.len() <= region.len() {
                region[offset..offset + bytes.len()].copy_from_slice(bytes);
                return;
            }
        }
        self.regions.insert(addr, bytes.to_vec());
    }
}

impl MemoryReader for FakeMemory {
    fn read_into(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        let unmapped = ReadError::new(addr, buf.len(), ReadErrorKind::Unmapped);
        let (start, region) = self.regions.range(..=addr).next_back().ok_or(unmapped)?;
        let offset = usize::try_from(addr - start).map_err(|_| unmapped)?;
        let end = offset.checked_add(buf.len()).ok_or(unmapped)?;
        let bytes = region.get(offset..end).ok_or(unmapped)?;
        buf.copy_from_slice(bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_memory_reads_inside_regions_only() {
        let mut memory = FakeMemory::default();
        memory.insert(0x1000, vec![1, 2, 3, 4]);
        let mut buf = [0u8; 2];
        memory.read_into(0x1001, &mut buf).unwrap();
        assert_eq!(buf, [2, 3]);
        assert!(memory.read_into(0x1003, &mut buf).is_err());
        assert!(memory.read_into(0xfff, &mut buf).is_err());
    }

    #[test]
    fn write_u64_patches_an_existing_region() {
        let mut memory = FakeMemory::default();
        memory.insert(0x2000, vec![0; 32]);
        memory.write_u64(0x2008, 0xdead_beef);
        assert_eq!(memory.read_u64(0x2008).unwrap(), 0xdead_beef);
        assert_eq!(memory.read_u64(0x2000).unwrap(), 0);
    }

    #[test]
    fn spans_are_read_each_whole_or_not_at_all() {
        let mut memory = FakeMemory::default();
        memory.insert(0x1000, vec![1, 2, 3, 4]);
        memory.insert(0x2000, vec![5, 6]);
        let read = memory.read_spans(&[(0x1001, 2), (0, 0), (0x2000, 4), (0x2000, 2)]);
        assert_eq!(read, [Some(vec![2, 3]), None, None, Some(vec![5, 6])]);
    }

    #[test]
    fn c_string_stops_at_nul_and_respects_the_limit() {
        let mut memory = FakeMemory::default();
        memory.insert(0x3000, b"hello\0world".to_vec());
        assert_eq!(memory.read_c_string(0x3000, 100).unwrap(), b"hello");
        assert!(memory.read_c_string(0x3006, 3).is_err());
    }

    #[test]
    fn read_vec_refuses_lengths_over_the_cap() {
        let memory = FakeMemory::default();
        let err = memory.read_vec(0, 1 << 40, 4096).unwrap_err();
        assert_eq!(err.kind, ReadErrorKind::Implausible);
    }

    #[test]
    fn batch_marks_unmapped_requests_as_not_done() {
        let mut memory = FakeMemory::default();
        memory.insert(0x1000, vec![7; 8]);
        let (mut a, mut b) = ([0u8; 4], [0u8; 4]);
        let mut requests = [
            ReadRequest::new(0x1000, &mut a),
            ReadRequest::new(0x9000, &mut b),
        ];
        memory.read_batch(&mut requests).unwrap();
        assert!(requests[0].done);
        assert!(!requests[1].done);
        assert_eq!(a, [7; 4]);
    }
}
