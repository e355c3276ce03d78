//! The SPDY/3.1 framing kubectl's port-forward speaks (through moby/spdystream): control
//! frames (SYN_STREAM, SYN_REPLY, RST_STREAM, PING, GOAWAY, …), data frames, and name/value
//! header blocks compressed with one zlib stream per direction seeded with SPDY/3's fixed
//! dictionary. Only what a server side of port-forward needs: flow control is not enforced
//! (spdystream neither sends nor honours WINDOW_UPDATE).

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

pub const SYN_STREAM: u16 = 1;
pub const SYN_REPLY: u16 = 2;
pub const RST_STREAM: u16 = 3;
pub const PING: u16 = 6;
pub const GOAWAY: u16 = 7;
pub const FLAG_FIN: u8 = 0x01;

/// SPDY/3's header-compression dictionary (draft 3, section 2.6.10.1): length-prefixed header
/// names and values, then a run of common values.
fn dictionary() -> Vec<u8> {
    const WORDS: [&str; 65] = [
        "options",
        "head",
        "post",
        "put",
        "delete",
        "trace",
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "accept-ranges",
        "age",
        "allow",
        "authorization",
        "cache-control",
        "connection",
        "content-base",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-md5",
        "content-range",
        "content-type",
        "date",
        "etag",
        "expect",
        "expires",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "last-modified",
        "location",
        "max-forwards",
        "pragma",
        "proxy-authenticate",
        "proxy-authorization",
        "range",
        "referer",
        "retry-after",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "vary",
        "via",
        "warning",
        "www-authenticate",
        "method",
        "get",
        "status",
        "200 OK",
        "version",
        "HTTP/1.1",
        "url",
        "public",
        "set-cookie",
        "keep-alive",
        "origin",
    ];
    const TAIL: &str = concat!(
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
        "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request",
        "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented",
        "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
        "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,",
        "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=",
        "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
    );
    let mut d = Vec::with_capacity(1423);
    for w in WORDS {
        d.extend_from_slice(&(w.len() as u32).to_be_bytes());
        d.extend_from_slice(w.as_bytes());
    }
    d.extend_from_slice(TAIL.as_bytes());
    d
}

/// A parsed frame.
#[derive(Debug, PartialEq)]
pub enum Frame {
    Control {
        kind: u16,
        flags: u8,
        body: Vec<u8>,
    },
    Data {
        stream: u32,
        flags: u8,
        data: Vec<u8>,
    },
}

/// Takes one whole frame off the front of `buf`, if there is one.
pub fn parse(buf: &mut Vec<u8>) -> Option<Frame> {
    if buf.len() < 8 {
        return None;
    }
    let length = u32::from_be_bytes([0, buf[5], buf[6], buf[7]]) as usize;
    if buf.len() < 8 + length {
        return None;
    }
    let head: Vec<u8> = buf.drain(..8).collect();
    let body: Vec<u8> = buf.drain(..length).collect();
    let flags = head[4];
    if head[0] & 0x80 != 0 {
        Some(Frame::Control {
            kind: u16::from_be_bytes([head[2], head[3]]),
            flags,
            body,
        })
    } else {
        Some(Frame::Data {
            stream: u32::from_be_bytes([head[0], head[1], head[2], head[3]]) & 0x7fff_ffff,
            flags,
            data: body,
        })
    }
}

pub fn control(kind: u16, flags: u8, body: &[u8]) -> Vec<u8> {
    let mut f = vec![0x80, 0x03];
    f.extend_from_slice(&kind.to_be_bytes());
    f.push(flags);
    f.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    f.extend_from_slice(body);
    f
}

pub fn data(stream: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = (stream & 0x7fff_ffff).to_be_bytes().to_vec();
    f.push(flags);
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    f.extend_from_slice(payload);
    f
}

/// The two zlib streams of a connection (compression state carries across frames).
pub struct HeaderCodec {
    deflate: Compress,
    inflate: Decompress,
    dictionary: Vec<u8>,
}

impl Default for HeaderCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderCodec {
    pub fn new() -> HeaderCodec {
        let dictionary = dictionary();
        let mut deflate = Compress::new(Compression::default(), true);
        // The zlib dictionary is set right after init, before any input.
        let _ = deflate.set_dictionary(&dictionary);
        HeaderCodec {
            deflate,
            inflate: Decompress::new(true),
            dictionary,
        }
    }

    /// A compressed name/value block (`u32 count, (u32 len, name, u32 len, value)*`).
    pub fn encode(&mut self, headers: &[(&str, &str)]) -> Result<Vec<u8>, String> {
        let mut plain = (headers.len() as u32).to_be_bytes().to_vec();
        for (k, v) in headers {
            plain.extend_from_slice(&(k.len() as u32).to_be_bytes());
            plain.extend_from_slice(k.as_bytes());
            plain.extend_from_slice(&(v.len() as u32).to_be_bytes());
            plain.extend_from_slice(v.as_bytes());
        }
        let mut out = Vec::with_capacity(plain.len() + 64);
        let start = self.deflate.total_in();
        loop {
            let consumed = (self.deflate.total_in() - start) as usize;
            out.reserve(256);
            self.deflate
                .compress_vec(&plain[consumed..], &mut out, FlushCompress::Sync)
                .map_err(|e| format!("deflate: {e}"))?;
            // Done once all input is in and the flush left room to spare.
            if (self.deflate.total_in() - start) as usize == plain.len()
                && out.len() < out.capacity()
            {
                return Ok(out);
            }
        }
    }

    /// The name/value pairs of a compressed block (names lower-case, values joined by NUL
    /// kept as one string).
    pub fn decode(&mut self, block: &[u8]) -> Result<Vec<(String, String)>, String> {
        let mut plain = Vec::with_capacity(block.len() * 4 + 64);
        let start = self.inflate.total_in();
        loop {
            let consumed = (self.inflate.total_in() - start) as usize;
            plain.reserve(1024);
            match self
                .inflate
                .decompress_vec(&block[consumed..], &mut plain, FlushDecompress::Sync)
            {
                Ok(Status::Ok) | Ok(Status::BufError) | Ok(Status::StreamEnd) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate
                        .set_dictionary(&self.dictionary)
                        .map_err(|e| format!("inflate dictionary: {e}"))?;
                    continue;
                }
                Err(e) => return Err(format!("inflate: {e}")),
            }
            if (self.inflate.total_in() - start) as usize == block.len()
                && plain.len() < plain.capacity()
            {
                break;
            }
        }
        read_block(&plain)
    }
}

/// A decompressed name/value block.
fn read_block(plain: &[u8]) -> Result<Vec<(String, String)>, String> {
    let mut at = 0usize;
    let next_u32 = |at: &mut usize| -> Result<usize, String> {
        let b = plain.get(*at..*at + 4).ok_or("truncated header block")?;
        *at += 4;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let count = next_u32(&mut at)?;
    let mut pairs = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let mut text = [String::new(), String::new()];
        for slot in text.iter_mut() {
            let len = next_u32(&mut at)?;
            let bytes = plain.get(at..at + len).ok_or("truncated header block")?;
            at += len;
            *slot = String::from_utf8_lossy(bytes).into_owned();
        }
        let [name, value] = text;
        pairs.push((name.to_lowercase(), value));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_is_spdy3s() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        assert_eq!(&d[..11], b"\x00\x00\x00\x07options");
        assert!(d.ends_with(b",*,enq=0."));
    }

    #[test]
    fn header_blocks_round_trip_across_frames() {
        let mut a = HeaderCodec::new();
        let mut b = HeaderCodec::new();
        for round in 0..3 {
            let port = format!("{}", 8080 + round);
            let block = a
                .encode(&[("streamtype", "data"), ("port", &port), ("requestid", "0")])
                .unwrap();
            let pairs = b.decode(&block).unwrap();
            assert_eq!(pairs[1], ("port".to_string(), port));
        }
    }

    #[test]
    fn frames_parse_back() {
        let mut buf = control(PING, 0, &7u32.to_be_bytes());
        buf.extend(data(3, FLAG_FIN, b"hi"));
        buf.extend_from_slice(&[0x80, 0x03]);
        assert_eq!(
            parse(&mut buf),
            Some(Frame::Control {
                kind: PING,
                flags: 0,
                body: 7u32.to_be_bytes().to_vec()
            })
        );
        assert_eq!(
            parse(&mut buf),
            Some(Frame::Data {
                stream: 3,
                flags: FLAG_FIN,
                data: b"hi".to_vec()
            })
        );
        assert_eq!(parse(&mut buf), None);
        assert_eq!(buf.len(), 2);
    }
}
