"""TIFF tag names, so profiles can say ``DateTime`` rather than ``306``.

A profile may use a name from this table or a decimal tag number. Names
follow the TIFF 6.0 spec, the EXIF/GPS specs and, for 65420-65480, the
Hamamatsu names tifffile uses (``TIFF.NDPI_TAGS``).
"""

from __future__ import annotations

TAG_NAMES: dict[int, str] = {
    254: "NewSubfileType", 255: "SubfileType", 256: "ImageWidth", 257: "ImageLength",
    258: "BitsPerSample", 259: "Compression", 262: "PhotometricInterpretation",
    263: "Threshholding", 264: "CellWidth", 265: "CellLength", 266: "FillOrder",
    269: "DocumentName", 270: "ImageDescription", 271: "Make", 272: "Model",
    273: "StripOffsets", 274: "Orientation", 277: "SamplesPerPixel", 278: "RowsPerStrip",
    279: "StripByteCounts", 280: "MinSampleValue", 281: "MaxSampleValue",
    282: "XResolution", 283: "YResolution", 284: "PlanarConfiguration", 285: "PageName",
    286: "XPosition", 287: "YPosition", 288: "FreeOffsets", 289: "FreeByteCounts",
    290: "GrayResponseUnit", 291: "GrayResponseCurve", 296: "ResolutionUnit", 297: "PageNumber",
    301: "TransferFunction", 305: "Software", 306: "DateTime", 315: "Artist", 316: "HostComputer",
    317: "Predictor", 318: "WhitePoint", 319: "PrimaryChromaticities", 320: "ColorMap",
    321: "HalftoneHints", 322: "TileWidth", 323: "TileLength", 324: "TileOffsets",
    325: "TileByteCounts", 330: "SubIFDs", 332: "InkSet", 338: "ExtraSamples",
    339: "SampleFormat", 340: "SMinSampleValue", 341: "SMaxSampleValue", 347: "JPEGTables",
    512: "JPEGProc", 513: "JPEGInterchangeFormat", 514: "JPEGInterchangeFormatLength",
    529: "YCbCrCoefficients", 530: "YCbCrSubSampling", 531: "YCbCrPositioning",
    532: "ReferenceBlackWhite", 700: "XMP", 32781: "ImageID", 32997: "ImageDepth",
    32998: "TileDepth", 33421: "CFARepeatPatternDim", 33432: "Copyright", 33723: "IPTC",
    34377: "Photoshop", 34665: "ExifIFD", 34675: "ICCProfile", 34853: "GPSIFD",
    37724: "ImageSourceData", 40091: "XPTitle", 40092: "XPComment", 40093: "XPAuthor",
    40094: "XPKeywords", 40095: "XPSubject", 40965: "InteroperabilityIFD", 42016: "ImageUniqueID",
    50838: "ImageJMetaDataByteCounts", 50839: "ImageJMetaData",
    # EXIF IFD tags (only meaningful inside ExifIFD)
    36867: "DateTimeOriginal", 36868: "DateTimeDigitized", 36880: "OffsetTime",
    36881: "OffsetTimeOriginal", 36882: "OffsetTimeDigitized", 37510: "UserComment",
    42032: "CameraOwnerName", 42033: "BodySerialNumber",
    # Hamamatsu NDPI private tags
    65324: "OffsetHighBytes", 65325: "ByteCountHighBytes", 65420: "FileFormat",
    65421: "Magnification", 65422: "XOffsetFromSlideCenter", 65423: "YOffsetFromSlideCenter",
    65424: "ZOffsetFromSlideCenter", 65425: "TissueIndex", 65426: "McuStarts",
    65427: "SlideLabel", 65428: "AuthCode", 65432: "McuStartsHighBytes",
    65434: "Fluorescence", 65435: "ExposureRatio", 65436: "RedMultiplier",
    65437: "GreenMultiplier", 65438: "BlueMultiplier", 65439: "FocusPoints",
    65440: "FocusPointRegions", 65441: "CaptureMode", 65442: "ScannerSerialNumber",
    65444: "JpegQuality", 65445: "RefocusInterval", 65446: "FocusOffset",
    65447: "BlankLines", 65448: "FirmwareVersion", 65449: "Comments", 65450: "LabelObscured",
    65451: "Wavelength", 65453: "LampAge", 65454: "ExposureTime", 65455: "FocusTime",
    65456: "ScanTime", 65457: "WriteTime", 65458: "FullyAutoFocus", 65468: "Barcode",
    65477: "ScanProfile", 65480: "BarcodeType", 65500: "DefaultGamma",
}

NAME_TO_TAG: dict[str, int] = {v: k for k, v in TAG_NAMES.items()}

# Tags the code reads by number, named once here.
NEW_SUBFILE_TYPE, IMAGE_WIDTH, IMAGE_LENGTH, COMPRESSION = 254, 256, 257, 259
PHOTOMETRIC, IMAGE_DESCRIPTION, MAKE, SOFTWARE = 262, 270, 271, 305
STRIP_OFFSETS, ROWS_PER_STRIP, STRIP_BYTE_COUNTS = 273, 278, 279
TILE_WIDTH, TILE_LENGTH, TILE_OFFSETS, TILE_BYTE_COUNTS = 322, 323, 324, 325
SUBIFDS, JPEG_TABLES = 330, 347
NDPI_FILE_FORMAT, NDPI_MAGNIFICATION, NDPI_Z_OFFSET = 65420, 65421, 65424
NDPI_MCU_STARTS, NDPI_COMMENTS = 65426, 65449  # restart-marker offsets; the Key=Value property map
# Compression values
JPEG_COMPRESSION = 7
PHOTOMETRIC_COLOURSPACE = {2: "RGB", 6: "YCbCr"}

# Tags that place image data: the writer owns them, profiles never see them.
DATA_TAGS = {273, 279, 324, 325}
# Tags pointing at child IFDs: handled as trees, their values are offsets.
CHILD_TAGS = {330, 34665, 34853, 40965}


def tag_name(tag: int) -> str:
    return TAG_NAMES.get(tag, str(tag))


def tag_number(name: str) -> int | None:
    if name.isdigit():
        return int(name)
    return NAME_TO_TAG.get(name)
