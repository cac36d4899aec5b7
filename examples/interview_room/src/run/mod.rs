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

use collab_core::{Action, ErrorCode, SessionId, UserId};
use collab_server::http::api::{
    decode_body, error_body, error_response, read_body, Api, ApiError, RequestBody,
};
use collab_server::http::transport::credential;
use collab_server::HubError;
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

/// Why a run was refused, answered in the API's error shape.
#[derive(Debug, thiserror::Error)]
enum RunError {
    /// What the API refuses the same way: the credential, the body, the
    /// session's decision on who may run (members who may edit; while it
    /// is paused, hosts).
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("a program of yours is running already; wait for it to finish")]
    AlreadyRunning,
    #[error("{CONCURRENT_RUNS} programs are running already; try again in a moment")]
    Busy,
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Runner(String),
}

impl From<HubError> for RunError {
    fn from(e: HubError) -> Self {
        RunError::Api(e.into())
    }
}

impl RunError {
    fn answer(&self) -> Answer {
        let code = match self {
            RunError::Api(e) => {
                let (status, body) = error_response(e);
                return Answer { status, body };
            }
            // A code of this app's own: the page offers Run only for the
            // languages this server runs.
            RunError::Unsupported(message) => {
                let body = error_body("unsupported_language", message);
                return Answer { status: 501, body };
            }
            RunError::AlreadyRunning | RunError::Busy => ErrorCode::RateLimited,
            RunError::Runner(_) => ErrorCode::Internal,
        };
        Answer {
            status: code.http_status(),
            body: error_body(code, &self.to_string()),
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
    /// the body as the API reads its own (up to [`MAX_BODY_BYTES`], within
    /// the body timeout), asks the session whether the caller may change
    /// its code, runs the program and returns its output. The credential is
    /// checked before the body is read, so a stranger cannot make the
    /// server buffer anything.
    pub async fn answer<B: RequestBody>(
        &self,
        api: &Api,
        authorization: Option<&str>,
        body: B,
    ) -> Answer {
        match self.try_answer(api, authorization, body).await {
            Ok(output) => Answer {
                status: 200,
                body: serde_json::to_string(&output).unwrap_or_default(),
            },
            Err(e) => e.answer(),
        }
    }

    async fn try_answer<B: RequestBody>(
        &self,
        api: &Api,
        authorization: Option<&str>,
        body: B,
    ) -> Result<RunOutput, RunError> {
        let hub = api.hub();
        let who = hub
            .authenticate(credential(authorization, None, None))
            .await?;
        let body = read_body(body, MAX_BODY_BYTES, api.config().body_timeout).await?;
        let request: RunRequest = decode_body(&body)?;
        let id = SessionId::parse(&request.session).map_err(|_| HubError::SessionNotFound)?;
        // The session's own rule for changing its code, the one its frames
        // go through: a run's output is written into the session.
        hub.caller(who.clone(), None)
            .may(&id, Action::EditDocument)
            .await?;
        let Some(_mine) = self.claim(&who.user_id) else {
            return Err(RunError::AlreadyRunning);
        };
        self.run(request).await
    }

    /// The user's one place among the runs in progress, if free.
    fn claim(&self, user: &UserId) -> Option<UserRun> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.insert(user.clone()).then(|| UserRun {
            running: Arc::clone(&self.running),
            user: user.clone(),
        })
    }

    async fn run(&self, request: RunRequest) -> Result<RunOutput, RunError> {
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
            .ok_or(RunError::Busy)?;
        if on_host {
            let output = host::run_python(&request.code).await;
            drop(permit);
            return output.map_err(|e| RunError::Runner(format!("could not run python3: {e}")));
        }
        // In a child process: a native call the interpreter cannot
        // interrupt is still stopped by the CPU-time limit, and a crash of
        // the interpreter takes down only the child.
        let output = javascript::run_isolated(&request.code).await;
        drop(permit);
        output.map_err(|e| {
            RunError::Runner(format!("the JavaScript sandbox could not be started: {e}"))
        })
    }

    fn unsupported(&self, language: &str) -> RunError {
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
        RunError::Unsupported(message)
    }
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
