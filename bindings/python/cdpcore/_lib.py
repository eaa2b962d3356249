"""Low-level ctypes binding of capi/cdp.h: the library loader and one declaration per
C function, each under its C prototype (llama-cpp-python's layout).

Nothing here is pythonic on purpose: the names, argument order and types are the C
API's, so cdp.h stays the single reference. The friendly layer is engine.py.
"""

from __future__ import annotations

import ctypes
import glob
import os
import sys
import sysconfig
from ctypes import POINTER, c_char_p, c_int32, c_int64, c_uint32, c_uint64, c_void_p
from pathlib import Path
from typing import List, Optional, Tuple

# --- constants mirrored from cdp.h (tests/python/test_header.py checks they agree) -----

CDP_VERSION_MAJOR = 0  # the major this binding was written against

CDP_OK = 0
CDP_EINVALID = -1
CDP_ENOTFOUND = -2
CDP_ECONFLICT = -3
CDP_EBUFS = -4
CDP_ENOMEM = -5
CDP_EIO = -6
CDP_EMISUSE = -7
CDP_EINTERNAL = -8
CDP_ELIMIT = -9
CDP_EUNSUPPORTED = -10

CDP_INGEST_ASSIGN = 0x1
CDP_MASK = 0x1
CDP_EXPR_AST = 0x1

LIBRARY_ENV = "CDPCORE_LIBRARY"


class LibraryNotFoundError(ImportError):
    """libcdpcore could not be loaded from any of the places the loader looked."""


class LibraryVersionError(ImportError):
    """The loaded libcdpcore has a different major version than this binding."""


# --- loader ---------------------------------------------------------------------------


def _library_names() -> List[str]:
    if sys.platform == "win32":
        return ["cdpcore.dll"]
    if sys.platform == "darwin":
        return [f"libcdpcore.{CDP_VERSION_MAJOR}.dylib", "libcdpcore.dylib"]
    # The SONAME first: an installed runtime package may lack the unversioned dev link.
    return [f"libcdpcore.so.{CDP_VERSION_MAJOR}", "libcdpcore.so"]


def _prefix_dirs() -> List[Path]:
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    # Duplicates (sys.prefix == base_prefix, an empty multiarch) are dropped by the caller.
    return [Path(sys.prefix, "lib"), Path(sys.base_prefix, "lib"),
            Path("/usr/local/lib"), Path("/usr/local/lib", multiarch),
            Path("/usr/lib", multiarch), Path("/usr/lib"), Path("/usr/lib64")]


def _build_tree_libraries(package_dir: Path) -> Tuple[List[str], List[Path]]:
    """Libraries in build trees of the source checkout, newest first, and the patterns.

    package_dir is <repo>/bindings/python/cdpcore, so the build trees are <repo>/build/
    and <repo>/build/<name>/ (one per developer or configuration). An installed copy of
    the package has no checkout around it and looks in no build tree.
    """
    repo = package_dir.parents[2]
    if not (repo / "capi" / "cdp.h").is_file():
        return [], []
    name = _library_names()[-1]
    patterns = [str(repo / "build" / name), str(repo / "build" / "*" / name)]
    found = [Path(p) for pattern in patterns for p in glob.glob(pattern)]
    if "libasan" not in os.environ.get("LD_PRELOAD", ""):
        # A sanitizer build aborts a process that did not preload the ASan runtime.
        found = [p for p in found if not _is_sanitizer_build(p.parent)]
    found.sort(key=os.path.getmtime, reverse=True)
    return patterns, found


def _is_sanitizer_build(build_dir: Path) -> bool:
    cache = build_dir / "CMakeCache.txt"
    return cache.is_file() and "CDP_SANITIZE:BOOL=ON" in cache.read_text(errors="replace")


def _candidates() -> Tuple[List[Path], List[str]]:
    """Every path to try in order, plus glob patterns that matched nothing."""
    here = Path(__file__).resolve().parent
    dirs = [here] + _prefix_dirs()
    paths = [d / name for d in dirs for name in _library_names()]
    patterns, built = _build_tree_libraries(here)
    paths += built
    unique = list(dict.fromkeys(os.path.normpath(p) for p in paths))
    return [Path(p) for p in unique], ([] if built else patterns)


def _load() -> Tuple[ctypes.CDLL, str]:
    """Loads libcdpcore: $CDPCORE_LIBRARY alone when set, else the search path."""
    explicit = os.environ.get(LIBRARY_ENV)
    if explicit:
        # An explicit choice is never silently replaced by another copy of the library.
        try:
            return ctypes.CDLL(explicit), explicit
        except OSError as e:
            raise LibraryNotFoundError(
                f"cannot load libcdpcore from {LIBRARY_ENV}={explicit}: {e}") from None

    tried = []
    paths, empty_patterns = _candidates()
    for path in paths:
        if not path.exists():
            tried.append(f"  {path}: no such file")
            continue
        try:
            return ctypes.CDLL(str(path)), str(path)
        except OSError as e:
            tried.append(f"  {path}: {e}")
    tried += [f"  {p}: no match" for p in empty_patterns]
    raise LibraryNotFoundError(
        "cannot find libcdpcore; set " + LIBRARY_ENV + " to its full path, or install it."
        " Tried:\n" + "\n".join(tried))


_LIB, LIBRARY_PATH = _load()


def _bind(name: str, argtypes: list, restype: Optional[type]):
    try:
        fn = getattr(_LIB, name)
    except AttributeError:
        raise LibraryVersionError(
            f"{LIBRARY_PATH} has no {name}: the library is older than this binding") from None
    fn.argtypes = argtypes
    fn.restype = restype
    return fn


# --- types ----------------------------------------------------------------------------


# typedef struct cdp_buf { char *ptr; uint64_t size; uint64_t reserved; } cdp_buf;
class cdp_buf(ctypes.Structure):
    """A library-owned byte buffer; zero-initialised, released with cdp_buf_free()."""

    _fields_ = [("ptr", c_void_p), ("size", c_uint64), ("reserved", c_uint64)]


cdp_buf_p = POINTER(cdp_buf)

# typedef struct cdp_engine cdp_engine;  (opaque: handled as a void pointer)
cdp_engine_p = c_void_p
cdp_engine_pp = POINTER(cdp_engine_p)

# typedef struct cdp_expr cdp_expr;  (opaque)
cdp_expr_p = c_void_p
cdp_expr_pp = POINTER(cdp_expr_p)

# --- library --------------------------------------------------------------------------

# CDP_API int32_t cdp_version(void);
cdp_version = _bind("cdp_version", [], c_int32)

# CDP_API const char *cdp_version_string(void);
cdp_version_string = _bind("cdp_version_string", [], c_char_p)

# CDP_API const char *cdp_status_str(int32_t status);
cdp_status_str = _bind("cdp_status_str", [c_int32], c_char_p)

# CDP_API const char *cdp_error_last(void);
cdp_error_last = _bind("cdp_error_last", [], c_char_p)

# CDP_API void cdp_buf_free(cdp_buf *buf);
cdp_buf_free = _bind("cdp_buf_free", [cdp_buf_p], None)

# CDP_API int32_t cdp_config_default(cdp_buf *out);
cdp_config_default = _bind("cdp_config_default", [cdp_buf_p], c_int32)

# --- engine ---------------------------------------------------------------------------

# CDP_API int32_t cdp_engine_open(cdp_engine **out, const char *config, uint64_t config_len,
#                                 const char *dir);
cdp_engine_open = _bind("cdp_engine_open", [cdp_engine_pp, c_char_p, c_uint64, c_char_p],
                        c_int32)

# CDP_API int32_t cdp_engine_open_keyed(cdp_engine **out, const char *config, uint64_t config_len,
#                                       const char *dir, const void *key, uint64_t key_len);
cdp_engine_open_keyed = _bind("cdp_engine_open_keyed",
                              [cdp_engine_pp, c_char_p, c_uint64, c_char_p, c_void_p, c_uint64], c_int32)

# CDP_API int32_t cdp_engine_close(cdp_engine *engine);
cdp_engine_close = _bind("cdp_engine_close", [cdp_engine_p], c_int32)

# CDP_API int32_t cdp_engine_stats(cdp_buf *out, cdp_engine *engine);
cdp_engine_stats = _bind("cdp_engine_stats", [cdp_buf_p, cdp_engine_p], c_int32)
# CDP_API int32_t cdp_snapshot(cdp_buf *out, cdp_engine *engine);
cdp_snapshot = _bind("cdp_snapshot", [cdp_buf_p, cdp_engine_p], c_int32)

# --- ingestion ------------------------------------------------------------------------

# CDP_API int32_t cdp_ingest_ndjson(cdp_buf *out, cdp_engine *engine, const char *data,
#                                   uint64_t len, uint32_t flags);
cdp_ingest_ndjson = _bind("cdp_ingest_ndjson",
                          [cdp_buf_p, cdp_engine_p, c_char_p, c_uint64, c_uint32], c_int32)

# CDP_API int32_t cdp_ingest_record(cdp_buf *out, cdp_engine *engine, const char *json,
#                                   uint64_t len);
cdp_ingest_record = _bind("cdp_ingest_record", [cdp_buf_p, cdp_engine_p, c_char_p, c_uint64],
                          c_int32)

# --- persons --------------------------------------------------------------------------

# CDP_API int32_t cdp_records_resolve(cdp_buf *out, cdp_engine *engine, const char *data,
#                                     uint64_t len);
cdp_records_resolve = _bind("cdp_records_resolve", [cdp_buf_p, cdp_engine_p, c_char_p, c_uint64],
                            c_int32)

# CDP_API int32_t cdp_resolve(uint64_t *out, cdp_engine *engine, const char *type,
#                             uint64_t type_len, const char *value, uint64_t value_len);
cdp_resolve = _bind("cdp_resolve",
                    [POINTER(c_uint64), cdp_engine_p, c_char_p, c_uint64, c_char_p, c_uint64],
                    c_int32)

# CDP_API int32_t cdp_person_identifiers(cdp_buf *out, cdp_engine *engine, uint64_t oneid,
#                                        uint32_t flags);
cdp_person_identifiers = _bind("cdp_person_identifiers",
                               [cdp_buf_p, cdp_engine_p, c_uint64, c_uint32], c_int32)

# CDP_API int32_t cdp_person_get(cdp_buf *out, cdp_engine *engine, uint64_t oneid,
#                                uint32_t flags);
cdp_person_get = _bind("cdp_person_get", [cdp_buf_p, cdp_engine_p, c_uint64, c_uint32], c_int32)

# CDP_API int32_t cdp_persons_page(cdp_buf *out, cdp_engine *engine, uint64_t cursor,
#                                  uint32_t limit, uint32_t flags);
cdp_persons_page = _bind("cdp_persons_page",
                         [cdp_buf_p, cdp_engine_p, c_uint64, c_uint32, c_uint32], c_int32)

# CDP_API int32_t cdp_explain(cdp_buf *out, cdp_engine *engine,
#                             const char *type_a, uint64_t type_a_len,
#                             const char *value_a, uint64_t value_a_len,
#                             const char *type_b, uint64_t type_b_len,
#                             const char *value_b, uint64_t value_b_len);
cdp_explain = _bind("cdp_explain",
                    [cdp_buf_p, cdp_engine_p,
                     c_char_p, c_uint64, c_char_p, c_uint64,
                     c_char_p, c_uint64, c_char_p, c_uint64], c_int32)

# --- unmerge and manual rules ---------------------------------------------------------

# CDP_API int32_t cdp_identifier_remove(cdp_buf *out, cdp_engine *engine, const char *type,
#                                       uint64_t type_len, const char *value,
#                                       uint64_t value_len);
cdp_identifier_remove = _bind("cdp_identifier_remove",
                              [cdp_buf_p, cdp_engine_p, c_char_p, c_uint64, c_char_p, c_uint64],
                              c_int32)

# CDP_API int32_t cdp_source_remove(cdp_buf *out, cdp_engine *engine, const char *source,
#                                   uint64_t source_len);
cdp_source_remove = _bind("cdp_source_remove", [cdp_buf_p, cdp_engine_p, c_char_p, c_uint64],
                          c_int32)

# CDP_API int32_t cdp_person_split(cdp_buf *out, cdp_engine *engine, uint64_t oneid,
#                                  const char *idents_json, uint64_t idents_len);
cdp_person_split = _bind("cdp_person_split",
                         [cdp_buf_p, cdp_engine_p, c_uint64, c_char_p, c_uint64], c_int32)

# CDP_API int32_t cdp_person_forget(cdp_buf *out, cdp_engine *engine, const char *request,
#                                   uint64_t request_len);
cdp_person_forget = _bind("cdp_person_forget", [cdp_buf_p, cdp_engine_p, c_char_p, c_uint64], c_int32)

# CDP_API int32_t cdp_person_export(cdp_buf *out, cdp_engine *engine, uint64_t oneid);
cdp_person_export = _bind("cdp_person_export", [cdp_buf_p, cdp_engine_p, c_uint64], c_int32)

# CDP_API int32_t cdp_rule_add(uint64_t *out_rule, cdp_engine *engine, const char *kind,
#                              uint64_t kind_len, const char *type_a, uint64_t type_a_len,
#                              const char *value_a, uint64_t value_a_len,
#                              const char *type_b, uint64_t type_b_len,
#                              const char *value_b, uint64_t value_b_len,
#                              const char *note, uint64_t note_len);
cdp_rule_add = _bind("cdp_rule_add",
                     [POINTER(c_uint64), cdp_engine_p, c_char_p, c_uint64,
                      c_char_p, c_uint64, c_char_p, c_uint64,
                      c_char_p, c_uint64, c_char_p, c_uint64,
                      c_char_p, c_uint64], c_int32)

# CDP_API int32_t cdp_rule_remove(cdp_buf *out, cdp_engine *engine, uint64_t rule);
cdp_rule_remove = _bind("cdp_rule_remove", [cdp_buf_p, cdp_engine_p, c_uint64], c_int32)

# CDP_API int32_t cdp_rules_list(cdp_buf *out, cdp_engine *engine);
cdp_rules_list = _bind("cdp_rules_list", [cdp_buf_p, cdp_engine_p], c_int32)

# --- change feed ----------------------------------------------------------------------

# CDP_API int32_t cdp_feed_read(cdp_buf *out, cdp_engine *engine, uint64_t cursor,
#                               uint32_t limit);
cdp_feed_read = _bind("cdp_feed_read", [cdp_buf_p, cdp_engine_p, c_uint64, c_uint32], c_int32)

# CDP_API int32_t cdp_feed_trim(cdp_engine *engine, uint64_t cursor);
cdp_feed_trim = _bind("cdp_feed_trim", [cdp_engine_p, c_uint64], c_int32)


# --- expressions ----------------------------------------------------------------------

# CDP_API int32_t cdp_expr_compile(cdp_expr **out, cdp_engine *engine, const char *text,
#                                  uint64_t len, uint32_t flags);
cdp_expr_compile = _bind("cdp_expr_compile",
                         [cdp_expr_pp, cdp_engine_p, c_char_p, c_uint64, c_uint32], c_int32)

# CDP_API int32_t cdp_expr_ast(cdp_buf *out, const cdp_expr *expr);
cdp_expr_ast = _bind("cdp_expr_ast", [cdp_buf_p, cdp_expr_p], c_int32)

# CDP_API int32_t cdp_expr_eval(cdp_buf *out, cdp_expr *expr, uint64_t oneid, int64_t now_ms);
cdp_expr_eval = _bind("cdp_expr_eval", [cdp_buf_p, cdp_expr_p, c_uint64, c_int64], c_int32)

# CDP_API int32_t cdp_expr_free(cdp_expr *expr);
cdp_expr_free = _bind("cdp_expr_free", [cdp_expr_p], c_int32)


# --- tags and audiences ---------------------------------------------------------------

# CDP_API int32_t cdp_tags_define(cdp_buf *out, cdp_engine *engine, const char *json,
#                                 uint64_t len);
cdp_tags_define = _bind("cdp_tags_define", [cdp_buf_p, cdp_engine_p, c_char_p, c_uint64], c_int32)

# CDP_API int32_t cdp_tag_drop(cdp_engine *engine, const char *name, uint64_t len);
cdp_tag_drop = _bind("cdp_tag_drop", [cdp_engine_p, c_char_p, c_uint64], c_int32)

# CDP_API int32_t cdp_tags_list(cdp_buf *out, cdp_engine *engine);
cdp_tags_list = _bind("cdp_tags_list", [cdp_buf_p, cdp_engine_p], c_int32)

# CDP_API int32_t cdp_person_tags(cdp_buf *out, cdp_engine *engine, uint64_t oneid);
cdp_person_tags = _bind("cdp_person_tags", [cdp_buf_p, cdp_engine_p, c_uint64], c_int32)

# CDP_API int32_t cdp_advance(cdp_buf *out, cdp_engine *engine, int64_t now_ms);
cdp_advance = _bind("cdp_advance", [cdp_buf_p, cdp_engine_p, c_int64], c_int32)

# CDP_API int32_t cdp_audience_count(cdp_buf *out, cdp_engine *engine, const char *request,
#                                    uint64_t len);
cdp_audience_count = _bind("cdp_audience_count", [cdp_buf_p, cdp_engine_p, c_char_p, c_uint64],
                           c_int32)

# CDP_API int32_t cdp_audience_members(cdp_buf *out, cdp_engine *engine, const char *request,
#                                      uint64_t len);
cdp_audience_members = _bind("cdp_audience_members",
                             [cdp_buf_p, cdp_engine_p, c_char_p, c_uint64], c_int32)

# CDP_API int32_t cdp_audience_distribution(cdp_buf *out, cdp_engine *engine,
#                                           const char *request, uint64_t len);
cdp_audience_distribution = _bind("cdp_audience_distribution",
                                  [cdp_buf_p, cdp_engine_p, c_char_p, c_uint64], c_int32)

# CDP_API int32_t cdp_audience_export(cdp_buf *out, cdp_engine *engine, const char *request,
#                                     uint64_t len);
cdp_audience_export = _bind("cdp_audience_export",
                            [cdp_buf_p, cdp_engine_p, c_char_p, c_uint64], c_int32)

# CDP_API int32_t cdp_audience_save(cdp_buf *out, cdp_engine *engine, const char *name,
#                                   uint64_t name_len, const char *request, uint64_t len);
cdp_audience_save = _bind("cdp_audience_save",
                          [cdp_buf_p, cdp_engine_p, c_char_p, c_uint64, c_char_p, c_uint64],
                          c_int32)

# CDP_API int32_t cdp_audience_drop(cdp_engine *engine, const char *name, uint64_t len);
cdp_audience_drop = _bind("cdp_audience_drop", [cdp_engine_p, c_char_p, c_uint64], c_int32)

# CDP_API int32_t cdp_audiences_list(cdp_buf *out, cdp_engine *engine);
cdp_audiences_list = _bind("cdp_audiences_list", [cdp_buf_p, cdp_engine_p], c_int32)

# CDP_API int32_t cdp_audience_recount(cdp_buf *out, cdp_engine *engine, const char *name,
#                                      uint64_t len);
cdp_audience_recount = _bind("cdp_audience_recount",
                             [cdp_buf_p, cdp_engine_p, c_char_p, c_uint64], c_int32)

# CDP_API int32_t cdp_metrics(cdp_buf *out, cdp_engine *engine, const char *request,
#                             uint64_t len);
cdp_metrics = _bind("cdp_metrics", [cdp_buf_p, cdp_engine_p, c_char_p, c_uint64], c_int32)


# --- lifecycle: machines, loyalty, journeys and the outbox -----------------------------

# CDP_API int32_t cdp_lifecycle_define(cdp_buf *out, cdp_engine *engine, const char *json,
#                                      uint64_t len);
cdp_lifecycle_define = _bind("cdp_lifecycle_define",
                             [cdp_buf_p, cdp_engine_p, c_char_p, c_uint64], c_int32)

# CDP_API int32_t cdp_lifecycle_drop(cdp_engine *engine, const char *kind, uint64_t kind_len,
#                                    const char *name, uint64_t name_len);
cdp_lifecycle_drop = _bind("cdp_lifecycle_drop",
                           [cdp_engine_p, c_char_p, c_uint64, c_char_p, c_uint64], c_int32)

# CDP_API int32_t cdp_lifecycle_list(cdp_buf *out, cdp_engine *engine);
cdp_lifecycle_list = _bind("cdp_lifecycle_list", [cdp_buf_p, cdp_engine_p], c_int32)

# CDP_API int32_t cdp_lifecycle_apply(cdp_buf *out, cdp_engine *engine, const char *json,
#                                     uint64_t len);
cdp_lifecycle_apply = _bind("cdp_lifecycle_apply",
                            [cdp_buf_p, cdp_engine_p, c_char_p, c_uint64], c_int32)

# CDP_API int32_t cdp_person_lifecycle(cdp_buf *out, cdp_engine *engine, uint64_t oneid);
cdp_person_lifecycle = _bind("cdp_person_lifecycle", [cdp_buf_p, cdp_engine_p, c_uint64], c_int32)

# CDP_API int32_t cdp_outbox_read(cdp_buf *out, cdp_engine *engine, uint64_t cursor,
#                                 uint32_t limit);
cdp_outbox_read = _bind("cdp_outbox_read", [cdp_buf_p, cdp_engine_p, c_uint64, c_uint32], c_int32)

# CDP_API int32_t cdp_outbox_ack(cdp_buf *out, cdp_engine *engine, const char *json,
#                                uint64_t len);
cdp_outbox_ack = _bind("cdp_outbox_ack", [cdp_buf_p, cdp_engine_p, c_char_p, c_uint64], c_int32)


# --- version check --------------------------------------------------------------------


def check_version(runtime: int) -> None:
    """Raises LibraryVersionError unless runtime (a cdp_version() number) has our major."""
    if runtime // 10000 != CDP_VERSION_MAJOR:
        raise LibraryVersionError(
            f"{LIBRARY_PATH} is libcdpcore {runtime // 10000}.{runtime // 100 % 100}."
            f"{runtime % 100}, but this binding needs major version {CDP_VERSION_MAJOR}")


check_version(cdp_version())
