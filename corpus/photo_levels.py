# corpus: planted
# story: a photo-upload service auto-levels RGB images held as nested lists of pixel tuples, pixel by pixel in Python loops
# run: launch
"""Auto-levels for uploaded photos: stretch luminance between the 1st and 99th percentile."""
import random
import time


class Photo:
    def __init__(self, name, width, height, pixels):
        self.name = name
        self.width = width
        self.height = height
        self.pixels = pixels  # rows of (r, g, b) tuples


def synthetic_photo(rng, name, width, height):
    """A dull, low-contrast gradient with some texture, as phone cameras produce at dusk."""
    base = rng.randint(60, 90)
    pixels = []
    for y in range(height):
        row = []
        for x in range(width):
            shade = base + (x * 40) // width + (y * 25) // height + rng.randint(0, 12)
            row.append((shade + 8, shade, shade - 6))
        pixels.append(row)
    return Photo(name, width, height, pixels)


class AutoLevels:
    def __init__(self, low_pct=0.01, high_pct=0.99):
        self.low_pct = low_pct
        self.high_pct = high_pct

    def histogram(self, photo):
        counts = [0] * 256
        for row in photo.pixels[::4]:
            for r, g, b in row[::4]:
                counts[(r * 77 + g * 150 + b * 29) >> 8] += 1
        return counts

    def bounds(self, counts):
        total = sum(counts)
        seen, low, high = 0, 0, 255
        for level, count in enumerate(counts):
            if seen < total * self.low_pct <= seen + count:
                low = level
            if seen < total * self.high_pct <= seen + count:
                high = level
            seen += count
        return low, max(high, low + 1)

    def apply(self, photo):
        low, high = self.bounds(self.histogram(photo))
        scale = 255.0 / (high - low)
        out = []
        for row in photo.pixels:
            out_row = []
            for r, g, b in row:
                out_row.append((min(255, max(0, int((r - low) * scale))), min(255, max(0, int((g - low) * scale))), min(255, max(0, int((b - low) * scale)))))  # expect: PYDX-CPU001
            out.append(out_row)
        return Photo(photo.name, photo.width, photo.height, out)


def main():
    rng = random.Random(11)
    uploads = [synthetic_photo(rng, "IMG_%04d.jpg" % n, 320, 240) for n in range(4)]
    levels = AutoLevels()
    start = time.monotonic()
    processed = 0
    while time.monotonic() < start + 6:
        photo = uploads[processed % len(uploads)]
        adjusted = levels.apply(photo)
        processed += 1
    mid = adjusted.pixels[adjusted.height // 2][adjusted.width // 2]
    print("auto-levelled %d photos; centre pixel of the last one: %s" % (processed, mid))


if __name__ == "__main__":
    main()
