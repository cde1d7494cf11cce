"""Does a cleaned stream decode to what its source decoded to?

The verifier asks this of edited streams whose only change is the stream
rule (segments dropped, tables pruned, headers rebuilt). Baseline JPEG is
compared in the coefficient domain with the project's own decoder
(quantised coefficients and the quantisation tables each component uses,
plus the colour hints), which is exact and independent of any IDCT.
Progressive, lossless and JPEG-LS streams, which that decoder does not read,
and JPEG 2000 are compared as decoded pixels from imagecodecs (libjpeg-turbo,
CharLS, OpenJPEG): an independent decoder, exact equality.
"""

from __future__ import annotations

import numpy as np

from .structure import SOF_BASELINE, SOF_EXTENDED, UnsafeJpeg, clean


def _baseline(data: bytes, tables: bytes | None, height: int | None):
    from .decode import coefficients
    from .markers import parse
    hdr = parse(data, tables, height)
    quant = [hdr.quant[c.tq] for c in hdr.components]
    return coefficients(data, tables, height), quant, hdr.adobe_transform, hdr.jfif


def _pixels(data: bytes, tables: bytes | None, kind: str):
    import imagecodecs
    if kind == "j2k":
        return imagecodecs.jpeg2k_decode(data)
    if data[:4] == b"\xff\xd8\xff\xf7":
        return imagecodecs.jpegls_decode(data)
    if kind == "ljpeg":
        return imagecodecs.ljpeg_decode(data)
    return imagecodecs.jpeg8_decode(data, tables=tables)


def same_decoding(src: bytes, out: bytes, src_tables: bytes | None = None, out_tables: bytes | None = None,
                  height: int | None = None, kind: str = "jpeg") -> str | None:
    """None when ``out`` decodes exactly as ``src`` does, else what differs (one line).

    Streams larger than DECODE_MAX_BYTES (whole-level NDPI strips, big strips) are not
    decoded, which would take minutes and gigabytes in Python: they must be
    exactly the rule's reduction of the source, using the same table bytes.
    """
    if len(src) > DECODE_MAX_BYTES:
        return _same_reduction(src, out, src_tables, out_tables, kind)
    try:
        if kind == "jpeg":
            sof = clean(src).sof if src_tables is None else clean(src, _keys(src_tables)).sof
            if sof in (SOF_BASELINE, SOF_EXTENDED):
                a, b = _baseline(src, src_tables, height), _baseline(out, out_tables, height)
                if len(a[0]) != len(b[0]) or any(not np.array_equal(x, y) for x, y in zip(a[0], b[0])):
                    return "DCT coefficients differ"
                if a[1:] != b[1:]:
                    return "quantisation tables or colour hints differ"
                return None
            if sof == 0xC3:
                kind = "ljpeg"
        pa, pb = _pixels(src, src_tables, kind), _pixels(out, out_tables, kind)
    except UnsafeJpeg as exc:
        return f"does not parse ({exc})"
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a difference
        return f"does not decode ({type(exc).__name__})"
    if pa.shape != pb.shape or not np.array_equal(pa, pb):
        return "decoded pixels differ"
    return None


DECODE_MAX_BYTES = 256 << 10


def _same_reduction(src: bytes, out: bytes, src_tables: bytes | None, out_tables: bytes | None,
                    kind: str) -> str | None:
    from . import j2k
    from .structure import _Parser
    try:
        if kind == "j2k":
            return None if j2k.clean(src) == out else "not the rule's reduction of its source"
        c = clean(src, _keys(src_tables) if src_tables is not None else frozenset())
        if c.data != out:
            return "not the rule's reduction of its source"
        bodies = []
        for blob in (src_tables, out_tables):
            p = _Parser(bytes(blob or b"\xff\xd8\xff\xd9"), frozenset(), True)
            p.run()
            bodies.append({k: t.body for k, t in p.current.items() if t is not None})
        if any(bodies[0].get(k) != bodies[1].get(k) for k in c.external):
            return "a table it uses from JPEGTables differs"
    except Exception as exc:  # noqa: BLE001 - any parse failure is a difference
        return f"does not parse ({type(exc).__name__})"
    return None


def _keys(tables: bytes):
    from .structure import table_keys
    return table_keys(tables)


def entropy_slack(data: bytes, tables: bytes | None = None, height: int | None = None) -> int:
    """Whole bytes between the last block of a restart interval and its marker, at most over intervals.

    A decoder stops reading an interval after its last block and skips to
    the next marker, so bytes there are never seen: a place where text can
    hide inside the entropy-coded data. Encoders pad to the byte boundary
    with 1-bits, so a conforming stream has 0. Baseline only (the project's
    Huffman decoder); raises JpegBlankingError for anything else.
    """
    from . import bits
    from .entropy import scan_positions, slot_tables, split_intervals
    from .layout import layout
    from .markers import parse
    hdr = parse(data, tables, height)
    lay = layout(hdr)
    st = slot_tables(hdr, lay)
    worst = 0
    for iv in split_intervals(data, hdr, lay):
        buf = bits.unstuff(data[iv.start:iv.end])
        end = scan_positions(buf, iv.n_mcus, st, len(hdr.scan_components))[3]
        worst = max(worst, len(buf) - (end + 7) // 8)
    return worst
