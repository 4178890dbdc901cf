//! Content-defined chunking: FastCDC (2020) over any byte stream, with the gear
//! table keyed by the repository's chunker key so chunk boundaries do not
//! fingerprint content for someone who only sees stored sizes.
//!
//! The cut points are fastcdc's own (`cut_gear`), over the same window its
//! `StreamCDC` uses: `cut_gear` never looks past `max` bytes, so any window
//! holding at least `max` bytes, or all that remain, cuts where `StreamCDC`
//! does. What differs is the buffer. It is kept per thread from file to file
//! (a tree snapshot chunks tens of thousands of files on a dozen threads, and
//! fresh zeroed buffers for each were most of its allocator churn and a good
//! part of its peak memory), and a long stream (`Chunker::for_long_stream`)
//! that outgrows one window gets a larger one, so the uncut rest is moved to
//! the front only once every few chunks instead of after every chunk (that
//! move was three bytes copied for every byte chunked at the default sizes).

use std::cell::Cell;
use std::io::{self, Read};

use fastcdc::v2020::{cut_gear, get_gear_with_seed, logarithm2, Normalization, MASKS};

use crate::format::config::ChunkerParams;

thread_local! {
    /// The buffer the last chunker on this thread read into, for the next.
    static SPARE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// A buffer of exactly `len` bytes: this thread's spare one when it fits.
fn take_buffer(len: usize) -> Vec<u8> {
    let spare = SPARE.take();
    if spare.len() == len {
        spare
    } else {
        vec![0; len]
    }
}

/// A long stream (`Chunker::for_long_stream`) that outgrows one window gets
/// a buffer of this many windows: the rest is then moved to the front once
/// per `WINDOWS_PER_BUFFER - 1` windows' worth of chunks, not after every
/// chunk. The files a tree walker cuts in turn keep one window: a larger
/// buffer for each of them, on each of a dozen walkers, cost more in
/// mapped, faulted and freed pages (and peak memory) than the moves it
/// saved.
const WINDOWS_PER_BUFFER: usize = 4;

pub struct Chunker<R: Read> {
    source: R,
    /// `max` bytes, or `grows_to` once the stream proved longer; the part
    /// not yet cut is `buf[start..end]`.
    buf: Vec<u8>,
    grows_to: usize,
    start: usize,
    end: usize,
    eof: bool,
    min: usize,
    avg: usize,
    max: usize,
    masks: [u64; 4],
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
}

impl<R: Read> Chunker<R> {
    /// `params` must be valid (`ChunkerParams::validate`); configs are
    /// validated when decoded, so a repository cannot hand us bad sizes.
    pub fn new(source: R, params: &ChunkerParams, seed: u64) -> Self {
        Self::with_windows(source, params, seed, 1)
    }

    /// A chunker for a stream that is likely long (standard input, a large
    /// file on a thread of its own): its buffer may grow to
    /// `WINDOWS_PER_BUFFER` windows.
    pub fn for_long_stream(source: R, params: &ChunkerParams, seed: u64) -> Self {
        Self::with_windows(source, params, seed, WINDOWS_PER_BUFFER)
    }

    fn with_windows(source: R, params: &ChunkerParams, seed: u64, windows: usize) -> Self {
        debug_assert!(params.validate().is_ok());
        let bits = logarithm2(params.avg);
        let level = Normalization::Level1.bits();
        let mask_s = MASKS[(bits + level) as usize];
        let mask_l = MASKS[(bits - level) as usize];
        let (gear, gear_ls) = get_gear_with_seed(seed);
        let max = params.max as usize;
        Chunker {
            source,
            buf: take_buffer(max),
            grows_to: windows * max,
            start: 0,
            end: 0,
            eof: false,
            min: params.min as usize,
            avg: params.avg as usize,
            max,
            masks: [mask_s, mask_l, mask_s << 1, mask_l << 1],
            gear,
            gear_ls,
        }
    }

    /// Make the window at least `max` bytes long, or as long as the stream
    /// allows.
    fn fill(&mut self) -> io::Result<()> {
        if self.eof || self.end - self.start >= self.max {
            return Ok(());
        }
        if self.buf.len() - self.start < self.max {
            self.make_room();
        }
        while self.end - self.start < self.max {
            match self.source.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Move the uncut rest to the front, into a larger buffer the first time
    /// (fresh zeroed pages cost nothing until read into).
    fn make_room(&mut self) {
        let rest = self.start..self.end;
        let len = rest.len();
        if self.buf.len() < self.grows_to {
            let mut larger = vec![0; self.grows_to];
            larger[..len].copy_from_slice(&self.buf[rest]);
            self.buf = larger;
        } else {
            self.buf.copy_within(rest, 0);
        }
        self.start = 0;
        self.end = len;
    }

    /// The next chunk, borrowed from the buffer until the next call.
    pub fn next_chunk(&mut self) -> Option<io::Result<&[u8]>> {
        if let Err(e) = self.fill() {
            return Some(Err(e));
        }
        let window = &self.buf[self.start..self.end];
        if window.is_empty() {
            return None;
        }
        let [mask_s, mask_l, mask_s_ls, mask_l_ls] = self.masks;
        // Past `max` bytes `cut_gear` cuts at `max`, whatever follows.
        let (_, len) = cut_gear(
            window,
            self.min,
            self.avg,
            self.max,
            mask_s,
            mask_l,
            mask_s_ls,
            mask_l_ls,
            &self.gear,
            &self.gear_ls,
        );
        let at = self.start;
        self.start += len;
        Some(Ok(&self.buf[at..at + len]))
    }
}

impl<R: Read> Drop for Chunker<R> {
    /// Hands the buffer on at one window's size: the larger one of a long
    /// stream would stay resident on every thread that ever chunked one.
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.buf);
        if buf.len() != self.max {
            buf.truncate(self.max);
            buf.shrink_to_fit();
        }
        SPARE.set(buf);
    }
}
impl<R: Read> Iterator for Chunker<R> {
    type Item = io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(self.next_chunk()?.map(<[u8]>::to_vec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn small() -> ChunkerParams {
        ChunkerParams {
            min: 1024,
            avg: 4096,
            max: 16384,
            ..ChunkerParams::default()
        }
    }

    fn chunks(data: &[u8], seed: u64) -> Vec<Vec<u8>> {
        Chunker::new(data, &small(), seed)
            .map(|c| c.unwrap())
            .collect()
    }

    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn chunks_concatenate_to_the_input_and_respect_bounds() {
        let data = noise(300_000, 3);
        let c = chunks(&data, 1);
        assert_eq!(c.concat(), data);
        for chunk in &c[..c.len() - 1] {
            assert!(chunk.len() >= 1024 && chunk.len() <= 16384);
        }
    }

    #[test]
    fn the_seed_moves_boundaries() {
        let data = noise(300_000, 3);
        let a: Vec<usize> = chunks(&data, 1).iter().map(Vec::len).collect();
        let b: Vec<usize> = chunks(&data, 2).iter().map(Vec::len).collect();
        assert_ne!(a, b);
    }

    /// Hands out at most a given number of bytes per read, as pipes and
    /// slow disks do.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// Hands out reads of the given sizes in turn.
    struct Uneven<'a> {
        data: &'a [u8],
        steps: &'a [usize],
        next: usize,
    }

    impl Read for Uneven<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let step = self.steps[self.next % self.steps.len()];
            self.next += 1;
            let n = step.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// The chunks fastcdc's own streaming chunker cuts: repositories made
    /// with it must keep deduplicating against new snapshots.
    fn reference(data: &[u8], params: &ChunkerParams, seed: u64) -> Vec<Vec<u8>> {
        fastcdc::v2020::StreamCDC::with_level_and_seed(
            data,
            params.min,
            params.avg,
            params.max,
            Normalization::Level1,
            seed,
        )
        .map(|c| c.unwrap().data)
        .collect()
    }

    #[test]
    fn chunks_are_fastcdcs_own_for_default_sizes_and_uneven_reads() {
        let params = ChunkerParams::default();
        let mut data = noise(5 << 20, 9);
        // A long run of zeros: cut at `max`, the window's full length.
        data.extend(std::iter::repeat_n(0u8, 3 << 20));
        data.extend(noise(700_000, 4));
        let expected = reference(&data, &params, 77);
        for step in [1 << 20, 65_537, 4096, usize::MAX] {
            let got: Vec<Vec<u8>> = Chunker::new(Trickle { data: &data, step }, &params, 77)
                .map(|c| c.unwrap())
                .collect();
            assert_eq!(got, expected, "reads of {step} bytes");
        }
    }

    #[test]
    fn a_chunker_on_the_same_thread_reuses_the_buffer_and_starts_clean() {
        let params = small();
        // Shorter than one window: the buffer is never replaced.
        let first = noise(15_000, 1);
        let second = noise(50_000, 2);
        let once = Chunker::new(&first[..], &params, 3);
        let buffer = once.buf.as_ptr();
        assert!(once.collect::<io::Result<Vec<_>>>().unwrap().len() > 1);
        let again = Chunker::new(&second[..], &params, 3);
        assert_eq!(again.buf.as_ptr(), buffer);
        let got: Vec<Vec<u8>> = again.map(|c| c.unwrap()).collect();
        assert_eq!(got, reference(&second, &params, 3));
    }

    #[test]
    fn a_long_stream_hands_on_a_one_window_buffer() {
        let params = small();
        let long = noise(500_000, 1);
        let mut chunker = Chunker::for_long_stream(&long[..], &params, 3);
        while chunker.next_chunk().is_some() {}
        assert_eq!(chunker.buf.len(), WINDOWS_PER_BUFFER * 16384);
        drop(chunker);
        let spare = SPARE.take();
        assert_eq!(spare.len(), 16384);
        assert!(spare.capacity() < 2 * 16384, "{} kept", spare.capacity());
        SPARE.set(spare);
        // The next stream starts from a clean window on it.
        let short = noise(40_000, 2);
        let got: Vec<Vec<u8>> = Chunker::new(&short[..], &params, 3)
            .map(|c| c.unwrap())
            .collect();
        assert_eq!(got, reference(&short, &params, 3));
    }

    #[test]
    fn a_read_error_is_returned_not_swallowed() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let mut c = Chunker::new(Broken, &small(), 1);
        let err = c.next().unwrap().unwrap_err();
        assert_eq!(err.to_string(), "disk on fire");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn chunks_match_fastcdc_for_any_length_and_read_size(len in 0usize..120_000, step in 1usize..20_000, seed in any::<u64>()) {
            let data = noise(len, seed | 1);
            let expected = reference(&data, &small(), seed);
            let got: Vec<Vec<u8>> = Chunker::new(Trickle { data: &data, step }, &small(), seed)
                .map(|c| c.unwrap())
                .collect();
            prop_assert_eq!(&got, &expected);
            let long: Vec<Vec<u8>> =
                Chunker::for_long_stream(Trickle { data: &data, step }, &small(), seed)
                    .map(|c| c.unwrap())
                    .collect();
            prop_assert_eq!(long, expected);
        }

        /// Reads of sizes that change from read to read, over input with
        /// runs of zeros (cut at exactly `max`, where the window's length
        /// decides the cut), long enough to move the window many times.
        #[test]
        fn chunks_match_fastcdc_for_mixed_input_and_uneven_reads(
            parts in proptest::collection::vec((any::<bool>(), 1usize..60_000), 1..12),
            steps in proptest::collection::vec(1usize..40_000, 1..8),
            seed in any::<u64>(),
        ) {
            let mut data = Vec::new();
            for (n, (zeros, len)) in parts.into_iter().enumerate() {
                if zeros {
                    data.extend(std::iter::repeat_n(0u8, len));
                } else {
                    data.extend(noise(len, seed ^ n as u64));
                }
            }
            let expected = reference(&data, &small(), seed);
            let reader = Uneven { data: &data, steps: &steps, next: 0 };
            let got: Vec<Vec<u8>> = Chunker::for_long_stream(reader, &small(), seed)
                .map(|c| c.unwrap())
                .collect();
            prop_assert_eq!(&got, &expected);
            let reader = Uneven { data: &data, steps: &steps, next: 0 };
            let got: Vec<Vec<u8>> = Chunker::new(reader, &small(), seed)
                .map(|c| c.unwrap())
                .collect();
            prop_assert_eq!(got, expected);
        }

        #[test]
        fn boundaries_realign_after_an_insertion(pos in 0usize..200_000, insert in proptest::collection::vec(any::<u8>(), 1..200)) {
            let data = noise(200_000, 11);
            let mut edited = data.clone();
            edited.splice(pos..pos, insert.iter().copied());
            let before: std::collections::HashSet<Vec<u8>> = chunks(&data, 5).into_iter().collect();
            let after = chunks(&edited, 5);
            let new_bytes: usize = after.iter().filter(|c| !before.contains(*c)).map(Vec::len).sum();
            // Only the chunks around the edit change: a few max-size chunks at most.
            prop_assert!(new_bytes <= 3 * 16384 + insert.len(), "{} new bytes", new_bytes);
        }
    }
}
