// skiff-runtime starts two processes per `create`/`run` (the call and its sealed re-exec) and
// one per other command, so its start-up cost counts several times per container. Two link
// choices make that cost small:
//
// - Linked at a fixed address (`-no-pie`): as a position-independent executable, the dynamic
//   loader applies ~26,000 relative relocations at every start, copying on write most of
//   .data.rel.ro (~470 KiB of vtables and string tables).
// - Linked statically: no dynamic loader, no symbol lookups in libc, libseccomp, libgcc_s and
//   libm at every start (measured: `run` 15.5 → 14.4 ms, create+start+delete 19.8 → 17.0 ms).
//   Rust's usual way (`-C target-feature=+crt-static`) applies to every crate of a build,
//   proc macros included, which then cannot be built without `--target`; instead, for this
//   binary only, each library the link asks for by `-l` is found first as a linker script in
//   OUT_DIR that names the library's static archive, and the link is `-static`. Where an
//   archive is missing (no libc6-dev, libseccomp-dev) the binary is linked dynamically as
//   before, with a build warning.
use std::path::{Path, PathBuf};

/// The libraries the link names (libc, std's, libseccomp's and libbpf's) and where their
/// static archives are on Debian.
const LIBRARIES: [&str; 10] = [
    "c", "m", "dl", "rt", "pthread", "util", "seccomp", "elf", "z", "gcc_s",
];

fn main() {
    println!("cargo:rustc-link-arg-bin=skiff-runtime=-no-pie");
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let scripts = out.join("static-libs");
    let _ = std::fs::create_dir_all(&scripts);
    let mut missing = Vec::new();
    for lib in LIBRARIES {
        match archive_of(lib) {
            Some(archive) => {
                let script = format!("INPUT({})\n", archive.display());
                std::fs::write(scripts.join(format!("lib{lib}.so")), &script)
                    .expect("write linker script");
                std::fs::write(scripts.join(format!("lib{lib}.a")), &script)
                    .expect("write linker script");
            }
            None => missing.push(lib),
        }
    }
    if !missing.is_empty() || std::env::var("SKIFF_RUNTIME_DYNAMIC").is_ok() {
        println!(
            "cargo:warning=skiff-runtime is linked dynamically (no static archive for {missing:?}); \
             install libc6-dev libseccomp-dev libelf-dev zlib1g-dev for the faster static binary"
        );
        return;
    }
    // As link arguments of the binary alone (a `rustc-link-search` would reach the test
    // binaries too, which are not linked `-static`); ld applies every -L to every -l.
    println!(
        "cargo:rustc-link-arg-bin=skiff-runtime=-L{}",
        scripts.display()
    );
    println!("cargo:rustc-link-arg-bin=skiff-runtime=-static");
}

/// The static archive for `-l<lib>`: the system's, or for `gcc_s` (the shared unwinder)
/// gcc's static `libgcc_eh`.
fn archive_of(lib: &str) -> Option<PathBuf> {
    let name = match lib {
        "gcc_s" => "libgcc_eh.a".to_string(),
        other => format!("lib{other}.a"),
    };
    if lib == "gcc_s" {
        let out = std::process::Command::new("gcc")
            .arg(format!("-print-file-name={name}"))
            .output()
            .ok()?;
        let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        return path.is_absolute().then_some(path);
    }
    let path = Path::new("/usr/lib/x86_64-linux-gnu").join(name);
    path.exists().then_some(path)
}
