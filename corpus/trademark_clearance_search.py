# corpus: healthy
# story: a trademark-clearance service loads the registry's bulk export page by page into a trigram index at start-up, then answers similarity searches from paralegals for the rest of its run with bounded memory (a fixed-size recent-searches log)
# run: launch
# forbid: PYDX-MEM001
"""Find registered marks that look like a proposed brand name, for clearance searches."""
import json
import os
import random
import shutil
import tempfile
import time
from collections import Counter, deque

SYLLABLES = ["ka", "lo", "vi", "ta", "ne", "ro", "su", "mi", "zen", "tor", "ax", "ly", "qu", "el",
             "bri", "son", "dex", "fy", "po", "ra", "nov", "tri", "om", "ix", "ve", "sa"]
SUFFIXES = ["", "", " labs", " systems", " foods", " pharma", " wear", " tech", " co", " studio"]
NICE_CLASSES = list(range(1, 46))
PAGE = 2000


def write_bulk_export(path, rng, marks):
    """The registry's nightly export: one JSON record per registered mark."""
    with open(path, "w") as handle:
        for serial in range(marks):
            name = "".join(rng.choices(SYLLABLES, k=rng.randrange(2, 5))) + rng.choice(SUFFIXES)
            classes = sorted(rng.sample(NICE_CLASSES, rng.randrange(1, 4)))
            handle.write(json.dumps({"serial": 80000000 + serial, "mark": name, "classes": classes}) + "\n")


def read_pages(path):
    with open(path) as handle:
        page = []
        for line in handle:
            page.append(json.loads(line))
            if len(page) == PAGE:
                yield page
                page = []
        if page:
            yield page


def trigrams(text):
    padded = "  " + text.lower() + " "
    return {padded[i:i + 3] for i in range(len(padded) - 2)}


class MarkIndex:
    def __init__(self):
        self.marks = []
        self.by_trigram = {}

    def add_page(self, records):
        for record in records:
            mark_id = len(self.marks)
            self.marks.append((record["serial"], record["mark"], tuple(record["classes"])))
            for gram in trigrams(record["mark"]):
                self.by_trigram.setdefault(gram, set()).add(mark_id)

    def search(self, proposed, nice_class, limit=10):
        grams = trigrams(proposed)
        shared = Counter()
        for gram in grams:
            shared.update(self.by_trigram.get(gram, ()))
        hits = []
        for mark_id, common in shared.most_common(200):
            serial, name, classes = self.marks[mark_id]
            if nice_class in classes:
                hits.append((common / float(len(grams | trigrams(name))), serial, name))
        hits.sort(reverse=True)
        return hits[:limit]


def main():
    rng = random.Random(77)
    workdir = tempfile.mkdtemp(prefix="tm-export-")
    try:
        export = os.path.join(workdir, "registry.jsonl")
        write_bulk_export(export, rng, 60000)
        index = MarkIndex()
        start = time.monotonic()
        for page in read_pages(export):
            index.add_page(page)
            time.sleep(0.03)  # the export is streamed from the registry's file server
        loaded = time.monotonic() - start
        recent = deque(maxlen=500)
        searches = conflicts = 0
        while time.monotonic() < start + 6:
            proposed = "".join(rng.choices(SYLLABLES, k=rng.randrange(2, 4)))
            hits = index.search(proposed, rng.choice(NICE_CLASSES))
            conflicts += sum(1 for score, _, _ in hits if score > 0.5)
            recent.append((proposed, hits[:3]))
            searches += 1
            time.sleep(rng.uniform(0.002, 0.01))  # the next paralegal's request
    finally:
        shutil.rmtree(workdir)
    print("indexed %d marks in %.1f s; %d searches, %d likely conflicts"
          % (len(index.marks), loaded, searches, conflicts))


if __name__ == "__main__":
    main()
