// skiff-runtime starts two processes per `create`/`run` (the call and its sealed re-exec), so
// its start-up cost counts twice. As a position-independent executable, the dynamic loader
// applies ~26,000 relative relocations at every start, copying on write most of
// .data.rel.ro (~470 KiB of vtables and string tables) — over a millisecond of page faults
// per process on the test machine. Linked at a fixed address, those relocations are resolved
// at link time and the pages stay shared with the page cache.
fn main() {
    println!("cargo:rustc-link-arg-bin=skiff-runtime=-no-pie");
}
