"""Native code calling back into Python, for the tests of `--native`.

Usage: native_probe.py extension|extension-nap|ctypes|ctypes-internal|ctypes-alternate PATH

`outer` calls native code (`call_back` of the extension module, or
`probe_call_back` through ctypes), which calls `inner` back, which spins
in native code (`probe_spin`) for good. With ctypes-internal, `spin`
spins in `probe_spin_hidden`, which calls a function with internal
linkage. With ctypes-alternate, `first` (in `probe_spin`) and `second`
(in `probe_spin_hidden`) take turns, each for about a tenth of a
millisecond: a native frame merged under the other function is a stack
the program never had. With extension-nap, `outer` sleeps in native code
(`probe_nap`, without the GIL) 20 ms at a time, while a second thread
spins in Python.
"""
import ctypes
import importlib.util
import sys

MODE, PATH = sys.argv[1], sys.argv[2]

if MODE == "extension":
    spec = importlib.util.spec_from_file_location("native_probe", PATH)
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)

    def inner():
        while True:
            probe.spin(100_000_000)  # LINE:extension_spin

    def outer():
        probe.call_back(inner)  # LINE:extension_call_back

elif MODE == "extension-nap":
    import threading

    spec = importlib.util.spec_from_file_location("native_probe", PATH)
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)

    def busy():
        x = 0
        while True:
            x += 1

    def outer():
        threading.Thread(target=busy, daemon=True).start()
        while True:
            probe.nap(20)  # LINE:extension_nap

elif MODE == "ctypes-internal":
    library = ctypes.CDLL(PATH)
    library.probe_spin_hidden.argtypes = [ctypes.c_long]
    library.probe_spin_hidden.restype = ctypes.c_double

    def outer():
        while True:
            library.probe_spin_hidden(100_000_000)  # LINE:ctypes_internal

elif MODE == "ctypes-alternate":
    library = ctypes.CDLL(PATH)
    for function in (library.probe_spin, library.probe_spin_hidden):
        function.argtypes = [ctypes.c_long]
        function.restype = ctypes.c_double

    def first():
        library.probe_spin(50_000)  # LINE:alternate_first

    def second():
        library.probe_spin_hidden(50_000)  # LINE:alternate_second

    def outer():
        while True:
            first()
            second()

else:
    library = ctypes.CDLL(PATH)
    library.probe_spin.argtypes = [ctypes.c_long]
    library.probe_spin.restype = ctypes.c_double
    CALLBACK = ctypes.CFUNCTYPE(None)

    def inner():
        while True:
            library.probe_spin(100_000_000)  # LINE:ctypes_spin

    callback = CALLBACK(inner)
    library.probe_call_back.argtypes = [CALLBACK, ctypes.c_long]

    def outer():
        library.probe_call_back(callback, 1)  # LINE:ctypes_call_back


print("ready", flush=True)
outer()  # LINE:start
