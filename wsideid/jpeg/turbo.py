"""Flat blocks in a baseline JPEG, coded by libjpeg-turbo (the C path of blanking).

Blanking part of a tile by walking its Huffman codes in pure Python costs about 5 ms per
256 x 256 tile, nearly all of the time a 2000 x 2000 px region takes. libjpeg-turbo's
lossless transform does the same job in C: ``tjTransform`` decodes the coefficients once
and codes them again for each transform asked for; a custom filter, which libjpeg calls
with every row of blocks of every component between the two, may change them. This module
asks for two transforms of one decode: no change at all, and the given blocks made flat
(DC only). The first is the proof the caller needs (``transcode.transcoded``): only if
libjpeg's coding of the unchanged coefficients is the source's entropy data byte for byte
(its decoder read every block exactly and its encoder uses the source's tables) is the
second one used.

The TurboJPEG API is ``libturbojpeg.so.0`` (apt ``libturbojpeg0``, installed by
scripts/setup.sh; wsidicom needs it too), bound here with ctypes against its documented 2.x
signatures (``tjInitTransform``, ``tjTransform``, ``tjFree``, ``tjtransform`` with
``customFilter``), which 3.x keeps. The library is optional: ``blank_blocks`` returns None
when it is missing, refuses the stream, or warns (TJFLAG_STOPONWARNING makes a warning,
such as corrupt data, an error), and the caller walks the data in Python instead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading

import numpy as np

TJXOP_NONE = 0
TJXOPT_COPYNONE = 64
TJFLAG_STOPONWARNING = 8192
# The soname first: ctypes.util.find_library runs ldconfig (a subprocess, tens of ms).
_LIBRARY_NAMES = ("libturbojpeg.so.0", "turbojpeg")


class _Region(ctypes.Structure):
    _fields_ = [("x", ctypes.c_int), ("y", ctypes.c_int), ("w", ctypes.c_int), ("h", ctypes.c_int)]


class _Transform(ctypes.Structure):
    """``tjtransform``; its filter gets the coefficients (``short *``) as an address (an int),
    which ``ctypes.memmove`` writes to directly."""


_FILTER = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, _Region, _Region, ctypes.c_int, ctypes.c_int,
                           ctypes.POINTER(_Transform))
_Transform._fields_ = [("r", _Region), ("op", ctypes.c_int), ("options", ctypes.c_int),
                       ("data", ctypes.c_void_p), ("customFilter", _FILTER)]

_lib = None
_lib_loaded = False
_lib_lock = threading.Lock()
_local = threading.local()


def _library():
    """The loaded libturbojpeg with argument types set, or None."""
    global _lib, _lib_loaded
    with _lib_lock:
        if not _lib_loaded:
            _lib_loaded = True
            for name in _LIBRARY_NAMES:
                path = ctypes.util.find_library(name) if "." not in name else name
                if not path:
                    continue
                try:
                    lib = ctypes.CDLL(path)
                    lib.tjInitTransform.restype = ctypes.c_void_p
                    lib.tjInitTransform.argtypes = []
                    lib.tjTransform.restype = ctypes.c_int
                    lib.tjTransform.argtypes = [
                        ctypes.c_void_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_int,
                        ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_ulong),
                        ctypes.POINTER(_Transform), ctypes.c_int,
                    ]
                    lib.tjFree.restype = None
                    lib.tjFree.argtypes = [ctypes.c_void_p]
                    lib.tjDestroy.restype = ctypes.c_int
                    lib.tjDestroy.argtypes = [ctypes.c_void_p]
                except (OSError, AttributeError):
                    continue
                _lib = lib
                break
        return _lib


def available() -> bool:
    """Whether libturbojpeg could be loaded."""
    return _library() is not None


class _Handle:
    """A TurboJPEG transform handle, destroyed with the thread that made it (a handle is not
    for concurrent use, so each thread has its own)."""

    def __init__(self, lib) -> None:
        self.lib = lib
        self.value = lib.tjInitTransform()

    def __del__(self) -> None:
        if self.value:
            self.lib.tjDestroy(self.value)
            self.value = None


def _handle(lib) -> int | None:
    h = getattr(_local, "handle", None)
    if h is None:
        h = _local.handle = _Handle(lib)
    return h.value or None


def blank_blocks(stream: bytes, ranges: list[dict[int, list[tuple[int, int]]]],
                 dc: list[int], max_step: int = 2047) -> tuple[bytes, bytes] | None:
    """Two lossless transcodes of a complete baseline JPEG by libjpeg-turbo from one decode:
    the image as it is, and the image with the given blocks flat. Returns both JPEG streams
    (the first lets the caller prove that libjpeg codes this image exactly as its source
    does), or None when the library is missing or refused or warned.

    ``ranges[c]``: block row -> [(first block column, end column), ...] of frame component c
    to make flat: DC ``dc[c]``, every AC coefficient 0. Columns past the component's width in
    blocks are libjpeg's to fill (it makes the padding blocks of the last MCU column itself).

    Refused (None) when a source DC value lies more than ``max_step`` from its component's
    new DC: a DC difference the blanked coding would need could then exceed what baseline
    codes (libjpeg-turbo's SIMD encoder does not check, it would write a corrupt stream).
    Every other difference of the blanked coding is 0 or one the source already codes.
    """
    lib = _library()
    if lib is None:
        return None
    handle = _handle(lib)
    if handle is None:
        return None
    widest = max((x1 for rows in ranges for spans in rows.values() for _, x1 in spans), default=0)
    flat = []
    for value in dc:
        block = np.zeros((max(widest, 1), 64), dtype=np.int16)
        block[:, 0] = value
        flat.append(block)
    addr = [b.ctypes.data for b in flat]
    bad = []

    def fill(coeffs, array_region, plane_region, component, _t, _transform) -> int:
        try:
            if component >= len(ranges):
                bad.append(component)
                return -1
            width = array_region.w >> 3
            if array_region.y < plane_region.h:
                dcs = (ctypes.c_short * (64 * width)).from_address(coeffs)[::64]
                if min(dcs) < dc[component] - max_step or max(dcs) > dc[component] + max_step:
                    bad.append(component)
                    return -1
            spans = ranges[component].get(array_region.y >> 3)
            if spans and array_region.y < plane_region.h:
                for x0, x1 in spans:
                    x1 = min(x1, width)
                    if x1 > x0:
                        ctypes.memmove(coeffs + 128 * x0, addr[component], 128 * (x1 - x0))
            return 0
        except BaseException:  # an exception must not cross the C frames; report and stop
            bad.append(component)
            return -1

    callback = _FILTER(fill)
    ts = (_Transform * 2)()
    for t in ts:
        t.op = TJXOP_NONE
        t.options = TJXOPT_COPYNONE
    ts[1].customFilter = callback
    dst = (ctypes.c_void_p * 2)()
    sizes = (ctypes.c_ulong * 2)()
    rc = lib.tjTransform(handle, stream, len(stream), 2, dst, sizes, ts,
                         TJFLAG_STOPONWARNING)
    out = []
    for ptr, size in zip(dst, sizes):
        if ptr:
            out.append(ctypes.string_at(ptr, size))
            lib.tjFree(ptr)
    if rc != 0 or bad or len(out) != 2:
        return None
    return out[0], out[1]
