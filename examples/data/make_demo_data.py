#!/usr/bin/env python3
"""Writes the demo data: touchpoints of one cosmetics brand's customers, one NDJSON file
per channel, next to this script (or into the directory given as the argument). Standard library only; seeded, so every run writes the
same bytes.

What is in it, on purpose:
  - Li Na, the PwC OneID scenario: offline purchase, offline event, Tmall orders, a WeCom
    guide, an app order, an official-account follow and a member join, over a year;
  - mobiles written the ways channels write them (+86, 0086, spaces, dashes);
  - junk: the cashier's placeholder 13800138000, unionid "null", the all-zero device UUID;
  - a family iPad shared by a couple, and a store pad used by dozens of customers;
  - a member number typed against the wrong mobile at a till;
  - ISO-8601 and epoch-millisecond timestamps, amounts such as 0.29 and 199.00;
  - openids scoped by the record's "app"; an identifier type the config does not know;
  - a few malformed lines. Each carries the word "malformed" (in attrs.note) and no valid
    line does, so tests count and locate them without knowing line numbers.
"""
import json
import random
import re
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
rng = random.Random(20240106)
CST = timezone(timedelta(hours=8))
START = datetime(2023, 1, 1, 9, 0, tzinfo=CST)

STORE_PAD = "5f0c2d7e-9a41-4b3e-8c11-2e6f7a9b3c55"   # the tablet at the Shanghai store's till
FAMILY_IPAD = "a3b9e2c4-7d15-4f08-9e6a-1c2d3e4f5a6b"  # one iPad, two spouses
ZERO_UUID = "00000000-0000-0000-0000-000000000000"
OA, MP = "wx_oa_brand", "wx_mp_brand"                 # official account, mini program


def rand_str(alphabet, n):
    return "".join(rng.choice(alphabet) for _ in range(n))


B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"


def mobile_variant(m):
    """The same mobile as one of the channels would write it."""
    return rng.choice([m, "+86 %s %s %s" % (m[:3], m[3:7], m[7:]), "%s-%s-%s" % (m[:3], m[3:7], m[7:]),
                       "0086 " + m, "+86" + m, "%s %s %s" % (m[:3], m[3:7], m[7:])])


def iso(t):
    return t.isoformat(timespec="seconds")


def epoch_ms(t):
    return int(t.timestamp() * 1000)


def when(day_lo=0, day_hi=370):
    return START + timedelta(days=rng.randint(day_lo, day_hi), minutes=rng.randint(0, 12 * 60))


def money(lo, hi):
    return "%.2f" % (rng.randint(lo * 100, hi * 100) / 100)


files = {name: [] for name in ["pos", "events", "wecom", "wechat", "tmall", "app", "crm"]}


def add(channel, t, ids, event=None, attrs=None, app=None, epoch=False):
    rec = {"source": channel, "ts": epoch_ms(t) if epoch else iso(t)}
    if app:
        rec["app"] = app
    rec["ids"] = ids
    if attrs:
        rec["attrs"] = attrs
    if event:
        rec["event"] = event
    files[channel].append((t, rec))


# --- Li Na, the PwC scenario: seven touchpoints over a year, one person in the end. -----
LI_NA = {"mobile": "13817265409", "unionid": "o6_bmjrPTlm6_2sgVt7hMZOPfL2M", "oa_openid": "oLiNa7bmjr2sgVt7hMZOPfLQ2k",
         "external_userid": "wmLiNa0mEAAAq1vX9bR2kP3w8yZ5cD7eF", "member_no": "M2023001", "tb_nick": "lina_0520",
         "device_id": "e7c1a2b3-4d5e-4f60-8a9b-0c1d2e3f4a5b"}
add("pos", datetime(2023, 1, 14, 15, 20, tzinfo=CST), {"mobile": "+86 138 1726 5409"},
    {"type": "purchase", "amount": "199.00"}, {"store": "SH001"})
add("events", datetime(2023, 3, 18, 10, 0, tzinfo=CST), {"mobile": "138-1726-5409"},
    {"type": "event_checkin"}, {"event": "spring skincare class"})
add("tmall", datetime(2023, 5, 20, 21, 5, tzinfo=CST), {"tb_nick": "lina_0520", "mobile": "0086 13817265409"},
    {"type": "order", "amount": "0.29"}, {"item": "trial pack"}, epoch=True)
add("tmall", datetime(2023, 6, 18, 0, 12, tzinfo=CST), {"tb_nick": "lina_0520", "mobile": "13817265409"},
    {"type": "order", "amount": "199.00"}, epoch=True)
add("wecom", datetime(2023, 6, 2, 14, 30, tzinfo=CST),
    {"external_userid": LI_NA["external_userid"], "unionid": LI_NA["unionid"]}, {"type": "guide_added"},
    {"guide": "SH001-07"})
add("app", datetime(2023, 8, 9, 20, 45, tzinfo=CST),
    {"mobile": "13817265409", "member_no": "M2023001", "device_id": LI_NA["device_id"]},
    {"type": "order", "amount": "329.00"}, epoch=True)
add("wechat", datetime(2023, 10, 1, 9, 10, tzinfo=CST), {"openid": LI_NA["oa_openid"], "unionid": LI_NA["unionid"]},
    {"type": "follow"}, app=OA)
add("crm", datetime(2024, 1, 6, 11, 0, tzinfo=CST),
    {"mobile": "+8613817265409", "unionid": LI_NA["unionid"], "member_no": "M2023001"},
    {"type": "member_join"}, {"gender": "F", "city": "上海", "tier": "V1"})

# --- Sixty more customers, each met in some of the channels. ------------------------------
used_mobiles = {LI_NA["mobile"]}
customers = []
for i in range(60):
    while True:
        m = "1" + rng.choice("3578") + "%09d" % rng.randint(0, 10**9 - 1)
        if m not in used_mobiles and len(set(m[2:])) > 3:
            break
    used_mobiles.add(m)
    customers.append({"mobile": m, "unionid": "o" + rand_str(B64, 27), "oa_openid": "o" + rand_str(B64, 27),
                      "mp_openid": "o" + rand_str(B64, 27), "external_userid": "wm" + rand_str(B64, 30),
                      "member_no": "M%07d" % (2023100 + i), "tb_nick": "tb_" + rand_str("abcdefghjkmnpqrstuvwxyz", 7),
                      "device_id": "%08x-%04x-4%03x-8%03x-%012x" % (rng.getrandbits(32), rng.getrandbits(16),
                                                                     rng.getrandbits(12), rng.getrandbits(12),
                                                                     rng.getrandbits(48)),
                      "gender": rng.choice("FFFM"), "city": rng.choice(["上海", "北京", "杭州", "成都", "广州"])})

# The couple who share the family iPad: fixed mobiles, so the demo can name them.
husband, wife = customers[40], customers[41]
husband["mobile"], wife["mobile"] = "13916820431", "13916820477"

for i, c in enumerate(customers):
    # Offline: the first 30 pay at the Shanghai till whose pad logs its own device id.
    for _ in range(rng.randint(1, 2)):
        ids = {"mobile": mobile_variant(c["mobile"])}
        if i < 30:
            ids["device_id"] = STORE_PAD
        add("pos", when(), ids, {"type": "purchase", "amount": money(39, 899)}, {"store": "SH001" if i < 30 else "BJ002"})
    if rng.random() < 0.3:
        add("events", when(), {"mobile": mobile_variant(c["mobile"])}, {"type": "event_checkin"})
    if rng.random() < 0.6:  # WeChat: follows the official account, some use the mini program
        add("wechat", when(), {"openid": c["oa_openid"], "unionid": c["unionid"]}, {"type": "follow"}, app=OA)
        if rng.random() < 0.5:
            add("wechat", when(), {"openid": c["mp_openid"], "unionid": c["unionid"],
                                   "mobile": mobile_variant(c["mobile"])}, {"type": "mp_login"}, app=MP,
                epoch=True)
        if rng.random() < 0.5:
            add("wecom", when(), {"external_userid": c["external_userid"], "unionid": c["unionid"]},
                {"type": "guide_added"})
    if rng.random() < 0.5:
        for _ in range(rng.randint(1, 3)):
            ids = {"tb_nick": c["tb_nick"], "mobile": mobile_variant(c["mobile"])}
            if rng.random() < 0.1:
                ids["alipay_uid"] = "2088%012d" % rng.randint(0, 10**12 - 1)  # a type the config does not know
            amount = rng.choice(["0.29", "199.00", money(29, 599)])
            add("tmall", when(), ids, {"type": "order", "amount": amount}, epoch=True)
    if rng.random() < 0.4:  # app: download (device only), then orders when logged in
        t = when(0, 300)
        add("app", t, {"device_id": c["device_id"]}, {"type": "app_download"}, epoch=True)
        add("app", t + timedelta(days=rng.randint(1, 60)),
            {"mobile": c["mobile"], "member_no": c["member_no"], "device_id": c["device_id"]},
            {"type": "order", "amount": money(49, 699)}, epoch=True)
    if rng.random() < 0.7:
        ids = {"mobile": mobile_variant(c["mobile"]), "member_no": c["member_no"]}
        if rng.random() < 0.6:
            ids["unionid"] = c["unionid"]
        if rng.random() < 0.3:
            ids["email"] = " %s.%d@Example.COM " % (c["tb_nick"][3:].capitalize(), i)
        add("crm", when(), ids, {"type": "member_join"}, {"gender": c["gender"], "city": c["city"]})

# --- Shared devices and junk. ---------------------------------------------------------------
for c, day in ((husband, 100), (wife, 130)):  # both log in to the app on the family iPad
    add("app", when(day, day), {"mobile": c["mobile"], "member_no": c["member_no"], "device_id": FAMILY_IPAD},
        {"type": "order", "amount": money(99, 399)}, epoch=True)
for _ in range(6):  # walk-in customers: the cashier types the placeholder mobile
    add("pos", when(), {"mobile": "13800138000"}, {"type": "purchase", "amount": money(19, 99)}, {"store": "BJ002"})
for c in customers[50:53]:  # a mini-program bug sent the string "null" as unionid
    add("wechat", when(), {"openid": c["mp_openid"], "unionid": "null"}, {"type": "mp_login"}, app=MP)
for c in customers[53:56]:  # Android without permission reports the all-zero advertising id
    add("app", when(), {"member_no": c["member_no"], "device_id": ZERO_UUID}, {"type": "app_open"}, epoch=True)
# A member number typed against the wrong customer's mobile at the till.
add("pos", when(), {"mobile": customers[45]["mobile"], "member_no": customers[46]["member_no"]},
    {"type": "purchase", "amount": "88.00"}, {"store": "BJ002"})

# --- Malformed lines, placed at fixed positions. ---------------------------------------------
MALFORMED = {
    "pos": (9, '{"source":"pos","ts":"2023-04-02T12:00:00+08:00","attrs":{"note":"malformed: bad JSON"},'
               '"ids":{"mobile":"13912000001"'),
    "tmall": (5, '{"source":"tmall","ts":true,"ids":{"tb_nick":"tb_qwerty"},'
                 '"attrs":{"note":"malformed: ts is a boolean"}}'),
    "app": (12, '{"source":"app","ts":1690000000000,"ids":{"member_no":"M2023150"},'
                '"attrs":{"note":"malformed: invalid amount"},"event":{"type":"order","amount":"abc"}}'),
    "events": (3, '{"source":"event","ts":"2023-05-06T10:00:00+08:00",'
                  '"attrs":{"note":"malformed: no ids"},"event":{"type":"event_checkin"}}'),
    "crm": (7, '{"source":"crm","ts":"2023-09-09T09:00:00+08:00","ids":{"mobile":true},'
               '"attrs":{"note":"malformed: mobile is a boolean"}}'),
}


def dumps(rec):
    # json has no decimal type: write amounts as the exact text the channels send (199.00)
    text = json.dumps(rec, ensure_ascii=False, separators=(",", ":"))
    return re.sub(r'"amount":"(\d+\.\d\d)"', r'"amount":\1', text)


for name, recs in files.items():
    lines = [dumps(rec) for _, rec in sorted(recs, key=lambda tr: (tr[0], dumps(tr[1])))]
    if name in MALFORMED:
        at, line = MALFORMED[name]
        lines.insert(at - 1, line)  # at: its 1-based line number
    (OUT / (name + ".ndjson")).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("%-14s %4d lines" % (name + ".ndjson", len(lines)))
