//! The bbolt file format: what `etcdctl snapshot save` writes and `etcdctl snapshot
//! status|restore` (etcdutl in 3.6) read. skiff's own checkpoints stay in its compact protobuf
//! format (`snapshot.rs`); bbolt is the exchange format with etcd — a backup taken from skiff
//! restores a real etcd member, and an etcd snapshot restores a skiff store.
//!
//! Read from bbolt 1.4's sources (go.etcd.io/bbolt `internal/common`), never copied:
//! - Every page starts with a 16-byte header: `id u64 | flags u16 | count u16 | overflow u32`
//!   (little-endian, as bbolt writes on the machines etcd supports). A page with `overflow` n
//!   spans n + 1 consecutive pages.
//! - Pages 0 and 1 are meta pages (the newer valid one, by `txid`, is the database's state):
//!   `magic 0xED0CDAED | version 2 | page size | flags | root bucket (root pgid, sequence) |
//!   freelist pgid | high-water pgid | txid | checksum` (FNV-64a of the fields before it).
//! - A leaf page holds `count` 16-byte elements `flags u32 | pos u32 | ksize u32 | vsize u32`;
//!   `pos` is the distance from the element to its key, the value follows the key. Flag 1 marks
//!   a nested bucket, whose value is `root pgid u64 | sequence u64`, followed by the bucket's
//!   whole page when it is stored inline (root 0).
//! - A branch page holds 16-byte elements `pos u32 | ksize u32 | pgid u64`: each child's first key.
//!
//! `bbolt check` (which etcdutl 3.6 runs in `snapshot status`) requires every page below the
//! high-water mark to be reachable exactly once or free, and keys strictly ordered: [`write`]
//! lays pages out that way, [`read`] checks bounds and order on everything it follows so a
//! damaged or foreign file is an error, never a panic.

pub mod read;
pub mod write;

pub use read::Db;

/// A key/value pair of a bucket, borrowed.
pub type Entry<'a> = (&'a [u8], &'a [u8]);
/// A bucket of the root bucket: its name and its pairs in key order.
pub type Bucket<'a> = (&'a [u8], Vec<Entry<'a>>);
pub use write::write;

/// Page size of the files skiff writes (bbolt's default on Linux x86-64 and arm64).
pub const PAGE_SIZE: usize = 4096;

const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;
const PAGE_HEADER: usize = 16;
const ELEMENT: usize = 16;
const BUCKET_HEADER: usize = 16;
/// Meta fields before the checksum (the bytes the checksum covers).
const META_SUMMED: usize = 56;

const BRANCH_PAGE: u16 = 0x01;
const LEAF_PAGE: u16 = 0x02;
const META_PAGE: u16 = 0x04;
const FREELIST_PAGE: u16 = 0x10;
const BUCKET_LEAF: u32 = 0x01;

/// FNV-64a, bbolt's meta checksum.
fn fnv64a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Whether `data` starts like a bbolt file (the first meta page's magic).
pub fn is_bbolt(data: &[u8]) -> bool {
    data.len() >= PAGE_HEADER + 8
        && u32::from_le_bytes(data[PAGE_HEADER..PAGE_HEADER + 4].try_into().unwrap()) == MAGIC
}

#[cfg(test)]
mod tests;
