"""Tags and audiences through the binding: define_tags, tags, person_tags, advance, the
audience queries (count, members, distribution, export), saved audiences, metrics'
argument handling, the typed errors, and a persistent engine that keeps all of it."""

import csv
import io
import json
import tempfile
import unittest
from decimal import Decimal

from support import record

import cdpcore

MAR1 = 1709222400000          # 2024-03-01T00:00:00+08:00
DAY = 86400000
HOUR = 3600000


def mobile(k):
    return f"139{10000000 + k}"


def order(k, ts, yuan, channel="tmall"):
    r = record("shop", ts, mobile=mobile(k))
    r["event"] = {"type": "order", "amount": yuan, "channel": channel}
    return r


SPEND_TIER = [
    {"name": "spend", "kind": "statistic", "fn": "sum", "event": "order", "prop": "amount"},
    {"name": "tier", "kind": "rule", "version": 2, "description": "by spend",
     "rules": [{"when": "tags.spend >= yuan(500)", "value": "high"},
               {"when": "tags.spend > 0", "value": "low"}],
     "default": "none"},
    {"name": "channel", "kind": "preference", "event": "order", "prop": "channel"},
]


class TagsTest(unittest.TestCase):
    def setUp(self):
        self.e = cdpcore.Engine()
        self.addCleanup(self.e.close)
        # Person k spent 10k yuan, on jd when k is a multiple of 4, else on tmall.
        self.e.ingest([order(k, MAR1 + k * HOUR, k * 10, "jd" if k % 4 == 0 else "tmall")
                       for k in range(1, 41)])
        self.oneid = {k: self.e.resolve("mobile", mobile(k)) for k in (1, 20, 40)}

    def test_define_tags_accepts_a_list_a_dict_or_json_text(self):
        report = self.e.define_tags(SPEND_TIER)
        self.assertEqual([d["name"] for d in report["defined"]], ["spend", "tier", "channel"])
        self.assertEqual(report["defined"][1]["version"], 2)
        self.e.define_tags({"name": "buyer", "kind": "rule", "when": "count(order) > 0"})
        self.e.define_tags(json.dumps({"name": "big", "kind": "rule", "when": "tags.spend > 300"}))
        catalogue = {t["name"]: t for t in self.e.tags()}
        self.assertEqual(list(catalogue)[:2], ["spend", "tier"])  # dependency order
        self.assertEqual((catalogue["spend"]["type"], catalogue["spend"]["index"]), ("money", "number"))
        self.assertEqual(catalogue["tier"]["reads"], ["spend"])
        self.assertEqual(catalogue["tier"]["description"], "by spend")
        self.assertEqual(catalogue["buyer"]["persons"], 40)

    def test_person_tags_are_exact_and_kept_current(self):
        self.e.define_tags(SPEND_TIER)
        tags = self.e.person_tags(self.oneid[40])
        self.assertEqual(tags["spend"], {"value": Decimal("400.00"), "version": 1})
        self.assertEqual(tags["tier"]["value"], "low")
        self.assertEqual(tags["channel"]["value"], "jd")
        self.assertEqual(self.e.person(self.oneid[40])["tags"]["tier"]["version"], 2)
        # A new order re-evaluates the dependent tags; the feed says why.
        self.e.ingest([order(40, MAR1 + 50 * HOUR, 200)])
        self.assertEqual(self.e.person_tags(self.oneid[40])["tier"]["value"], "high")
        changes = [ev for ev in self.e.feed_iter() if ev["kind"] == "tag_changed" and ev["tag"] == "tier"]
        self.assertEqual([(c["from"], c["to"], c["reason"]) for c in changes], [("low", "high", "rules[0]")])

    def test_advance_turns_a_window_off_at_local_midnight(self):
        self.e.define_tags({"name": "recent", "kind": "rule", "when": "count(order, 7d) > 0"})
        self.assertTrue(self.e.person_tags(self.oneid[1])["recent"]["value"])
        # Persons 1..23 ordered on March 1 (local), in the last 7 days through March 7;
        # persons 24..40 on March 2, through March 8.
        r = self.e.advance(MAR1 + 6 * DAY + 23 * HOUR)
        self.assertEqual((r["changed"], r["next"]), (0, MAR1 + 7 * DAY))
        r = self.e.advance(MAR1 + 7 * DAY)
        self.assertEqual((r["changed"], r["next"]), (23, MAR1 + 8 * DAY))
        self.assertGreaterEqual(r["persons"], 23)  # re-evaluated: at least those that changed
        self.assertFalse(self.e.person_tags(self.oneid[1])["recent"]["value"])
        self.assertTrue(self.e.person_tags(self.oneid[40])["recent"]["value"])
        r = self.e.advance(MAR1 + 9 * DAY)
        self.assertEqual((r["changed"], r["next"]), (17, None))
        with self.assertRaises(cdpcore.ConflictError):
            self.e.advance(MAR1)  # the clock never goes back

    def test_drop_tag(self):
        self.e.define_tags(SPEND_TIER)
        with self.assertRaises(cdpcore.ConflictError) as cm:
            self.e.drop_tag("spend")
        self.assertIn("read by tag tier", str(cm.exception))
        self.e.drop_tag("tier")
        self.e.drop_tag("spend")
        with self.assertRaises(cdpcore.NotFoundError):
            self.e.drop_tag("spend")
        self.assertEqual([t["name"] for t in self.e.tags()], ["channel"])

    def test_definition_errors_are_typed_and_name_the_field(self):
        with self.assertRaises(cdpcore.InvalidError) as cm:
            self.e.define_tags([{"name": "a", "kind": "rule", "when": "true"},
                                {"name": "b", "kind": "rule", "rules": [{"when": "count(order", "value": "x"}]}])
        self.assertIn("tags[1] (b).rules[0].when: line 1, column", str(cm.exception))
        with self.assertRaises(cdpcore.InvalidError) as cm:
            self.e.define_tags('{"name": "x", "kind": "rule", "when": "true",}')
        self.assertIn("line 1, column", str(cm.exception))
        self.assertEqual(self.e.tags(), [])  # a refused call installs nothing
        with self.assertRaises(cdpcore.NotFoundError):
            self.e.person_tags(12345)


class AudienceTest(unittest.TestCase):
    def setUp(self):
        self.e = cdpcore.Engine()
        self.addCleanup(self.e.close)
        self.e.ingest([order(k, MAR1 + k * HOUR, k * 10, "jd" if k % 4 == 0 else "tmall")
                       for k in range(1, 41)] +
                      [{"source": "jd", "ts": MAR1, "ids": {"buyer_id": "jd-7"},
                        "event": {"type": "order", "amount": 999}}])
        self.e.define_tags(SPEND_TIER)

    def test_count_by_text_ast_and_with_holdout(self):
        c = self.e.audience_count("tags.spend >= 200")
        self.assertEqual(c["count"], 22)  # persons 20..40 and the jd buyer
        self.assertEqual(c["plan"]["indexed_leaves"], 1)
        with self.e.compile("tags.spend >= 200") as x:
            self.assertEqual(self.e.audience_count(x.ast)["count"], 22)
            self.assertEqual(self.e.audience_count(ast=x.ast)["count"], 22)
        h = self.e.audience_count("tags.spend >= 200", holdout={"salt": "c1", "percent": 25})
        self.assertEqual(h["target"] + h["holdout"], 22)
        self.assertEqual(self.e.audience_count("tags.spend >= 200", holdout={"salt": "c1", "percent": 25},
                                               group="holdout")["count"], h["holdout"])
        # now= moves the expression's own windows, not the tags.
        self.assertEqual(self.e.audience_count("count(order, 7d) > 0")["count"], 41)
        self.assertEqual(self.e.audience_count("count(order, 7d) > 0", now=MAR1 + 30 * DAY)["count"], 0)

    def test_exactly_one_of_expr_ast_audience(self):
        with self.assertRaises(TypeError):
            self.e.audience_count()
        with self.assertRaises(TypeError):
            self.e.audience_count("true", audience="x")

    def test_members_iterate_over_every_page(self):
        members = list(self.e.audience_members("tags.spend >= 200", ids=["mobile"], page_size=5))
        self.assertEqual(len(members), 22)
        self.assertEqual(len({m["oneid"] for m in members}), 22)
        forty = self.e.resolve("mobile", mobile(40))
        by_id = {m["oneid"]: m for m in members}
        self.assertEqual(by_id[forty]["ids"], {"mobile": ["139****0040"]})  # masked by default
        plain = {m["oneid"]: m for m in self.e.audience_members("tags.spend >= 400", ids=["mobile"],
                                                                  mask=False)}
        self.assertEqual(plain[forty]["ids"]["mobile"], [mobile(40)])
        self.assertEqual(len(plain), 2)  # and the jd buyer, who has no mobile
        self.assertIn({"mobile": []}, [m["ids"] for m in plain.values()])
        self.assertEqual(list(self.e.audience_members("false")), [])

    def test_distribution(self):
        d = self.e.audience_distribution("true", tags=["channel", "tier"], top=1)
        self.assertEqual(d["count"], 41)
        self.assertEqual(d["tags"]["channel"],
                         {"values": [{"value": "tmall", "count": 30}], "other": 10, "none": 1})
        self.assertEqual(sum(v["count"] for v in d["tags"]["tier"]["values"]) + d["tags"]["tier"]["other"]
                         + d["tags"]["tier"]["none"], 41)
        spend = self.e.audience_distribution("tags.spend == 400", tags=["spend"])["tags"]["spend"]
        self.assertEqual(spend["values"], [{"value": Decimal("400.00"), "count": 1}])
        with self.assertRaises(cdpcore.InvalidError):
            self.e.audience_distribution("true", tags=["nope"])

    def test_export_with_channel_fallback(self):
        lines = self.e.audience_export("tags.spend >= yuan(390)", channel=["mobile"]).splitlines()
        rows = [json.loads(line) for line in lines]
        self.assertEqual(len(rows), 3)
        self.assertIn({"type": "buyer_id", "value": "jd-7", "fallback_source": "jd"},
                      [{k: r[k] for k in r if k != "oneid"} for r in rows])
        table = list(csv.DictReader(io.StringIO(
            self.e.audience_export("tags.spend >= yuan(390)", channel=["mobile"], format="csv",
                                   mask=True, fallback=False))))
        self.assertEqual([(r["type"], r["value"]) for r in table],
                         [("mobile", "139****0039"), ("mobile", "139****0040")])
        with self.assertRaises(cdpcore.InvalidError):
            self.e.audience_export("true", channel=["fax"])

    def test_saved_audiences_recount_and_feed(self):
        saved = self.e.save_audience("big", "tags.spend >= 390", holdout={"salt": "vip", "percent": 50})
        self.assertEqual(saved, {"name": "big", "count": 3})
        first = self.e.recount_audience("big")
        self.assertEqual((first["count"], first["previous"], first["entered"]), (3, None, 3))
        self.e.ingest([order(1, MAR1 + 50 * HOUR, 500)])
        again = self.e.recount_audience("big")
        self.assertEqual((again["count"], again["previous"], again["entered"], again["left"]), (4, 3, 1, 0))
        [listed] = self.e.audiences()
        self.assertEqual((listed["name"], listed["counts"], listed["count"]), ("big", 2, 4))
        self.assertEqual(listed["request"]["holdout"], {"salt": "vip", "percent": 50})
        self.assertEqual(self.e.audience_count(audience="big")["count"], 4)
        counted = [ev for ev in self.e.feed_iter() if ev["kind"] == "audience_counted"]
        self.assertEqual([ev["count"] for ev in counted], [3, 4])
        self.e.drop_audience("big")
        self.assertEqual(self.e.audiences(), [])
        with self.assertRaises(cdpcore.NotFoundError):
            self.e.recount_audience("big")
        with self.assertRaises(cdpcore.NotFoundError):
            self.e.drop_audience("big")
        with self.assertRaises(cdpcore.NotFoundError):
            self.e.audience_count(audience="big")

    def test_request_errors_are_typed(self):
        with self.assertRaises(cdpcore.InvalidError) as cm:
            self.e.audience_count("count(order")
        self.assertIn("audience expression: line 1, column", str(cm.exception))
        with self.assertRaises(cdpcore.InvalidError) as cm:
            self.e.audience_count("true", holdout={"percent": 10})
        self.assertIn("holdout.salt", str(cm.exception))
        with self.assertRaises(cdpcore.InvalidError):
            self.e.save_audience("", "true")
        with self.assertRaises(TypeError):
            self.e.audience_export("true", channel="mobile")

    def test_metrics_takes_a_dict_or_text_and_closed_engines_refuse(self):
        # The metric itself is docs/metrics.md's business; the binding passes the request
        # through and raises what the library answers.
        for request in ({"metric": "nope"}, '{"metric": "nope"}'):
            with self.assertRaises((cdpcore.InvalidError, cdpcore.UnsupportedError)):
                self.e.metrics(request)
        self.e.close()
        with self.assertRaises(cdpcore.MisuseError):
            self.e.audience_count("true")
        with self.assertRaises(cdpcore.MisuseError):
            self.e.tags()


class PersistentTagsTest(unittest.TestCase):
    def test_reopened_engine_has_the_same_tags_and_audiences(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = f"{tmp}/engine"
            with cdpcore.Engine(path=path) as e:
                e.ingest([order(k, MAR1 + k * HOUR, k * 100) for k in range(1, 9)])
                e.define_tags(SPEND_TIER + [{"name": "recent", "kind": "rule",
                                             "when": "count(order, 7d) > 0"}])
                e.save_audience("active_high", 'tags.recent && tags.tier == "high"')
                e.recount_audience("active_high")
                e.advance(MAR1 + 8 * DAY)
                e.recount_audience("active_high")
                before = (e.tags(), e.audiences(),
                          [e.person_tags(e.resolve("mobile", mobile(k))) for k in range(1, 9)])
            self.assertEqual(before[1][0]["count"], 0)  # everyone's orders left the window
            with cdpcore.Engine(path=path) as e:
                after = (e.tags(), e.audiences(),
                         [e.person_tags(e.resolve("mobile", mobile(k))) for k in range(1, 9)])
                self.assertEqual(after, before)
                self.assertEqual(e.stats()["durability"]["replayed"], 6)


if __name__ == "__main__":
    unittest.main()
