//! JavaScript in an embedded QuickJS interpreter: the runner that is on by
//! default, because nothing in it can reach the machine.
//!
//! The interpreter gets the language's built-ins (JSON, Math, Map, promises
//! and so on) and a `console` that writes into the captured output, and
//! nothing else: no `require`, no module loader, no file, process or network
//! API. The program is stopped when it runs past [`TIME_LIMIT`] (through
//! QuickJS's interrupt handler, which the interpreter calls regularly while
//! it executes) or allocates past [`MEMORY_LIMIT`].
//!
//! The server never runs the interpreter itself: [`run_isolated`] starts
//! this same binary as a child (`--run-javascript`) under a CPU-time limit
//! and an address-space limit, and kills it at a wall-clock limit. A native
//! call that never returns to the interpreter (the interrupt handler cannot
//! stop it) is then still stopped, and a crash of the interpreter ends only
//! the child.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rquickjs::context::EvalOptions;
use rquickjs::{Coerced, Context, Function, Runtime, Value};

use super::{CappedOutput, RunOutput};

/// How long a program may run.
pub const TIME_LIMIT: Duration = Duration::from_secs(2);
/// How much memory the interpreter may allocate, the program's values and
/// the interpreter's own structures together.
pub const MEMORY_LIMIT: usize = 32 * 1024 * 1024;
/// How deep the interpreter's native stack may grow. Below the 2 MiB of a
/// blocking-pool thread, so deep recursion ends in a `RangeError`, not a
/// crash.
const STACK_LIMIT: usize = 1024 * 1024;

/// The argument that makes the binary a sandbox child instead of a server.
pub const CHILD_ARG: &str = "--run-javascript";
/// CPU seconds the child may use (`ulimit -t`); the interpreter's own time
/// limit comes first for ordinary code.
const CPU_SECONDS: u32 = 3;
/// Address space of the child in KiB (`ulimit -v`): far above the
/// interpreter's heap limit, far below what would hurt the machine.
const ADDRESS_SPACE_KIB: u32 = 1024 * 1024;
/// When the child is killed whatever it is doing.
pub const WALL_TIME_LIMIT: Duration = Duration::from_secs(5);

/// Runs `code` in a child process of this binary and returns what it
/// printed.
///
/// # Errors
/// When the child cannot be started.
pub async fn run_isolated(code: &str) -> std::io::Result<RunOutput> {
    use tokio::io::AsyncWriteExt;
    let exe = std::env::current_exe()?;
    let mut command = tokio::process::Command::new("sh");
    command
        .arg("-c")
        .arg(format!(
            "ulimit -t {CPU_SECONDS} && ulimit -v {ADDRESS_SPACE_KIB} && exec \"$0\" {CHILD_ARG}"
        ))
        .arg(exe)
        .env_clear()
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    command.process_group(0);
    let mut child = command.spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        // A child that died early closes its end: what it says is its answer.
        let _ = stdin.write_all(code.as_bytes()).await;
    }
    let stdout = tokio::spawn(read_all(child.stdout.take()));
    let stderr = tokio::spawn(super::host::read_capped(child.stderr.take()));
    let status = match tokio::time::timeout(WALL_TIME_LIMIT, child.wait()).await {
        Ok(status) => Some(status?),
        Err(_) => {
            super::host::kill_group(&mut child).await;
            None
        }
    };
    let answer = stdout.await.unwrap_or_default();
    let _ = super::host::finish_reading(stderr).await;
    if let Some(output) = status
        .filter(std::process::ExitStatus::success)
        .and_then(|_| serde_json::from_slice::<RunOutput>(&answer).ok())
    {
        return Ok(output);
    }
    // Killed: by the CPU limit (SIGXCPU), the address-space limit (an
    // allocation failed and the interpreter aborted) or the wall clock.
    let mut stderr = CappedOutput::default();
    stderr.push_line(&match status {
        None => format!("time limit exceeded ({} s)", TIME_LIMIT.as_secs()),
        Some(_) => format!("time limit exceeded ({CPU_SECONDS} s of CPU)"),
    });
    Ok(RunOutput {
        stdout: String::new(),
        stderr: stderr.finish(),
        exit_code: None,
    })
}

/// Reads a pipe to its end, up to the output the child may send.
async fn read_all<R: tokio::io::AsyncRead + Unpin>(pipe: Option<R>) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    if let Some(pipe) = pipe {
        let limit = (4 * super::OUTPUT_LIMIT + 4096) as u64;
        let _ = pipe.take(limit).read_to_end(&mut out).await;
    }
    out
}

/// The child's side: reads the program from standard input, runs it and
/// writes the [`RunOutput`] as JSON to standard output.
pub fn child_main() -> std::process::ExitCode {
    use std::io::{Read, Write};
    let mut code = String::new();
    let limit = super::MAX_BODY_BYTES as u64;
    if std::io::stdin()
        .take(limit)
        .read_to_string(&mut code)
        .is_err()
    {
        return std::process::ExitCode::FAILURE;
    }
    let output = run(&code);
    let Ok(json) = serde_json::to_vec(&output) else {
        return std::process::ExitCode::FAILURE;
    };
    let mut stdout = std::io::stdout().lock();
    if stdout
        .write_all(&json)
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}

/// A function that installs `console`. It gets the native
/// `write(stream, text)` as an argument rather than finding it on the global
/// object, so the program never sees it.
const PRELUDE: &str = include_str!("prelude.js");

/// Runs `code` as a classic script (sloppy mode, as node runs a file) and
/// returns what it printed. Blocks the calling thread for up to
/// [`TIME_LIMIT`] plus the time to set up and tear down the interpreter.
pub fn run(code: &str) -> RunOutput {
    let output = Rc::new(RefCell::new(Captured::default()));
    let stopped = match run_in_quickjs(code, &output) {
        Ok(outcome) => outcome,
        Err(e) => Outcome::Failed(format!("the JavaScript interpreter failed: {e}")),
    };
    let Captured { stdout, mut stderr } = Rc::try_unwrap(output)
        .map(RefCell::into_inner)
        .unwrap_or_else(|shared| shared.borrow_mut().take());
    let exit_code = match stopped {
        Outcome::Finished => Some(0),
        Outcome::Failed(message) => {
            stderr.push_line(&message);
            Some(1)
        }
        Outcome::TimeLimit => {
            stderr.push_line(&format!("time limit exceeded ({} s)", TIME_LIMIT.as_secs()));
            None
        }
        Outcome::MemoryLimit => {
            stderr.push_line(&format!(
                "memory limit exceeded ({} MiB)",
                MEMORY_LIMIT / (1024 * 1024)
            ));
            None
        }
    };
    RunOutput {
        stdout: stdout.finish(),
        stderr: stderr.finish(),
        exit_code,
    }
}

/// The program's two output streams.
#[derive(Default)]
struct Captured {
    stdout: CappedOutput,
    stderr: CappedOutput,
}

impl Captured {
    fn take(&mut self) -> Self {
        std::mem::take(self)
    }
}

/// How a program ended.
enum Outcome {
    /// It ran to its end.
    Finished,
    /// It threw (the text says what), or the interpreter could not start.
    Failed(String),
    /// Stopped at the time limit.
    TimeLimit,
    /// Stopped at the memory limit.
    MemoryLimit,
}

fn run_in_quickjs(code: &str, output: &Rc<RefCell<Captured>>) -> rquickjs::Result<Outcome> {
    let runtime = Runtime::new()?;
    runtime.set_memory_limit(MEMORY_LIMIT);
    runtime.set_max_stack_size(STACK_LIMIT);
    let deadline = Instant::now() + TIME_LIMIT;
    let timed_out = Arc::new(AtomicBool::new(false));
    let flag = timed_out.clone();
    runtime.set_interrupt_handler(Some(Box::new(move || {
        let over = Instant::now() >= deadline;
        if over {
            flag.store(true, Ordering::Relaxed);
        }
        over
    })));
    // Node reports a promise rejected with no handler when the microtasks
    // run out; so do we. The count goes back down when a handler is attached
    // later, and the description of the most recent one is kept.
    let unhandled = Rc::new(RefCell::new(Unhandled::default()));
    let tracker = unhandled.clone();
    runtime.set_host_promise_rejection_tracker(Some(Box::new(
        move |_ctx, _promise, reason, is_handled| {
            let mut unhandled = tracker.borrow_mut();
            if is_handled {
                unhandled.count = unhandled.count.saturating_sub(1);
            } else {
                unhandled.count += 1;
                unhandled.last = describe_thrown(reason);
            }
        },
    )));
    let context = Context::full(&runtime)?;

    let mut outcome = context.with(|ctx| {
        let sink = output.clone();
        let write = Function::new(ctx.clone(), move |stream: i32, text: String| {
            let mut out = sink.borrow_mut();
            let target = if stream == 2 {
                &mut out.stderr
            } else {
                &mut out.stdout
            };
            target.push(text.as_bytes());
        })?;
        let install: Function<'_> = ctx.eval(PRELUDE)?;
        install.call::<_, ()>((write,))?;
        let mut options = EvalOptions::default();
        options.strict = false;
        options.filename = Some("main.js".into());
        Ok::<_, rquickjs::Error>(match ctx.eval_with_options::<Value<'_>, _>(code, options) {
            Ok(_) => Outcome::Finished,
            Err(rquickjs::Error::Exception) => thrown(ctx.catch()),
            Err(e) => Outcome::Failed(e.to_string()),
        })
    })?;

    // Promise callbacks, until there are none left or one throws.
    while matches!(outcome, Outcome::Finished) {
        match runtime.execute_pending_job() {
            Ok(true) => {}
            Ok(false) => break,
            Err(job) => outcome = job.0.with(|ctx| thrown(ctx.catch())),
        }
    }
    // An interrupt surfaces as an uncatchable exception wherever the program
    // was; the flag tells it apart from one the program threw.
    if timed_out.load(Ordering::Relaxed) {
        return Ok(Outcome::TimeLimit);
    }
    let unhandled = unhandled.borrow();
    if matches!(outcome, Outcome::Finished) && unhandled.count > 0 {
        outcome = Outcome::Failed(format!("Uncaught (in promise) {}", unhandled.last));
    }
    Ok(outcome)
}

#[derive(Default)]
struct Unhandled {
    count: usize,
    last: String,
}

/// What an uncaught exception means: a limit, or the program's own error.
fn thrown(value: Value<'_>) -> Outcome {
    // QuickJS reports running out of its allotted memory as an InternalError
    // "out of memory", or, when there is no room left even for that error
    // object, by throwing `null`. A program that throws either itself is
    // taken for one that ran out of memory: rare, and harmless.
    if value.is_null() {
        return Outcome::MemoryLimit;
    }
    let text = describe_thrown(value);
    if text.starts_with("InternalError: out of memory") {
        Outcome::MemoryLimit
    } else {
        Outcome::Failed(format!("Uncaught {text}"))
    }
}

/// `Name: message` and the stack for an error object; the value as text for
/// anything else thrown.
fn describe_thrown(value: Value<'_>) -> String {
    if let Some(error) = value.as_exception() {
        let name: String = error
            .get::<_, Coerced<String>>("name")
            .map_or_else(|_| "Error".into(), |n| n.0);
        let message = error.message().unwrap_or_default();
        let stack = error.stack().unwrap_or_default();
        let head = if message.is_empty() {
            name
        } else {
            format!("{name}: {message}")
        };
        return if stack.trim().is_empty() {
            head
        } else {
            format!("{head}\n{}", stack.trim_end())
        };
    }
    value
        .get::<Coerced<String>>()
        .map_or_else(|_| "a value that cannot be shown".into(), |s| s.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_output_is_captured() {
        let out = run("console.log('hi', 1 + 2, [3, 1, 2], {a: 'x'}); console.error('oops')");
        assert_eq!(out.stdout, "hi 3 [ 3, 1, 2 ] { a: 'x' }\n");
        assert_eq!(out.stderr, "oops\n");
        assert_eq!(out.exit_code, Some(0));
    }

    #[test]
    fn an_uncaught_error_fails_with_its_message() {
        let out =
            run("console.log('before');\nfunction f() { throw new TypeError('bad input'); }\nf();");
        assert_eq!(out.stdout, "before\n");
        assert!(
            out.stderr.starts_with("Uncaught TypeError: bad input\n"),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains("main.js"), "{}", out.stderr);
        assert_eq!(out.exit_code, Some(1));
    }

    #[test]
    fn a_syntax_error_fails() {
        let out = run("def solve(nums):\n    return nums\n");
        assert!(
            out.stderr.starts_with("Uncaught SyntaxError"),
            "{}",
            out.stderr
        );
        assert_eq!(out.exit_code, Some(1));
    }

    #[test]
    fn promises_run_and_unhandled_rejections_fail() {
        let out = run("Promise.resolve(5).then((v) => console.log('got', v));");
        assert_eq!((out.stdout.as_str(), out.exit_code), ("got 5\n", Some(0)));
        let out = run("(async () => { throw new Error('later'); })();");
        assert!(
            out.stderr.starts_with("Uncaught (in promise) Error: later"),
            "{}",
            out.stderr
        );
        assert_eq!(out.exit_code, Some(1));
        let out =
            run("const p = Promise.reject(new Error('x')); p.catch(() => console.log('handled'));");
        assert_eq!((out.stdout.as_str(), out.exit_code), ("handled\n", Some(0)));
    }

    #[test]
    fn an_endless_loop_stops_at_the_time_limit() {
        let started = Instant::now();
        let out = run("console.log('start'); for (;;) {}");
        assert!(
            started.elapsed() < TIME_LIMIT * 3,
            "{:?}",
            started.elapsed()
        );
        assert_eq!(out.stdout, "start\n");
        assert_eq!(out.stderr, "time limit exceeded (2 s)\n");
        assert_eq!(out.exit_code, None);
        // Catching does not help: the interrupt cannot be caught.
        let out = run("for (;;) { try { for (;;) {} } catch (e) {} }");
        assert_eq!(out.exit_code, None);
    }

    #[test]
    fn allocating_without_end_stops_at_the_memory_limit() {
        for bomb in [
            "const a = []; for (;;) a.push('x'.repeat(1 << 20) + a.length);",
            "let s = 'x'; for (;;) s = s + s;",
            "const a = []; for (;;) a.push({n: a.length, more: [1, 2, 3]});",
            "new Array(1e9).fill(0)",
            "function f() { const a = []; for (;;) a.push({n: a.length, more: [1, 2, 3]}); } f();",
            "function f() { let s = []; for (;;) s.push(s.length + 'abc'); } f();",
            "const m = new Map(); for (let i = 0; ; i++) m.set(i, [i]);",
        ] {
            let out = run(bomb);
            assert_eq!(
                out.stderr, "memory limit exceeded (32 MiB)\n",
                "{bomb}: {}",
                out.stderr
            );
            assert_eq!(out.exit_code, None, "{bomb}");
        }
    }

    /// What could hold the thread without running JavaScript: a regular
    /// expression that backtracks for ever is interrupted too, and
    /// `Atomics.wait` refuses to block.
    #[test]
    fn nothing_blocks_past_the_limit() {
        let out = run("console.log(/(a+)+b/.test('a'.repeat(40)))");
        assert_eq!(out.exit_code, None, "{}", out.stderr);
        let out = run("Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0)");
        assert!(out.stderr.contains("cannot block"), "{}", out.stderr);
        assert_eq!(out.exit_code, Some(1));
    }

    #[test]
    fn deep_recursion_is_an_error_not_a_crash() {
        let out = run("function f(n) { return f(n + 1) + 1; } f(0);");
        assert!(out.stderr.contains("RangeError"), "{}", out.stderr);
        assert_eq!(out.exit_code, Some(1));
    }

    #[test]
    fn nothing_of_the_host_is_reachable() {
        let out = run(
            "console.log(typeof require, typeof process, typeof std, typeof os, typeof fetch, typeof write);\n\
             import('fs').then(() => console.log('imported'), (e) => console.log('no import'));",
        );
        assert_eq!(
            out.stdout,
            "undefined undefined undefined undefined undefined undefined\nno import\n"
        );
    }

    #[test]
    fn endless_output_is_capped() {
        let out = run("for (let i = 0; i < 100000; i++) console.log('line', i);");
        assert!(
            out.stdout.len() <= super::super::OUTPUT_LIMIT,
            "{}",
            out.stdout.len()
        );
        assert!(
            out.stdout.ends_with("bytes not shown]\n"),
            "{}",
            &out.stdout[out.stdout.len() - 100..]
        );
        assert_eq!(out.exit_code, Some(0));
    }
}
