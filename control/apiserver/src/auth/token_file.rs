//! Static bearer tokens (upstream's `--token-auth-file`) and the credentials skiff issues into
//! that file for its own components and nodes.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;

use crate::auth::UserInfo;
use crate::tls::write_private;

/// Bearer tokens in upstream's `--token-auth-file` CSV format: `token,user,uid,"g1,g2"`.
///
/// Unlike upstream's static file, an unknown token makes the server look at the file again
/// (only when its modification time moved), so node credentials issued with
/// `skiff token node` work without a restart.
pub struct Tokens {
    by_token: parking_lot::RwLock<HashMap<String, UserInfo>>,
    path: Option<std::path::PathBuf>,
    /// The file's modification time when it was last read.
    checked: parking_lot::Mutex<Option<std::time::SystemTime>>,
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
                    ..Default::default()
                },
            );
        }
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        Ok(Tokens {
            by_token: parking_lot::RwLock::new(by_token),
            path: Some(path.to_path_buf()),
            checked: parking_lot::Mutex::new(modified),
        })
    }

    /// Reads the file again if it changed since the last look (one `stat`, so a credential
    /// issued a moment ago works on its first request).
    fn reload_if_changed(&self) {
        let Some(path) = &self.path else { return };
        {
            let mut checked = self.checked.lock();
            let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
            if modified == *checked {
                return;
            }
            *checked = modified;
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
        if let Some(kept) = without_retired(&std::fs::read_to_string(&path)?) {
            write_private(&path, &kept)?;
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
        self.authenticate_token(authorization?.strip_prefix("Bearer ")?.trim())
    }

    /// The user of a bearer token (the `Authorization` header already read).
    pub fn authenticate_token(&self, token: &str) -> Option<UserInfo> {
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
];

/// Users whose tokens tokens.csv no longer keeps: the API server toward kubelets authenticates
/// with a client certificate now (`kubelet_proxy`), and its old token would still be worth
/// `system:kubelet-api-admin` on every node.
const RETIRED: &[&str] = &["kube-apiserver-kubelet-client"];

/// `text` without the lines of retired users (a line's second field is its user).
fn without_retired(text: &str) -> Option<String> {
    let retired = |line: &str| {
        line.split(',')
            .nth(1)
            .is_some_and(|user| RETIRED.contains(&user.trim()))
    };
    if !text.lines().any(retired) {
        return None;
    }
    let mut kept: String = text
        .lines()
        .filter(|l| !retired(l))
        .collect::<Vec<_>>()
        .join("\n");
    kept.push('\n');
    Some(kept)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retired_kubelet_client_token_goes() {
        let text = "a0,admin,admin,\"system:masters\"\nk1,kube-apiserver-kubelet-client,kube-apiserver-kubelet-client\ns2,system:kube-scheduler,system:kube-scheduler\n";
        assert_eq!(
            without_retired(text).unwrap(),
            "a0,admin,admin,\"system:masters\"\ns2,system:kube-scheduler,system:kube-scheduler\n"
        );
        assert_eq!(without_retired("a0,admin,admin\n"), None);
        assert!(COMPONENTS.iter().all(|(_, user)| !RETIRED.contains(user)));
    }
}
