//! `POST /api/v1/run`: runs the code of the Run button and answers with its
//! output, which the page then shares with the session (`run_output`).
//!
//! Safe by default: JavaScript runs in an embedded interpreter with a time
//! and a memory limit, inside a child process of its own with a CPU-time
//! limit and a hard kill ([`javascript`]), and nothing else is ever started
//! on the host. Only a session's current members with the editor or host
//! role may run code, for that session; one run per user at a time. Only when the person starting the server turns host commands on
//! (`--allow-host-commands` or `COLLAB_RUN_ON_HOST=1`) does Python run as a
//! real process ([`host`]); every other language is refused with 501, which
//! the page shows as "running code is turned off".
//!
//! The endpoint is framework-free: [`Runner::answer`] takes the
//! `Authorization` header and the body as a stream of chunks and returns a
//! status and a JSON body, so the axum and the warp app mount it the same
//! way.

pub mod host;
pub mod javascript;

use std::sync::Arc;
use std::time::Duration;

use bytes::Buf;
use collab_core::{Action, SessionId, UserId};
use collab_server::http::api::error_response;
use collab_server::http::transport::credential;
use collab_server::{Hub, SessionRead};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

/// The path the page posts to.
pub const PATH: &str = "/api/v1/run";
/// The largest request body accepted: far more code than an interview needs.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// The most output kept per stream, notice of truncation included; what the
/// session document accepts for a run's output.
pub const OUTPUT_LIMIT: usize = collab_core::document::MAX_RUN_OUTPUT_BYTES;
/// How many programs run at once. Each takes a core while it runs, and this
/// example expects a small machine.
pub const CONCURRENT_RUNS: usize = 2;
/// How long a run waits for a free slot before it is refused with 429.
const QUEUE_WAIT: Duration = Duration::from_secs(3);

/// What the page posts.
#[derive(Debug, Deserialize)]
pub struct RunRequest {
    /// The session the output goes to: the caller must be one of its
    /// current members, with a role that may edit.
    pub session: String,
    /// The session's language value (`javascript`, `python`, ...).
    pub language: String,
    /// The program.
    pub code: String,
}

/// What a run printed and how it ended; the answer's JSON body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOutput {
    /// Standard output, at most [`OUTPUT_LIMIT`] bytes.
    pub stdout: String,
    /// Standard error, at most [`OUTPUT_LIMIT`] bytes; says which limit
    /// stopped the program, if one did.
    pub stderr: String,
    /// The exit code; `null` when the program was stopped (a limit, a
    /// signal) rather than ending by itself.
    pub exit_code: Option<i32>,
}

/// An HTTP answer: status and JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status code.
    pub status: u16,
    /// The JSON body.
    pub body: String,
}

impl Answer {
    /// An error in the collab shape: `{"error": {"code", "message"}}`.
    fn error(status: u16, code: &str, message: &str) -> Self {
        let body = serde_json::json!({"error": {"code": code, "message": message}});
        Self {
            status,
            body: body.to_string(),
        }
    }
}

/// Runs programs for `/api/v1/run`, at most [`CONCURRENT_RUNS`] at a time.
/// Cheap to clone; clones share the slots.
#[derive(Clone)]
pub struct Runner {
    host_commands: bool,
    slots: Arc<Semaphore>,
    /// Users with a run in progress: one each.
    running: Arc<std::sync::Mutex<std::collections::HashSet<UserId>>>,
}

/// A user's place among the runs in progress, given back on drop.
struct UserRun {
    running: Arc<std::sync::Mutex<std::collections::HashSet<UserId>>>,
    user: UserId,
}

impl Drop for UserRun {
    fn drop(&mut self) {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.user);
    }
}

impl Runner {
    /// A runner; `host_commands` lets it start Python on this machine.
    pub fn new(host_commands: bool) -> Self {
        Self {
            host_commands,
            slots: Arc::new(Semaphore::new(CONCURRENT_RUNS)),
            running: Arc::default(),
        }
    }

    /// Whether programs may be started on the host.
    pub fn host_commands(&self) -> bool {
        self.host_commands
    }

    /// The languages this server runs, as `GET /api/v1/run` answers them:
    /// the page offers Run only for these, and says so for the others
    /// before anyone presses it.
    pub fn languages(&self) -> Answer {
        let mut languages = vec!["javascript"];
        if self.host_commands {
            languages.push("python");
        }
        Answer {
            status: 200,
            body: serde_json::json!({ "languages": languages }).to_string(),
        }
    }

    /// Answers one request: checks the credential (`authorization` is the
    /// header's value, `Bearer <token>`) with the hub's authenticator, reads
    /// up to [`MAX_BODY_BYTES`] of `body`, runs the program and returns its
    /// output. The credential is checked before the body is read, so a
    /// stranger cannot make the server buffer anything.
    pub async fn answer<S, B, E>(&self, hub: &Hub, authorization: Option<&str>, body: S) -> Answer
    where
        S: Stream<Item = Result<B, E>> + Unpin,
        B: Buf,
        E: std::fmt::Display,
    {
        let who = match hub
            .authenticate(credential(authorization, None, None))
            .await
        {
            Ok(who) => who,
            Err(e) => {
                let (status, body) = error_response(&e.into());
                return Answer { status, body };
            }
        };
        let body = match read_limited(body, MAX_BODY_BYTES).await {
            Ok(body) => body,
            Err(answer) => return answer,
        };
        let request: RunRequest = match serde_json::from_slice(&body) {
            Ok(request) => request,
            Err(e) => {
                return Answer::error(
                    400,
                    "invalid_input",
                    &format!("the body must be {{\"language\", \"code\"}}: {e}"),
                )
            }
        };
        if let Err(answer) = may_run(hub, &who, &request.session).await {
            return answer;
        }
        let Some(_mine) = self.claim(&who.user_id) else {
            return Answer::error(
                429,
                "rate_limited",
                "a program of yours is running already; wait for it to finish",
            );
        };
        match self.run(request).await {
            Ok(output) => Answer {
                status: 200,
                body: serde_json::to_string(&output).unwrap_or_default(),
            },
            Err(answer) => answer,
        }
    }

    /// The user's one place among the runs in progress, if free.
    fn claim(&self, user: &UserId) -> Option<UserRun> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.insert(user.clone()).then(|| UserRun {
            running: Arc::clone(&self.running),
            user: user.clone(),
        })
    }

    async fn run(&self, request: RunRequest) -> Result<RunOutput, Answer> {
        let language = request.language.as_str();
        let on_host = match language {
            "javascript" => false,
            "python" if self.host_commands => true,
            _ => return Err(self.unsupported(language)),
        };
        let permit = tokio::time::timeout(QUEUE_WAIT, self.slots.clone().acquire_owned())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or_else(|| {
                Answer::error(
                    429,
                    "rate_limited",
                    &format!(
                        "{CONCURRENT_RUNS} programs are running already; try again in a moment"
                    ),
                )
            })?;
        if on_host {
            let output = host::run_python(&request.code).await;
            drop(permit);
            return output.map_err(|e| {
                Answer::error(500, "internal", &format!("could not run python3: {e}"))
            });
        }
        // In a child process: a native call the interpreter cannot
        // interrupt is still stopped by the CPU-time limit, and a crash of
        // the interpreter takes down only the child.
        let output = javascript::run_isolated(&request.code).await;
        drop(permit);
        output.map_err(|e| {
            Answer::error(
                500,
                "internal",
                &format!("the JavaScript sandbox could not be started: {e}"),
            )
        })
    }

    fn unsupported(&self, language: &str) -> Answer {
        let message = if self.host_commands {
            format!(
                "running {language} is not supported here: JavaScript runs in the embedded \
                 sandbox and Python on the host; other languages do not run"
            )
        } else {
            format!(
                "running {language} is turned off on this server: only JavaScript runs, in an \
                 embedded sandbox. To run Python as a program on the server's machine, start \
                 the server with --allow-host-commands (or COLLAB_RUN_ON_HOST=1); do that only \
                 where everyone who can open a session may run programs there"
            )
        };
        Answer::error(501, "unsupported_language", &message)
    }
}

/// Whether `who` may run code for `session`: a current member whose role
/// may edit the document.
async fn may_run(hub: &Hub, who: &collab_core::Identity, session: &str) -> Result<(), Answer> {
    let refused = |message: &str| Answer::error(403, "forbidden", message);
    let id = SessionId::parse(session)
        .map_err(|_| Answer::error(404, "session_not_found", "no such session"))?;
    let view = match hub.caller(who.clone(), None).session(&id).await {
        Ok(SessionRead::Full(view)) => view,
        Ok(_) => return Err(refused("join the session to run code in it")),
        Err(e) => {
            let (status, body) = error_response(&e.into());
            return Err(Answer { status, body });
        }
    };
    let me = view
        .participants
        .iter()
        .find(|p| p.present && p.participant.user_id == who.user_id);
    match me.map(|p| p.participant.role) {
        Some(role) if role.permits(Action::EditDocument) => Ok(()),
        Some(_) => Err(refused("viewers cannot run code")),
        None => Err(refused("join the session to run code in it")),
    }
}

/// Reads a body of at most `limit` bytes, whether or not it announced its
/// length; past the limit, 413 with the collab error shape.
async fn read_limited<S, B, E>(mut body: S, limit: usize) -> Result<Vec<u8>, Answer>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: Buf,
    E: std::fmt::Display,
{
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk
            .map_err(|e| Answer::error(400, "invalid_input", &format!("request body: {e}")))?;
        if bytes.len() + chunk.remaining() > limit {
            return Err(Answer::error(
                413,
                "frame_too_large",
                &format!("the program is limited to {} KiB", limit / 1024),
            ));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            bytes.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(bytes)
}

/// One output stream, kept up to [`OUTPUT_LIMIT`] bytes; what goes past is
/// counted, and the count is said at the end.
#[derive(Default)]
pub struct CappedOutput {
    bytes: Vec<u8>,
    dropped: usize,
}

/// Room kept free at the end of a stream for the truncation notice and a
/// limit's message.
const NOTICE_ROOM: usize = 200;

impl CappedOutput {
    /// Appends what fits and counts the rest.
    pub fn push(&mut self, data: &[u8]) {
        let room = (OUTPUT_LIMIT - NOTICE_ROOM).saturating_sub(self.bytes.len());
        let kept = data.len().min(room);
        self.bytes.extend_from_slice(&data[..kept]);
        self.dropped += data.len() - kept;
    }

    /// Appends a line of the runner's own (a limit's message), which always
    /// fits.
    pub fn push_line(&mut self, line: &str) {
        if !self.bytes.is_empty() && !self.bytes.ends_with(b"\n") {
            self.bytes.push(b'\n');
        }
        self.bytes.extend_from_slice(line.as_bytes());
        self.bytes.push(b'\n');
    }

    /// The text, with a notice when some was dropped. Bytes that are not
    /// UTF-8 (a program may print anything) show as U+FFFD.
    pub fn finish(mut self) -> String {
        if self.dropped > 0 {
            let notice = format!(
                "\n[output truncated: {} more bytes not shown]\n",
                self.dropped
            );
            self.bytes.extend_from_slice(notice.as_bytes());
        }
        let mut text = String::from_utf8_lossy(&self.bytes).into_owned();
        // A cut may split a character, and a replacement character is wider
        // than the byte it replaces: stay under the limit whatever happens.
        while text.len() > OUTPUT_LIMIT {
            text.pop();
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_capped_with_a_notice() {
        let mut out = CappedOutput::default();
        for _ in 0..100 {
            out.push(&[b'x'; 1000]);
        }
        out.push_line("time limit exceeded (2 s)");
        let text = out.finish();
        assert!(text.len() <= OUTPUT_LIMIT);
        assert!(text.contains("time limit exceeded (2 s)\n"));
        assert!(
            text.ends_with("bytes not shown]\n"),
            "{}",
            &text[text.len() - 80..]
        );
    }
}
