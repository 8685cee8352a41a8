# corpus: planted
# story: a shop replays a day of search-box keystrokes against its suggestion trie to measure how many keystrokes the suggestions save; every keystroke walks the trie and ranks the completions again, although shoppers keep typing the same popular prefixes
# run: launch
"""Replay the search box's keystroke log against the suggestion trie and report the keystrokes saved."""
import heapq
import itertools
import random
import time
from collections import Counter

ADJECTIVES = [
    "wireless", "waterproof", "wooden", "women's", "men's", "kids", "kitchen", "knitted",
    "leather", "linen", "led", "large", "small", "smart", "stainless", "silk", "solar",
    "portable", "padded", "organic", "outdoor", "cotton", "ceramic", "compact", "cordless",
    "bamboo", "black", "blue", "bluetooth", "garden", "gaming", "glass", "rechargeable",
    "running", "reusable", "travel", "vintage", "velvet", "heated", "handmade",
]
PRODUCTS = [
    "headphones", "speaker", "charger", "keyboard", "mouse", "lamp", "desk", "chair",
    "backpack", "wallet", "jacket", "boots", "sneakers", "socks", "scarf", "blanket",
    "pillow", "mug", "kettle", "blender", "knife set", "cutting board", "water bottle",
    "lunch box", "yoga mat", "tent", "sleeping bag", "watch", "sunglasses", "umbrella",
    "phone case", "tablet stand", "monitor", "webcam", "microphone", "earbuds", "camera bag",
    "plant pot", "doormat", "shower curtain", "towel", "bathrobe", "apron", "tea set",
    "toy car", "puzzle", "notebook", "pen set", "picture frame", "wall clock",
]
QUALIFIERS = [
    "for kids", "for men", "for women", "set of 2", "set of 4", "xl", "large", "small",
    "with case", "with lid", "2 pack", "on sale", "gift", "black", "white", "grey",
]
END = "\0"  # key of a node's weight when a search term ends there
MIN_PREFIX = 2
SHOWN = 8


def build_terms(rng):
    """Catalogue search terms with their popularity (searches per day)."""
    terms = {}
    for product in PRODUCTS:
        terms[product] = rng.paretovariate(1.1) * 300
    for adjective, product in itertools.product(ADJECTIVES, PRODUCTS):
        base = adjective + " " + product
        terms[base] = rng.paretovariate(1.2) * 40
        for qualifier in rng.sample(QUALIFIERS, 5):
            terms[base + " " + qualifier] = rng.paretovariate(1.5) * 8
    return terms


def build_trie(terms):
    root = {}
    for term, weight in terms.items():
        node = root
        for ch in term:
            node = node.setdefault(ch, {})
        node[END] = round(weight, 2)
    return root


TERMS = build_terms(random.Random(5))
TRIE = build_trie(TERMS)


def suggest(prefix):  # expect: PYDX-CACHE001
    """The SHOWN most popular search terms starting with prefix."""
    node = TRIE
    for ch in prefix:
        node = node.get(ch)
        if node is None:
            return []
    candidates = []
    stack = [(prefix, node)]
    while stack:
        word, node = stack.pop()
        for ch, child in node.items():
            if ch == END:
                candidates.append((child, word))
            else:
                stack.append((word + ch, child))
    return [word for weight, word in heapq.nlargest(SHOWN, candidates)]


def keystroke_log(rng):
    """Shoppers search for popular terms far more often than rare ones (a Zipf law)."""
    ranked = sorted(TERMS, key=TERMS.get, reverse=True)
    cumulative = list(itertools.accumulate(1.0 / rank for rank in range(1, len(ranked) + 1)))
    session = 0
    while True:
        session += 1
        yield "s%07d" % session, rng.choices(ranked, cum_weights=cumulative)[0]


def replay_session(session_id, target, journal):
    """Feed one shopper's keystrokes to the search box; returns the keystrokes saved."""
    for position in range(MIN_PREFIX, len(target) + 1):
        prefix = target[:position]
        shown = suggest(prefix)
        journal.append("%s\t%d\t%s\t%d" % (session_id, position, prefix, len(shown)))
        if target in shown:
            return len(target) - position, shown.index(target)
    return 0, None


def main():
    rng = random.Random(77)
    start = time.monotonic()
    journal = []
    saved_total = sessions = 0
    clicked_rank = Counter()
    for session_id, target in keystroke_log(rng):
        if time.monotonic() > start + 6:
            break
        saved, rank = replay_session(session_id, target, journal)
        saved_total += saved
        clicked_rank[rank] += 1
        sessions += 1
    print("%d terms in the trie; replayed %d sessions, %d keystrokes logged, %d keystrokes saved; "
          "clicks by rank: %s" % (len(TERMS), sessions, len(journal), saved_total,
                                  sorted(clicked_rank.items(), key=lambda item: str(item[0]))))


if __name__ == "__main__":
    main()
