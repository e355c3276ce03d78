//! Credentials.
//!
//! `skiff token create|list|delete` (as `kubeadm token`): bootstrap tokens, the Secrets
//! `kube-system/bootstrap-token-<id>` a joining node authenticates with
//! (`auth::bootstrap_token`) to ask for its own client certificate (TLS bootstrap: a
//! CertificateSigningRequest that the controller manager approves and signs).
//!
//! `skiff token discover` (`discover.rs`): kubeadm's token discovery, which turns a token and
//! a CA pin into the bootstrap kubeconfig of a joining node.
//!
//! `skiff token node NAME`: a node's own static credential (user `system:node:<name>`, group
//! `system:nodes`), issued on the control plane from its data dir, as a kubeconfig the node's
//! kubelet uses; the control plane hands each node a credential of its own, never the admin's.
//! `skiff token user NAME` does the same for another identity.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use skiff_apiserver::auth::bootstrap_token;

#[derive(Args)]
pub struct TokenCommand {
    #[command(subcommand)]
    action: TokenAction,
}

#[derive(Subcommand)]
enum TokenAction {
    /// Create a bootstrap token (through the API) and print it, as `kubeadm token create`.
    Create {
        /// The token to create (`[a-z0-9]{6}.[a-z0-9]{16}`); a random one if omitted.
        token: Option<String>,
        /// How long the token is valid (a Go duration); 0 never expires.
        #[arg(long, default_value = "24h0m0s", value_parser = skiff_controllers::duration::parse)]
        ttl: std::time::Duration,
        /// Extra groups the token authenticates in (each `system:bootstrappers:…`).
        #[arg(long, value_delimiter = ',', default_value = bootstrap_token::DEFAULT_NODE_GROUP)]
        groups: Vec<String>,
        /// A human-friendly description of the token's purpose.
        #[arg(long, default_value = "")]
        description: String,
        /// A kubeconfig allowed to create Secrets in kube-system.
        #[arg(long, default_value = DEFAULT_KUBECONFIG)]
        kubeconfig: PathBuf,
        /// Print the whole command a joining node runs (`skiff token discover` with the
        /// server, the token and the CA pin), as kubeadm's flag prints `kubeadm join …`.
        #[arg(long)]
        print_join_command: bool,
    },
    /// Token discovery, the first step of kubeadm's join: read `kube-public/cluster-info`
    /// from the server without trusting it yet, accept it only if the bootstrap token signed
    /// it and the CA matches a pin, then write the bootstrap kubeconfig (the server, that CA,
    /// the token) for the kubelet's `--bootstrap-kubeconfig`.
    Discover {
        /// The API server (`HOST:PORT` or `https://HOST:PORT`).
        #[arg(long)]
        server: String,
        /// The bootstrap token (`skiff token create`).
        #[arg(long)]
        token: String,
        /// `sha256:<hex>` pins of the CA's public key (`skiff token create
        /// --print-join-command` prints the cluster's); the CA must match one.
        #[arg(long = "discovery-token-ca-cert-hash", value_delimiter = ',')]
        ca_cert_hashes: Vec<String>,
        /// Trust the CA on the token's signature alone (kubeadm's flag of the same name).
        #[arg(long = "discovery-token-unsafe-skip-ca-verification")]
        unsafe_skip_ca_verification: bool,
        /// Where to write the bootstrap kubeconfig.
        #[arg(long, short)]
        output: PathBuf,
    },
    /// List the bootstrap tokens, as `kubeadm token list`.
    List {
        #[arg(long, default_value = DEFAULT_KUBECONFIG)]
        kubeconfig: PathBuf,
    },
    /// Delete bootstrap tokens (by token or token id), as `kubeadm token delete`.
    Delete {
        #[arg(required = true)]
        tokens: Vec<String>,
        #[arg(long, default_value = DEFAULT_KUBECONFIG)]
        kubeconfig: PathBuf,
    },
    /// Issue (or re-issue the existing) credential of a node and write its kubeconfig.
    Node {
        /// The node's name.
        name: String,
        /// The control plane's data dir (`skiff server --data-dir`).
        #[arg(long, default_value = "/var/lib/skiff/server")]
        data_dir: PathBuf,
        /// The API server URL the node reaches.
        #[arg(long)]
        server: String,
        /// Where to write the kubeconfig.
        #[arg(long, short)]
        output: PathBuf,
    },
    /// Issue (or re-issue) the credential of a node's network agent (`skiff netd`): user
    /// `system:netd:<name>` in group `system:skiff-netds`, which the default policy binds to
    /// what netd reads and writes.
    Netd {
        /// The node's name.
        name: String,
        #[arg(long, default_value = "/var/lib/skiff/server")]
        data_dir: PathBuf,
        #[arg(long)]
        server: String,
        #[arg(long, short)]
        output: PathBuf,
    },
    /// Issue (or re-issue) the credential of another identity, e.g. an addon's
    /// (`system:serviceaccount:kube-system:skiff-dns`), and write its kubeconfig.
    User {
        /// The user name.
        name: String,
        /// Its groups.
        #[arg(long = "group")]
        groups: Vec<String>,
        #[arg(long, default_value = "/var/lib/skiff/server")]
        data_dir: PathBuf,
        #[arg(long)]
        server: String,
        #[arg(long, short)]
        output: PathBuf,
    },
}

const DEFAULT_KUBECONFIG: &str = "/var/lib/skiff/server/admin.kubeconfig";

pub fn run(cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd.action {
        TokenAction::Create {
            token,
            ttl,
            groups,
            description,
            kubeconfig,
            print_join_command,
        } => tokio::runtime::Runtime::new()?.block_on(create(
            token,
            ttl,
            groups,
            description,
            kubeconfig,
            print_join_command,
        )),
        TokenAction::Discover {
            server,
            token,
            ca_cert_hashes,
            unsafe_skip_ca_verification,
            output,
        } => tokio::runtime::Runtime::new()?.block_on(crate::discover::run(
            &server,
            &token,
            &ca_cert_hashes,
            unsafe_skip_ca_verification,
            &output,
        )),
        TokenAction::List { kubeconfig } => {
            tokio::runtime::Runtime::new()?.block_on(list(kubeconfig))
        }
        TokenAction::Delete { tokens, kubeconfig } => {
            tokio::runtime::Runtime::new()?.block_on(delete(tokens, kubeconfig))
        }
        TokenAction::User {
            name,
            groups,
            data_dir,
            server,
            output,
        } => {
            let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
            let token =
                skiff_apiserver::auth::token_file::ensure_user_token(&data_dir, &name, &groups)
                    .with_context(|| format!("issuing a credential in {}", data_dir.display()))?;
            write(&data_dir, &server, &output, &name, &token)
        }
        TokenAction::Netd {
            name,
            data_dir,
            server,
            output,
        } => {
            let user = format!("system:netd:{name}");
            let group = skiff_apiserver::auth::rbac::policy::NETD_GROUP;
            let token =
                skiff_apiserver::auth::token_file::ensure_user_token(&data_dir, &user, &[group])
                    .with_context(|| format!("issuing a credential in {}", data_dir.display()))?;
            write(&data_dir, &server, &output, &user, &token)
        }
        TokenAction::Node {
            name,
            data_dir,
            server,
            output,
        } => {
            let token = skiff_apiserver::auth::token_file::ensure_node_token(&data_dir, &name)
                .with_context(|| format!("issuing a credential in {}", data_dir.display()))?;
            write(
                &data_dir,
                &server,
                &output,
                &format!("system:node:{name}"),
                &token,
            )
        }
    }
}

fn write(
    data_dir: &std::path::Path,
    server: &str,
    output: &std::path::Path,
    user: &str,
    token: &str,
) -> anyhow::Result<()> {
    let ca = data_dir.join("tls").join("ca.crt");
    let ca_pem =
        std::fs::read_to_string(&ca).with_context(|| format!("reading {}", ca.display()))?;
    if let Some(parent) = output.parent() {
        std::fs::create_dir_all(parent)?;
    }
    skiff_apiserver::tls::write_kubeconfig(output, server, &ca_pem, user, token)?;
    println!("{}", output.display());
    Ok(())
}

async fn secrets(kubeconfig: &std::path::Path) -> anyhow::Result<Api<Secret>> {
    let client = skiff_controllers::client_from_kubeconfig(kubeconfig).await?;
    Ok(Api::namespaced(client, bootstrap_token::NAMESPACE))
}

async fn create(
    token: Option<String>,
    ttl: std::time::Duration,
    groups: Vec<String>,
    description: String,
    kubeconfig: PathBuf,
    print_join_command: bool,
) -> anyhow::Result<()> {
    let token = token.unwrap_or_else(bootstrap_token::generate_token);
    // The pin is read before the token exists: a kubeconfig without a CA fails first.
    let join = if print_join_command {
        Some(crate::discover::join_command(&kubeconfig, &token).await?)
    } else {
        None
    };
    let expiration = (!ttl.is_zero())
        .then(|| skiff_apiserver::timestamps::rfc3339_in(ttl.as_secs().max(1) as i64));
    let groups: Vec<String> = groups.into_iter().filter(|g| !g.is_empty()).collect();
    let object = bootstrap_token::secret_for(&token, expiration.as_deref(), &groups, &description)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let secret: Secret = serde_json::from_value(object)?;
    secrets(&kubeconfig)
        .await?
        .create(&PostParams::default(), &secret)
        .await
        .with_context(|| {
            format!(
                "creating the Secret {}/{} (is the token already in use?)",
                bootstrap_token::NAMESPACE,
                secret.metadata.name.as_deref().unwrap_or_default()
            )
        })?;
    println!("{}", join.unwrap_or(token));
    Ok(())
}

/// kubeadm's `duration.ShortHumanDuration`.
fn short_human(seconds: i64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86400 => format!("{}h", s / 3600),
        s if s < 86400 * 365 => format!("{}d", s / 86400),
        s => format!("{}y", s / (86400 * 365)),
    }
}

/// One `kubeadm token list` row of a bootstrap-token Secret, if it is a well-formed one.
fn list_row(secret: &Secret, now: std::time::SystemTime) -> Option<[String; 6]> {
    let name = secret.metadata.name.as_deref()?;
    let id = name.strip_prefix(bootstrap_token::SECRET_PREFIX)?;
    if secret.type_.as_deref() != Some(bootstrap_token::SECRET_TYPE) {
        return None;
    }
    let data = secret.data.as_ref()?;
    let get = |key: &str| {
        data.get(key)
            .map(|v| String::from_utf8_lossy(&v.0).into_owned())
            .unwrap_or_default()
    };
    let token = format!("{id}.{}", get(bootstrap_token::TOKEN_SECRET_KEY));
    bootstrap_token::parse_token(&token)?;
    let expiration = get(bootstrap_token::EXPIRATION_KEY);
    let (ttl, expires) = if expiration.is_empty() {
        ("<forever>".to_string(), "<never>".to_string())
    } else {
        let remaining = expiration
            .parse::<k8s_openapi::jiff::Timestamp>()
            .ok()
            .map(|at| {
                at.as_second()
                    - now
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs() as i64)
            });
        let ttl = match remaining {
            Some(s) if s > 0 => short_human(s),
            _ => "<invalid>".to_string(),
        };
        (ttl, expiration)
    };
    let mut usages: Vec<&str> = data
        .iter()
        .filter(|(_, v)| v.0 == b"true")
        .filter_map(|(k, _)| k.strip_prefix("usage-bootstrap-"))
        .collect();
    usages.sort_unstable();
    let description = match get(bootstrap_token::DESCRIPTION_KEY) {
        d if d.is_empty() => "<none>".to_string(),
        d => d,
    };
    Some([
        token,
        ttl,
        expires,
        usages.join(","),
        description,
        get(bootstrap_token::EXTRA_GROUPS_KEY),
    ])
}

async fn list(kubeconfig: PathBuf) -> anyhow::Result<()> {
    let list = secrets(&kubeconfig)
        .await?
        .list(&ListParams::default())
        .await
        .context("listing the Secrets in kube-system")?;
    let now = std::time::SystemTime::now();
    let mut rows = vec![[
        "TOKEN",
        "TTL",
        "EXPIRES",
        "USAGES",
        "DESCRIPTION",
        "EXTRA GROUPS",
    ]
    .map(String::from)];
    rows.extend(list.items.iter().filter_map(|s| list_row(s, now)));
    let widths: Vec<usize> = (0..6)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", line.join("   ").trim_end());
    }
    Ok(())
}

async fn delete(tokens: Vec<String>, kubeconfig: PathBuf) -> anyhow::Result<()> {
    let api = secrets(&kubeconfig).await?;
    for token in tokens {
        let id = match bootstrap_token::parse_token(&token) {
            Some((id, _)) => id.to_string(),
            None if token.len() == 6
                && token
                    .bytes()
                    .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()) =>
            {
                token.clone()
            }
            None => anyhow::bail!(
                "{token:?} is neither a bootstrap token ([a-z0-9]{{6}}.[a-z0-9]{{16}}) nor a token id ([a-z0-9]{{6}})"
            ),
        };
        let name = format!("{}{id}", bootstrap_token::SECRET_PREFIX);
        api.delete(&name, &DeleteParams::default())
            .await
            .with_context(|| format!("deleting the bootstrap token {id}"))?;
        println!("bootstrap token {id:?} deleted");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_rows_as_kubeadm() {
        let object = bootstrap_token::secret_for(
            "abcdef.0123456789abcdef",
            Some("2030-01-01T00:00:00Z"),
            &["system:bootstrappers:skiff:default-node-token".into()],
            "",
        )
        .unwrap();
        let secret: Secret = serde_json::from_value(object).unwrap();
        let now = std::time::UNIX_EPOCH
            + std::time::Duration::from_secs(
                "2029-12-31T01:00:00Z"
                    .parse::<k8s_openapi::jiff::Timestamp>()
                    .unwrap()
                    .as_second() as u64,
            );
        let row = list_row(&secret, now).unwrap();
        assert_eq!(
            row,
            [
                "abcdef.0123456789abcdef",
                "23h",
                "2030-01-01T00:00:00Z",
                "authentication,signing",
                "<none>",
                "system:bootstrappers:skiff:default-node-token"
            ]
        );
        let later = now + std::time::Duration::from_secs(86400);
        assert_eq!(list_row(&secret, later).unwrap()[1], "<invalid>");
    }
}
