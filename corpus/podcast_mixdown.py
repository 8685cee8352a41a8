# corpus: planted
# story: a podcast network's publishing job mixes each episode's voice stem over its music bed, ducking the music while the host speaks (from the editor's segment markers), sample by sample over the tuples struct.unpack returns for the WAV frames
# run: launch
"""Mix voice and music stems into the published episode, ducking the music under speech."""
import math
import os
import random
import shutil
import struct
import tempfile
import time
import wave

RATE = 16000
HOP = 400  # the gain envelope has one value per 25 ms
VOICE_GAIN = 0.9
MUSIC_BED = 0.6
MUSIC_DUCKED = 0.12
RAMP_HOPS = 6  # attack/release of the ducking, in hops
EPISODE_SECONDS = 75


def snippet(freqs, seconds, amplitude, rng):
    """A short synthetic sound (the stand-in for studio recordings)."""
    count = int(RATE * seconds)
    fade = min(400, count // 4)
    samples = []
    for n in range(count):
        envelope = min(1.0, n / fade, (count - n) / fade)
        value = sum(math.sin(2 * math.pi * f * n / RATE) for f in freqs) / len(freqs)
        samples.append(int(amplitude * envelope * (value + rng.uniform(-0.05, 0.05))))
    return struct.pack("<%dh" % count, *samples)


def record_stems(folder, rng, number, syllables, bars, silence):
    """Write one episode's voice and music stems as 16-bit mono WAV files."""
    voice, markers, clock = [], [], 0.0
    while clock < EPISODE_SECONDS:
        if rng.random() < 0.7:  # the host speaks for a while
            length = rng.randint(20, 120)
            voice.extend(rng.choice(syllables) for _ in range(length))
            markers.append((clock, clock + length * 0.2))
            clock += length * 0.2
        else:
            voice.extend([silence] * 10)
            clock += 2.0
    music = [rng.choice(bars) for _ in range(int(clock) + 1)]
    paths = []
    for name, chunks in (("voice", voice), ("music", music)):
        path = os.path.join(folder, "ep%03d-%s.wav" % (number, name))
        with wave.open(path, "wb") as stem:
            stem.setnchannels(1)
            stem.setsampwidth(2)
            stem.setframerate(RATE)
            stem.writeframes(b"".join(chunks))
        paths.append(path)
    return paths[0], paths[1], markers


def read_stem(path):
    with wave.open(path, "rb") as stem:
        count = stem.getnframes()
        return struct.unpack("<%dh" % count, stem.readframes(count))


def ducking_envelope(markers, hops):
    """Music gain per hop: ducked while the host speaks, ramping smoothly in and out."""
    target = [MUSIC_BED] * hops
    for start, end in markers:
        for hop in range(int(start * RATE) // HOP, min(hops, int(end * RATE) // HOP + 1)):
            target[hop] = MUSIC_DUCKED
    envelope, gain = [], MUSIC_BED
    for wanted in target:
        gain += (wanted - gain) / RAMP_HOPS
        envelope.append(gain)
    return envelope


def mix(voice, music, envelope):
    mixed = [0] * len(voice)
    for i in range(len(voice)):
        sample = voice[i] * VOICE_GAIN + music[i] * envelope[i // HOP]  # expect: PYDX-CPU001
        if sample > 32767:
            sample = 32767
        elif sample < -32768:
            sample = -32768
        mixed[i] = int(sample)
    return mixed


def publish(path, mixed):
    with wave.open(path, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(struct.pack("<%dh" % len(mixed), *mixed))


def main():
    rng = random.Random(31)
    folder = tempfile.mkdtemp(prefix="mixdown-")
    syllables = [snippet([rng.uniform(110, 260) * k for k in (1, 2, 3)], 0.2, 9000, rng) for _ in range(8)]
    bars = [snippet([base, base * 1.25, base * 1.5], 1.0, 7000, rng) for base in (196.0, 220.0, 261.6)]
    silence = b"\0\0" * int(RATE * 0.2)
    start = time.monotonic()
    episodes = seconds = 0
    try:
        while time.monotonic() < start + 6:
            episodes += 1
            voice_path, music_path, markers = record_stems(folder, rng, episodes, syllables, bars, silence)
            voice, music = read_stem(voice_path), read_stem(music_path)
            envelope = ducking_envelope(markers, len(voice) // HOP + 1)
            mixed = mix(voice, music, envelope)
            publish(os.path.join(folder, "ep%03d.wav" % episodes), mixed)
            seconds += len(mixed) / RATE
            peak = max(max(mixed), -min(mixed))
            print("episode %d: %.0f s, %d speech segments, peak %.1f dBFS"
                  % (episodes, len(mixed) / RATE, len(markers), 20 * math.log10(peak / 32768)))
    finally:
        shutil.rmtree(folder)
    print("mixed %d episodes, %.1f minutes of audio" % (episodes, seconds / 60))


if __name__ == "__main__":
    main()
