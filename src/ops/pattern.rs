//! Path patterns, as restore's --include/--exclude and find take them: a
//! glob with a `/` matches the whole path inside the snapshot
//! (`/srv/www/**/*.php`), one without matches any single name (`*.log`).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

use super::walk::components;
use crate::error::{Error, Result};

pub struct Patterns {
    full: GlobSet,
    name: GlobSet,
    empty: bool,
}

impl Patterns {
    pub fn new(patterns: &[String]) -> Result<Self> {
        let mut full = GlobSetBuilder::new();
        let mut name = GlobSetBuilder::new();
        for p in patterns {
            let bad = |e: globset::Error| Error::invalid(format!("pattern '{p}': {e}"));
            if p.contains('/') {
                let anchored = if p.starts_with('/') {
                    p.clone()
                } else {
                    format!("/{p}")
                };
                full.add(
                    GlobBuilder::new(&anchored)
                        .literal_separator(true)
                        .build()
                        .map_err(bad)?,
                );
            } else {
                name.add(Glob::new(p).map_err(bad)?);
            }
        }
        let built = |b: GlobSetBuilder| b.build().map_err(|e| Error::invalid(e.to_string()));
        Ok(Patterns {
            full: built(full)?,
            name: built(name)?,
            empty: patterns.is_empty(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.empty
    }

    /// Does this path (`/a/b/c`) itself match: its last name, or the whole
    /// path?
    pub fn matches(&self, path: &[u8]) -> bool {
        let last = components(path).last().copied().unwrap_or_default();
        self.name.is_match(OsStr::from_bytes(last))
            || self.full.is_match(Path::new(OsStr::from_bytes(path)))
    }

    /// Does the path or any folder above it match?
    pub fn matches_path_or_ancestor(&self, path: &[u8]) -> bool {
        let parts = components(path);
        let mut prefix = Vec::new();
        for part in parts {
            prefix.push(b'/');
            prefix.extend_from_slice(part);
            if self.matches(&prefix) {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(list: &[&str]) -> Patterns {
        Patterns::new(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn names_match_anywhere_and_paths_match_whole() {
        let names = p(&["*.log"]);
        assert!(names.matches(b"/var/app/x.log"));
        assert!(!names.matches(b"/var/app.log/x"));
        assert!(names.matches_path_or_ancestor(b"/var/app.log/x"));
        let paths = p(&["/srv/*/upload.bin"]);
        assert!(paths.matches(b"/srv/a/upload.bin"));
        assert!(!paths.matches(b"/srv/a/b/upload.bin"));
        let relative = p(&["srv/**/*.php"]);
        assert!(relative.matches(b"/srv/www/a/b.php"));
        assert!(!relative.matches(b"/other/srv/b.php"));
    }

    #[test]
    fn a_bad_glob_is_a_usage_error() {
        let err = Patterns::new(&["a[".to_string()]).err().unwrap();
        assert_eq!(err.kind(), crate::ErrorKind::InvalidInput);
    }
}
