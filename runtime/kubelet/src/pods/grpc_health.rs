//! The gRPC probe: one `grpc.health.v1.Health/Check` call over plaintext HTTP/2 (tonic), as
//! upstream's prober makes it (`pkg/probe/grpc`): `User-Agent: kube-probe/1.32`, the probe's
//! `service` in the request, the whole call — connection included — within the probe's
//! timeout, and success only for SERVING. The failure texts are upstream's, so `kubectl
//! describe` shows the same Unhealthy events.
//!
//! The two messages are written out with prost's derive rather than generated from
//! `health.proto`: two fields do not warrant a build script and protoc.

use std::time::Duration;

use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Endpoint;

/// `grpc.health.v1.HealthCheckRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    pub service: String,
}

/// `grpc.health.v1.HealthCheckResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HealthCheckResponse {
    #[prost(int32, tag = "1")]
    pub status: i32,
}

/// `HealthCheckResponse.ServingStatus`'s names.
fn status_name(status: i32) -> String {
    match status {
        0 => "UNKNOWN".into(),
        1 => "SERVING".into(),
        2 => "NOT_SERVING".into(),
        3 => "SERVICE_UNKNOWN".into(),
        other => other.to_string(),
    }
}

/// Asks `host:port` whether `service` ("" = the server as a whole) is serving.
pub async fn check(host: &str, port: u16, service: &str, timeout: Duration) -> Result<(), String> {
    let address = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let seconds = format!("{}s", timeout.as_secs_f64());
    let call = async {
        let endpoint = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| format!("error: failed to connect service at {address:?}: {e}"))?
            .user_agent("kube-probe/1.32")
            .map_err(|e| format!("error: failed to connect service at {address:?}: {e}"))?;
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| format!("error: failed to connect service at {address:?}: {e}"))?;
        let mut client = tonic::client::Grpc::new(channel);
        client
            .ready()
            .await
            .map_err(|e| format!("error: failed to connect service at {address:?}: {e}"))?;
        let request = tonic::Request::new(HealthCheckRequest {
            service: service.to_string(),
        });
        let codec = tonic_prost::ProstCodec::<HealthCheckRequest, HealthCheckResponse>::default();
        let path = PathAndQuery::from_static("/grpc.health.v1.Health/Check");
        match client.unary(request, path, codec).await {
            Ok(response) => {
                let status = response.into_inner().status;
                if status == 1 {
                    Ok(())
                } else {
                    Err(format!(
                        "service unhealthy (responded with {:?})",
                        status_name(status)
                    ))
                }
            }
            Err(s) if s.code() == tonic::Code::Unimplemented => Err(format!(
                "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): {}",
                s.message()
            )),
            Err(s) => Err(format!("error: health rpc probe failed: {s}")),
        }
    };
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "timeout: failed to connect service {address:?} within {seconds}: context deadline exceeded"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_encode_as_the_proto_does() {
        use prost::Message;
        let bytes = HealthCheckRequest {
            service: "db".into(),
        }
        .encode_to_vec();
        assert_eq!(bytes, [0x0a, 2, b'd', b'b']);
        let response = HealthCheckResponse::decode(&[0x08, 2][..]).unwrap();
        assert_eq!(status_name(response.status), "NOT_SERVING");
    }

    #[tokio::test]
    async fn nothing_listening_fails_with_upstreams_words() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let e = check("127.0.0.1", port, "", Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(e.starts_with("error: failed to connect service at"), "{e}");
    }
}
