//! `/portForward/<ns>/<pod>`: kubectl port-forward (protocol `portforward.k8s.io`).
//!
//! kubectl 1.32 opens a WebSocket with the subprotocol `SPDY/3.1+portforward.k8s.io` and runs
//! SPDY/3.1 inside its binary messages (the API server passes the upgrade through). Every
//! local connection becomes two SPDY streams with the headers `streamType` (`error` or
//! `data`), `port` and `requestID`; once both are there the kubelet connects to `localhost:<port>`
//! inside the pod's network namespace and copies bytes between the data stream and that
//! connection. A failure to connect is written as text on the error stream, as upstream does.

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::path::PathBuf;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::spdy::{self, Frame, HeaderCodec};
use crate::Kubelet;

pub const PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

pub async fn serve(
    k: &Kubelet,
    namespace: &str,
    pod: &str,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let Some(view) = k.find(namespace, pod) else {
        return (
            StatusCode::NOT_FOUND,
            format!("pod {namespace}/{pod} is not running on this node"),
        )
            .into_response();
    };
    if !view.containers.iter().any(|c| c.running) {
        return (
            StatusCode::BAD_REQUEST,
            format!("pod {pod} has no running container"),
        )
            .into_response();
    }
    let Ok(upgrade) = upgrade else {
        return (StatusCode::BAD_REQUEST, "skiff's kubelet forwards ports over WebSockets (SPDY/3.1+portforward.k8s.io), not plain SPDY").into_response();
    };
    let netns = view.netns.clone();
    upgrade
        .protocols([PROTOCOL])
        .on_upgrade(move |socket| async move {
            if let Err(e) = session(socket, netns).await {
                tracing::debug!("port-forward session: {e}");
            }
        })
}

/// The two streams of one forwarded connection.
#[derive(Default)]
struct Request {
    port: u16,
    error_stream: Option<u32>,
    data_stream: Option<u32>,
}

async fn session(socket: WebSocket, netns: Option<PathBuf>) -> Result<(), String> {
    let (mut sink, mut incoming) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(64);
    let writer = tokio::spawn(async move {
        while let Some(frame) = out_rx.recv().await {
            if sink.send(Message::Binary(frame.into())).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let mut codec = HeaderCodec::new();
    let mut buf = Vec::new();
    let mut requests: HashMap<String, Request> = HashMap::new();
    // Data stream id → the connection's inbound half.
    let mut inbound: HashMap<u32, mpsc::Sender<Option<Vec<u8>>>> = HashMap::new();
    while let Some(message) = incoming.next().await {
        let bytes = match message {
            Ok(Message::Binary(b)) => b,
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => continue,
        };
        buf.extend_from_slice(&bytes);
        while let Some(frame) = spdy::parse(&mut buf) {
            match frame {
                Frame::Control {
                    kind: spdy::SYN_STREAM,
                    body,
                    ..
                } if body.len() >= 10 => {
                    let stream =
                        u32::from_be_bytes([body[0], body[1], body[2], body[3]]) & 0x7fff_ffff;
                    let headers = codec.decode(&body[10..])?;
                    let get = |name: &str| {
                        headers
                            .iter()
                            .find(|(k, _)| k == name)
                            .map(|(_, v)| v.clone())
                            .unwrap_or_default()
                    };
                    let reply = codec.encode(&[])?;
                    let mut reply_body = stream.to_be_bytes().to_vec();
                    reply_body.extend(reply);
                    let _ = out_tx
                        .send(spdy::control(spdy::SYN_REPLY, 0, &reply_body))
                        .await;
                    let request = requests.entry(get("requestid")).or_default();
                    request.port = get("port").parse().unwrap_or(0);
                    match get("streamtype").as_str() {
                        "error" => request.error_stream = Some(stream),
                        "data" => request.data_stream = Some(stream),
                        _ => {}
                    }
                    if let (Some(error), Some(data)) = (request.error_stream, request.data_stream) {
                        let port = request.port;
                        let (tx, rx) = mpsc::channel(64);
                        inbound.insert(data, tx);
                        tokio::spawn(forward(
                            netns.clone(),
                            port,
                            error,
                            data,
                            rx,
                            out_tx.clone(),
                        ));
                    }
                }
                Frame::Control {
                    kind: spdy::PING,
                    body,
                    ..
                } => {
                    let _ = out_tx.send(spdy::control(spdy::PING, 0, &body)).await;
                }
                Frame::Control {
                    kind: spdy::RST_STREAM,
                    body,
                    ..
                } if body.len() >= 4 => {
                    let stream =
                        u32::from_be_bytes([body[0], body[1], body[2], body[3]]) & 0x7fff_ffff;
                    if let Some(tx) = inbound.remove(&stream) {
                        let _ = tx.send(None).await;
                    }
                }
                Frame::Control {
                    kind: spdy::GOAWAY, ..
                } => {
                    drop(out_tx);
                    let _ = writer.await;
                    return Ok(());
                }
                Frame::Control { .. } => {}
                Frame::Data {
                    stream,
                    flags,
                    data,
                } => {
                    if let Some(tx) = inbound.get(&stream) {
                        if !data.is_empty() {
                            let _ = tx.send(Some(data)).await;
                        }
                        if flags & spdy::FLAG_FIN != 0 {
                            let _ = tx.send(None).await;
                            inbound.remove(&stream);
                        }
                    }
                }
            }
        }
    }
    drop(out_tx);
    let _ = writer.await;
    Ok(())
}

/// One forwarded connection: dial the pod's port, then copy both ways.
async fn forward(
    netns: Option<PathBuf>,
    port: u16,
    error_stream: u32,
    data_stream: u32,
    mut inbound: mpsc::Receiver<Option<Vec<u8>>>,
    out: mpsc::Sender<Vec<u8>>,
) {
    let connection = match dial(netns, port).await {
        Ok(c) => c,
        Err(e) => {
            let message = format!("error forwarding port {port} to pod: failed to connect to localhost:{port} inside namespace: {e}");
            let _ = out
                .send(spdy::data(error_stream, 0, message.as_bytes()))
                .await;
            let _ = out
                .send(spdy::data(error_stream, spdy::FLAG_FIN, b""))
                .await;
            let _ = out.send(spdy::data(data_stream, spdy::FLAG_FIN, b"")).await;
            return;
        }
    };
    let (mut read, mut write) = connection.into_split();
    let to_pod = tokio::spawn(async move {
        while let Some(Some(chunk)) = inbound.recv().await {
            if write.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = write.shutdown().await;
    });
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match read.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if out
                    .send(spdy::data(data_stream, 0, &buf[..n]))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
    }
    let _ = out.send(spdy::data(data_stream, spdy::FLAG_FIN, b"")).await;
    let _ = out
        .send(spdy::data(error_stream, spdy::FLAG_FIN, b""))
        .await;
    to_pod.abort();
}

/// A TCP connection to `localhost:<port>` made inside the pod's network namespace (a thread
/// of its own enters it; the socket stays there when the thread ends).
async fn dial(netns: Option<PathBuf>, port: u16) -> std::io::Result<tokio::net::TcpStream> {
    let std_stream =
        tokio::task::spawn_blocking(move || -> std::io::Result<std::net::TcpStream> {
            std::thread::spawn(move || {
                if let Some(path) = netns {
                    let file = std::fs::File::open(&path)?;
                    nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                        .map_err(std::io::Error::from)?;
                }
                let stream = std::net::TcpStream::connect_timeout(
                    &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                    std::time::Duration::from_secs(5),
                )?;
                stream.set_nonblocking(true)?;
                Ok(stream)
            })
            .join()
            .map_err(|_| std::io::Error::other("the dialing thread panicked"))?
        })
        .await
        .map_err(std::io::Error::other)??;
    tokio::net::TcpStream::from_std(std_stream)
}
