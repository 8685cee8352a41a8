"""A program whose time goes into libcrypto, through hashlib.

Usage: python native_hashlib.py [THREADS]: THREADS threads (the main one
among them, 1 by default) derive keys at once; hashlib lets go of the GIL
while it does, so they all run, or wait for a CPU.
"""
import hashlib
import sys
import threading


def derive(rounds):
    return hashlib.pbkdf2_hmac("sha256", b"password", b"salt", rounds)  # LINE:derive


def derive_forever():
    while True:
        derive(500_000)


threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
for _ in range(threads - 1):
    threading.Thread(target=derive_forever, daemon=True).start()
print("ready", flush=True)
derive_forever()
