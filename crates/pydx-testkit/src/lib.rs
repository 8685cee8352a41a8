//! Test support for pydx: the real CPython interpreters to test against, and
//! a way to run the small Python programs in `scripts/` under each of them.
//!
//! The interpreters are the pyenv builds 3.8–3.13 (shared libpython),
//! Debian's static `/usr/bin/python3.11`, and 3.13, 3.14 and 3.15 inside a
//! Debian sid chroot that `scripts/setup-test-env.sh` builds into the test
//! cache (`$PYDX_TEST_CACHE`, default `~/.cache/pydx-test`). A missing
//! interpreter fails the test run, so that CI never passes by skipping one;
//! set `PYDX_ALLOW_MISSING_PYTHONS=1` to run with what is there.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a test program may take to print `ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A CPython interpreter available for tests.
#[derive(Debug, Clone)]
pub struct Interpreter {
    /// A short label, e.g. `pyenv-3.11`, `debian-3.11` or `sid-3.15`.
    pub label: String,
    /// `(major, minor)`.
    pub version: (u8, u8),
    /// The interpreter's path (inside `root` for chroot interpreters).
    pub python: PathBuf,
    /// The chroot it runs in, if any.
    pub root: Option<PathBuf>,
}

/// The folder that holds test environments built once and reused.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PYDX_TEST_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    Path::new(&home).join(".cache/pydx-test")
}

/// The Debian sid chroot with Python 3.13, 3.14 and 3.15.
pub fn sid_root() -> PathBuf {
    cache_dir().join("sid")
}

fn pyenv_root() -> PathBuf {
    if let Some(root) = std::env::var_os("PYENV_ROOT") {
        return PathBuf::from(root);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    Path::new(&home).join(".pyenv")
}

/// The newest pyenv build of `3.minor` (e.g. `3.11.7`) and its interpreter, if installed.
fn pyenv_build(minor: u8) -> Option<(String, PathBuf)> {
    let versions = std::fs::read_dir(pyenv_root().join("versions")).ok()?;
    let prefix = format!("3.{minor}.");
    let mut found: Vec<(Vec<u32>, String)> = versions
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let rest = name.strip_prefix(&prefix)?;
            let micro: u32 = rest.parse().ok()?;
            Some((vec![micro], name))
        })
        .collect();
    found.sort();
    let (_, name) = found.pop()?;
    let python = pyenv_root().join(format!("versions/{name}/bin/python3.{minor}"));
    python.exists().then_some((name, python))
}

/// The venv with the pinned web stack (gunicorn, uvicorn, Django, ...),
/// built by `scripts/setup-test-env.sh` from pyenv's Python 3.12.
pub fn web_venv() -> PathBuf {
    let venv = cache_dir().join("venv-web");
    assert!(
        venv.join("bin/python").exists(),
        "missing the web test venv in {}; run scripts/setup-test-env.sh",
        venv.display()
    );
    venv
}

/// The Python of the web test venv, as an [`Interpreter`].
pub fn web_python() -> Interpreter {
    Interpreter {
        label: "web-3.12".into(),
        version: (3, 12),
        python: web_venv().join("bin/python"),
        root: None,
    }
}

/// The Python 3.11 venv with what the doctor examples need (NumPy),
/// built by `scripts/setup-test-env.sh`.
pub fn examples_python() -> Interpreter {
    let venv = cache_dir().join("venv-examples");
    assert!(
        venv.join("bin/python").exists(),
        "missing the examples venv in {}; run scripts/setup-test-env.sh",
        venv.display()
    );
    Interpreter {
        label: "examples-3.11".into(),
        version: (3, 11),
        python: venv.join("bin/python"),
        root: None,
    }
}

/// The repository's `examples/` folder.
pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// A free TCP port on localhost.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Every interpreter the tests must cover, in version order. Panics naming
/// the missing ones unless `PYDX_ALLOW_MISSING_PYTHONS=1`.
pub fn interpreters() -> Vec<Interpreter> {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for minor in 8..=13u8 {
        match pyenv_build(minor) {
            Some((_, python)) => found.push(Interpreter {
                label: format!("pyenv-3.{minor}"),
                version: (3, minor),
                python,
                root: None,
            }),
            None => missing.push(format!("pyenv 3.{minor}")),
        }
    }
    let debian = PathBuf::from("/usr/bin/python3.11");
    if debian.exists() {
        found.push(Interpreter {
            label: "debian-3.11".into(),
            version: (3, 11),
            python: debian,
            root: None,
        });
    } else {
        missing.push("Debian /usr/bin/python3.11".into());
    }
    let sid = sid_root();
    for minor in 13..=15u8 {
        let python = PathBuf::from(format!("/usr/bin/python3.{minor}"));
        if sid
            .join(python.strip_prefix("/").expect("absolute"))
            .exists()
        {
            found.push(Interpreter {
                label: format!("sid-3.{minor}"),
                version: (3, minor),
                python,
                root: Some(sid.clone()),
            });
        } else {
            missing.push(format!("sid chroot python3.{minor} (in {})", sid.display()));
        }
    }
    if !missing.is_empty() && std::env::var_os("PYDX_ALLOW_MISSING_PYTHONS").is_none() {
        panic!(
            "test interpreters missing: {}; run scripts/setup-test-env.sh \
             (or set PYDX_ALLOW_MISSING_PYTHONS=1 to test with what is there)",
            missing.join(", ")
        );
    }
    found
}

/// The interpreter with this label (see [`interpreters`]).
pub fn interpreter(label: &str) -> Interpreter {
    interpreters()
        .into_iter()
        .find(|i| i.label == label)
        .unwrap_or_else(|| panic!("no test interpreter {label}"))
}

/// A pyenv Python older than pydx supports (3.7, 3.6 or 2.7), and its
/// pyenv version name.
pub fn unsupported_python() -> (PathBuf, String) {
    let pyenv = std::env::var("PYENV_ROOT").unwrap_or_else(|_| "/root/.pyenv".into());
    ["3.7", "3.6", "2.7"]
        .iter()
        .find_map(|minor| {
            let versions = std::fs::read_dir(format!("{pyenv}/versions")).ok()?;
            versions.filter_map(Result::ok).find_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let python = entry.path().join(format!("bin/python{minor}"));
                (name.starts_with(&format!("{minor}.")) && python.exists())
                    .then_some((python, name))
            })
        })
        .expect("an old pyenv Python (3.7, 3.6 or 2.7) to test with")
}

/// The folder of the test programs.
pub fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts")
}

/// The text of test program `name`.
pub fn script_source(name: &str) -> String {
    std::fs::read_to_string(scripts_dir().join(name))
        .unwrap_or_else(|e| panic!("cannot read script {name}: {e}"))
}

/// The 1-based line of `script` that contains `marker` (a comment such as
/// `# LINE:sleep`), so that tests assert exact lines without hard-coding them.
pub fn marker_line(script: &str, marker: &str) -> u32 {
    let source = script_source(script);
    let lines: Vec<usize> = source
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains(marker))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "marker {marker} must be on exactly one line of {script}"
    );
    lines[0] as u32
}

/// A running test program; killed when dropped.
#[derive(Debug)]
pub struct PythonChild {
    child: Child,
    /// The program's process id.
    pub pid: u32,
    /// The program's path as the interpreter sees it (`co_filename`).
    pub script_path: String,
    /// Lines the program printed after `ready`, if read with [`PythonChild::read_line`].
    lines: mpsc::Receiver<String>,
}

impl Interpreter {
    /// Whether this is at least `3.minor`.
    pub fn at_least(&self, minor: u8) -> bool {
        self.version >= (3, minor)
    }

    /// Makes the repository example `name` (in `examples/`) visible to this
    /// interpreter; returns the path it sees.
    pub fn install_example(&self, name: &str) -> String {
        let source = examples_dir().join(name);
        let source = source.canonicalize().unwrap_or(source);
        match &self.root {
            None => source.to_string_lossy().into_owned(),
            Some(root) => {
                copy_into(&source, &root.join("pydx-examples"), name);
                format!("/pydx-examples/{name}")
            }
        }
    }

    /// Makes `script` visible to this interpreter; returns the path it sees.
    pub fn install_script(&self, script: &str) -> String {
        let source = scripts_dir().join(script);
        match &self.root {
            None => source.to_string_lossy().into_owned(),
            Some(root) => {
                copy_into(&source, &root.join("pydx-tests"), script);
                format!("/pydx-tests/{script}")
            }
        }
    }

    /// The command line that runs this interpreter with `args` (through
    /// `chroot` for chroot interpreters), for handing to `pydx ... --`.
    pub fn argv(&self, args: &[&str]) -> Vec<String> {
        let command = self.command(args);
        std::iter::once(command.get_program())
            .chain(command.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    /// A command that runs this interpreter with `args`.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = match &self.root {
            None => Command::new(&self.python),
            Some(root) => {
                let mut c = Command::new("chroot");
                c.arg(root).arg(&self.python);
                c
            }
        };
        command
            .args(args)
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1");
        command
    }

    /// Starts `script` with `args` and waits until it prints `ready`.
    pub fn spawn(&self, script: &str, args: &[&str]) -> PythonChild {
        self.spawn_wrapped(&[], script, args)
    }

    /// Like [`Interpreter::spawn`], but runs the interpreter under a wrapper
    /// command (such as `unshare --pid --fork`); `pid` is then the
    /// interpreter's, found among the wrapper's descendants.
    pub fn spawn_wrapped(&self, wrapper: &[&str], script: &str, args: &[&str]) -> PythonChild {
        let script_path = self.install_script(script);
        let mut all_args = vec![script_path.as_str()];
        all_args.extend_from_slice(args);
        let command = self.command(&all_args);
        let mut command = match wrapper.split_first() {
            None => command,
            Some((program, wrapper_args)) => {
                let mut wrapped = Command::new(program);
                wrapped
                    .args(wrapper_args)
                    .arg(command.get_program())
                    .args(command.get_args())
                    .envs(command.get_envs().filter_map(|(k, v)| Some((k, v?))));
                wrapped
            }
        };
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.label));
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let pid = child.id();
        let mut program = PythonChild {
            child,
            pid,
            script_path,
            lines,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match program
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) if line.trim() == "ready" => break,
                Ok(_) => continue,
                Err(_) => panic!("{} running {script} did not print ready", self.label),
            }
        }
        if !wrapper.is_empty() {
            program.pid = descendant_running(pid, &program.script_path)
                .unwrap_or_else(|| panic!("no process running {script} under {wrapper:?}"));
        }
        program
    }
}

/// How the native probe (`scripts/native_probe.c`) is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NativeProbe {
    /// A plain shared library, loaded with ctypes (no Python headers needed).
    Library,
    /// An extension module, built against the interpreter's headers.
    Extension,
    /// The extension module with its symbol tables stripped.
    StrippedExtension,
    /// The extension module without unwind information (`.eh_frame`).
    ExtensionWithoutUnwindInfo,
    /// The plain library stripped of its symbol table, with its symbols in
    /// a separate debug file installed where the interpreter's root keeps
    /// them (`/usr/lib/debug/.build-id/`). Only for chroot interpreters,
    /// so that the test machine's own folders stay untouched.
    StrippedLibraryWithDebugFile,
}

impl Interpreter {
    /// Builds the native probe for this interpreter (with gcc, once per
    /// interpreter and kind, into the test cache) and makes it visible to
    /// it; returns the path it sees. An extension needs the interpreter's
    /// headers: a missing `Python.h` panics with where it was looked for.
    pub fn native_probe(&self, kind: NativeProbe) -> String {
        let name = match kind {
            NativeProbe::Library => "libnative_probe.so",
            NativeProbe::Extension => "native_probe.so",
            NativeProbe::StrippedExtension => "native_probe_stripped.so",
            NativeProbe::ExtensionWithoutUnwindInfo => "native_probe_no_unwind.so",
            NativeProbe::StrippedLibraryWithDebugFile => "libnative_probe_stripped.so",
        };
        // Built again when the C source changes.
        let source =
            std::fs::read(scripts_dir().join("native_probe.c")).expect("read native_probe.c");
        let digest = source
            .iter()
            .fold(0xcbf2_9ce4_8422_2325_u64, |hash, &byte| {
                (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
            });
        let dir = cache_dir()
            .join("native-probe")
            .join(&self.label)
            .join(format!("{digest:016x}"));
        let built = dir.join(name);
        // The debug file lives in the chroot, which may have been rebuilt
        // since: that variant is built afresh each time (it takes 50 ms).
        if !built.exists() || kind == NativeProbe::StrippedLibraryWithDebugFile {
            std::fs::create_dir_all(&dir).expect("create the native probe's folder");
            let partial = dir.join(format!(".{name}.{}", std::process::id()));
            let mut gcc = Command::new("gcc");
            gcc.args([
                "-O2",
                "-fno-optimize-sibling-calls",
                "-shared",
                "-fPIC",
                "-o",
            ])
            .arg(&partial)
            .arg(scripts_dir().join("native_probe.c"));
            if !matches!(
                kind,
                NativeProbe::Library | NativeProbe::StrippedLibraryWithDebugFile
            ) {
                let output = self
                    .command(&[
                        "-c",
                        "import sysconfig; print(sysconfig.get_paths()['include'])",
                    ])
                    .output()
                    .expect("ask the interpreter for its include folder");
                let include = String::from_utf8_lossy(&output.stdout).trim().to_string();
                let host_include = match &self.root {
                    Some(root) => root.join(include.trim_start_matches('/')),
                    None => PathBuf::from(&include),
                };
                assert!(
                    host_include.join("Python.h").exists(),
                    "{} has no Python.h in {} to build the native probe against",
                    self.label,
                    host_include.display()
                );
                gcc.arg("-DPYDX_PROBE_EXTENSION")
                    .arg("-I")
                    .arg(host_include);
            }
            let status = gcc.status().expect("run gcc");
            assert!(status.success(), "gcc failed to build the native probe");
            let post = match kind {
                NativeProbe::StrippedExtension | NativeProbe::StrippedLibraryWithDebugFile => {
                    Some(vec!["--strip-all"])
                }
                NativeProbe::ExtensionWithoutUnwindInfo => Some(vec![
                    "--remove-section=.eh_frame",
                    "--remove-section=.eh_frame_hdr",
                ]),
                _ => None,
            };
            if kind == NativeProbe::StrippedLibraryWithDebugFile {
                let root = self
                    .root
                    .as_ref()
                    .expect("a debug file is installed only into a chroot interpreter's root");
                install_debug_file(&partial, root);
            }
            if let Some(args) = post {
                let status = Command::new("objcopy")
                    .args(args)
                    .arg(&partial)
                    .status()
                    .expect("run objcopy");
                assert!(status.success(), "objcopy failed on the native probe");
            }
            std::fs::rename(&partial, &built).expect("move the native probe into place");
        }
        match &self.root {
            None => built.to_string_lossy().into_owned(),
            Some(root) => {
                copy_into(&built, &root.join("pydx-tests"), name);
                format!("/pydx-tests/{name}")
            }
        }
    }
}

/// Copies the symbols of `binary` into a separate debug file under
/// `root`'s `/usr/lib/debug/.build-id/`, named by the binary's build id.
fn install_debug_file(binary: &Path, root: &Path) {
    let notes = Command::new("readelf")
        .arg("-n")
        .arg(binary)
        .output()
        .expect("run readelf");
    let notes = String::from_utf8_lossy(&notes.stdout);
    let id = notes
        .lines()
        .find_map(|line| line.trim().strip_prefix("Build ID: "))
        .expect("gcc gives the native probe a build id")
        .to_string();
    let dir = root.join("usr/lib/debug/.build-id").join(&id[..2]);
    std::fs::create_dir_all(&dir).expect("create the debug file's folder");
    let partial = dir.join(format!(".{}.{}", &id[2..], std::process::id()));
    let status = Command::new("objcopy")
        .arg("--only-keep-debug")
        .arg(binary)
        .arg(&partial)
        .status()
        .expect("run objcopy");
    assert!(status.success(), "objcopy --only-keep-debug failed");
    std::fs::rename(&partial, dir.join(format!("{}.debug", &id[2..])))
        .expect("move the debug file into place");
}

/// Copies `source` to `dir/name` without ever showing a half-written file:
/// tests on several chroot interpreters install the same file at once while
/// others are already running it.
fn copy_into(source: &Path, dir: &Path, name: &str) {
    std::fs::create_dir_all(dir).expect("create folder in chroot");
    let partial = dir.join(format!(
        ".{name}.{}.{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::copy(source, &partial).expect("copy file into chroot");
    std::fs::rename(&partial, dir.join(name)).expect("move file into place in chroot");
}

/// The first descendant of `pid` whose command line mentions `needle`.
fn descendant_running(pid: u32, needle: &str) -> Option<u32> {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    children
        .split_whitespace()
        .filter_map(|c| c.parse().ok())
        .find_map(|child: u32| {
            let cmdline = std::fs::read(format!("/proc/{child}/cmdline")).ok()?;
            if String::from_utf8_lossy(&cmdline).contains(needle) {
                Some(child)
            } else {
                descendant_running(child, needle)
            }
        })
}

impl PythonChild {
    /// The next line the program prints, waiting at most `timeout`.
    pub fn read_line(&self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// Kills the program (and the interpreter, if it runs under a wrapper)
    /// and waits for it.
    pub fn kill(&mut self) {
        if self.pid != self.child.id() {
            let _ = Command::new("kill")
                .args(["-KILL", &self.pid.to_string()])
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the program to exit by itself.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().expect("wait for test program")
    }
}

impl Drop for PythonChild {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Retries `attempt` until it returns `Some` or `timeout` passes; returns
/// the last failure description on timeout. For conditions that a running
/// program reaches soon but not at a known instant (a thread entering a
/// sleep), without sleeping a fixed time.
pub fn eventually<T>(
    timeout: Duration,
    mut attempt: impl FnMut() -> Result<T, String>,
) -> Result<T, String> {
    let deadline = Instant::now() + timeout;
    loop {
        match attempt() {
            Ok(value) => return Ok(value),
            Err(reason) if Instant::now() >= deadline => return Err(reason),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// A fixed, seeded stream of numbers (xorshift64*) for damage tests that
/// must replay the same cases on every run.
pub struct SeededRandom(u64);

impl SeededRandom {
    /// A stream starting from `seed` (not 0).
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// A real gunicorn or uvicorn server (from the web test venv) on a free
/// port, serving an app; stopped on drop.
pub struct WebServer {
    /// The master process.
    pub master: Child,
    /// The port it listens on.
    pub port: u16,
    /// The signal that stops it quickly.
    stop_signal: &'static str,
}

impl WebServer {
    /// Starts gunicorn with `workers` sync workers serving `app` (such as
    /// `wsgi_app:app`) from the test script `script`, and waits until it
    /// answers (any status).
    pub fn gunicorn(script: &str, app: &str, workers: u32) -> Self {
        let script = web_python().install_script(script);
        let workers = workers.to_string();
        Self::gunicorn_with(Path::new(&script), app, &["--workers", &workers], &[])
    }

    /// Starts gunicorn with the command-line `options` (such as
    /// `["--workers", "2"]`) serving `app` from the file `app_file`, with
    /// extra environment variables (database addresses, say).
    pub fn gunicorn_with(
        app_file: &Path,
        app: &str,
        options: &[&str],
        env: &[(&str, String)],
    ) -> Self {
        let port = free_port();
        let mut command = Command::new(web_venv().join("bin/gunicorn"));
        command
            .args(options)
            .args(["--bind", &format!("127.0.0.1:{port}"), "--chdir"])
            .arg(app_folder(app_file))
            .arg(app);
        // SIGQUIT: gunicorn's quick shutdown (SIGTERM waits for workers'
        // graceful exit, which a connection pool's threads can hold up).
        Self::start(command, port, env, "-QUIT")
    }

    /// Starts uvicorn with the command-line `options` (such as
    /// `["--workers", "2"]`) serving the ASGI `app` from the file
    /// `app_file`, with extra environment variables.
    pub fn uvicorn_with(
        app_file: &Path,
        app: &str,
        options: &[&str],
        env: &[(&str, String)],
    ) -> Self {
        let port = free_port();
        let mut command = Command::new(web_venv().join("bin/uvicorn"));
        command
            .args(options)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--app-dir",
            ])
            .arg(app_folder(app_file))
            .arg(app);
        Self::start(command, port, env, "-INT")
    }

    /// Runs the server command and waits until it answers (any status).
    fn start(
        mut command: Command,
        port: u16,
        env: &[(&str, String)],
        stop_signal: &'static str,
    ) -> Self {
        let master = command
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the web server");
        let server = Self {
            master,
            port,
            stop_signal,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while server.request("/").is_none() {
            assert!(Instant::now() < deadline, "the web server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// The response to `GET path`, whatever its status; `None` if the
    /// server did not answer.
    pub fn request(&self, path: &str) -> Option<String> {
        self.request_with(path, &[])
    }

    /// The response to `GET path` with extra request `headers` (such as
    /// `"Accept-Encoding: gzip"`), whatever its status, its body decoded
    /// lossily; `None` if the server did not answer.
    pub fn request_with(&self, path: &str, headers: &[&str]) -> Option<String> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        let mut request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n");
        for header in headers {
            request.push_str(header);
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).ok()?;
        (!response.is_empty()).then(|| String::from_utf8_lossy(&response).into_owned())
    }

    /// The response to `GET path` if it is a 200.
    pub fn get(&self, path: &str) -> Option<String> {
        self.request(path).filter(|response| {
            response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200")
        })
    }
}

/// The folder of an app's file, where the server imports it from.
fn app_folder(app_file: &Path) -> &Path {
    app_file.parent().expect("apps live in a folder")
}

impl Drop for WebServer {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args([self.stop_signal, &self.master.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && self.master.try_wait().ok().flatten().is_none() {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.master.kill();
        let _ = self.master.wait();
    }
}

/// A real PostgreSQL server (Debian's package) in a fresh data folder on a
/// free port, run as the `postgres` user with trust authentication for
/// local connections; stopped and removed on drop.
pub struct Postgres {
    server: Child,
    data: PathBuf,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
}

impl Postgres {
    /// Initialises a cluster and starts the server; waits until it accepts
    /// connections.
    pub fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL is installed (scripts/setup-test-env.sh)")
            .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
            .find(|bin| bin.join("initdb").exists())
            .expect("a PostgreSQL version with initdb");
        let port = free_port();
        let data = std::env::temp_dir().join(format!("pydx-pg-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(&data).expect("create the data folder");
        // PostgreSQL refuses to run as root: run it as the `postgres` user
        // the package creates, directly (no wrapper that would stand
        // between the test and the server's signals).
        let (uid, gid) = system_user("postgres").expect("the postgres user exists");
        let as_postgres = |program: &Path| {
            use std::os::unix::process::CommandExt;
            let mut command = Command::new(program);
            command.uid(uid).gid(gid);
            command
        };
        let chown = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&data)
            .status()
            .expect("run chown");
        assert!(chown.success(), "chown the PostgreSQL data folder");
        let initdb = as_postgres(&bin.join("initdb"))
            .args(["--auth=trust", "--no-sync", "-D"])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run initdb");
        assert!(initdb.success(), "initdb failed");
        let server = as_postgres(&bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args([
                "-p",
                &port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
            ])
            .arg(format!("unix_socket_directories={}", data.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start postgres");
        let postgres = Self { server, data, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "PostgreSQL did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        postgres
    }

    /// An SQLAlchemy URL (psycopg 3 driver) for the `postgres` database.
    pub fn sqlalchemy_url(&self) -> String {
        format!(
            "postgresql+psycopg://postgres@127.0.0.1:{}/postgres",
            self.port
        )
    }

    /// A libpq connection string for the `postgres` database as `postgres`.
    pub fn dsn(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGINT: PostgreSQL's fast shutdown.
        let _ = Command::new("kill")
            .args(["-INT", &self.server.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && self.server.try_wait().ok().flatten().is_none() {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// The uid and gid of a user from `/etc/passwd`.
fn system_user(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&name) && fields.len() > 3)
            .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
            .flatten()
    })
}

/// A real Redis server (Debian's package) on a free port, without
/// persistence; stopped on drop.
pub struct Redis {
    server: Child,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
}

impl Redis {
    /// Starts the server and waits until it accepts connections.
    pub fn start() -> Self {
        let port = free_port();
        let server = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (scripts/setup-test-env.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "Redis did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { server, port }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}
