//! `/healthz` as k8s.io/apiserver's `healthz` package answers it: every named check runs on
//! each request; all passing is `200 ok` (with `?verbose`, one `[+]<name> ok` line per check and
//! `healthz check passed`); any failing is `500` with the per-check lines (`[-]<name> failed:
//! reason withheld` — the reason goes only to the log, the endpoint being public) and
//! `healthz check failed`. `?exclude=<name>` skips a check. Checks can be added while serving
//! (upstream's controller manager adds one per controller once it leads:
//! controller-manager's `MutableHealthzHandler`).

use std::sync::Arc;

use parking_lot::RwLock;

/// A check: `Err(reason)` when unhealthy.
pub type CheckFn = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// One named check (upstream's `healthz.HealthChecker`).
#[derive(Clone)]
pub struct Check {
    name: String,
    check: CheckFn,
}

impl Check {
    pub fn new(
        name: impl Into<String>,
        check: impl Fn() -> Result<(), String> + Send + Sync + 'static,
    ) -> Check {
        Check {
            name: name.into(),
            check: Arc::new(check),
        }
    }

    /// A check that always passes (upstream's `PingHealthz`, and controller-manager's
    /// `NamedPingChecker` for a running controller).
    pub fn ping(name: impl Into<String>) -> Check {
        Check::new(name, || Ok(()))
    }

    /// The leader election check of kube-controller-manager and kube-scheduler (client-go's
    /// `HealthzAdaptor`, `leaderElection`): fails when this instance holds the Lease but has not
    /// renewed it for the lease duration plus `tolerance` (upstream: 20 s).
    pub fn leader_election(
        health: skiff_leaderelection::LeaderHealth,
        tolerance: std::time::Duration,
    ) -> Check {
        Check::new("leaderElection", move || health.check(tolerance))
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The checks behind one health endpoint.
#[derive(Default)]
pub struct Healthz {
    checks: RwLock<Vec<Check>>,
}

/// An answer: the status code and the plain-text body.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Healthz {
    pub fn new(checks: Vec<Check>) -> Healthz {
        Healthz {
            checks: RwLock::new(checks),
        }
    }

    pub fn add(&self, check: Check) {
        self.checks.write().push(check);
    }

    /// The checks, in order.
    pub fn checks(&self) -> Vec<Check> {
        self.checks.read().clone()
    }

    pub fn names(&self) -> Vec<String> {
        self.checks.read().iter().map(|c| c.name.clone()).collect()
    }

    /// The answer at `/<endpoint>` (`healthz`, `livez`, `readyz`) to the query string `query`
    /// (upstream's `handleRootHealth`). With no checks at all, upstream installs `ping`.
    pub fn answer(&self, endpoint: &str, query: Option<&str>) -> Answer {
        let params = parse_query(query.unwrap_or_default());
        let verbose = params.iter().any(|(k, _)| k == "verbose");
        let excluded: Vec<&str> = params
            .iter()
            .filter(|(k, _)| k == "exclude")
            .map(|(_, v)| v.as_str())
            .collect();
        let mut checks = self.checks.read().clone();
        if checks.is_empty() {
            checks.push(Check::ping("ping"));
        }
        let mut unknown: Vec<&str> = excluded.clone();
        unknown.sort_unstable();
        unknown.dedup();
        let mut lines = String::new();
        let mut failed = Vec::new();
        for check in &checks {
            if excluded.contains(&check.name.as_str()) {
                unknown.retain(|n| *n != check.name);
                lines.push_str(&format!("[+]{} excluded: ok\n", check.name));
                continue;
            }
            match (check.check)() {
                Ok(()) => lines.push_str(&format!("[+]{} ok\n", check.name)),
                Err(reason) => {
                    lines.push_str(&format!("[-]{} failed: reason withheld\n", check.name));
                    tracing::info!(check = %check.name, "{endpoint} check failed: {reason}");
                    failed.push(check.name.clone());
                }
            }
        }
        if !unknown.is_empty() {
            let quoted: Vec<String> = unknown.iter().map(|n| format!("{n:?}")).collect();
            lines.push_str(&format!(
                "warn: some health checks cannot be excluded: no matches for {}\n",
                quoted.join(",")
            ));
        }
        if !failed.is_empty() {
            // Go's http.Error ends the body with a newline.
            return Answer {
                status: 500,
                body: format!("{lines}{endpoint} check failed\n"),
            };
        }
        if !verbose {
            return Answer {
                status: 200,
                body: "ok".to_string(),
            };
        }
        Answer {
            status: 200,
            body: format!("{lines}{endpoint} check passed\n"),
        }
    }
}

/// `a=b&c` → `[("a", "b"), ("c", "")]`, percent-decoded (`+` is a space).
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
                continue;
            }
            (b'+', _) => out.push(b' '),
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kcm() -> Healthz {
        Healthz::new(vec![
            Check::ping("leaderElection"),
            Check::ping("deployment-controller"),
        ])
    }

    /// The texts upstream's kube-controller-manager 1.37 answered (measured against the
    /// anchor binary): `ok`, and with `?verbose` one line per check.
    #[test]
    fn ok_and_verbose_as_upstream() {
        let h = kcm();
        assert_eq!(
            h.answer("healthz", None),
            Answer {
                status: 200,
                body: "ok".into()
            }
        );
        assert_eq!(
            h.answer("healthz", Some("verbose")).body,
            "[+]leaderElection ok\n[+]deployment-controller ok\nhealthz check passed\n"
        );
        // Present is enough, whatever the value.
        assert!(h
            .answer("healthz", Some("verbose=false"))
            .body
            .ends_with("healthz check passed\n"));
    }

    #[test]
    fn no_checks_is_ping() {
        assert_eq!(
            Healthz::default().answer("livez", Some("verbose")).body,
            "[+]ping ok\nlivez check passed\n"
        );
    }

    #[test]
    fn a_failing_check_is_500_with_the_reason_withheld() {
        let h = kcm();
        h.add(Check::new("leaderElection2", || Err("secret".into())));
        let a = h.answer("healthz", None);
        assert_eq!(a.status, 500);
        assert_eq!(
            a.body,
            "[+]leaderElection ok\n[+]deployment-controller ok\n[-]leaderElection2 failed: reason withheld\nhealthz check failed\n"
        );
        let a = h.answer("healthz", Some("exclude=leaderElection2&verbose"));
        assert_eq!(a.status, 200);
        assert!(
            a.body.contains("[+]leaderElection2 excluded: ok\n"),
            "{}",
            a.body
        );
    }

    #[test]
    fn unknown_exclusions_are_named() {
        let a = kcm().answer("healthz", Some("verbose&exclude=deployment&exclude=x%2By"));
        assert!(
            a.body.ends_with(
                "warn: some health checks cannot be excluded: no matches for \"deployment\",\"x+y\"\nhealthz check passed\n"
            ),
            "{}",
            a.body
        );
    }

    #[test]
    fn queries_are_decoded() {
        assert_eq!(
            parse_query("a=b&c&&d=%41+"),
            [
                ("a".to_string(), "b".to_string()),
                ("c".to_string(), String::new()),
                ("d".to_string(), "A ".to_string()),
            ]
        );
        assert_eq!(decode("%zz%4%+1"), "%zz%4% 1");
    }
}
