"""One line for a failure inside third-party code, without the library's message.

Why: pydicom, wsidicomizer and dciodvfy quote the value they choke on
(``could not convert string to float: '0.4990\\x00DOE^JANE'``), and that value
is exactly the kind of thing de-identification exists to remove. Messages that
reach the user, stderr, the audit or a review record carry the exception type
and our own description only; the library's text is added under
``WSIDEID_DEBUG=1`` (a developer's run on their own data).
"""

from __future__ import annotations

import os
import re


def debug() -> bool:
    return os.environ.get("WSIDEID_DEBUG", "") not in ("", "0")


def third_party(what: str, exc: BaseException) -> str:
    """``what (ExceptionType)``; with WSIDEID_DEBUG=1 also the library's first line."""
    msg = f"{what} ({type(exc).__name__})"
    if debug():
        text = str(exc).splitlines()[0] if str(exc) else ""
        msg += f": {text[:200]}" if text else ""
    return msg


_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'|`[^`]*`")


def without_values(line: str) -> str:
    """A tool's report line with every quoted value replaced by ``<v>`` (names of attributes stay)."""
    return _QUOTED.sub("<v>", line)
