use std::io::IsTerminal;

use anyhow::Result;
use vault::ops::walk::file_entry;

use super::{filter, open};
use crate::cli::args::*;
use crate::cli::exit;
use crate::cli::output::human_bytes;

pub(super) fn dump(g: &Global, a: DumpArgs) -> Result<i32> {
    let repo = open(g)?;
    let (_, snap) = repo.find_snapshot(&a.snapshot, &filter(&a.filter))?;
    let entry = file_entry(&repo, &snap.root, a.path.as_deref().map(str::as_bytes))?;
    let stdout = std::io::stdout();
    if stdout.is_terminal() && !g.quiet {
        eprintln!("note: writing {} to the terminal", human_bytes(entry.size));
    }
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    vault::ops::content::write_file(&repo, &entry, &mut out, "standard output")?;
    Ok(exit::OK)
}
