//! End to end against Debian's docker-registry on a free 127.0.0.1 port: build a busybox image
//! as an OCI layout, push it with skopeo, pull with skiff-image, check whiteouts, bundle and run
//! with runc, archive round trips, rm + gc, and a tampered blob. Needs root and the packages
//! docker-registry, skopeo, runc, busybox-static; prints a skip line otherwise.

use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};
use skiff_image::{archive, bundle, overlay, registry, Store};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root".into());
    }
    for tool in [
        "/usr/bin/docker-registry",
        "/usr/bin/skopeo",
        "/bin/busybox",
    ] {
        if !Path::new(tool).exists() {
            return Some(format!("{tool} missing"));
        }
    }
    if Command::new("runc").arg("--version").output().is_err() {
        return Some("runc missing".into());
    }
    None
}

/// Kills the registry by pid when the test ends, also on panic.
struct Registry {
    child: Child,
    port: u16,
    storage: PathBuf,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_registry(dir: &Path) -> Registry {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let storage = dir.join("registry-storage");
    fs::create_dir_all(&storage).unwrap();
    let config = dir.join("registry.yml");
    fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            storage.display()
        ),
    )
    .unwrap();
    let child = Command::new("/usr/bin/docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let registry = Registry {
        child,
        port,
        storage,
    };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return registry;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("registry did not start on port {port}");
}

fn tar_gz(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> (Vec<u8>, String) {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    build(&mut builder);
    let raw = builder.into_inner().unwrap();
    let diff_id = sha(&raw);
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).unwrap();
    (gz.finish().unwrap(), diff_id)
}

fn add_file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8], mode: u32) {
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(mode);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, path, data).unwrap();
}

fn add_dir(b: &mut tar::Builder<Vec<u8>>, path: &str) {
    let mut h = tar::Header::new_ustar();
    h.set_size(0);
    h.set_mode(0o755);
    h.set_entry_type(tar::EntryType::Directory);
    b.append_data(&mut h, path, &[][..]).unwrap();
}

fn add_symlink(b: &mut tar::Builder<Vec<u8>>, path: &str, target: &str) {
    let mut h = tar::Header::new_ustar();
    h.set_size(0);
    h.set_mode(0o777);
    h.set_entry_type(tar::EntryType::Symlink);
    b.append_link(&mut h, path, target).unwrap();
}

/// Two layers: busybox + files, then a layer deleting /etc/gone and making /data opaque.
fn write_layout(dir: &Path) {
    let busybox = fs::read("/bin/busybox").unwrap();
    let (l1, d1) = tar_gz(|b| {
        add_dir(b, "bin");
        add_file(b, "bin/busybox", &busybox, 0o755);
        add_symlink(b, "bin/sh", "busybox");
        add_symlink(b, "bin/echo", "busybox");
        add_dir(b, "etc");
        add_file(b, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644);
        add_file(b, "etc/gone", b"deleted in layer 2\n", 0o644);
        add_dir(b, "data");
        add_file(b, "data/old", b"old\n", 0o644);
        let mut h = tar::Header::new_ustar();
        h.set_size(0);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Link);
        b.append_link(&mut h, "etc/passwd-link", "etc/passwd")
            .unwrap();
    });
    let (l2, d2) = tar_gz(|b| {
        add_file(b, "etc/.wh.gone", b"", 0o644);
        add_dir(b, "data");
        add_file(b, "data/.wh..wh..opq", b"", 0o644);
        add_file(b, "data/new", b"new\n", 0o644);
    });
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/busybox", "echo", "hi"], "Env": ["PATH=/bin"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [d1, d2]}
    });
    let config = serde_json::to_vec(&config).unwrap();
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let d = sha(bytes);
        fs::write(blobs.join(&d[7..]), bytes).unwrap();
        (d, bytes.len())
    };
    let (cd, cs) = put(&config);
    let (ld1, ls1) = put(&l1);
    let (ld2, ls2) = put(&l2);
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld1, "size": ls1},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld2, "size": ls2}
        ]
    });
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let (md, ms) = put(&manifest);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
            "annotations": {"org.opencontainers.image.ref.name": "latest"}}]
    });
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn count(dir: &Path) -> usize {
    fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// A container of `program` (runc or skiff-runtime), force-deleted by its id when dropped.
struct RuncContainer {
    program: PathBuf,
    root: PathBuf,
    id: String,
}

impl Drop for RuncContainer {
    fn drop(&mut self) {
        let _ = Command::new(&self.program)
            .arg("--root")
            .arg(&self.root)
            .args(["delete", "-f", &self.id])
            .output();
        // skiff-runtime gives each state root its own cgroup parent
        // (`skiff-runtime-<root with / as ->`); it is this test's alone.
        let flat: String = self
            .root
            .to_string_lossy()
            .trim_matches('/')
            .replace('/', "-");
        for controller in fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = fs::remove_dir(controller.path().join(format!("skiff-runtime-{flat}")));
        }
    }
}

struct Mounted<'a> {
    store: &'a Store,
    id: &'a str,
}

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        let _ = overlay::unmount_rootfs(self.store, self.id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_end_to_end() {
    if let Some(reason) = skip_reason() {
        eprintln!("SKIP registry_end_to_end: {reason}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let registry = start_registry(tmp.path());
    let layout = tmp.path().join("layout");
    write_layout(&layout);
    let image = format!("127.0.0.1:{}/skiff/busybox:1", registry.port);
    run(Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:latest", layout.display()))
        .arg(format!("docker://{image}")));

    // Pull twice concurrently: the in-flight lock makes the second one reuse the first.
    let root = tmp.path().join("store");
    let store = Store::open(&root).unwrap();
    let opts = registry::PullOptions::default();
    let (a, b) = tokio::join!(
        registry::pull(&store, &image, &opts),
        registry::pull(&store, &image, &opts)
    );
    let info = a.unwrap();
    assert_eq!(info.manifest_digest, b.unwrap().manifest_digest);
    assert_eq!(store.list().unwrap().len(), 1);
    assert_eq!(count(&root.join("layers")), 2);
    assert_eq!(count(&root.join("tmp")), 0);

    // Overlay rootfs: layer 2 hides /etc/gone and the old /data content.
    {
        let rootfs = overlay::mount_rootfs(&store, &image, "c1").unwrap();
        let _guard = Mounted {
            store: &store,
            id: "c1",
        };
        assert!(rootfs.join("bin/busybox").exists());
        assert!(!rootfs.join("etc/gone").exists());
        assert!(!rootfs.join("data/old").exists());
        assert_eq!(fs::read(rootfs.join("data/new")).unwrap(), b"new\n");
    }
    assert!(!root.join("containers/c1").exists());

    // Bundle and run with runc.
    let bundle_dir = tmp.path().join("bundle");
    bundle::create_bundle(&store, &image, &bundle_dir).unwrap();
    let rootfs = bundle_dir.join("rootfs");
    assert_eq!(
        fs::read_link(rootfs.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert!(!rootfs.join("etc/gone").exists());
    assert!(!rootfs.join("data/old").exists());
    assert!(rootfs.join("data/new").exists());
    assert_eq!(
        fs::read(rootfs.join("etc/passwd-link")).unwrap(),
        fs::read(rootfs.join("etc/passwd")).unwrap()
    );
    // The pulled image runs under runc and under skiff's own runtime (built with the workspace:
    // target/<profile>/skiff-runtime, next to this test's deps/ directory).
    let skiff_runtime = std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("skiff-runtime"))
        .unwrap();
    assert!(
        skiff_runtime.exists(),
        "{} is missing: build the workspace first (scripts/test.sh does)",
        skiff_runtime.display()
    );
    for program in [PathBuf::from("runc"), skiff_runtime] {
        let container = RuncContainer {
            program: program.clone(),
            root: tmp.path().join("runtime-state"),
            id: format!("skiff-image-test-{}", std::process::id()),
        };
        let out = Command::new(&program)
            .arg("--root")
            .arg(&container.root)
            .args(["run", "--bundle"])
            .arg(&bundle_dir)
            .arg(&container.id)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            program.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "hi\n",
            "{}",
            program.display()
        );
        drop(container);
    }

    // Archive round trips into fresh stores.
    for (format, file) in [("oci", "img-oci.tar"), ("docker", "img-docker.tar")] {
        let path = tmp.path().join(file);
        match format {
            "oci" => archive::export_oci(&store, &[&image], &path).unwrap(),
            _ => archive::export_docker(&store, &[&image], &path).unwrap(),
        }
        let other = Store::open(tmp.path().join(format!("store-{format}"))).unwrap();
        let imported = archive::import(&other, &path, None).unwrap();
        assert_eq!(imported.len(), 1);
        assert_eq!(imported[0].name, image);
        assert_eq!(
            imported[0].config.rootfs.diff_ids,
            info.config.rootfs.diff_ids
        );
        if format == "oci" {
            assert_eq!(imported[0].manifest_digest, info.manifest_digest);
        }
        let dir = tmp.path().join(format!("bundle-{format}"));
        bundle::create_bundle(&other, &image, &dir).unwrap();
        assert!(dir.join("rootfs/bin/busybox").exists());
    }

    // rm + gc leaves an empty store.
    store.remove(&image).unwrap();
    assert!(store.gc().unwrap() >= 5);
    assert_eq!(count(&root.join("blobs/sha256")), 0);
    assert_eq!(count(&root.join("layers")), 0);

    // Tamper with a layer blob in the registry storage (same size): the pull must fail with a
    // digest error and leave nothing behind.
    let layer_digest = &info.manifest.layers[0].digest[7..];
    let data = registry
        .storage
        .join("docker/registry/v2/blobs/sha256")
        .join(&layer_digest[..2])
        .join(layer_digest)
        .join("data");
    let mut bytes = fs::read(&data).unwrap();
    let last = bytes.len() - 100;
    bytes[last] ^= 0xff;
    fs::write(&data, bytes).unwrap();
    let err = registry::pull(&store, &image, &opts).await.unwrap_err();
    assert!(err.to_string().to_lowercase().contains("digest"), "{err}");
    assert!(store.list().unwrap().is_empty());
    assert_eq!(count(&root.join("blobs/sha256")), 0);
    assert_eq!(count(&root.join("layers")), 0);
    assert_eq!(count(&root.join("tmp")), 0);

    // An unreachable registry is a clear error.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = registry::pull(&store, &format!("127.0.0.1:{port}/x:1"), &opts)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("registry error"), "{err}");
}
