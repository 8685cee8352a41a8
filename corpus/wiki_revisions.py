# corpus: planted
# story: a FastAPI wiki service shows what changed between two revisions of a page with difflib's line-and-character diff, computed in the async handler; uvicorn runs one process on a 2-CPU machine while six editors browse diffs
# needs: fastapi, uvicorn, httpx
# run: uvicorn --workers 1 wiki_revisions:app
import difflib
import random
import sys
import threading
import time

import httpx
from fastapi import FastAPI, HTTPException

app = FastAPI(title="wiki")


def _generate_wiki(pages=12, revisions=10, seed=5):
    rng = random.Random(seed)
    vocab = ["".join(rng.choice("abcdefghijklmnoprstuvw") for _ in range(rng.randint(2, 9))) for _ in range(3000)]

    def sentence():
        return " ".join(rng.choice(vocab) for _ in range(rng.randint(6, 14))).capitalize() + "."

    def edit(lines):
        lines = list(lines)
        for _ in range(rng.randint(15, 30)):
            i = rng.randrange(len(lines))
            roll = rng.random()
            if roll < 0.5:
                words = lines[i].split()
                words[rng.randrange(len(words))] = rng.choice(vocab)
                lines[i] = " ".join(words)
            elif roll < 0.75:
                lines.insert(i, sentence())
            else:
                del lines[i]
        return lines

    wiki = {}
    for p in range(pages):
        history = [[sentence() for _ in range(300)]]
        for _ in range(revisions - 1):
            history.append(edit(history[-1]))
        wiki[f"runbook-{p:02d}"] = history
    return wiki


WIKI = _generate_wiki()


@app.get("/pages/{slug}/diff")
async def page_diff(slug: str, old: int, new: int):
    history = WIKI.get(slug)
    if history is None or not (0 <= old < len(history) and 0 <= new < len(history)):
        raise HTTPException(status_code=404)
    delta = difflib.ndiff(history[old], history[new])
    changes = [line for line in delta if line[:1] in "+-?"]  # expect: PYDX-WORKER002
    return {
        "page": slug,
        "old": old,
        "new": new,
        "added": sum(1 for c in changes if c.startswith("+ ")),
        "removed": sum(1 for c in changes if c.startswith("- ")),
        "changes": changes[:200],
    }


def browse(base_url, seconds, editors=6):
    deadline = time.monotonic() + seconds
    totals = {}

    def editor(name):
        rng = random.Random(name)
        # a fresh connection per page view, like many short browser visits behind a proxy
        with httpx.Client(base_url=base_url, timeout=30, limits=httpx.Limits(max_keepalive_connections=0)) as client:
            n = 0
            while time.monotonic() < deadline:
                slug = f"runbook-{rng.randrange(12):02d}"
                old = rng.randrange(0, 5)
                resp = client.get(f"/pages/{slug}/diff", params={"old": old, "new": old + rng.randint(2, 5)})
                resp.raise_for_status()
                n += 1
        totals[name] = n

    threads = [threading.Thread(target=editor, args=(f"editor{i}",)) for i in range(editors)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"{sum(totals.values())} diffs in {seconds:.0f} s")


if __name__ == "__main__" and sys.argv[1:2] == ["load"]:
    browse(sys.argv[2], float(sys.argv[3]))
