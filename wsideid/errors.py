"""Error types.

Every failure the tool anticipates is a WsideidError: the CLI prints its
message as one line and exits non-zero. Anything else escaping is a bug.
"""


class WsideidError(Exception):
    """A failure with a message fit for the user (one line, no PHI values)."""

    exit_code = 2


class UnsupportedFormat(WsideidError):
    """The content matches no format module."""


class MalformedFile(WsideidError):
    """The file claims a format but its structure is broken or hostile."""


class ProfileError(WsideidError):
    """A profile file is invalid."""


class StrictRefusal(WsideidError):
    """--strict: the slide holds something the profile does not know."""


class VerificationFailed(WsideidError):
    """The output did not verify; nothing was published. ``checks``: the names of the
    failed checks (``wsideid.checks.Check`` values), for callers that route on them."""

    exit_code = 3

    def __init__(self, message: str, checks: tuple[str, ...] = ()):
        super().__init__(message)
        self.checks = checks
