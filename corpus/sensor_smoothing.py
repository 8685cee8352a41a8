# corpus: planted
# story: a telemetry job reads blocks of vibration-sensor readings from a recording, smooths each channel with a moving average over Python lists of floats and flags spikes
# run: launch
"""Smooth vibration readings per channel and report spikes above the rolling mean."""
import array
import math
import os
import random
import tempfile
import time

CHANNELS = 4
BLOCK = 6000
WINDOW = 64
SPIKE_FACTOR = 1.8


def record_session(path, rng, blocks):
    """Simulated acquisition: a slow drift, a machine hum and noise, with rare knocks."""
    with open(path, "wb") as handle:
        for block in range(blocks):
            for channel in range(CHANNELS):
                phase = channel * 0.7
                values = array.array("d", (2.0 + 0.4 * math.sin((block * BLOCK + n) / 500.0 + phase)
                                           + 0.3 * math.sin(n / 3.0) + rng.random() * 0.1
                                           for n in range(BLOCK)))
                for _ in range(3):
                    values[rng.randrange(BLOCK)] += rng.uniform(2, 5)
                values.tofile(handle)


def read_blocks(path):
    while True:
        with open(path, "rb") as handle:
            while True:
                channels = {}
                try:
                    for channel in range(CHANNELS):
                        values = array.array("d")
                        values.fromfile(handle, BLOCK)
                        channels["ch%02d" % channel] = values.tolist()
                except EOFError:
                    break
                yield channels


def moving_average(readings, window):
    smoothed = []
    for end in range(window, len(readings) + 1):
        total = 0.0
        for value in readings[end - window:end]:
            total += value  # expect: PYDX-CPU001
        smoothed.append(total / window)
    return smoothed


def find_spikes(readings, smoothed, window):
    spikes = []
    for offset, mean in enumerate(smoothed):
        raw = readings[offset + window - 1]
        if raw > mean * SPIKE_FACTOR:
            spikes.append(offset + window - 1)
    return spikes


def main():
    workdir = tempfile.mkdtemp(prefix="vibration-")
    path = os.path.join(workdir, "session.f64")
    record_session(path, random.Random(2024), blocks=8)
    start = time.monotonic()
    blocks = spikes_total = 0
    for channels in read_blocks(path):
        if time.monotonic() > start + 6:
            break
        for name, readings in sorted(channels.items()):
            smoothed = moving_average(readings, WINDOW)
            spikes_total += len(find_spikes(readings, smoothed, WINDOW))
        blocks += 1
    print("processed %d blocks, %d spikes flagged" % (blocks, spikes_total))
    os.remove(path)
    os.rmdir(workdir)


if __name__ == "__main__":
    main()
