"""Loads a copy of its own libpython through ctypes, as CPython's
test_self_trace_after_ctypes_import does (gh-144563): the process then maps
two files that hold a `_PyRuntime`, and only one of them was started.
Prints `ready`, then spins; the copy is left for the caller to remove."""
import ctypes
import os
import shutil
import sysconfig
import tempfile

library = os.path.join(sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("LDLIBRARY"))
copy = os.path.join(tempfile.mkdtemp(prefix="pydx-test-"), "libpython-copy.so")
shutil.copy(library, copy)
ctypes.CDLL(copy)


def spin():
    while True:
        sum(range(1000))


print("ready", flush=True)
spin()
