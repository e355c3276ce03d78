//! Snapshot files. skiff's checkpoints on disk use the format below (compact, written and read
//! in one pass); `Maintenance/Snapshot` sends etcd's format ([`etcd`]: a bbolt database and its
//! sha256), so `etcdctl snapshot save|status|restore` work on it and a backup of skiff restores a
//! real etcd member. `skiff store restore` reads both ([`decode_any`]).
//!
//! ```text
//! "SKIFFSNP" | u32 format (1) | u64 payload length | payload (protobuf SnapshotState)
//!   | zero padding to a multiple of 512 bytes | sha256 of everything before (32 bytes)
//! ```
//! The padding and trailing digest make the file pass etcdctl 3.4's `snapshot save` check
//! (size % 512 == 32, the layout of a bbolt file followed by its sha256).

use prost::Message;
use sha2::{Digest, Sha256};

use crate::record::SnapshotState;

pub mod etcd;

const MAGIC: &[u8; 8] = b"SKIFFSNP";
const FORMAT: u32 = 1;
const PREFIX: usize = 8 + 4 + 8;
const DIGEST: usize = 32;

pub fn encode_snapshot(state: &SnapshotState) -> Vec<u8> {
    let len = state.encoded_len();
    let body = (PREFIX + len).div_ceil(512) * 512;
    let mut out = Vec::with_capacity(body + DIGEST);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT.to_le_bytes());
    out.extend_from_slice(&(len as u64).to_le_bytes());
    state.encode(&mut out).expect("Vec grows as needed");
    out.resize(body, 0);
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    out
}

pub fn decode_snapshot(data: &[u8]) -> Result<SnapshotState, String> {
    if data.len() < PREFIX + DIGEST || data.len() % 512 != DIGEST {
        return Err(format!(
            "not a skiff snapshot: {} bytes is not a 512-byte multiple plus a 32-byte digest",
            data.len()
        ));
    }
    let (body, digest) = data.split_at(data.len() - DIGEST);
    if Sha256::digest(body).as_slice() != digest {
        return Err("sha256 mismatch: the snapshot is damaged or truncated".into());
    }
    if &body[..8] != MAGIC {
        return Err("neither an etcd snapshot nor a skiff checkpoint (bad magic)".into());
    }
    let format = u32::from_le_bytes(body[8..12].try_into().unwrap());
    if format != FORMAT {
        return Err(format!("unsupported snapshot format {format}"));
    }
    let len = u64::from_le_bytes(body[12..20].try_into().unwrap()) as usize;
    if len > body.len() - PREFIX {
        return Err("snapshot payload length exceeds the file".into());
    }
    SnapshotState::decode(&body[PREFIX..PREFIX + len])
        .map_err(|e| format!("undecodable snapshot payload: {e}"))
}

/// An etcd snapshot (or a member's bbolt db) or a skiff checkpoint file, by its content.
pub fn decode_any(data: &[u8]) -> Result<SnapshotState, String> {
    if crate::bbolt::is_bbolt(data) {
        etcd::decode(data)
    } else {
        decode_snapshot(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{LeaseRecord, SnapshotKey, SnapshotVersion};

    fn state() -> SnapshotState {
        SnapshotState {
            lsn: 7,
            revision: 9,
            compact_revision: 3,
            keys: vec![SnapshotKey {
                key: "a".into(),
                versions: vec![SnapshotVersion {
                    create_revision: 4,
                    mod_revision: 5,
                    version: 2,
                    lease: 0,
                    value: "x".into(),
                }],
            }],
            leases: vec![LeaseRecord { id: 1, ttl: 10 }],
        }
    }

    #[test]
    fn round_trip_and_etcdctl_size_rule() {
        let bytes = encode_snapshot(&state());
        assert_eq!(bytes.len() % 512, 32);
        assert_eq!(decode_snapshot(&bytes).unwrap(), state());
    }

    #[test]
    fn damage_is_detected() {
        let mut bytes = encode_snapshot(&state());
        bytes[30] ^= 1;
        assert!(decode_snapshot(&bytes).unwrap_err().contains("sha256"));
        let bytes = encode_snapshot(&state());
        assert!(decode_snapshot(&bytes[..bytes.len() - 512]).is_err());
    }
}
