//! Largest stored size of each whole object kind (format-spec "Limits").
//! A reader checks an object's size before it reads any of its bytes, so a
//! huge file planted in the repository costs neither memory nor time.

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

/// Room for the magic, the sealed box's header and tag and the payload
/// header around a body at its plaintext cap.
const SEAL_OVERHEAD: u64 = 64 * KIB;

pub const MAX_CONFIG_OBJECT: u64 = 64 * KIB;
pub const MAX_KEY_OBJECT: u64 = 64 * KIB;
pub const MAX_LOCK_OBJECT: u64 = 64 * KIB;
pub const MAX_SNAPSHOT_OBJECT: u64 = 64 * MIB;
pub const MAX_DRILL_OBJECT: u64 = 16 * MIB;
pub const MAX_VERIFIED_OBJECT: u64 = 256 * MIB;
/// A marks object lists packs, like an index without its blobs.
pub const MAX_MARKS_OBJECT: u64 = 256 * MIB;
pub const MAX_RUN_OBJECT: u64 = 16 * MIB;
/// An index body may reach the plaintext cap of any non-blob payload.
pub const MAX_INDEX_OBJECT: u64 = super::payload::MAX_OBJECT_PLAINTEXT as u64 + SEAL_OVERHEAD;
/// An archived WAL file: its largest content plus two sealed boxes' overhead.
pub const MAX_WAL_OBJECT: u64 = super::wal::MAX_WAL_FILE + 2 * SEAL_OVERHEAD;
