"""The binding covers capi/cdp.h exactly: every CDP_API function is bound in _lib.py with
the right number and types of arguments and the right return type, and the mirrored
constants have the header's values. A function added to the header fails here until
it is bound."""

import ctypes
import re
import unittest
from ctypes import POINTER, c_char_p, c_int32, c_int64, c_uint32, c_uint64, c_void_p

from support import HEADER

from cdpcore import _lib

# C type (spaces removed around '*') -> the ctypes type the binding must use.
CTYPES = {
    "void": None,
    "int32_t": c_int32,
    "uint32_t": c_uint32,
    "uint64_t": c_uint64,
    "uint64_t*": POINTER(c_uint64),
    "constchar*": c_char_p,
    "constvoid*": c_void_p,
    "cdp_buf*": POINTER(_lib.cdp_buf),
    "cdp_engine*": c_void_p,
    "cdp_engine**": POINTER(c_void_p),
    "int64_t": c_int64,
    "cdp_expr*": c_void_p,
    "constcdp_expr*": c_void_p,
    "cdp_expr**": POINTER(c_void_p),
}

DECLARATION = re.compile(
    r"CDP_API\s+(?P<ret>[^;()]*?)\b(?P<name>cdp_\w+)\s*\((?P<params>[^()]*)\)\s*;")


def _declarations_text():
    """The header without comments and preprocessor lines (which define CDP_API)."""
    text = HEADER.read_text(encoding="utf-8")
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def _c_type(text):
    return re.sub(r"\s+", "", text)


def parse_header():
    """[(name, return C type, [parameter C types])] for every CDP_API function."""
    text = _declarations_text()
    functions = []
    for m in DECLARATION.finditer(text):
        params = m.group("params").strip()
        types = []
        if params not in ("", "void"):
            for param in params.split(","):
                # The parameter's name is the last identifier; the type is what precedes it.
                types.append(_c_type(re.match(r"(.*?)\w+\s*$", param, re.S).group(1)))
        functions.append((m.group("name"), _c_type(m.group("ret")), types))
    if len(functions) != text.count("CDP_API"):
        raise AssertionError("a CDP_API declaration in cdp.h did not parse "
                             "(function-pointer parameters need this parser extended)")
    return functions


class HeaderCoverageTest(unittest.TestCase):
    def test_header_parses_to_the_known_api(self):
        names = {name for name, _, _ in parse_header()}
        # A sanity floor so a broken parser cannot pass by finding nothing.
        self.assertTrue({"cdp_version", "cdp_engine_open", "cdp_rule_add",
                         "cdp_feed_trim", "cdp_tags_define", "cdp_audience_save",
                         "cdp_advance", "cdp_lifecycle_define", "cdp_outbox_read",
                         "cdp_outbox_ack", "cdp_snapshot", "cdp_person_forget", "cdp_engine_open_keyed",
                         "cdp_person_export"} <= names, names)

    def test_every_function_is_bound_with_its_arity_and_types(self):
        for name, ret, params in parse_header():
            with self.subTest(function=name):
                fn = getattr(_lib, name, None)
                self.assertIsNotNone(fn, f"{name} is declared in cdp.h but not bound in _lib.py")
                self.assertIsNotNone(fn.argtypes, f"{name} has no argtypes")
                self.assertEqual(len(fn.argtypes), len(params),
                                 f"{name}: {len(params)} parameters in cdp.h, "
                                 f"{len(fn.argtypes)} argtypes in _lib.py")
                for i, c_type in enumerate(params):
                    self.assertIn(c_type, CTYPES, f"{name}: add {c_type!r} to CTYPES")
                    self.assertIs(fn.argtypes[i], CTYPES[c_type],
                                  f"{name} parameter {i}: {c_type} bound as {fn.argtypes[i]}")
                self.assertIn(ret, CTYPES, f"{name}: add {ret!r} to CTYPES")
                self.assertIs(fn.restype, CTYPES[ret], f"{name} returns {ret}")

    def test_nothing_is_bound_that_the_header_does_not_declare(self):
        declared = {name for name, _, _ in parse_header()}
        bound = {n for n, v in vars(_lib).items()
                 if n.startswith("cdp_") and isinstance(v, ctypes._CFuncPtr)}
        self.assertEqual(bound - declared, set())

    def test_mirrored_constants_match_the_header(self):
        defines = dict(re.findall(r"^#define\s+(CDP_\w+)\s+\(?(-?(?:0x)?[0-9a-fA-F]+)u?\)?",
                                  HEADER.read_text(encoding="utf-8"), re.M))
        expected = {k: v for k, v in defines.items()
                    if k == "CDP_OK" or k.startswith("CDP_E") or k in
                    ("CDP_INGEST_ASSIGN", "CDP_MASK", "CDP_EXPR_AST", "CDP_VERSION_MAJOR")}
        self.assertIn("CDP_EUNSUPPORTED", expected)
        for name, value in expected.items():
            with self.subTest(constant=name):
                self.assertEqual(getattr(_lib, name, None), int(value, 0))

    def test_buffer_layout_matches_the_header(self):
        # char *ptr; uint64_t size; uint64_t reserved;
        self.assertEqual([f[0] for f in _lib.cdp_buf._fields_], ["ptr", "size", "reserved"])
        self.assertEqual(ctypes.sizeof(_lib.cdp_buf), ctypes.sizeof(c_void_p) + 16)


if __name__ == "__main__":
    unittest.main()
