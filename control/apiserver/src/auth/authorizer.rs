//! The authorizer chain (`--authorization-mode`, upstream's union authorizer): members of
//! system:masters may do anything (upstream's privileged-group short cut), then the Node
//! authorizer, then RBAC; the first to allow wins, and a denial carries their reasons.
//! `AlwaysAllow` turns checks off (benchmarks; upstream's mode of the same name).

use super::node::{NodeAuthorizer, NodeDecision};
use super::rbac::Rbac;
use super::Attributes;
use crate::cache::Caches;
use crate::error::ApiResult;
use crate::storage::Storage;

#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    Allow(String),
    Deny(String),
}

impl Decision {
    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }
    pub fn reason(&self) -> &str {
        match self {
            Decision::Allow(r) | Decision::Deny(r) => r,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    AlwaysAllow,
    Node,
    Rbac,
}

pub struct Authorizer {
    modes: Vec<Mode>,
    rbac: Rbac,
    node: NodeAuthorizer,
}

impl Authorizer {
    /// `modes`: upstream's comma-separated `--authorization-mode` (`Node`, `RBAC`,
    /// `AlwaysAllow`).
    pub async fn new(caches: &Caches, modes: &str) -> anyhow::Result<Authorizer> {
        let mut parsed = Vec::new();
        for m in modes.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            parsed.push(match m {
                "AlwaysAllow" => Mode::AlwaysAllow,
                "Node" => Mode::Node,
                "RBAC" => Mode::Rbac,
                other => anyhow::bail!(
                    "--authorization-mode: {other:?} is not supported (Node, RBAC, AlwaysAllow)"
                ),
            });
        }
        anyhow::ensure!(!parsed.is_empty(), "--authorization-mode is empty");
        let rbac = Rbac::new(caches)
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
        let node = NodeAuthorizer::new(caches)
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
        Ok(Authorizer {
            modes: parsed,
            rbac,
            node,
        })
    }

    pub fn rbac(&self) -> &Rbac {
        &self.rbac
    }

    /// Whether RBAC decides (SelfSubjectRulesReview lists RBAC rules only then).
    pub fn always_allows(&self) -> bool {
        self.modes.contains(&Mode::AlwaysAllow)
    }

    pub fn authorize(&self, attrs: &Attributes) -> Decision {
        if attrs.user.in_group("system:masters") {
            return Decision::Allow(String::new());
        }
        let mut reasons = Vec::new();
        for mode in &self.modes {
            match mode {
                Mode::AlwaysAllow => return Decision::Allow(String::new()),
                Mode::Node => match self.node.authorize(attrs) {
                    NodeDecision::Allow => return Decision::Allow(String::new()),
                    NodeDecision::NoOpinion(reason) if !reason.is_empty() => reasons.push(reason),
                    NodeDecision::NoOpinion(_) => {}
                },
                Mode::Rbac => {
                    if let Some(reason) = self.rbac.authorize(attrs) {
                        return Decision::Allow(reason);
                    }
                }
            }
        }
        Decision::Deny(reasons.join(", "))
    }

    /// As `authorize`, but a denial is confirmed against caches that have caught up with the
    /// store: a role or binding written just before this request counts, as a client that
    /// just created its RoleBinding expects.
    pub async fn authorize_fresh(
        &self,
        storage: &Storage,
        attrs: &Attributes<'_>,
    ) -> ApiResult<Decision> {
        let decision = self.authorize(attrs);
        if decision.allowed() {
            return Ok(decision);
        }
        let revision = storage.revision().await?;
        for cacher in self.rbac.cachers().iter().chain(self.node.cachers()) {
            cacher.wait_for(revision).await?;
        }
        Ok(self.authorize(attrs))
    }
}
