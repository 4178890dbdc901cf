//! Hot-path micro benchmarks: chunking, hashing, sealing, and a whole stream
//! snapshot into an in-memory repository. Side-by-side comparisons with
//! restic and borg live in benches/compare.sh.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vault::chunker::Chunker;
use vault::crypto::MasterKeys;
use vault::format::config::ChunkerParams;
use vault::format::payload;
use vault::format::sealed::BoxKind;
use vault::ops::snapshot::{snapshot_stream, SnapshotOptions};
use vault::progress::Progress;
use vault::repo::{InitOptions, OpenOptions};
use vault::storage::{Location, OpendalBackend};
use vault::Repository;

/// Text like a SQL dump's COPY section, with a random tail per row so it is
/// neither trivially compressible nor incompressible.
fn dump_like(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 128);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut row = 0u64;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        row += 1;
        out.extend_from_slice(
            format!(
                "{row}\t{}\t{}\tcustomer-{:x}\t2026-11-{:02}\n",
                x % 1000,
                x % 97,
                x,
                row % 28 + 1
            )
            .as_bytes(),
        );
    }
    out.truncate(len);
    out
}

fn keys() -> MasterKeys {
    use rand::SeedableRng;
    MasterKeys::generate(&mut rand::rngs::StdRng::seed_from_u64(1))
}

fn bench(c: &mut Criterion) {
    let data = dump_like(64 << 20);
    let keys = keys();
    let params = ChunkerParams::default();
    let mut g = c.benchmark_group("pipeline");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("chunk", |b| {
        b.iter(|| {
            Chunker::for_long_stream(&data[..], &params, 7)
                .map(|c| c.map(|c| c.len()).unwrap_or(0))
                .sum::<usize>()
        })
    });
    // The same cuts without copying each chunk out: what handing chunks on
    // without a copy could save at most.
    g.bench_function("chunk_borrowed", |b| {
        b.iter(|| {
            let mut chunker = Chunker::for_long_stream(&data[..], &params, 7);
            let mut total = 0;
            while let Some(chunk) = chunker.next_chunk() {
                total += chunk.map(<[u8]>::len).unwrap_or(0);
            }
            total
        })
    });
    g.bench_function("blob_id", |b| b.iter(|| keys.blob_id(&data)));
    g.bench_function("compress_zstd3", |b| {
        b.iter(|| {
            data.chunks(1 << 20)
                .map(|c| payload::encode(c, 3).len())
                .sum::<usize>()
        })
    });
    g.bench_function("seal", |b| {
        b.iter(|| keys.seal(BoxKind::DataBlob, None, &data, [0; 24]).len())
    });
    g.bench_function("snapshot_stream_memory", |b| {
        b.iter(|| {
            let backend =
                Arc::new(OpendalBackend::open(&Location::Memory, true).expect("memory backend"));
            let mut opts = InitOptions::default();
            opts.kdf.memory_kib = 64;
            opts.kdf.iterations = 1;
            let repo = Arc::new(
                Repository::init(backend, b"pw", &opts, &OpenOptions::default()).expect("init"),
            );
            snapshot_stream(
                &repo,
                "dump.sql",
                &data[..],
                "stdin",
                &SnapshotOptions::default(),
                &Progress::default(),
            )
            .expect("snapshot")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
