//! `/exec/<ns>/<pod>/<container>`: a command in a running container over a WebSocket with the
//! channel protocol kubectl speaks (`v5.channel.k8s.io`, also v4 and the original): every
//! binary message starts with its channel — 0 stdin, 1 stdout, 2 stderr, 3 the final
//! Status, 4 terminal resize; in v5 `[255, channel]` closes a channel (kubectl cp closes
//! stdin that way). The command runs through `skiff-runtime exec`, as containerd's exec goes
//! through runc.
//!
//! With `tty`, the runtime hands the process's pty master to the kubelet (`tty.rs`), which
//! applies channel 4's resize messages to it.
//!
//! Not yet: the SPDY fallback kubectl uses only when WebSockets are refused.

use std::process::Stdio;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::Kubelet;

pub const PROTOCOLS: [&str; 3] = ["v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io"];

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const STATUS: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// The request's options (`command` repeated; the rest flags).
#[derive(Debug, Default)]
pub struct ExecOptions {
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl ExecOptions {
    pub fn parse(query: &[(String, String)]) -> ExecOptions {
        let flag = |v: &str| v == "1" || v == "true";
        let mut o = ExecOptions::default();
        for (k, v) in query {
            match k.as_str() {
                "command" => o.command.push(v.clone()),
                "input" | "stdin" => o.stdin = flag(v),
                "output" | "stdout" => o.stdout = flag(v),
                "error" | "stderr" => o.stderr = flag(v),
                "tty" => o.tty = flag(v),
                _ => {}
            }
        }
        o
    }
}

pub async fn serve(
    k: &Kubelet,
    namespace: &str,
    pod: &str,
    container: &str,
    query: &[(String, String)],
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let options = ExecOptions::parse(query);
    if options.command.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            "you must specify at least one command for the container",
        )
            .into_response();
    }
    let id = match running_container(k, namespace, pod, container) {
        Ok(id) => id,
        Err(refused) => return refused.into_response(),
    };
    let Ok(upgrade) = upgrade else {
        // kubectl falls back to SPDY (a POST) when a WebSocket upgrade fails.
        return (
            StatusCode::BAD_REQUEST,
            "skiff's kubelet speaks the WebSocket channel protocols (v5.channel.k8s.io), not SPDY",
        )
            .into_response();
    };
    let runtime = k.runtime.clone();
    let dir = crate::pods::state::container_dir(&k.args.root_dir, &id);
    upgrade
        .protocols(PROTOCOLS)
        .on_upgrade(move |socket| async move {
            let v5 = socket.protocol().and_then(|p| p.to_str().ok()) == Some(PROTOCOLS[0]);
            if let Err(e) = session(socket, runtime, dir, id, options, v5).await {
                tracing::debug!("exec session: {e}");
            }
        })
}

/// `/attach/<ns>/<pod>/<container>`: the container's own stdio, through its shim's attach
/// socket (stdout and stderr as they are written; stdin if the container has one).
pub async fn serve_attach(
    k: &Kubelet,
    namespace: &str,
    pod: &str,
    container: &str,
    query: &[(String, String)],
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let options = ExecOptions::parse(query);
    let id = match running_container(k, namespace, pod, container) {
        Ok(id) => id,
        Err(refused) => return refused.into_response(),
    };
    let Ok(upgrade) = upgrade else {
        return (
            StatusCode::BAD_REQUEST,
            "skiff's kubelet speaks the WebSocket channel protocols (v5.channel.k8s.io), not SPDY",
        )
            .into_response();
    };
    let dir = crate::pods::state::container_dir(&k.args.root_dir, &id);
    upgrade
        .protocols(PROTOCOLS)
        .on_upgrade(move |socket| async move {
            let v5 = socket.protocol().and_then(|p| p.to_str().ok()) == Some(PROTOCOLS[0]);
            if let Err(e) = attach_session(socket, dir, options, v5).await {
                tracing::debug!("attach session: {e}");
            }
        })
}

async fn attach_session(
    socket: WebSocket,
    dir: std::path::PathBuf,
    options: ExecOptions,
    v5: bool,
) -> anyhow::Result<()> {
    let (mut sink, mut incoming) = socket.split();
    // The socket path through a handle on its directory stays short whatever the root dir.
    let connected = match std::fs::File::open(&dir) {
        Ok(handle) => {
            use std::os::fd::AsRawFd;
            let path = format!(
                "/proc/self/fd/{}/{}",
                handle.as_raw_fd(),
                crate::shim::ATTACH_SOCKET
            );
            let result = tokio::net::UnixStream::connect(&path).await;
            drop(handle);
            result
        }
        Err(e) => Err(e),
    };
    let shim = match connected {
        Ok(s) => s,
        Err(e) => {
            let status = json!({"metadata": {}, "status": "Failure", "message": format!("attaching to the container: {e}"), "reason": "InternalError"});
            let _ = sink
                .send(Message::Binary(
                    channel(STATUS, status.to_string().as_bytes()).into(),
                ))
                .await;
            return Ok(());
        }
    };
    let (mut from_shim, mut to_shim) = shim.into_split();
    let wants = |ch: u8| match ch {
        STDOUT => options.stdout || options.tty,
        STDERR => options.stderr,
        _ => false,
    };
    let mut header = [0u8; 5];
    loop {
        tokio::select! {
            read = from_shim.read_exact(&mut header) => {
                if read.is_err() {
                    break;
                }
                let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
                let mut data = vec![0u8; len];
                if from_shim.read_exact(&mut data).await.is_err() {
                    break;
                }
                if wants(header[0]) && sink.send(Message::Binary(channel(header[0], &data).into())).await.is_err() {
                    return Ok(());
                }
            }
            message = incoming.next() => match message {
                Some(Ok(Message::Binary(data))) if !data.is_empty() => match data[0] {
                    STDIN if options.stdin => {
                        let _ = to_shim.write_all(&data[1..]).await;
                    }
                    CLOSE if v5 && data.get(1) == Some(&STDIN) => {
                        let _ = to_shim.shutdown().await;
                    }
                    _ => {}
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Ok(()),
                Some(Ok(_)) => {}
            },
        }
    }
    // The container ended (its shim closed the socket).
    let status = json!({"metadata": {}, "status": "Success"});
    let _ = sink
        .send(Message::Binary(
            channel(STATUS, status.to_string().as_bytes()).into(),
        ))
        .await;
    let frame = axum::extract::ws::CloseFrame {
        code: axum::extract::ws::close_code::NORMAL,
        reason: "".into(),
    };
    let _ = sink.send(Message::Close(Some(frame))).await;
    Ok(())
}

/// The id of a running container of a pod this kubelet runs, or the answer upstream gives.
fn running_container(
    k: &Kubelet,
    namespace: &str,
    pod: &str,
    container: &str,
) -> Result<String, (StatusCode, String)> {
    let Some(view) = k.find(namespace, pod) else {
        return Err((
            StatusCode::NOT_FOUND,
            format!("pod {namespace}/{pod} is not running on this node"),
        ));
    };
    let Some(c) = view.containers.iter().find(|c| c.name == container) else {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("container {container} is not valid for pod {pod}"),
        ));
    };
    match (c.running, c.id.clone()) {
        (true, Some(id)) => Ok(id),
        _ => Err((
            StatusCode::BAD_REQUEST,
            format!("container {container} is not running in pod {pod}"),
        )),
    }
}

/// The Status kubectl reads on channel 3 for the exit code.
pub fn exit_status(command: &[String], code: i32) -> serde_json::Value {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

type Reader = Box<dyn tokio::io::AsyncRead + Unpin + Send>;
type Writer = Box<dyn tokio::io::AsyncWrite + Unpin + Send>;

/// The exec'd process's ends: pipes, or with a terminal the pty master (`tty.rs`).
struct Streams {
    stdin: Option<Writer>,
    outputs: Vec<(Reader, u8)>,
    /// The pty master resize messages apply to; kept open while the session runs.
    terminal: Option<std::os::fd::OwnedFd>,
}

/// Sends a failure Status and closes the stream.
async fn fail<S>(sink: &mut S, message: String)
where
    S: futures::Sink<Message> + Unpin,
{
    let status =
        json!({"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError"});
    let _ = sink
        .send(Message::Binary(
            channel(STATUS, status.to_string().as_bytes()).into(),
        ))
        .await;
    let _ = sink.close().await;
}

async fn session(
    socket: WebSocket,
    runtime: crate::runtime::Runtime,
    container_dir: std::path::PathBuf,
    id: String,
    options: ExecOptions,
    v5: bool,
) -> anyhow::Result<()> {
    let (mut sink, mut incoming) = socket.split();
    let console = if options.tty {
        match super::tty::ConsoleListener::bind(&container_dir) {
            Ok(c) => Some(c),
            Err(e) => {
                fail(&mut sink, format!("making the console socket: {e}")).await;
                return Ok(());
            }
        }
    } else {
        None
    };
    let mut command = runtime.exec_command(
        &id,
        &options.command,
        console.as_ref().map(|c| c.path()).as_deref(),
    );
    command
        .stdin(if options.stdin && !options.tty {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(if options.tty {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        // With a terminal, the runtime's own errors.
        .stderr(Stdio::piped());
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            fail(&mut sink, format!("running the runtime: {e}")).await;
            return Ok(());
        }
    };
    let mut streams = Streams {
        stdin: child.stdin.take().map(|s| Box::new(s) as Writer),
        outputs: Vec::new(),
        terminal: None,
    };
    if let Some(out) = child.stdout.take() {
        streams.outputs.push((Box::new(out), STDOUT));
    }
    match &console {
        None => {
            if let Some(err) = child.stderr.take() {
                streams.outputs.push((Box::new(err), STDERR));
            }
        }
        Some(console) => {
            let received = tokio::select! {
                master = console.receive() => master.map_err(|e| e.to_string()),
                _ = child.wait() => Err("the process ended before its terminal was ready".to_string()),
            };
            let master = match received {
                Ok(master) => master,
                Err(e) => {
                    let mut why = String::new();
                    if let Some(mut err) = child.stderr.take() {
                        let _ = err.read_to_string(&mut why).await;
                    }
                    let _ = child.kill().await;
                    let why = why.trim();
                    fail(&mut sink, if why.is_empty() { e } else { why.to_string() }).await;
                    return Ok(());
                }
            };
            let reader = std::fs::File::from(master.try_clone()?);
            let writer = std::fs::File::from(master.try_clone()?);
            streams
                .outputs
                .push((Box::new(tokio::fs::File::from_std(reader)), STDOUT));
            if options.stdin {
                streams.stdin = Some(Box::new(tokio::fs::File::from_std(writer)));
            }
            streams.terminal = Some(master);
            // The runtime's own complaints (it is not in the terminal).
            if let Some(mut err) = child.stderr.take() {
                let id = id.clone();
                tokio::spawn(async move {
                    let mut text = String::new();
                    let _ = err.read_to_string(&mut text).await;
                    if !text.trim().is_empty() {
                        tracing::warn!(container = %id, "exec with a terminal: {}", text.trim());
                    }
                });
            }
        }
    }
    let code = pump(&mut sink, &mut incoming, streams, &options, v5, &mut child).await;
    drop(console);
    if let Some(code) = code {
        let status = exit_status(&options.command, code);
        let _ = sink
            .send(Message::Binary(
                channel(STATUS, status.to_string().as_bytes()).into(),
            ))
            .await;
        // A normal closure (1000): kubectl treats a close without a code as an error.
        let frame = axum::extract::ws::CloseFrame {
            code: axum::extract::ws::close_code::NORMAL,
            reason: "".into(),
        };
        let _ = sink.send(Message::Close(Some(frame))).await;
    }
    Ok(())
}

/// Copies between the process and the stream until its output ends; its exit code, or None
/// when the client went away.
async fn pump<S, I>(
    sink: &mut S,
    incoming: &mut I,
    streams: Streams,
    options: &ExecOptions,
    v5: bool,
    child: &mut tokio::process::Child,
) -> Option<i32>
where
    S: futures::Sink<Message> + Unpin,
    I: futures::Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    use std::os::fd::AsRawFd;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(32);
    let mut pumps = Vec::new();
    for (mut reader, ch) in streams.outputs {
        let tx = tx.clone();
        pumps.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                // A pty master reads EIO once the process's side is closed: the end.
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(channel(ch, &buf[..n])).await.is_err() {
                            break;
                        }
                    }
                }
            }
        }));
    }
    drop(tx);
    let mut stdin = streams.stdin;
    let terminal = streams.terminal;
    let wants_stdout = options.stdout || options.tty;
    let wants_stderr = options.stderr;
    let mut output_done = false;
    // Reading stops when the client closes its side; sending stops only when a send fails,
    // so the output and the status still go out after the client is done writing.
    let mut send_failed = false;
    let mut reading_done = false;
    loop {
        tokio::select! {
            out = rx.recv(), if !output_done => match out {
                Some(frame) => {
                    let wanted = match frame[0] { STDOUT => wants_stdout, STDERR => wants_stderr, _ => true };
                    if wanted && sink.send(Message::Binary(frame.into())).await.is_err() {
                        send_failed = true;
                    }
                }
                None => output_done = true,
            },
            message = incoming.next(), if !reading_done => match message {
                Some(Ok(Message::Binary(data))) if !data.is_empty() => match data[0] {
                    STDIN => {
                        if let Some(s) = stdin.as_mut() {
                            if s.write_all(&data[1..]).await.is_err() || s.flush().await.is_err() {
                                stdin = None;
                            }
                        }
                    }
                    RESIZE => {
                        if let (Some(master), Some((columns, rows))) =
                            (terminal.as_ref(), super::tty::parse_size(&data[1..]))
                        {
                            if let Err(e) = super::tty::resize(master.as_raw_fd(), columns, rows) {
                                tracing::debug!("resizing an exec's terminal: {e}");
                            }
                        }
                    }
                    // A terminal's input has no end of its own: the process reads on.
                    CLOSE if v5 && data.get(1) == Some(&STDIN) && terminal.is_none() => stdin = None,
                    _ => {}
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    reading_done = true;
                    stdin = None;
                    if terminal.is_some() {
                        // The client is gone and the terminal would keep the process alive.
                        let _ = child.start_kill();
                    }
                }
                Some(Ok(_)) => {}
            },
            else => break,
        }
        if output_done {
            break;
        }
    }
    drop(stdin);
    for pump in pumps {
        let _ = pump.await;
    }
    let code = child
        .wait()
        .await
        .map(|s| s.code().unwrap_or(255))
        .unwrap_or(255);
    drop(terminal);
    (!send_failed).then_some(code)
}

fn channel(ch: u8, data: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(data.len() + 1);
    frame.push(ch);
    frame.extend_from_slice(data);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_and_status() {
        let q: Vec<(String, String)> = [
            ("command", "sh"),
            ("command", "-c"),
            ("command", "exit 3"),
            ("input", "1"),
            ("output", "1"),
            ("tty", "0"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let o = ExecOptions::parse(&q);
        assert_eq!(o.command, ["sh", "-c", "exit 3"]);
        assert!(o.stdin && o.stdout && !o.stderr && !o.tty);
        let failure = exit_status(&o.command, 3);
        assert_eq!(failure["reason"], "NonZeroExitCode");
        assert_eq!(failure["details"]["causes"][0]["message"], "3");
        assert_eq!(exit_status(&o.command, 0)["status"], "Success");
    }
}
