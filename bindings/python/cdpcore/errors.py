"""Typed exceptions for cdpcore status codes, and _check() which raises them.

Each class also derives from the closest built-in exception, so callers who do not
know cdpcore can still write `except LookupError:` or `except MemoryError:`.
"""

from __future__ import annotations

from typing import Dict, Type

from . import _lib


class CdpError(Exception):
    """A cdpcore call failed. status is the CDP_E* code, message cdp_error_last()."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message or _lib.cdp_status_str(status).decode()
        super().__init__(self.message)


class InvalidError(CdpError, ValueError):
    """CDP_EINVALID: bad argument, record, config or definition (the message says where)."""


class NotFoundError(CdpError, LookupError):
    """CDP_ENOTFOUND: the identifier, person, source or rule does not exist."""


class ConflictError(CdpError):
    """CDP_ECONFLICT: the request contradicts a rule (e.g. force_link across never_link)."""


class BufferTooSmallError(CdpError):
    """CDP_EBUFS: a caller-supplied buffer is too small."""


class NoMemoryError(CdpError, MemoryError):
    """CDP_ENOMEM: the library ran out of memory."""


class CdpIOError(CdpError, OSError):
    """CDP_EIO: an operating-system I/O error."""


class MisuseError(CdpError):
    """CDP_EMISUSE: NULL, closed or foreign handle, or a call out of order."""


class InternalError(CdpError):
    """CDP_EINTERNAL: a bug in cdpcore; please report it with the message."""


class LimitError(CdpError):
    """CDP_ELIMIT: a configured limit was exceeded (e.g. the batch size)."""


class UnsupportedError(CdpError, NotImplementedError):
    """CDP_EUNSUPPORTED: valid, but not supported by this build or mode."""


_BY_STATUS: Dict[int, Type[CdpError]] = {
    _lib.CDP_EINVALID: InvalidError,
    _lib.CDP_ENOTFOUND: NotFoundError,
    _lib.CDP_ECONFLICT: ConflictError,
    _lib.CDP_EBUFS: BufferTooSmallError,
    _lib.CDP_ENOMEM: NoMemoryError,
    _lib.CDP_EIO: CdpIOError,
    _lib.CDP_EMISUSE: MisuseError,
    _lib.CDP_EINTERNAL: InternalError,
    _lib.CDP_ELIMIT: LimitError,
    _lib.CDP_EUNSUPPORTED: UnsupportedError,
}


def _check(status: int) -> None:
    """Raises the typed exception for a failed status; call it right after the C call,
    because cdp_error_last() only lives until the next cdp_* call on this thread."""
    if status == _lib.CDP_OK:
        return
    message = _lib.cdp_error_last().decode("utf-8", "replace")
    raise _BY_STATUS.get(status, CdpError)(status, message)
