//! Tablespaces of a base backup: the `tablespace_map` file PostgreSQL
//! writes into it (one `OID LOCATION` line per tablespace, the location
//! backslash-escaped), which recovery reads to link `pg_tblspc/OID` to
//! each location, and where a restore puts each tablespace: its original
//! location, or the one a `-T OLDDIR=NEWDIR` mapping names.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tablespace {
    pub oid: u32,
    pub location: PathBuf,
}

/// Read a tablespace_map as PostgreSQL does: a backslash takes the next
/// character literally, an unescaped newline or carriage return ends a
/// line, blank lines are skipped. `Err` says what is wrong, for the
/// caller to place (the server's stream, or a stored snapshot).
pub fn parse_map(bytes: &[u8]) -> std::result::Result<Vec<Tablespace>, String> {
    let mut out: Vec<Tablespace> = Vec::new();
    let mut line = Vec::new();
    let mut escaped = false;
    let mut finish = |line: &mut Vec<u8>| -> std::result::Result<(), String> {
        if line.is_empty() {
            return Ok(());
        }
        let text = String::from_utf8(std::mem::take(line))
            .map_err(|_| "tablespace_map holds a location that is not UTF-8".to_string())?;
        let (oid, location) = text
            .split_once(' ')
            .ok_or_else(|| format!("tablespace_map line '{text}' is not 'OID LOCATION'"))?;
        let oid: u32 = oid
            .parse()
            .map_err(|_| format!("tablespace_map line '{text}' does not start with an OID"))?;
        if !Path::new(location).is_absolute() {
            return Err(format!(
                "tablespace_map: tablespace {oid} is at '{location}', not an absolute path"
            ));
        }
        if out.iter().any(|t| t.oid == oid) {
            return Err(format!("tablespace_map names tablespace {oid} twice"));
        }
        out.push(Tablespace {
            oid,
            location: PathBuf::from(location),
        });
        Ok(())
    };
    for &b in bytes {
        if escaped {
            line.push(b);
            escaped = false;
        } else if b == b'\\' {
            escaped = true;
        } else if b == b'\n' || b == b'\r' {
            finish(&mut line)?;
        } else {
            line.push(b);
        }
    }
    if escaped {
        return Err("tablespace_map ends inside an escape".into());
    }
    finish(&mut line)?;
    Ok(out)
}

/// A tablespace_map naming these locations, escaped as PostgreSQL escapes.
pub fn encode_map(spaces: &[Tablespace]) -> Vec<u8> {
    let mut out = Vec::new();
    for t in spaces {
        out.extend_from_slice(format!("{} ", t.oid).as_bytes());
        for &b in t.location.as_os_str().as_encoded_bytes() {
            if matches!(b, b'\n' | b'\r' | b'\\') {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'\n');
    }
    out
}

/// `OLDDIR=NEWDIR` as pg_basebackup's `-T` takes it (`\=` is a literal
/// `=`); both absolute.
pub fn parse_mapping(arg: &str) -> Result<(PathBuf, PathBuf)> {
    let mut old = String::new();
    let mut new = String::new();
    let mut seen_equals = false;
    let mut chars = arg.chars().peekable();
    while let Some(c) = chars.next() {
        let side = if seen_equals { &mut new } else { &mut old };
        match c {
            '\\' if chars.peek() == Some(&'=') => {
                side.push('=');
                chars.next();
            }
            '=' if seen_equals => {
                return Err(Error::invalid(format!(
                "tablespace mapping '{arg}' has more than one '=' (write a literal one as '\\=')"
            )))
            }
            '=' => seen_equals = true,
            c => side.push(c),
        }
    }
    if !seen_equals || old.is_empty() || new.is_empty() {
        return Err(Error::invalid(format!(
            "tablespace mapping '{arg}' is not OLDDIR=NEWDIR"
        )));
    }
    for dir in [&old, &new] {
        if !Path::new(dir.as_str()).is_absolute() {
            return Err(Error::invalid(format!(
                "tablespace mapping '{arg}': '{dir}' is not an absolute path"
            )));
        }
    }
    Ok((tidy(&old), tidy(&new)))
}

/// A location without trailing slashes, so `/srv/ts/` names `/srv/ts`.
fn tidy(dir: &str) -> PathBuf {
    Path::new(dir).components().collect()
}

/// Where each tablespace is restored: the NEWDIR of the mapping whose
/// OLDDIR is its location, else a folder named by its OID under
/// `throwaway` when the restore is a throwaway one (drills, single
/// tables), else its own location. A mapping that names no tablespace is
/// refused (a typo would otherwise restore onto the original), as are two
/// tablespaces in one place and, in a throwaway restore, a mapping onto
/// where a tablespace lives.
pub fn relocate(
    spaces: &[Tablespace],
    mapping: &[(PathBuf, PathBuf)],
    throwaway: Option<&Path>,
) -> Result<Vec<Tablespace>> {
    for (old, _) in mapping {
        if !spaces.iter().any(|t| tidy_path(&t.location) == *old) {
            let known: Vec<String> = spaces
                .iter()
                .map(|t| t.location.display().to_string())
                .collect();
            return Err(Error::invalid(format!(
                "no tablespace of this backup is at {} (it has: {})",
                old.display(),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )));
        }
    }
    let mut out: Vec<Tablespace> = Vec::new();
    for t in spaces {
        let mapped = mapping
            .iter()
            .find(|(old, _)| *old == tidy_path(&t.location));
        let location = match (mapped, throwaway) {
            (Some((_, new)), Some(_)) => {
                if let Some(orig) = spaces
                    .iter()
                    .find(|o| new.starts_with(tidy_path(&o.location)))
                {
                    return Err(Error::invalid(format!(
                        "{} is where tablespace {} lives: a drill never writes there",
                        new.display(),
                        orig.oid
                    )));
                }
                new.clone()
            }
            (Some((_, new)), None) => new.clone(),
            (None, Some(root)) => root.join(t.oid.to_string()),
            (None, None) => t.location.clone(),
        };
        if let Some(other) = out.iter().find(|o| o.location == location) {
            return Err(Error::invalid(format!(
                "tablespaces {} and {} would both be restored into {}",
                other.oid,
                t.oid,
                location.display()
            )));
        }
        out.push(Tablespace {
            oid: t.oid,
            location,
        });
    }
    Ok(out)
}

fn tidy_path(p: &Path) -> PathBuf {
    p.components().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(oid: u32, location: &str) -> Tablespace {
        Tablespace {
            oid,
            location: location.into(),
        }
    }

    #[test]
    fn maps_read_and_write_as_postgresql_escapes_them() {
        let spaces = vec![ts(16384, "/srv/fast"), ts(16390, "/srv/odd\\name\nx")];
        let bytes = encode_map(&spaces);
        assert_eq!(bytes, b"16384 /srv/fast\n16390 /srv/odd\\\\name\\\nx\n");
        assert_eq!(parse_map(&bytes).unwrap(), spaces);
        assert_eq!(parse_map(b"").unwrap(), vec![]);
        assert_eq!(
            parse_map(b"1 /a b\r\n\r\n2 /c").unwrap(),
            vec![ts(1, "/a b"), ts(2, "/c")]
        );
        for bad in [
            &b"x /a\n"[..],
            b"1\n",
            b"1 relative\n",
            b"1 /a\n1 /b\n",
            b"1 /a\\",
            b"1 /\xff\n",
        ] {
            assert!(parse_map(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn mappings_take_pg_basebackup_syntax() {
        assert_eq!(
            parse_mapping("/srv/ts/=/tmp/new").unwrap(),
            ("/srv/ts".into(), "/tmp/new".into())
        );
        assert_eq!(
            parse_mapping("/srv/a\\=b=/tmp/c").unwrap(),
            ("/srv/a=b".into(), "/tmp/c".into())
        );
        for bad in ["/a", "=/b", "/a=", "a=/b", "/a=b", "/a=/b=/c"] {
            assert!(parse_mapping(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn relocation_follows_the_mapping_and_refuses_what_would_go_wrong() {
        let spaces = vec![ts(1, "/srv/one"), ts(2, "/srv/two/")];
        let map = vec![(PathBuf::from("/srv/two"), PathBuf::from("/new/two"))];
        assert_eq!(
            relocate(&spaces, &map, None).unwrap(),
            vec![ts(1, "/srv/one"), ts(2, "/new/two")]
        );
        assert_eq!(
            relocate(&spaces, &map, Some(Path::new("/tmp/drill/ts"))).unwrap(),
            vec![ts(1, "/tmp/drill/ts/1"), ts(2, "/new/two")]
        );
        let typo = vec![(PathBuf::from("/srv/tow"), PathBuf::from("/new"))];
        let e = relocate(&spaces, &typo, None).unwrap_err();
        assert!(e
            .to_string()
            .contains("no tablespace of this backup is at /srv/tow"));
        let onto = vec![(PathBuf::from("/srv/two"), PathBuf::from("/srv/one/x"))];
        assert!(relocate(&spaces, &onto, None).is_ok());
        assert!(relocate(&spaces, &onto, Some(Path::new("/tmp"))).is_err());
        let same = vec![(PathBuf::from("/srv/two"), PathBuf::from("/srv/one"))];
        assert!(relocate(&spaces, &same, None).is_err());
    }
}
