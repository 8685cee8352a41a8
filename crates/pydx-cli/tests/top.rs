//! `pydx top` in a real terminal: tmux runs it in a pane of a fixed size,
//! and the tests read the pane and type keys into it.

use std::process::{Command, Output};
use std::time::Duration;

use pydx_testkit::{eventually, interpreter, marker_line, script_source, NativeProbe, PythonChild};
use tempfile::TempDir;

/// How long the screen may take to show what a test expects.
const SETTLE: Duration = Duration::from_secs(30);

/// A tmux server of its own, running `pydx top` in its only pane; killed
/// when dropped. After pydx exits, the pane shows `EXITED <code>` and then
/// the terminal's modes (`stty -a`), and stays open.
struct TopPane {
    /// Holds the tmux server's socket; removed when dropped.
    socket_dir: TempDir,
}

impl TopPane {
    /// Starts `pydx top <args>` in a 160×40 pane.
    fn start(args: &[&str]) -> Self {
        let pane = Self {
            socket_dir: TempDir::new().expect("create a folder for the tmux socket"),
        };
        let mut command = vec![shell_quote(env!("CARGO_BIN_EXE_pydx")), "top".to_string()];
        command.extend(args.iter().map(|arg| shell_quote(arg)));
        let script = format!("{}; echo EXITED $?; stty -a; sleep 600", command.join(" "));
        let output = pane.tmux(&[
            "new-session",
            "-d",
            "-s",
            "top",
            "-x",
            "160",
            "-y",
            "40",
            &script,
        ]);
        assert!(
            output.status.success(),
            "tmux new-session failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        pane
    }

    /// Runs a tmux command against this server.
    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            // A server of its own, even when the tests run inside tmux, with
            // a shell whose `$?` the pane's script relies on.
            .env_remove("TMUX")
            .env("SHELL", "/bin/sh")
            .arg("-S")
            .arg(self.socket_dir.path().join("tmux"))
            .args(args)
            .output()
            .expect("tmux must be installed to test pydx top (apt-get install tmux)")
    }

    /// The text on screen.
    fn screen(&self) -> String {
        let output = self.tmux(&["capture-pane", "-p", "-t", "top"]);
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Types a key (in tmux's `send-keys` notation).
    fn press(&self, key: &str) {
        let output = self.tmux(&["send-keys", "-t", "top", key]);
        assert!(output.status.success(), "tmux send-keys {key} failed");
    }

    /// Waits until `check` accepts the screen; panics with the screen and
    /// the last complaint if it never does.
    fn wait_for<T>(&self, mut check: impl FnMut(&str) -> Result<T, String>) -> T {
        let mut screen = String::new();
        eventually(SETTLE, || {
            screen = self.screen();
            check(&screen)
        })
        .unwrap_or_else(|reason| panic!("{reason}; the screen was:\n{screen}"))
    }

    /// Quits with `q` and checks that pydx exited with `code`, left the
    /// alternate screen and took the terminal out of raw mode.
    fn quit_and_expect_exit(&self, code: i32) {
        self.press("q");
        let exited = format!("EXITED {code}");
        let screen = self.wait_for(|screen| {
            contains(screen, &exited)?;
            let modes = terminal_modes(screen);
            if modes.contains(&"icanon") || modes.contains(&"-icanon") {
                Ok(screen.to_string())
            } else {
                Err("stty has not printed the modes yet".to_string())
            }
        });
        for mode in ["icanon", "echo", "isig"] {
            assert!(
                terminal_modes(&screen).contains(&mode),
                "pydx left the terminal without {mode}:\n{screen}"
            );
        }
        let alternate = self.tmux(&["display-message", "-p", "-t", "top", "#{alternate_on}"]);
        assert_eq!(
            String::from_utf8_lossy(&alternate.stdout).trim(),
            "0",
            "pydx did not leave the alternate screen"
        );
    }
}

impl Drop for TopPane {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

/// `text` in single quotes for the shell.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The words of `stty -a` on screen, such as `icanon` or `-echo`.
fn terminal_modes(screen: &str) -> Vec<&str> {
    screen
        .split(|c: char| c.is_whitespace() || c == ';')
        .collect()
}

/// `Ok` if the screen shows `text`.
fn contains(screen: &str, text: &str) -> Result<(), String> {
    if screen.contains(text) {
        Ok(())
    } else {
        Err(format!("no {text:?} on screen"))
    }
}

/// One row of the function table.
#[derive(Debug)]
struct TableRow {
    /// Own %.
    own: f64,
    /// Total %.
    total: f64,
    /// `qualname (file:line)`.
    function: String,
}

/// The rows of the function table on screen, top to bottom.
fn table_rows(screen: &str) -> Vec<TableRow> {
    screen
        .lines()
        .skip_while(|line| !line.trim_start().starts_with("Own %"))
        .skip(1)
        .map_while(|line| {
            let mut columns = line.split_whitespace();
            let own = columns.next()?.parse().ok()?;
            let total = columns.next()?.parse().ok()?;
            let function = columns.skip(2).collect::<Vec<_>>().join(" ");
            Some(TableRow {
                own,
                total,
                function,
            })
        })
        .collect()
}

/// The row of `function` with a non-zero Own %.
fn busy_row(screen: &str, function: &str) -> Result<TableRow, String> {
    table_rows(screen)
        .into_iter()
        .find(|row| row.function == function && row.own > 0.0)
        .ok_or_else(|| format!("no row {function} with a non-zero Own %"))
}

/// `Outer.Inner.spin (file:line)` of threads.py's busy thread.
fn spin(program: &PythonChild, line: u32) -> String {
    format!("Outer.Inner.spin ({}:{line})", program.script_path)
}

/// The header and the busy loop show up, and `q` leaves a working terminal.
#[test]
fn top_shows_the_busy_function_and_quits_on_q() {
    let program = interpreter("pyenv-3.12").spawn("threads.py", &[]);
    let pid = program.pid.to_string();
    let pane = TopPane::start(&["--pid", &pid]);
    let spin_line = spin(&program, marker_line("threads.py", "# LINE:spin"));
    pane.wait_for(|screen| {
        contains(screen, &format!("pydx top  PID {pid}  Python 3.12"))?;
        contains(screen, "Threads 4")?;
        contains(screen, "by line, sorted by Own %")?;
        busy_row(screen, &spin_line)
    });
    pane.quit_and_expect_exit(0);
}

/// When its terminal goes away (a closed window, a dropped SSH connection),
/// top exits instead of spinning on a terminal that reads as end-of-file.
#[test]
fn top_exits_when_its_terminal_goes_away() {
    let program = interpreter("pyenv-3.12").spawn("threads.py", &[]);
    let pid = program.pid.to_string();
    let pane = TopPane::start(&["--pid", &pid]);
    pane.wait_for(|screen| contains(screen, &format!("pydx top  PID {pid}")));
    let output = pane.tmux(&["kill-server"]);
    assert!(output.status.success(), "tmux kill-server failed");
    let needle = format!("top\0--pid\0{pid}");
    let running = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(Result::ok)
            .filter_map(|entry| std::fs::read(entry.path().join("cmdline")).ok())
            .any(|cmdline| {
                let cmdline = String::from_utf8_lossy(&cmdline);
                cmdline.contains(env!("CARGO_BIN_EXE_pydx")) && cmdline.contains(&needle)
            })
    };
    let gone = eventually(Duration::from_secs(10), || {
        if running() {
            Err("pydx top still runs".to_string())
        } else {
            Ok(())
        }
    });
    assert!(
        gone.is_ok(),
        "pydx top did not exit when its terminal went away"
    );
}

/// With `--native`, the C function a thread spins in is the busy row, and
/// the Python frames that called it carry the total.
#[test]
fn top_native_shows_the_c_function_doing_the_work() {
    let python = interpreter("pyenv-3.12");
    let probe = python.native_probe(NativeProbe::Extension);
    let program = python.spawn("native_probe.py", &["extension", &probe]);
    let pid = program.pid.to_string();
    let pane = TopPane::start(&["--native", "--pid", &pid]);
    let inner = format!(
        "inner ({}:{})",
        program.script_path,
        marker_line("native_probe.py", "LINE:extension_spin")
    );
    pane.wait_for(|screen| {
        let row = busy_row(screen, &format!("probe_spin ({probe})"))?;
        if row.own < 50.0 {
            return Err(format!("probe_spin only {}% own", row.own));
        }
        table_rows(screen)
            .into_iter()
            .find(|r| r.function == inner && r.total > 50.0)
            .ok_or_else(|| format!("no row {inner} with most of the total"))
    });
    pane.quit_and_expect_exit(0);
}

/// `l` merges the lines of a function into its first line, and `2` sorts
/// by Total %.
#[test]
fn top_switches_to_functions_and_sorts_by_total() {
    let program = interpreter("pyenv-3.12").spawn("threads.py", &[]);
    let pane = TopPane::start(&["--idle", "--pid", &program.pid.to_string()]);
    let spin_line = spin(&program, marker_line("threads.py", "# LINE:spin"));
    pane.wait_for(|screen| busy_row(screen, &spin_line));

    pane.press("l");
    let def_line = script_source("threads.py")
        .lines()
        .position(|line| line.contains("def spin("))
        .expect("threads.py defines spin") as u32
        + 1;
    let spin_function = spin(&program, def_line);
    pane.wait_for(|screen| {
        contains(screen, "by function, sorted by Own %")?;
        if screen.contains(&spin_line) {
            return Err(format!("{spin_line} is still shown"));
        }
        busy_row(screen, &spin_function)
    });

    // With idle threads counted, callers shared by three threads come
    // before any function's own time.
    pane.press("2");
    pane.wait_for(|screen| {
        contains(screen, "sorted by Total %")?;
        let rows = table_rows(screen);
        let first = rows.first().ok_or("no rows")?;
        if first.total <= first.own {
            return Err(format!("the first row is not a caller: {first:?}"));
        }
        if rows.windows(2).any(|pair| pair[0].total < pair[1].total) {
            return Err("rows are not sorted by Total %".to_string());
        }
        Ok(())
    });
    pane.quit_and_expect_exit(0);
}

/// A launched program's exit leaves its numbers on screen until `q`, and
/// pydx exits with the program's code.
#[test]
fn top_keeps_the_final_numbers_and_exits_with_the_programs_code() {
    let python = interpreter("pyenv-3.12");
    let program = python.python.to_string_lossy().into_owned();
    let pane = TopPane::start(&[
        "--idle",
        "--",
        &program,
        "-c",
        "import time; time.sleep(1); raise SystemExit(3)",
    ]);
    pane.wait_for(|screen| {
        contains(screen, "[process exited]")?;
        busy_row(screen, "<module> (<string>:1)")
    });
    pane.quit_and_expect_exit(3);
}

/// Quitting while a launched program still runs interrupts it, as Ctrl-C
/// would have without raw mode, and pydx exits with the program's code.
#[test]
fn top_interrupts_the_program_it_launched_on_q() {
    let python = interpreter("pyenv-3.12");
    let program = python.python.to_string_lossy().into_owned();
    let pane = TopPane::start(&[
        "--idle",
        "--",
        &program,
        "-c",
        "import time; time.sleep(600)",
    ]);
    pane.wait_for(|screen| busy_row(screen, "<module> (<string>:1)"));
    // Python ends on an unhandled KeyboardInterrupt by dying of SIGINT.
    pane.quit_and_expect_exit(128 + 2);
}
