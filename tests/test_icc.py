"""ICC profiles: text neutralised, numbers kept, unparseable profiles dropped."""

from __future__ import annotations

import hashlib
import io
import struct

import pytest
from PIL import ImageCms

from wsideid.icc import sanitize_icc
from tests.realdata import real

NAME = "Jane Doe"
MRN = "MRN4455667"


def _desc(ascii_text: str, uni: str = "", mac: str = "") -> bytes:
    a = ascii_text.encode("latin-1") + b"\0"
    u = (uni.encode("utf-16-be") + b"\0\0") if uni else b""
    m = (mac.encode("latin-1") + b"\0").ljust(67, b"\0") if mac else b"\0" * 67
    return (b"desc" + b"\0" * 4 + struct.pack(">I", len(a)) + a + struct.pack(">II", 0, len(u) // 2) + u
            + b"\0\0" + bytes([len(mac) + 1 if mac else 0]) + m)


def _text(t: str) -> bytes:
    return b"text" + b"\0" * 4 + t.encode() + b"\0"


def _mluc(*strings: str) -> bytes:
    recs, blobs, off = b"", b"", 16 + 12 * len(strings)
    for s in strings:
        enc = s.encode("utf-16-be")
        recs += b"enUS" + struct.pack(">II", len(enc), off + len(blobs))
        blobs += enc
    return b"mluc" + b"\0" * 4 + struct.pack(">II", len(strings), 12) + recs + blobs


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ " + b"\0" * 4 + struct.pack(">3i", *(round(v * 65536) for v in (x, y, z)))


def _curv(gamma: float) -> bytes:
    return b"curv" + b"\0" * 4 + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0"


def build_profile(tags: list[tuple[bytes, bytes]], version: int = 0x02100000, with_id: bool = False,
                  gap: bytes = b"", tail: bytes = b"") -> bytes:
    """A small RGB display profile; ``gap`` sits between the tag table and the first tag."""
    table_end = 132 + 12 * len(tags)
    pos = table_end + len(gap)
    pos += -pos % 4
    entries, data = [], b""
    for sig, blob in tags:
        blob += b"\0" * (-len(blob) % 4)
        entries.append((sig, pos + len(data), len(blob)))
        data += blob
    body = b"".join(struct.pack(">4sII", *e) for e in entries)
    size = pos + len(data)
    header = bytearray(128)
    struct.pack_into(">I4sI4s4s4s", header, 0, size, b"lcms", version, b"mntr", b"RGB ", b"XYZ ")
    header[36:40] = b"acsp"
    struct.pack_into(">3i", header, 68, 63190, 65536, 54061)
    prof = bytearray(header + struct.pack(">I", len(tags)) + body + gap)
    prof += b"\0" * (pos - len(prof)) + data
    if with_id:
        tmp = bytearray(prof)
        tmp[44:48] = tmp[64:68] = b"\0" * 4
        prof[84:100] = hashlib.md5(bytes(tmp)).digest()
    return bytes(prof) + tail


def _rgb_tags(desc: bytes, cprt: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"desc", desc), (b"cprt", cprt), (b"wtpt", _xyz(0.9642, 1.0, 0.8249)),
            (b"rXYZ", _xyz(0.4361, 0.2225, 0.0139)), (b"gXYZ", _xyz(0.3851, 0.7169, 0.0971)),
            (b"bXYZ", _xyz(0.1431, 0.0606, 0.7141)), (b"rTRC", _curv(2.2)), (b"gTRC", _curv(2.2)),
            (b"bTRC", _curv(2.2))]


def _opens(profile: bytes) -> str:
    return ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(profile))).strip()


def _absent(blob: bytes, *texts: str) -> None:
    low = blob.lower()
    for t in texts:
        for enc in ("latin-1", "utf-16-be", "utf-16-le"):
            assert t.lower().encode(enc) not in low, (t, enc)


def test_v2_texts_replaced_numbers_kept():
    raw = build_profile(_rgb_tags(_desc(f"Monitor of {NAME}", uni=f"Monitor of {NAME}", mac=MRN),
                                  _text(f"(c) St Elsewhere {MRN}")) +
                        [(b"dmnd", _desc("Path lab PC-7"))])
    assert _opens(raw) == f"Monitor of {NAME}"
    clean, removed = sanitize_icc(raw)
    assert len(clean) == len(raw)
    _absent(clean, NAME, MRN, "St Elsewhere", "Path lab")
    assert {f"Monitor of {NAME}", MRN, f"(c) St Elsewhere {MRN}", "Path lab PC-7"} <= set(removed)
    assert _opens(clean) == "Colour profile"[:len(f"Monitor of {NAME}")]
    # colour science unchanged: the XYZ and curve tags are byte for byte the same
    for sig in (b"wtpt", b"rXYZ", b"rTRC"):
        i = raw.index(sig)
        off, size = struct.unpack(">II", raw[i + 4:i + 12])
        assert clean[off:off + size] == raw[off:off + size]


def test_v4_mluc_and_profile_id_recomputed():
    raw = build_profile(_rgb_tags(_mluc(f"{NAME} display", "Ecran de Jane"), _mluc(f"Owner {MRN}")),
                        version=0x04300000, with_id=True)
    clean, removed = sanitize_icc(raw)
    _absent(clean, NAME, MRN, "Jane")
    assert set(removed) == {f"{NAME} display", "Ecran de Jane", f"Owner {MRN}"}
    tmp = bytearray(clean)
    tmp[44:48] = b"\0" * 4
    tmp[64:68] = b"\0" * 4
    tmp[84:100] = b"\0" * 16
    assert clean[84:100] == hashlib.md5(bytes(tmp)).digest() != raw[84:100]
    assert _opens(clean).startswith("Colour")


def test_zero_profile_id_stays_zero_and_result_is_idempotent():
    raw = build_profile(_rgb_tags(_desc(NAME), _text(MRN)))
    clean, _ = sanitize_icc(raw)
    assert clean[84:100] == b"\0" * 16
    again, removed = sanitize_icc(clean)
    assert again == clean and removed == []


def test_unknown_types_gaps_and_tail_are_emptied():
    ncl2 = b"ncl2" + b"\0" * 4 + struct.pack(">II", 0, 1) + b"Jane".ljust(32, b"\0") + b"Doe".ljust(32, b"\0")
    ncl2 += b"RedDOE^JANE".ljust(32, b"\0") + b"\0" * 6
    raw = build_profile(_rgb_tags(_desc("sRGB IEC61966-2.1"), _text("No copyright, use freely"))
                        + [(b"ncol", ncl2)], gap=b"gap DOE^JANE", tail=b"tail DOE^JANE")
    clean, removed = sanitize_icc(raw)
    _absent(clean, "DOE^JANE", "Jane", "Doe")
    assert len(clean) == len(raw) - len(b"tail DOE^JANE")
    assert removed == []  # standard texts kept; the private structure is emptied, not read
    assert _opens(clean) == "sRGB IEC61966-2.1"


def test_hidden_text_after_the_nul_of_a_standard_text():
    raw = build_profile(_rgb_tags(_desc("sRGB IEC61966-2.1"), _text("No copyright, use freely")))
    i = raw.index(b"sRGB IEC61966-2.1\0") + len("sRGB IEC61966-2.1\0")
    # widen the ASCII count to cover a name after the NUL
    count_at = raw.index(b"sRGB IEC61966-2.1\0") - 4
    hidden = bytearray(raw)
    hidden[count_at:count_at + 4] = struct.pack(">I", 18 + 8)
    hidden[i:i + 8] = b"DOE^JANE"
    clean, _ = sanitize_icc(bytes(hidden))
    _absent(clean, "DOE^JANE")


@pytest.mark.parametrize("mangle", [
    lambda p: p[:100],                                        # truncated header
    lambda p: p[:36] + b"xxxx" + p[40:],                      # no 'acsp'
    lambda p: struct.pack(">I", len(p) + 10) + p[4:],         # size past the data
    lambda p: p[:128] + struct.pack(">I", 10_000) + p[132:],  # tag table too long
    lambda p: p[:136] + struct.pack(">I", len(p) - 4) + p[140:],  # first tag past the end
])
def test_unparseable_profiles_are_dropped(mangle):
    raw = build_profile(_rgb_tags(_desc(NAME), _text(MRN)))
    assert sanitize_icc(mangle(raw)) == (b"", [])


def test_real_srgb_profile_keeps_its_colour_science():
    """The real sRGB profile keeps every tag byte and its enumerations; only the
    header's identity fields (maker, model, creator, date) become neutral."""
    import tifffile
    path = real("svs/tcga-cr-7395-01a-01-ts1.svs")
    with tifffile.TiffFile(path) as t:
        raw = bytes(t.pages[0].tags[34675].value)
    clean, removed = sanitize_icc(raw)
    assert removed == [] and len(clean) == len(raw)
    assert clean[128:] == raw[128:]                      # tag table and every tag
    assert clean[:24] == raw[:24] and clean[36:48] == raw[36:48] and clean[64:80] == raw[64:80]
    assert clean[48:64] == b"\0" * 16 and clean[80:84] == b"\0" * 4
    assert sanitize_icc(clean) == (clean, [])            # idempotent


def test_header_identity_fields_are_neutralised():
    """Four-letter header fields and the creation date can carry a name and a date (found by the red team)."""
    raw = bytearray(build_profile(_rgb_tags(_desc("sRGB"), _text("No copyright, use freely"))))
    raw[4:8], raw[40:44], raw[48:52], raw[52:56], raw[56:64], raw[80:84] = \
        b"DOEJ", b"JANE", b"DOEJ", b"JANE", b"MRN44556", b"SMIT"
    raw[24:36] = struct.pack(">6H", 2019, 12, 31, 8, 30, 0)
    raw[44:48] = b"JOHN"
    clean, _ = sanitize_icc(bytes(raw))
    for text in (b"DOEJ", b"JANE", b"MRN4", b"SMIT", b"JOHN"):
        assert text not in clean[:128]
    assert struct.unpack(">6H", clean[24:36]) == (2000, 1, 1, 0, 0, 0)


def test_header_enumerations_are_required():
    raw = bytearray(build_profile(_rgb_tags(_desc("sRGB"), _text("No copyright, use freely"))))
    raw[12:16] = b"DOE "
    assert sanitize_icc(bytes(raw)) == (b"", [])
