"""PwC's OneID example (DOMAIN.md): seven touchpoints of one consumer over a year, each
carrying some of her mobile, WeChat unionid and member number, become ONE person
whatever order they arrive in, one record at a time."""

import random
import unittest
from datetime import datetime

from support import record

import cdpcore

MOBILE = "13957218846"
UNIONID = "oKq3Wt5xZ8ePb2Lr9Yc6Vn1Md4Hs"
MEMBER_NO = "M2023000481"


def ms(iso):
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


# In the order they happened; mobiles in the formats each channel writes them.
TOUCHPOINTS = [
    dict(record("pos", "2023-01-14T15:20:00+08:00", mobile="139 5721 8846"),
         event={"type": "offline_purchase", "amount": 268.00}),
    dict(record("offline_event", ms("2023-03-05T10:00:00+08:00"), mobile="+86 139-5721-8846"),
         event={"type": "event_checkin"}),
    dict(record("tmall", "2023-05-20T21:13:09+08:00", mobile="0086 13957218846"),
         event={"type": "order", "amount": 199.00}),
    record("wecom", ms("2023-06-02T14:00:00+08:00"), unionid=UNIONID),
    dict(record("app", "2023-08-18T09:41:27+08:00", mobile=MOBILE, member_no=MEMBER_NO),
         event={"type": "order", "amount": 89.90}),
    dict(record("wechat_oa", ms("2023-10-01T08:00:00+08:00"), unionid=UNIONID),
         event={"type": "follow"}),
    dict(record("crm", "2023-12-20T19:30:00+08:00",
                mobile=MOBILE, unionid=UNIONID, member_no=MEMBER_NO),
         event={"type": "member_join"}),
]
MEMBER_JOIN = TOUCHPOINTS[-1]
EXPECTED = {("mobile", MOBILE), ("unionid", UNIONID), ("member_no", MEMBER_NO)}


def arrival_orders():
    """Named permutations of the touchpoints: the edges plus seeded shuffles."""
    orders = {"as it happened": list(TOUCHPOINTS),
              "reversed": TOUCHPOINTS[::-1],
              "member join first": [MEMBER_JOIN] + TOUCHPOINTS[:-1]}
    rng = random.Random(20231220)
    for i in range(12):
        orders[f"shuffle {i}"] = rng.sample(TOUCHPOINTS, len(TOUCHPOINTS))
    return orders


class PwcOneIdTest(unittest.TestCase):
    def test_one_oneid_in_every_order_of_arrival(self):
        for name, order in arrival_orders().items():
            with self.subTest(order=name), cdpcore.Engine() as e:
                for i, touchpoint in enumerate(order):
                    report = e.ingest([touchpoint])
                    self.assertEqual((report["accepted"], report["rejected"]), (1, 0))
                    if MEMBER_JOIN not in order[:i + 1]:
                        # Nothing yet says the WeChat fan is the phone customer.
                        mobile, wechat = e.resolve("mobile", MOBILE), e.resolve("unionid", UNIONID)
                        if mobile is not None and wechat is not None:
                            self.assertNotEqual(mobile, wechat)
                self.assert_one_person(e)

    def test_one_oneid_from_one_shuffled_batch(self):
        batch = random.Random(7).sample(TOUCHPOINTS, len(TOUCHPOINTS))
        with cdpcore.Engine() as e:
            report = e.ingest(batch, assign=True)
            oneid = self.assert_one_person(e)
            self.assertEqual(report["assign"], [oneid] * len(TOUCHPOINTS))

    def assert_one_person(self, e):
        self.assertEqual(e.stats()["persons"], 1)
        oneids = {e.resolve(t, v) for t, v in EXPECTED}
        self.assertEqual(len(oneids), 1)
        oneid = oneids.pop()
        self.assertIsNotNone(oneid)
        person = e.person(oneid)
        self.assertEqual({(i["type"], i["value"]) for i in person["identifiers"]}, EXPECTED)
        self.assertEqual(person["first_seen"], ms("2023-01-14T15:20:00+08:00"))
        self.assertTrue(e.explain(("unionid", UNIONID), ("member_no", MEMBER_NO))["linked"])
        return oneid


if __name__ == "__main__":
    unittest.main()
