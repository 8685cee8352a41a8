"""Changes string locals as fast as it can: `x` is always an upper-case
word of WORDS and `y` the length of one, so any other value read from it
is a value the program never held."""
import sys

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
LINE = " ".join(WORDS)


def churn():
    # Ready once this frame runs, so that every dump finds it.
    print("ready", flush=True)
    while True:
        for w in LINE.split():
            x = w.upper()
            y = len(x)


if __name__ == "__main__":
    churn()
