"""A frame with locals of every kind pydx shows."""
import time


def show(count, ratio=0.5, *rest, label="x", **options):
    text = "héllo wörld"
    wide = "λ😀"
    big = 2 ** 100
    negative = -12345678901234
    flag = True
    nothing = None
    items = [1, 2, 3]
    mapping = {"k": 1, "j": 2}
    raw = b"\x00ab"
    pair = (1, 2)
    long_text = "y" * 1000
    numbers = [-1234, 5678]
    letters = ("a", "b", "c")
    nested = {"a": False, "b": (1, 2, 3)}
    deep = [[[1]]]
    many = list(range(100))
    thinned = {1, 2, 3}
    thinned.discard(2)
    pruned = {"gone": 1, "kept": 2}
    del pruned["gone"]
    empty = set()

    def closure():
        return text

    print("ready", flush=True)
    time.sleep(3600)  # LINE:sleep


show(7, 2.5, "extra", label="tag", color="red")
