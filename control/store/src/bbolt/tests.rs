use super::*;

fn owned(n: usize, value_len: impl Fn(usize) -> usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..n)
        .map(|i| {
            (
                format!("key-{i:08}").into_bytes(),
                vec![(i % 251) as u8; value_len(i)],
            )
        })
        .collect()
}

fn borrow(pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<(&[u8], &[u8])> {
    pairs.iter().map(|(k, v)| (&k[..], &v[..])).collect()
}

#[test]
fn round_trip_small_large_and_empty_buckets() {
    // 20,000 keys need two branch levels; every 1,000th value is bigger than a page.
    let many = owned(20_000, |i| if i % 1000 == 0 { 10_000 } else { i % 40 });
    let few = owned(3, |_| 5);
    let file = write(&[
        (b"meta", borrow(&few)),
        (b"key", borrow(&many)),
        (b"lease", vec![]),
    ]);
    assert_eq!(file.len() % PAGE_SIZE, 0);
    assert!(is_bbolt(&file));
    let db = Db::open(&file).unwrap();
    assert_eq!(db.size(), file.len() as u64);
    let buckets = db.buckets().unwrap();
    let names: Vec<&[u8]> = buckets.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, vec![&b"key"[..], b"lease", b"meta"]);
    assert_eq!(buckets[0].1, borrow(&many));
    assert!(buckets[1].1.is_empty());
    assert_eq!(buckets[2].1, borrow(&few));
}

#[test]
fn every_page_is_used_once() {
    // What `bbolt check` verifies: no page below the high-water mark is unreachable.
    let many = owned(5_000, |i| if i % 700 == 0 { 9_000 } else { 30 });
    let file = write(&[(b"key", borrow(&many))]);
    let pages = file.len() / PAGE_SIZE;
    let mut seen = vec![false; pages];
    seen[0] = true;
    seen[1] = true;
    seen[2] = true;
    let mut id = 3;
    while id < pages {
        let p = &file[id * PAGE_SIZE..];
        assert_eq!(u64::from_le_bytes(p[0..8].try_into().unwrap()), id as u64);
        let overflow = u32::from_le_bytes(p[12..16].try_into().unwrap()) as usize;
        for s in &mut seen[id..=id + overflow] {
            assert!(!*s);
            *s = true;
        }
        id += overflow + 1;
    }
    assert!(seen.iter().all(|s| *s));
}

#[test]
fn damage_is_an_error_never_a_panic() {
    let pairs = owned(2_000, |i| i % 100);
    let file = write(&[(b"key", borrow(&pairs))]);
    // Truncated.
    let err = Db::open(&file[..file.len() - PAGE_SIZE]).err().unwrap();
    assert!(err.contains("truncated"), "{err}");
    // Not bbolt at all.
    assert!(Db::open(b"hello world, this is not a database").is_err());
    assert!(!is_bbolt(b"SKIFFSNP"));
    // One meta page damaged: the other still opens the file.
    let mut one = file.clone();
    one[PAGE_HEADER + 20] ^= 0xff;
    assert_eq!(Db::open(&one).unwrap().buckets().unwrap()[0].1.len(), 2_000);
    // Both damaged.
    one[PAGE_SIZE + PAGE_HEADER + 20] ^= 0xff;
    assert!(Db::open(&one).err().unwrap().contains("meta"));
    // Flipping bytes anywhere in the data pages never panics.
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..2_000 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let mut bad = file.clone();
        let at = 3 * PAGE_SIZE + (rng as usize % (file.len() - 3 * PAGE_SIZE));
        bad[at] = (rng >> 32) as u8;
        if let Ok(db) = Db::open(&bad) {
            let _ = db.buckets();
        }
    }
}

#[test]
fn inline_buckets_are_read() {
    // bbolt stores a small bucket inside its parent's leaf: header with root 0, then its page.
    let mut inline = vec![0u8; BUCKET_HEADER];
    let mut page = vec![0u8; PAGE_HEADER];
    page[8..10].copy_from_slice(&LEAF_PAGE.to_le_bytes());
    page[10..12].copy_from_slice(&1u16.to_le_bytes());
    let mut element = [0u8; ELEMENT];
    element[4..8].copy_from_slice(&(ELEMENT as u32).to_le_bytes());
    element[8..12].copy_from_slice(&1u32.to_le_bytes());
    element[12..16].copy_from_slice(&2u32.to_le_bytes());
    page.extend_from_slice(&element);
    page.extend_from_slice(b"kvv");
    inline.extend_from_slice(&page);
    let mut file = write(&[(b"other", vec![])]);
    // Rewrite the root leaf (the last page) to hold one inline bucket "small".
    let last = file.len() - PAGE_SIZE;
    let root = &mut file[last..];
    root[10..12].copy_from_slice(&1u16.to_le_bytes());
    let mut e = [0u8; ELEMENT];
    e[0..4].copy_from_slice(&BUCKET_LEAF.to_le_bytes());
    e[4..8].copy_from_slice(&(ELEMENT as u32).to_le_bytes());
    e[8..12].copy_from_slice(&5u32.to_le_bytes());
    e[12..16].copy_from_slice(&(inline.len() as u32).to_le_bytes());
    root[PAGE_HEADER..PAGE_HEADER + ELEMENT].copy_from_slice(&e);
    let data = PAGE_HEADER + ELEMENT;
    root[data..data + 5].copy_from_slice(b"small");
    root[data + 5..data + 5 + inline.len()].copy_from_slice(&inline);
    let db = Db::open(&file).unwrap();
    let buckets = db.buckets().unwrap();
    assert_eq!(buckets.len(), 1);
    assert_eq!(buckets[0].0, b"small");
    assert_eq!(buckets[0].1, vec![(&b"k"[..], &b"vv"[..])]);
}
