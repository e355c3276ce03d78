//! The cluster's PKI and credentials, created on first start: a CA, the API server's serving
//! certificate (SANs: 127.0.0.1, the node addresses, kubernetes.default.svc…), bearer tokens in
//! upstream's token file format, and the admin kubeconfig.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

pub struct Pki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Loads the PKI from `dir/tls`, creating it (and a serving certificate for `sans`) when missing.
pub fn ensure_pki(dir: &Path, sans: &[String]) -> anyhow::Result<Pki> {
    let tls = dir.join("tls");
    std::fs::create_dir_all(&tls).with_context(|| format!("creating {}", tls.display()))?;
    let (ca_crt, ca_key, crt, key) = (
        tls.join("ca.crt"),
        tls.join("ca.key"),
        tls.join("apiserver.crt"),
        tls.join("apiserver.key"),
    );
    if ca_crt.exists() && crt.exists() && key.exists() {
        return Ok(Pki {
            ca_pem: std::fs::read_to_string(&ca_crt)?,
            cert_pem: std::fs::read_to_string(&crt)?,
            key_pem: std::fs::read_to_string(&key)?,
        });
    }
    let ca_keypair = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "skiff-ca");
    ca_params.distinguished_name = dn;
    ca_params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let ca_cert = ca_params.self_signed(&ca_keypair)?;
    let issuer = rcgen::Issuer::new(ca_params, &ca_keypair);

    let server_key = KeyPair::generate()?;
    let mut names: Vec<String> = vec![
        "localhost".into(),
        "kubernetes".into(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        "kubernetes.default.svc.cluster.local".into(),
        "127.0.0.1".into(),
        "10.96.0.1".into(),
    ];
    for s in sans {
        if !names.contains(s) {
            names.push(s.clone());
        }
    }
    let mut params = CertificateParams::new(names)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "kube-apiserver");
    params.distinguished_name = dn;
    params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&server_key, &issuer)?;

    write_private(&ca_key, &ca_keypair.serialize_pem())?;
    write_private(&key, &server_key.serialize_pem())?;
    write_private(&crt, &cert.pem())?;
    write_private(&ca_crt, &ca_cert.pem())?;
    Ok(Pki {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: server_key.serialize_pem(),
    })
}

pub fn server_config(pki: &Pki) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let certs: Vec<_> =
        rustls_pemfile::certs(&mut pki.cert_pem.as_bytes()).collect::<Result<_, _>>()?;
    let key = rustls_pemfile::private_key(&mut pki.key_pem.as_bytes())?
        .context("no private key in apiserver.key")?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)?;
    // kubectl speaks HTTP/2 when offered; exec/attach upgrades need HTTP/1.1.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
}

/// Bearer tokens in upstream's `--token-auth-file` CSV format: `token,user,uid,"g1,g2"`.
///
/// Unlike upstream's static file, an unknown token makes the server look at the file again
/// (at most once a second, only when it changed), so node credentials issued with
/// `skiff token node` work without a restart.
pub struct Tokens {
    by_token: parking_lot::RwLock<HashMap<String, UserInfo>>,
    path: Option<std::path::PathBuf>,
    checked: parking_lot::Mutex<(std::time::Instant, Option<std::time::SystemTime>)>,
}

fn random_token() -> String {
    use rand::Rng;
    let bytes: [u8; 24] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Tokens {
    pub fn load(path: &Path) -> anyhow::Result<Tokens> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading token file {}", path.display()))?;
        let mut by_token = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.splitn(4, ',');
            let (Some(token), Some(user), Some(uid)) =
                (fields.next(), fields.next(), fields.next())
            else {
                anyhow::bail!(
                    "{}:{}: expected token,user,uid[,\"groups\"]",
                    path.display(),
                    n + 1
                );
            };
            let groups = fields
                .next()
                .map(|g| {
                    g.trim_matches('"')
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            by_token.insert(
                token.to_string(),
                UserInfo {
                    name: user.to_string(),
                    uid: uid.to_string(),
                    groups,
                },
            );
        }
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        Ok(Tokens {
            by_token: parking_lot::RwLock::new(by_token),
            path: Some(path.to_path_buf()),
            checked: parking_lot::Mutex::new((std::time::Instant::now(), modified)),
        })
    }

    /// Reads the file again if it changed since the last look (at most once a second).
    fn reload_if_changed(&self) {
        let Some(path) = &self.path else { return };
        {
            let mut checked = self.checked.lock();
            if checked.0.elapsed() < std::time::Duration::from_secs(1) {
                return;
            }
            let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
            checked.0 = std::time::Instant::now();
            if modified == checked.1 {
                return;
            }
            checked.1 = modified;
        }
        match Tokens::load(path) {
            Ok(fresh) => *self.by_token.write() = fresh.by_token.into_inner(),
            Err(e) => tracing::warn!("reloading {}: {e:#}", path.display()),
        }
    }

    /// Loads `dir/tokens.csv`, creating it with an admin token (group system:masters) if
    /// missing, and adding a token for each control-plane component (`COMPONENTS`) it lacks.
    pub fn ensure(dir: &Path) -> anyhow::Result<(Tokens, String)> {
        let path = dir.join("tokens.csv");
        if !path.exists() {
            write_private(
                &path,
                &format!("{},admin,admin,\"system:masters\"\n", random_token()),
            )?;
        }
        let mut tokens = Tokens::load(&path)?;
        let missing: Vec<&str> = COMPONENTS
            .iter()
            .map(|(_, user)| *user)
            .filter(|user| tokens.token_of(user).is_none())
            .collect();
        if !missing.is_empty() {
            let mut text = std::fs::read_to_string(&path)?;
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            for user in missing {
                text.push_str(&format!("{},{user},{user}\n", random_token()));
            }
            write_private(&path, &text)?;
            tokens = Tokens::load(&path)?;
        }
        let admin = tokens
            .token_of("admin")
            .context("tokens.csv has no admin user")?;
        Ok((tokens, admin))
    }

    /// The token of `user`, if the file has one.
    pub fn token_of(&self, user: &str) -> Option<String> {
        self.by_token
            .read()
            .iter()
            .find(|(_, u)| u.name == user)
            .map(|(t, _)| t.clone())
    }

    pub fn authenticate(&self, authorization: Option<&str>) -> Option<UserInfo> {
        let token = authorization?.strip_prefix("Bearer ")?.trim();
        let known = self.by_token.read().get(token).cloned();
        let mut user = match known {
            Some(user) => user,
            None => {
                self.reload_if_changed();
                self.by_token.read().get(token)?.clone()
            }
        };
        user.groups.push("system:authenticated".into());
        Some(user)
    }
}

/// The control-plane components with identities of their own, as upstream names them:
/// (kubeconfig file stem, user).
pub const COMPONENTS: &[(&str, &str)] = &[
    ("scheduler", "system:kube-scheduler"),
    ("controller-manager", "system:kube-controller-manager"),
    // The API server toward kubelets (logs, exec, port-forward); no kubeconfig is needed,
    // but the token is kept with the others.
    ("apiserver-kubelet-client", "kube-apiserver-kubelet-client"),
];

/// Adds a credential for node `name` (user `system:node:<name>`, group `system:nodes`, as
/// upstream's Node authorizer expects) to `dir/tokens.csv`, or returns the one it has.
pub fn ensure_node_token(dir: &Path, name: &str) -> anyhow::Result<String> {
    ensure_user_token(dir, &format!("system:node:{name}"), &["system:nodes"])
}

/// The token of `user` (with `groups`) in tokens.csv, added if it has none.
pub fn ensure_user_token(dir: &Path, user: &str, groups: &[&str]) -> anyhow::Result<String> {
    let path = dir.join("tokens.csv");
    let tokens = Tokens::load(&path)?;
    if let Some(token) = tokens.token_of(user) {
        return Ok(token);
    }
    let token = random_token();
    let mut text = std::fs::read_to_string(&path)?;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!("{token},{user},{user},\"{}\"\n", groups.join(",")));
    write_private(&path, &text)?;
    Ok(token)
}

/// Writes a kubeconfig for `server` that trusts the cluster CA and authenticates as `user`
/// with `token`.
pub fn write_kubeconfig(
    path: &Path,
    server: &str,
    ca_pem: &str,
    user: &str,
    token: &str,
) -> anyhow::Result<()> {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let config = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: skiff\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\n\
         users:\n- name: {user}\n  user:\n    token: {token}\ncontexts:\n- name: skiff\n  context:\n    cluster: skiff\n    user: {user}\n\
         current-context: skiff\n"
    );
    write_private(path, &config)
}
