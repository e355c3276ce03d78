//! End to end against Debian's docker-registry on a free 127.0.0.1 port: build a busybox image
//! as an OCI layout, push it with skopeo, pull with skiff-image, check whiteouts, bundle and run
//! with runc, archive round trips, rm + gc, and a tampered blob. Needs root and the packages
//! docker-registry, skopeo, runc, busybox-static; prints a skip line otherwise.

use base64::Engine;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};
use skiff_image::{archive, bundle, overlay, registry, Store};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

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

/// Starts docker-registry; `extra` is appended to its YAML config (e.g. an `auth:` section).
fn start_registry(dir: &Path, extra: &str) -> Registry {
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
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n{extra}",
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

#[derive(Clone, Copy)]
enum Layers {
    Gzip,
    Zstd,
}

impl Layers {
    fn media_type(self) -> &'static str {
        match self {
            Layers::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Layers::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

/// A compressed layer and its diff id (digest of the uncompressed tar).
fn layer(compression: Layers, build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> (Vec<u8>, String) {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    build(&mut builder);
    let raw = builder.into_inner().unwrap();
    let diff_id = sha(&raw);
    let compressed = match compression {
        Layers::Gzip => {
            let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&raw).unwrap();
            gz.finish().unwrap()
        }
        Layers::Zstd => zstd::encode_all(&raw[..], 3).unwrap(),
    };
    (compressed, diff_id)
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
fn write_layout(dir: &Path, compression: Layers) {
    let busybox = fs::read("/bin/busybox").unwrap();
    let (l1, d1) = layer(compression, |b| {
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
    let (l2, d2) = layer(compression, |b| {
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
            {"mediaType": compression.media_type(), "digest": ld1, "size": ls1},
            {"mediaType": compression.media_type(), "digest": ld2, "size": ls2}
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
    let registry = start_registry(tmp.path(), "");
    let layout = tmp.path().join("layout");
    write_layout(&layout, Layers::Gzip);
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

/// A bearer-token server in the shape docker-registry's `auth: token` expects: it checks basic
/// credentials and answers with an ES256 JWT granting the requested scopes, signed by a key
/// whose certificate is the registry's `rootcertbundle` (sent in the JWT's `x5c` header).
struct TokenServer {
    port: u16,
    cert_pem: String,
    /// Tokens issued (requests with the right credentials).
    issued: Arc<AtomicUsize>,
    /// Requests refused for missing or wrong credentials.
    refused: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const TOKEN_USER: &str = "skiff";
const TOKEN_PASSWORD: &str = "s3cret";
const TOKEN_SERVICE: &str = "skiff-test-registry";
const TOKEN_ISSUER: &str = "skiff-test-issuer";

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

async fn start_token_server() -> TokenServer {
    let key = rcgen::KeyPair::generate().unwrap(); // ECDSA P-256
    let params = rcgen::CertificateParams::new(vec!["skiff-test-issuer".to_string()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let rng = ring::rand::SystemRandom::new();
    let signer = Arc::new(
        ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &key.serialize_der(),
            &rng,
        )
        .unwrap(),
    );
    let x5c = base64::engine::general_purpose::STANDARD.encode(cert.der());
    let issued = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{TOKEN_USER}:{TOKEN_PASSWORD}"))
    );
    let handler = {
        let (issued, refused) = (issued.clone(), refused.clone());
        move |headers: axum::http::HeaderMap,
              axum::extract::RawQuery(query): axum::extract::RawQuery| {
            let (issued, refused, signer, x5c, expected) = (
                issued.clone(),
                refused.clone(),
                signer.clone(),
                x5c.clone(),
                expected.clone(),
            );
            async move {
                use axum::response::IntoResponse;
                let authorized = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v == expected);
                if !authorized {
                    refused.fetch_add(1, Ordering::SeqCst);
                    return (axum::http::StatusCode::UNAUTHORIZED, "bad credentials")
                        .into_response();
                }
                // scope=repository:<name>:<actions>, possibly several times.
                let access: Vec<serde_json::Value> = query
                    .unwrap_or_default()
                    .split('&')
                    .filter_map(|kv| kv.strip_prefix("scope="))
                    .map(|scope| {
                        scope
                            .replace("%3A", ":")
                            .replace("%2F", "/")
                            .replace("%2C", ",")
                    })
                    .filter_map(|scope| {
                        let mut parts = scope.splitn(3, ':');
                        let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
                        Some(serde_json::json!({"type": kind, "name": name,
                            "actions": actions.split(',').collect::<Vec<_>>()}))
                    })
                    .collect();
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs();
                let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "x5c": [x5c]});
                let claims = serde_json::json!({
                    "iss": TOKEN_ISSUER, "sub": TOKEN_USER, "aud": TOKEN_SERVICE,
                    "exp": now + 300, "nbf": now - 10, "iat": now,
                    "jti": format!("{now}-{}", issued.load(Ordering::SeqCst)),
                    "access": access,
                });
                let signing_input = format!(
                    "{}.{}",
                    b64url(header.to_string().as_bytes()),
                    b64url(claims.to_string().as_bytes())
                );
                let signature = signer
                    .sign(&ring::rand::SystemRandom::new(), signing_input.as_bytes())
                    .unwrap();
                let token = format!("{signing_input}.{}", b64url(signature.as_ref()));
                issued.fetch_add(1, Ordering::SeqCst);
                axum::Json(serde_json::json!({
                    "token": token, "access_token": token, "expires_in": 300
                }))
                .into_response()
            }
        }
    };
    let app = axum::Router::new().route("/token", axum::routing::get(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    TokenServer {
        port,
        cert_pem: cert.pem(),
        issued,
        refused,
        task,
    }
}

/// A registry behind bearer-token auth, an image with zstd layers: anonymous pulls are refused
/// with a clear error and leave nothing behind; credentials from a docker config.json get a
/// token and the pull works, zstd layers unpacked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_auth_and_zstd_layers() {
    if let Some(reason) = skip_reason() {
        eprintln!("SKIP token_auth_and_zstd_layers: {reason}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tokens = start_token_server().await;
    let bundle_pem = tmp.path().join("issuer.pem");
    fs::write(&bundle_pem, &tokens.cert_pem).unwrap();
    let registry = start_registry(
        tmp.path(),
        &format!(
            "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: {TOKEN_SERVICE}\n    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
            tokens.port,
            bundle_pem.display()
        ),
    );
    let layout = tmp.path().join("layout");
    write_layout(&layout, Layers::Zstd);
    let image = format!("127.0.0.1:{}/skiff/busybox:zstd", registry.port);
    run(Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(format!("--dest-creds={TOKEN_USER}:{TOKEN_PASSWORD}"))
        .arg(format!("oci:{}:latest", layout.display()))
        .arg(format!("docker://{image}")));
    let pushed = tokens.issued.load(Ordering::SeqCst);
    assert!(pushed > 0, "skopeo pushed without a token");

    let root = tmp.path().join("store");
    let store = Store::open(&root).unwrap();
    // Anonymous: no credentials in the (missing) docker config.
    let anonymous = registry::PullOptions {
        docker_config: Some(tmp.path().join("no-such-config.json")),
        ..Default::default()
    };
    let err = registry::pull(&store, &image, &anonymous)
        .await
        .unwrap_err();
    let message = err.to_string().to_lowercase();
    assert!(
        message.contains("401") || message.contains("unauthorized") || message.contains("auth"),
        "{err}"
    );
    assert!(tokens.refused.load(Ordering::SeqCst) > 0);
    assert!(store.list().unwrap().is_empty());
    assert_eq!(count(&root.join("blobs/sha256")), 0);

    // Credentials from a docker config.json (inline base64 `auth`, as `docker login` writes).
    let config = tmp.path().join("docker-config.json");
    let auth =
        base64::engine::general_purpose::STANDARD.encode(format!("{TOKEN_USER}:{TOKEN_PASSWORD}"));
    fs::write(
        &config,
        serde_json::json!({"auths": {format!("127.0.0.1:{}", registry.port): {"auth": auth}}})
            .to_string(),
    )
    .unwrap();
    let with_credentials = registry::PullOptions {
        docker_config: Some(config),
        ..Default::default()
    };
    let info = registry::pull(&store, &image, &with_credentials)
        .await
        .unwrap();
    assert!(
        tokens.issued.load(Ordering::SeqCst) > pushed,
        "pulled without a token"
    );
    assert!(info
        .manifest
        .layers
        .iter()
        .all(|l| l.media_type.to_string().ends_with("tar+zstd")));
    let bundle_dir = tmp.path().join("bundle");
    bundle::create_bundle(&store, &image, &bundle_dir).unwrap();
    let rootfs = bundle_dir.join("rootfs");
    assert_eq!(
        fs::read(rootfs.join("bin/busybox")).unwrap(),
        fs::read("/bin/busybox").unwrap()
    );
    assert!(!rootfs.join("etc/gone").exists());
    assert!(!rootfs.join("data/old").exists());
    assert_eq!(fs::read(rootfs.join("data/new")).unwrap(), b"new\n");
}
