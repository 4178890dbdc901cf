//! Finding the server programs that database and storage tests start.

use std::path::{Path, PathBuf};

/// Where Debian and friends keep server programs that are not on PATH.
const EXTRA_DIRS: &[&str] = &["/usr/sbin", "/usr/local/sbin", "/usr/local/bin"];

/// The first `name` on PATH, in the usual server folders, or in
/// `/usr/lib/postgresql/<newest>/bin`.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(EXTRA_DIRS.iter().map(PathBuf::from));
    let mut pg: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|r| {
            r.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    pg.sort_by_key(|p| std::cmp::Reverse(pg_major(p)));
    dirs.extend(pg);
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn pg_major(bin: &Path) -> u32 {
    bin.parent()
        .and_then(|v| v.file_name())
        .and_then(|v| v.to_str())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// All of `names`, or None after saying loudly which are missing. Under
/// `VAULT_REQUIRE_SERVICES=1` (CI) a missing program fails the test instead:
/// a skipped test there would hide a broken setup.
pub fn require(what: &str, names: &[&str]) -> Option<Vec<PathBuf>> {
    let found: Vec<Option<PathBuf>> = names.iter().map(|n| find_binary(n)).collect();
    let missing: Vec<&str> = names
        .iter()
        .zip(&found)
        .filter(|(_, f)| f.is_none())
        .map(|(n, _)| *n)
        .collect();
    if missing.is_empty() {
        return Some(found.into_iter().flatten().collect());
    }
    let message = format!("{what}: missing {}", missing.join(", "));
    if std::env::var_os("VAULT_REQUIRE_SERVICES").is_some_and(|v| v == "1") {
        panic!("{message} (VAULT_REQUIRE_SERVICES=1)");
    }
    eprintln!("\n*** SKIPPED {message} ***\n");
    None
}

/// A free TCP port on 127.0.0.1 (bound, then released for the server).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
