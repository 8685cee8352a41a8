# corpus: planted
# story: a warehouse scanner service matches mistyped bin labels to the nearest known label with a recursive edit distance, recomputed for every scan
# run: launch
"""Resolve hand-typed bin labels from the handheld scanners to known warehouse bins."""
import random
import time

KNOWN_BINS = ["A%d-%s" % (aisle, level) for aisle in range(1, 13) for level in ("LO", "MID", "TOP")]


def edit_distance(typed, label):  # expect: PYDX-CACHE001
    if not typed:
        return len(label)
    if not label:
        return len(typed)
    if typed[0] == label[0]:
        return edit_distance(typed[1:], label[1:])
    return 1 + min(edit_distance(typed[1:], label),      # a character too many
                   edit_distance(typed, label[1:]),      # a character missing
                   edit_distance(typed[1:], label[1:]))  # a wrong character


def resolve(typed):
    best, best_distance = None, None
    for label in KNOWN_BINS:
        distance = edit_distance(typed, label)
        if best_distance is None or distance < best_distance:
            best, best_distance = label, distance
    return best, best_distance


def typo(rng, label):
    chars = list(label)
    position = rng.randrange(len(chars))
    action = rng.choice(["swap", "drop", "replace"])
    if action == "drop":
        del chars[position]
    elif action == "replace":
        chars[position] = rng.choice("ABLOTMI0123456789-")
    elif position + 1 < len(chars):
        chars[position], chars[position + 1] = chars[position + 1], chars[position]
    return "".join(chars)


def scan_stream(rng):
    """Pickers work a few aisles at a time, so the same labels (and typos) come back often."""
    frequent = [typo(rng, rng.choice(KNOWN_BINS)) for _ in range(40)]
    while True:
        yield rng.choice(frequent) if rng.random() < 0.9 else typo(rng, rng.choice(KNOWN_BINS))


def main():
    rng = random.Random(3)
    start = time.monotonic()
    resolved = corrected = 0
    for typed in scan_stream(rng):
        if time.monotonic() > start + 6:
            break
        label, distance = resolve(typed)
        resolved += 1
        corrected += distance > 0
    print("resolved %d scans, %d needed correction" % (resolved, corrected))


if __name__ == "__main__":
    main()
