//! Content-defined chunking: FastCDC (2020) over any byte stream, with the gear
//! table keyed by the repository's chunker key so chunk boundaries do not
//! fingerprint content for someone who only sees stored sizes.

use std::io::{self, Read};

use fastcdc::v2020::{Error as CdcError, Normalization, StreamCDC};

use crate::format::config::ChunkerParams;

pub struct Chunker<R: Read> {
    inner: StreamCDC<R>,
}

impl<R: Read> Chunker<R> {
    /// `params` must be valid (`ChunkerParams::validate`); configs are
    /// validated when decoded, so a repository cannot hand us bad sizes.
    pub fn new(source: R, params: &ChunkerParams, seed: u64) -> Self {
        debug_assert!(params.validate().is_ok());
        Chunker {
            inner: StreamCDC::with_level_and_seed(
                source,
                params.min,
                params.avg,
                params.max,
                Normalization::Level1,
                seed,
            ),
        }
    }
}

impl<R: Read> Iterator for Chunker<R> {
    type Item = io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.inner.next()? {
            Ok(chunk) => Some(Ok(chunk.data)),
            Err(CdcError::IoError(e)) => Some(Err(e)),
            Err(other) => Some(Err(io::Error::other(other.to_string()))),
        }
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
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
