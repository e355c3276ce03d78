//! Writing a bbolt file from buckets of sorted key/value pairs, laid out as a freshly compacted
//! database: two meta pages, an empty freelist, then every bucket's tree (leaves packed to the
//! page size, branch levels above them), then the root bucket's. Every page below the
//! high-water mark is used exactly once, which is what `bbolt check` verifies.

use super::*;

/// Page images in order of their ids, starting at id 3 (after the metas and the freelist).
struct Pages {
    next: u64,
    out: Vec<u8>,
}

impl Pages {
    /// Adds one page (with overflow pages when `body` is larger than a page) and returns its id.
    fn add(&mut self, flags: u16, count: usize, body: &[u8]) -> u64 {
        let id = self.next;
        let total = PAGE_HEADER + body.len();
        let pages = total.div_ceil(PAGE_SIZE).max(1);
        let start = self.out.len();
        self.out.resize(start + pages * PAGE_SIZE, 0);
        let p = &mut self.out[start..];
        p[0..8].copy_from_slice(&id.to_le_bytes());
        p[8..10].copy_from_slice(&flags.to_le_bytes());
        p[10..12].copy_from_slice(&(count as u16).to_le_bytes());
        p[12..16].copy_from_slice(&((pages - 1) as u32).to_le_bytes());
        p[PAGE_HEADER..total].copy_from_slice(body);
        self.next += pages as u64;
        id
    }

    /// Writes `entries` (sorted, (flags, key, value)) as leaf pages, then branch levels until
    /// one page remains; returns the tree's root page.
    fn tree(&mut self, entries: &[(u32, &[u8], &[u8])]) -> u64 {
        let mut level: Vec<(Vec<u8>, u64)> = Vec::new();
        for group in pack(entries.iter().map(|(_, k, v)| k.len() + v.len())) {
            let items = &entries[group.clone()];
            let mut body = vec![0u8; items.len() * ELEMENT];
            for (i, (flags, k, v)) in items.iter().enumerate() {
                let pos = (body.len() - i * ELEMENT) as u32;
                let e = &mut body[i * ELEMENT..(i + 1) * ELEMENT];
                e[0..4].copy_from_slice(&flags.to_le_bytes());
                e[4..8].copy_from_slice(&pos.to_le_bytes());
                e[8..12].copy_from_slice(&(k.len() as u32).to_le_bytes());
                e[12..16].copy_from_slice(&(v.len() as u32).to_le_bytes());
                body.extend_from_slice(k);
                body.extend_from_slice(v);
            }
            let first = items
                .first()
                .map(|(_, k, _)| k.to_vec())
                .unwrap_or_default();
            level.push((first, self.add(LEAF_PAGE, items.len(), &body)));
        }
        while level.len() > 1 {
            let mut up = Vec::new();
            for group in pack(level.iter().map(|(k, _)| k.len())) {
                let items = &level[group];
                let mut body = vec![0u8; items.len() * ELEMENT];
                for (i, (k, child)) in items.iter().enumerate() {
                    let pos = (body.len() - i * ELEMENT) as u32;
                    let e = &mut body[i * ELEMENT..(i + 1) * ELEMENT];
                    e[0..4].copy_from_slice(&pos.to_le_bytes());
                    e[4..8].copy_from_slice(&(k.len() as u32).to_le_bytes());
                    e[8..16].copy_from_slice(&child.to_le_bytes());
                    body.extend_from_slice(k);
                }
                up.push((
                    items[0].0.clone(),
                    self.add(BRANCH_PAGE, items.len(), &body),
                ));
            }
            level = up;
        }
        level[0].1
    }
}

/// Groups consecutive elements (by their data sizes) into pages: a page takes elements while
/// they fit, at least one (a larger one gets overflow pages), at most u16::MAX. An empty input
/// is one empty page.
fn pack(sizes: impl Iterator<Item = usize>) -> Vec<std::ops::Range<usize>> {
    let mut groups = Vec::new();
    let (mut start, mut used, mut n) = (0, PAGE_HEADER, 0);
    for (i, size) in sizes.enumerate() {
        let cost = ELEMENT + size;
        if n > 0 && (used + cost > PAGE_SIZE || n == usize::from(u16::MAX)) {
            groups.push(start..i);
            (start, used, n) = (i, PAGE_HEADER, 0);
        }
        used += cost;
        n += 1;
    }
    groups.push(start..start + n);
    groups
}

fn meta_page(id: u64, root: u64, high_water: u64) -> [u8; PAGE_SIZE] {
    let mut p = [0u8; PAGE_SIZE];
    p[0..8].copy_from_slice(&id.to_le_bytes());
    p[8..10].copy_from_slice(&META_PAGE.to_le_bytes());
    let m = &mut p[PAGE_HEADER..PAGE_HEADER + META_SUMMED + 8];
    m[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    m[4..8].copy_from_slice(&VERSION.to_le_bytes());
    m[8..12].copy_from_slice(&(PAGE_SIZE as u32).to_le_bytes());
    // flags (12..16) and the root bucket's sequence (24..32) stay 0.
    m[16..24].copy_from_slice(&root.to_le_bytes());
    m[32..40].copy_from_slice(&2u64.to_le_bytes()); // the freelist page
    m[40..48].copy_from_slice(&high_water.to_le_bytes());
    // txid: both metas describe the same (only) transaction; meta 1 is the newer by one.
    m[48..56].copy_from_slice(&(id + 1).to_le_bytes());
    let sum = fnv64a(&m[..META_SUMMED]);
    m[META_SUMMED..META_SUMMED + 8].copy_from_slice(&sum.to_le_bytes());
    p
}

/// A bbolt file holding `buckets` (name → pairs sorted by key, no duplicate keys) in the root
/// bucket. Bucket names need not be sorted.
pub fn write(buckets: &[Bucket]) -> Vec<u8> {
    let mut pages = Pages {
        next: 3,
        out: Vec::new(),
    };
    let mut order: Vec<&Bucket> = buckets.iter().collect();
    order.sort_by_key(|(name, _)| *name);
    let mut headers = Vec::with_capacity(order.len());
    for (name, pairs) in &order {
        debug_assert!(
            pairs.windows(2).all(|w| w[0].0 < w[1].0),
            "sorted, unique keys"
        );
        let entries: Vec<(u32, &[u8], &[u8])> = pairs.iter().map(|(k, v)| (0, *k, *v)).collect();
        let root = pages.tree(&entries);
        let mut header = [0u8; BUCKET_HEADER];
        header[0..8].copy_from_slice(&root.to_le_bytes());
        headers.push((*name, header));
    }
    let roots: Vec<(u32, &[u8], &[u8])> = headers
        .iter()
        .map(|(name, h)| (BUCKET_LEAF, *name, &h[..]))
        .collect();
    let root = pages.tree(&roots);

    let high_water = pages.next;
    let mut out = Vec::with_capacity(high_water as usize * PAGE_SIZE);
    out.extend_from_slice(&meta_page(0, root, high_water));
    out.extend_from_slice(&meta_page(1, root, high_water));
    let mut freelist = [0u8; PAGE_SIZE];
    freelist[0..8].copy_from_slice(&2u64.to_le_bytes());
    freelist[8..10].copy_from_slice(&FREELIST_PAGE.to_le_bytes());
    out.extend_from_slice(&freelist);
    out.extend_from_slice(&pages.out);
    out
}
