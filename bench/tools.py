"""Builds the benchmark tools once into the test cache: pydx (release),
py-spy and Austin from PyPI."""
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import zipfile

REPO = pathlib.Path(__file__).resolve().parent.parent
CACHE = pathlib.Path(os.environ.get("PYDX_TEST_CACHE", pathlib.Path.home() / ".cache/pydx-test"))
VENV = CACHE / "bench-venv"
PY_SPY_VERSION = "0.4.3"
AUSTIN_VERSION = "4.0.0"
# Austin's glibc build needs glibc 2.38; its musl build runs with Debian's musl.
AUSTIN_WHEEL_PLATFORM = "musllinux_1_1_x86_64"


def run(*args, **kwargs):
    return subprocess.run(args, check=True, **kwargs)


def pyenv_python(minor):
    """The newest pyenv build of 3.minor."""
    root = pathlib.Path(os.environ.get("PYENV_ROOT", pathlib.Path.home() / ".pyenv"))
    builds = sorted(
        (p for p in (root / "versions").glob(f"3.{minor}.*") if p.name.split(".")[-1].isdigit()),
        key=lambda p: int(p.name.split(".")[-1]),
    )
    if not builds:
        sys.exit(f"no pyenv build of Python 3.{minor}")
    return str(builds[-1] / "bin" / f"python3.{minor}")


def pydx():
    run("cargo", "build", "--release", "--quiet", "-p", "pydx-cli", cwd=REPO)
    return str(REPO / "target" / "release" / "pydx")


def pydx_at_head():
    """pydx built from the last commit (git archive HEAD) in the test cache,
    for when the working tree does not build while others edit it. Returns
    (binary, commit)."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, check=True,
                            stdout=subprocess.PIPE, text=True).stdout.strip()
    source = CACHE / "bench-pydx-head"
    if source.exists():
        shutil.rmtree(source)
    source.mkdir(parents=True)
    archive = subprocess.Popen(["git", "archive", "HEAD"], cwd=REPO, stdout=subprocess.PIPE)
    run("tar", "-x", "-C", str(source), stdin=archive.stdout)
    archive.stdout.close()
    if archive.wait() != 0:
        raise RuntimeError("git archive HEAD failed")
    env = dict(os.environ, CARGO_TARGET_DIR=str(CACHE / "bench-pydx-target"))
    run("cargo", "build", "--release", "--quiet", "-p", "pydx-cli", cwd=source, env=env)
    return str(CACHE / "bench-pydx-target" / "release" / "pydx"), commit


def py_spy():
    binary = VENV / "bin" / "py-spy"
    if not binary.exists():
        run(sys.executable, "-m", "venv", str(VENV))
        run(str(VENV / "bin" / "pip"), "install", "-q", f"py-spy=={PY_SPY_VERSION}", "austin-python")
    return str(binary)


def austin():
    binary = CACHE / "bench-tools" / "austin"
    if not binary.exists():
        if not pathlib.Path("/lib/ld-musl-x86_64.so.1").exists():
            run("apt-get", "install", "-y", "-qq", "musl")
        py_spy()
        download = CACHE / "bench-tools" / "download"
        run(str(VENV / "bin" / "pip"), "download", "-q", "--no-deps", "--only-binary=:all:",
            "--platform", AUSTIN_WHEEL_PLATFORM, f"austin-dist=={AUSTIN_VERSION}", "-d", str(download))
        wheel = next(download.glob("austin_dist-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            member = next(n for n in archive.namelist() if n.endswith("/scripts/austin"))
            binary.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as source, open(binary, "wb") as target:
                shutil.copyfileobj(source, target)
        binary.chmod(0o755)
    return str(binary)


def machine():
    """One line on the machine a benchmark ran on: CPUs, model, kernel, load."""
    model = ""
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {model}, "
            f"Linux {platform.release()}, load average at start {os.getloadavg()[0]:.2f}")
