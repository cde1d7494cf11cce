"""ICC colour profiles: keep the colour science, neutralise the text.

An ICC profile is embedded in TIFF (tag 34675) and DICOM (0028,2000)
slides so that viewers show the scanner's colours. Its numbers (white
point, primaries, tone curves, LUTs) are what a reader needs; its text
(profile description, copyright, device maker and model descriptions,
viewing-condition description, calibration notes) is free text that a
scanner, a lab or a colour tool wrote, and can hold a site name, an
operator or a patient. ``sanitize_icc`` therefore rebuilds the profile:

- the header and tag table are parsed (ICC.1:2022, clause 7); a profile
  that does not parse is dropped (empty bytes): fail closed;
- text-bearing tag types (``desc`` textDescriptionType, ``text``,
  ``mluc``) get a fixed neutral text of the same or shorter length, so no
  offset moves; well-known standard texts (the sRGB profile's) are kept;
- tags of numeric types are copied with their slack and reserved bytes
  zeroed; tags of any other type (named colours, dictionaries, vendor
  private types, profile sequences: structures that embed names) have
  their payload zeroed, which leaves an empty, valid structure;
- bytes not covered by the header, the tag table or a tag (padding,
  gaps, a tail past the declared size) are zeroed or cut;
- the profile ID (an MD5 over the profile with flags, rendering intent
  and ID zeroed, clause 7.2.18) is recomputed when the source had one.

The removed texts are returned so the verifier can search the output for
them (a name in the profile description must not reappear elsewhere).
The result is idempotent: sanitising a sanitised profile changes nothing.
"""

from __future__ import annotations

import hashlib
import re
import struct

HEADER_SIZE = 128
MAX_TAGS = 256
MAX_PROFILE = 64 << 20
# Texts of the standard sRGB profile (HP/Microsoft, IEC 61966-2.1), found in
# millions of files; they name no one and are kept so the profile stays itself.
STANDARD_TEXTS = frozenset({
    "sRGB IEC61966-2.1", "sRGB IEC61966-2-1 black scaled", "sRGB IEC61966-2.1 (Equivalent)",
    "IEC http://www.iec.ch", "IEC 61966-2.1 Default RGB colour space - sRGB",
    "Reference Viewing Condition in IEC61966-2.1", "Copyright (c) 1998 Hewlett-Packard Company",
    "sRGB", "sRGB built-in", "No copyright, use freely",
})
# Scanner calibration profile names (Aperio's "ScanScope v1"): product names,
# also written as the SVS "ICC Profile" key, which the profile keeps by pattern.
STANDARD_PATTERN = re.compile(r"ScanScope v\d{1,2}", re.ASCII)
# Neutral text per tag signature (truncated to the original's length).
NEUTRAL = {b"desc": "Colour profile", b"cprt": "Copyright removed"}
DEFAULT_NEUTRAL = "Removed"
TEXT_TYPES = {b"desc", b"text", b"mluc"}
# Tag types that hold only numbers (or 4-byte signatures): copied as numbers.
NUMERIC_TYPES = {b"XYZ ", b"curv", b"para", b"sf32", b"uf32", b"ui08", b"ui16", b"ui32", b"ui64",
                 b"mft1", b"mft2", b"mAB ", b"mBA ", b"mpet", b"meas", b"view", b"chrm", b"clro",
                 b"sig ", b"rcs2", b"dtim", b"vcgt"}
_PARA_PARAMS = {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}
# Round 5: numbers that spell text. The numeric payload of these types (from byte 8) is read as
# these numbers for words (``textbytes.words_in_numbers``); a profile whose numbers spell a word
# is dropped. LUT types (mft1/mft2/mAB/mBA/mpet/vcgt) are not read: their tables are too often
# letter-like by chance (a known gap, docs/threat-model.md).
_WORD_DTYPES = {b"XYZ ": ">i4", b"sf32": ">i4", b"uf32": ">u4", b"ui16": ">u2", b"ui32": ">u4", b"ui64": ">u8",
                b"ui08": None, b"para": ">i4", b"meas": ">u4", b"view": ">i4", b"chrm": ">u4", b"clro": None}
# signatureType values the standard registers (technology, colorimetric intent image state,
# rendering intent gamut): anything else in a 'sig ' tag is four free letters, so the profile goes.
SIGNATURE_VALUES = frozenset(x.encode() for x in (
    "fscn", "dcam", "rscn", "ijet", "twax", "epho", "esta", "dsub", "rpho", "gprn", "vidm", "vidc", "pjtv",
    "CRT ", "PMD ", "AMD ", "KPCD", "imgs", "grav", "offs", "silk", "flex", "mpfs", "mpfr", "dmpc", "dcpj",
    "scoe", "sape", "fpce", "rhoc", "rpoc", "prmg")) | {b"\0\0\0\0"}
# Tag signatures of the ICC registry (v2 and v4) and the private ones common in the wild; a tag
# under any other signature carries four letters the file chose in the tag table: dropped.
TAG_SIGNATURES = frozenset(x.encode() for x in (
    "A2B0", "A2B1", "A2B2", "A2B3", "A2M0", "B2A0", "B2A1", "B2A2", "B2A3", "B2D0", "B2D1", "B2D2", "B2D3",
    "D2B0", "D2B1", "D2B2", "D2B3", "bXYZ", "bTRC", "bkpt", "bfd ", "calt", "targ", "chad", "chrm", "cicp",
    "clro", "clrt", "clot", "ciis", "cprt", "crdi", "dmnd", "dmdd", "devs", "gamt", "kTRC", "gXYZ", "gTRC",
    "lumi", "meas", "meta", "mcta", "mctb", "mcts", "mctl", "wtpt", "ncol", "ncl2", "resp", "rig0", "rig2",
    "pre0", "pre1", "pre2", "desc", "pseq", "psid", "psd0", "psd1", "psd2", "psd3", "ps2s", "ps2i", "rXYZ",
    "rTRC", "scrd", "scrn", "tech", "ptcn", "vued", "view", "vcgt", "dscm", "mmod", "ndin", "DevD", "CIED",
    "Pmtr", "MS00", "aarg", "aagg", "aabg", "arts"))


class IccError(ValueError):
    """The bytes are not an ICC profile we can parse (the caller drops it)."""


def _text_ascii(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("latin-1")


def _utf16(raw: bytes) -> str:
    return raw[: len(raw) // 2 * 2].decode("utf-16-be", errors="replace").split("\0", 1)[0]


def _neutral(sig: bytes, room: int) -> str:
    """The neutral text for a tag, cut to ``room`` characters."""
    return NEUTRAL.get(sig, DEFAULT_NEUTRAL)[:max(room, 0)]


def _keep_text(text: str) -> bool:
    return text in STANDARD_TEXTS or bool(STANDARD_PATTERN.fullmatch(text))


def _sanitize_text(sig: bytes, data: bytes, removed: list[str]) -> bytes:
    """A ``text`` tag: 'text', 4 reserved bytes, NUL-terminated ASCII."""
    body = data[8:]
    old = _text_ascii(body)
    new = old if _keep_text(old) else _neutral(sig, len(body) - 1)
    if new != old and old.strip():
        removed.append(old)
    out = bytearray(len(data))
    out[:4] = b"text"
    enc = new.encode("latin-1")
    out[8:8 + len(enc)] = enc
    return bytes(out)


def _sanitize_desc(sig: bytes, data: bytes, removed: list[str]) -> bytes:
    """textDescriptionType (ICC v2): ASCII, Unicode and Macintosh ScriptCode forms of one text."""
    if len(data) < 12:
        raise IccError("desc tag too short")
    n = struct.unpack(">I", data[8:12])[0]
    if n > len(data) - 12:
        raise IccError("desc tag ASCII count past the tag")
    old = _text_ascii(data[12:12 + n])
    texts = [old]
    pos, end = 12 + n, None
    if pos + 8 <= len(data):
        ucount = struct.unpack(">I", data[pos + 4:pos + 8])[0]
        if ucount <= (len(data) - pos - 8) // 2:
            texts.append(_utf16(data[pos + 8:pos + 8 + 2 * ucount]))
            pos += 8 + 2 * ucount
            if pos + 3 <= len(data):
                scount = min(data[pos + 2], 67, len(data) - pos - 3)
                texts.append(_text_ascii(data[pos + 3:pos + 3 + scount]))
                end = min(pos + 3 + 67, len(data))
    keep = _keep_text(old) and all(t in ("", old) for t in texts[1:])
    new = old if keep else _neutral(sig, n - 1)
    for t in dict.fromkeys(texts):
        if t.strip() and t != new:
            removed.append(t)
    enc = new.encode("latin-1")
    # Canonical form: the text in ASCII, and in the Unicode and ScriptCode
    # forms only when a kept standard text stood there; every other byte zero.
    uni = keep and end is not None and texts[1] == old and bool(old)
    mac = keep and end is not None and texts[2] == old and 0 < len(enc) < 67
    body = struct.pack(">I", len(enc) + 1) + enc + b"\0" + b"\0" * 4
    body += struct.pack(">I", len(new) + 1) + new.encode("utf-16-be") + b"\0\0" if uni else struct.pack(">I", 0)
    body += b"\0\0" + (bytes([len(enc) + 1]) + (enc + b"\0").ljust(67, b"\0") if mac else b"\0" * 68)
    if len(body) > len(data) - 8:
        raise IccError("desc tag too short for its own structure")
    out = bytearray(len(data))
    out[:4] = b"desc"
    out[8:8 + len(body)] = body
    return bytes(out)


def _sanitize_mluc(sig: bytes, data: bytes, removed: list[str]) -> bytes:
    """multiLocalizedUnicodeType: records (language, country, length, offset) of UTF-16BE strings."""
    if len(data) < 16:
        raise IccError("mluc tag too short")
    count, rsize = struct.unpack(">II", data[8:16])
    if rsize < 12 or count > 1024 or 16 + count * rsize > len(data):
        raise IccError("mluc record table does not fit its tag")
    out = bytearray(len(data))
    out[:4] = b"mluc"
    out[8:16] = data[8:16]
    for i in range(count):
        r = 16 + i * rsize
        lang, length, off = data[r:r + 4], *struct.unpack(">II", data[r + 4:r + 12])
        if off + length > len(data) or off < 16 + count * rsize or length % 2:
            raise IccError("mluc string outside its tag")
        old = _utf16(data[off:off + length])
        new = old if _keep_text(old) else _neutral(sig, length // 2)
        if new != old and old.strip():
            removed.append(old)
        enc = new.encode("utf-16-be")
        out[r:r + 4] = lang
        out[r + 4:r + 12] = struct.pack(">II", len(enc), off)
        out[off:off + len(enc)] = enc
    return bytes(out)


def _numeric_length(tsig: bytes, data: bytes) -> int:
    """Bytes a numeric tag really uses (the rest of its declared size is zeroed)."""
    size = len(data)
    if tsig == b"curv" and size >= 12:
        return min(size, 12 + 2 * struct.unpack(">I", data[8:12])[0])
    if tsig == b"para" and size >= 12:
        func = struct.unpack(">H", data[8:10])[0]
        if func not in _PARA_PARAMS:
            raise IccError("para tag with an unknown function type")
        return min(size, 12 + 4 * _PARA_PARAMS[func])
    if tsig == b"sig ":
        return min(size, 12)
    if tsig in (b"meas", b"view"):
        return min(size, 36)
    if tsig == b"dtim":
        return min(size, 20)
    if tsig == b"chrm" and size >= 12:
        return min(size, 12 + 8 * struct.unpack(">H", data[8:10])[0])
    return size


def _sanitize_tag(sig: bytes, data: bytes, removed: list[str]) -> bytes:
    if len(data) < 8:
        raise IccError("tag shorter than its type signature")
    tsig = data[:4]
    if tsig == b"text":
        return _sanitize_text(sig, data, removed)
    if tsig == b"desc":
        return _sanitize_desc(sig, data, removed)
    if tsig == b"mluc":
        return _sanitize_mluc(sig, data, removed)
    out = bytearray(len(data))
    out[:4] = tsig
    if tsig == b"dtim":
        return bytes(out)  # a date is a date: the dateTimeNumber is zeroed (round 5)
    if tsig in NUMERIC_TYPES:
        n = _numeric_length(tsig, data)
        if tsig == b"sig " and data[8:12] not in SIGNATURE_VALUES:
            raise IccError("signature tag outside the registered signatures")
        _refuse_spelled(tsig, data[8:n])
        out[8:n] = data[8:n]
    # any other type: an empty structure (every count zero)
    return bytes(out)


def _refuse_spelled(tsig: bytes, payload: bytes) -> None:
    """A numeric tag whose numbers spell a word or a digit run makes the profile go."""
    from .textbytes import words_in_numbers
    if tsig == b"curv":
        spelled = words_in_numbers(payload[:4], ">u4") or words_in_numbers(payload[4:], ">u2")
    elif tsig in _WORD_DTYPES:
        spelled = words_in_numbers(payload, _WORD_DTYPES[tsig])
    else:
        return
    if spelled:
        raise IccError("numbers of a tag spell text")


def _profile_id(profile: bytes) -> bytes:
    buf = bytearray(profile)
    buf[44:48] = b"\0" * 4
    buf[64:68] = b"\0" * 4
    buf[84:100] = b"\0" * 16
    return hashlib.md5(bytes(buf)).digest()


# Header fields (ICC.1:2022 clause 7.2) that are enumerations: a value outside them is no profile.
DEVICE_CLASSES = {b"scnr", b"mntr", b"prtr", b"link", b"spac", b"abst", b"nmcl"}
COLOUR_SPACES = {b"XYZ ", b"Lab ", b"Luv ", b"YCbr", b"Yxy ", b"RGB ", b"GRAY", b"HSV ", b"HLS ", b"CMYK",
                 b"CMY "} | {f"{n:X}CLR".encode() for n in range(2, 16)}
PLATFORMS = {b"APPL", b"MSFT", b"SGI ", b"SUNW", b"\0\0\0\0"}
# Registered CMM signatures (the ICC's registry): anything else in a 4-byte
# field may be four letters of a name, so it is zeroed ("not specified").
CMMS = {b"ADBE", b"ACMS", b"appl", b"CCMS", b"UCCM", b"UCMS", b"EFI ", b"FF  ", b"EXAC", b"HCMM", b"argl",
        b"LgoS", b"HDM ", b"Lino", b"MSFT", b"KODA", b"HP  ", b"lcms", b"RIMX", b"DRIM", b"KCMS", b"MCML", b"WCS ", b"SIGN", b"ONYX", b"RGMS",
        b"SICC", b"TCMM", b"32BT", b"vivo", b"WTG ", b"zc00"}
D50 = struct.pack(">3i", 0xF6D6, 0x10000, 0xD32D)
# The creation date is the colour tool's, not the patient's, but a date is a
# date: every profile gets this one (a valid dateTimeNumber).
NEUTRAL_DATE = struct.pack(">6H", 2000, 1, 1, 0, 0, 0)


def _header(raw: bytes) -> bytes:
    """The first 100 header bytes with every field that could carry text made neutral.

    Device manufacturer, model and attributes, the profile creator and an
    unregistered CMM or platform are 4- and 8-byte fields a tool fills with
    letters (a red-team profile carried "DOEJ"/"JANE" there): they are
    optional, so they are zeroed. Enumerated fields must hold their
    enumerations (else the profile is dropped), flags keep only the bits the
    standard defines, the illuminant is D50 as the standard requires, and
    the creation date is a fixed neutral one.
    """
    h = bytearray(raw[:100])
    if bytes(h[12:16]) not in DEVICE_CLASSES or bytes(h[16:20]) not in COLOUR_SPACES \
            or bytes(h[20:24]) not in COLOUR_SPACES or h[8] not in (2, 4, 5):
        raise IccError("header fields outside their enumerations")
    h[10:12] = b"\0\0"                       # version: major, minor/bug-fix nibbles; the rest reserved
    if bytes(h[4:8]) not in CMMS:
        h[4:8] = b"\0" * 4
    h[24:36] = NEUTRAL_DATE
    if bytes(h[40:44]) not in PLATFORMS:
        h[40:44] = b"\0" * 4
    flags = struct.unpack(">I", h[44:48])[0] & 0x3
    h[44:48] = struct.pack(">I", flags)
    h[48:64] = b"\0" * 16                     # device manufacturer, model, attributes
    intent = struct.unpack(">I", h[64:68])[0]
    h[64:68] = struct.pack(">I", intent if intent <= 3 else 0)
    h[68:80] = D50
    h[80:84] = b"\0" * 4                      # profile creator
    return bytes(h)


def parse_and_rebuild(raw: bytes) -> tuple[bytes, list[str]]:
    """Sanitise a profile; raises IccError when it does not parse."""
    if len(raw) < HEADER_SIZE + 4:
        raise IccError("shorter than an ICC header")
    size = struct.unpack(">I", raw[:4])[0]
    if raw[36:40] != b"acsp" or size < HEADER_SIZE + 4 or size > len(raw) or size > MAX_PROFILE:
        raise IccError("no ICC signature or a size past the data")
    raw = raw[:size]
    count = struct.unpack(">I", raw[128:132])[0]
    table_end = 132 + 12 * count
    if count > MAX_TAGS or table_end > size:
        raise IccError("tag table does not fit the profile")
    out = bytearray(size)
    out[:100] = _header(raw)  # 100-127 are reserved and stay zero
    out[128:table_end] = raw[128:table_end]
    removed: list[str] = []
    done: dict[tuple[int, int], bytes] = {}
    spans: list[tuple[int, int, bytes]] = []
    for i in range(count):
        sig, off, length = struct.unpack(">4sII", raw[132 + 12 * i:144 + 12 * i])
        if sig not in TAG_SIGNATURES:
            raise IccError("a tag signature outside the registry")
        if off < table_end or off + length > size or length < 8:
            raise IccError(f"tag {sig!r} lies outside the profile")
        if (off, length) not in done:
            done[(off, length)] = _sanitize_tag(sig, raw[off:off + length], removed)
            spans.append((off, length, done[(off, length)]))
    spans.sort()
    for (a, la, _), (b, _, _) in zip(spans, spans[1:]):
        if b < a + la:
            raise IccError("tags overlap in part")
    for off, length, data in spans:
        out[off:off + length] = data
    if any(raw[84:100]):
        out[84:100] = _profile_id(bytes(out))
    return bytes(out), list(dict.fromkeys(removed))


def sanitize_icc(raw: bytes) -> tuple[bytes, list[str]]:
    """The profile with its text neutralised, and the texts removed.

    Empty bytes mean "drop the profile": it did not parse, so nothing in it
    can be vouched for.
    """
    try:
        return parse_and_rebuild(bytes(raw))
    except (IccError, struct.error, UnicodeError):
        return b"", []
