//! Reading the protobuf wire format: fields as tag and raw value, with
//! prost's varint and key decoding underneath. Errors are short texts that
//! the decoder puts into [`ProtobufError::Malformed`] with the message name.

use prost::encoding::{decode_key, decode_varint, WireType, MAX_TAG};

use super::ProtobufError;

/// One field value as the wire carries it, not yet given a type.
#[derive(Debug, Clone, Copy)]
pub(super) enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
}

pub(super) struct Reader<'a> {
    /// What is left to read.
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { rest: buf }
    }

    pub(super) fn at_end(&self) -> bool {
        self.rest.is_empty()
    }

    pub(super) fn varint(&mut self) -> Result<u64, &'static str> {
        let before = self.rest;
        decode_varint(&mut self.rest).map_err(|_| varint_error(before))
    }

    pub(super) fn take(&mut self, len: usize) -> Result<&'a [u8], &'static str> {
        if len > self.rest.len() {
            return Err("length past the end");
        }
        let (bytes, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(bytes)
    }

    /// The next `N` bytes, for fixed-width values (little endian on the wire).
    pub(super) fn fixed<const N: usize>(&mut self) -> Result<[u8; N], &'static str> {
        self.take(N)?.try_into().map_err(|_| "length past the end")
    }

    /// The next field's tag and value.
    pub(super) fn field(&mut self) -> Result<(u32, Wire<'a>), &'static str> {
        let before = self.rest;
        let (tag, wire_type) = decode_key(&mut self.rest).map_err(|_| key_error(before))?;
        let value = match wire_type {
            WireType::Varint => Wire::Varint(self.varint()?),
            WireType::SixtyFourBit => Wire::Fixed64(u64::from_le_bytes(self.fixed()?)),
            WireType::LengthDelimited => {
                let len = self.varint()?;
                let len = usize::try_from(len).map_err(|_| "length past the end")?;
                Wire::Bytes(self.take(len)?)
            }
            WireType::ThirtyTwoBit => Wire::Fixed32(u32::from_le_bytes(self.fixed()?)),
            WireType::StartGroup | WireType::EndGroup => return Err("groups are not supported"),
        };
        Ok((tag, value))
    }
}

/// Why prost refused the varint at the start of `bytes`. A varint is at most
/// ten bytes: shorter input without a last byte ran out, and at ten bytes the
/// value does not fit 64 bits.
fn varint_error(bytes: &[u8]) -> &'static str {
    if bytes.len() < 10 {
        "truncated varint"
    } else {
        "varint overflows 64 bits"
    }
}

/// Why prost refused the field key at the start of `bytes`.
fn key_error(bytes: &[u8]) -> &'static str {
    let mut rest = bytes;
    match decode_varint(&mut rest) {
        Err(_) => varint_error(bytes),
        Ok(key) if key >> 3 == 0 || key >> 3 > u64::from(MAX_TAG) => "invalid field number",
        Ok(_) => "invalid wire type",
    }
}

pub(super) fn malformed(message: &str, reason: impl Into<String>) -> ProtobufError {
    ProtobufError::Malformed {
        message: message.to_string(),
        reason: reason.into(),
    }
}

/// All fields of a message given as one or more encoded chunks. Proto
/// semantics for a non-repeated message field that occurs several times is
/// to merge the occurrences, which equals decoding their concatenation; the
/// chunks are read in order instead of being copied together.
pub(super) fn scan<'a>(
    message: &str,
    chunks: &[&'a [u8]],
) -> Result<Vec<(u32, Wire<'a>)>, ProtobufError> {
    let mut fields = Vec::new();
    for chunk in chunks {
        let mut reader = Reader::new(chunk);
        while !reader.at_end() {
            fields.push(reader.field().map_err(|e| malformed(message, e))?);
        }
    }
    Ok(fields)
}

/// The last varint with `tag` (proto: the last occurrence wins).
pub(super) fn last_varint(
    message: &str,
    fields: &[(u32, Wire<'_>)],
    tag: u32,
) -> Result<Option<u64>, ProtobufError> {
    match fields.iter().rev().find(|(t, _)| *t == tag) {
        None => Ok(None),
        Some((_, Wire::Varint(v))) => Ok(Some(*v)),
        Some(_) => Err(malformed(
            message,
            format!("field {tag} has the wrong wire type"),
        )),
    }
}

pub(super) fn last_bytes<'a>(
    message: &str,
    fields: &[(u32, Wire<'a>)],
    tag: u32,
) -> Result<Option<&'a [u8]>, ProtobufError> {
    match fields.iter().rev().find(|(t, _)| *t == tag) {
        None => Ok(None),
        Some((_, Wire::Bytes(b))) => Ok(Some(*b)),
        Some(_) => Err(malformed(
            message,
            format!("field {tag} has the wrong wire type"),
        )),
    }
}

pub(super) fn all_bytes<'a>(
    message: &str,
    fields: &[(u32, Wire<'a>)],
    tag: u32,
) -> Result<Vec<&'a [u8]>, ProtobufError> {
    let mut out = Vec::new();
    for (t, value) in fields {
        if *t != tag {
            continue;
        }
        match value {
            Wire::Bytes(b) => out.push(*b),
            _ => {
                return Err(malformed(
                    message,
                    format!("field {tag} has the wrong wire type"),
                ))
            }
        }
    }
    Ok(out)
}

pub(super) fn utf8<'a>(message: &str, bytes: &'a [u8]) -> Result<&'a str, ProtobufError> {
    std::str::from_utf8(bytes).map_err(|_| malformed(message, "string is not valid UTF-8"))
}

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    use prost::encoding::{encode_key, encode_varint};

    fn read_all(bytes: &[u8]) -> Result<Vec<(u32, String)>, &'static str> {
        let mut reader = Reader::new(bytes);
        let mut fields = Vec::new();
        while !reader.at_end() {
            let (tag, wire) = reader.field()?;
            fields.push((tag, format!("{wire:?}")));
        }
        Ok(fields)
    }

    #[test]
    fn fields_of_every_wire_type() {
        let mut buf = Vec::new();
        encode_key(1, WireType::Varint, &mut buf);
        encode_varint(u64::MAX, &mut buf);
        encode_key(2, WireType::SixtyFourBit, &mut buf);
        buf.extend(7u64.to_le_bytes());
        encode_key(3, WireType::LengthDelimited, &mut buf);
        encode_varint(2, &mut buf);
        buf.extend(b"hi");
        encode_key(MAX_TAG, WireType::ThirtyTwoBit, &mut buf);
        buf.extend(9u32.to_le_bytes());
        assert_eq!(
            read_all(&buf).unwrap(),
            [
                (1, format!("Varint({})", u64::MAX)),
                (2, "Fixed64(7)".to_string()),
                (3, "Bytes([104, 105])".to_string()),
                (MAX_TAG, "Fixed32(9)".to_string()),
            ]
        );
    }

    #[test]
    fn malformed_wire_is_named() {
        assert_eq!(read_all(&[0x08, 0x80]), Err("truncated varint"));
        assert_eq!(read_all(&[0x80]), Err("truncated varint"));
        let mut too_long = vec![0x08];
        too_long.extend([0xff; 9]);
        too_long.push(0x02);
        assert_eq!(read_all(&too_long), Err("varint overflows 64 bits"));
        assert_eq!(
            read_all(&[0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80]),
            Err("varint overflows 64 bits")
        );
        assert_eq!(read_all(&[0x00]), Err("invalid field number"));
        // Field number 2^29 does not fit a key.
        let mut key = Vec::new();
        encode_varint(1 << 32, &mut key);
        assert_eq!(read_all(&key), Err("invalid field number"));
        assert_eq!(read_all(&[0x0e]), Err("invalid wire type"));
        assert_eq!(read_all(&[0x0b]), Err("groups are not supported"));
        assert_eq!(read_all(&[0x0c]), Err("groups are not supported"));
        assert_eq!(read_all(&[0x0a, 0x05, 0x0a]), Err("length past the end"));
        assert_eq!(read_all(&[0x09, 1, 2, 3]), Err("length past the end"));
        assert_eq!(read_all(&[0x0d, 1, 2, 3]), Err("length past the end"));
    }
}
