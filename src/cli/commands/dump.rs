use std::io::{IsTerminal, Write};

use anyhow::{bail, Result};
use vault::format::tree::EntryKind;
use vault::ops::walk::{resolve, Resolved};

use super::{filter, open};
use crate::cli::args::*;
use crate::cli::exit;
use crate::cli::output::human_bytes;

pub(super) fn dump(g: &Global, a: DumpArgs) -> Result<i32> {
    let repo = open(g)?;
    let (_, snap) = repo.find_snapshot(&a.snapshot, &filter(&a.filter))?;
    let entry = match &a.path {
        Some(p) => match resolve(&repo, &snap.root, p.as_bytes())? {
            Resolved::Entry { entry, .. } => entry,
            Resolved::Root(_) => bail!(vault::Error::invalid(
                "give the path of a file, not the root"
            )),
        },
        None => {
            let tree = repo.read_tree(&snap.root)?;
            match tree.entries.as_slice() {
                [only] if only.kind == EntryKind::File => only.clone(),
                _ => bail!(vault::Error::invalid(
                    "this snapshot holds more than one file: name the one to dump"
                )),
            }
        }
    };
    if entry.kind != EntryKind::File {
        bail!(vault::Error::invalid(format!(
            "{} is a {}, not a file",
            String::from_utf8_lossy(&entry.name),
            entry.kind.as_str()
        )));
    }
    let stdout = std::io::stdout();
    if stdout.is_terminal() && !g.quiet {
        eprintln!("note: writing {} to the terminal", human_bytes(entry.size));
    }
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let reader = vault::repo::BlobReader::new(&repo, vault::ops::content::SEQUENTIAL_READAHEAD);
    vault::ops::content::for_each_chunk(&reader, entry.chunks(), &mut |_, data| {
        let data = data.map_err(|e| e.at(String::from_utf8_lossy(&entry.name)))?;
        out.write_all(&data)
            .map_err(|e| vault::Error::io("writing to standard output", e))?;
        Ok(true)
    })?;
    out.flush()
        .map_err(|e| vault::Error::io("writing to standard output", e))?;
    Ok(exit::OK)
}
