//! Compiles the service proxy's eBPF programs (C in ../ebpf) with clang, as DESIGN.md says:
//! no bpf-linker or rust-src exists here. `-g` is required (aya reads the BTF map
//! definitions); `-I/usr/include/x86_64-linux-gnu` supplies Debian's `asm/types.h`.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let ebpf = manifest.join("../ebpf");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    println!("cargo:rerun-if-changed={}", ebpf.display());
    // One object per program file; more join this list as the datapath grows.
    const PROGRAMS: &[&str] = &["sock_lb", "tc_lb"];
    for program in PROGRAMS {
        let source = ebpf.join(format!("{program}.c"));
        let object = out.join(format!("{program}.o"));
        let status = Command::new("clang")
            .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
            .arg("-I/usr/include/x86_64-linux-gnu")
            .arg(format!("-I{}", ebpf.join("include").display()))
            .arg("-c")
            .arg(&source)
            .arg("-o")
            .arg(&object)
            .status()
            .unwrap_or_else(|e| {
                panic!(
                    "running clang for {} (scripts/setup.sh installs clang and libbpf-dev): {e}",
                    source.display()
                )
            });
        assert!(status.success(), "clang failed on {}", source.display());
    }
}
