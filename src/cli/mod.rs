//! The command line: parse, open the repository, call the library, print.

pub mod args;
pub(crate) mod commands;
mod output;
pub mod password;

pub use args::Cli;
pub(crate) use commands::mount::block_stop_signals;
pub use commands::run;

use clap::{Arg, ArgAction, ArgMatches, Command, CommandFactory, FromArgMatches};

/// The command line as parsed: the derived one, with help on `--help` only
/// (`-h` is a database host, as in psql, redis-cli and mariadb), and the
/// snapshot filter's recorded host renamed where `--host` is a server.
pub fn command() -> Command {
    fn long_help_only(cmd: Command) -> Command {
        cmd.disable_help_flag(true)
            .arg(
                Arg::new("help")
                    .long("help")
                    .action(ArgAction::Help)
                    .help("Print help")
                    .help_heading(None),
            )
            .mut_subcommands(long_help_only)
    }
    fn record_host_filter(cmd: Command) -> Command {
        cmd.mut_arg("hosts", |a| a.long("record-host"))
    }
    long_help_only(Cli::command().mut_subcommand("restore", |r| {
        r.mut_subcommand("pg", record_host_filter)
            .mut_subcommand("mysql", record_host_filter)
    }))
}

/// Parse the process's arguments. Help asked for together with anything
/// else is a usage error after the help is shown: a cron line that meant to
/// take a backup must not exit 0 having printed help instead.
pub fn parse() -> Cli {
    let mut cmd = command();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let matches: ArgMatches = match cmd.try_get_matches_from_mut(&args) {
        Ok(m) => m,
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
            let others = arguments_besides_help(&cmd, &args[1..]);
            let _ = e.print();
            if others.is_empty() {
                std::process::exit(exit::OK);
            }
            eprintln!(
                "vault: --help given with other arguments ({}): only help was printed, nothing was done",
                others.join(" ")
            );
            std::process::exit(exit::USAGE);
        }
        Err(e) => e.exit(),
    };
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.format(&mut cmd).exit())
}

/// The arguments that are neither `--help` nor the names of the
/// subcommands leading to it.
fn arguments_besides_help(root: &Command, args: &[std::ffi::OsString]) -> Vec<String> {
    let mut cmd = Some(root);
    let mut others = Vec::new();
    for arg in args {
        let arg = arg.to_string_lossy();
        // `vault help snapshot` names the command whose help is wanted.
        if arg == "--help" || (arg == "help" && std::ptr::eq(cmd.unwrap_or(root), root)) {
            continue;
        }
        match cmd.and_then(|c| c.find_subcommand(arg.as_ref())) {
            Some(sub) if others.is_empty() => cmd = Some(sub),
            _ => {
                cmd = None;
                others.push(arg.into_owned());
            }
        }
    }
    others
}

/// Exit codes (README.md, "Exit codes").
pub mod exit {
    pub const OK: i32 = 0;
    pub const FAILURE: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const WARNINGS: i32 = 3;
    pub const DAMAGE: i32 = 4;
    pub const LOCKED: i32 = 5;
    pub const WRONG_PASSWORD: i32 = 6;
    pub const NO_REPOSITORY: i32 = 7;
    pub const SOURCE_FAILED: i32 = 8;
    pub const DRILL_FAILED: i32 = 9;
    pub const STORAGE_UNAVAILABLE: i32 = 10;
    pub const STORAGE_DENIED: i32 = 11;
    pub const NO_SPACE: i32 = 12;
    pub const TARGET_BREACHED: i32 = 13;
    pub const UNSUPPORTED: i32 = 14;
    /// 128 + the signal, as shells report a process the signal killed.
    pub const INTERRUPTED: i32 = 130;
    pub const TERMINATED: i32 = 143;
}

/// After a stop signal: the line to print and the exit code.
pub fn interrupted_report() -> Option<(String, i32)> {
    let sig = vault::system::interrupt::received()?;
    let code = if sig == libc::SIGTERM {
        exit::TERMINATED
    } else {
        exit::INTERRUPTED
    };
    let (packs, bytes) = vault::system::interrupt::packs_stored();
    let line = format!(
        "interrupted; {packs} pack{} ({}) already stored {} kept and indexed: the next snapshot reuses them",
        if packs == 1 { "" } else { "s" },
        output::human_bytes(bytes),
        if packs == 1 { "is" } else { "are" },
    );
    Some((line, code))
}

/// The exit code for an error that reached the top.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    use vault::ErrorKind::*;
    let Some(e) = err.chain().find_map(|c| c.downcast_ref::<vault::Error>()) else {
        return exit::FAILURE;
    };
    match e.kind() {
        WrongPassword => exit::WRONG_PASSWORD,
        NotARepository | AlreadyExists => exit::NO_REPOSITORY,
        Corrupt | Tampered => exit::DAMAGE,
        InvalidInput => exit::USAGE,
        SourceFailed => exit::SOURCE_FAILED,
        Locked => exit::LOCKED,
        Unavailable => exit::STORAGE_UNAVAILABLE,
        PermissionDenied => exit::STORAGE_DENIED,
        NoSpace => exit::NO_SPACE,
        // A bug: a failure, with a message that says so.
        Internal => exit::FAILURE,
        Unsupported => exit::UNSUPPORTED,
        Interrupted => interrupted_report().map_or(exit::INTERRUPTED, |(_, code)| code),
        _ => exit::FAILURE,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn command_line_is_well_formed() {
        super::command().debug_assert();
    }
}
