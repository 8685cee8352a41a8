"""The doctor's accuracy on the corpus of corpus/README.md: runs `pydx doctor`
on every corpus program on each interpreter its manifest implies, and scores
the findings against the program's `# expect:` markers (true positives, false
positives, misses, per rule).

    python3 bench/doctor_accuracy.py [--only NAME]... [--python LABEL]... [--runs N]
        [--pydx BINARY] [--pydx-arg ARG]... [--corpus DIR] [--out FILE] [--json FILE]
        [--save-profiles DIR]

Interpreter labels: 3.8 and 3.11 (pyenv), 3.15 (the Debian sid chroot of the
test cache), numpy-3.11 (the examples venv), web-3.12 (the web venv); see
scripts/setup-test-env.sh. Programs run one at a time (the machine is small).
Writes a Markdown report to bench/results/doctor-accuracy.md and prints a
short summary. Exits non-zero only on usage errors or when pydx cannot be
built; a run that fails or times out is an error row of the report.
Python stdlib only.
"""
import argparse
import collections
import datetime
import json
import os
import pathlib
import posixpath
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import tools

CORPUS = tools.REPO / "corpus"
RESULTS = tools.REPO / "bench" / "results"
SID = tools.CACHE / "sid"
SID_DIR = "/tmp/pydx-corpus"  # where programs go inside the chroot
WEB_VENV = tools.CACHE / "venv-web"
EXAMPLES_VENV = tools.CACHE / "venv-examples"

LABELS = ("3.8", "3.11", "3.15", "numpy-3.11", "web-3.12")
LABEL_VERSION = {"3.8": (3, 8), "3.11": (3, 11), "3.15": (3, 15), "numpy-3.11": (3, 11),
                 "web-3.12": (3, 12)}
WEB_NEEDS = {"sqlalchemy", "django", "flask", "fastapi", "httpx", "requests", "gunicorn", "uvicorn",
             "psycopg", "redis"}
SERVER_NEEDS = {"postgres", "redis"}  # `redis` is both: the client package and the server
# what each interpreter provides beyond the standard library
PROVIDES = {"3.8": set(), "3.11": set(), "3.15": {"numpy"}, "numpy-3.11": {"numpy"}, "web-3.12": None}
SERIOUS = ("warning", "error")
CODE = re.compile(r"PYDX-[A-Z0-9]+")
MARKER = re.compile(r"#.*\bexpect:\s*(PYDX-[A-Z0-9]+(?:[\s,]+PYDX-[A-Z0-9]+)*)")
HEADER_LINE = re.compile(r"#\s*([a-z_]+)\s*:\s*(.*?)\s*$")


# ---------------------------------------------------------------- the corpus

class Program:
    """One corpus program and its manifest entry (the header comment block)."""

    def __init__(self, path):
        self.path = path
        self.stem = path.stem
        self.kind = None
        self.story = ""
        self.needs = set()
        self.min_python = (3, 8)
        self.mode, self.mode_args, self.subprocesses = None, [], False
        self.forbid = set()
        self.markers = []  # (code, line)
        self.problems = []  # what is wrong with the manifest
        self.notes = []
        self.header = {}
        self._parse()

    def _parse(self):
        try:
            lines = self.path.read_text(errors="replace").splitlines()
        except OSError as error:
            self.problems.append(f"unreadable: {error}")
            return
        header_end = 0
        for number, line in enumerate(lines):
            stripped = line.strip()
            if stripped and not stripped.startswith("#"):
                break
            header_end = number + 1
            m = HEADER_LINE.match(stripped)
            if not m or m.group(1) not in ("corpus", "story", "needs", "python", "run", "forbid"):
                continue
            key, value = m.group(1), m.group(2)
            if key != "story":
                value = re.split(r"\s+#", value)[0].strip()
            self.header.setdefault(key, []).append(value)
        for number, line in enumerate(lines[header_end:], start=header_end + 1):
            m = MARKER.search(line)
            if m:
                self.markers += [(code, number) for code in CODE.findall(m.group(1))]

        kind = self.value("corpus")
        if kind in ("planted", "healthy"):
            self.kind = kind
        else:
            self.problems.append(f"`corpus:` is {kind!r}, not planted or healthy")
        self.story = self.value("story") or ""
        for value in self.header.get("needs", []):
            self.needs.update(n.lower() for n in re.split(r"[\s,]+", value) if n)
        python = self.value("python")
        if python:
            m = re.fullmatch(r"(\d+)\.(\d+)(?:\.\d+)?\+?", python)
            if m:
                self.min_python = (int(m.group(1)), int(m.group(2)))
            else:
                self.problems.append(f"`python:` {python!r} is not a version")
        for value in self.header.get("forbid", []):
            self.forbid.update(CODE.findall(value))
        run = self.value("run")
        try:
            words = shlex.split(run or "")
        except ValueError as error:
            words = []
            self.problems.append(f"`run:` does not parse: {error}")
        if not words:
            self.problems.append("no `run:`")
        elif words[0] == "launch":
            self.mode = "launch"
            rest = words[1:]
            self.subprocesses = "--subprocesses" in rest
            if [w for w in rest if w != "--subprocesses"]:
                self.problems.append(f"`run: {run}`: launch takes only --subprocesses")
        elif words[0] in ("gunicorn", "uvicorn"):
            self.mode, self.mode_args = words[0], words[1:]
            if not self.mode_args:
                self.problems.append(f"`run: {run}`: no app given")
        else:
            self.problems.append(f"`run: {run}`: unknown mode {words[0]!r}")
        if self.kind == "planted" and not self.markers:
            self.problems.append("planted, but no `# expect:` marker")
        if self.kind == "healthy" and self.markers:
            self.problems.append("healthy, but has `# expect:` markers")
        unknown = self.needs - WEB_NEEDS - SERVER_NEEDS - {"numpy"}
        if unknown:
            self.notes.append(f"unknown needs {', '.join(sorted(unknown))}: run on web-3.12")

    def value(self, key):
        values = self.header.get(key)
        return values[0] if values else None

    def implied_labels(self):
        """The interpreters corpus/README.md gives this program."""
        packages = self.needs - {"postgres"}
        if self.mode in ("gunicorn", "uvicorn") or packages - {"numpy"}:
            labels = ["web-3.12"]
        elif "numpy" in packages:
            labels = ["numpy-3.11", "3.15"]
        else:
            labels = ["3.8", "3.11", "3.15"]
        return [label for label in labels if LABEL_VERSION[label] >= self.min_python]

    def can_run_on(self, label):
        """Whether the label's interpreter has what the program needs."""
        if LABEL_VERSION[label] < self.min_python:
            return False
        if self.mode in ("gunicorn", "uvicorn"):
            return label == "web-3.12"
        provided = PROVIDES[label]
        packages = self.needs - {"postgres"}
        return provided is None or packages <= provided


def find_programs(corpus):
    """Corpus programs: .py files under corpus whose header has `corpus:`."""
    programs = []
    for path in sorted(corpus.rglob("*.py")):
        if any(part.startswith(".") or part in ("profiles", "__pycache__")
               for part in path.relative_to(corpus).parts[:-1]):
            continue
        try:
            with open(path, errors="replace") as f:
                head = f.read(4000)
        except OSError:
            continue
        if not re.search(r"^\s*#\s*corpus\s*:", head, re.M):
            continue  # a helper module, not a program
        programs.append(Program(path))
    return programs


# ---------------------------------------------------------------- interpreters

class Interpreter:
    def __init__(self, label):
        self.label = label
        self.chroot = label == "3.15"
        self.path, self.problem, self.version = None, None, ""
        if label in ("3.8", "3.11"):
            root = pathlib.Path(os.environ.get("PYENV_ROOT", pathlib.Path.home() / ".pyenv"))
            minor = label.split(".")[1]
            builds = sorted((p for p in (root / "versions").glob(f"3.{minor}.*")
                             if p.name.split(".")[-1].isdigit() and (p / "bin" / "python").exists()),
                            key=lambda p: int(p.name.split(".")[-1]))
            if builds:
                self.path = builds[-1] / "bin" / "python"
            else:
                self.problem = f"no pyenv build of Python {label} under {root / 'versions'}"
        elif label == "3.15":
            self.path = SID / "usr/bin/python3.15"
        elif label == "numpy-3.11":
            self.path = EXAMPLES_VENV / "bin" / "python"
        elif label == "web-3.12":
            self.path = WEB_VENV / "bin" / "python"
        if self.path is not None and not self.path.exists():
            self.problem = f"{self.path} not found (run scripts/setup-test-env.sh)"
        if self.problem is None:
            try:
                r = subprocess.run(self.argv(["-VV"]), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, timeout=30)
                text = r.stdout.decode(errors="replace").strip()
                if r.returncode != 0:
                    self.problem = f"`{' '.join(self.argv(['-VV']))}` failed: {last_line(text)}"
                else:
                    self.version = " ".join(text.split()) or "?"
            except (OSError, subprocess.SubprocessError) as error:
                self.problem = f"cannot run {self.path}: {error}"

    def argv(self, args):
        if self.chroot:
            return ["chroot", str(SID), "python3.15", *args]
        return [str(self.path), *args]

    def program_path(self, program):
        """The program's path as the interpreter sees it (copied into the chroot for 3.15)."""
        if not self.chroot:
            return str(program.path)
        target = SID / SID_DIR.lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(program.path, target / program.path.name)
        return f"{SID_DIR}/{program.path.name}"

    def describe(self):
        if self.problem:
            return f"`{self.label}`: unavailable ({self.problem})"
        where = f"chroot {SID}, python3.15" if self.chroot else str(self.path)
        return f"`{self.label}`: {self.version} ({where})"


# ---------------------------------------------------------------- processes

class Failed(Exception):
    pass


def last_line(text, limit=200):
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1][:limit] if lines else "(no output)"


def tail(path, limit=200):
    try:
        return last_line(pathlib.Path(path).read_text(errors="replace"), limit)
    except OSError:
        return "(no output)"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(argv, cwd, env, log_prefix):
    """A process in its own session (so that its whole group can be stopped),
    its output in log_prefix.out / .err."""
    with open(f"{log_prefix}.out", "wb") as out, open(f"{log_prefix}.err", "wb") as err:
        return subprocess.Popen([str(a) for a in argv], cwd=str(cwd), env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=err, start_new_session=True)


def exited(proc):
    """The exit code if proc has ended, else None, without reaping it: while
    it is an unreaped zombie its PID (and so its process group's ID) cannot
    be reused, so its group can still be signalled safely."""
    if proc.returncode is not None:
        return proc.returncode
    try:
        info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return proc.wait()
    if info is None:
        return None
    return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status


def wait_exit(proc, timeout):
    """Waits up to timeout s for proc to end (without reaping); its exit code or None."""
    deadline = time.monotonic() + timeout
    while True:
        code = exited(proc)
        if code is not None or time.monotonic() >= deadline:
            return code
        time.sleep(0.05)


def stop_group(proc, first=signal.SIGTERM, grace=5.0):
    """Stops proc and everything in its process group: `first` to the group
    (to the leader only for SIGINT, PostgreSQL's fast shutdown), SIGKILL to
    the group after grace s, and SIGKILL to any stragglers; then reaps proc."""
    if proc is None:
        return
    if proc.returncode is None:
        if exited(proc) is None:
            try:
                if first == signal.SIGINT:
                    os.kill(proc.pid, first)
                else:
                    os.killpg(proc.pid, first)
            except ProcessLookupError:
                pass
            wait_exit(proc, grace)
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the leader is unreaped: the group ID is still ours
        except (ProcessLookupError, PermissionError):
            pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def wait_port(port, timeout, proc=None, what="server"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and exited(proc) is not None:
            raise Failed(f"{what} exited with status {exited(proc)} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise Failed(f"{what}: nothing listens on port {port} after {timeout:g} s")


class Servers:
    """Throwaway PostgreSQL and Redis, fresh for each run that needs them
    (PostgreSQL from a cluster initdb'd once per benchmark)."""

    def __init__(self, scratch):
        self.scratch = scratch
        self.template = None
        self.count = 0

    def start(self, needs, procs):
        """Starts the servers needs asks for; appends them to procs; returns the env additions."""
        env = {}
        if "postgres" in needs:
            env["PYDX_PG_PORT"] = str(self._postgres(procs))
        if "redis" in needs:
            if not shutil.which("redis-server"):
                raise Failed("redis-server not found (run scripts/setup-test-env.sh)")
            port = free_port()
            proc = spawn(["redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no"], self.scratch, dict(os.environ),
                         self.scratch / f"redis-{port}")
            procs.append(("redis", proc, signal.SIGTERM))
            wait_port(port, 30, proc, "redis-server")
            env["PYDX_REDIS_PORT"] = str(port)
        return env

    def _postgres(self, procs):
        bins = sorted(pathlib.Path("/usr/lib/postgresql").glob("*/bin"),
                      key=lambda p: [int(x) if x.isdigit() else 0 for x in p.parent.name.split(".")])
        if not bins:
            raise Failed("PostgreSQL not found under /usr/lib/postgresql (run scripts/setup-test-env.sh)")
        pg_bin = bins[-1]
        # PostgreSQL refuses to run as root: initdb and the server run as postgres
        as_postgres = ["setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups"]
        if self.template is None:
            template = self.scratch / "pg-template"
            template.mkdir()
            shutil.chown(template, "postgres", "postgres")
            r = subprocess.run([*as_postgres, str(pg_bin / "initdb"), "--auth=trust", "--no-sync",
                                "-D", str(template)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=120)
            if r.returncode != 0:
                raise Failed(f"initdb failed: {last_line(r.stdout.decode(errors='replace'))}")
            self.template = template
        self.count += 1
        data = self.scratch / f"pg-{self.count}"
        subprocess.run(["cp", "-a", str(self.template), str(data)], check=True)
        port = free_port()
        proc = spawn([*as_postgres, pg_bin / "postgres", "-D", data, "-p", port,
                      "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                      "-c", f"unix_socket_directories={data}"], self.scratch, dict(os.environ),
                     self.scratch / f"pg-{self.count}")
        procs.append(("postgres", proc, signal.SIGINT))
        wait_port(port, 30, proc, "postgres")
        return port


# ---------------------------------------------------------------- one run

def run_one(opts, pydx, program, interp, servers, index, scratch):
    """Runs the doctor on program with interp; a dict of what happened."""
    row = {"program": program.stem, "file": str(program.path), "kind": program.kind,
           "interpreter": interp.label, "run": index, "mode": program.mode, "error": None,
           "findings": [], "warnings": [], "command": None}
    if program.problems:
        row["error"] = "manifest: " + "; ".join(program.problems)
        return row
    if interp.problem:
        row["error"] = f"interpreter {interp.label}: {interp.problem}"
        return row
    work = pathlib.Path(tempfile.mkdtemp(prefix="run-", dir=scratch))
    report = work / "report.json"
    name = f"{program.stem}.{interp.label}" + (f".r{index}" if opts.runs > 1 else "") + ".pprof"
    profile = opts.save_profiles / name
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONPATH", None)
    procs = []  # (what, Popen, first signal), stopped in reverse order
    doctor = None
    started = time.monotonic()
    try:
        env.update(servers.start(program.needs, procs))
        file = interp.program_path(program)
        cwd = program.path.parent
        base = [pydx, "doctor", "-f", "json", "-o", report, "--save", profile, *opts.pydx_arg]
        if program.mode == "launch":
            argv = base + (["--subprocesses"] if program.subprocesses else []) + ["--", *interp.argv([file])]
        else:
            port = free_port()
            if program.mode == "gunicorn":
                server_argv = [WEB_VENV / "bin" / "gunicorn", *program.mode_args, "--bind", f"127.0.0.1:{port}"]
            else:
                server_argv = [WEB_VENV / "bin" / "uvicorn", *program.mode_args, "--port", str(port)]
            server = spawn(server_argv, cwd, env, work / "server")
            procs.append(("server", server, signal.SIGTERM))
            wait_port(port, 30, server, program.mode)
            url = f"http://127.0.0.1:{port}"
            load = spawn(interp.argv([file, "load", url, f"{opts.seconds:g}"]), cwd, env, work / "load")
            procs.append(("load", load, signal.SIGTERM))
            argv = base + ["--subprocesses", "--duration", f"{opts.seconds:g}", "--pid", str(server.pid)]
            row["command"] = " ".join(shlex.quote(str(a)) for a in server_argv) + " & " + \
                " ".join(shlex.quote(str(a)) for a in interp.argv([file, "load", url, f"{opts.seconds:g}"]))
        row["command"] = " ".join(shlex.quote(str(a)) for a in argv) + \
            (f"  (beside: {row['command']})" if row["command"] else "")
        doctor = spawn(argv, cwd, env, work / "doctor")
        code = wait_exit(doctor, opts.timeout)
        err_text = (work / "doctor.err").read_text(errors="replace")
        row["warnings"] = sorted({line.strip() for line in err_text.splitlines()
                                  if line.startswith("warning:")})
        if code is None:
            raise Failed(f"timed out after {opts.timeout:g} s")
        if program.mode != "launch":
            load_code = exited(load)
            if load_code not in (None, 0):
                raise Failed(f"the load client exited with status {load_code}: {tail(work / 'load.err')}")
            if exited(server) is not None:
                raise Failed(f"the server exited (status {exited(server)}) during the run: "
                             f"{tail(work / 'server.err')}")
        if not report.exists():
            raise Failed(f"pydx exited with status {code} and wrote no report: "
                         f"{last_line(err_text)}")
        try:
            data = json.loads(report.read_text())
            findings = data["report"]["findings"]
        except (ValueError, KeyError, TypeError) as error:
            raise Failed(f"unreadable report ({error}); pydx: {last_line(err_text)}") from None
        row["findings"] = [{
            "code": f.get("code", "?"), "severity": f.get("severity", "?"), "title": f.get("title", ""),
            "function": (f.get("location") or {}).get("function", ""),
            "file": (f.get("location") or {}).get("file", ""),
            "line": (f.get("location") or {}).get("line", 0),
        } for f in findings]
        row["summary"] = data["report"].get("summary", {})
        if code != 0:
            # pydx exits with the target's status: the program itself failed
            raise Failed(f"pydx exited with status {code} (the program's, when launched): "
                         f"{last_line(err_text)}")
    except Failed as error:
        row["error"] = str(error)
    except Exception as error:  # noqa: BLE001 - one bad run must not end the benchmark
        row["error"] = f"{type(error).__name__}: {error}"
    finally:
        stop_group(doctor)
        for _, proc, first in reversed(procs):
            stop_group(proc, first)
        row["seconds"] = round(time.monotonic() - started, 1)
        if opts.keep:
            row["logs"] = str(work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    if row["error"] is None:
        row["profile"] = str(profile) if profile.exists() else None
        score(program, row)
    return row


# ---------------------------------------------------------------- scoring

def where(f):
    return f"{posixpath.basename(f['file']) or '?'}:{f['line']}"


# Rules whose findings name a process, not a line of code (memory is not
# attributed to lines): they match a marker by code and file alone.
PROCESS_RULES = {"PYDX-MEM001"}


def score(program, row):
    """Classifies the run's findings (corpus/README.md): tp (markers matched),
    fp (findings), misses (markers), wrong_line (FP findings with a marker's
    code elsewhere)."""
    base = program.path.name
    matched, tp, fp, wrong, duplicates = set(), [], [], [], []
    marker_codes = {code for code, _ in program.markers}
    for f in row["findings"]:
        hit = None
        if program.kind == "planted" and posixpath.basename(f["file"]) == base:
            hit = next((m for m in program.markers
                        if m[0] == f["code"] and (m[1] == f["line"] or f["code"] in PROCESS_RULES)),
                       None)
        if hit is not None:
            if hit in matched:
                duplicates.append(f)
            else:
                matched.add(hit)
                tp.append(hit)
            continue
        forbidden = f["code"] in program.forbid
        if f["severity"] in SERIOUS or forbidden:
            f = dict(f, forbidden=forbidden)
            if program.kind == "planted" and f["code"] in marker_codes:
                f["wrong_line"] = True
                wrong.append(f)
            fp.append(f)
    row["tp"] = [list(m) for m in tp]
    row["fp"] = fp
    row["misses"] = [list(m) for m in program.markers if m not in matched]
    row["wrong_line"] = wrong
    row["duplicates"] = len(duplicates)


def outcome(row):
    """A short word for a run: ok, miss, FP, error."""
    if row["error"] is not None:
        return "error"
    parts = []
    if row["misses"]:
        parts.append("miss" if len(row["misses"]) == 1 else f"{len(row['misses'])} miss")
    if row["fp"]:
        parts.append(f"{len(row['fp'])} FP")
    return " + ".join(parts) or "ok"


def progress_detail(row):
    if row["error"] is not None:
        return f"error: {row['error']}"
    parts = [f"TP {c} @{posixpath.basename(row['file'])}:{n}" for c, n in row["tp"]]
    parts += [f"miss {c} @{n}" for c, n in row["misses"]]
    parts += [f"FP {f['code']} {f['severity']} @{where(f)}" + (" (wrong line)" if f.get("wrong_line") else "")
              for f in row["fp"]]
    return "; ".join(parts) or "clean"


# ---------------------------------------------------------------- report

def cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def ratio(a, b):
    return f"{a / b:.2f}" if b else "–"


def git_commit():
    def git(*args):
        r = subprocess.run(["git", "-C", str(tools.REPO), *args], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
        return r.stdout.strip() if r.returncode == 0 else None
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return commit + (" dirty" if dirty else "")


def by_rule(rows):
    rules = collections.defaultdict(lambda: {"tp": 0, "fp": 0, "miss": 0, "wrong": 0})
    for row in rows:
        if row["error"] is not None:
            continue
        for code, _ in row["tp"]:
            rules[code]["tp"] += 1
        for code, _ in row["misses"]:
            rules[code]["miss"] += 1
        for f in row["fp"]:
            rules[f["code"]]["fp"] += 1
            rules[f["code"]]["wrong"] += bool(f.get("wrong_line"))
    total = {k: sum(r[k] for r in rules.values()) for k in ("tp", "fp", "miss", "wrong")}
    return dict(sorted(rules.items())), total


def render(opts, meta, programs, rows):
    rules, total = by_rule(rows)
    ok_rows = [r for r in rows if r["error"] is None]
    errors = [r for r in rows if r["error"] is not None]
    lines = ["# The doctor's accuracy on the corpus", "",
             f"`{meta['command']}`: {len(programs)} program(s) "
             f"({sum(p.kind == 'planted' for p in programs)} planted, "
             f"{sum(p.kind == 'healthy' for p in programs)} healthy), {opts.runs} run(s) each, "
             f"{len(rows)} run(s) in all ({len(errors)} failed); run time {meta['minutes']:.1f} min.", "",
             f"- Date: {meta['date']}",
             f"- pydx: {meta['pydx_version']} ({meta['pydx_source']}; the repository is at git "
             f"{meta['commit']})",
             f"- Machine: {meta['machine']}",
             "- Interpreters: " + "; ".join(meta["interpreters"]) if meta["interpreters"]
             else "- Interpreters: none", "",
             "Scoring (corpus/README.md): a finding is a *true positive* when its code and its "
             "`file:line` (file compared by basename) match a program's `# expect:` marker; on a planted "
             "program every other WARNING or ERROR finding is a *false positive*, on a healthy one every "
             "WARNING or ERROR finding is, and a `forbid:`den code is at any severity; a marker no finding "
             "matches is a *miss*. A finding with a marker's code at another line counts as a false "
             "positive and its marker as a miss (*wrong line*). Runs that failed are not scored.", "",
             "## By rule", "",
             "| rule | TP | FP | misses | precision | recall |",
             "|---|---:|---:|---:|---:|---:|"]
    for code, r in rules.items():
        wrong = f" ({r['wrong']} wrong line)" if r["wrong"] else ""
        lines.append(f"| {code} | {r['tp']} | {r['fp']}{wrong} | {r['miss']} | "
                     f"{ratio(r['tp'], r['tp'] + r['fp'])} | {ratio(r['tp'], r['tp'] + r['miss'])} |")
    lines.append(f"| **total** | {total['tp']} | {total['fp']} | {total['miss']} | "
                 f"{ratio(total['tp'], total['tp'] + total['fp'])} | "
                 f"{ratio(total['tp'], total['tp'] + total['miss'])} |")
    if total["wrong"]:
        lines += ["", f"{total['wrong']} false positive(s) had a marker's code at the wrong line "
                  "(see *False positives on planted programs*)."]

    # one row per program, one column per interpreter
    labels = [label for label in LABELS if any(r["interpreter"] == label for r in rows)]
    lines += ["", "## By program", "",
              "*ok*: every marker matched and no false positive (planted), no false positive (healthy).", "",
              "| program | kind | run | " + " | ".join(labels) + " |",
              "|---|---|---|" + "---|" * len(labels)]
    for program in programs:
        cells = []
        for label in labels:
            mine = [r for r in rows if r["program"] == program.stem and r["interpreter"] == label]
            cells.append(", ".join(outcome(r) for r in mine) if mine else "")
        run = program.mode + (" --subprocesses" if program.subprocesses else "") if program.mode else "?"
        if program.problems:
            run += " (manifest error)"
        lines.append(f"| {cell(program.stem)} | {program.kind or '?'} | {cell(run)} | " + " | ".join(cells) + " |")

    def finding_table(entries, extra_header=""):
        out = [f"| program | interpreter | code | severity | location | title{extra_header} |",
               "|---|---|---|---|---|---|" + ("---|" if extra_header else "")]
        for row, f, extra in entries:
            out.append(f"| {cell(row['program'])} | {run_label(row)} | {f['code']} | "
                       f"{f['severity']}{' (forbidden)' if f.get('forbidden') else ''} | "
                       f"{cell(f['function'] + ' ' if f['function'] else '')}`{cell(where(f))}` | "
                       f"{cell(f['title'])}{' | ' + cell(extra) if extra_header else ''} |")
        return out

    def run_label(row):
        return row["interpreter"] + (f" #{row['run']}" if opts.runs > 1 else "")

    healthy = [r for r in ok_rows if r["kind"] == "healthy"]
    false = [(r, f, "") for r in healthy for f in r["fp"]]
    lines += ["", "## Healthy controls", "",
              f"{len(healthy)} run(s) of healthy programs, {sum(not r['fp'] for r in healthy)} without a "
              f"false finding."]
    if false:
        lines += [""] + finding_table(false)

    planted = [r for r in ok_rows if r["kind"] == "planted"]
    false = [(r, f, "wrong line" if f.get("wrong_line") else "") for r in planted for f in r["fp"]]
    lines += ["", "## False positives on planted programs", "",
              f"{len(planted)} run(s) of planted programs, {sum(not r['fp'] for r in planted)} without a "
              f"false positive."]
    if false:
        lines += [""] + finding_table(false, " | note")

    misses = [(r, m) for r in planted for m in r["misses"]]
    lines += ["", "## Planted misses", "",
              f"{len(misses)} marker(s) missed in {len(planted)} run(s) of planted programs."]
    if misses:
        lines += ["", "| program | interpreter | expected | the doctor said instead |", "|---|---|---|---|"]
        for row, (code, line) in misses:
            said = "; ".join(f"{f['code']} {f['severity']} at `{where(f)}`: {f['title']}"
                             for f in row["findings"]) or "nothing"
            lines.append(f"| {cell(row['program'])} | {run_label(row)} | "
                         f"{code} at `{posixpath.basename(row['file'])}:{line}` | {cell(said)} |")

    lines += ["", "## Errors", ""]
    if errors:
        lines += ["| program | interpreter | run | error |", "|---|---|---:|---|"]
        lines += [f"| {cell(r['program'])} | {r['interpreter']} | {r['run']} | {cell(r['error'])} |"
                  for r in errors]
    else:
        lines.append("None.")
    notes = sorted({(p.stem, note) for p in programs for note in p.notes} |
                   {(f"{r['program']} ({r['interpreter']})", w) for r in rows for w in r.get("warnings", [])})
    if notes or meta["notes"]:
        lines += ["", "## Notes", ""]
        lines += [f"- {cell(note)}" for note in meta["notes"]]
        lines += [f"- {cell(what)}: {cell(note)}" for what, note in notes]
    return "\n".join(lines) + "\n", rules, total


# ---------------------------------------------------------------- main

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--pydx", help="use this pydx binary (default: cargo build --release -p pydx-cli)")
    parser.add_argument("--corpus", default=str(CORPUS), help="the corpus folder (default: corpus/)")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="only this program (its file's stem; repeatable, or comma-separated)")
    parser.add_argument("--python", action="append", default=[], metavar="LABEL", choices=LABELS,
                        help=f"only this interpreter ({', '.join(LABELS)}; repeatable; default: every one "
                             "the program's manifest implies). A label a program cannot run on (it lacks "
                             "its packages or is older than its `python:`) is skipped for it")
    parser.add_argument("--runs", type=int, default=1, help="runs per program and interpreter (default 1)")
    parser.add_argument("--seconds", type=float, default=8,
                        help="load and sampling time of gunicorn/uvicorn programs (default 8)")
    parser.add_argument("--timeout", type=float, default=60, help="time limit of one run in s (default 60)")
    parser.add_argument("--out", help="Markdown report (default bench/results/doctor-accuracy.md)")
    parser.add_argument("--json", help="also write the raw results here")
    parser.add_argument("--save-profiles", metavar="DIR",
                        help="where each run's profile goes, as <stem>.<label>.pprof (default CORPUS/profiles)")
    parser.add_argument("--pydx-arg", action="append", default=[], metavar="ARG",
                        help="an extra argument for every `pydx doctor` run, e.g. --pydx-arg=--native "
                             "(repeatable)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the scratch folder with each run's logs (named in the JSON results)")
    opts = parser.parse_args()
    if opts.runs < 1:
        parser.error("--runs must be at least 1")
    if opts.seconds <= 0 or opts.timeout <= 0:
        parser.error("--seconds and --timeout must be positive")
    corpus = pathlib.Path(opts.corpus).resolve()
    if not corpus.is_dir():
        parser.error(f"no corpus folder {corpus}")
    opts.save_profiles = pathlib.Path(opts.save_profiles or corpus / "profiles").resolve()
    out_path = pathlib.Path(opts.out) if opts.out else RESULTS / "doctor-accuracy.md"
    only = [name for value in opts.only for name in value.split(",") if name]

    programs = find_programs(corpus)
    stems = collections.Counter(p.stem for p in programs)
    notes = [f"two or more programs are named {stem}: their profiles overwrite each other"
             for stem, n in stems.items() if n > 1]
    if only:
        unknown = [name for name in only if name not in stems]
        if unknown:
            parser.error(f"no corpus program named {', '.join(unknown)} in {corpus} "
                         f"(there are: {', '.join(sorted(stems)) or 'none'})")
        programs = [p for p in programs if p.stem in only]

    plan = []
    for program in programs:
        if opts.python:
            labels = [label for label in opts.python if program.can_run_on(label)]
            skipped = [label for label in opts.python if label not in labels]
            if skipped:
                print(f"{program.stem}: not run on {', '.join(skipped)} (needs "
                      f"{', '.join(sorted(program.needs)) or 'only the standard library'}, python "
                      f">= {'.'.join(map(str, program.min_python))}, run: {program.mode})", file=sys.stderr)
        else:
            labels = program.implied_labels() if not program.problems else ["-"]
        for label in labels:
            plan += [(program, label, i) for i in range(1, opts.runs + 1)]
    if not plan:
        print(f"nothing to run: no corpus programs{' matching' if only or opts.python else ''} in {corpus}",
              file=sys.stderr)

    def terminated(signum, frame):
        raise SystemExit(128 + signum)  # so that the runs' `finally` stops what they started
    signal.signal(signal.SIGTERM, terminated)

    scratch = pathlib.Path(tempfile.mkdtemp(prefix="pydx-accuracy-"))
    scratch.chmod(0o755)  # PostgreSQL runs as postgres and keeps its data in here
    began = time.monotonic()
    rows = []
    try:
        if opts.pydx:
            built, source = opts.pydx, f"given binary {opts.pydx}"
            if not os.access(built, os.X_OK):
                parser.error(f"--pydx {built}: not an executable")
        else:
            print("building pydx (cargo build --release -p pydx-cli)", file=sys.stderr, flush=True)
            try:
                built, source = tools.pydx(), "built from the working tree"
            except (subprocess.CalledProcessError, OSError) as error:
                print(f"error: pydx did not build: {error}", file=sys.stderr)
                return 1
        pydx = str(scratch / "pydx")  # a copy: others' builds during the run cannot swap it
        shutil.copy2(built, pydx)
        version = subprocess.run([pydx, "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True).stdout.strip() or "pydx (unknown version)"
        interpreters = {label: Interpreter(label) for label in LABELS
                        if any(l == label for _, l, _ in plan)}
        placeholder = Interpreter.__new__(Interpreter)
        placeholder.label, placeholder.problem, placeholder.chroot = "-", None, False
        interpreters["-"] = placeholder
        servers = Servers(scratch)
        opts.save_profiles.mkdir(parents=True, exist_ok=True)
        machine_line = tools.machine()
        for n, (program, label, index) in enumerate(plan, start=1):
            t0 = time.monotonic()
            row = run_one(opts, pydx, program, interpreters[label], servers, index, scratch)
            rows.append(row)
            print(f"[{n}/{len(plan)} {time.monotonic() - began:4.0f}s] {program.stem} ({program.kind or '?'}) "
                  f"on {label}{f' run {index}' if opts.runs > 1 else ''} ({time.monotonic() - t0:.1f} s): "
                  f"{progress_detail(row)}", file=sys.stderr, flush=True)
    finally:
        if opts.keep:
            print(f"logs kept in {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)

    argv = [a if not a.startswith(str(tools.REPO) + "/") else os.path.relpath(a, tools.REPO)
            for a in sys.argv[1:]]
    meta = {
        "command": "python3 bench/doctor_accuracy.py" + "".join(f" {shlex.quote(a)}" for a in argv),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(), "pydx_version": version, "pydx_source": source,
        "machine": machine_line, "minutes": (time.monotonic() - began) / 60,
        "interpreters": [i.describe() for label, i in interpreters.items() if label != "-"],
        "notes": notes, "corpus": str(corpus),
    }
    report, rules, total = render(opts, meta, programs, rows)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(report)
    if opts.json:
        pathlib.Path(opts.json).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(opts.json).write_text(json.dumps({
            "meta": meta,
            "programs": [{"program": p.stem, "file": str(p.path), "kind": p.kind, "story": p.story,
                          "needs": sorted(p.needs), "python": ".".join(map(str, p.min_python)),
                          "run": p.value("run"), "forbid": sorted(p.forbid),
                          "markers": [list(m) for m in p.markers], "problems": p.problems}
                         for p in programs],
            "rules": rules, "total": total, "runs": rows}, indent=2) + "\n")

    errors = sum(r["error"] is not None for r in rows)
    print(f"\n{len(rows)} run(s) of {len(programs)} program(s), {errors} failed: "
          f"TP {total['tp']}, FP {total['fp']} ({total['wrong']} wrong line), misses {total['miss']}; "
          f"precision {ratio(total['tp'], total['tp'] + total['fp'])}, "
          f"recall {ratio(total['tp'], total['tp'] + total['miss'])}")
    for code, r in rules.items():
        print(f"  {code}: TP {r['tp']} FP {r['fp']} misses {r['miss']}")
    print(f"report: {out_path}" + (f"; raw results: {opts.json}" if opts.json else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
