"""The one error type of the JPEG blanking library.

Every problem with the input (unsupported coding process, damaged or hostile
data, a fill that the stream's Huffman tables cannot express) surfaces as a
JpegBlankingError so that container layers can report it as one line and
never publish a half-edited image.
"""

from wsideid.errors import WsideidError


class JpegBlankingError(WsideidError):
    """The JPEG data cannot be blanked losslessly (message is one line)."""
