#!/usr/bin/env bash
# Builds what pydx's tests need, once, into a cache folder outside the repo
# ($PYDX_TEST_CACHE, default ~/.cache/pydx-test), and reuses it afterwards:
#   - Debian packages: debootstrap, tmux (to test `pydx top` in a real
#     terminal), musl (for the Austin benchmark binary), PostgreSQL and
#     Redis (servers the web-service tests start themselves);
#   - a Debian sid chroot with CPython 3.13, 3.14 and 3.15 (and NumPy);
#   - a venv of pyenv's Python 3.12 with the pinned web stack of
#     crates/pydx-testkit/requirements/web.txt (gunicorn, uvicorn, Django, ...),
#     and one of 3.11 with what the doctor examples need (NumPy);
#   - Node 24 and the Firefox Profiler's CLI, from npm.
# The pyenv builds 3.8-3.13 and Debian's /usr/bin/python3.11 come with the
# machine; the script checks that they are there.
set -euo pipefail

CACHE="${PYDX_TEST_CACHE:-$HOME/.cache/pydx-test}"
mkdir -p "$CACHE"

say() { printf 'setup-test-env: %s\n' "$*" >&2; }

missing_packages=()
command -v debootstrap >/dev/null 2>&1 || missing_packages+=(debootstrap)
command -v setpriv >/dev/null 2>&1 || missing_packages+=(util-linux)
command -v tmux >/dev/null 2>&1 || missing_packages+=(tmux)
[ -e /lib/ld-musl-x86_64.so.1 ] || missing_packages+=(musl)
# The layout tables are checked against each interpreter's headers with a
# small C program (crates/pydx-cpython/tests/headers).
command -v gcc >/dev/null 2>&1 || missing_packages+=(gcc)
# `--native` is tested with a C extension the tests build against each
# interpreter's headers (Debian's 3.11 ones included), and variants of it
# stripped of symbols or unwind tables by objcopy.
[ -e /usr/include/python3.11/Python.h ] || missing_packages+=(libpython3.11-dev)
command -v objcopy >/dev/null 2>&1 || missing_packages+=(binutils)
# The HTML report is tested in a real browser, headless.
command -v chromium >/dev/null 2>&1 || missing_packages+=(chromium)
# A real PostgreSQL and Redis for the web-service tests (the tests start
# and stop their own servers; nothing runs as a system service).
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing_packages+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing_packages+=(redis-server)
if [ "${#missing_packages[@]}" -gt 0 ]; then
    say "installing ${missing_packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq "${missing_packages[@]}" >/dev/null 2>&1 || {
        apt-get update -qq >/dev/null
        apt-get install -y -qq "${missing_packages[@]}" >/dev/null
    }
fi

SID="$CACHE/sid"
if [ ! -x "$SID/usr/bin/python3.15" ] || [ ! -x "$SID/usr/bin/python3.14" ] || [ ! -x "$SID/usr/bin/python3.13" ]; then
    say "building the Debian sid chroot with Python 3.13-3.15 in $SID (about a minute)"
    rm -rf "$SID.partial"
    if ! debootstrap --variant=minbase --include=python3.15,python3.14,python3.13,python3-numpy sid "$SID.partial" \
        >"$CACHE/debootstrap.log" 2>&1; then
        tail -n 20 "$CACHE/debootstrap.log" >&2
        say "debootstrap failed; see $CACHE/debootstrap.log"
        exit 1
    fi
    rm -rf "$SID"
    mv "$SID.partial" "$SID"
fi
if [ ! -d "$SID/usr/lib/python3/dist-packages/numpy" ]; then
    say "installing NumPy in the sid chroot"
    chroot "$SID" apt-get -o Acquire::Check-Valid-Until=false install -y -qq python3-numpy >"$CACHE/apt-numpy.log" 2>&1 || {
        tail -n 20 "$CACHE/apt-numpy.log" >&2
        exit 1
    }
fi

PYENV_ROOT="${PYENV_ROOT:-$HOME/.pyenv}"
for minor in 8 9 10 11 12 13; do
    if ! ls -d "$PYENV_ROOT"/versions/3."$minor".* >/dev/null 2>&1; then
        say "missing pyenv build of Python 3.$minor in $PYENV_ROOT/versions"
        exit 1
    fi
done
[ -x /usr/bin/python3.11 ] || { say "missing Debian's /usr/bin/python3.11"; exit 1; }

# build_venv NAME MINOR REQUIREMENTS: a venv of pyenv's 3.MINOR with pinned
# packages, rebuilt only when the requirements file changes.
build_venv() {
    local venv="$CACHE/$1" requirements="$3"
    local stamp="$venv/.requirements.sha256"
    local want
    want="$(sha256sum "$requirements" | cut -d' ' -f1)"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        say "building the test venv $venv"
        rm -rf "$venv"
        "$(ls -d "$PYENV_ROOT"/versions/3."$2".* | sort -V | tail -n 1)/bin/python3.$2" -m venv "$venv"
        "$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements"
        echo "$want" > "$stamp"
    fi
}
REQUIREMENTS="$(dirname "$0")/../crates/pydx-testkit/requirements"
build_venv venv-web 12 "$REQUIREMENTS/web.txt"
build_venv venv-examples 11 "$REQUIREMENTS/examples.txt"

# The Firefox Profiler's own code checks the Gecko files pydx writes: its
# CLI bundles the profiler's importers and runs headless under Node 24, both
# from the npm registry (the `node` package brings a Node binary).
FIREFOX_PROFILER="$CACHE/firefox-profiler"
if [ ! -x "$FIREFOX_PROFILER/node_modules/.bin/node" ] \
    || [ ! -f "$FIREFOX_PROFILER/node_modules/@firefox-devtools/profiler-cli/dist/profiler-cli.js" ]; then
    say "installing Node 24 and the Firefox Profiler CLI in $FIREFOX_PROFILER"
    command -v npm >/dev/null 2>&1 || apt-get install -y -qq npm >/dev/null
    mkdir -p "$FIREFOX_PROFILER"
    npm install --prefix "$FIREFOX_PROFILER" --no-audit --no-fund \
        node@24.21.0 @firefox-devtools/profiler-cli@0.10.0 >"$CACHE/npm.log" 2>&1 || {
        tail -n 20 "$CACHE/npm.log" >&2
        exit 1
    }
fi
say "ready: $CACHE"
