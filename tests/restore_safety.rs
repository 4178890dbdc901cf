//! Restore never writes outside its target: symlinks restored earlier, or
//! already present in the target, are replaced rather than followed.

use crate::common;

use std::fs;
use std::os::unix::fs::symlink;

use common::*;

#[test]
fn a_symlinked_folder_from_one_snapshot_does_not_redirect_the_next() {
    let v = Vault::init();
    let outside = v.dir("outside");
    write(&outside.join("keep.txt"), b"untouched\n");
    let src = v.dir("src");

    // First snapshot: `d` is a symlink to a folder outside any target.
    symlink(&outside, src.join("d")).unwrap();
    symlink(outside.join("planted.txt"), src.join("f")).unwrap();
    let first = json_str(&v.snapshot_paths(&[&src]), "snapshot").to_string();

    // Second snapshot of the same path: `d` is a real folder with a file,
    // `f` a regular file.
    fs::remove_file(src.join("d")).unwrap();
    fs::remove_file(src.join("f")).unwrap();
    write(&src.join("d/file"), b"belongs inside the target\n");
    write(&src.join("d/sub/deeper"), b"also inside\n");
    write(&src.join("f"), b"plain file now\n");
    let second = json_str(&v.snapshot_paths(&[&src]), "snapshot").to_string();

    for sub_path in [false, true] {
        let target = v.path().join(format!("target-{sub_path}"));
        let spec = |id: &str| {
            if sub_path {
                format!("{id}:{}", src.display())
            } else {
                id.to_string()
            }
        };
        let base = if sub_path {
            target.clone()
        } else {
            restored_at(&target, &src)
        };

        v.restore(&spec(&first), &target, &[]);
        assert_eq!(fs::read_link(base.join("d")).unwrap(), outside);
        v.restore(&spec(&second), &target, &[]);

        assert_eq!(
            listing(&outside),
            vec!["keep.txt"],
            "restore wrote outside its target"
        );
        assert_eq!(fs::read(outside.join("keep.txt")).unwrap(), b"untouched\n");
        let d = fs::symlink_metadata(base.join("d")).unwrap();
        assert!(
            d.is_dir() && !d.file_type().is_symlink(),
            "d is still a symlink"
        );
        assert_eq!(
            fs::read(base.join("d/file")).unwrap(),
            b"belongs inside the target\n"
        );
        assert_eq!(
            fs::read(base.join("d/sub/deeper")).unwrap(),
            b"also inside\n"
        );
        assert!(!fs::symlink_metadata(base.join("f"))
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read(base.join("f")).unwrap(), b"plain file now\n");
    }
}

#[test]
fn existing_symlinks_in_the_target_are_replaced_not_followed() {
    let v = Vault::init();
    let outside = v.dir("outside");
    write(&outside.join("victim.txt"), b"precious\n");
    let src = v.dir("src");
    write(&src.join("file.txt"), b"from the snapshot\n");
    write(&src.join("missing-target.txt"), b"also from the snapshot\n");
    write(&src.join("dir/inner.txt"), b"inner\n");
    write(&src.join("link"), b"a file where the target has a link\n");
    symlink("elsewhere", src.join("was-a-file")).unwrap();
    let id = json_str(&v.snapshot_paths(&[&src]), "snapshot").to_string();

    let target = v.dir("target");
    // Links planted where the snapshot has files, a folder, and a symlink.
    symlink(outside.join("victim.txt"), target.join("file.txt")).unwrap();
    symlink(
        outside.join("new-file.txt"),
        target.join("missing-target.txt"),
    )
    .unwrap();
    symlink(&outside, target.join("dir")).unwrap();
    symlink(&outside, target.join("link")).unwrap();
    write(&target.join("was-a-file"), b"replaced by a symlink\n");

    v.restore(&format!("{id}:{}", src.display()), &target, &[]);

    assert_eq!(
        listing(&outside),
        vec!["victim.txt"],
        "restore created files outside its target"
    );
    assert_eq!(fs::read(outside.join("victim.txt")).unwrap(), b"precious\n");
    assert_same_contents(&src, &target);
}

/// Every name under `dir`, recursively, without following symlinks.
fn everything_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
            if fs::symlink_metadata(&p).unwrap().is_dir() {
                todo.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A folder restore descends into is swapped for a symlink to outside
/// while the restore runs: what a case-insensitive file system does when a
/// snapshot holds both a symlink `D` and a folder `d`, or what another
/// local user can do by racing. Every later name must be opened from the
/// folder's own descriptor, so the swap makes those entries fail instead
/// of landing outside.
#[test]
fn a_folder_swapped_for_a_symlink_mid_restore_does_not_redirect_writes() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let v = Vault::init();
    let outside = v.dir("outside");
    write(&outside.join("keep.txt"), b"untouched\n");
    let before = everything_under(&outside);
    let src = v.dir("src");
    for n in 0..300 {
        write(
            &src.join(format!("d/f{n}")),
            format!("file {n}\n").as_bytes(),
        );
        write(
            &src.join(format!("d/sub/g{n}")),
            format!("deeper {n}\n").as_bytes(),
        );
    }
    let id = json_str(&v.snapshot_paths(&[&src]), "snapshot").to_string();

    let target = v.dir("target");
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, target, outside) = (stop.clone(), target.clone(), outside.clone());
        std::thread::spawn(move || {
            let mut swaps = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let d = target.join("d");
                match fs::symlink_metadata(&d) {
                    Ok(m) if m.is_dir() => {
                        if fs::rename(&d, target.join(format!("moved-{swaps}"))).is_ok() {
                            let _ = symlink(&outside, &d);
                            swaps += 1;
                        }
                    }
                    _ => std::thread::yield_now(),
                }
            }
            swaps
        })
    };
    let out = v.run(&[
        "restore",
        &format!("{id}:{}", src.display()),
        "--target",
        target.to_str().unwrap(),
    ]);
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();

    assert!(
        swaps > 0,
        "the folder was never swapped: the test proves nothing"
    );
    assert_eq!(
        everything_under(&outside),
        before,
        "restore wrote outside its target through a swapped-in symlink"
    );
    assert_eq!(fs::read(outside.join("keep.txt")).unwrap(), b"untouched\n");
    // Entries below the swapped folder fail; the restore says so and ends.
    assert!(
        out.status.code().is_some(),
        "restore crashed: {}",
        stderr(&out)
    );
}
