//! Deltas against the parent: an hourly snapshot of data in which a few rows
//! changed everywhere stores its changed chunks as deltas, restores byte for
//! byte, survives prune of the snapshot that stored the bases, and a damaged
//! base is reported against every file that depends on it.

use crate::common;

use std::fs;
use std::io::Cursor;

use common::faults::{flip, open_library};
use common::mount::{fuse_available, Mount};
use common::s3::{FaultProxy, S3Repo, S3Server};
use common::*;
use serde_json::Value;
use vault::format::{layout, BlobKind};

/// Table-like text: tab-separated rows with numbers, words and JSON.
/// About 1% of the rows differ from version 0 in each version, a
/// different 1% each time.
pub fn rows(n: usize, version: u64) -> Vec<u8> {
    rows_with(n, |i| if touched(i, version) { version } else { 0 })
}

/// Whether version `version` changes row `i`: about 1% of the rows, spread
/// evenly, another 1% each version.
pub fn touched(i: usize, version: u64) -> bool {
    (i as u64 * 2654435761 + version * 97).is_multiple_of(100) && version > 0
}

/// `n` rows, row `i` holding the value `version_of(i)`.
pub fn rows_with(n: usize, version_of: impl Fn(usize) -> u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * 90);
    for i in 0..n {
        let v = version_of(i);
        let x = (i as u64).wrapping_mul(6364136223846793005) >> 33;
        out.extend_from_slice(
            format!(
                "{i}\t{}\t{{\"user\":{},\"kind\":\"{}\",\"score\":{}.{}}}\t{}\n",
                ["alpha", "bravo", "charlie", "delta"][(x % 4) as usize],
                x % 100_000,
                ["click", "view", "buy"][(x % 3) as usize],
                (x + v * 13) % 1000,
                v,
                x ^ v
            )
            .as_bytes(),
        );
    }
    out
}

pub fn stats(v: &Value) -> (u64, u64, u64) {
    (
        json_u64(v, "bytes_added"),
        json_u64(v, "delta_blobs"),
        json_u64(v, "delta_saved_bytes"),
    )
}

pub fn dump(v: &Vault, snap: &str, path: &str) -> Vec<u8> {
    let out = v.ok(&["dump", snap, path]);
    out.stdout
}

pub fn check_clean(v: &Vault) {
    let report = v.json(&["check", "--read-data"]);
    assert_eq!(report["clean"], Value::Bool(true), "{report}");
}

#[test]
fn a_stream_stores_changed_chunks_as_deltas_and_restores() {
    let v = Vault::init_with(SMALL_CHUNKS);
    let hour0 = rows(60_000, 0);
    let hour1 = rows(60_000, 1);
    let first = v.snapshot_stdin("events.tsv", Cursor::new(hour0.clone()));
    let second = v.snapshot_stdin("events.tsv", Cursor::new(hour1.clone()));
    let (whole, d0, _) = stats(&first);
    let (added, deltas, saved) = stats(&second);
    assert_eq!(d0, 0, "a first snapshot has no parent: {first}");
    assert!(deltas > 0, "changed chunks became deltas: {second}");
    assert!(saved > 0, "{second}");
    assert!(
        added * 5 < whole,
        "the hour costs a fraction of the dump: {added} vs {whole}"
    );
    let id0 = json_str(&first, "snapshot");
    let id1 = json_str(&second, "snapshot");
    assert_eq!(dump(&v, id1, "events.tsv"), hour1);
    assert_eq!(dump(&v, id0, "events.tsv"), hour0);
    check_clean(&v);
}

#[test]
fn a_changed_file_is_stored_against_the_same_path_in_the_parent() {
    let v = Vault::init_with(SMALL_CHUNKS);
    let src = v.dir("src");
    fs::write(src.join("table.tsv"), rows(50_000, 0)).unwrap();
    fs::write(src.join("other.tsv"), rows(20_000, 0)).unwrap();
    let first = v.snapshot_paths(&[&src]);
    fs::write(src.join("table.tsv"), rows(50_000, 1)).unwrap();
    let second = v.snapshot_paths(&[&src]);
    let (added, deltas, _) = stats(&second);
    assert!(deltas > 0, "{second}");
    assert!(added * 5 < json_u64(&first, "bytes_added"), "{second}");
    let target = v.path().join("restored");
    v.restore(json_str(&second, "snapshot"), &target, &[]);
    let restored = target.join(src.strip_prefix("/").unwrap());
    assert_eq!(
        fs::read(restored.join("table.tsv")).unwrap(),
        rows(50_000, 1)
    );
    assert_eq!(
        fs::read(restored.join("other.tsv")).unwrap(),
        rows(20_000, 0)
    );
    check_clean(&v);
}

#[test]
fn prune_keeps_the_bases_of_a_forgotten_snapshot_while_deltas_need_them() {
    let v = Vault::init_with(SMALL_CHUNKS);
    let hours: Vec<Vec<u8>> = (0..4).map(|h| rows(40_000, h)).collect();
    let ids: Vec<String> = hours
        .iter()
        .map(|h| json_str(&v.snapshot_stdin("t", Cursor::new(h.clone())), "snapshot").to_string())
        .collect();
    // The first snapshot stored every base; forget it and prune hard.
    v.ok(&["forget", "--keep-last", "3"]);
    v.ok(&["prune", "--exclusive", "--max-unused", "0%"]);
    for (id, data) in ids.iter().zip(&hours).skip(1) {
        assert_eq!(&dump(&v, id, "t"), data, "snapshot {id}");
    }
    check_clean(&v);
    // With every snapshot but the last forgotten, the last still restores.
    v.ok(&["forget", "--keep-last", "1"]);
    assert_eq!(v.snapshots().len(), 1);
    v.ok(&["prune", "--exclusive", "--max-unused", "0%"]);
    assert_eq!(dump(&v, &ids[3], "t"), hours[3]);
    check_clean(&v);
}

#[test]
fn a_flipped_byte_in_a_base_is_damage_to_every_file_that_depends_on_it() {
    let v = Vault::init_with(SMALL_CHUNKS);
    let src = v.dir("src");
    fs::write(src.join("a.tsv"), rows(30_000, 0)).unwrap();
    let first = v.snapshot_paths(&[&src]);
    fs::write(src.join("a.tsv"), rows(30_000, 1)).unwrap();
    let second = v.snapshot_paths(&[&src]);
    let (_, deltas, _) = stats(&second);
    assert!(deltas > 0, "{second}");

    // A base: the first chunk of the first snapshot's file (rows change
    // from the start, so the second snapshot's first chunk is a delta).
    let repo = open_library(&v);
    let (_, snap) = repo
        .find_snapshot(json_str(&first, "snapshot"), &Default::default())
        .unwrap();
    let entry = vault::ops::walk::resolve(
        &repo,
        &snap.root,
        src.join("a.tsv").as_os_str().as_encoded_bytes(),
    )
    .unwrap();
    let vault::ops::walk::Resolved::Entry { entry, .. } = entry else {
        panic!("a.tsv resolved to the root")
    };
    let base = entry.chunks()[0].id;
    let loc = repo.blob_location(BlobKind::Data, &base).unwrap().unwrap();
    assert!(loc.base.is_none(), "a base is stored whole");
    drop(repo);
    flip(
        &v.repo.join(layout::pack(&loc.pack)),
        u64::from(loc.offset) + u64::from(loc.stored_len) / 2,
    );

    let out = v.run(&["--json", "check", "--read-data"]);
    assert_code(&out, 4, "check over a damaged base");
    let report = parse_json(&out);
    let damaged = report["damaged_snapshots"].as_array().unwrap();
    assert_eq!(damaged.len(), 2, "both snapshots lose data: {report}");
    let second_id = json_str(&second, "snapshot");
    let of_second = damaged
        .iter()
        .find(|d| d["id"] == second_id)
        .expect("the snapshot of deltas is damaged");
    let lost = of_second["damaged"].as_array().unwrap();
    assert!(
        lost.iter()
            .any(|p| p["path"].as_str().unwrap().ends_with("a.tsv")
                && p["reason"].as_str().unwrap().contains("base")),
        "the file whose delta needs the base, and why: {of_second}"
    );

    // Repair writes a copy of the snapshot of deltas in which the chunk
    // whose base is damaged reads as zeros and every other byte, deltas
    // against intact bases included, is in place.
    let done = v.json(&["repair", "snapshots", "--read-data"]);
    let repaired = done["written"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["original"] == second_id)
        .unwrap_or_else(|| panic!("no repaired copy of {second_id}: {done}"))["repaired"]
        .as_str()
        .unwrap()
        .to_string();
    let target = v.path().join("repaired");
    let out = v
        .cmd(&["restore", &repaired, "--target"])
        .arg(&target)
        .watched_output();
    assert_code(&out, 4, "restore of the repaired snapshot of deltas");
    let got = fs::read(restored_at(&target, &src).join("a.tsv")).unwrap();
    let hour1 = rows(30_000, 1);
    assert_eq!(got.len(), hour1.len());
    let first_len = {
        let repo = open_library(&v);
        let (_, snap) = repo.find_snapshot(second_id, &Default::default()).unwrap();
        match vault::ops::walk::resolve(
            &repo,
            &snap.root,
            src.join("a.tsv").as_os_str().as_encoded_bytes(),
        )
        .unwrap()
        {
            vault::ops::walk::Resolved::Entry { entry, .. } => entry.chunks()[0].len as usize,
            _ => unreachable!(),
        }
    };
    assert!(
        got[..first_len].iter().all(|&b| b == 0),
        "lost bytes read as zeros"
    );
    assert_eq!(got[first_len..], hour1[first_len..]);
}

#[test]
fn a_version_1_repository_keeps_working_and_upgrades() {
    let mut args = SMALL_CHUNKS.to_vec();
    args.extend(["--format-version", "1"]);
    let v = Vault::init_with(&args);
    assert_eq!(open_library(&v).config().repo_version, 1);
    let hour0 = rows(30_000, 0);
    let hour1 = rows(30_000, 1);
    let hour2 = rows(30_000, 2);
    let a = v.snapshot_stdin("t", Cursor::new(hour0.clone()));
    let b = v.snapshot_stdin("t", Cursor::new(hour1.clone()));
    assert_eq!(stats(&b).1, 0, "no deltas in a version 1 repository: {b}");

    let plan = v.json(&["upgrade", "--dry-run"]);
    assert_eq!(
        (json_u64(&plan, "from"), json_u64(&plan, "to")),
        (1, 3),
        "{plan}"
    );
    assert_eq!(plan["upgraded"], Value::Bool(false));
    let still = v.json(&["upgrade", "--dry-run"]);
    assert_eq!(json_u64(&still, "from"), 1, "a dry run changes nothing");
    let done = v.json(&["upgrade"]);
    assert_eq!(done["upgraded"], Value::Bool(true), "{done}");
    let again = v.json(&["upgrade"]);
    assert_eq!(again["upgraded"], Value::Bool(false), "{again}");

    let c = v.snapshot_stdin("t", Cursor::new(hour2.clone()));
    assert!(stats(&c).1 > 0, "deltas once upgraded: {c}");
    for (s, data) in [(&a, &hour0), (&b, &hour1), (&c, &hour2)] {
        assert_eq!(&dump(&v, json_str(s, "snapshot"), "t"), data);
    }
    check_clean(&v);
}

#[test]
fn a_newer_repository_format_is_refused_clearly() {
    let v = Vault::init();
    {
        let repo = open_library(&v);
        let mut config = repo.config().clone();
        config.repo_version = 4;
        repo.rewrite_config(&config).unwrap();
    }
    let out = v.run(&["snapshots"]);
    assert_code(&out, 14, "a repository of an unknown format version");
    assert!(
        one_line_error(&out).contains("repository format version 4 is not supported"),
        "{}",
        stderr(&out)
    );
}

fn hour_with_tail(n: usize, hour: u64, tail: u64) -> Vec<u8> {
    let mut data = rows(n, hour);
    data.extend(Gen::random(1000 + hour, tail).bytes());
    data
}

#[test]
fn kill_9_during_a_delta_snapshot_leaves_a_whole_repository() {
    let mut args = SMALL_CHUNKS.to_vec();
    args.extend(["--pack-size-mib", "1"]);
    let v = Vault::init_with(&args);
    let hour0 = hour_with_tail(60_000, 0, 0);
    let first = v.snapshot_stdin("t", Cursor::new(hour0.clone()));
    // The changed rows become deltas; the new bytes after them fill packs,
    // so the run is storing both when it is killed.
    let hour1 = hour_with_tail(60_000, 1, 8 * MIB);
    let packs_before = v.objects("data").len();
    let held = common::held::Held::start(
        &v,
        &["snapshot", "--stdin", "--name", "t"],
        Cursor::new(hour1.clone()),
        hour0.len() as u64 + 4 * MIB,
    );
    common::prune::wait_until(
        "a pack of the held run",
        std::time::Duration::from_secs(120),
        || v.objects("data").len() > packs_before,
    );
    held.kill9();
    assert_eq!(v.snapshots().len(), 1, "no snapshot from the killed run");
    assert_eq!(dump(&v, json_str(&first, "snapshot"), "t"), hour0);
    check_clean(&v);
    let again = v.snapshot_stdin("t", Cursor::new(hour1.clone()));
    assert!(stats(&again).1 > 0, "{again}");
    assert_eq!(dump(&v, json_str(&again, "snapshot"), "t"), hour1);
    check_clean(&v);
}

#[test]
fn kill_9_during_a_prune_that_moves_bases_loses_nothing() {
    use std::time::{Duration, Instant};
    let mut args = SMALL_CHUNKS.to_vec();
    args.extend(["--pack-size-mib", "1"]);
    let v = Vault::init_with(&args);
    // Each hour: changed rows (deltas against the first hour's chunks) and
    // a tail of its own, so forgetting an hour leaves packs of bases with
    // unused blobs beside them, which prune repacks.
    let hour = |h: u64| hour_with_tail(40_000, h, MIB);
    let prune = ["prune", "--exclusive", "--max-unused", "0%"];
    for h in 0..3 {
        v.snapshot_stdin("t", Cursor::new(hour(h)));
    }
    v.ok(&["forget", "--group-by", "", "--keep-last", "2"]);
    let started = Instant::now();
    v.ok(&prune);
    let full = started.elapsed();
    let mut kills = 0;
    for round in 0..6u32 {
        v.snapshot_stdin("t", Cursor::new(hour(3 + u64::from(round))));
        v.ok(&["forget", "--group-by", "", "--keep-last", "2"]);
        let mut child = v
            .cmd(&prune)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let delay = full * (round + 1) / 7;
        let started = Instant::now();
        while child.try_wait().unwrap().is_none() && started.elapsed() < delay {
            std::thread::sleep(Duration::from_millis(1));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
        for s in v.snapshots() {
            let id = json_str(&s, "id");
            let h: Vec<u8> = dump(&v, id, "t");
            assert!(
                (0..10).any(|n| h == hour(n)),
                "round {round}: snapshot {id} no longer restores its bytes"
            );
        }
        v.ok(&["check"]);
    }
    assert!(kills > 0, "no prune was killed");
    v.ok(&prune);
    check_clean(&v);
}

#[test]
fn hourly_pg_snapshots_store_table_changes_as_deltas_and_restore() {
    let Some(pg) = common::postgres::Postgres::start() else {
        return;
    };
    let v = Vault::init_with(SMALL_CHUNKS);
    pg.createdb("shop");
    pg.sql(
        "shop",
        "CREATE TABLE events (id int PRIMARY KEY, kind text, body jsonb, score numeric); \
         INSERT INTO events SELECT g, (ARRAY['view','click','buy'])[1 + g % 3], \
           jsonb_build_object('page', '/p/' || g % 997, 'ref', md5(g::text)), g * 1.5 \
         FROM generate_series(1, 60000) g;",
    );
    let snap = |v: &Vault| pg.vault_json(v, &["snapshot", "pg", "--dbname", "shop"]);
    let first = snap(&v);
    // An hour: 1% of the rows, spread over the whole table, change in place.
    pg.sql(
        "shop",
        "UPDATE events SET score = score + 1, body = body || '{\"seen\": 1}' WHERE id % 100 = 7",
    );
    let expected = pg.pg_dump("shop");
    let sums = pg.table_checksums("shop");
    let second = snap(&v);
    let (added, deltas, _) = stats(&second);
    assert!(deltas > 0, "{second}");
    assert!(
        added * 3 < json_u64(&first, "bytes_added"),
        "the hour costs a fraction of the first snapshot: {second} vs {first}"
    );
    pg.dropdb("shop");
    pg.vault_json(
        &v,
        &[
            "restore",
            "pg",
            json_str(&second, "snapshot"),
            "--dbname",
            "shop",
            "--create",
        ],
    );
    assert_eq!(pg.table_checksums("shop"), sums);
    common::postgres::Postgres::assert_same_dump(&expected, &pg.pg_dump("shop"));
    check_clean(&v);
}

/// The pg drill restores a snapshot of deltas into a scratch server and
/// passes.
#[test]
fn drill_passes_on_a_pg_snapshot_of_deltas() {
    let Some(pg) = common::postgres::Postgres::start() else {
        return;
    };
    let v = Vault::init_with(SMALL_CHUNKS);
    pg.createdb("shop");
    pg.sql(
        "shop",
        "CREATE TABLE events (id int PRIMARY KEY, body jsonb); \
         INSERT INTO events SELECT g, jsonb_build_object('ref', md5(g::text), 'n', g) \
         FROM generate_series(1, 40000) g;",
    );
    let snap = |v: &Vault| pg.vault_json(v, &["snapshot", "pg", "--dbname", "shop"]);
    snap(&v);
    pg.sql(
        "shop",
        "UPDATE events SET body = body || '{\"seen\": 1}' WHERE id % 100 = 7",
    );
    let second = snap(&v);
    assert!(stats(&second).1 > 0, "{second}");
    let out = pg
        .vault(
            &v,
            &[
                "--json",
                "drill",
                "pg",
                json_str(&second, "snapshot"),
                "--assert",
                "SELECT count(*) = 400 FROM events WHERE body->>'seen' IS NOT NULL",
            ],
        )
        .output()
        .expect("run vault drill");
    let report = parse_json(&out);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(report["passed"], true, "{report}");
}

/// Two hours of a stream, the second stored as deltas.
fn two_hours(v: &Vault) -> [(String, Vec<u8>); 2] {
    let hours = [rows(40_000, 0), rows(40_000, 1)];
    let ids: Vec<String> = hours
        .iter()
        .map(|h| {
            json_str(
                &v.snapshot_stdin("t.tsv", Cursor::new(h.clone())),
                "snapshot",
            )
            .to_string()
        })
        .collect();
    let [a, b] = hours;
    let summary = v.json(&["snapshots"]);
    assert_eq!(summary.as_array().unwrap().len(), 2);
    [(ids[0].clone(), a), (ids[1].clone(), b)]
}

#[test]
fn mount_reads_files_stored_as_deltas() {
    if !fuse_available("mount_reads_files_stored_as_deltas") {
        return;
    }
    let v = Vault::init_with(SMALL_CHUNKS);
    let hours = two_hours(&v);
    let mp = v.dir("mnt");
    let mount = Mount::start(&v, &mp, &[]);
    for (id, data) in &hours {
        let dir = fs::read_dir(mp.join("snapshots"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|d| d.to_string_lossy().ends_with(&format!("_{}", &id[..8])))
            .unwrap_or_else(|| panic!("no folder for {id}"));
        assert_eq!(&fs::read(dir.join("t.tsv")).unwrap(), data, "{id}");
    }
    assert!(mount.stop().success());
}

#[test]
fn copy_gives_the_target_every_snapshot_of_deltas_whole_or_as_its_own() {
    let v = Vault::init_with(SMALL_CHUNKS);
    let hours = two_hours(&v);
    let target = Vault::init();
    v.ok(&[os(b"copy"), os(b"--to"), target.repo.as_os_str()]);
    let copied = target.snapshots();
    assert_eq!(copied.len(), 2);
    for (snap, (_, data)) in copied.iter().zip(&hours) {
        assert_eq!(&dump(&target, json_str(snap, "id"), "t.tsv"), data);
    }
    check_clean(&target);
    // The source's bases are its own: forgetting and pruning there leaves
    // the copies whole.
    v.ok(&["forget", "--keep-last", "1"]);
    v.ok(&["prune", "--exclusive", "--max-unused", "0%"]);
    check_clean(&target);
}

#[test]
fn repair_index_rebuilds_the_bases_of_deltas() {
    let v = Vault::init_with(SMALL_CHUNKS);
    let hours = two_hours(&v);
    for index in v.objects("index") {
        fs::remove_file(v.repo.join("index").join(index)).unwrap();
    }
    fs::remove_dir_all(&v.cache).unwrap();
    v.ok(&["repair", "index"]);
    for (id, data) in &hours {
        assert_eq!(&dump(&v, id, "t.tsv"), data);
    }
    check_clean(&v);
}

/// The GET requests for pack bytes the proxy saw since `from`.
fn pack_reads(proxy: &FaultProxy, from: usize) -> usize {
    let log = proxy.faults.log.lock().unwrap();
    log[from..]
        .iter()
        .filter(|l| l.starts_with("GET ") && l.contains("/data/"))
        .count()
}

fn requests_so_far(proxy: &FaultProxy) -> usize {
    proxy.faults.log.lock().unwrap().len()
}

/// Every file of the local base caches.
fn cached_bases(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(cached_bases(&p));
        } else if p.components().any(|c| c.as_os_str() == "bases") {
            out.push(p);
        }
    }
    out
}

#[test]
fn hourly_snapshots_into_s3_take_their_bases_from_the_local_cache() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let proxy = FaultProxy::start(server.port);
    let r = S3Repo::new(&server, "bases", &proxy.endpoint());
    r.init_here(SMALL_CHUNKS);
    let hours: Vec<Vec<u8>> = (0..4).map(|h| rows(40_000, h)).collect();
    let hour = |h: usize| {
        let from = requests_so_far(&proxy);
        let summary = r.snapshot_stdin("t.tsv", Cursor::new(hours[h].clone()));
        (summary, pack_reads(&proxy, from))
    };
    let (first, _) = hour(0);
    assert_eq!(stats(&first).1, 0);
    assert!(
        !cached_bases(&r.cache).is_empty(),
        "the first snapshot left its chunks in the cache"
    );

    // Warm: the bases come from the cache. The only pack reads left are the
    // parent's folder listing (one tree blob).
    let (warm, warm_reads) = hour(1);
    let deltas = stats(&warm).1;
    assert!(deltas > 10, "{warm}");
    assert!(warm_reads <= 2, "{warm_reads} pack reads with a warm cache");

    // Deleted: every base is downloaded again, and cached again.
    for f in cached_bases(&r.cache) {
        fs::remove_file(f).unwrap();
    }
    let (cold, cold_reads) = hour(2);
    let cold_deltas = stats(&cold).1;
    assert!(cold_deltas > 10, "{cold}");
    assert!(
        cold_reads as u64 >= cold_deltas / 2 && cold_reads > warm_reads + 5,
        "{cold_reads} pack reads with no cache, {warm_reads} with one"
    );

    // Damaged: a cached box that does not verify is never used, only
    // replaced; the snapshot stores the same deltas it would have.
    let cached = cached_bases(&r.cache);
    assert!(!cached.is_empty());
    for f in &cached {
        let mut bytes = fs::read(f).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x40;
        fs::write(f, bytes).unwrap();
    }
    let (damaged, _) = hour(3);
    assert!(stats(&damaged).1 > 10, "{damaged}");

    for (h, data) in hours.iter().enumerate() {
        let snaps = r.snapshots();
        let id = json_str(&snaps[h], "id");
        let file = r.dump_to_file(id, "t.tsv");
        assert_eq!(&fs::read(file).unwrap(), data, "hour {h}");
    }
    let report = r.json(&["check", "--read-data"]);
    assert_eq!(report["clean"], Value::Bool(true), "{report}");
}
