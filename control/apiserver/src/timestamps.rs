//! Kubernetes timestamps (metav1.Time): RFC 3339 in UTC at whole seconds.

/// Now, as a Kubernetes timestamp.
pub fn now_rfc3339() -> String {
    rfc3339_in(0)
}

/// `seconds` from now, as a Kubernetes timestamp.
pub fn rfc3339_in(seconds: i64) -> String {
    let t = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(seconds);
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}
