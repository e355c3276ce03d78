//! Accepting the `:authority` that etcd's Go clients send when an endpoint carries a scheme.
//!
//! `etcdctl --endpoints=http://127.0.0.1:2379 endpoint status` (and `endpoint hashkv`, and
//! kube-apiserver's `--etcd-servers=http://…` health checks) dial each endpoint as its own gRPC
//! target `passthrough:///http://127.0.0.1:2379`, and grpc-go then sends the whole endpoint,
//! scheme included, as the HTTP/2 `:authority` of every request. Go's HTTP/2 server (and so real
//! etcd) accepts any authority string; h2, under tonic, parses it as a URI authority, fails on
//! the `/`, and resets the stream with PROTOCOL_ERROR before the request reaches the service
//! (`h2::server: malformed headers: malformed authority (b"http://127.0.0.1:2379")`). h2's
//! maintainers keep that strictness on purpose (hyperium/h2#525), so the fix lives here, in
//! front of h2: [`AuthorityFix`] wraps each accepted connection, reads the client's frames, and
//! rewrites an authority of the form `scheme://host:port[/…]` to `host:port` — what the client
//! meant, and what Go's server would report as the request's host. Over a Unix socket grpc-go
//! sends the socket's path (`/run/skiff/store.sock`) or `unix:///…` the same way; those become
//! `localhost`.
//!
//! To rewrite one header the whole HPACK state has to be followed: a header block is decoded
//! against the client's dynamic table, which every block may change. So every HEADERS (and
//! CONTINUATION) frame is decoded with loona-hpack. A connection whose authorities are all fine
//! forwards its frames byte for byte (h2 decodes the same bytes the client encoded). The first
//! block that needs a rewrite switches the connection to re-encoding: from then on each block is
//! encoded anew with an encoder paired to h2's decoder, and that first re-encoded block starts
//! with two dynamic table size updates (0, then 4096) that empty h2's table so both sides start
//! from the same state. DATA and every other frame pass through unchanged. Anything this layer
//! cannot follow (a connection that is not HTTP/2 with prior knowledge, an oversized frame, a
//! block that does not decode) switches it to plain forwarding, so h2 sees exactly what the
//! client sent and answers it as it would have.
//!
//! Cost: one frame-header parse per frame and one HPACK decode per request header block
//! (about a microsecond for a gRPC request's ten headers); DATA is copied once more.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER_LEN: usize = 9;
/// SETTINGS_MAX_FRAME_SIZE's default, which h2 (under tonic) keeps: the largest frame this
/// layer writes and the largest it expects.
const MAX_FRAME_LEN: usize = 16_384;
/// A header block larger than this is left to h2 to refuse.
const MAX_BLOCK_LEN: usize = 1 << 20;
/// SETTINGS_HEADER_TABLE_SIZE's default, which h2's decoder keeps.
const TABLE_SIZE: usize = 4096;

const TYPE_HEADERS: u8 = 0x1;
const TYPE_CONTINUATION: u8 = 0x9;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;

/// A connection whose client-sent `:authority` values are made acceptable to h2.
pub struct AuthorityFix<S> {
    inner: S,
    /// Bytes read from the client, not yet looked at.
    input: BytesMut,
    /// Bytes ready for h2.
    output: BytesMut,
    state: State,
    eof: bool,
}

enum State {
    /// Waiting for the 24-byte client preface.
    Preface,
    Frames(Box<Frames>),
    /// Everything is forwarded as read.
    Forward,
}

struct Frames {
    decoder: loona_hpack::Decoder<'static>,
    /// Set once a block needed a rewrite: later blocks are encoded anew.
    encoder: Option<loona_hpack::Encoder<'static>>,
    /// A header block waiting for its CONTINUATION frames.
    pending: Option<PendingBlock>,
}

struct PendingBlock {
    stream_id: u32,
    /// END_STREAM and PRIORITY of the HEADERS frame that opened the block.
    flags: u8,
    priority: Option<[u8; 5]>,
    fragment: Vec<u8>,
    /// The frames as received, forwarded as they are when no rewrite is needed.
    raw: Vec<u8>,
}

impl<S> AuthorityFix<S> {
    pub fn new(inner: S) -> AuthorityFix<S> {
        AuthorityFix {
            inner,
            input: BytesMut::with_capacity(8192),
            output: BytesMut::with_capacity(8192),
            state: State::Preface,
            eof: false,
        }
    }

    /// Moves what can be decided from `input` to `output`.
    fn process(&mut self) {
        loop {
            match &mut self.state {
                State::Forward => {
                    let all = self.input.split();
                    self.output.unsplit(all);
                    return;
                }
                State::Preface => {
                    let have = self.input.len().min(PREFACE.len());
                    if self.input[..have] != PREFACE[..have] {
                        self.state = State::Forward;
                        continue;
                    }
                    if have < PREFACE.len() {
                        return;
                    }
                    let preface = self.input.split_to(PREFACE.len());
                    self.output.unsplit(preface);
                    let mut decoder = loona_hpack::Decoder::new();
                    decoder.set_max_table_size(TABLE_SIZE);
                    self.state = State::Frames(Box::new(Frames {
                        decoder,
                        encoder: None,
                        pending: None,
                    }));
                }
                State::Frames(frames) => {
                    if self.input.len() < FRAME_HEADER_LEN {
                        return;
                    }
                    let header = FrameHeader::parse(&self.input[..FRAME_HEADER_LEN]);
                    if header.len > MAX_FRAME_LEN {
                        self.forward_from_here();
                        continue;
                    }
                    if self.input.len() < FRAME_HEADER_LEN + header.len {
                        return;
                    }
                    let frame = self.input.split_to(FRAME_HEADER_LEN + header.len);
                    match frames.frame(header, &frame, &mut self.output) {
                        Ok(()) => {}
                        Err(raw) => {
                            // Not followable: h2 gets the original bytes and judges them.
                            self.output.put_slice(&raw);
                            self.state = State::Forward;
                        }
                    }
                }
            }
        }
    }

    /// Gives up following frames: what is buffered (an unfinished block first) goes to h2 as
    /// received.
    fn forward_from_here(&mut self) {
        if let State::Frames(frames) = &mut self.state {
            if let Some(block) = frames.pending.take() {
                self.output.put_slice(&block.raw);
            }
        }
        self.state = State::Forward;
    }
}

#[derive(Clone, Copy)]
struct FrameHeader {
    len: usize,
    kind: u8,
    flags: u8,
    stream_id: u32,
}

impl FrameHeader {
    fn parse(b: &[u8]) -> FrameHeader {
        FrameHeader {
            len: (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]),
            kind: b[3],
            flags: b[4],
            stream_id: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
        }
    }

    fn write(len: usize, kind: u8, flags: u8, stream_id: u32, out: &mut BytesMut) {
        out.put_uint(len as u64, 3);
        out.put_u8(kind);
        out.put_u8(flags);
        out.put_u32(stream_id);
    }
}

impl Frames {
    /// Handles one whole frame. `Err` carries the bytes h2 must get as they were received (an
    /// unfinished block's frames and this one) once the connection can no longer be followed.
    fn frame(
        &mut self,
        header: FrameHeader,
        frame: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), Vec<u8>> {
        let payload = &frame[FRAME_HEADER_LEN..];
        if let Some(block) = &mut self.pending {
            // RFC 9113 §6.10: only CONTINUATION of the same stream may follow.
            if header.kind != TYPE_CONTINUATION || header.stream_id != block.stream_id {
                let mut raw = self.pending.take().map(|b| b.raw).unwrap_or_default();
                raw.extend_from_slice(frame);
                return Err(raw);
            }
            block.fragment.extend_from_slice(payload);
            block.raw.extend_from_slice(frame);
            if block.fragment.len() > MAX_BLOCK_LEN {
                return Err(self.pending.take().map(|b| b.raw).unwrap_or_default());
            }
            if header.flags & FLAG_END_HEADERS != 0 {
                let block = self.pending.take().expect("pending block");
                return self.finish(block, out);
            }
            return Ok(());
        }
        if header.kind != TYPE_HEADERS {
            out.put_slice(frame);
            return Ok(());
        }
        let Some((priority, fragment)) = headers_payload(header.flags, payload) else {
            return Err(frame.to_vec());
        };
        let block = PendingBlock {
            stream_id: header.stream_id,
            flags: header.flags & (FLAG_END_STREAM | FLAG_PRIORITY),
            priority,
            fragment: fragment.to_vec(),
            raw: frame.to_vec(),
        };
        if header.flags & FLAG_END_HEADERS != 0 {
            return self.finish(block, out);
        }
        self.pending = Some(block);
        Ok(())
    }

    /// Decodes a complete header block and writes it out, rewritten if it must be.
    fn finish(&mut self, block: PendingBlock, out: &mut BytesMut) -> Result<(), Vec<u8>> {
        let mut fields: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut rewrite = false;
        let decoded = self.decoder.decode_with_cb(&block.fragment, |name, value| {
            let value = if &*name == b":authority" {
                match fixed_authority(&value) {
                    Some(fixed) => {
                        rewrite = true;
                        fixed.to_vec()
                    }
                    None => value.into_owned(),
                }
            } else {
                value.into_owned()
            };
            fields.push((name.into_owned(), value));
        });
        if decoded.is_err() {
            return Err(block.raw);
        }
        if self.encoder.is_none() && !rewrite {
            out.put_slice(&block.raw);
            return Ok(());
        }
        let mut encoded = Vec::with_capacity(block.fragment.len() + 64);
        if self.encoder.is_none() {
            // Empty h2's dynamic table, which holds the client's entries, then restore its size:
            // the new encoder starts from an empty table too.
            encoded.extend(size_update(0));
            encoded.extend(size_update(TABLE_SIZE));
            let mut encoder = loona_hpack::Encoder::new();
            encoder.set_max_table_size(TABLE_SIZE);
            self.encoder = Some(encoder);
        }
        let encoder = self.encoder.as_mut().expect("encoder");
        encoder
            .encode_into(
                fields.iter().map(|(n, v)| (n.as_slice(), v.as_slice())),
                &mut encoded,
            )
            .expect("writing to a Vec");
        write_block(&block, &encoded, out);
        Ok(())
    }
}

/// Splits a HEADERS payload into its priority fields and its header block fragment, without
/// padding. `None` for a payload too short for what its flags announce.
fn headers_payload(flags: u8, payload: &[u8]) -> Option<(Option<[u8; 5]>, &[u8])> {
    let mut rest = payload;
    let mut pad = 0usize;
    if flags & FLAG_PADDED != 0 {
        let (&len, after) = rest.split_first()?;
        pad = usize::from(len);
        rest = after;
    }
    let mut priority = None;
    if flags & FLAG_PRIORITY != 0 {
        if rest.len() < 5 {
            return None;
        }
        priority = Some(<[u8; 5]>::try_from(&rest[..5]).ok()?);
        rest = &rest[5..];
    }
    if pad > rest.len() {
        return None;
    }
    Some((priority, &rest[..rest.len() - pad]))
}

/// Writes a header block as a HEADERS frame and as many CONTINUATION frames as it needs.
fn write_block(block: &PendingBlock, encoded: &[u8], out: &mut BytesMut) {
    let priority_len = if block.priority.is_some() { 5 } else { 0 };
    let first = encoded.len().min(MAX_FRAME_LEN - priority_len);
    let (head, mut rest) = encoded.split_at(first);
    let end = if rest.is_empty() { FLAG_END_HEADERS } else { 0 };
    FrameHeader::write(
        priority_len + head.len(),
        TYPE_HEADERS,
        block.flags | end,
        block.stream_id,
        out,
    );
    if let Some(p) = block.priority {
        out.put_slice(&p);
    }
    out.put_slice(head);
    while !rest.is_empty() {
        let n = rest.len().min(MAX_FRAME_LEN);
        let (chunk, after) = rest.split_at(n);
        let end = if after.is_empty() {
            FLAG_END_HEADERS
        } else {
            0
        };
        FrameHeader::write(n, TYPE_CONTINUATION, end, block.stream_id, out);
        out.put_slice(chunk);
        rest = after;
    }
}

/// An HPACK dynamic table size update (RFC 7541 §6.3).
fn size_update(size: usize) -> Vec<u8> {
    let mut bytes = loona_hpack::encoder::encode_integer(size, 5);
    bytes[0] |= 0x20;
    bytes
}

/// What h2 can take for an authority it would refuse: `host:port` of `scheme://host:port[/…]`,
/// and `localhost` for a Unix socket (`unix:///run/x.sock`, or the bare path `/run/x.sock`
/// that grpc-go sends when it dials a socket, as HTTP/2 gRPC clients over sockets do).
/// `None`: the value is left as it is, valid or not.
fn fixed_authority(value: &[u8]) -> Option<&[u8]> {
    const LOCALHOST: &[u8] = b"localhost";
    if value.first() == Some(&b'/') {
        return Some(LOCALHOST);
    }
    let at = value.windows(3).position(|w| w == b"://")?;
    let scheme = &value[..at];
    if scheme.is_empty()
        || !scheme[0].is_ascii_alphabetic()
        || !scheme
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
    {
        return None;
    }
    if scheme.eq_ignore_ascii_case(b"unix") || scheme.eq_ignore_ascii_case(b"unixs") {
        return Some(LOCALHOST);
    }
    let rest = &value[at + 3..];
    let end = rest.iter().position(|&c| c == b'/').unwrap_or(rest.len());
    Some(&rest[..end])
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFix<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.output.is_empty() {
                let n = this.output.len().min(buf.remaining());
                buf.put_slice(&this.output[..n]);
                this.output.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                // What is left is an unfinished frame: h2 sees it and then the end.
                let rest = this.input.split();
                if rest.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                this.output.unsplit(rest);
                continue;
            }
            if this.input.capacity() - this.input.len() < 4096 {
                this.input.reserve(16 * 1024);
            }
            let spare = this.input.spare_capacity_mut();
            let mut read = ReadBuf::uninit(spare);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            let n = read.filled().len();
            if n == 0 {
                this.eof = true;
                this.forward_from_here();
                continue;
            }
            // SAFETY: `poll_read` initialised the first `n` bytes of the spare capacity.
            unsafe { this.input.set_len(this.input.len() + n) };
            this.process();
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: Connected> Connected for AuthorityFix<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        FrameHeader::write(payload.len(), kind, flags, stream, &mut out);
        out.put_slice(payload);
        out.to_vec()
    }

    /// Runs `input` through the layer and returns the header blocks h2 would decode, decoded
    /// with h2's own state (one decoder over the whole output), plus the other frames' types.
    async fn through(input: Vec<u8>) -> (Vec<Vec<(String, String)>>, Vec<u8>, Vec<u8>) {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        tokio::io::AsyncWriteExt::write_all(&mut client, &input)
            .await
            .unwrap();
        drop(client);
        let mut fixed = AuthorityFix::new(server);
        let mut out = Vec::new();
        fixed.read_to_end(&mut out).await.unwrap();
        assert_eq!(&out[..PREFACE.len()], PREFACE);
        let mut rest = &out[PREFACE.len()..];
        let mut decoder = loona_hpack::Decoder::new();
        let (mut blocks, mut kinds, mut block) = (Vec::new(), Vec::new(), Vec::new());
        while !rest.is_empty() {
            let h = FrameHeader::parse(&rest[..9]);
            let payload = &rest[9..9 + h.len];
            kinds.push(h.kind);
            if h.kind == TYPE_HEADERS || h.kind == TYPE_CONTINUATION {
                let (_, fragment) = if h.kind == TYPE_HEADERS {
                    headers_payload(h.flags, payload).unwrap()
                } else {
                    (None, payload)
                };
                block.extend_from_slice(fragment);
                if h.flags & FLAG_END_HEADERS != 0 {
                    let fields = decoder.decode(&block).unwrap();
                    blocks.push(
                        fields
                            .into_iter()
                            .map(|(n, v)| {
                                (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap())
                            })
                            .collect(),
                    );
                    block.clear();
                }
            }
            rest = &rest[9 + h.len..];
        }
        (blocks, kinds, out)
    }

    fn request(authority: &str, path: &str) -> Vec<(&'static [u8], Vec<u8>)> {
        vec![
            (&b":method"[..], b"POST".to_vec()),
            (b":scheme", b"http".to_vec()),
            (b":path", path.as_bytes().to_vec()),
            (b":authority", authority.as_bytes().to_vec()),
            (b"content-type", b"application/grpc".to_vec()),
            (b"te", b"trailers".to_vec()),
        ]
    }

    fn encode(encoder: &mut loona_hpack::Encoder<'static>, fields: &[(&[u8], Vec<u8>)]) -> Vec<u8> {
        encoder.encode(fields.iter().map(|(n, v)| (*n, v.as_slice())))
    }

    #[tokio::test]
    async fn schemed_authority_is_rewritten_and_tables_stay_paired() {
        let mut client = loona_hpack::Encoder::new();
        let mut input = PREFACE.to_vec();
        input.extend(frame(0x4, 0, 0, &[])); // SETTINGS
        for (i, path) in ["/etcdserverpb.Maintenance/Status", "/etcdserverpb.KV/Range"]
            .iter()
            .enumerate()
        {
            let stream = 1 + 2 * i as u32;
            let block = encode(&mut client, &request("http://127.0.0.1:2379", path));
            input.extend(frame(TYPE_HEADERS, FLAG_END_HEADERS, stream, &block));
            input.extend(frame(0x0, FLAG_END_STREAM, stream, b"\0\0\0\0\0"));
        }
        let (blocks, kinds, _) = through(input).await;
        assert_eq!(kinds, vec![0x4, 0x1, 0x0, 0x1, 0x0]);
        for (block, path) in blocks
            .iter()
            .zip(["/etcdserverpb.Maintenance/Status", "/etcdserverpb.KV/Range"])
        {
            let get = |n: &str| block.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
            assert_eq!(get(":authority"), Some("127.0.0.1:2379"));
            assert_eq!(get(":path"), Some(path));
            assert_eq!(get("te"), Some("trailers"));
        }
    }

    #[tokio::test]
    async fn plain_authorities_pass_byte_for_byte() {
        let mut client = loona_hpack::Encoder::new();
        let mut input = PREFACE.to_vec();
        for stream in [1u32, 3, 5] {
            let block = encode(
                &mut client,
                &request("127.0.0.1:2379", "/etcdserverpb.KV/Put"),
            );
            input.extend(frame(
                TYPE_HEADERS,
                FLAG_END_HEADERS | FLAG_END_STREAM,
                stream,
                &block,
            ));
        }
        let (_, _, out) = through(input.clone()).await;
        assert_eq!(out, input);
    }

    #[tokio::test]
    async fn continuation_padding_and_priority_are_followed() {
        let mut client = loona_hpack::Encoder::new();
        // A first block indexes entries in the client's table; the second (rewritten) one must
        // be decoded against them.
        let first = encode(&mut client, &request("127.0.0.1:2379", "/a"));
        let mut fields = request("https://etcd.example:2379/", "/b");
        let big = vec![b'x'; 20_000];
        fields.push((b"x-big", big.clone()));
        let second = encode(&mut client, &fields);
        let mut input = PREFACE.to_vec();
        input.extend(frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &first));
        // HEADERS padded with priority, the block split over two CONTINUATIONs.
        let (a, rest) = second.split_at(100);
        let (b, c) = rest.split_at(10_000);
        let mut payload = vec![3u8];
        payload.extend([0, 0, 0, 0, 16]);
        payload.extend(a);
        payload.extend([0, 0, 0]);
        input.extend(frame(
            TYPE_HEADERS,
            FLAG_PADDED | FLAG_PRIORITY,
            3,
            &payload,
        ));
        input.extend(frame(TYPE_CONTINUATION, 0, 3, b));
        input.extend(frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 3, c));
        let (blocks, kinds, _) = through(input).await;
        assert_eq!(kinds, vec![0x1, 0x1, 0x9]);
        let get = |b: &Vec<(String, String)>, n: &str| {
            b.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone())
        };
        assert_eq!(
            get(&blocks[0], ":authority").as_deref(),
            Some("127.0.0.1:2379")
        );
        assert_eq!(
            get(&blocks[1], ":authority").as_deref(),
            Some("etcd.example:2379")
        );
        assert_eq!(get(&blocks[1], ":path").as_deref(), Some("/b"));
        assert_eq!(get(&blocks[1], "x-big").map(|v| v.len()), Some(big.len()));
    }

    #[tokio::test]
    async fn what_cannot_be_followed_reaches_h2_unchanged() {
        // Not HTTP/2 with prior knowledge.
        let http1 = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
        let (mut c, s) = tokio::io::duplex(4096);
        tokio::io::AsyncWriteExt::write_all(&mut c, &http1)
            .await
            .unwrap();
        drop(c);
        let mut out = Vec::new();
        AuthorityFix::new(s).read_to_end(&mut out).await.unwrap();
        assert_eq!(out, http1);
        // A block that does not decode (an index past both tables).
        let mut input = PREFACE.to_vec();
        input.extend(frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &[0xff, 0x7f]));
        input.extend(frame(0x0, 0, 1, b"data"));
        let (mut c, s) = tokio::io::duplex(4096);
        tokio::io::AsyncWriteExt::write_all(&mut c, &input)
            .await
            .unwrap();
        drop(c);
        let mut out = Vec::new();
        AuthorityFix::new(s).read_to_end(&mut out).await.unwrap();
        assert_eq!(out, input);
    }

    #[test]
    fn authority_forms() {
        let fixed = |v: &[u8]| fixed_authority(v).map(|f| String::from_utf8(f.to_vec()).unwrap());
        assert_eq!(
            fixed(b"http://127.0.0.1:2379").as_deref(),
            Some("127.0.0.1:2379")
        );
        assert_eq!(fixed(b"https://h:1/x/y").as_deref(), Some("h:1"));
        assert_eq!(
            fixed(b"unix:///run/skiff/store.sock").as_deref(),
            Some("localhost")
        );
        assert_eq!(
            fixed(b"/run/skiff/store.sock").as_deref(),
            Some("localhost")
        );
        assert_eq!(fixed(b"127.0.0.1:2379"), None);
        assert_eq!(fixed(b"localhost"), None);
        assert_eq!(fixed(b"://x"), None);
    }
}
