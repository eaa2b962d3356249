"""cdpcore quickstart: PwC's OneID scenario in Python.

Li Na meets a brand seven times over a year; each channel knows her by a different id.
Run from the repository root after building (scripts/demo or scripts/test):
    PYTHONPATH=bindings/python python3 examples/quickstart.py
"""
import cdpcore

MOBILE, UNIONID = "13817265409", "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"
WECOM = "wmLiNa0mEAAAq1vX9bR2kP3w8yZ5cD7eF"


def touch(source, ts, event, **ids):
    return {"source": source, "ts": ts, "ids": ids, "event": {"type": event}}


records = [
    touch("pos", "2023-01-14T15:20:00+08:00", "purchase", mobile="+86 138 1726 5409"),
    touch("event", "2023-03-18T10:00:00+08:00", "event_checkin", mobile="138-1726-5409"),
    touch("tmall", 1684587900000, "order", mobile="0086 13817265409", tb_nick="lina_0520"),
    touch("wecom", "2023-06-02T14:30:00+08:00", "guide_added", external_userid=WECOM, unionid=UNIONID),
    touch("app", 1691585100000, "order", mobile=MOBILE, member_no="M2023001"),
    dict(touch("wechat", 1696122600000, "follow", openid="oLiNa7bmjr2sgVt7hMZOPfLQ2k", unionid=UNIONID),
         app="wx_oa_brand"),  # openids are scoped by the app that issued them
    touch("crm", "2024-01-06T11:00:00+08:00", "member_join", mobile=MOBILE, unionid=UNIONID, member_no="M2023001"),
    {"source": "pos", "ts": True, "ids": {"mobile": MOBILE}},  # malformed: reported, not raised
]

with cdpcore.Engine() as e:
    report = e.ingest(records)
    print(f"{report['accepted']} accepted, {report['rejected']} rejected, {report['merges']} merges")
    for err in report["errors"]:
        print(f"  line {err['line']}: {err['field']}: {err['message']}")

    oneid = e.resolve("mobile", "+86 138-1726-5409")  # values are normalised first
    assert oneid == e.resolve("unionid", UNIONID) == e.resolve("tb_nick", "lina_0520")
    person = e.person(oneid, mask=True)
    print(f"OneID {oneid}: {person['size']} identifiers")
    for ident in person["identifiers"]:
        print(f"  {ident['type']:<16} {ident['value']}")
    print("Events:", ", ".join(f"{t} x{s['count']}" for t, s in person["events"].items()))

    # One expression language for conditions; time is an argument, never the clock.
    with e.compile("count(order) >= 2 && days_since(follow) <= 120") as engaged:
        r = engaged.evaluate(oneid, now_ms=1704848400000)  # 2024-01-10 09:00 in Shanghai
        print(f"engaged buyer: {r.value} (re-check at {r.valid_until})")

    why = e.explain(("tb_nick", "lina_0520"), ("external_userid", WECOM))
    print("Why is the Tmall buyer the WeCom contact?")
    for step in why["path"]:
        print(f"  {step['from']} -> {step['to']}  ({step['source']} record {step['record']})")

    # A CRM follows the change feed to move its rows when persons merge.
    for ev in e.feed_iter():
        if ev["kind"] == "merged":
            link = ev["evidence"]
            print(f"merged: OneID {ev['absorbed']} into {ev['survivor']} by {link['from']} ~ {link['to']}")
