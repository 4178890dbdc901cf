use std::io::IsTerminal;

use anyhow::Result;
use clap::Args;
use vault::ops::walk::file_entry;

use vault::repo::SnapshotFilter;

use super::filter::Filter;
use super::{filter, open, resolve_snapshot};
use crate::cli::args::Global;
use crate::cli::exit;
use crate::cli::output::human_bytes;

#[derive(Args, Debug)]
pub struct DumpArgs {
    pub snapshot: String,
    /// File inside the snapshot; may be left out for a snapshot of one stream
    pub path: Option<String>,
    #[command(flatten)]
    pub filter: Filter,
}

pub(super) fn dump(g: &Global, a: DumpArgs) -> Result<i32> {
    let repo = open(g)?;
    let scope = SnapshotFilter {
        holding: a.path.as_ref().map(|p| p.as_bytes().to_vec()),
        ..filter(&a.filter)
    };
    let (_, snap) = resolve_snapshot(g, &repo, &a.snapshot, &scope)?;
    let entry = file_entry(&repo, &snap.root, a.path.as_deref().map(str::as_bytes))?;
    let stdout = std::io::stdout();
    if stdout.is_terminal() && !g.quiet {
        eprintln!("note: writing {} to the terminal", human_bytes(entry.size));
    }
    if let Some(out) = vault::system::output::positional_stdout() {
        let written = vault::ops::content::write_file_at(
            &repo,
            &entry,
            &out.file,
            out.start,
            "standard output",
        )?;
        out.finish(written)
            .map_err(|e| vault::Error::io("standard output", e))?;
        return Ok(exit::OK);
    }
    // Chunks at least this long skip the buffer and go out in one write
    // each; only small ones are gathered.
    let mut out = std::io::BufWriter::with_capacity(64 << 10, stdout.lock());
    vault::ops::content::write_file(&repo, &entry, &mut out, "standard output")?;
    Ok(exit::OK)
}
