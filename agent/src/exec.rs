//! Running one approved command: `argv` executed directly (no shell), the
//! action's `env` over a fixed minimal environment, stdin on `/dev/null`, in a
//! process group of its own; stdout and stderr read through pipes into bounded
//! buffers; a timeout that kills the whole group.
//!
//! One thread does everything with `poll(2)`: the two pipes, a pidfd that
//! becomes readable when the command exits, and the caller's stop fd (the
//! agent's signal pipe). No thread per pipe, no sleeping in a loop.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// The environment every command starts from; the action's `env` goes on top.
/// Nothing of the agent's own environment reaches a command.
pub const BASE_ENV: &[(&str, &str)] = &[
    (
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ),
    ("LANG", "C.UTF-8"),
];

/// Exit code reported for a command the agent killed (timeout, or the
/// agent's stop grace ran out), as `timeout(1)` does.
pub const KILLED_EXIT_CODE: i32 = 124;
/// Exit code for a program that does not exist (as a shell reports it).
pub const NOT_FOUND_EXIT_CODE: i32 = 127;
/// Exit code for a program that exists but cannot be executed.
pub const CANNOT_EXECUTE_EXIT_CODE: i32 = 126;

/// After the command exits, how long the agent still reads pipes that some
/// process outside its group (one that left with `setsid`) holds open.
const PIPE_DRAIN_LIMIT: Duration = Duration::from_secs(2);
/// Bytes read from a pipe at once.
const READ_CHUNK: usize = 64 * 1024;

/// What to run and within which bounds.
#[derive(Debug, Clone, Copy)]
pub struct Spec<'a> {
    /// Program and arguments; `argv[0]` is looked up in [`BASE_ENV`]'s `PATH`
    /// (or the action's own `PATH`) unless it contains a `/`.
    pub argv: &'a [String],
    /// The action's environment, over [`BASE_ENV`].
    pub env: &'a BTreeMap<String, String>,
    /// Working directory.
    pub cwd: &'a Path,
    /// Time after which the process group is killed.
    pub timeout: Duration,
    /// Time between the group's SIGTERM and its SIGKILL.
    pub kill_grace: Duration,
    /// Characters of stdout and of stderr that are kept (the queue's cap).
    pub cap_chars: usize,
}

/// The head of one output stream: at most `limit` bytes kept, the rest counted.
#[derive(Debug, Clone)]
pub struct Capture {
    kept: Vec<u8>,
    limit: usize,
    total: u64,
}

impl Capture {
    /// A capture keeping enough bytes for `cap_chars` characters of UTF-8.
    pub fn for_chars(cap_chars: usize) -> Capture {
        let limit = cap_chars.saturating_mul(4);
        Capture {
            kept: Vec::with_capacity(limit.min(READ_CHUNK)),
            limit,
            total: 0,
        }
    }

    /// Takes `data`: keeps what fits, counts everything.
    pub fn push(&mut self, data: &[u8]) {
        let room = self.limit - self.kept.len();
        self.kept.extend_from_slice(&data[..room.min(data.len())]);
        self.total += data.len() as u64;
    }

    /// Bytes the stream carried in all.
    pub fn total_bytes(&self) -> u64 {
        self.total
    }

    /// The text to report: the stream's head, then `notes` (one a line),
    /// in at most `cap_chars` characters. When the head had to be cut, a
    /// line says so and how many bytes the stream had.
    pub fn render(&self, cap_chars: usize, notes: &[String]) -> String {
        let text = String::from_utf8_lossy(&self.kept);
        let notes_text = notes.join("\n");
        let join = |head: &str, tail: &str| -> String {
            match (head.is_empty(), tail.is_empty()) {
                (_, true) => head.to_owned(),
                (true, false) => tail.to_owned(),
                (false, false) => format!("{head}\n{tail}"),
            }
        };
        let complete = self.total == self.kept.len() as u64;
        let whole = join(&text, &notes_text);
        if complete && whole.chars().count() <= cap_chars {
            return whole;
        }
        let marker = format!(
            "[actionq-agent: output truncated; the stream had {} bytes]",
            self.total
        );
        // When room is short, the agent's notes (why it killed the command)
        // matter most, then the marker, then the head.
        let with_marker = join(&marker, &notes_text);
        let tail = if with_marker.chars().count() < cap_chars {
            with_marker
        } else {
            notes_text
        };
        let budget = cap_chars.saturating_sub(tail.chars().count() + 1);
        let head: String = text.chars().take(budget).collect();
        let shown = join(&head, &tail);
        let skip = shown.chars().count().saturating_sub(cap_chars);
        shown.chars().skip(skip).collect()
    }
}

/// Why [`Running::wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The command exited: call [`Running::finish`].
    Exited,
    /// The caller's deadline came.
    Deadline,
    /// The stop fd became readable (what was there was read).
    Stop,
    /// The news fd became readable (what was there was read).
    News,
}

/// Which stream a piece of live output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Where a command's output goes as it is read, besides its capture: the
/// first `limit` bytes of each stream, as read, one message per read.
#[derive(Debug)]
pub struct LiveOutput {
    sender: std::sync::mpsc::Sender<(Stream, Vec<u8>)>,
    left: [usize; 2],
}

impl LiveOutput {
    /// Sends at most `limit` bytes of each stream through `sender`: what the
    /// queue keeps of it at most (its cap in characters, four bytes each),
    /// so a chatty command costs no more than that.
    pub fn new(sender: std::sync::mpsc::Sender<(Stream, Vec<u8>)>, limit: usize) -> LiveOutput {
        LiveOutput {
            sender,
            left: [limit, limit],
        }
    }

    fn forward(&mut self, stream: Stream, data: &[u8]) {
        let left = &mut self.left[stream as usize];
        let n = (*left).min(data.len());
        if n > 0 {
            *left -= n;
            // The reader may be gone (lease lost): output is still captured.
            let _ = self.sender.send((stream, data[..n].to_vec()));
        }
    }
}

/// The result of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The exit code to report: the command's, `128 + signal` when a signal
    /// ended it, [`KILLED_EXIT_CODE`] when the agent killed it.
    pub exit_code: i32,
    /// stdout as reported (capped).
    pub stdout: String,
    /// stderr as reported (capped), with the agent's notes at the end.
    pub stderr: String,
    /// Bytes the command wrote to stdout and to stderr in all.
    pub output_bytes: (u64, u64),
    /// Why the agent killed the command, if it did.
    pub killed: Option<String>,
    /// From spawn to exit.
    pub duration: Duration,
}

/// A started command.
#[derive(Debug)]
pub struct Running {
    child: Child,
    pgid: libc::pid_t,
    pidfd: OwnedFd,
    stdout_pipe: Option<ChildStdout>,
    stderr_pipe: Option<ChildStderr>,
    stdout: Capture,
    stderr: Capture,
    started: Instant,
    timeout: Duration,
    timeout_at: Instant,
    kill_grace: Duration,
    sigkill_at: Option<Instant>,
    killed: Option<String>,
    /// Why the agent asked the group to stop, when not to kill it for good
    /// (a cancel request): the exit code stays the command's.
    stopped: Option<String>,
    cap_chars: usize,
    live: Option<LiveOutput>,
}

/// A command that could not be started: the outcome to report instead.
pub fn spawn_failure(argv0: &str, err: &io::Error) -> Outcome {
    let exit_code = match err.kind() {
        io::ErrorKind::NotFound => NOT_FOUND_EXIT_CODE,
        _ => CANNOT_EXECUTE_EXIT_CODE,
    };
    Outcome {
        exit_code,
        stdout: String::new(),
        stderr: format!("actionq-agent: cannot run {argv0:?}: {err}"),
        output_bytes: (0, 0),
        killed: None,
        duration: Duration::ZERO,
    }
}

fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just gave us this fd (close-on-exec), and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn killpg(pgid: libc::pid_t, signal: libc::c_int) {
    // SAFETY: plain syscall; ESRCH (group already gone) is fine to ignore.
    unsafe {
        libc::killpg(pgid, signal);
    }
}

/// `program` as execvp would find it in `path` (the command's own `PATH`):
/// itself when it names a path, else the first executable file of that
/// name in `path`'s directories. Resolving here, not in the child, lets the
/// standard library start the command with `posix_spawn` (no copy of the
/// agent's page tables), and an executable without `#!` is not handed to
/// `/bin/sh` as execvp would.
fn resolve_program(program: &str, path: &str) -> io::Result<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    if program.contains('/') {
        return Ok(program.into());
    }
    if program.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "empty program name",
        ));
    }
    for dir in path.split(':') {
        let candidate = Path::new(if dir.is_empty() { "." } else { dir }).join(program);
        if let Ok(meta) = std::fs::metadata(&candidate) {
            if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                return Ok(candidate);
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("not found in PATH {path}"),
    ))
}

/// Milliseconds to `poll` until `at` (rounded up, so no wake-up comes early
/// and spins), or -1 for no deadline.
fn poll_timeout(at: Option<Instant>) -> libc::c_int {
    match at {
        None => -1,
        Some(at) => {
            let left = at.saturating_duration_since(Instant::now());
            let ms = left.as_nanos().div_ceil(1_000_000);
            ms.min(libc::c_int::MAX as u128) as libc::c_int
        }
    }
}

fn poll(fds: &mut [libc::pollfd], timeout: libc::c_int) -> io::Result<()> {
    // SAFETY: `fds` is a valid slice of pollfd for the duration of the call.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
    if n < 0 {
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    Ok(())
}

const READABLE: libc::c_short = libc::POLLIN | libc::POLLHUP | libc::POLLERR;

fn pollfd(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// Reads once from a readable pipe into `capture`; false at end of file.
fn read_into(
    pipe: &mut impl Read,
    capture: &mut Capture,
    buf: &mut [u8],
    live: Option<(&mut LiveOutput, Stream)>,
) -> io::Result<bool> {
    match pipe.read(buf) {
        Ok(0) => Ok(false),
        Ok(n) => {
            capture.push(&buf[..n]);
            if let Some((live, stream)) = live {
                live.forward(stream, &buf[..n]);
            }
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(true),
        Err(e) => Err(e),
    }
}

impl Running {
    /// Starts `spec.argv`. An error means nothing runs (see [`spawn_failure`]).
    pub fn start(spec: &Spec<'_>) -> io::Result<Running> {
        let (program, args) = spec
            .argv
            .split_first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty argv"))?;
        let path = spec.env.get("PATH").map_or(BASE_ENV[0].1, String::as_str);
        let mut command = Command::new(resolve_program(program, path)?);
        command
            .arg0(program)
            .args(args)
            .env_clear()
            .envs(BASE_ENV.iter().copied())
            .envs(spec.env)
            .current_dir(spec.cwd)
            // /dev/null rather than a closed fd 0, which the command's first
            // open() would silently become.
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group: the timeout kills everything it started, and a
            // Ctrl-C or SIGTERM meant for the agent does not reach it.
            .process_group(0);
        let mut child = command.spawn()?;
        let pid = child.id() as libc::pid_t;
        let pidfd = match pidfd_open(pid) {
            Ok(fd) => fd,
            Err(e) => {
                killpg(pid, libc::SIGKILL);
                let _ = child.wait();
                return Err(io::Error::new(
                    e.kind(),
                    format!("pidfd_open failed (Linux 5.3 or later is needed): {e}"),
                ));
            }
        };
        let started = Instant::now();
        Ok(Running {
            stdout_pipe: child.stdout.take(),
            stderr_pipe: child.stderr.take(),
            child,
            pgid: pid,
            pidfd,
            stdout: Capture::for_chars(spec.cap_chars),
            stderr: Capture::for_chars(spec.cap_chars),
            started,
            timeout: spec.timeout,
            timeout_at: started + spec.timeout,
            kill_grace: spec.kill_grace,
            sigkill_at: None,
            killed: None,
            stopped: None,
            cap_chars: spec.cap_chars,
            live: None,
        })
    }

    /// Sends the output to `live` as well, as it is read, from now on.
    pub fn stream_to(&mut self, live: LiveOutput) {
        self.live = Some(live);
    }

    /// Stops sending output to the [`LiveOutput`], which then sees its
    /// channel close once nothing else holds it.
    pub fn end_stream(&mut self) {
        self.live = None;
    }

    /// Asks the command to stop on a cancel request: SIGTERM to its process
    /// group (only ever its own: the group the agent started it in), SIGKILL
    /// `kill_grace` later if it has not exited. Unlike
    /// [`Running::terminate`] the exit code reported stays the command's;
    /// `why` goes to its stderr. Nothing once it is being stopped or killed.
    pub fn stop(&mut self, why: String) {
        if self.killed.is_some() || self.stopped.is_some() {
            return;
        }
        killpg(self.pgid, libc::SIGTERM);
        self.sigkill_at = Some(Instant::now() + self.kill_grace);
        self.stopped = Some(why);
    }

    /// Whether [`Running::stop`] was called.
    pub fn was_stopped(&self) -> bool {
        self.stopped.is_some()
    }

    /// The command's process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Asks the whole process group to stop (SIGTERM), and kills it (SIGKILL)
    /// `kill_grace` later if it has not exited; `why` goes to the report. A
    /// second call keeps the first reason and schedule.
    pub fn terminate(&mut self, why: String) {
        if self.killed.is_some() {
            return;
        }
        killpg(self.pgid, libc::SIGTERM);
        if self.sigkill_at.is_none() {
            self.sigkill_at = Some(Instant::now() + self.kill_grace);
        }
        self.killed = Some(why);
    }

    /// Reads output until the command exits, `until` comes, or `stop_fd` or
    /// `news_fd` (non-blocking fds) becomes readable, enforcing the timeout
    /// meanwhile.
    pub fn wait(
        &mut self,
        until: Option<Instant>,
        stop_fd: Option<RawFd>,
        news_fd: Option<RawFd>,
    ) -> io::Result<Wake> {
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let now = Instant::now();
            if self.killed.is_none() && now >= self.timeout_at {
                let why = format!(
                    "actionq-agent: timed out after {}s; process group killed",
                    fmt_secs(self.timeout)
                );
                self.terminate(why);
            }
            if self.sigkill_at.is_some_and(|at| now >= at) {
                killpg(self.pgid, libc::SIGKILL);
                self.sigkill_at = None;
            }
            if until.is_some_and(|at| now >= at) {
                return Ok(Wake::Deadline);
            }
            let timer = [
                self.killed.is_none().then_some(self.timeout_at),
                self.sigkill_at,
                until,
            ]
            .into_iter()
            .flatten()
            .min();
            let mut fds = vec![pollfd(self.pidfd.as_raw_fd())];
            let out_at = self.stdout_pipe.as_ref().map(|p| {
                fds.push(pollfd(p.as_raw_fd()));
                fds.len() - 1
            });
            let err_at = self.stderr_pipe.as_ref().map(|p| {
                fds.push(pollfd(p.as_raw_fd()));
                fds.len() - 1
            });
            let stop_at = stop_fd.map(|fd| {
                fds.push(pollfd(fd));
                fds.len() - 1
            });
            let news_at = news_fd.map(|fd| {
                fds.push(pollfd(fd));
                fds.len() - 1
            });
            poll(&mut fds, poll_timeout(timer))?;
            self.read_ready(&fds, out_at, err_at, &mut buf)?;
            for (at, wake) in [(stop_at, Wake::Stop), (news_at, Wake::News)] {
                if let Some(i) = at {
                    if fds[i].revents & READABLE != 0 {
                        drain_fd(fds[i].fd);
                        return Ok(wake);
                    }
                }
            }
            if fds[0].revents & READABLE != 0 {
                return Ok(Wake::Exited);
            }
        }
    }

    fn read_ready(
        &mut self,
        fds: &[libc::pollfd],
        out_at: Option<usize>,
        err_at: Option<usize>,
        buf: &mut [u8],
    ) -> io::Result<()> {
        if let (Some(i), Some(pipe)) = (out_at, self.stdout_pipe.as_mut()) {
            let live = self.live.as_mut().map(|l| (l, Stream::Stdout));
            if fds[i].revents & READABLE != 0 && !read_into(pipe, &mut self.stdout, buf, live)? {
                self.stdout_pipe = None;
            }
        }
        if let (Some(i), Some(pipe)) = (err_at, self.stderr_pipe.as_mut()) {
            let live = self.live.as_mut().map(|l| (l, Stream::Stderr));
            if fds[i].revents & READABLE != 0 && !read_into(pipe, &mut self.stderr, buf, live)? {
                self.stderr_pipe = None;
            }
        }
        Ok(())
    }

    /// After [`Wake::Exited`]: kills what is left of the group, reaps the
    /// command, reads the pipes to their end, and gives the outcome.
    pub fn finish(mut self) -> io::Result<Outcome> {
        // The leader is a zombie until reaped, so its group id cannot have
        // been reused: anything still in the group is the command's, and it
        // must not outlive the action unsupervised.
        killpg(self.pgid, libc::SIGKILL);
        let status = self.child.wait()?;
        let duration = self.started.elapsed();
        let drain_until = Instant::now() + PIPE_DRAIN_LIMIT;
        let mut buf = vec![0u8; READ_CHUNK];
        while self.stdout_pipe.is_some() || self.stderr_pipe.is_some() {
            if Instant::now() >= drain_until {
                break;
            }
            let mut fds = Vec::new();
            let out_at = self.stdout_pipe.as_ref().map(|p| {
                fds.push(pollfd(p.as_raw_fd()));
                fds.len() - 1
            });
            let err_at = self.stderr_pipe.as_ref().map(|p| {
                fds.push(pollfd(p.as_raw_fd()));
                fds.len() - 1
            });
            poll(&mut fds, poll_timeout(Some(drain_until)))?;
            self.read_ready(&fds, out_at, err_at, &mut buf)?;
        }
        let mut notes: Vec<String> = self.stopped.iter().cloned().collect();
        if self.stdout_pipe.is_some() || self.stderr_pipe.is_some() {
            notes.push(
                "actionq-agent: a process that left the command's group still holds its output open; \
                 output after the command's exit is not captured"
                    .to_owned(),
            );
        }
        let exit_code = match (&self.killed, status.code(), status.signal()) {
            (Some(why), _, _) => {
                notes.push(why.clone());
                KILLED_EXIT_CODE
            }
            (None, Some(code), _) => code,
            (None, None, Some(signal)) => {
                notes.push(format!(
                    "actionq-agent: the command was killed by signal {signal}"
                ));
                128 + signal
            }
            (None, None, None) => unreachable!("an exit status has a code or a signal"),
        };
        Ok(Outcome {
            exit_code,
            stdout: self.stdout.render(self.cap_chars, &[]),
            stderr: self.stderr.render(self.cap_chars, &notes),
            output_bytes: (self.stdout.total_bytes(), self.stderr.total_bytes()),
            killed: self.killed.take(),
            duration,
        })
    }
}

/// Reads whatever is in a non-blocking fd (the signal pipe's wake-up bytes).
fn drain_fd(fd: RawFd) {
    let mut buf = [0u8; 64];
    loop {
        // SAFETY: reading into a local buffer of the given length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return;
        }
    }
}

/// Seconds as the config wrote them: `5`, `0.5`.
pub fn fmt_secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{}", d.as_secs())
    } else {
        format!("{s}")
    }
}

/// Runs `spec` to the end with no deadline of the caller's (tests, tools).
pub fn run(spec: &Spec<'_>) -> Outcome {
    let mut running = match Running::start(spec) {
        Ok(r) => r,
        Err(e) => return spawn_failure(spec.argv.first().map_or("", String::as_str), &e),
    };
    loop {
        match running.wait(None, None, None) {
            Ok(Wake::Exited) => break,
            Ok(_) => continue,
            Err(e) => {
                running.terminate(format!("actionq-agent: lost track of the command: {e}"));
                break;
            }
        }
    }
    match running.finish() {
        Ok(outcome) => outcome,
        Err(e) => spawn_failure(spec.argv.first().map_or("", String::as_str), &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    fn spec<'a>(argv: &'a [String], env: &'a BTreeMap<String, String>) -> Spec<'a> {
        Spec {
            argv,
            env,
            cwd: Path::new("/"),
            timeout: Duration::from_secs(60),
            kill_grace: Duration::from_secs(5),
            cap_chars: 100,
        }
    }

    #[test]
    fn capture_keeps_the_head_and_counts_the_rest() {
        let mut c = Capture::for_chars(10);
        c.push(&[b'a'; 30]);
        c.push(&[b'b'; 30]);
        assert_eq!(c.total_bytes(), 60);
        assert_eq!(c.kept.len(), 40);
        let shown = c.render(100, &[]);
        assert!(shown.starts_with(&"a".repeat(30)), "{shown}");
        assert!(
            shown.contains("truncated; the stream had 60 bytes"),
            "{shown}"
        );
        assert!(c.render(20, &[]).chars().count() <= 20);
    }

    #[test]
    fn render_fits_notes_within_the_cap() {
        let mut c = Capture::for_chars(50);
        c.push("é".repeat(40).as_bytes());
        assert_eq!(c.render(50, &[]), "é".repeat(40));
        let shown = c.render(50, &["note".to_owned()]);
        assert_eq!(shown, format!("{}\nnote", "é".repeat(40)));
        let shown = c.render(45, &["a longer note here".to_owned()]);
        assert!(shown.chars().count() <= 45, "{shown}");
        assert!(shown.ends_with("a longer note here"), "{shown}");
        assert_eq!(Capture::for_chars(5).render(5, &[]), "");
        assert_eq!(Capture::for_chars(0).render(0, &["x".to_owned()]), "");
    }

    #[test]
    fn runs_argv_without_a_shell_and_with_a_fixed_environment() {
        let env = BTreeMap::from([("EXTRA".to_owned(), "x y;$(z)".to_owned())]);
        // A shell would expand these; execve passes them as they are.
        let words = argv(&["/bin/echo", "$HOME", "a;b", "`id`"]);
        let out = run(&spec(&words, &env));
        assert_eq!(out.exit_code, 0);
        assert_eq!(out.stdout, "$HOME a;b `id`\n");
        let words = argv(&["env"]);
        let out = run(&spec(&words, &env));
        let mut lines: Vec<&str> = out.stdout.lines().collect();
        lines.sort_unstable();
        assert_eq!(
            lines,
            [
                "EXTRA=x y;$(z)",
                "LANG=C.UTF-8",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
            ]
        );
    }

    #[test]
    fn the_program_is_found_in_the_commands_own_path_and_keeps_its_name() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("hello-aq");
        std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let plain = dir.path().join("not-executable");
        std::fs::write(&plain, "#!/bin/sh\necho no\n").unwrap();
        let env = BTreeMap::from([(
            "PATH".to_owned(),
            format!("/nonexistent:{}", dir.path().display()),
        )]);
        let words = argv(&["hello-aq"]);
        assert_eq!(run(&spec(&words, &env)).stdout, "hi\n");
        let words = argv(&["not-executable"]);
        assert_eq!(run(&spec(&words, &env)).exit_code, NOT_FOUND_EXIT_CODE);
        // Not in the fixed PATH either: the agent's own PATH is not used.
        let words = argv(&["hello-aq"]);
        assert_eq!(
            run(&spec(&words, &BTreeMap::new())).exit_code,
            NOT_FOUND_EXIT_CODE
        );
        // argv[0] stays as the action gave it.
        let words = argv(&["sh", "-c", "tr '\\0' ' ' < /proc/$$/cmdline"]);
        let out = run(&spec(&words, &BTreeMap::new()));
        assert!(out.stdout.starts_with("sh -c "), "{out:?}");
    }

    #[test]
    fn stdin_is_empty_and_the_group_is_its_own() {
        let env = BTreeMap::new();
        let words = argv(&["cat"]);
        let out = run(&spec(&words, &env));
        assert_eq!((out.exit_code, out.stdout.as_str()), (0, ""));
        // The shell's process group (field 5 of its /proc stat) is its own pid.
        let words = argv(&["sh", "-c", "echo $$ $(cut -d' ' -f5 /proc/$$/stat)"]);
        let out = run(&spec(&words, &env));
        let ids: Vec<&str> = out.stdout.split_whitespace().collect();
        assert_eq!(ids.len(), 2, "{out:?}");
        assert_eq!(ids[0], ids[1]);
        assert_ne!(ids[1], std::process::id().to_string());
    }

    #[test]
    fn exit_codes_signals_and_missing_programs() {
        let env = BTreeMap::new();
        let words = argv(&["sh", "-c", "echo oops >&2; exit 3"]);
        let out = run(&spec(&words, &env));
        assert_eq!((out.exit_code, out.stderr.as_str()), (3, "oops\n"));
        let words = argv(&["sh", "-c", "kill -9 $$"]);
        let out = run(&spec(&words, &env));
        assert_eq!(out.exit_code, 137);
        assert!(out.stderr.contains("signal 9"), "{}", out.stderr);
        let words = argv(&["no-such-program-actionq"]);
        let out = run(&spec(&words, &env));
        assert_eq!(out.exit_code, NOT_FOUND_EXIT_CODE);
        assert!(out.stderr.contains("cannot run"), "{}", out.stderr);
    }

    #[test]
    fn timeout_kills_the_group_even_when_sigterm_is_ignored() {
        let env = BTreeMap::new();
        // The shell ignores SIGTERM and so does its background child, which
        // holds the pipes: only SIGKILL to the whole group ends this.
        let words = argv(&["sh", "-c", "trap '' TERM; sleep 300 & sleep 300; wait"]);
        let mut s = spec(&words, &env);
        s.timeout = Duration::from_millis(200);
        s.kill_grace = Duration::from_millis(200);
        let out = run(&s);
        assert_eq!(out.exit_code, KILLED_EXIT_CODE);
        assert!(
            out.stderr.contains("timed out after 0.2s"),
            "{}",
            out.stderr
        );
        assert!(out.killed.is_some());
    }

    #[test]
    fn what_the_command_leaves_in_its_group_is_killed_when_it_exits() {
        let env = BTreeMap::new();
        // The background sleep keeps the pipes open: unless the group is
        // killed when the shell exits, finish() waits for the drain limit and
        // says the output was held open.
        let words = argv(&["sh", "-c", "sleep 300 & echo started"]);
        let out = run(&spec(&words, &env));
        assert_eq!((out.exit_code, out.stdout.as_str()), (0, "started\n"));
        assert_eq!(out.stderr, "", "{out:?}");
    }

    #[test]
    fn a_detached_process_holding_the_output_does_not_hold_the_agent() {
        let env = BTreeMap::new();
        // setsid leaves the group (and the kill): the agent stops reading after
        // its drain limit, notes why, and reports.
        // The shell exits only once the detached process has left the group
        // (its marker file exists), so the group kill cannot reach it.
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("detached");
        let words = argv(&[
            "sh",
            "-c",
            "setsid sh -c 'touch \"$0\"; sleep 4' \"$0\" & \
             while [ ! -e \"$0\" ]; do sleep 0.01; done; echo started",
            marker.to_str().unwrap(),
        ]);
        let out = run(&spec(&words, &env));
        assert_eq!((out.exit_code, out.stdout.as_str()), (0, "started\n"));
        assert!(
            out.stderr.contains("still holds its output open"),
            "{out:?}"
        );
    }

    #[test]
    fn output_is_capped_while_it_is_read() {
        let env = BTreeMap::new();
        let words = argv(&["head", "-c", "5000000", "/dev/zero"]);
        let out = run(&spec(&words, &env));
        assert_eq!(out.exit_code, 0);
        assert_eq!(out.output_bytes.0, 5_000_000);
        assert!(out.stdout.chars().count() <= 100);
        assert!(out.stdout.contains("5000000 bytes"), "{}", out.stdout);
    }
}
