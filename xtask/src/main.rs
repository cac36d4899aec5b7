//! The project's own commands, so that a fresh machine with only the Rust
//! toolchain needs nothing else from the README.
//!
//! Run with: `cargo xtask test` (the README's test command), or
//! `cargo xtask deps` to install what the tests need without running them.
//!
//! The tests start real programs: Chromium for the example page, a
//! `redis-server` for the cluster, node and npm for the browser modules and
//! the automerge interop. Whatever of those is missing is installed from the
//! system's packages (Debian's `apt-get`, through `sudo` when not root);
//! on a system without `apt-get` the command names what to install instead.

use std::env;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

/// The oldest node the browser and client suites run on (ES module hooks,
/// `node:test`).
const NODE_MAJOR: u32 = 20;

fn main() -> ExitCode {
    let mut args = env::args_os().skip(1);
    let task = args.next().and_then(|a| a.into_string().ok());
    let rest: Vec<OsString> = args.collect();
    let outcome = match task.as_deref() {
        Some("test") => install_missing().and_then(|()| run_tests(&rest)),
        Some("deps") => install_missing(),
        _ => {
            eprintln!(
                "usage: cargo xtask test [cargo test arguments]   install what the tests need, then run them all\n\
                 \x20      cargo xtask deps                          only install what the tests need"
            );
            return ExitCode::from(2);
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Why a task stopped.
#[derive(Debug)]
enum Failure {
    /// A program the tests need is missing and could not be installed here.
    Missing(String),
    /// A command ran and failed.
    Command { what: String, status: String },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Missing(what) => f.write_str(what),
            Failure::Command { what, status } => write!(f, "`{what}` failed ({status})"),
        }
    }
}

/// One program the tests run, and the Debian packages that bring it.
struct Tool {
    /// What the tests call it, for messages.
    name: &'static str,
    /// Whether it is there, and usable.
    present: fn() -> Result<bool, Failure>,
    /// Debian's packages for it.
    packages: &'static [&'static str],
}

const TOOLS: &[Tool] = &[
    Tool {
        name: "node",
        present: node_present,
        packages: &["nodejs"],
    },
    Tool {
        name: "npm",
        present: || Ok(on_path("npm").is_some()),
        packages: &["npm"],
    },
    Tool {
        name: "chromium",
        present: || Ok(chromium_path().is_file()),
        packages: &["chromium"],
    },
    Tool {
        name: "redis-server",
        present: || Ok(on_path("redis-server").is_some()),
        packages: &["redis-server"],
    },
];

/// Installs every missing tool, then checks each is there.
fn install_missing() -> Result<(), Failure> {
    let mut packages = Vec::new();
    for tool in TOOLS {
        if !(tool.present)()? {
            eprintln!("xtask: {} is missing", tool.name);
            packages.extend_from_slice(tool.packages);
        }
    }
    if !packages.is_empty() {
        apt_install(&packages)?;
    }
    for tool in TOOLS {
        if !(tool.present)()? {
            return Err(Failure::Missing(format!(
                "{} is still missing after installing {}",
                tool.name,
                tool.packages.join(" ")
            )));
        }
    }
    Ok(())
}

/// `apt-get install` of `packages`, as root or through sudo.
fn apt_install(packages: &[&str]) -> Result<(), Failure> {
    if on_path("apt-get").is_none() {
        return Err(Failure::Missing(format!(
            "the tests need {} (Debian's package names), and this system has no apt-get: \
             install them with its package manager (set CHROMIUM_PATH if chromium is elsewhere \
             than /usr/bin/chromium)",
            packages.join(", ")
        )));
    }
    let as_root = capture("id", &["-u"]).is_some_and(|uid| uid.trim() == "0");
    let apt = |args: &[&str]| -> Result<(), Failure> {
        let mut command = if as_root {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.arg("apt-get");
            sudo
        };
        command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut command, &format!("apt-get {}", args.join(" ")))
    };
    eprintln!("xtask: installing {}", packages.join(" "));
    apt(&["update", "-qq"])?;
    let mut install = vec!["install", "-y", "-qq", "--no-install-recommends"];
    install.extend_from_slice(packages);
    apt(&install)
}

/// `cargo test --workspace` with the caller's extra arguments.
fn run_tests(extra: &[OsString]) -> Result<(), Failure> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.arg("test").arg("--workspace").args(extra);
    run(&mut command, "cargo test --workspace")
}

fn run(command: &mut Command, what: &str) -> Result<(), Failure> {
    let status = command.status().map_err(|e| Failure::Command {
        what: what.to_owned(),
        status: e.to_string(),
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(Failure::Command {
            what: what.to_owned(),
            status: status.to_string(),
        })
    }
}

/// A command's standard output, if it ran and succeeded.
fn capture(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn on_path(program: &str) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}

/// Where the browser tests look for Chromium (`CHROMIUM_PATH`, else
/// Debian's place).
fn chromium_path() -> PathBuf {
    env::var_os("CHROMIUM_PATH").map_or_else(|| Path::new("/usr/bin/chromium").into(), Into::into)
}

/// Node is present if it runs; one older than [`NODE_MAJOR`] cannot be
/// fixed by installing Debian's, so it is an error of its own.
fn node_present() -> Result<bool, Failure> {
    let Some(version) = capture("node", &["--version"]) else {
        return Ok(false);
    };
    match node_major(&version) {
        Some(major) if major >= NODE_MAJOR => Ok(true),
        _ => Err(Failure::Missing(format!(
            "node {} is installed; the tests need node {NODE_MAJOR} or newer",
            version.trim()
        ))),
    }
}

/// `v20.11.1` → 20.
fn node_major(version: &str) -> Option<u32> {
    version
        .trim()
        .strip_prefix('v')?
        .split('.')
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::node_major;

    #[test]
    fn reads_node_major_versions() {
        assert_eq!(node_major("v20.20.2\n"), Some(20));
        assert_eq!(node_major("v18.19.0"), Some(18));
        assert_eq!(node_major("20.1.0"), None);
        assert_eq!(node_major("vX"), None);
    }
}
