//! `skiff metrics-server`'s flags, named as upstream's metrics-server names them.

use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args, Clone, Debug)]
pub struct MetricsServerArgs {
    /// The kubeconfig of the server's own identity (in-cluster configuration when absent).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The address to serve on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: std::net::IpAddr,
    /// The HTTPS port (upstream's components.yaml serves on 4443 or 10250; 4443 here, as a
    /// node's kubelet holds 10250).
    #[arg(long, default_value_t = 4443)]
    pub secure_port: u16,
    /// The serving certificate (PEM, chain); a self-signed one when absent.
    #[arg(long, requires = "tls_private_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// The serving certificate's key (PEM).
    #[arg(long, requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,
    /// How often the kubelets are scraped (Go duration: 15s, 1m).
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub metric_resolution: Duration,
    /// Do not verify the kubelets' serving certificates.
    #[arg(long)]
    pub kubelet_insecure_tls: bool,
    /// The CA the kubelets' serving certificates are checked against (default: the
    /// kubeconfig's CA).
    #[arg(long)]
    pub kubelet_certificate_authority: Option<PathBuf>,
    /// Which of a Node's addresses to scrape, in order of preference.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "InternalIP,ExternalIP,Hostname"
    )]
    pub kubelet_preferred_address_types: Vec<String>,
    /// The kubelets' port.
    #[arg(long, default_value_t = 10250)]
    pub kubelet_port: u16,
    /// Use the port in the Node's status (`daemonEndpoints.kubeletEndpoint.Port`).
    #[arg(long)]
    pub kubelet_use_node_status_port: bool,
    /// Paths anyone may read.
    #[arg(long, value_delimiter = ',', default_value = "/healthz,/readyz,/livez")]
    pub authorization_always_allow_paths: Vec<String>,
    /// The front proxy's CA; with it, the request-header settings come from these flags
    /// rather than the ConfigMap kube-system/extension-apiserver-authentication.
    #[arg(long)]
    pub requestheader_client_ca_file: Option<PathBuf>,
    /// The client CA (with --requestheader-client-ca-file).
    #[arg(long)]
    pub client_ca_file: Option<PathBuf>,
    #[arg(long, value_delimiter = ',')]
    pub requestheader_allowed_names: Vec<String>,
    #[arg(long, value_delimiter = ',', default_value = "X-Remote-User")]
    pub requestheader_username_headers: Vec<String>,
    #[arg(long, value_delimiter = ',', default_value = "X-Remote-Group")]
    pub requestheader_group_headers: Vec<String>,
    #[arg(long, value_delimiter = ',', default_value = "X-Remote-Extra-")]
    pub requestheader_extra_headers_prefix: Vec<String>,
    #[arg(long, value_delimiter = ',', default_value = "X-Remote-Uid")]
    pub requestheader_uid_headers: Vec<String>,
}

/// A Go duration of whole units: `15s`, `1m30s`, `500ms`, `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {text:?}");
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .ok_or_else(bad)?;
        let value: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += Duration::from_secs_f64(value * seconds);
        rest = &rest[unit_end..];
    }
    if total.is_zero() {
        return Err(format!("{text:?}: must be positive"));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("15").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("").is_err());
    }
}
