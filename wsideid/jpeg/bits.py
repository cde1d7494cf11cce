"""Bit-level helpers for entropy-coded JPEG data.

The decoder works on *unstuffed* bytes (0xFF00 -> 0xFF) of one restart
interval and reads them through a list of 32-bit big-endian windows, one per
byte offset: peeking 16 bits at any bit position is then one list index and
two integer operations, which is the cheapest random access pure Python has.
The encoder side works on strings of '0'/'1': copying an untouched span of
the original bits is a string slice and the final conversion to bytes runs
in C (int(s, 2) is linear for base 2).
"""

from __future__ import annotations

import numpy as np

# Zero bytes appended behind the data so that a decoder running off the end
# of a hostile stream reads zeros instead of raising IndexError; the decoder
# checks its position against the real length after every block. One block
# can consume at most 64 * (16 + 11) bits, well below the padding.
GUARD_BYTES = 512


def unstuff(raw: bytes) -> bytes:
    """Entropy bytes of one interval without stuffing and trailing fill bytes."""
    return raw.rstrip(b"\xff").replace(b"\xff\x00", b"\xff")


def stuff(data: bytes) -> bytes:
    """Insert the 0x00 after every 0xFF that T.81 F.1.2.3 requires."""
    return data.replace(b"\xff", b"\xff\x00")


def windows(buf: bytes) -> list[int]:
    """32-bit window starting at every byte of ``buf`` (plus guard bytes)."""
    a = np.frombuffer(buf + bytes(GUARD_BYTES + 3), dtype=np.uint8).astype(np.uint32)
    n = len(buf) + GUARD_BYTES
    w = (a[:n] << 24) | (a[1 : n + 1] << 16) | (a[2 : n + 2] << 8) | a[3 : n + 3]
    return w.tolist()


def to_bitstring(buf: bytes) -> str:
    """'0'/'1' string of all bits of ``buf``, most significant first."""
    if not buf:
        return ""
    return format(int.from_bytes(buf, "big"), f"0{8 * len(buf)}b")


def from_bitstring(bits: str) -> bytes:
    """Pack a '0'/'1' string into stuffed entropy bytes, padding with 1-bits.

    T.81 F.1.2.3: the last byte before a marker is filled with 1-bits.
    """
    pad = -len(bits) % 8
    if pad:
        bits += "1" * pad
    if not bits:
        return b""
    return stuff(int(bits, 2).to_bytes(len(bits) // 8, "big"))


def value_bits(value: int, size: int) -> str:
    """The ``size`` extra bits T.81 F.1.2.1 uses to code ``value``."""
    if size == 0:
        return ""
    if value < 0:
        value += (1 << size) - 1
    return format(value, f"0{size}b")


def category(value: int) -> int:
    """Magnitude category (SSSS) of a DC difference or AC value."""
    return abs(value).bit_length()
