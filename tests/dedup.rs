//! Deduplication and change detection, measured through the `--json`
//! summaries of `snapshot`.

use crate::common;

use std::fs;
use std::time::{Duration, SystemTime};

use common::*;

#[test]
fn repeated_and_shifted_streams_store_little() {
    const LEN: u64 = 100 * MIB;
    let v = Vault::init();

    let first = v.snapshot_stdin("big", Gen::random(100, LEN));
    let stored = json_u64(&first, "bytes_added");
    assert!(stored >= LEN, "random data cannot shrink: {first}");

    // The same bytes again: only the new snapshot's tree is stored.
    let again = v.snapshot_stdin("big", Gen::random(100, LEN));
    assert_eq!(json_u64(&again, "bytes_read"), LEN);
    let added = json_u64(&again, "bytes_added");
    assert!(
        added < LEN / 100,
        "second snapshot of the same data added {added} bytes: {again}"
    );

    // 100 bytes inserted in the middle: chunk boundaries realign.
    let insert: Vec<u8> = (0..100u8).map(|i| i.wrapping_mul(37)).collect();
    let shifted = || Splice::new(Gen::random(100, LEN), LEN / 2 + 12_345, insert.clone());
    let third = v.snapshot_stdin("big", shifted());
    assert_eq!(json_u64(&third, "bytes_read"), LEN + 100);
    let added = json_u64(&third, "bytes_added");
    assert!(
        added < 5 * MIB,
        "a 100-byte insertion added {added} bytes: {third}"
    );
    assert!(added > 0, "the insertion must store something: {third}");

    // Each snapshot still reads back as its own stream.
    v.assert_dump_matches(json_str(&third, "snapshot"), None, shifted());
    v.assert_dump_matches(json_str(&first, "snapshot"), None, Gen::random(100, LEN));
}

#[test]
fn identical_files_in_a_tree_are_stored_once() {
    let v = Vault::init();
    let src = v.dir("src");
    for name in ["one.bin", "copy/two.bin", "copy/deeper/three.bin"] {
        write_gen(&src.join(name), Gen::random(7, 8 * MIB));
    }
    let s = v.snapshot_paths(&[&src]);
    assert_eq!(json_u64(&s, "bytes_read"), 24 * MIB);
    let added = json_u64(&s, "bytes_added");
    assert!(
        added < 9 * MIB,
        "three copies of 8 MiB stored {added} bytes: {s}"
    );
    assert!(added >= 8 * MIB, "{s}");

    // The same content as a stream is already stored too.
    let stream = v.snapshot_stdin("same", Gen::random(7, 8 * MIB));
    assert!(json_u64(&stream, "bytes_added") < 64 << 10, "{stream}");
}

#[test]
fn unchanged_files_are_not_read_again_and_touched_ones_are() {
    let v = Vault::init();
    let src = v.dir("src");
    write_gen(&src.join("a.bin"), Gen::mixed(1, 3 * MIB));
    write_gen(&src.join("dir/b.bin"), Gen::mixed(2, 2 * MIB));
    write(&src.join("dir/c.txt"), b"small\n");
    let total = 5 * MIB + 6;

    let first = v.snapshot_paths(&[&src]);
    assert_eq!(json_u64(&first, "bytes_read"), total);

    // Nothing changed: nothing is read, and the parent is recorded.
    let second = v.snapshot_paths(&[&src]);
    assert_eq!(
        json_u64(&second, "bytes_read"),
        0,
        "unchanged tree was read: {second}"
    );
    assert_eq!(json_u64(&second, "files"), 3);
    let snaps = v.snapshots();
    assert_eq!(snaps[1]["parent"], first["snapshot"]);

    // Touch one file (same content, new mtime): that file, and only it, is read.
    let f = fs::File::options()
        .write(true)
        .open(src.join("dir/b.bin"))
        .unwrap();
    f.set_modified(SystemTime::now() + Duration::from_secs(3600))
        .unwrap();
    drop(f);
    let third = v.snapshot_paths(&[&src]);
    assert_eq!(json_u64(&third, "bytes_read"), 2 * MIB, "{third}");
    assert!(
        json_u64(&third, "bytes_added") < 64 << 10,
        "same content stores no data: {third}"
    );

    // Change content without changing size or mtime: the ctime gives it away.
    let meta = fs::metadata(src.join("a.bin")).unwrap();
    let mut data = fs::read(src.join("a.bin")).unwrap();
    data[1000] ^= 0xff;
    fs::write(src.join("a.bin"), &data).unwrap();
    let f = fs::File::options()
        .write(true)
        .open(src.join("a.bin"))
        .unwrap();
    f.set_modified(meta.modified().unwrap()).unwrap();
    drop(f);
    let fourth = v.snapshot_paths(&[&src]);
    assert_eq!(json_u64(&fourth, "bytes_read"), 3 * MIB, "{fourth}");

    // --force reads everything again.
    let forced = v.json(&["snapshot", "--force", src.to_str().unwrap()]);
    assert_eq!(json_u64(&forced, "bytes_read"), total);

    // And the snapshots that skipped reading restore the right bytes.
    let target = v.path().join("restored");
    v.restore(
        &format!("{}:{}", json_str(&fourth, "snapshot"), src.display()),
        &target,
        &[],
    );
    assert_same_contents(&src, &target);
}
