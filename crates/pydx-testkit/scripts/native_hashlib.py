"""A program whose time goes into libcrypto, through hashlib."""
import hashlib


def derive(rounds):
    return hashlib.pbkdf2_hmac("sha256", b"password", b"salt", rounds)  # LINE:derive


print("ready", flush=True)
while True:
    derive(500_000)
