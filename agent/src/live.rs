//! What runs beside a command (`docs/contract/cancel-and-output.md`): the
//! heartbeat that waits for a cancel request ([`CancelWatch`]) and the
//! sender of live output ([`OutputSender`]), one thread each, so the agent's
//! own thread keeps reading the command's pipes.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::backoff::Backoff;
use crate::client::Client;
use crate::exec::Stream;
use crate::log::log;

/// How long output gathers before it is sent: one request per window at
/// most, however chatty the command.
pub const BATCH_WINDOW: Duration = Duration::from_millis(50);
/// A batch is sent early once it holds this many bytes.
const BATCH_BYTES: usize = 64 * 1024;
/// How long one chunk is retried while the server does not take it.
const CHUNK_RETRY_FOR: Duration = Duration::from_secs(30);
/// The shortest pause between two heartbeats from a server that answers at
/// once (one that predates the wait, or after a cancel request).
const MIN_BEAT_GAP: Duration = Duration::from_secs(1);

/// The sending end of live output: pieces of a stream as they are read.
pub type Pieces = mpsc::Sender<(Stream, Vec<u8>)>;

/// What the heartbeat thread heard.
#[derive(Debug, Default)]
pub struct Heard {
    /// Who asked to cancel, once someone has.
    pub cancel_by: Option<String>,
    /// Why the lease is lost (the server refused a heartbeat), if it is.
    pub lost: Option<String>,
    /// When the last heartbeat the server took was sent.
    pub renewed: Option<Instant>,
}

/// The heartbeat of one running action: renews the lease, asking the server
/// to hold each answer until someone requests a cancel, and writes a byte to
/// its news socket when it hears one, or that the lease is lost.
#[derive(Debug)]
pub struct CancelWatch {
    /// Readable (non-blocking) when there is news in [`CancelWatch::heard`].
    pub news: UnixStream,
    heard: Arc<Mutex<Heard>>,
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl CancelWatch {
    /// Starts heartbeating action `id` every `every` at most (each request
    /// held by the server up to that long).
    pub fn spawn(
        client: Arc<Client>,
        id: i64,
        lease_token: String,
        lease_seconds: u64,
        every: Duration,
    ) -> std::io::Result<CancelWatch> {
        let (news, mut tell) = UnixStream::pair()?;
        news.set_nonblocking(true)?;
        let heard = Arc::new(Mutex::new(Heard::default()));
        let done = Arc::new(AtomicBool::new(false));
        let (h, d) = (heard.clone(), done.clone());
        let thread = std::thread::Builder::new()
            .name("cancel-watch".into())
            .spawn(move || {
                let pause = |until: Instant| {
                    while !d.load(Ordering::Relaxed) && Instant::now() < until {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                };
                while !d.load(Ordering::Relaxed) {
                    let sent = Instant::now();
                    let asked = h.lock().unwrap().cancel_by.is_some();
                    // Once asked, the server answers at once: plain heartbeats.
                    let wait = if asked { Duration::ZERO } else { every };
                    match client.await_cancel(id, &lease_token, lease_seconds, wait) {
                        Ok(by) => {
                            let mut heard = h.lock().unwrap();
                            heard.renewed = Some(sent);
                            if heard.cancel_by.is_none() && by.is_some() {
                                heard.cancel_by = by;
                                drop(heard);
                                let _ = tell.write_all(b"c");
                            } else {
                                drop(heard);
                            }
                            pause(
                                sent + MIN_BEAT_GAP.max(if asked { every } else { Duration::ZERO }),
                            );
                        }
                        Err(e) if e.is_retryable() => {
                            log(
                                "warn",
                                "heartbeat_failed",
                                json!({ "id": id, "error": e.to_string() }),
                            );
                            pause(Instant::now() + (every / 4).max(Duration::from_millis(100)));
                        }
                        Err(e) => {
                            if !d.load(Ordering::Relaxed) {
                                h.lock().unwrap().lost =
                                    Some(format!("lease lost: heartbeat refused: {e}"));
                                let _ = tell.write_all(b"l");
                            }
                            return;
                        }
                    }
                }
            })?;
        Ok(CancelWatch {
            news,
            heard,
            done,
            thread: Some(thread),
        })
    }

    /// What was heard so far.
    pub fn heard(&self) -> std::sync::MutexGuard<'_, Heard> {
        self.heard.lock().unwrap()
    }

    /// Ends the heartbeats and waits for the thread; its last request ends
    /// at once when the action is finished (the server wakes it).
    pub fn finish(mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Sends a running command's output to the server in chunks, numbered from
/// 1: what gathered during [`BATCH_WINDOW`], retried (same number, so never
/// stored twice) while the server does not take it. Stops sending, but keeps
/// reading, once the server refuses a chunk (the lease is gone).
#[derive(Debug)]
pub struct OutputSender {
    thread: JoinHandle<()>,
}

impl OutputSender {
    /// Starts the sender; pieces come through the returned channel's sender
    /// (given to [`crate::exec::LiveOutput`]); it ends when that closes.
    pub fn spawn(
        client: Arc<Client>,
        id: i64,
        lease_token: String,
    ) -> std::io::Result<(OutputSender, Pieces)> {
        let (tx, rx) = mpsc::channel::<(Stream, Vec<u8>)>();
        let thread = std::thread::Builder::new()
            .name("output".into())
            .spawn(move || send_chunks(&client, id, &lease_token, &rx))?;
        Ok((OutputSender { thread }, tx))
    }

    /// Waits until everything read was sent (or given up).
    pub fn finish(self) {
        let _ = self.thread.join();
    }
}

fn send_chunks(
    client: &Client,
    id: i64,
    lease_token: &str,
    rx: &mpsc::Receiver<(Stream, Vec<u8>)>,
) {
    let mut pending: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut seq = 0i64;
    let mut refused = false;
    let mut open = true;
    while open {
        match rx.recv() {
            Ok((stream, data)) => pending[stream as usize].extend_from_slice(&data),
            Err(_) => open = false,
        }
        let window_end = Instant::now() + BATCH_WINDOW;
        while open && pending[0].len() + pending[1].len() < BATCH_BYTES {
            match rx.recv_timeout(window_end.saturating_duration_since(Instant::now())) {
                Ok((stream, data)) => pending[stream as usize].extend_from_slice(&data),
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => open = false,
            }
        }
        let stdout = take_text(&mut pending[0], !open);
        let stderr = take_text(&mut pending[1], !open);
        if refused || (stdout.is_empty() && stderr.is_empty()) {
            continue;
        }
        seq += 1;
        let give_up = Instant::now() + CHUNK_RETRY_FOR;
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        loop {
            match client.append_output(id, lease_token, seq, &stdout, &stderr) {
                Ok(()) => break,
                Err(e) if e.is_retryable() && Instant::now() < give_up => {
                    log(
                        "warn",
                        "output_failed",
                        json!({ "id": id, "seq": seq, "error": e.to_string() }),
                    );
                    std::thread::sleep(backoff.next_delay());
                }
                Err(e) => {
                    log(
                        "warn",
                        "output_stopped",
                        json!({ "id": id, "seq": seq, "error": e.to_string() }),
                    );
                    refused = true;
                    break;
                }
            }
        }
    }
}

/// The text of `bytes` that is whole UTF-8, leaving an incomplete character
/// at the end for the next piece (unless `last`); invalid bytes become U+FFFD.
fn take_text(bytes: &mut Vec<u8>, last: bool) -> String {
    let keep_from = match std::str::from_utf8(bytes) {
        Ok(_) => bytes.len(),
        Err(e) if e.error_len().is_none() && !last => e.valid_up_to(),
        Err(_) => bytes.len(),
    };
    let rest = bytes.split_off(keep_from);
    let text = String::from_utf8_lossy(bytes).into_owned();
    *bytes = rest;
    text
}

#[cfg(test)]
mod tests {
    use super::take_text;

    #[test]
    fn a_character_split_between_reads_is_sent_whole() {
        let mut bytes = "aé".as_bytes().to_vec();
        let tail = bytes.pop().unwrap();
        assert_eq!(take_text(&mut bytes, false), "a");
        bytes.push(tail);
        assert_eq!(take_text(&mut bytes, false), "é");
        assert!(bytes.is_empty());
        let mut broken = vec![b'x', 0xff, b'y', 0xc3];
        assert_eq!(take_text(&mut broken, true), "x\u{fffd}y\u{fffd}");
    }
}
