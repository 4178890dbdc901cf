//! Round trips through the command line: file trees with every kind of
//! entry and metadata, large streams through `snapshot --stdin`, `dump` and
//! `restore`, listings, and selective restores.

use crate::common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

/// A source tree with the awkward cases: every entry kind, odd names,
/// special permission bits, owners, and exact (nanosecond, pre-1970 and
/// far-future) modification times. Returns the 20 MB file's path too.
fn edge_case_tree(src: &Path) -> PathBuf {
    write(&src.join("plain.txt"), b"hello, world\n");
    write(&src.join("empty"), b"");
    write(&src.join("one-byte"), b"x");
    write(&src.join("exec.sh"), b"#!/bin/sh\necho hi\n");
    write(&src.join("setuid-bin"), b"\x7fELF pretend");
    let big = src.join("big.bin");
    write_gen(&big, Gen::mixed(0xB16, 20 * MIB + 12345));
    write(&src.join("nested/a/b/c/deep.txt"), b"deep down\n");
    write(&src.join("nested/a/sibling.txt"), b"next to b\n");
    fs::create_dir_all(src.join("empty-dir")).unwrap();
    fs::create_dir_all(src.join("read-only-dir")).unwrap();
    write(
        &src.join("read-only-dir/inside.txt"),
        b"written before the folder became read-only\n",
    );
    write(&src.join(os(b"n\xffame")), b"not UTF-8 name\n");
    write(
        &src.join(os(b"dir-\xfe\xfd/inner\x80.bin")),
        b"\x00\x01\x02\xff",
    );
    write(&src.join("ünïcødé-名前-🦀.txt"), "unicode ✓\n".as_bytes());
    write(&src.join("with space"), b"space\n");
    write(&src.join("new\nline"), b"newline in the name\n");
    write(&src.join(".hidden"), b"dot file\n");
    symlink("plain.txt", src.join("link-rel")).unwrap();
    symlink("../../plain.txt", src.join("nested/a/link-up")).unwrap();
    symlink("/etc/passwd", src.join("link-abs")).unwrap();
    symlink("does/not/exist", src.join("dangling")).unwrap();
    symlink(os(b"/nowhere/\xff"), src.join("dangling-abs-non-utf8")).unwrap();
    symlink("nested/a", src.join("link-to-dir")).unwrap();
    mkfifo(&src.join("pipe"), 0o640);

    chmod(&src.join("plain.txt"), 0o644);
    chmod(&src.join("empty"), 0o600);
    chmod(&src.join("exec.sh"), 0o755);
    chmod(&src.join("empty-dir"), 0o700);
    chmod(&src.join("nested/a/b"), 0o2775);
    if is_root() {
        chmod(&src.join("setuid-bin"), 0o4755);
        std::os::unix::fs::lchown(src.join("with space"), Some(65534), Some(65534)).unwrap();
        std::os::unix::fs::lchown(src.join("dangling"), Some(65534), Some(65534)).unwrap();
    } else {
        chmod(&src.join("setuid-bin"), 0o750);
    }

    // Times last, children before parents, so nothing disturbs them.
    let mut all = Vec::new();
    collect_paths(src, &mut all);
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, p) in all.iter().enumerate() {
        set_mtime(
            p,
            1_600_000_000 + 977 * i as i64,
            999_999_999 - 1_234_567 * i as u32,
        );
    }
    set_mtime(&src.join("one-byte"), -86_400 * 365 * 20 - 7, 5);
    set_mtime(&src.join("exec.sh"), 7_258_118_400, 1); // 2200-01-01
    set_mtime(&src.join("empty"), 0, 0);
    chmod(&src.join("read-only-dir"), 0o555);
    set_mtime(&src.join("read-only-dir"), 1_500_000_000, 42);
    set_mtime(src, 1_650_000_000, 123_456_789);
    big
}

fn collect_paths(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        out.push(e.path());
        if e.file_type().unwrap().is_dir() {
            collect_paths(&e.path(), out);
        }
    }
}

#[test]
fn file_tree_round_trips_byte_identical_with_metadata() {
    let v = Vault::init();
    let src = v.dir("src");
    let big = edge_case_tree(&src);

    let summary = v.snapshot_paths(&[&src]);
    let id = json_str(&summary, "snapshot").to_string();
    assert_eq!(
        json_u64(&summary, "files"),
        15,
        "regular files counted: {summary}"
    );
    assert!(
        json_u64(&summary, "bytes_read") >= 20 * MIB,
        "the big file was read: {summary}"
    );
    assert!(
        summary["warnings"].as_array().unwrap().is_empty(),
        "{summary}"
    );

    // The whole snapshot: absolute paths below the target.
    let whole = v.path().join("restore-whole");
    let r = v.restore(&id, &whole, &[]);
    assert_eq!(r["errors"], Value::Array(vec![]), "{r}");
    assert_same_tree(&src, &restored_at(&whole, &src));

    // A path inside the snapshot: its contents directly in the target.
    let sub = v.path().join("restore-sub");
    let spec = format!("{}:{}", &id[..12], src.display());
    v.restore(&spec, &sub, &[]);
    assert_same_contents(&src, &sub);

    // Again over the first result: existing files are replaced, the
    // read-only folder still receives its file, and nothing changes.
    v.restore(&spec, &sub, &[]);
    assert_same_contents(&src, &sub);

    // One file on its own, and the big file through dump.
    let single = v.path().join("restore-single");
    v.restore(
        &format!("latest:{}", src.join("nested/a/b/c/deep.txt").display()),
        &single,
        &[],
    );
    assert_eq!(listing(&single), vec!["deep.txt"]);
    assert_eq!(fs::read(single.join("deep.txt")).unwrap(), b"deep down\n");
    v.assert_dump_matches("latest", Some(&big), Gen::mixed(0xB16, 20 * MIB + 12345));
}

/// Restore writes files in parallel; each large file's content is fetched
/// window by window. More large files than threads must not deadlock.
#[test]
fn restore_of_many_large_files_at_once_completes() {
    let v = Vault::init_with(SMALL_CHUNKS);
    let src = v.dir("src");
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    for i in 0..2 * threads + 1 {
        write_gen(
            &src.join(format!("f{i}.bin")),
            Gen::random(500 + i as u64, 3 * MIB),
        );
    }
    let id = json_str(&v.snapshot_paths(&[&src]), "snapshot").to_string();
    let target = v.path().join("restored");
    v.restore(&format!("{id}:{}", src.display()), &target, &[]);
    assert_same_contents(&src, &target);
}

#[test]
fn stream_of_200_mb_round_trips_through_dump_and_restore() {
    const LEN: u64 = 200 * MIB + 17;
    let v = Vault::init();
    let summary = v.snapshot_stdin("dump.sql", Gen::mixed(200, LEN));
    assert_eq!(json_u64(&summary, "bytes_read"), LEN, "{summary}");
    assert_eq!(json_u64(&summary, "files"), 1, "{summary}");
    // Half the stream is text: what is stored must be smaller than what was read.
    assert!(
        json_u64(&summary, "bytes_added") < LEN * 9 / 10,
        "no compression: {summary}"
    );
    let id = json_str(&summary, "snapshot");

    v.assert_dump_matches(id, None, Gen::mixed(200, LEN));
    v.assert_dump_matches("latest", Some(Path::new("/dump.sql")), Gen::mixed(200, LEN));

    let target = v.path().join("restored");
    let r = v.restore(id, &target, &[]);
    assert_eq!(json_u64(&r, "bytes"), LEN, "{r}");
    assert_eq!(listing(&target), vec!["dump.sql"]);
    assert_file_matches(&target.join("dump.sql"), Gen::mixed(200, LEN));

    let listed = v.snapshots();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["source"], "stdin");
    assert_eq!(listed[0]["paths"], serde_json::json!(["dump.sql"]));
}

/// `dump > file` writes each chunk at its offset from several threads: the
/// file must hold exactly what one sequential write leaves, after what was
/// written before it, with the shared offset moved to its end for what
/// follows; `>>` appends as before.
#[test]
fn dump_into_a_file_lands_where_a_sequential_write_would() {
    use std::io::{Read, Seek, SeekFrom, Write};
    const LEN: u64 = 40 * MIB + 3;
    let v = Vault::init();
    v.snapshot_stdin("dump.sql", Gen::mixed(7, LEN));
    let mut data = Vec::new();
    Gen::mixed(7, LEN).read_to_end(&mut data).unwrap();

    let path = v.path().join("out");
    let mut file = fs::File::create(&path).unwrap();
    file.write_all(b"before").unwrap();
    let out = dump_into(&v, file.try_clone().unwrap());
    assert_success(&out, "dump latest > out");
    assert_eq!(
        file.stream_position().unwrap(),
        6 + LEN,
        "offset not at the end"
    );
    file.write_all(b"after").unwrap();
    let expected = [b"before".as_slice(), &data, b"after"].concat();
    assert!(fs::read(&path).unwrap() == expected, "dump > file differs");

    let path = v.path().join("appended");
    fs::write(&path, b"old\n").unwrap();
    let file = fs::OpenOptions::new().append(true).open(&path).unwrap();
    let out = dump_into(&v, file);
    assert_success(&out, "dump latest >> appended");
    let mut file = fs::File::open(&path).unwrap();
    assert_eq!(file.seek(SeekFrom::End(0)).unwrap(), 4 + LEN);
    let expected = [b"old\n".as_slice(), &data].concat();
    assert!(fs::read(&path).unwrap() == expected, "dump >> file differs");
}

/// `vault dump latest` with its standard output on `file`.
fn dump_into(v: &Vault, file: fs::File) -> std::process::Output {
    let child = v
        .cmd(&["dump", "latest"])
        .stdout(file)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let watchdog = Watchdog::start(&child);
    let out = child.wait_with_output().unwrap();
    watchdog.stop();
    out
}

#[test]
fn two_streams_under_one_name_each_restore_their_own_content() {
    const LEN: u64 = 3 * MIB + 5;
    let v = Vault::init();
    let first = v.snapshot_stdin("db.sql", Gen::mixed(1, LEN));
    let second = v.snapshot_stdin("db.sql", Gen::mixed(2, LEN + 100));
    let (a, b) = (json_str(&first, "snapshot"), json_str(&second, "snapshot"));
    assert_ne!(a, b);

    v.assert_dump_matches(a, None, Gen::mixed(1, LEN));
    v.assert_dump_matches(b, None, Gen::mixed(2, LEN + 100));
    v.assert_dump_matches("latest", None, Gen::mixed(2, LEN + 100));

    for (id, seed, len) in [(a, 1, LEN), (b, 2, LEN + 100)] {
        let target = v.path().join(format!("restore-{id}"));
        v.restore(id, &target, &[]);
        assert_file_matches(&target.join("db.sql"), Gen::mixed(seed, len));
    }
    // The names match, so `--path` finds both; `latest` is the second.
    let filtered = v.json(&["snapshots", "--path", "db.sql"]);
    assert_eq!(filtered.as_array().unwrap().len(), 2);
}

/// A small tree for listing and selection tests.
fn small_tree(src: &Path) {
    write(&src.join("a/x.log"), b"log x\n");
    write(&src.join("a/y.txt"), b"text y\n");
    write(&src.join("b/z.log"), b"log z\n");
    write(&src.join("b/c/w.txt"), b"text w\n");
    write(&src.join("b/c/v.log"), b"log v\n");
    write(&src.join("top.txt"), b"top\n");
    fs::create_dir_all(src.join("node_modules/pkg")).unwrap();
    write(
        &src.join("node_modules/pkg/index.js"),
        b"module.exports = 1;\n",
    );
    symlink("a/y.txt", src.join("link")).unwrap();
    chmod(&src.join("a/y.txt"), 0o640);
}

#[test]
fn ls_long_json_and_dump_of_a_path() {
    let v = Vault::init();
    let src = v.dir("src");
    small_tree(&src);
    let id = json_str(&v.snapshot_paths(&[&src]), "snapshot").to_string();
    let s = src.display().to_string();

    // One level by default.
    let out = stdout(&v.ok(&["ls", &id, &s]));
    let lines: Vec<&str> = out.lines().collect();
    let expected: Vec<String> = ["a", "b", "link", "node_modules", "top.txt"]
        .iter()
        .map(|n| format!("{s}/{n}"))
        .collect();
    assert_eq!(lines, expected);

    // -l: mode, size, and the link target.
    let long = stdout(&v.ok(&["ls", "-l", &id, &format!("{s}/a")]));
    let y = long
        .lines()
        .find(|l| l.ends_with("/a/y.txt"))
        .unwrap_or_else(|| panic!("{long}"));
    assert!(y.starts_with("-rw-r----- "), "{y}");
    assert!(
        y.split_whitespace().any(|w| w == "7"),
        "size 7 missing: {y}"
    );
    let long_top = stdout(&v.ok(&["ls", "--long", &id, &s]));
    assert!(
        long_top
            .lines()
            .any(|l| l.starts_with('l') && l.ends_with("/link -> a/y.txt")),
        "{long_top}"
    );
    assert!(
        long_top
            .lines()
            .any(|l| l.starts_with("drwx") && l.ends_with("/b")),
        "{long_top}"
    );

    // -R --json: everything below, with types and sizes.
    let all = v.json(&["ls", "-R", &id, &s]);
    let rows = all.as_array().unwrap();
    let paths: Vec<&str> = rows.iter().map(|r| r["path"].as_str().unwrap()).collect();
    for rel in [
        "a",
        "a/x.log",
        "a/y.txt",
        "b",
        "b/c",
        "b/c/v.log",
        "b/c/w.txt",
        "b/z.log",
        "link",
        "top.txt",
    ] {
        assert!(
            paths.contains(&format!("{s}/{rel}").as_str()),
            "{rel} missing from {paths:?}"
        );
    }
    assert_eq!(rows.len(), 13, "{paths:?}");
    let row = |rel: &str| {
        rows.iter()
            .find(|r| r["path"] == format!("{s}/{rel}"))
            .unwrap()
    };
    assert_eq!(row("a/y.txt")["type"], "file");
    assert_eq!(row("a/y.txt")["size"], 7);
    assert_eq!(row("a/y.txt")["mode"], 0o640);
    assert_eq!(row("b/c")["type"], "dir");
    assert_eq!(row("link")["type"], "symlink");

    // The whole snapshot from the root, recursively, includes the ancestors.
    let from_root = v.json(&["ls", "-R", "latest"]);
    assert!(from_root
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["path"] == format!("{s}/b/c/w.txt")));

    // dump of one path; of a folder it is a usage error.
    let out = v.ok(&["dump", &id, &format!("{s}/b/c/w.txt")]);
    assert_eq!(out.stdout, b"text w\n");
    let out = v.run(&["dump", &id, &format!("{s}/b")]);
    assert_code(&out, 2, "dump of a folder");
    one_line_error(&out);
    let out = v.run(&["dump", &id, &format!("{s}/no/such/file")]);
    assert_code(&out, 1, "dump of a missing path");
    assert!(one_line_error(&out).contains("no/such/file"));
}

#[test]
fn restore_with_include_and_exclude_restores_exactly_the_selection() {
    let v = Vault::init();
    let src = v.dir("src");
    small_tree(&src);
    let id = json_str(&v.snapshot_paths(&[&src]), "snapshot").to_string();
    let spec = format!("{id}:{}", src.display());
    let s = src.display().to_string();

    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["--include", "*.log"],
            vec!["a/", "a/x.log", "b/", "b/c/", "b/c/v.log", "b/z.log"],
        ),
        (
            vec!["--exclude", "*.log", "--exclude", "node_modules"],
            vec![
                "a/",
                "a/y.txt",
                "b/",
                "b/c/",
                "b/c/w.txt",
                "link",
                "top.txt",
            ],
        ),
        (
            vec!["--include", "*.log", "--exclude", "c"],
            vec!["a/", "a/x.log", "b/", "b/z.log"],
        ),
        (
            vec!["--include", "top.txt", "--include", "link"],
            vec!["link", "top.txt"],
        ),
    ];
    for (n, (args, expected)) in cases.iter().enumerate() {
        let target = v.path().join(format!("sel-{n}"));
        v.restore(&spec, &target, args);
        assert_eq!(listing(&target), *expected, "restore {args:?}");
    }

    // A pattern with a '/' matches the full path inside the snapshot.
    let target = v.path().join("sel-full");
    v.restore(&spec, &target, &["--include", &format!("{s}/b/**")]);
    assert_eq!(
        listing(&target),
        vec!["b/", "b/c/", "b/c/v.log", "b/c/w.txt", "b/z.log"]
    );
    let target = v.path().join("sel-full-exclude");
    v.restore(&spec, &target, &["--exclude", &format!("{s}/b")]);
    assert_eq!(
        listing(&target),
        vec![
            "a/",
            "a/x.log",
            "a/y.txt",
            "link",
            "node_modules/",
            "node_modules/pkg/",
            "node_modules/pkg/index.js",
            "top.txt"
        ]
    );
    // Restored files carry their content.
    assert_eq!(fs::read(target.join("a/y.txt")).unwrap(), b"text y\n");

    // A bad pattern is a usage error and writes nothing.
    let target = v.path().join("sel-bad");
    let out = v.run(&[
        "restore",
        &spec,
        "--target",
        target.to_str().unwrap(),
        "--include",
        "a/[z",
    ]);
    assert_code(&out, 2, "restore with a bad pattern");
    one_line_error(&out);
    assert!(!target.exists() || listing(&target).is_empty());
}

#[test]
fn an_unchanged_snapshot_lists_its_total_size_beside_the_bytes_it_read() {
    let v = Vault::init();
    let src = v.dir("src");
    small_tree(&src);
    // Every regular file of the small tree: the symlink holds no bytes.
    let total: u64 = [
        "a/x.log",
        "a/y.txt",
        "b/z.log",
        "b/c/w.txt",
        "b/c/v.log",
        "top.txt",
        "node_modules/pkg/index.js",
    ]
    .iter()
    .map(|f| fs::metadata(src.join(f)).unwrap().len())
    .sum();
    let first = v.snapshot_paths(&[&src]);
    let second = v.snapshot_paths(&[&src]);
    assert_eq!(json_u64(&first, "total_bytes"), total);
    assert_eq!(json_u64(&second, "total_bytes"), total);
    assert_eq!(json_u64(&second, "bytes_read"), 0, "nothing changed");

    let listed = v.snapshots();
    let summary = |i: usize| &listed[i]["summary"];
    assert_eq!(json_u64(summary(1), "total_bytes"), total);
    assert_eq!(json_u64(summary(1), "bytes_read"), 0);

    let text = stdout(&v.ok(&["snapshots"]));
    let row = text
        .lines()
        .find(|l| l.starts_with(&json_str(&second, "snapshot")[..8]))
        .unwrap_or_else(|| panic!("no row for the second snapshot:\n{text}"));
    let columns: Vec<&str> = row.split_whitespace().collect();
    // id, date, time, host, source, then size and read (number and unit each).
    assert_eq!(
        &columns[5..9],
        &[&total.to_string(), "B", "0", "B"],
        "size, then bytes read: {row}"
    );
}
