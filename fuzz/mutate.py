"""Mutations of seed pickles, each stream derived from (seed, index) alone.

So a worker can make stream N without making streams 0..N-1, and a
crashing stream can be made again from its index to save or replay it.
"""

import random
import struct

# Opcodes with a length field: name -> (offset of the field from the
# opcode byte, struct format of the field).
LENGTHS = {
    "FRAME": (1, "<Q"), "BINBYTES8": (1, "<Q"), "BINUNICODE8": (1, "<Q"),
    "BYTEARRAY8": (1, "<Q"), "BINBYTES": (1, "<I"), "BINUNICODE": (1, "<I"),
    "BINSTRING": (1, "<i"), "LONG4": (1, "<i"), "SHORT_BINBYTES": (1, "<B"),
    "SHORT_BINUNICODE": (1, "<B"), "SHORT_BINSTRING": (1, "<B"),
    "LONG1": (1, "<B"),
}
# The 8-byte length opcodes, to forge where a seed has none.
FORGEABLE = [b"\x95", b"\x8e", b"\x8d", b"\x96"]
# Forged lengths: beyond any address space limit (allocation failure),
# just under 2 GiB (fails under the default limit, which the process
# itself already uses part of), and small enough to be allocated.  Not
# 256 MiB - 2 GiB: a Python unpickler that zero-fills a bytearray of the
# forged size (3.13's) would spend a second on each.
HUGE = [2 ** 64 - 1, 2 ** 63 - 1, 2 ** 63, 2 ** 62, 2 ** 48, 2 ** 40,
        2 ** 32 + 1, 2 ** 32, 2 ** 31, 2 ** 31 - 1, 3 << 30, 1 << 24,
        1 << 20]
# Opcode bytes to insert or substitute (all of protocol 0-5 and some junk).
OPCODES = bytearray(b"()+.0123FGIJKLMNPQRSTUVX]abcdeghijlopqrstu}"
                    b"\x80\x81\x82\x83\x84\x85\x86\x87\x88\x89\x8a\x8b"
                    b"\x8c\x8d\x8e\x8f\x90\x91\x92\x93\x94\x95\x96\x97\x98"
                    b"\x99\xff\x00")


def forged_value(rng, fmt, current):
    size = struct.calcsize(fmt)
    if fmt == "<Q":
        value = rng.choice(HUGE + [current + 1, current * 2 + 7,
                                   rng.getrandbits(64)])
    elif fmt in ("<I", "<i"):
        value = rng.choice([2 ** 32 - 1, 2 ** 31 - 1, 2 ** 31, 1 << 24,
                            current + 1, rng.getrandbits(32)])
    else:
        value = rng.getrandbits(8)
    value %= 256 ** size
    return value.to_bytes(size, "little")


def forge_length(rng, data, seed):
    ops = [op for op in seed.ops if op[3] in LENGTHS and op[0] < len(data)]
    if ops and rng.random() < 0.8:
        start, arg, end, name = rng.choice(ops)
        offset, fmt = LENGTHS[name]
        size = struct.calcsize(fmt)
        field = data[start + offset:start + offset + size]
        current = int.from_bytes(field.ljust(size, b"\0"), "little")
        value = forged_value(rng, fmt, current)
        return data[:start + offset] + value + data[start + offset + size:]
    # No length field to forge: put an 8-byte length opcode in.
    at = boundary(rng, seed, data)
    opcode = rng.choice(FORGEABLE)
    value = forged_value(rng, "<Q", 0)
    return data[:at] + opcode + value + rng.choice([b"", b"abc", b"."]) + \
        data[at:]


def boundary(rng, seed, data):
    """An opcode boundary inside DATA."""
    starts = [op[0] for op in seed.ops if op[0] <= len(data)]
    return rng.choice(starts) if starts else rng.randrange(len(data) + 1)


def flip(rng, data, seed):
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if rng.random() < 0.5 and seed.ops:
            # Opcode bytes and the bytes of their arguments' heads.
            pos = rng.choice(seed.ops)[0] + rng.randrange(3)
        else:
            pos = rng.randrange(len(data))
        if pos < len(data):
            if rng.random() < 0.5:
                data[pos] ^= 1 << rng.randrange(8)
            else:
                data[pos] = rng.choice(OPCODES)
    return bytes(data)


def insert(rng, data, seed):
    at = rng.randrange(len(data) + 1)
    if rng.random() < 0.5:
        piece = bytes([rng.choice(OPCODES)])
    else:
        piece = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 9)))
    return data[:at] + piece + data[at:]


def delete(rng, data, seed):
    at = rng.randrange(len(data))
    return data[:at] + data[at + rng.randint(1, 16):]


def truncate(rng, data, seed):
    return data[:rng.randrange(len(data))]


def duplicate(rng, data, seed):
    start, arg, end, name = rng.choice(seed.ops)
    op = data[start:end]
    at = boundary(rng, seed, data) if rng.random() < 0.5 else end
    return data[:at] + op * rng.randint(1, 3) + data[at:]


def drop_opcode(rng, data, seed):
    start, arg, end, name = rng.choice(seed.ops)
    return data[:start] + data[end:]


def splice(rng, data, seed, others):
    other = rng.choice(others)
    i = rng.randrange(len(other.ops))
    j = min(len(other.ops), i + rng.randint(1, 8))
    piece = other.data[other.ops[i][0]:other.ops[j - 1][2]]
    at = boundary(rng, seed, data)
    return data[:at] + piece + data[at:]


MUTATIONS = [flip, insert, delete, truncate, duplicate, drop_opcode,
             forge_length, forge_length, "splice"]


def sweep(seeds, depth=10):
    """(seed number, length): the truncations at every length inside the
    first DEPTH bytes of the first instance of each opcode of each seed,
    so every opcode's length field and argument is cut at every byte.
    (Cutting deeper inside a long argument takes the same path.)"""
    pairs = set()
    for number, seed in enumerate(seeds):
        seen = set()
        for start, arg, end, name in seed.ops:
            if name not in seen:
                seen.add(name)
                pairs.update((number, length) for length in
                             range(start, min(end, start + depth)))
    pairs = sorted(pairs)
    random.Random("sweep").shuffle(pairs)
    return pairs


# Two streams in five are truncations of the sweep, in order: the
# default 20,000 streams run all of them (about 8,000).
SWEEP = 2, 5


def stream(seeds, pairs, fuzz_seed, index):
    """Stream INDEX of the campaign FUZZ_SEED: (bytes, seed, description)."""
    rng = random.Random("%d:%d" % (fuzz_seed, index))
    slot, rest = divmod(index, SWEEP[1])
    if rest < SWEEP[0] and pairs:
        slot = slot * SWEEP[0] + rest + fuzz_seed
        number, length = pairs[slot % len(pairs)]
        seed = seeds[number]
        return seed.data[:length], seed, "truncate@%d" % length
    seed = rng.choice(seeds)
    data = seed.data
    steps = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        if not data:
            break
        mutation = rng.choice(MUTATIONS)
        if mutation == "splice":
            data = splice(rng, data, seed, seeds)
            steps.append("splice")
        else:
            data = mutation(rng, data, seed)
            steps.append(mutation.__name__)
    return data, seed, "+".join(steps)
