"""wsideid: de-identify whole-slide images into verified, byte-preserving copies."""
__version__ = "0.1.0"
