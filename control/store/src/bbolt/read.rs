//! Reading a bbolt file: its meta page, then the root bucket's tree and every nested bucket's.
//! Everything is bounds-checked, and the walk refuses cycles and out-of-order keys, so a damaged
//! or foreign file is a clear error.

use super::*;

/// An open bbolt file (the bytes stay with the caller).
pub struct Db<'a> {
    data: &'a [u8],
    page_size: usize,
    root: u64,
    high_water: u64,
}

struct Meta {
    page_size: usize,
    root: u64,
    high_water: u64,
    txid: u64,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn meta_at(data: &[u8], offset: usize) -> Result<Meta, String> {
    let m = data
        .get(offset + PAGE_HEADER..offset + PAGE_HEADER + META_SUMMED + 8)
        .ok_or("the file ends inside a meta page")?;
    if u16_at(data, offset + 8) & META_PAGE == 0 {
        return Err("not a meta page".into());
    }
    if u32_at(m, 0) != MAGIC {
        return Err("not a bbolt file (bad magic)".into());
    }
    if u32_at(m, 4) != VERSION {
        return Err(format!(
            "bbolt format version {} (2 expected)",
            u32_at(m, 4)
        ));
    }
    if fnv64a(&m[..META_SUMMED]) != u64_at(m, META_SUMMED) {
        return Err("meta page checksum mismatch".into());
    }
    let page_size = u32_at(m, 8) as usize;
    if !(1024..=1 << 16).contains(&page_size) || !page_size.is_power_of_two() {
        return Err(format!("implausible page size {page_size}"));
    }
    Ok(Meta {
        page_size,
        root: u64_at(m, 16),
        high_water: u64_at(m, 40),
        txid: u64_at(m, 48),
    })
}

/// A page's bytes (header included, overflow pages appended) — or an inline bucket's page.
#[derive(Clone, Copy)]
struct Page<'a> {
    bytes: &'a [u8],
    flags: u16,
    count: usize,
}

impl<'a> Page<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Page<'a>, String> {
        if bytes.len() < PAGE_HEADER {
            return Err("a page shorter than its header".into());
        }
        let count = usize::from(u16_at(bytes, 10));
        if PAGE_HEADER + count * ELEMENT > bytes.len() {
            return Err(format!("a page claims {count} elements it cannot hold"));
        }
        Ok(Page {
            bytes,
            flags: u16_at(bytes, 8),
            count,
        })
    }

    /// The bytes at `pos` from element `i`'s own offset, `len` long.
    fn slice(&self, i: usize, pos: u32, len: u32) -> Result<&'a [u8], String> {
        let start = PAGE_HEADER + i * ELEMENT + pos as usize;
        self.bytes
            .get(start..start + len as usize)
            .ok_or_else(|| "an element points outside its page".to_string())
    }

    /// Leaf element `i`: (flags, key, value).
    fn leaf(&self, i: usize) -> Result<(u32, &'a [u8], &'a [u8]), String> {
        let e = PAGE_HEADER + i * ELEMENT;
        let (flags, pos, ksize, vsize) = (
            u32_at(self.bytes, e),
            u32_at(self.bytes, e + 4),
            u32_at(self.bytes, e + 8),
            u32_at(self.bytes, e + 12),
        );
        let kv = self.slice(
            i,
            pos,
            ksize.checked_add(vsize).ok_or("element size overflows")?,
        )?;
        let (k, v) = kv.split_at(ksize as usize);
        Ok((flags, k, v))
    }

    /// Branch element `i`: (first key of the child, child pgid).
    fn branch(&self, i: usize) -> Result<(&'a [u8], u64), String> {
        let e = PAGE_HEADER + i * ELEMENT;
        let key = self.slice(i, u32_at(self.bytes, e), u32_at(self.bytes, e + 4))?;
        Ok((key, u64_at(self.bytes, e + 8)))
    }
}

/// Deeper than any real tree (bbolt splits at 4 KiB pages; 2^64 keys fit in far fewer levels).
const MAX_DEPTH: usize = 64;

impl<'a> Db<'a> {
    /// Opens `data` (a whole bbolt file; trailing bytes such as etcd's sha256 are ignored).
    pub fn open(data: &'a [u8]) -> Result<Db<'a>, String> {
        let first = meta_at(data, 0);
        let page_size = match &first {
            Ok(m) => m.page_size,
            // bbolt tries the second meta at its own page size when the first is damaged.
            Err(_) => [4096, 8192, 16384, 65536, 1024, 2048, 32768]
                .into_iter()
                .find(|ps| meta_at(data, *ps).is_ok())
                .ok_or_else(|| format!("no valid meta page: {}", first.as_ref().err().unwrap()))?,
        };
        let second = meta_at(data, page_size);
        let meta = match (first, second) {
            (Ok(a), Ok(b)) => {
                if b.txid > a.txid {
                    b
                } else {
                    a
                }
            }
            (Ok(m), Err(_)) | (Err(_), Ok(m)) => m,
            (Err(e), Err(_)) => return Err(format!("no valid meta page: {e}")),
        };
        if meta.page_size != page_size {
            return Err("the two meta pages disagree on the page size".into());
        }
        let db = Db {
            data,
            page_size,
            root: meta.root,
            high_water: meta.high_water,
        };
        if (db.high_water as u128) * (page_size as u128) > data.len() as u128 {
            return Err(format!(
                "truncated: the file holds {} bytes, its pages reach {}",
                data.len(),
                db.high_water as u128 * page_size as u128
            ));
        }
        Ok(db)
    }

    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// Bytes the database's pages occupy (bbolt's `tx.Size()`).
    pub fn size(&self) -> u64 {
        self.high_water * self.page_size as u64
    }

    fn page(&self, id: u64) -> Result<Page<'a>, String> {
        if id < 2 || id >= self.high_water {
            return Err(format!(
                "page {id} is outside the data pages (2..{})",
                self.high_water
            ));
        }
        let start = id as usize * self.page_size;
        let header = &self.data[start..start + PAGE_HEADER];
        if u64_at(header, 0) != id {
            return Err(format!("page {id} carries id {}", u64_at(header, 0)));
        }
        let span = (u32_at(header, 12) as u64 + 1) * self.page_size as u64;
        let end = start as u64 + span;
        if end > self.high_water * self.page_size as u64 {
            return Err(format!("page {id} overflows past the last page"));
        }
        Page::parse(&self.data[start..end as usize])
    }

    /// The entries of the tree rooted at `page`, in key order: (flags, key, value).
    fn entries(
        &self,
        page: Page<'a>,
        depth: usize,
        out: &mut Vec<(u32, &'a [u8], &'a [u8])>,
    ) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("the page tree is deeper than any real one (a cycle?)".into());
        }
        if page.flags & LEAF_PAGE != 0 {
            for i in 0..page.count {
                let e = page.leaf(i)?;
                if out.last().is_some_and(|(_, prev, _)| *prev >= e.1) {
                    return Err("keys out of order".into());
                }
                out.push(e);
            }
            Ok(())
        } else if page.flags & BRANCH_PAGE != 0 {
            for i in 0..page.count {
                let (_, child) = page.branch(i)?;
                self.entries(self.page(child)?, depth + 1, out)?;
            }
            Ok(())
        } else {
            Err(format!("unexpected page type {:#x} in a tree", page.flags))
        }
    }

    /// The root bucket's nested buckets by name, each with its key/value pairs in key order.
    /// Buckets nested deeper (etcd has none) are refused.
    pub fn buckets(&self) -> Result<Vec<Bucket<'a>>, String> {
        let mut roots = Vec::new();
        self.entries(self.page(self.root)?, 0, &mut roots)?;
        let mut out = Vec::with_capacity(roots.len());
        for (flags, name, value) in roots {
            if flags & BUCKET_LEAF == 0 {
                return Err(format!(
                    "a plain key {:?} in the root bucket",
                    String::from_utf8_lossy(name)
                ));
            }
            if value.len() < BUCKET_HEADER {
                return Err("a bucket header shorter than 16 bytes".into());
            }
            let root = u64_at(value, 0);
            let page = if root == 0 {
                Page::parse(&value[BUCKET_HEADER..])?
            } else {
                self.page(root)?
            };
            let mut entries = Vec::new();
            self.entries(page, 0, &mut entries)?;
            let mut pairs = Vec::with_capacity(entries.len());
            for (flags, k, v) in entries {
                if flags & BUCKET_LEAF != 0 {
                    return Err(format!(
                        "bucket {:?} nests a bucket (etcd's files do not)",
                        String::from_utf8_lossy(name)
                    ));
                }
                pairs.push((k, v));
            }
            out.push((name, pairs));
        }
        Ok(out)
    }
}
