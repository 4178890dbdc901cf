//! The command line: parse, open the repository, call the library, print.

pub mod args;
pub(crate) mod commands;
mod output;
pub mod password;

pub use args::Cli;
pub(crate) use commands::mount::block_stop_signals;
pub use commands::run;

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
        _ => exit::FAILURE,
    }
}
