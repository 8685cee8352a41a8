# corpus: healthy
# story: a satellite ground station decodes each pass's captured downlink: a thin Python loop walks the capture frame by frame with struct.unpack_from, checks zlib.crc32, descrambles with bytes.translate and inflates with zlib, then sorts the tiles by sequence number, joins the image strip and verifies its SHA-256
# run: launch
# forbid: PYDX-CPU001
# forbid: PYDX-CPU002
"""Reassemble image strips from captured satellite downlink frames, one pass at a time."""
import hashlib
import random
import struct
import time
import zlib

SYNC = b"\x1a\xcf\xfc\x1d"
HEADER = struct.Struct(">4sIIH")  # sync marker, sequence number, payload length, tile column
TRAILER = struct.Struct(">I")     # CRC-32 of header and payload
TILE = 64 * 1024
SCRAMBLE = bytes((b * 167 + 13) % 256 for b in range(256))  # the on-board byte scrambler
UNSCRAMBLE = bytes(SCRAMBLE.index(b) for b in range(256))
LEVELS = bytes((b // 16) * 16 for b in range(256))          # a 16-grey-level imager


def image_strip(rng, tiles):
    """Sensor data: noise quantised to 16 grey levels, so it compresses about 2:1."""
    size = tiles * TILE
    return rng.getrandbits(8 * size).to_bytes(size, "little").translate(LEVELS)


def downlink_frames(strip):
    frames = []
    for seq, offset in enumerate(range(0, len(strip), TILE)):
        payload = zlib.compress(strip[offset:offset + TILE], 6).translate(SCRAMBLE)
        head = HEADER.pack(SYNC, seq, len(payload), seq % 8)
        frames.append(head + payload + TRAILER.pack(zlib.crc32(head + payload)))
    return frames


def capture_pass(rng, frames):
    """What the receiver recorded: frames out of order, a few repeated, a few hit by noise."""
    order = list(range(len(frames))) + rng.sample(range(len(frames)), len(frames) // 20)
    rng.shuffle(order)
    capture = bytearray(b"".join(frames[n] for n in order))
    for _ in range(rng.choice((0, 0, 1, 2))):
        capture[rng.randrange(len(capture))] ^= 0x40
    return bytes(capture)


def decode_pass(capture):
    view = memoryview(capture)
    tiles = {}
    corrupt = 0
    offset = 0
    while offset < len(capture):
        sync, seq, length, column = HEADER.unpack_from(capture, offset)
        if sync != SYNC:  # lost lock: search for the next sync marker
            offset = capture.find(SYNC, offset + 1)
            if offset < 0:
                break
            corrupt += 1
            continue
        end = offset + HEADER.size + length
        if end + TRAILER.size > len(capture) or zlib.crc32(view[offset:end]) != TRAILER.unpack_from(capture, end)[0]:
            corrupt += 1
        elif seq not in tiles:
            tiles[seq] = zlib.decompress(view[offset + HEADER.size:end].tobytes().translate(UNSCRAMBLE))
        offset = end + TRAILER.size
    return tiles, corrupt


def main():
    rng = random.Random(2041)
    strip = image_strip(rng, 64)
    expected = hashlib.sha256(strip).hexdigest()
    frames = downlink_frames(strip)
    start = time.monotonic()
    passes = complete = lost_frames = 0
    while time.monotonic() < start + 5.5:
        capture = capture_pass(rng, frames)
        tiles, corrupt = decode_pass(capture)
        lost_frames += corrupt
        image = b"".join(tiles[seq] for seq in sorted(tiles))
        passes += 1
        if len(tiles) == len(frames) and hashlib.sha256(image).hexdigest() == expected:
            complete += 1
    print("%d passes decoded (%d MB each), %d complete strips, %d corrupt frames dropped"
          % (passes, len(strip) // 2 ** 20, complete, lost_frames))


if __name__ == "__main__":
    main()
