//! A streaming NDJSON checker for FHIR Bulk Data files: bytes in, in any chunking; a
//! [`NdjsonReport`] out. No I/O, and no record content kept or reported.
//!
//! # What a line must be
//!
//! A line is the bytes up to a `\n`. Each line must be exactly one JSON object (RFC 8259,
//! checked by `serde_json`, trailing JSON whitespace allowed) whose top-level
//! `"resourceType"` is a string equal to the declared resource type. A line that breaks this
//! is counted under exactly one [`LineFault`], tried in this order:
//!
//! 1. [`TooLong`](LineFault::TooLong): longer than [`NdjsonLimits::max_line_bytes`] (the
//!    `\n` not counted). The rest of the line is skipped unread, never buffered.
//! 2. [`Blank`](LineFault::Blank): empty or only spaces, tabs and `\r`.
//! 3. [`InvalidUtf8`](LineFault::InvalidUtf8): not UTF-8.
//! 4. [`NotJsonObject`](LineFault::NotJsonObject): not JSON, or JSON but not an object
//!    (an array, a string, two objects on one line, nesting deeper than `serde_json`'s
//!    limit of 128).
//! 5. [`WrongResourceType`](LineFault::WrongResourceType): an object whose `resourceType`
//!    is missing, not a string, different from the declared one, or given more than once.
//!
//! Decisions the FHIR Bulk Data spec leaves open, made here:
//!
//! * **Line ends.** `\n` ends a line; a `\r` before it is accepted (`\r\n` files pass), being
//!   JSON whitespace. A single `\n` at the end of the file is the last line's terminator,
//!   not a blank line; `\n\n` at the end is one blank line.
//! * **The last line without `\n`.** Accepted when it is a complete, valid record (many
//!   exporters omit the final newline). When it is not, it is reported once as
//!   [`NdjsonReport::truncated_last_line`] — not also as invalid UTF-8 or not-an-object,
//!   because a cut-off record is both and the cut is the finding. An over-long or blank
//!   unterminated last line is reported as such.
//! * **Records.** [`NdjsonReport::records`] counts every non-blank line, well formed or
//!   not: each is one record the exporter wrote. A damaged line is then one finding of its
//!   kind, not also a record-count mismatch; a dropped line is a record-count mismatch.
//!
//! # Memory
//!
//! A line that arrives whole inside one chunk is checked in place. Only a line split across
//! chunks is copied, into one buffer whose capacity never exceeds `max_line_bytes`; once a
//! line is known to be too long the buffer is emptied and the rest of the line is counted,
//! not stored. So memory is bounded by the line limit, whatever the input size.
//!
//! Not here: where the bytes come from (decrypting a member is the service's job), the
//! declared record count (the verdict compares it), and any notion of FHIR beyond
//! `resourceType`.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};

/// The default longest line: 16 MiB, far above any FHIR resource a bulk export writes.
pub const DEFAULT_MAX_LINE_BYTES: usize = 16 * 1024 * 1024;
/// The default number of line numbers kept per fault kind.
pub const DEFAULT_FIRST_LINES: usize = 5;

/// The checker's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdjsonLimits {
    /// The longest line accepted, in bytes, the `\n` not counted.
    pub max_line_bytes: usize,
    /// How many line numbers to keep per fault kind (the counts are always complete).
    pub first_lines: usize,
}

impl Default for NdjsonLimits {
    fn default() -> Self {
        NdjsonLimits {
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            first_lines: DEFAULT_FIRST_LINES,
        }
    }
}

/// What can be wrong with one line (see the module docs for the order they are tried in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LineFault {
    /// Longer than the configured maximum.
    TooLong,
    /// Empty or whitespace only.
    Blank,
    /// Not valid UTF-8.
    InvalidUtf8,
    /// Not exactly one JSON object.
    NotJsonObject,
    /// A JSON object whose `resourceType` is not the declared one.
    WrongResourceType,
}

impl LineFault {
    /// Every kind, in report order.
    pub const ALL: [LineFault; 5] = [
        LineFault::TooLong,
        LineFault::Blank,
        LineFault::InvalidUtf8,
        LineFault::NotJsonObject,
        LineFault::WrongResourceType,
    ];
}

/// One fault kind's tally: how many lines, and the first few line numbers (1-based).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FaultLines {
    /// Every line with this fault.
    pub count: u64,
    /// The first [`NdjsonLimits::first_lines`] of them, ascending.
    pub first: Vec<u64>,
}

/// The facts one NDJSON member yielded. Line numbers and counts only, never content.
/// Serialisable, so a seal in progress can keep each member's facts in the state store.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NdjsonReport {
    /// The `resourceType` every line was checked against (the declared one, not content).
    pub resource_type: String,
    /// Non-blank lines, each one record (see the module docs).
    pub records: u64,
    /// Bytes fed.
    pub bytes: u64,
    /// Lines seen, blank ones included.
    pub lines: u64,
    /// The last line had no `\n` and was not a complete record.
    pub truncated_last_line: bool,
    /// Lines over the maximum length.
    pub too_long: FaultLines,
    /// Blank lines.
    pub blank: FaultLines,
    /// Lines that are not UTF-8.
    pub invalid_utf8: FaultLines,
    /// Lines that are not one JSON object.
    pub not_json_object: FaultLines,
    /// Objects with the wrong (or no, or a repeated) `resourceType`.
    pub wrong_resource_type: FaultLines,
}

impl NdjsonReport {
    /// The tally for one kind.
    pub fn fault(&self, kind: LineFault) -> &FaultLines {
        match kind {
            LineFault::TooLong => &self.too_long,
            LineFault::Blank => &self.blank,
            LineFault::InvalidUtf8 => &self.invalid_utf8,
            LineFault::NotJsonObject => &self.not_json_object,
            LineFault::WrongResourceType => &self.wrong_resource_type,
        }
    }

    /// Whether no line is faulty and the last line is complete.
    pub fn is_clean(&self) -> bool {
        !self.truncated_last_line && LineFault::ALL.iter().all(|k| self.fault(*k).count == 0)
    }

    fn fault_mut(&mut self, kind: LineFault) -> &mut FaultLines {
        match kind {
            LineFault::TooLong => &mut self.too_long,
            LineFault::Blank => &mut self.blank,
            LineFault::InvalidUtf8 => &mut self.invalid_utf8,
            LineFault::NotJsonObject => &mut self.not_json_object,
            LineFault::WrongResourceType => &mut self.wrong_resource_type,
        }
    }
}

/// The streaming checker: [`feed`](Self::feed) chunks, then [`finish`](Self::finish).
#[derive(Debug)]
pub struct NdjsonChecker {
    limits: NdjsonLimits,
    report: NdjsonReport,
    /// The current line's bytes so far, when it spans chunks; never over the limit.
    partial: Vec<u8>,
    /// Bytes of the current line seen so far (buffered or not).
    line_len: usize,
    /// The current line has passed the limit: skip to its `\n`.
    overflowed: bool,
}

impl NdjsonChecker {
    /// A checker for lines of `expected_resource_type` (e.g. `"Patient"`).
    pub fn new(expected_resource_type: &str, limits: NdjsonLimits) -> Self {
        NdjsonChecker {
            limits,
            report: NdjsonReport {
                resource_type: expected_resource_type.to_owned(),
                ..NdjsonReport::default()
            },
            partial: Vec::new(),
            line_len: 0,
            overflowed: false,
        }
    }

    /// Checks the next bytes of the file; chunk boundaries may fall anywhere.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.report.bytes = self.report.bytes.saturating_add(chunk.len() as u64);
        let mut rest = chunk;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let (head, tail) = rest.split_at(nl);
            rest = &tail[1..];
            if self.line_len == 0 {
                // The whole line is in this chunk: check it in place, no copy.
                self.line_len = head.len();
                self.overflowed = head.len() > self.limits.max_line_bytes;
                self.end_line(head, true);
            } else {
                self.append(head);
                let line = std::mem::take(&mut self.partial);
                self.end_line(&line, true);
                // Keep the allocation for the next split line.
                self.partial = line;
                self.partial.clear();
            }
        }
        self.append(rest);
    }

    /// Ends the input: checks an unterminated last line and returns the report.
    pub fn finish(mut self) -> NdjsonReport {
        if self.line_len > 0 {
            let line = std::mem::take(&mut self.partial);
            self.end_line(&line, false);
        }
        self.report
    }

    /// Buffers part of a line, or stops buffering once it is over the limit.
    fn append(&mut self, part: &[u8]) {
        if part.is_empty() {
            return;
        }
        self.line_len = self.line_len.saturating_add(part.len());
        if self.overflowed {
            return;
        }
        if self.line_len > self.limits.max_line_bytes {
            self.overflowed = true;
            self.partial.clear();
            return;
        }
        let needed = self.partial.len() + part.len();
        if needed > self.partial.capacity() {
            // Grow geometrically, but never past the limit (plain `extend` could double to
            // twice the limit).
            let target = needed
                .max(self.partial.capacity().saturating_mul(2))
                .min(self.limits.max_line_bytes);
            self.partial.reserve_exact(target - self.partial.len());
        }
        self.partial.extend_from_slice(part);
    }

    /// Classifies one line (`line` is empty when it overflowed) and resets line state.
    fn end_line(&mut self, line: &[u8], terminated: bool) {
        self.report.lines += 1;
        let number = self.report.lines;
        let overflowed = self.overflowed;
        self.line_len = 0;
        self.overflowed = false;
        let fault = if overflowed {
            Some(LineFault::TooLong)
        } else {
            classify(line, &self.report.resource_type)
        };
        if fault != Some(LineFault::Blank) {
            self.report.records += 1;
        }
        match fault {
            None => {}
            Some(LineFault::InvalidUtf8 | LineFault::NotJsonObject) if !terminated => {
                self.report.truncated_last_line = true;
            }
            Some(kind) => {
                let cap = self.limits.first_lines;
                let tally = self.report.fault_mut(kind);
                tally.count += 1;
                if tally.first.len() < cap {
                    tally.first.push(number);
                }
            }
        }
    }

    /// The line buffer's capacity: what the memory bound is about.
    #[cfg(test)]
    pub(crate) fn buffered_capacity(&self) -> usize {
        self.partial.capacity()
    }
}

/// The fault of one complete, in-limit line, if any.
fn classify(line: &[u8], expected: &str) -> Option<LineFault> {
    if line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r')) {
        return Some(LineFault::Blank);
    }
    let Ok(text) = std::str::from_utf8(line) else {
        return Some(LineFault::InvalidUtf8);
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = de::Deserializer::deserialize_any(&mut de, HeadVisitor { expected });
    match parsed.and_then(|head| de.end().map(|()| head)) {
        Err(_) => Some(LineFault::NotJsonObject),
        Ok(Head {
            matches: 1,
            seen: 1,
        }) => None,
        Ok(_) => Some(LineFault::WrongResourceType),
    }
}

/// What a line's top-level object says about `resourceType`.
struct Head {
    /// `resourceType` keys seen.
    seen: u32,
    /// … whose value was the expected string.
    matches: u32,
}

/// Accepts only an object; reads its `resourceType` and skips (but validates) the rest.
struct HeadVisitor<'e> {
    expected: &'e str,
}

impl<'de> Visitor<'de> for HeadVisitor<'_> {
    type Value = Head;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Head, A::Error> {
        let mut head = Head {
            seen: 0,
            matches: 0,
        };
        while let Some(is_type) = map.next_key_seed(IsResourceType)? {
            if is_type {
                head.seen = head.seen.saturating_add(1);
                if let serde_json::Value::String(s) = map.next_value::<serde_json::Value>()?
                    && s == self.expected
                {
                    head.matches = head.matches.saturating_add(1);
                }
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(head)
    }
}

/// A key seed answering "is this key `resourceType`?" without keeping the key.
struct IsResourceType;

impl<'de> DeserializeSeed<'de> for IsResourceType {
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for IsResourceType {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        Ok(key == "resourceType")
    }
}

#[cfg(test)]
mod tests;
