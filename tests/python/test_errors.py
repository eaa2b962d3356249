"""Statuses become typed exceptions that carry cdp_error_last()."""

import ctypes
import json
import os
from decimal import Decimal
import re
import tempfile
import unittest

import support  # noqa: F401  (makes cdpcore importable from the source tree)

import cdpcore
from cdpcore import _lib
from cdpcore.errors import _BY_STATUS, _check


class CheckTest(unittest.TestCase):
    def test_every_status_maps_to_its_own_class(self):
        # Error statuses are the negative CDP_E* constants (CDP_EXPR_AST is a flag).
        statuses = [v for k, v in vars(_lib).items() if k.startswith("CDP_E") and v < 0]
        self.assertEqual(sorted(statuses), sorted(_BY_STATUS))
        self.assertEqual(len(set(_BY_STATUS.values())), len(_BY_STATUS))
        for status, cls in _BY_STATUS.items():
            with self.subTest(cls=cls.__name__), self.assertRaises(cls) as cm:
                _check(status)
            self.assertIsInstance(cm.exception, cdpcore.CdpError)
            self.assertEqual(cm.exception.status, status)
            self.assertTrue(str(cm.exception))

    def test_ok_passes_and_an_unknown_status_is_a_plain_cdp_error(self):
        _check(_lib.CDP_OK)
        with self.assertRaises(cdpcore.CdpError) as cm:
            _check(-999)
        self.assertIs(type(cm.exception), cdpcore.CdpError)

    def test_builtin_bases_let_generic_code_catch_them(self):
        self.assertTrue(issubclass(cdpcore.InvalidError, ValueError))
        self.assertTrue(issubclass(cdpcore.NotFoundError, LookupError))
        self.assertTrue(issubclass(cdpcore.NoMemoryError, MemoryError))
        self.assertTrue(issubclass(cdpcore.CdpIOError, OSError))
        self.assertTrue(issubclass(cdpcore.UnsupportedError, NotImplementedError))

    def test_the_message_is_the_library_s_last_error(self):
        # A NULL engine is answered by the C library itself, not by the Python wrapper.
        buf = _lib.cdp_buf()
        status = _lib.cdp_engine_stats(ctypes.byref(buf), None)
        expected = _lib.cdp_error_last().decode()
        self.assertEqual(status, _lib.CDP_EMISUSE)
        self.assertTrue(expected)
        with self.assertRaises(cdpcore.MisuseError) as cm:
            _check(_lib.cdp_engine_stats(ctypes.byref(buf), None))
        self.assertEqual(cm.exception.message, expected)


class EngineErrorsTest(unittest.TestCase):
    def test_bad_config_json_names_the_place(self):
        with self.assertRaises(cdpcore.InvalidError) as cm:
            cdpcore.Engine(config='{\n  "types": [\n')
        self.assertEqual(cm.exception.status, _lib.CDP_EINVALID)
        self.assertRegex(str(cm.exception), re.compile(r"line|column|offset", re.I))

    def test_bad_config_value_names_its_json_path(self):
        config = cdpcore.default_config()
        config["id_types"]["mobile"]["trust"] = "very"
        with self.assertRaises(cdpcore.InvalidError) as cm:
            cdpcore.Engine(config=config)
        message = str(cm.exception)
        self.assertIn("mobile", message)
        self.assertIn("trust", message)

    def test_config_of_the_wrong_python_type(self):
        with self.assertRaises(TypeError):
            cdpcore.Engine(config=42)

    def test_unknown_oneid_is_not_found(self):
        with cdpcore.Engine() as e:
            with self.assertRaises(cdpcore.NotFoundError) as cm:
                e.person(123456789)
            self.assertEqual(cm.exception.status, _lib.CDP_ENOTFOUND)
            self.assertTrue(cm.exception.message)

    def test_unknown_rule_and_source_are_not_found(self):
        with cdpcore.Engine() as e:
            self.assertRaises(cdpcore.NotFoundError, e.remove_rule, 42)
            self.assertRaises(cdpcore.NotFoundError, e.remove_source, "nowhere")

    def test_unknown_rule_kind_is_invalid(self):
        with cdpcore.Engine() as e:
            with self.assertRaises(cdpcore.InvalidError):
                e._add_rule("maybe_link", ("mobile", "13957218846"),
                            ("member_no", "M2023000481"), "")

    def test_rule_on_a_value_that_does_not_normalise_is_invalid(self):
        with cdpcore.Engine() as e:
            with self.assertRaises(cdpcore.InvalidError):
                e.force_link(("mobile", "not a phone"), ("member_no", "M2023000481"))

    def test_a_batch_over_the_configured_limit_is_refused_whole(self):
        config = cdpcore.default_config()
        config["limits"]["max_batch_bytes"] = 100
        line = json.dumps({"source": "pos", "ts": 1700000000000, "ids": {"mobile": "13957218846"}})
        with cdpcore.Engine(config=config) as e:
            self.assertLess(len(line), 100)
            self.assertGreater(2 * len(line) + 1, 100)
            e.ingest([line])
            with self.assertRaises(cdpcore.LimitError):
                e.ingest([line, line])
            self.assertEqual(e.stats()["records"]["accepted"], 1)

    def test_persistent_engine_reopens_with_its_data(self):
        record = {"source": "pos", "ts": 1700000000000, "ids": {"mobile": "13957218846"}}
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "engine")
            with cdpcore.Engine(config={"oneid_seed": 3}, path=path) as e:
                e.ingest([record])
                oneid = e.resolve("mobile", "13957218846")
                self.assertEqual(e.stats()["durability"]["entries"], 1)
            with cdpcore.Engine(path=path) as e:
                self.assertEqual(e.resolve("mobile", "13957218846"), oneid)
                self.assertEqual(e.stats()["durability"]["replayed"], 1)
                # One open engine per directory.
                with self.assertRaises(cdpcore.CdpIOError) as held:
                    cdpcore.Engine(path=path)
                self.assertIn("in use", str(held.exception))
            with self.assertRaises(cdpcore.InvalidError) as other:
                cdpcore.Engine(config={"oneid_seed": 4}, path=path)
            self.assertIn("another config", str(other.exception))
            with self.assertRaises(cdpcore.CdpIOError):
                cdpcore.Engine(path=os.path.join(d, "no", "parent"))

    def test_snapshot_is_loaded_on_reopen(self):
        records = [{"source": "pos", "ts": 1700000000000 + k, "ids": {"mobile": f"1395721{k:04d}"}}
                   for k in range(20)]
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "engine")
            with self.assertRaises(cdpcore.UnsupportedError):
                cdpcore.Engine().snapshot()
            with cdpcore.Engine(path=path) as e:
                e.ingest(records[:10])
                snap = e.snapshot()
                self.assertEqual(snap["seq"], 1)
                self.assertRegex(snap["file"], r"^snap-[0-9a-f]{16}\.cdp$")
                self.assertTrue(os.path.exists(os.path.join(path, snap["file"])))
                e.ingest(records[10:])
                oneid = e.resolve("mobile", "13957210019")
            with cdpcore.Engine(path=path) as e:
                d_stats = e.stats()["durability"]
                self.assertEqual(d_stats["snapshots"]["loaded"], snap["file"])
                self.assertEqual(d_stats["replayed"], 1)  # only the batch after the snapshot
                self.assertEqual(e.resolve("mobile", "13957210019"), oneid)
                self.assertEqual(e.stats()["persons"], 20)

    def test_forget_leaves_no_value_on_disk_and_export_holds_everything(self):
        person = [{"source": "crm", "ts": 1700000000000, "ids": {"mobile": "13957299901", "email": "py.gone@x.com"},
                   "attrs": {"name": "赵某某", "city": "上海"}},
                  {"source": "tmall", "ts": 1700000001000, "ids": {"email": "py.gone@x.com"},
                   "event": {"type": "order", "amount": "12.30", "sku": "PY-SKU-9"}},
                  {"source": "crm", "ts": 1700000002000, "ids": {"mobile": "13957299902"},
                   "attrs": {"city": "上海"}}]
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "engine")
            with cdpcore.Engine(path=path) as e:
                e.ingest(person)
                e.snapshot()
                oneid = e.resolve("mobile", "13957299901")
                export = e.export_person(oneid)
                self.assertEqual(export["format"], "cdpcore.person_export")
                self.assertEqual(export["events"][0]["properties"]["sku"], "PY-SKU-9")
                self.assertEqual(export["events"][0]["amount"], Decimal("12.30"))
                report = e.forget(identifiers=[("email", "py.gone@x.com")])
                self.assertEqual(report["forgotten"][0]["oneid"], oneid)
                self.assertFalse(report["erasure_pending"])
                with self.assertRaises(cdpcore.NotFoundError):
                    e.forget(oneids=[oneid])
                with self.assertRaises(cdpcore.NotFoundError):
                    e.export_person(oneid)
                self.assertEqual(e.stats()["privacy"]["forgotten"], 1)
            for name in os.listdir(path):
                with open(os.path.join(path, name), "rb") as f:
                    data = f.read()
                for value in ("13957299901", "py.gone@x.com", "赵某某", "PY-SKU-9"):
                    self.assertNotIn(value.encode("utf-8"), data, name)

    def test_hashed_identifiers_match_without_raw_values_and_keep_to_their_key(self):
        config = {"id_types": {"mobile": {"hashed": True}}}
        key = b"python host key \x00\xff 0123"
        records = [{"source": "crm", "ts": 1700000000000, "ids": {"mobile": "+86 139-5729-9955", "member_no": "PYM1"}},
                   {"source": "app", "ts": 1700000001000, "ids": {"mobile": "13957299955"}}]
        with self.assertRaises(cdpcore.InvalidError):
            cdpcore.Engine(config)  # a hashed type needs the key
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "engine")
            with cdpcore.Engine(config, path=path, key=key) as e:
                e.ingest(records)
                oneid = e.resolve("mobile", "13957299955")
                self.assertEqual(e.resolve("member_no", "PYM1"), oneid)
                shown = [i["value"] for i in e.person(oneid, mask=False)["identifiers"] if i["type"] == "mobile"]
                self.assertEqual(len(shown), 1)
                self.assertTrue(shown[0].startswith("#") and shown[0].endswith("|139****9955"), shown)
                self.assertEqual(e.resolve("mobile", shown[0]), oneid)
            for name in os.listdir(path):
                with open(os.path.join(path, name), "rb") as f:
                    self.assertNotIn(b"13957299955", f.read(), name)
            with self.assertRaises(cdpcore.InvalidError):
                cdpcore.Engine(path=path, key=b"some other key of enough bytes")
            with cdpcore.Engine(path=path, key=key) as e:
                self.assertEqual(e.resolve("mobile", "139 5729 9955"), oneid)

    def test_closed_engine_is_misuse(self):
        e = cdpcore.Engine()
        e.close()
        with self.assertRaises(cdpcore.MisuseError):
            e.resolve("mobile", "13957218846")


if __name__ == "__main__":
    unittest.main()
