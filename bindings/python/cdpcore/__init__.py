"""cdpcore: the embeddable engine of a Customer Data Platform, from Python.

    import cdpcore

    with cdpcore.Engine() as e:
        e.ingest(open("touchpoints.ndjson", "rb").read())
        oneid = e.resolve("mobile", "13912345678")
        print(e.person(oneid, mask=True))

The shared library libcdpcore is found through $CDPCORE_LIBRARY (a full path), this
package's directory, the install prefix, or a build tree next to the source checkout.
"""

from ._lib import LibraryNotFoundError, LibraryVersionError
from .engine import Engine, Evaluation, Expression, OutboxPage, default_config, version
from .errors import (BufferTooSmallError, CdpError, CdpIOError, ConflictError,
                     InternalError, InvalidError, LimitError, MisuseError, NoMemoryError,
                     NotFoundError, UnsupportedError)

__version__ = "0.1.0"

__all__ = [
    "Engine", "Expression", "Evaluation", "OutboxPage", "version", "default_config",
    "CdpError", "InvalidError", "NotFoundError", "ConflictError", "BufferTooSmallError",
    "NoMemoryError", "CdpIOError", "MisuseError", "InternalError", "LimitError",
    "UnsupportedError", "LibraryNotFoundError", "LibraryVersionError",
]
