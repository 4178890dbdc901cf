//! A throwaway PostgreSQL server for drills: a fresh cluster in a temporary
//! folder, listening only on a unix socket there, with durability off (it
//! is deleted afterwards). initdb refuses to run as root, so as root the
//! cluster belongs to the `postgres` account. Stopped and removed on drop.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::engines::pg::{program, PgConn};
use crate::error::{Error, ErrorKind, Result};
use crate::system::process::{spawn, wait_success, StderrTail};

/// The account a root-run drill's cluster belongs to.
const SERVER_ACCOUNT: &str = "postgres";

pub struct ScratchServer {
    dir: PathBuf,
    pg_ctl: PathBuf,
    account: Option<(u32, u32)>,
    running: bool,
    /// Folders outside `dir` the server uses (tablespaces mapped there),
    /// removed with it.
    outside: Vec<PathBuf>,
}

fn account(name: &str) -> Result<(u32, u32)> {
    let cname = std::ffi::CString::new(name).map_err(|_| Error::invalid("bad account name"))?;
    // SAFETY: getpwnam returns a pointer to static storage or null; we read
    // two integers from it at once, before any other call could reuse it.
    let pw = unsafe { libc::getpwnam(cname.as_ptr()) };
    if pw.is_null() {
        return Err(Error::new(
            ErrorKind::SourceFailed,
            format!("running as root, and there is no '{name}' account to run a scratch PostgreSQL server as"),
        ));
    }
    // SAFETY: pw is non-null and points to a valid passwd record.
    Ok(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

impl ScratchServer {
    pub fn start() -> Result<ScratchServer> {
        let initdb = program("initdb")?;
        let mut server = Self::new_dir()?;
        let data = server.dir.join("data");
        server.run(
            &initdb,
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-A".as_ref(),
                "trust".as_ref(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--no-sync".as_ref(),
            ],
        )?;
        server.launch("")?;
        Ok(server)
    }

    /// A server on a data directory `fill` writes (a restored base
    /// backup), which is handed to the server's account first, with the
    /// `tablespaces` folder beside it and the folders of `outside` (which
    /// must have been missing or empty: they are removed with the server).
    /// It never archives: a drill's new timeline must not reach the real
    /// archive. Returns once the server accepts connections, which a
    /// recovering server does once it is consistent.
    pub fn start_from(
        outside: &[PathBuf],
        fill: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<ScratchServer> {
        let mut server = Self::new_dir()?;
        server.outside = outside.to_vec();
        let data = server.dir.join("data");
        fill(&data)?;
        if let Some((uid, gid)) = server.account {
            chown_tree(&server.dir, uid, gid)?;
            for dir in outside {
                chown_tree(dir, uid, gid)?;
            }
        }
        server.launch("-c archive_mode=off")?;
        Ok(server)
    }

    fn new_dir() -> Result<ScratchServer> {
        let pg_ctl = program("pg_ctl")?;
        // SAFETY: geteuid has no preconditions.
        let account = if unsafe { libc::geteuid() } == 0 {
            Some(account(SERVER_ACCOUNT)?)
        } else {
            None
        };
        let dir = std::env::temp_dir().join(format!(
            "vault-drill-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir(&dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
        let server = ScratchServer {
            dir,
            pg_ctl,
            account,
            running: false,
            outside: Vec::new(),
        };
        if let Some((uid, gid)) = account {
            std::os::unix::fs::chown(&server.dir, Some(uid), Some(gid))
                .map_err(|e| Error::io(server.dir.display().to_string(), e))?;
        }
        Ok(server)
    }

    fn launch(&mut self, extra: &str) -> Result<()> {
        let data = self.dir.join("data");
        let options = format!(
            "-k {} -c listen_addresses= -c fsync=off -c full_page_writes=off -c synchronous_commit=off {extra}",
            self.dir.display()
        );
        let log = self.dir.join("server.log");
        let pg_ctl = self.pg_ctl.clone();
        self.running = true;
        self.run(
            &pg_ctl,
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-o".as_ref(),
                options.as_ref(),
                "-w".as_ref(),
                // A recovering server accepts connections only once it is
                // consistent; replaying to there can take long.
                "-t".as_ref(),
                "3600".as_ref(),
                "start".as_ref(),
            ],
        )
    }

    /// The server's log so far (why a recovery stopped).
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn run(&self, program: &Path, args: &[&std::ffi::OsStr]) -> Result<()> {
        let name = program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut command = Command::new(program);
        command
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some((uid, gid)) = self.account {
            use std::os::unix::process::CommandExt;
            command.uid(uid).gid(gid);
        }
        let mut child = spawn(&mut command, &name)?;
        let stderr = StderrTail::hold(&mut child);
        wait_success(&mut child, &name, stderr).map_err(|e| e.at("scratch PostgreSQL server"))
    }

    /// Where a restore into it puts the tablespaces no mapping names.
    pub fn tablespaces_beside(data: &Path) -> PathBuf {
        data.with_file_name("tablespaces")
    }

    /// How to reach it: its socket folder, as the superuser.
    pub fn conn(&self) -> PgConn {
        PgConn {
            host: Some(self.dir.display().to_string()),
            port: None,
            user: Some("postgres".to_string()),
            dbname: None,
        }
    }
}

/// Hand a folder and everything in it to `uid:gid`, links not followed.
fn chown_tree(path: &Path, uid: u32, gid: u32) -> Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        .map_err(|e| Error::io(format!("chown {}", path.display()), e))?;
    let meta =
        std::fs::symlink_metadata(path).map_err(|e| Error::io(path.display().to_string(), e))?;
    if meta.is_dir() {
        let entries =
            std::fs::read_dir(path).map_err(|e| Error::io(path.display().to_string(), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(path.display().to_string(), e))?;
            chown_tree(&entry.path(), uid, gid)?;
        }
    }
    Ok(())
}

impl Drop for ScratchServer {
    fn drop(&mut self) {
        if self.running {
            let data = self.dir.join("data");
            let pg_ctl = self.pg_ctl.clone();
            let _ = self.run(
                &pg_ctl,
                &[
                    "-D".as_ref(),
                    data.as_os_str(),
                    "-m".as_ref(),
                    "immediate".as_ref(),
                    "-w".as_ref(),
                    "stop".as_ref(),
                ],
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        for dir in &self.outside {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
