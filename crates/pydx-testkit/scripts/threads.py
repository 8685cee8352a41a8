"""Three threads with known stacks: deep recursion, a sleep, a busy loop."""
import threading
import time


def recurse_λ(depth):
    if depth == 0:
        time.sleep(3600)  # LINE:bottom
    return recurse_λ(depth - 1)  # LINE:recurse


def deep():
    recurse_λ(40)  # LINE:deep


def nap():
    time.sleep(3600)  # LINE:nap


class Outer:
    class Inner:
        def spin(self):
            n = 0
            while True: n += 1  # LINE:spin


def busy():
    Outer.Inner().spin()  # LINE:busy


threads = [
    threading.Thread(target=deep, name="deep-λ", daemon=True),
    threading.Thread(target=nap, name="napper", daemon=True),
    threading.Thread(target=busy, name="busy", daemon=True),
]
for thread in threads:
    thread.start()
print("ready")
threading.Event().wait()  # LINE:main
