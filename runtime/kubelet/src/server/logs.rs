//! `/containerLogs/<ns>/<pod>/<container>`: a container's CRI log file read back as plain text,
//! with kubectl's options (follow, previous, timestamps, tailLines, sinceSeconds, sinceTime,
//! limitBytes) and upstream's messages when there is nothing to read.

use std::path::PathBuf;
use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncBufReadExt, AsyncSeekExt};

use crate::Kubelet;

/// The options of one request.
#[derive(Debug, Default, Clone)]
pub struct Options {
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail_lines: Option<usize>,
    pub since: Option<jiff::Timestamp>,
    pub limit_bytes: Option<usize>,
}

impl Options {
    pub fn parse(query: &[(String, String)]) -> Result<Options, String> {
        let mut o = Options::default();
        let truthy = |v: &str| v == "true" || v == "1";
        for (k, v) in query {
            match k.as_str() {
                "follow" => o.follow = truthy(v),
                "previous" => o.previous = truthy(v),
                "timestamps" => o.timestamps = truthy(v),
                "tailLines" => {
                    o.tail_lines = Some(v.parse().map_err(|_| format!("invalid tailLines {v:?}"))?)
                }
                "limitBytes" => {
                    o.limit_bytes =
                        Some(v.parse().map_err(|_| format!("invalid limitBytes {v:?}"))?)
                }
                "sinceSeconds" => {
                    let secs: i64 = v
                        .parse()
                        .map_err(|_| format!("invalid sinceSeconds {v:?}"))?;
                    o.since = Some(jiff::Timestamp::now() - jiff::SignedDuration::from_secs(secs));
                }
                "sinceTime" => {
                    o.since = Some(v.parse().map_err(|_| format!("invalid sinceTime {v:?}"))?)
                }
                _ => {}
            }
        }
        Ok(o)
    }
}

/// One CRI log entry: (timestamp text, content with newline if complete).
pub fn parse_line(line: &str) -> Option<(&str, String)> {
    let mut parts = line.splitn(4, ' ');
    let ts = parts.next()?;
    let _stream = parts.next()?;
    let tag = parts.next()?;
    let content = parts.next().unwrap_or("");
    let mut text = content.to_string();
    if tag != "P" {
        text.push('\n');
    }
    Some((ts, text))
}

fn render(line: &str, options: &Options) -> Option<String> {
    let (ts, text) = parse_line(line)?;
    if let Some(since) = options.since {
        match ts.parse::<jiff::Timestamp>() {
            Ok(at) if at < since => return None,
            _ => {}
        }
    }
    Some(if options.timestamps {
        format!("{ts} {text}")
    } else {
        text
    })
}

fn fail(status: StatusCode, message: String) -> Response {
    (status, message).into_response()
}

pub async fn serve(
    k: &Kubelet,
    namespace: &str,
    pod: &str,
    container: &str,
    query: &[(String, String)],
) -> Response {
    let options = match Options::parse(query) {
        Ok(o) => o,
        Err(e) => return fail(StatusCode::BAD_REQUEST, e),
    };
    let Some(view) = k.find(namespace, pod) else {
        return fail(
            StatusCode::NOT_FOUND,
            format!("pod {namespace}/{pod} is not running on this node"),
        );
    };
    let Some(c) = view
        .containers
        .iter()
        .find(|c| c.name == container)
        .cloned()
    else {
        return fail(
            StatusCode::BAD_REQUEST,
            format!("container {container:?} in pod {pod:?} is not available"),
        );
    };
    let path: PathBuf = match (&c.log_path, options.previous) {
        (Some(current), true) => {
            if c.restart_count == 0 {
                return fail(
                    StatusCode::BAD_REQUEST,
                    format!("previous terminated container {container:?} in pod {pod:?} not found"),
                );
            }
            current.with_file_name(format!("{}.log", c.restart_count - 1))
        }
        (Some(current), false) => current.clone(),
        (None, _) => {
            let reason = c
                .waiting
                .clone()
                .unwrap_or_else(|| "ContainerCreating".into());
            return fail(
                StatusCode::BAD_REQUEST,
                format!("container {container:?} in pod {pod:?} is waiting to start: {reason}"),
            );
        }
    };
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => {
            return fail(
                StatusCode::NOT_FOUND,
                format!("log of container {container:?} in pod {pod:?}: {e}"),
            )
        }
    };
    let follow = options.follow && !options.previous && c.running;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(64);
    let id = c.id.clone().unwrap_or_default();
    let root = k.args.root_dir.clone();
    tokio::spawn(async move {
        let mut reader = tokio::io::BufReader::new(file);
        // Following across a rotation (logrotate.rs): once the path names a new file, the
        // old one is read to its end, then the new one from its start.
        let mut rotated = false;
        let mut sent = 0usize;
        let limit = options.limit_bytes.unwrap_or(usize::MAX);
        // tailLines: start at the N-th line from the end of what is there now.
        if let Some(n) = options.tail_lines {
            let mut offsets = std::collections::VecDeque::with_capacity(n + 1);
            let mut position = 0u64;
            let mut line = String::new();
            loop {
                line.clear();
                match reader.read_line(&mut line).await {
                    Ok(0) | Err(_) => break,
                    Ok(len) => {
                        offsets.push_back(position);
                        if offsets.len() > n {
                            offsets.pop_front();
                        }
                        position += len as u64;
                    }
                }
            }
            let start = offsets.front().copied().unwrap_or(position);
            if reader.seek(std::io::SeekFrom::Start(start)).await.is_err() {
                return;
            }
        }
        let mut line = String::new();
        loop {
            line.clear();
            let n = match reader.read_line(&mut line).await {
                Ok(n) => n,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            if n == 0 || !line.ends_with('\n') {
                if !follow {
                    return;
                }
                if n == 0 && (rotated || was_rotated(&path, reader.get_ref()).await) {
                    if rotated {
                        match tokio::fs::File::open(&path).await {
                            Ok(file) => reader = tokio::io::BufReader::new(file),
                            Err(_) => return,
                        }
                    }
                    rotated = !rotated;
                    continue;
                }
                // A partial line stays for the next read; wait for more or for the end.
                let ended = crate::pods::state::read_exit(&root, &id).is_some();
                if ended && n == 0 {
                    return;
                }
                if n > 0 {
                    let back = -(n as i64);
                    let _ = reader.seek(std::io::SeekFrom::Current(back)).await;
                }
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            let Some(mut text) = render(line.trim_end_matches('\n'), &options) else {
                continue;
            };
            if sent + text.len() > limit {
                let room = limit - sent;
                let mut cut = room;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                text.truncate(cut);
                let _ = tx.send(Ok(text)).await;
                return;
            }
            sent += text.len();
            if tx.send(Ok(text)).await.is_err() {
                return;
            }
        }
    });
    let stream = tokio_stream_from(rx);
    Response::builder()
        .status(StatusCode::OK)
        .header("Content-Type", "text/plain")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Whether `path` names another file than `open` (the shim renamed it and writes a new one).
async fn was_rotated(path: &std::path::Path, open: &tokio::fs::File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (tokio::fs::metadata(path).await, open.metadata().await) {
        (Ok(now), Ok(open)) => (now.dev(), now.ino()) != (open.dev(), open.ino()),
        _ => false,
    }
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<String, std::io::Error>>,
) -> impl futures::Stream<Item = Result<String, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_lines_back_to_text() {
        let o = Options::default();
        assert_eq!(
            render("2026-12-03T11:00:00.000000001Z stdout F hello", &o).unwrap(),
            "hello\n"
        );
        assert_eq!(
            render("2026-12-03T11:00:00.000000001Z stdout P part", &o).unwrap(),
            "part"
        );
        let with_ts = Options {
            timestamps: true,
            ..Options::default()
        };
        assert_eq!(
            render("2026-12-03T11:00:00.000000001Z stderr F x y", &with_ts).unwrap(),
            "2026-12-03T11:00:00.000000001Z x y\n"
        );
        let since = Options {
            since: Some("2026-12-03T11:00:01Z".parse().unwrap()),
            ..Options::default()
        };
        assert!(render("2026-12-03T11:00:00.000000001Z stdout F old", &since).is_none());
        assert!(render("2026-12-03T11:00:02Z stdout F new", &since).is_some());
    }

    #[test]
    fn options() {
        let q = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        let o = Options::parse(&q(&[
            ("follow", "true"),
            ("tailLines", "5"),
            ("limitBytes", "10"),
        ]))
        .unwrap();
        assert!(o.follow);
        assert_eq!(o.tail_lines, Some(5));
        assert_eq!(o.limit_bytes, Some(10));
        assert!(Options::parse(&q(&[("tailLines", "x")])).is_err());
    }
}
