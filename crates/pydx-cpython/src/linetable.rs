//! Decoding the line-number tables of code objects, for every format.
//!
//! All three formats are turned into the same sorted list of bytecode ranges,
//! each with its line number, so that a lookup is a binary search. Offsets are
//! in bytes of bytecode on every version; the caller converts instruction
//! indexes (3.10+) to bytes.

use crate::layout::LineTableFormat;

/// A decoded line table: sorted, non-overlapping bytecode byte ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineTable {
    first_line: u32,
    /// `(start, end, line)`, where `line` is `None` for "no line number".
    ranges: Vec<(u32, u32, Option<u32>)>,
}

impl LineTable {
    /// Decodes `table` in `format` for a code object whose `co_firstlineno`
    /// is `first_line`. Malformed or truncated input yields the ranges that
    /// could be decoded; decoding never panics.
    pub fn decode(format: LineTableFormat, table: &[u8], first_line: u32) -> Self {
        let ranges = match format {
            LineTableFormat::Lnotab => decode_lnotab(table, first_line),
            LineTableFormat::LineTable310 => decode_310(table, first_line),
            LineTableFormat::Locations => decode_locations(table, first_line),
        };
        Self { first_line, ranges }
    }

    /// The line of the instruction at byte offset `offset`. Offsets before
    /// the first instruction (a frame that has not started) give the first
    /// line; offsets without a line, or beyond the table, give `None`.
    pub fn line_at(&self, offset: i64) -> Option<u32> {
        if offset < 0 {
            return Some(self.first_line);
        }
        let offset = u32::try_from(offset).ok()?;
        let index = self
            .ranges
            .partition_point(|&(start, _, _)| start <= offset);
        let &(_, end, line) = self.ranges.get(index.checked_sub(1)?)?;
        if offset < end {
            line
        } else {
            None
        }
    }

    /// The number of decoded ranges.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Whether nothing could be decoded.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

fn add_line(line: u32, delta: i64) -> u32 {
    (i64::from(line) + delta).clamp(0, i64::from(u32::MAX)) as u32
}

/// 3.8/3.9 `co_lnotab`: (address increment, signed line increment) pairs.
/// A line applies from its address up to the next address.
fn decode_lnotab(table: &[u8], first_line: u32) -> Vec<(u32, u32, Option<u32>)> {
    let mut starts: Vec<(u32, u32)> = vec![(0, first_line)];
    let (mut addr, mut line) = (0u32, first_line);
    for pair in table.chunks_exact(2) {
        addr = addr.saturating_add(u32::from(pair[0]));
        line = add_line(line, i64::from(pair[1] as i8));
        match starts.last_mut() {
            // Several increments at one address: the last one wins.
            Some(last) if last.0 == addr => last.1 = line,
            _ => starts.push((addr, line)),
        }
    }
    let mut ranges = Vec::with_capacity(starts.len());
    for (i, &(start, line)) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map_or(u32::MAX, |next| next.0);
        ranges.push((start, end, Some(line)));
    }
    ranges
}

/// 3.10 `co_linetable`: (byte span, signed line delta) pairs; a delta of
/// -128 means the span has no line number.
fn decode_310(table: &[u8], first_line: u32) -> Vec<(u32, u32, Option<u32>)> {
    let mut ranges = Vec::with_capacity(table.len() / 2);
    let (mut addr, mut line) = (0u32, first_line);
    for pair in table.chunks_exact(2) {
        let end = addr.saturating_add(u32::from(pair[0]));
        let delta = pair[1] as i8;
        let this_line = if delta == -128 {
            None
        } else {
            line = add_line(line, i64::from(delta));
            Some(line)
        };
        if end > addr {
            ranges.push((addr, end, this_line));
        }
        addr = end;
    }
    ranges
}

/// Reads a 6-bit-chunk varint; `None` if the table ends inside it.
fn read_varint(table: &[u8], pos: &mut usize) -> Option<u32> {
    let mut value = 0u32;
    let mut shift = 0u32;
    loop {
        let byte = *table.get(*pos)?;
        *pos += 1;
        if shift < 32 {
            value |= u32::from(byte & 63) << shift;
        }
        if byte & 64 == 0 {
            return Some(value);
        }
        shift += 6;
    }
}

fn read_signed_varint(table: &[u8], pos: &mut usize) -> Option<i64> {
    let raw = read_varint(table, pos)?;
    let magnitude = i64::from(raw >> 1);
    Some(if raw & 1 == 1 { -magnitude } else { magnitude })
}

/// 3.11+ location table (see CPython's `Objects/locations.md`).
fn decode_locations(table: &[u8], first_line: u32) -> Vec<(u32, u32, Option<u32>)> {
    let mut ranges = Vec::with_capacity(table.len() / 2);
    let (mut addr, mut line) = (0u32, first_line);
    let mut pos = 0;
    while pos < table.len() {
        let head = table[pos];
        pos += 1;
        if head & 0x80 == 0 {
            // Not at the start of an entry: the table is corrupt.
            break;
        }
        let code = (head >> 3) & 0xf;
        let length = u32::from(head & 7) + 1;
        let delta = match code {
            15 => None,
            13 | 14 => match read_signed_varint(table, &mut pos) {
                Some(d) => Some(d),
                None => break,
            },
            10..=12 => Some(i64::from(code) - 10),
            _ => Some(0),
        };
        let this_line = delta.map(|d| {
            line = add_line(line, d);
            line
        });
        // Skip the column bytes that follow; they start without the top bit.
        while pos < table.len() && table[pos] & 0x80 == 0 {
            pos += 1;
        }
        let end = addr.saturating_add(length * 2);
        ranges.push((addr, end, this_line));
        addr = end;
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lnotab_applies_increments_up_to_the_offset() {
        // def f():          line 10
        //     a = 1         line 11, bytes 0..4
        //     b = 2         line 12, bytes 4..8
        //     return a + b  line 13 (via two increments at byte 8)
        let table = LineTable::decode(LineTableFormat::Lnotab, &[0, 1, 4, 1, 4, 0, 0, 1], 10);
        assert_eq!(table.line_at(0), Some(11));
        assert_eq!(table.line_at(3), Some(11));
        assert_eq!(table.line_at(4), Some(12));
        assert_eq!(table.line_at(8), Some(13));
        assert_eq!(table.line_at(200), Some(13));
        assert_eq!(table.line_at(-1), Some(10));
    }

    #[test]
    fn lnotab_handles_negative_increments() {
        // A loop whose condition is on an earlier line than its body.
        let table = LineTable::decode(LineTableFormat::Lnotab, &[0, 2, 6, 1, 8, 0xff], 1);
        assert_eq!(table.line_at(0), Some(3));
        assert_eq!(table.line_at(6), Some(4));
        assert_eq!(table.line_at(14), Some(3));
    }

    #[test]
    fn linetable_310_has_spans_and_no_line_markers() {
        // 4 bytes on line +1, 2 bytes without a line, 6 bytes on line +2.
        let table = LineTable::decode(LineTableFormat::LineTable310, &[4, 1, 2, 0x80, 6, 2], 20);
        assert_eq!(table.line_at(0), Some(21));
        assert_eq!(table.line_at(4), None);
        assert_eq!(table.line_at(6), Some(23));
        assert_eq!(table.line_at(11), Some(23));
        assert_eq!(table.line_at(12), None);
    }

    #[test]
    fn locations_decode_every_entry_kind() {
        let table = [
            // code 13 (no columns), 1 unit, line +1 (svarint 2)
            0x80 | (13 << 3),
            0x02,
            // code 10 (one line, delta 0), 2 units, two column bytes
            0x80 | (10 << 3) | 1,
            0x04,
            0x09,
            // code 5 (short form), 1 unit, one column byte
            0x80 | (5 << 3),
            0x11,
            // code 14 (long), 3 units, line -1 (svarint 3), end delta, cols
            0x80 | (14 << 3) | 2,
            0x03,
            0x00,
            0x05,
            0x07,
            // code 15 (no location), 1 unit
            0x80 | (15 << 3),
            // code 12 (one line, delta 2), 1 unit
            0x80 | (12 << 3),
            0x01,
            0x02,
        ];
        let decoded = LineTable::decode(LineTableFormat::Locations, &table, 100);
        // Byte offsets: units are 2 bytes each.
        assert_eq!(decoded.line_at(0), Some(101));
        assert_eq!(decoded.line_at(2), Some(101));
        assert_eq!(decoded.line_at(4), Some(101));
        assert_eq!(decoded.line_at(6), Some(101));
        assert_eq!(decoded.line_at(8), Some(100));
        assert_eq!(decoded.line_at(12), Some(100));
        assert_eq!(decoded.line_at(14), None);
        assert_eq!(decoded.line_at(16), Some(102));
        assert_eq!(decoded.line_at(18), None);
    }

    #[test]
    fn long_varints_are_decoded() {
        // Line delta +200: svarint 400 = 0b110010000 -> chunks 0x10|0x40, 0x06.
        let table = [0x80 | (13 << 3), 0x50, 0x06];
        let decoded = LineTable::decode(LineTableFormat::Locations, &table, 1);
        assert_eq!(decoded.line_at(0), Some(201));
    }

    #[test]
    fn truncated_tables_keep_what_decoded() {
        let table = [0x80 | (13 << 3), 0x02, 0x80 | (14 << 3), 0x41];
        let decoded = LineTable::decode(LineTableFormat::Locations, &table, 1);
        assert_eq!(decoded.line_at(0), Some(2));
        assert_eq!(decoded.len(), 1);
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
            first in any::<u32>(),
            offset in any::<i64>(),
        ) {
            for format in [LineTableFormat::Lnotab, LineTableFormat::LineTable310, LineTableFormat::Locations] {
                let table = LineTable::decode(format, &bytes, first);
                let _ = table.line_at(offset);
                prop_assert!(table.len() <= bytes.len() + 1);
            }
        }
    }
}
