"""Every Engine method against the real library."""

import gc
import json
import sys
import unittest

from support import record

import cdpcore
from cdpcore import _lib

M1, M2 = "13957218846", "13761904425"          # mobiles
U1 = "oKq3Wt5xZ8ePb2Lr9Yc6Vn1Md4Hs"             # WeChat unionid
N1, N2 = "M2023000481", "M2023000917"          # member numbers
TS = 1700000000000


class EngineTestCase(unittest.TestCase):
    def setUp(self):
        self.e = cdpcore.Engine()
        self.addCleanup(self.e.close)

    def same_person(self, a, b):
        oa, ob = self.e.resolve(*a), self.e.resolve(*b)
        self.assertIsNotNone(oa, a)
        self.assertIsNotNone(ob, b)
        return oa == ob


class LifetimeTest(unittest.TestCase):
    def test_default_config_round_trips_as_dict_and_as_text(self):
        config = cdpcore.default_config()
        self.assertIsInstance(config, dict)
        self.assertIn("mobile", json.dumps(config))
        for form in (config, json.dumps(config), json.dumps(config).encode()):
            with cdpcore.Engine(config=form) as e:
                e.ingest([record("pos", TS, mobile=M1)])
                self.assertIsNotNone(e.resolve("mobile", M1))

    def test_context_manager_closes_and_close_is_idempotent(self):
        with cdpcore.Engine() as e:
            self.assertIn("open", repr(e))
        self.assertIn("closed", repr(e))
        e.close()
        with self.assertRaises(cdpcore.MisuseError):
            e.stats()

    def test_every_method_of_a_closed_engine_raises_misuse(self):
        e = cdpcore.Engine()
        e.close()
        calls = {
            "ingest": lambda: e.ingest([record("pos", TS, mobile=M1)]),
            "ingest_record": lambda: e.ingest_record(record("pos", TS, mobile=M1)),
            "resolve": lambda: e.resolve("mobile", M1),
            "person": lambda: e.person(1),
            "person_identifiers": lambda: e.person_identifiers(1),
            "compile": lambda: e.compile("true"),
            "persons": lambda: list(e.persons()),
            "explain": lambda: e.explain(("mobile", M1), ("mobile", M2)),
            "remove_identifier": lambda: e.remove_identifier("mobile", M1),
            "remove_source": lambda: e.remove_source("pos"),
            "split": lambda: e.split(1, ["mobile:" + M1]),
            "force_link": lambda: e.force_link(("mobile", M1), ("mobile", M2)),
            "never_link": lambda: e.never_link(("mobile", M1), ("mobile", M2)),
            "remove_rule": lambda: e.remove_rule(1),
            "rules": lambda: e.rules(),
            "feed": lambda: e.feed(),
            "feed_iter": lambda: list(e.feed_iter()),
            "trim_feed": lambda: e.trim_feed(0),
            "stats": lambda: e.stats(),
        }
        for name, call in calls.items():
            with self.subTest(method=name), self.assertRaises(cdpcore.MisuseError) as cm:
                call()
            self.assertIn("closed", str(cm.exception))

    def test_del_closes_without_raising(self):
        unraisable = []
        old_hook, sys.unraisablehook = sys.unraisablehook, unraisable.append
        try:
            e = cdpcore.Engine()
            e.ingest([record("pos", TS, mobile=M1)])
            del e
            gc.collect()
        finally:
            sys.unraisablehook = old_hook
        self.assertEqual(unraisable, [])

    def test_version_matches_the_runtime_number(self):
        n = _lib.cdp_version()
        self.assertEqual(cdpcore.version(), f"{n // 10000}.{n // 100 % 100}.{n % 100}")
        self.assertEqual(n // 10000, _lib.CDP_VERSION_MAJOR)


class IngestTest(EngineTestCase):
    RECORDS = [record("pos", TS, mobile=M1),
               record("app", TS + 1, mobile="+86 139-5721-8846", member_no=N1),
               record("crm", TS + 2, member_no=N2)]

    def test_every_input_form_gives_the_same_report(self):
        lines = [json.dumps(r) for r in self.RECORDS]
        forms = {
            "dicts": self.RECORDS,
            "generator": (r for r in self.RECORDS),
            "str lines": [line + "\n" for line in lines],
            "bytes lines": [line.encode() for line in lines],
            "str ndjson": "\n".join(lines) + "\n",
            "bytes ndjson": "\n".join(lines).encode(),
        }
        for name, form in forms.items():
            with self.subTest(form=name), cdpcore.Engine() as e:
                report = e.ingest(form)
                self.assertEqual((report["lines"], report["accepted"], report["rejected"]),
                                 (3, 3, 0))
                self.assertEqual(e.stats()["persons"], 2)

    def test_a_malformed_line_is_reported_and_the_rest_lands(self):
        report = self.e.ingest([json.dumps(self.RECORDS[0]), '{"source": "pos", "ts": ',
                                json.dumps(self.RECORDS[2])])
        self.assertEqual((report["accepted"], report["rejected"]), (2, 1))
        self.assertEqual(report["errors"][0]["line"], 2)
        self.assertIsNotNone(self.e.resolve("member_no", N2))

    def test_assign_gives_each_line_its_oneid(self):
        report = self.e.ingest([self.RECORDS[0], '{"ts": 1}', self.RECORDS[2]], assign=True)
        self.assertEqual(report["assign"], [self.e.resolve("mobile", M1), 0,
                                            self.e.resolve("member_no", N2)])
        self.assertNotIn(0, (report["assign"][0], report["assign"][2]))

    def test_ingest_record_returns_the_oneid(self):
        report = self.e.ingest_record(self.RECORDS[1])
        self.assertEqual(report["oneid"], self.e.resolve("member_no", N1))
        report = self.e.ingest_record(json.dumps(self.RECORDS[0], indent=2))
        self.assertEqual(report["oneid"], self.e.resolve("member_no", N1))

    def test_a_malformed_record_raises_naming_the_field_and_lands_nothing(self):
        with self.assertRaises(cdpcore.InvalidError) as cm:
            self.e.ingest_record({"source": "pos", "ts": [1], "ids": {"mobile": M1}})
        self.assertIn("ts", str(cm.exception))
        self.assertEqual(self.e.stats()["records"]["accepted"], 0)
        self.assertIsNone(self.e.resolve("mobile", M1))

    def test_a_junk_placeholder_links_nobody(self):
        report = self.e.ingest([record("pos", TS, mobile="13800138000", unionid=U1),
                                record("pos", TS, mobile="138-0013-8000", member_no=N1)])
        self.assertEqual(report["accepted"], 2)
        self.assertEqual(report["ids"]["accepted"], 2)
        self.assertIsNone(self.e.resolve("mobile", "13800138000"))
        self.assertFalse(self.same_person(("unionid", U1), ("member_no", N1)))

    def test_report_has_the_fields_cdp_h_documents(self):
        report = self.e.ingest([record("pos", TS, mobile="13800138000", unionid=U1, foo="x")])
        # "ids":{"accepted":N,"rejected":N,"by_reason":{"invalid":N,"blocked":N,...}}
        self.assertEqual(report["ids"], {"accepted": 2, "rejected": 1, "by_reason": {"blocked": 1}})
        self.assertEqual(report["unknown_types"], {"foo": 1})

    def test_arguments_that_would_garble_the_batch_are_refused(self):
        with self.assertRaises(TypeError):
            self.e.ingest(self.RECORDS[0])  # one dict, not a batch
        with self.assertRaises(ValueError):
            self.e.ingest(['{"ts": 1,\n"ids": {}}'])  # a line that is two lines


class PersonsTest(EngineTestCase):
    def test_resolve_normalises_and_answers_none_when_unknown(self):
        self.e.ingest([record("pos", TS, mobile="+86 139-5721-8846")])
        self.assertEqual(self.e.resolve("mobile", M1), self.e.resolve("mobile", "0086 13957218846"))
        self.assertIsNotNone(self.e.resolve("mobile", M1))
        self.assertIsNone(self.e.resolve("mobile", M2))
        self.assertIsNone(self.e.resolve("unionid", U1))

    def test_resolve_records_answers_per_line_without_ingesting(self):
        lines = [record("pos", TS, mobile=M1), record("pos", TS, mobile=M2)]
        self.e.ingest(lines[:1])
        before = self.e.stats()["records"]["accepted"]
        self.assertEqual(self.e.resolve_records(lines), [self.e.resolve("mobile", M1), 0])
        self.assertEqual(self.e.stats()["records"]["accepted"], before)

    def test_person_lists_identifiers_and_masks_on_request(self):
        self.e.ingest([record("app", TS, mobile=M1, member_no=N1)])
        oneid = self.e.resolve("mobile", M1)
        person = self.e.person(oneid)
        self.assertEqual(person["oneid"], oneid)
        self.assertEqual({(i["type"], i["value"]) for i in person["identifiers"]},
                         {("mobile", M1), ("member_no", N1)})
        masked = self.e.person(oneid, mask=True)
        mobile = [i["value"] for i in masked["identifiers"] if i["type"] == "mobile"][0]
        self.assertNotEqual(mobile, M1)
        self.assertIn("*", mobile)
        with self.assertRaises(cdpcore.NotFoundError):
            self.e.person(oneid + 1000)

    def test_person_has_the_fields_cdp_h_documents(self):
        self.e.ingest([record("pos", TS, mobile=M1), record("app", TS + 5, mobile=M1)])
        person = self.e.person(self.e.resolve("mobile", M1))
        for key in ("oneid", "requested", "size", "first_seen", "anchor", "identifiers"):
            self.assertIn(key, person)
        self.assertEqual(person["first_seen"], TS)
        self.assertEqual(person["anchor"], "mobile:" + M1)
        self.assertEqual(person["identifiers"][0],
                         {"type": "mobile", "value": M1, "trust": "strong", "first_seen": TS})

    def test_an_absorbed_oneid_answers_for_its_survivor(self):
        a = self.e.ingest_record(record("pos", TS, mobile=M1))["oneid"]
        b = self.e.ingest_record(record("wecom", TS + 1, unionid=U1))["oneid"]
        self.assertNotEqual(a, b)
        self.e.ingest_record(record("crm", TS + 2, mobile=M1, unionid=U1))
        survivor = self.e.resolve("mobile", M1)
        self.assertIn(survivor, (a, b))
        absorbed = b if survivor == a else a
        person = self.e.person(absorbed)
        self.assertEqual((person["oneid"], person["requested"]), (survivor, absorbed))

    def test_persons_iterates_every_page(self):
        mobiles = [f"1391234{i:04d}" for i in range(1, 26)]
        self.e.ingest(record("pos", TS + i, mobile=m) for i, m in enumerate(mobiles))
        persons = list(self.e.persons(page_size=4))
        self.assertEqual(len(persons), 25)
        self.assertEqual(len({p["oneid"] for p in persons}), 25)
        self.assertEqual(len(persons), self.e.stats()["persons"])
        values = {i["value"] for p in persons for i in p["identifiers"]}
        self.assertEqual(values, set(mobiles))
        masked = {i["value"] for p in self.e.persons(mask=True) for i in p["identifiers"]}
        self.assertTrue(masked.isdisjoint(mobiles))

    def test_explain_gives_the_path_or_what_kept_apart(self):
        self.e.ingest([record("app", TS, mobile=M1, member_no=N1),
                       record("crm", TS, member_no=N2)])
        linked = self.e.explain(("mobile", M1), ("member_no", N1))
        self.assertTrue(linked["linked"])
        self.assertEqual(linked["oneid"], self.e.resolve("mobile", M1))
        self.assertEqual(linked["path"][0]["source"], "app")
        apart = self.e.explain(("mobile", M1), ("member_no", N2))
        self.assertFalse(apart["linked"])
        self.assertEqual(sorted(apart["oneids"]),
                         sorted([self.e.resolve("mobile", M1), self.e.resolve("member_no", N2)]))
        with self.assertRaises(cdpcore.NotFoundError):
            self.e.explain(("mobile", M1), ("unionid", U1))


class UnmergeTest(EngineTestCase):
    def test_remove_identifier_cuts_the_evidence_through_it(self):
        self.e.ingest([record("wecom", TS, mobile=M1, unionid=U1),
                       record("crm", TS + 1, unionid=U1, member_no=N1)])
        self.assertTrue(self.same_person(("mobile", M1), ("member_no", N1)))
        result = self.e.remove_identifier("unionid", U1)
        self.assertEqual(len(result["oneids"]), 2)
        self.assertIsNone(self.e.resolve("unionid", U1))
        self.assertFalse(self.same_person(("mobile", M1), ("member_no", N1)))
        with self.assertRaises(cdpcore.NotFoundError):
            self.e.remove_identifier("unionid", U1)

    def test_remove_source_drops_the_links_it_made(self):
        self.e.ingest([record("pos", TS, mobile=M1), record("crm", TS, member_no=N1),
                       record("bad_sys", TS + 1, mobile=M1, member_no=N1)])
        self.assertTrue(self.same_person(("mobile", M1), ("member_no", N1)))
        self.e.remove_source("bad_sys")
        self.assertFalse(self.same_person(("mobile", M1), ("member_no", N1)))
        with self.assertRaises(cdpcore.NotFoundError):
            self.e.remove_source("no_such_source")

    def test_split_separates_and_keeps_apart(self):
        joined = record("crm", TS, mobile=M1, unionid=U1, member_no=N1)
        self.e.ingest([joined])
        oneid = self.e.resolve("mobile", M1)
        with self.assertRaises(cdpcore.InvalidError):
            self.e.split(oneid, [])
        result = self.e.split(oneid, [("unionid", U1)])
        self.assertEqual(len(result["oneids"]), 2)
        self.assertFalse(self.same_person(("mobile", M1), ("unionid", U1)))
        self.assertTrue(self.same_person(("mobile", M1), ("member_no", N1)))
        self.assertEqual([r["kind"] for r in self.e.rules()], ["never_link"])
        self.e.ingest([dict(joined, ts=TS + 1)])
        self.assertFalse(self.same_person(("mobile", M1), ("unionid", U1)))

    def test_force_link_joins_and_remove_rule_undoes_it(self):
        self.e.ingest([record("pos", TS, mobile=M1), record("crm", TS, member_no=N1)])
        rule = self.e.force_link(("mobile", M1), ("member_no", N1), note="call centre check")
        self.assertTrue(self.same_person(("mobile", M1), ("member_no", N1)))
        rules = self.e.rules()
        self.assertEqual([(r["id"], r["kind"], r["note"]) for r in rules],
                         [(rule, "force_link", "call centre check")])
        self.assertEqual({rules[0]["a"], rules[0]["b"]}, {"mobile:" + M1, "member_no:" + N1})
        self.e.remove_rule(rule)
        self.assertEqual(self.e.rules(), [])
        self.assertFalse(self.same_person(("mobile", M1), ("member_no", N1)))
        with self.assertRaises(cdpcore.NotFoundError):
            self.e.remove_rule(rule)

    def test_never_link_keeps_apart_and_refuses_a_contradicting_force_link(self):
        rule = self.e.never_link(("mobile", M1), ("member_no", N1), note="two siblings")
        self.assertIsInstance(rule, int)
        self.e.ingest([record("app", TS, mobile=M1, member_no=N1)])
        self.assertFalse(self.same_person(("mobile", M1), ("member_no", N1)))
        with self.assertRaises(cdpcore.ConflictError):
            self.e.force_link(("mobile", M1), ("member_no", N1))
        self.e.remove_rule(rule)
        self.e.force_link(("mobile", M1), ("member_no", N1))
        self.assertTrue(self.same_person(("mobile", M1), ("member_no", N1)))


class FeedAndStatsTest(EngineTestCase):
    def test_feed_pages_iterates_and_trims(self):
        self.e.ingest([record("pos", TS, mobile=M1), record("wecom", TS + 1, unionid=U1)])
        self.e.ingest([record("crm", TS + 2, mobile=M1, unionid=U1)])
        events, next_cursor = self.e.feed(0)
        kinds = [ev["kind"] for ev in events]
        self.assertEqual(kinds.count("person_created"), 2)
        self.assertIn("merged", kinds)
        seqs = [ev["seq"] for ev in events]
        self.assertEqual(seqs, sorted(set(seqs)))
        self.assertGreater(next_cursor, seqs[-1])
        self.assertEqual(self.e.feed(next_cursor)[0], [])
        self.assertEqual(list(self.e.feed_iter(0, limit=1)), events)
        self.assertEqual(list(self.e.feed_iter(seqs[1])), events[1:])

        self.e.trim_feed(next_cursor)
        self.assertEqual(self.e.stats()["feed"]["first"], next_cursor)
        self.assertEqual(self.e.feed(0)[0], [])

    def test_stats_count_what_was_ingested(self):
        self.e.ingest([record("wecom", TS, mobile=M1, unionid=U1),
                       record("crm", TS, member_no=N1)])
        stats = self.e.stats()
        self.assertEqual((stats["persons"], stats["identifiers"]), (2, 3))
        self.assertEqual(stats["records"], {"accepted": 2, "rejected": 0})
        self.assertGreater(stats["memory"]["total"], 0)


if __name__ == "__main__":
    unittest.main()
