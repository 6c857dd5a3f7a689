//! The NDJSON checker: input is `split seed (1 byte) ‖ file`. The report is the same
//! whether the file arrives whole or in chunks cut anywhere the seed says.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sallyport::batch::ndjson::{NdjsonChecker, NdjsonLimits};

fuzz_target!(|data: &[u8]| {
    let Some((&seed, file)) = data.split_first() else {
        return;
    };
    let limits = NdjsonLimits {
        max_line_bytes: 64,
        first_lines: 3,
    };
    let mut whole = NdjsonChecker::new("Patient", limits);
    whole.feed(file);
    let whole = whole.finish();

    let mut split = NdjsonChecker::new("Patient", limits);
    let mut rest = file;
    let mut step = usize::from(seed);
    while !rest.is_empty() {
        // Chunk sizes 1..=8 drawn from the seed, rotating so every boundary gets tried.
        let n = (1 + step % 8).min(rest.len());
        step = step.rotate_right(3).wrapping_add(5);
        let (chunk, tail) = rest.split_at(n);
        split.feed(chunk);
        rest = tail;
    }
    let split = split.finish();
    assert_eq!(split, whole);
    assert_eq!(whole.bytes, file.len() as u64);
});
