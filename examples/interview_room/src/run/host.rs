//! Python as a real process on this machine: only when the person starting
//! the server allowed host commands, since the program can then do whatever
//! the server's user can.
//!
//! What still holds: a fresh, empty working directory removed afterwards;
//! `python3 -I` (isolated: no user site-packages, no `PYTHON*` variables);
//! an environment with nothing but the few variables needed to find python
//! (so the server's secrets in its environment are not handed over); CPU
//! time and address space capped with `ulimit`; a wall-clock limit after
//! which the whole process group is killed; output capped.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use super::{CappedOutput, RunOutput};

/// How long a program may take, waiting included.
pub const WALL_TIME_LIMIT: Duration = Duration::from_secs(5);
/// CPU seconds (`ulimit -t`), below the wall-clock limit.
const CPU_SECONDS: u32 = 4;
/// Address space in KiB (`ulimit -v`): 512 MiB, plenty for interview code.
const ADDRESS_SPACE_KIB: u32 = 512 * 1024;
/// The variables passed through to python; everything else is dropped.
const KEPT_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    // pyenv's shims need these to find the interpreter.
    "PYENV_ROOT",
    "PYENV_VERSION",
];

/// Runs `code` with `python3 -I` in a temporary directory.
///
/// The code goes into a file rather than `-c`: one command-line argument is
/// limited to 128 KiB on Linux, less than a request may carry.
///
/// # Errors
/// When the temporary directory cannot be made or the process not started.
pub async fn run_python(code: &str) -> std::io::Result<RunOutput> {
    let dir = tempfile::Builder::new()
        .prefix("interview-room-run-")
        .tempdir()?;
    tokio::fs::write(dir.path().join("main.py"), code).await?;
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!(
            "ulimit -t {CPU_SECONDS} && ulimit -v {ADDRESS_SPACE_KIB} && exec python3 -I main.py"
        ))
        .current_dir(dir.path())
        .env_clear()
        .envs(
            KEPT_ENV
                .iter()
                .filter_map(|k| Some((k, std::env::var_os(k)?))),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // Its own process group, so a timeout kills whatever it started too.
    #[cfg(unix)]
    command.process_group(0);
    let mut child = command.spawn()?;
    let stdout = tokio::spawn(read_capped(child.stdout.take()));
    let stderr = tokio::spawn(read_capped(child.stderr.take()));
    let status = match tokio::time::timeout(WALL_TIME_LIMIT, child.wait()).await {
        Ok(status) => Some(status?),
        Err(_) => {
            kill_group(&mut child).await;
            None
        }
    };
    let stdout = finish_reading(stdout).await;
    let mut stderr = finish_reading(stderr).await;
    let exit_code = match status {
        Some(status) => {
            // Killed by a signal: stopped rather than exited. Past `ulimit
            // -t` that is SIGXCPU (or SIGKILL).
            if status.code().is_none() {
                stderr.push_line("stopped by a limit (CPU time or memory)");
            }
            status.code()
        }
        None => {
            stderr.push_line(&format!(
                "time limit exceeded ({} s)",
                WALL_TIME_LIMIT.as_secs()
            ));
            None
        }
    };
    drop(dir);
    Ok(RunOutput {
        stdout: stdout.finish(),
        stderr: stderr.finish(),
        exit_code,
    })
}

/// What a pipe reader collected. Once the process group is gone its pipes
/// close; a process that left the group may hold one open, so the reader
/// gets a moment and is then abandoned with what it has not returned.
pub(super) async fn finish_reading(reader: tokio::task::JoinHandle<CappedOutput>) -> CappedOutput {
    let abort = reader.abort_handle();
    match tokio::time::timeout(Duration::from_secs(1), reader).await {
        Ok(Ok(output)) => output,
        _ => {
            abort.abort();
            CappedOutput::default()
        }
    }
}

/// Reads a pipe to its end, keeping the first [`super::OUTPUT_LIMIT`] bytes
/// and draining the rest, so the program never blocks on a full pipe.
pub(super) async fn read_capped<R: AsyncRead + Unpin>(pipe: Option<R>) -> CappedOutput {
    let mut out = CappedOutput::default();
    let Some(mut pipe) = pipe else { return out };
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = pipe.read(&mut buf).await {
        if n == 0 {
            break;
        }
        out.push(&buf[..n]);
    }
    out
}

/// Kills the program's process group (python and anything it started),
/// then the direct child in case the group could not be signalled.
pub(super) async fn kill_group(child: &mut tokio::process::Child) {
    #[cfg(unix)]
    if let Some(pid) = child.id() {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
    }
    let _ = child.kill().await;
}
