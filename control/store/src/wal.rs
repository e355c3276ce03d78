//! Write-ahead log framing: `[u32 length][u32 crc32(payload)][payload]`, little endian, the
//! payload a protobuf `WalRecord`.
//!
//! Reading tells a torn tail (the last write of a crash, never acknowledged: it is cut off)
//! from damage in the middle of the log (a bad record followed by more data: refused, because
//! dropping it would silently lose acknowledged writes).

use prost::Message;

use crate::record::WalRecord;

const HEADER: usize = 8;

pub fn encode_record(rec: &WalRecord, out: &mut Vec<u8>) {
    let len = rec.encoded_len();
    out.reserve(HEADER + len);
    let start = out.len();
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    rec.encode(out).expect("Vec grows as needed");
    let crc = crc32fast::hash(&out[start + HEADER..]);
    out[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
}

#[derive(Debug)]
pub struct ReadLog {
    pub records: Vec<WalRecord>,
    /// Bytes of whole, valid records; anything after is a torn tail.
    pub valid_len: usize,
}

/// Decodes a WAL file. `Err` means damage that is not a torn tail.
pub fn decode_log(data: &[u8]) -> Result<ReadLog, String> {
    let mut records = Vec::new();
    let mut off = 0;
    while off < data.len() {
        let rest = &data[off..];
        if rest.len() < HEADER {
            break; // torn header
        }
        let len = u32::from_le_bytes(rest[0..4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().unwrap());
        if len == 0 && crc == 0 {
            // Zero-filled tail (a crash after the file grew but before data reached the disk).
            if rest.iter().all(|b| *b == 0) {
                break;
            }
            return Err(format!("zeroed record at offset {off} followed by data"));
        }
        if rest.len() < HEADER + len {
            break; // torn payload
        }
        let payload = &rest[HEADER..HEADER + len];
        let is_last = rest.len() == HEADER + len;
        if crc32fast::hash(payload) != crc {
            if is_last {
                break; // a torn final write
            }
            return Err(format!("checksum mismatch in the record at offset {off}"));
        }
        let rec = WalRecord::decode(payload)
            .map_err(|e| format!("undecodable record at offset {off}: {e}"))?;
        records.push(rec);
        off += HEADER + len;
    }
    Ok(ReadLog {
        records,
        valid_len: off,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::WalWrite;

    fn sample(n: u64) -> Vec<u8> {
        let mut buf = Vec::new();
        for lsn in 1..=n {
            let rec = WalRecord {
                lsn,
                revision: lsn as i64 + 1,
                writes: vec![WalWrite {
                    delete: false,
                    key: format!("k{lsn}").into(),
                    value: vec![b'v'; 100].into(),
                    lease: 0,
                }],
                ..Default::default()
            };
            encode_record(&rec, &mut buf);
        }
        buf
    }

    #[test]
    fn round_trip() {
        let buf = sample(5);
        let log = decode_log(&buf).unwrap();
        assert_eq!(log.records.len(), 5);
        assert_eq!(log.valid_len, buf.len());
        assert_eq!(log.records[4].lsn, 5);
    }

    #[test]
    fn every_torn_tail_is_cut_at_a_record_boundary() {
        let full = sample(3);
        let two = sample(2).len();
        for cut in two..full.len() {
            let log = decode_log(&full[..cut]).unwrap();
            assert_eq!(log.records.len(), 2, "cut at {cut}");
            assert_eq!(log.valid_len, two);
        }
    }

    #[test]
    fn garbage_in_the_last_record_is_a_torn_write() {
        let mut buf = sample(3);
        let n = buf.len();
        buf[n - 3] ^= 0xff;
        let log = decode_log(&buf).unwrap();
        assert_eq!(log.records.len(), 2);
    }

    #[test]
    fn zero_filled_tail_is_a_torn_write() {
        let mut buf = sample(2);
        buf.extend_from_slice(&[0; 4096]);
        let log = decode_log(&buf).unwrap();
        assert_eq!(log.records.len(), 2);
    }

    #[test]
    fn damage_before_the_tail_is_refused() {
        let mut buf = sample(3);
        buf[20] ^= 0xff; // inside the first record's payload
        let err = decode_log(&buf).unwrap_err();
        assert!(err.contains("checksum mismatch"), "{err}");
    }
}
