"""Profiles and expressions through the binding: the person document, compile, ast,
evaluate, and their errors."""

import unittest
from decimal import Decimal

from support import record

import cdpcore

M1 = "13957218846"
MAR1 = 1709222400000          # 2024-03-01T00:00:00+08:00
DAY = 86400000


def event(source, ts, type_, amount=None, attrs=None, **props):
    r = record(source, ts, mobile=M1)
    r["event"] = {"type": type_, **props}
    if amount is not None:
        r["event"]["amount"] = amount
    if attrs:
        r["attrs"] = attrs
    return r


class ProfileTest(unittest.TestCase):
    def setUp(self):
        self.e = cdpcore.Engine(config={"attributes": {"birthday": {"type": "date"}}})
        self.addCleanup(self.e.close)
        self.e.ingest([
            event("tmall", MAR1 - 40 * DAY, "order", "199.00", {"city": "杭州"}),
            event("pos", MAR1 - 3 * DAY, "order", "0.29", {"city": "上海", "birthday": "1996-05-04"}),
            event("app", MAR1 - 1, "visit", channel="app"),
        ])
        self.oneid = self.e.resolve("mobile", M1)

    def test_person_has_attributes_with_lineage_and_event_summary(self):
        p = self.e.person(self.oneid, mask=True)
        self.assertEqual(p["attributes"]["city"]["value"], "上海")
        self.assertEqual(p["attributes"]["city"]["source"], "pos")
        self.assertEqual(p["attributes"]["city"]["ts"], MAR1 - 3 * DAY)
        self.assertEqual(p["attributes"]["birthday"]["value"], "1996-05-04")
        self.assertEqual(p["events"]["order"]["count"], 2)
        self.assertEqual(p["events"]["order"]["amount"], Decimal("199.29"))  # exact
        self.assertEqual(p["identifiers"][0]["value"], "139****8846")
        self.assertEqual(p["last_seen"], MAR1 - 1)
        self.assertEqual(self.e.person_identifiers(self.oneid)["oneid"], self.oneid)

    def test_compile_evaluate_and_valid_until(self):
        with self.e.compile('attrs.city == "上海" && count(order, 30d) >= 1') as x:
            r = x.evaluate(self.oneid, MAR1 + 10 * 3600000)
            self.assertEqual((r.value, r.kind), (True, "bool"))
            self.assertEqual(r.valid_until, MAR1 + 27 * DAY)  # the Feb 27 order leaves the window
            # 30 days later the order has left the window.
            self.assertFalse(x.evaluate(self.oneid, MAR1 + 30 * DAY).value)
        with self.e.compile("sum(order.amount)") as total:
            r = total.evaluate(self.oneid, MAR1)
            self.assertEqual((r.value, r.kind, r.valid_until), (Decimal("199.29"), "money", None))

    def test_ast_round_trips_through_compile(self):
        x = self.e.compile('attrs.city in ["上海", "北京"] || ids.mobile > 1')
        again = self.e.compile(x.ast)
        self.assertEqual(again.ast, x.ast)
        self.assertEqual(again.evaluate(self.oneid, MAR1).value, True)
        x.close()
        again.close()

    def test_errors_name_the_position_and_closed_handles_are_misuse(self):
        with self.assertRaises(cdpcore.InvalidError) as err:
            self.e.compile("attrs.city ==")
        self.assertIn("line 1, column", str(err.exception))
        with self.assertRaises(cdpcore.InvalidError):
            self.e.compile("ids.no_such_type > 0")
        with self.assertRaises(cdpcore.NotFoundError):
            with self.e.compile("true") as x:
                x.evaluate(12345, MAR1)
        x = self.e.compile("true")
        x.close()
        x.close()
        with self.assertRaises(cdpcore.MisuseError):
            x.evaluate(self.oneid, MAR1)
        y = self.e.compile("true")
        self.e.close()
        with self.assertRaises(cdpcore.MisuseError):
            y.evaluate(self.oneid, MAR1)
        y.close()


if __name__ == "__main__":
    unittest.main()
