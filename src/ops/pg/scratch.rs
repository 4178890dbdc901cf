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
        let mut server = ScratchServer {
            dir,
            pg_ctl,
            account,
            running: false,
        };
        if let Some((uid, gid)) = account {
            std::os::unix::fs::chown(&server.dir, Some(uid), Some(gid))
                .map_err(|e| Error::io(server.dir.display().to_string(), e))?;
        }
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
        let options = format!(
            "-k {} -c listen_addresses= -c fsync=off -c full_page_writes=off -c synchronous_commit=off",
            server.dir.display()
        );
        let log = server.dir.join("server.log");
        let pg_ctl = server.pg_ctl.clone();
        server.running = true;
        server.run(
            &pg_ctl,
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-o".as_ref(),
                options.as_ref(),
                "-w".as_ref(),
                "start".as_ref(),
            ],
        )?;
        Ok(server)
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
    }
}
