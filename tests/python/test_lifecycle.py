"""The lifecycle through the binding: define_lifecycle (dict or JSON text, errors with
their path, nothing installed on error), lifecycle, person_lifecycle and state.NAME in
audiences, lifecycle_apply's forms and set_state's monotonic refusal, advance firing an
"after" timer with an action, the outbox (pages, redelivery until acknowledged, ack by
ids, by intents and through), drop_lifecycle, argument and closed-engine errors, and a
persistent engine that keeps states, histories, the outbox and pending deadlines."""

import json
import tempfile
import unittest

from support import record

import cdpcore

MAR1 = 1709222400000          # 2024-03-01T00:00:00+08:00
DAY = 86400000
HOUR = 3600000

# activity: an order makes a person active; two days without one, dormant (the timer
# emits "winback" with a payload); an order brings them back ("welcome_back").
# ladder: monotonic, nothing moves a person back.
MACHINES = {"machines": [
    {"name": "activity", "states": ["new", "active", "dormant"], "initial": "new",
     "transitions": [
         {"from": "new", "to": "active", "on": "order"},
         {"from": "active", "restart": True, "on": "order"},
         {"from": "active", "to": "dormant", "after": "2d", "action": "winback",
          "channel": "sms", "payload": {"orders": "{{count(order)}}", "city": "{{attrs.city}}"}},
         {"from": "dormant", "to": "active", "on": "order", "action": "welcome_back",
          "channel": "sms"}]},
    {"name": "ladder", "monotonic": True, "states": ["aware", "interest", "purchase"],
     "initial": "aware",
     "transitions": [{"from": "aware", "to": "interest", "on": "follow"},
                     {"from": ["aware", "interest"], "to": "purchase", "on": "order"}]},
]}


def mobile(k):
    return f"139{10000000 + k}"


def event(k, ts, type, **attrs):
    r = record("shop", ts, mobile=mobile(k))
    r["event"] = {"type": type}
    if attrs:
        r["attrs"] = attrs
    return r


class LifecycleTest(unittest.TestCase):
    def setUp(self):
        self.e = cdpcore.Engine()
        self.addCleanup(self.e.close)
        self.assertEqual(self.e.define_lifecycle(MACHINES), {"machines": ["activity", "ladder"]})
        self.e.ingest([event(1, MAR1 + 10 * HOUR, "order", city="上海"),
                       event(2, MAR1 + 12 * HOUR, "order"),
                       event(3, MAR1 + 13 * HOUR, "follow")])
        self.p = {k: self.e.resolve("mobile", mobile(k)) for k in (1, 2, 3)}

    def states(self, k):
        return {m: s["state"] for m, s in self.e.person_lifecycle(self.p[k])["states"].items()}

    def test_catalogue_person_and_state_in_expressions(self):
        machines = {m["name"]: m for m in self.e.lifecycle()["machines"]}
        self.assertEqual(machines["activity"]["persons"], {"new": 1, "active": 2, "dormant": 0})
        self.assertEqual(machines["ladder"]["persons"], {"aware": 0, "interest": 1, "purchase": 2})
        self.assertTrue(machines["ladder"]["monotonic"])
        self.assertEqual(machines["activity"]["definition"], MACHINES["machines"][0])
        life = self.e.person_lifecycle(self.p[1])
        self.assertEqual(life["oneid"], self.p[1])
        self.assertEqual([(h["machine"], h["from"], h["to"], h["reason"], h.get("event"))
                          for h in life["history"]],
                         [("activity", None, "new", "initial", None),
                          ("activity", "new", "active", "event", "order"),
                          ("ladder", None, "aware", "initial", None),
                          ("ladder", "aware", "purchase", "event", "order")])
        self.assertEqual(life["states"]["activity"],
                         {"state": "active", "since": MAR1 + 10 * HOUR, "next": MAR1 + 2 * DAY + 10 * HOUR})
        self.assertEqual(self.e.audience_count('state.activity == "active"')["count"], 2)
        self.assertEqual(self.e.audience_count('state.ladder == "interest"')["count"], 1)
        self.assertEqual(self.e.person(self.p[3])["states"]["ladder"]["state"], "interest")
        with self.assertRaises(cdpcore.NotFoundError):
            self.e.person_lifecycle(12345)

    def test_definition_errors_name_the_path_and_install_nothing(self):
        bad = {"machines": [{"name": "ok", "states": ["a"], "transitions": []},
                            {"name": "m", "states": ["a", "b"],
                             "transitions": [{"from": "a", "to": "b", "after": "soon"}]}]}
        with self.assertRaises(cdpcore.InvalidError) as cm:
            self.e.define_lifecycle(bad)
        self.assertIn("machines[1] (m).transitions[0].after: expected a duration", str(cm.exception))
        with self.assertRaises(cdpcore.InvalidError) as cm:
            self.e.define_lifecycle('{"machines": [}')
        self.assertIn("lifecycle definitions: line 1, column", str(cm.exception))
        with self.assertRaises(ValueError):  # InvalidError is a ValueError too
            self.e.define_lifecycle({"tiers": []})
        with self.assertRaises(TypeError):
            self.e.define_lifecycle(MACHINES["machines"])  # a list is not a document
        self.assertEqual([m["name"] for m in self.e.lifecycle()["machines"]], ["activity", "ladder"])
        # JSON text works like a dict.
        self.e.define_lifecycle(json.dumps({"machines": [bad["machines"][0]]}))
        self.assertEqual(len(self.e.lifecycle()["machines"]), 3)

    def test_set_state_forms_and_monotonic_refusal(self):
        report = self.e.lifecycle_apply("set_state", ("mobile", mobile(3)), machine="ladder", state="purchase")
        self.assertEqual(report, {"oneid": self.p[3], "machine": "ladder", "from": "interest",
                                  "to": "purchase", "changed": True})
        with self.assertRaises(cdpcore.ConflictError) as cm:
            self.e.lifecycle_apply("set_state", self.p[3], machine="ladder", state="aware")
        self.assertIn("ladder is monotonic: purchase -> aware moves backwards", str(cm.exception))
        self.assertEqual(self.states(3)["ladder"], "purchase")
        # A whole request, as a dict or as JSON text; ts sets the operation's time.
        self.assertFalse(self.e.lifecycle_apply({"op": "set_state", "oneid": self.p[3], "machine": "ladder",
                                                 "state": "purchase"})["changed"])
        self.e.lifecycle_apply(json.dumps({"op": "set_state", "type": "mobile", "value": mobile(3),
                                           "machine": "activity", "state": "dormant",
                                           "ts": MAR1 + 20 * HOUR}))
        last = self.e.person_lifecycle(self.p[3])["history"][-1]
        self.assertEqual(last, {"ts": MAR1 + 20 * HOUR, "machine": "activity", "from": "new",
                                "to": "dormant", "reason": "manual"})
        with self.assertRaises(cdpcore.NotFoundError):
            self.e.lifecycle_apply("set_state", ("mobile", "13700000000"), machine="ladder", state="purchase")
        with self.assertRaises(cdpcore.NotFoundError):
            self.e.lifecycle_apply("set_state", self.p[3], machine="nope", state="a")
        with self.assertRaises(cdpcore.InvalidError) as cm:
            self.e.lifecycle_apply("teleport", self.p[3])
        self.assertIn('unknown operation "teleport"', str(cm.exception))
        with self.assertRaises(cdpcore.InvalidError) as cm:
            self.e.lifecycle_apply("set_state", machine="ladder", state="purchase")
        self.assertIn("name the person", str(cm.exception))
        with self.assertRaises(TypeError):
            self.e.lifecycle_apply({"op": "set_state"}, machine="ladder")

    def test_advance_fires_the_timer_and_the_outbox_redelivers_until_acked(self):
        report = self.e.advance(MAR1 + 2 * DAY + 11 * HOUR)
        self.assertEqual(report["lifecycle"], {"fired": 1, "transitions": 1, "intents": 1,
                                               "next": MAR1 + 2 * DAY + 12 * HOUR})
        self.assertEqual(self.states(1)["activity"], "dormant")
        page = self.e.outbox()
        self.assertIsInstance(page, cdpcore.OutboxPage)
        self.assertEqual(page.pending, 1)
        [intent] = page.intents
        self.assertEqual({k: intent[k] for k in ("oneid", "origin", "step", "action", "channel", "at", "payload")},
                         {"oneid": self.p[1], "origin": "machine:activity", "step": "active->dormant",
                          "action": "winback", "channel": "sms", "at": MAR1 + 2 * DAY + 10 * HOUR,
                          "payload": {"orders": 1, "city": "上海"}})
        self.assertEqual(intent["key"], f"machine:activity:{self.p[1]}:active->dormant:{MAR1 + 2 * DAY + 10 * HOUR}")
        # Not acknowledged: it comes again; past it, caught up.
        self.assertEqual(self.e.outbox(), page)
        self.assertEqual(self.e.outbox(page.next).intents, [])

        self.e.advance(MAR1 + 3 * DAY)
        intents, nxt, pending = self.e.outbox(limit=1)
        self.assertEqual(([i["id"] for i in intents], pending), ([intent["id"]], 2))
        second = self.e.outbox(nxt).intents[0]
        self.assertEqual(second["oneid"], self.p[2])
        self.assertEqual([i["id"] for i in self.e.outbox_iter(limit=1)], [intent["id"], second["id"]])

        self.assertEqual(self.e.ack([intent]), {"acked": 1, "pending": 1})
        self.assertEqual(self.e.ack(ids=[intent["id"], 999]), {"acked": 0, "pending": 1})
        self.assertEqual([i["id"] for i in self.e.outbox().intents], [second["id"]])
        self.assertEqual(self.e.ack(through=second["id"]), {"acked": 1, "pending": 0})
        self.assertEqual(self.e.outbox(), cdpcore.OutboxPage([], self.e.outbox().next, 0))
        with self.assertRaises(TypeError):
            self.e.ack()
        with self.assertRaises(TypeError):
            self.e.ack(ids=[1], through=1)

        # An order brings person 1 back: an event-driven action without a payload.
        self.e.ingest([event(1, MAR1 + 4 * DAY, "order")])
        [back] = self.e.outbox().intents
        self.assertEqual((back["action"], back["step"], back["payload"]), ("welcome_back", "dormant->active", None))
        with self.assertRaises(cdpcore.ConflictError):
            self.e.advance(MAR1)

    def test_drop_and_closed_engine(self):
        self.e.drop_lifecycle("machine", "ladder")
        self.assertEqual([m["name"] for m in self.e.lifecycle()["machines"]], ["activity"])
        self.assertNotIn("ladder", self.states(1))
        with self.assertRaises(cdpcore.NotFoundError):
            self.e.drop_lifecycle("machine", "ladder")
        with self.assertRaises(cdpcore.InvalidError):
            self.e.drop_lifecycle("widget", "activity")
        self.e.close()
        for call in (self.e.lifecycle, self.e.outbox, lambda: self.e.ack(through=1),
                     lambda: self.e.define_lifecycle(MACHINES), lambda: self.e.person_lifecycle(1),
                     lambda: self.e.lifecycle_apply("set_state", 1), lambda: self.e.drop_lifecycle("machine", "a")):
            with self.assertRaises(cdpcore.MisuseError):
                call()


class PersistentLifecycleTest(unittest.TestCase):
    def test_reopened_engine_keeps_states_outbox_and_deadlines(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = f"{tmp}/engine"
            with cdpcore.Engine(path=path) as e:
                e.define_lifecycle(MACHINES)
                e.ingest([event(1, MAR1 + 10 * HOUR, "order"), event(2, MAR1 + 12 * HOUR, "order")])
                e.advance(MAR1 + 2 * DAY + 11 * HOUR)        # person 1 goes dormant
                e.ingest([event(1, MAR1 + 2 * DAY + 20 * HOUR, "order")])  # and comes back
                e.lifecycle_apply("set_state", ("mobile", mobile(2)), machine="ladder", state="purchase")
                e.ack(ids=[e.outbox().intents[0]["id"]])
                ids = [e.resolve("mobile", mobile(k)) for k in (1, 2)]
                before = (e.lifecycle(), e.outbox(), [e.person_lifecycle(i) for i in ids])
            self.assertEqual(before[1].pending, 1)
            with cdpcore.Engine(path=path) as e:
                self.assertEqual((e.lifecycle(), e.outbox(), [e.person_lifecycle(i) for i in ids]), before)
                # Person 2's deadline survived the reopen and fires now.
                self.assertEqual(e.advance(MAR1 + 3 * DAY)["lifecycle"]["fired"], 1)
                self.assertEqual(e.person_lifecycle(ids[1])["states"]["activity"]["state"], "dormant")
                self.assertEqual(e.outbox().pending, 2)


if __name__ == "__main__":
    unittest.main()
