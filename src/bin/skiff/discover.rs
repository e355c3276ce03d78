//! `skiff token discover`: kubeadm's token discovery (`cmd/kubeadm/app/discovery/token`). A
//! node that has only a bootstrap token and the CA's pin reads `kube-public/cluster-info`
//! anonymously over a TLS connection it does not verify yet, and believes what it read only if
//! the ConfigMap carries `jws-kubeconfig-<token id>` and that signature is the token's (the
//! bootstrap signer made it with the token's secret), and the CA in it matches a pin. It then
//! reads the ConfigMap again over a connection verified with that CA — the same content, or
//! nothing is written — and writes the bootstrap kubeconfig: the server it was given, the CA,
//! the token (the user kubeadm names `tls-bootstrap-token-user`).
//!
//! `skiff token create --print-join-command` prints this command with the cluster's pin.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use skiff_apiserver::auth::{bootstrap_token, cluster_info};

/// How long each read of cluster-info may take.
const TIMEOUT: Duration = Duration::from_secs(10);

fn server_url(server: &str) -> String {
    if server.contains("://") {
        server.to_string()
    } else {
        format!("https://{server}")
    }
}

/// An anonymous client for `url`, verifying the server with `roots` or (none) not at all.
fn anonymous(url: &str, roots: Option<Vec<Vec<u8>>>) -> anyhow::Result<kube::Client> {
    let mut config = kube::Config::new(url.parse().with_context(|| format!("--server {url}"))?);
    config.accept_invalid_certs = roots.is_none();
    config.root_cert = roots;
    config.connect_timeout = Some(TIMEOUT);
    config.read_timeout = Some(TIMEOUT);
    Ok(kube::Client::try_from(config)?)
}

/// The kubeconfig text in cluster-info, and the signature `token_id` made of it.
async fn read(client: kube::Client, token_id: &str) -> anyhow::Result<(String, Option<String>)> {
    let cm = Api::<ConfigMap>::namespaced(client, cluster_info::NAMESPACE)
        .get(cluster_info::NAME)
        .await
        .with_context(|| format!("reading {}/{}", cluster_info::NAMESPACE, cluster_info::NAME))?;
    let data = cm.data.unwrap_or_default();
    let content = data
        .get(cluster_info::KUBECONFIG_KEY)
        .cloned()
        .context("the cluster-info ConfigMap has no kubeconfig")?;
    let signature = data
        .get(&format!("{}{token_id}", cluster_info::SIGNATURE_PREFIX))
        .cloned();
    Ok((content, signature))
}

pub async fn run(
    server: &str,
    token: &str,
    pins: &[String],
    unsafe_skip_ca_verification: bool,
    output: &Path,
) -> anyhow::Result<()> {
    let (id, secret) = bootstrap_token::parse_token(token).with_context(|| {
        format!("the bootstrap token {token:?} is not of the form [a-z0-9]{{6}}.[a-z0-9]{{16}}")
    })?;
    anyhow::ensure!(
        !pins.is_empty() || unsafe_skip_ca_verification,
        "give --discovery-token-ca-cert-hash sha256:<hex> (skiff token create --print-join-command prints it), or --discovery-token-unsafe-skip-ca-verification"
    );
    let url = server_url(server);
    let (content, signature) = read(anonymous(&url, None)?, id).await?;
    let signature = signature.with_context(|| {
        format!("there is no JWS signed token in the cluster-info ConfigMap. This token id {id:?} is invalid for this cluster, can't connect")
    })?;
    anyhow::ensure!(
        cluster_info::signature_is_valid(&signature, &content, id, secret),
        "failed to verify JWS signature of received cluster info object, can't trust this API Server"
    );
    let config = kube::config::Kubeconfig::from_yaml(&content)
        .context("the cluster-info kubeconfig does not parse")?;
    let ca_data = config
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.certificate_authority_data.clone())
        .context("the cluster-info kubeconfig has no certificate-authority-data")?;
    let ca_pem = cluster_info::ca_pem_from_data(&ca_data).map_err(anyhow::Error::msg)?;
    if !pins.is_empty() {
        let hash = cluster_info::ca_cert_hash(&ca_pem).map_err(anyhow::Error::msg)?;
        anyhow::ensure!(
            pins.iter().any(|p| p.eq_ignore_ascii_case(&hash)),
            "cluster CA found in cluster-info ConfigMap is invalid: none of the public keys {hash:?} are pinned"
        );
    }
    // Again, now trusting that CA: a server that answered the first read differently is not
    // the cluster's.
    let roots = cluster_info::certificates_der(&ca_pem).map_err(anyhow::Error::msg)?;
    let (again, _) = read(anonymous(&url, Some(roots))?, id)
        .await
        .context("reading cluster-info again with the cluster's CA")?;
    anyhow::ensure!(
        again == content,
        "the cluster-info read with the cluster's CA differs from the signed one"
    );
    skiff_apiserver::tls::write_kubeconfig(
        output,
        &url,
        &ca_pem,
        "tls-bootstrap-token-user",
        token,
    )?;
    println!("{}", output.display());
    Ok(())
}

/// `skiff token discover …` for `token` with the server and CA pin of `kubeconfig`.
pub async fn join_command(kubeconfig: &Path, token: &str) -> anyhow::Result<String> {
    let server = skiff_controllers::config_from_kubeconfig(kubeconfig)
        .await?
        .cluster_url
        .to_string();
    let ca_pem = skiff_controllers::rootcacert::load_ca(None, kubeconfig)?;
    let hash = cluster_info::ca_cert_hash(&ca_pem).map_err(anyhow::Error::msg)?;
    Ok(format!(
        "skiff token discover --server {} --token {token} --discovery-token-ca-cert-hash {hash} --output bootstrap-kubelet.kubeconfig",
        server.trim_end_matches('/')
    ))
}
