//! `skiff token node NAME`: a node's own credential (user `system:node:<name>`, group
//! `system:nodes`), issued on the control plane from its data dir, as a kubeconfig the node's
//! kubelet uses. Until bootstrap tokens and CSRs arrive (the permissions issue), this is how
//! nodes join: the control plane hands each node a credential of its own, never the admin's.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

#[derive(Args)]
pub struct TokenCommand {
    #[command(subcommand)]
    action: TokenAction,
}

#[derive(Subcommand)]
enum TokenAction {
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

pub fn run(cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd.action {
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
