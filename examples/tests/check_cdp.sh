#!/usr/bin/env bash
# Checks the cdp tool on the bundled demo data. Usage: check_cdp.sh CDP DATA_DIR CASE
# Malformed demo lines carry the word "malformed" and valid ones never do
# (make_demo_data.py), so expectations are counted from the data, not hard-coded.
set -uo pipefail
CDP=$1
cd "$2" || exit 2
CASE=$3
FILES=(*.ndjson)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
passed=0 failed=0

check() {  # check NAME CONDITION...: evaluates the condition, reports it
  local name=$1; shift
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $name"; fi
}
run() {  # run WANT_EXIT ARGS...: runs cdp into $TMP/out and $TMP/err, checks the exit code
  local want=$1; shift
  "$CDP" "$@" >"$TMP/out" 2>"$TMP/err"
  local got=$?
  check "cdp $* exits $want (got $got: $(head -c 300 "$TMP/err"))" test "$got" = "$want"
}
json_get() {  # json_get EXPR FILE: prints a Python expression on the parsed document d
  python3 -c 'import json,sys; d=json.load(open(sys.argv[2])); print(eval(sys.argv[1]))' "$1" "$2"
}
json_true() {  # json_true EXPR FILE: succeeds when the expression on d is true
  python3 -c 'import json,sys; d=json.load(open(sys.argv[2])); sys.exit(not eval(sys.argv[1]))' "$1" "$2"
}
rows_of() {  # rows_of FILE PATTERN: line numbers of FILE's lines matching PATTERN
  grep -nE "$2" "$1" | cut -d: -f1
}
check_rows() {  # check_rows NAME TSV WANT: every line of WANT is a line of TSV
  local missing
  missing=$(grep -Fxvf "$2" "$3" | head -n 3 | tr '\t\n' '  ')
  check "$1${missing:+ (missing rows: $missing)}" test -z "$missing"
}
check_assign() {  # check_assign TSV ONEID FILE...: Li Na's lines have ONEID, junk lines none
  local tsv=$1 oneid=$2 f lina=0; shift 2
  for f in "$@"; do
    rows_of "$f" malformed | sed "s/^/$f\t/; s/\$/\t/" >"$TMP/want"
    check_rows "$f: malformed lines have no OneID" "$tsv" "$TMP/want"
    rows_of "$f" '"ids":\{"mobile":"13800138000"\}' | sed "s/^/$f\t/; s/\$/\t/" >"$TMP/want"
    check_rows "$f: lines with only the placeholder mobile have no OneID" "$tsv" "$TMP/want"
    rows_of "$f" 'o6_bmjrPTlm6|lina_0520|M2023001|wmLiNa0mE' | sed "s/^/$f\t/; s/\$/\t$oneid/" >"$TMP/want"
    check_rows "$f: Li Na's lines are OneID $oneid" "$tsv" "$TMP/want"
    lina=$((lina + $(wc -l <"$TMP/want")))
  done
  check "Li Na has lines ($lina)" test "$lina" -gt 0
}

LINES=$(cat "${FILES[@]}" | wc -l)
MALFORMED=$(cat "${FILES[@]}" | grep -c malformed)
LINA_IDS=(unionid:o6_bmjrPTlm6_2sgVt7hMZOPfL2M tb_nick:lina_0520 member_no:M2023001
          external_userid:wmLiNa0mEAAAq1vX9bR2kP3w8yZ5cD7eF "mobile:0086 138-1726-5409")
STORE_PAD=5f0c2d7e-9a41-4b3e-8c11-2e6f7a9b3c55

case $CASE in
usage)
  run 0 --help;                 check "help lists exit codes" grep -q "Exit codes" "$TMP/out"
  for c in ingest persons person eval tags audience lifecycle merges conflicts quarantined explain resolve config; do
    run 0 "$c" --help;          check "$c --help shows usage" grep -q "Usage: cdp .*$c" "$TMP/out"
  done
  run 1
  run 1 frobnicate "${FILES[@]}"
  run 1 ingest --frobnicate "${FILES[@]}"
  run 1 ingest
  run 1 resolve "${FILES[@]}"   # the first file is not TYPE:VALUE
  run 1 explain mobile:13817265409 "${FILES[@]}"
  run 1 persons --limit 0 "${FILES[@]}"
  run 1 eval 'true' mobile:13817265409 "${FILES[@]}"          # no --now: the tool never guesses
  run 1 eval --now yesterday 'true' mobile:13817265409 "${FILES[@]}"
  run 2 eval --now 0 'count(order' mobile:13817265409 "${FILES[@]}"
  check "a bad expression names line and column" grep -q "line 1, column" "$TMP/err"
  run 1 tags "${FILES[@]}"                                   # no --define
  run 1 audience                                             # no expression
  run 1 audience 'true' --holdout 10 "${FILES[@]}"           # not SALT:PERCENT
  run 1 audience 'true' --members -1 "${FILES[@]}"
  run 2 audience 'count(order' "${FILES[@]}"
  check "a bad audience expression names line and column" grep -q "line 1, column" "$TMP/err"
  echo '{"name":"x","kind":"rule","when":"tags.nope"}' >"$TMP/bad_tags.json"
  run 2 tags --define "$TMP/bad_tags.json" "${FILES[@]}"
  check "a bad definition is named" grep -q "tags.nope, which is not defined" "$TMP/err"
  run 1 lifecycle "${FILES[@]}"                              # no --define
  run 1 lifecycle --define machines.json --step 0d "${FILES[@]}"
  run 1 lifecycle --define machines.json --step 1y "${FILES[@]}"
  run 1 lifecycle --define machines.json --from yesterday "${FILES[@]}"
  run 1 lifecycle --define machines.json --from 2024-01-02 --until 2024-01-01 "${FILES[@]}"
  run 1 lifecycle --define machines.json --step 1ms --from 0 --until 2024-01-01 "${FILES[@]}"  # a billion steps
  echo '{"machines":[{"name":"m","states":["a"],"transitions":[{"from":"a","to":"b","on":"x"}]}]}' >"$TMP/bad_life.json"
  run 2 lifecycle --define "$TMP/bad_life.json" "${FILES[@]}"
  check "a bad lifecycle definition names its path" grep -q 'machines\[0\] (m).transitions\[0\].to: unknown state "b"' "$TMP/err"
  run 2 lifecycle --define no-such-file.json "${FILES[@]}"
  run 2 ingest no-such-file.ndjson
  echo '{"types": ' >"$TMP/bad.json"
  run 2 --config "$TMP/bad.json" ingest "${FILES[@]}"
  run 0 config;                 check "config prints JSON" json_true 'len(d) > 0' "$TMP/out"
  # Mobiles stored hashed: the key comes from --key-file, and nothing shows the raw value.
  echo '{"id_types":{"mobile":{"hashed":true}}}' >"$TMP/hashed.json"
  printf 'the key of the cdp tool test' >"$TMP/key"
  run 2 --config "$TMP/hashed.json" resolve mobile:13817265409 "${FILES[@]}"
  check "a hashed config without a key names the call that takes one" grep -q cdp_engine_open_keyed "$TMP/err"
  run 0 --config "$TMP/hashed.json" --key-file "$TMP/key" --json person mobile:+86-138-1726-5409 "${FILES[@]}"
  check "a hashed engine shows the mobile's mask" grep -q '138\*\*\*\*5409' "$TMP/out"
  check "and never the mobile" bash -c "! grep -q 13817265409 '$TMP/out'"
  ;;
ingest)
  run 0 ingest "${FILES[@]}"
  check "summary counts $((LINES - MALFORMED)) accepted, $MALFORMED rejected" \
    grep -Eq "records +$((LINES - MALFORMED)) accepted, $MALFORMED rejected" "$TMP/out"
  check "junk identifiers are rejected as blocked" grep -Eq "identifiers .*blocked [1-9]" "$TMP/out"
  grep -E '^  [a-z]+\.ndjson:[0-9]+: ' "$TMP/out" >"$TMP/errors"
  check "one file:line error per malformed line" test "$(wc -l <"$TMP/errors")" = "$MALFORMED"
  while IFS=: read -r file line _; do
    file=${file##* }
    check "$file:$line is a malformed line" grep -q malformed <(sed -n "${line}p" "$file")
  done <"$TMP/errors"
  ;;
batches)  # over 64K lines: two batches, split on a line boundary
  # 200 copies of the data without Li Na's member join, then crm.ndjson with it: her
  # persons merge only in the second batch, after the first batch assigned their OneIDs.
  for _ in $(seq 200); do cat "${FILES[@]}" | grep -v '"source":"crm".*"M2023001"'; done >"$TMP/big.ndjson"
  cat crm.ndjson >>"$TMP/big.ndjson"
  cd "$TMP" || exit 2
  run 0 --json ingest --assign big.tsv big.ndjson
  json_get '"\n".join(str(e["line"]) for e in d["report"]["errors"])' "$TMP/out" >reported
  rows_of big.ndjson malformed >expected
  check "every malformed line reported with its line number in the file" cmp -s reported expected
  check "the file needs two batches" test "$(wc -l <big.ndjson)" -gt 65536
  run 0 resolve tb_nick:lina_0520 big.ndjson
  ONEID=$(cat "$TMP/out")
  sed 's/^/big.ndjson\t/' big.tsv >big3.tsv  # one file: add the file column check_assign reads
  check "one row per line" test "$(wc -l <big.tsv)" = "$(wc -l <big.ndjson)"
  check_assign big3.tsv "$ONEID" big.ndjson
  ;;
pwc)  # Li Na: every identifier resolves to one OneID
  run 0 resolve "mobile:+86 138 1726 5409" "${FILES[@]}"
  ONEID=$(cat "$TMP/out")
  check "resolve prints a OneID ($ONEID)" grep -Eq '^[1-9][0-9]*$' "$TMP/out"
  for id in "${LINA_IDS[@]}"; do
    run 0 resolve "$id" "${FILES[@]}"; check "$id is OneID $ONEID" test "$(cat "$TMP/out")" = "$ONEID"
  done
  run 0 explain tb_nick:lina_0520 external_userid:wmLiNa0mEAAAq1vX9bR2kP3w8yZ5cD7eF "${FILES[@]}"
  check "explain links them in OneID $ONEID" grep -q "are one person, OneID $ONEID" "$TMP/out"
  check "explain shows the path through the member join" grep -q "crm" "$TMP/out"
  run 0 explain mobile:13916820431 mobile:13916820477 "${FILES[@]}"
  check "the couple sharing an iPad are two persons" grep -q "are different persons" "$TMP/out"
  run 0 person --mask mobile:13817265409 "${FILES[@]}"
  check "person is masked" grep -q '138\*\*\*\*5409' "$TMP/out"
  check "person shows attributes with their source" grep -Eq 'city +上海 +from crm' "$TMP/out"
  check "person shows the order summary" grep -Eq 'order +3 +amount 528.29' "$TMP/out"
  run 0 --json person mobile:13817265409 "${FILES[@]}"
  check "person --json has the orders' amount" json_true 'd["events"]["order"]["amount"] == 528.29' "$TMP/out"
  run 0 eval --now 2024-01-10T09:00:00+08:00 'sum(order.amount) >= 500 && days_since(order) > 100' mobile:13817265409 "${FILES[@]}"
  check "eval prints the value and until when it holds" grep -q '^true (bool), valid until 2024-01-10 16:00Z' "$TMP/out"
  run 0 --json eval --now 1704848400000 'days_since(order)' mobile:13817265409 "${FILES[@]}"
  check "eval --json gives value, kind and valid_until" json_true 'd["kind"] == "int" and d["value"] == 154' "$TMP/out"
  run 3 eval --now 0 'true' mobile:13700000000 "${FILES[@]}"
  run 3 resolve mobile:13700000000 "${FILES[@]}"
  run 3 resolve mobile:13800138000 "${FILES[@]}"   # the cashier's placeholder is blocked
  run 3 explain mobile:13817265409 mobile:13700000000 "${FILES[@]}"
  ;;
progress)  # stderr here is a file: no progress line unless asked for, and it changes no output
  run 0 ingest "${FILES[@]}";   cp "$TMP/out" "$TMP/plain"
  check "no progress line when stderr is not a terminal" test ! -s "$TMP/err"
  run 0 --progress ingest "${FILES[@]}"
  check "--progress prints a line per batch" grep -Eq '^[a-z]+\.ndjson: [0-9]+ lines, [0-9]+ records/s$' "$TMP/err"
  check "--progress lines cover every file" test "$(cut -d: -f1 "$TMP/err" | sort -u | wc -l)" = "${#FILES[@]}"
  check "--progress leaves stdout as it was" cmp -s "$TMP/out" "$TMP/plain"
  ;;
assign)
  run 0 resolve unionid:o6_bmjrPTlm6_2sgVt7hMZOPfL2M "${FILES[@]}"
  ONEID=$(cat "$TMP/out")
  run 0 ingest --assign "$TMP/all.tsv" "${FILES[@]}"
  check "one row per input line" test "$(wc -l <"$TMP/all.tsv")" = "$LINES"
  check "rows are file, line, oneid" test -z "$(grep -Ev $'^[a-z]+\.ndjson\t[0-9]+\t[0-9]*$' "$TMP/all.tsv")"
  check_assign "$TMP/all.tsv" "$ONEID" "${FILES[@]}"
  run 0 ingest --assign "$TMP/one.tsv" crm.ndjson
  check "one file: rows are line, oneid" test -z "$(grep -Ev $'^[0-9]+\t[0-9]*$' "$TMP/one.tsv")"
  check "one file: one row per line" test "$(wc -l <"$TMP/one.tsv")" = "$(wc -l <crm.ndjson)"
  ;;
json)
  run 0 --json ingest "${FILES[@]}"
  check "ingest --json counts the rejected lines" test "$(json_get 'd["report"]["rejected"]' "$TMP/out")" = "$MALFORMED"
  check "ingest --json lists them by file" \
    test "$(json_get 'len([e for e in d["report"]["errors"] if e["file"].endswith(".ndjson")])' "$TMP/out")" = "$MALFORMED"
  run 0 persons --json "${FILES[@]}"
  check "persons --json lists every person" json_true 'len(d["persons"]) == d["total"] > 0' "$TMP/out"
  run 0 merges --json "${FILES[@]}"
  check "merges --json has merged events" json_true 'd["events"] and all(e["kind"] == "merged" for e in d["events"])' "$TMP/out"
  run 0 explain --json tb_nick:lina_0520 unionid:o6_bmjrPTlm6_2sgVt7hMZOPfL2M "${FILES[@]}"
  check "explain --json is linked" json_true 'd["linked"]' "$TMP/out"
  run 0 --json resolve member_no:M2023001 "${FILES[@]}"
  check "resolve --json has the OneID" json_true 'd["oneid"] > 0' "$TMP/out"
  ;;
feed)
  run 0 merges "${FILES[@]}"
  check "merges are listed" grep -Eq '^\(([1-9][0-9]*) of \1 merged events\)' "$TMP/out"
  run 0 conflicts "${FILES[@]}"
  check "the shared iPad shows up in a conflict" grep -q a3b9e2c4-7d15-4f08-9e6a-1c2d3e4f5a6b "$TMP/out"
  run 0 quarantined "${FILES[@]}"
  check "the store pad is quarantined" grep -q "$STORE_PAD" "$TMP/out"
  run 0 quarantined --limit 1 "${FILES[@]}"
  check "--limit 1 shows one event" test "$(grep -c '^#' "$TMP/out")" = 1
  ;;
tags)  # tags.json on the bundled data: the catalogue, an audience, its spread and members
  NOW=2023-12-31
  run 0 tags --define tags.json --now $NOW "${FILES[@]}"
  check "the catalogue lists the eleven tags" grep -q '^11 tags over [1-9][0-9]* persons' "$TMP/out"
  check "value_tier is a rule with its top values" grep -Eq '^  value_tier +rule +string +[1-9][0-9]* +high [1-9]' "$TMP/out"
  check "city is imported from the CRM" grep -Eq '^  city +import +string .*上海 [1-9]' "$TMP/out"
  run 0 --json tags --define tags.json --now $NOW "${FILES[@]}"
  check "tags --json: catalogue, definitions and distribution agree" \
    json_true '[t["name"] for t in d["tags"]] == [x["name"] for x in d["defined"]] and all(t["persons"] == d["distribution"]["count"] - d["distribution"]["tags"][t["name"]]["none"] for t in d["tags"])' "$TMP/out"
  # Li Na (Shanghai, 528.29 in Tmall orders alone) is a high-value customer.
  AUD='tags.value_tier == "high" && attrs.city == "上海"'
  run 0 --json audience "$AUD" --defs tags.json --now $NOW --holdout spring:20 --members 100 "${FILES[@]}"
  check "audience --json: count = target + holdout = members" \
    json_true 'd["count"]["count"] == d["count"]["target"] + d["count"]["holdout"] == len(d["members"]) > 0' "$TMP/out"
  check "the holdout members are flagged" \
    json_true 'sum(m["holdout"] for m in d["members"]) == d["count"]["holdout"]' "$TMP/out"
  check "the distribution covers every member" \
    json_true 'd["distribution"]["tags"]["value_tier"]["values"] == [{"value": "high", "count": d["count"]["count"]}]' "$TMP/out"
  run 0 resolve mobile:13817265409 "${FILES[@]}"
  LINA=$(cat "$TMP/out")
  run 0 --json audience "$AUD" --defs tags.json --now $NOW --members 100 "${FILES[@]}"
  check "Li Na is in the audience" json_true "$LINA in [m['oneid'] for m in d['members']]" "$TMP/out"
  run 0 audience "$AUD" --defs tags.json --now $NOW --distribution value_tier,recent_buyer --members 2 --mask "${FILES[@]}"
  check "text: the count and the plan" grep -Eq '^[1-9][0-9]* persons at 2023-12-30 16:00Z$' "$TMP/out"
  check "text: one condition from the tag index" grep -q '1 condition from tag indexes, 1 evaluated per person' "$TMP/out"
  check "text: only the tags asked for" test "$(sed -n '/^Distribution:/,/^Members/p' "$TMP/out" | grep -c '^  ')" = 2
  check "text: two masked members" test "$(grep -c '^  OneID .*\*\*\*\*' "$TMP/out")" = 2
  ;;
lifecycle)  # machines.json replayed day by day over the bundled data
  run 0 lifecycle --define machines.json "${FILES[@]}"
  check "the summary counts $((LINES - MALFORMED)) records accepted, $MALFORMED rejected" \
    grep -Eq "^At .*: $((LINES - MALFORMED)) records accepted, $MALFORMED rejected; [0-9]+ steps" "$TMP/out"
  for m in aipl fast activity; do
    check "persons per state of $m" grep -Eq "^  machine $m +[a-z_]+ [0-9]+, " "$TMP/out"
  done
  check "intents per action" grep -Eq '^  intents (loyal_welcome|welcome_back) [1-9]' "$TMP/out"
  check "transitions print as they happen, with their reason" grep -Eq '^20[0-9-]+ [0-9:]+Z  OneID [0-9]+  aipl: aware -> purchase \(event (order|purchase)\)$' "$TMP/out"
  check "timers fire at advances" grep -Eq '^20[0-9-]+ 16:00Z  advance: [1-9][0-9]* timers? fired' "$TMP/out"
  check "a timer's transition" grep -Eq '  activity: active -> dormant \(timer\)$' "$TMP/out"
  check "intents print with their action, channel and origin" \
    grep -Eq '  intent #[0-9]+ loyal_welcome via wechat_template \(machine:aipl purchase->loyal\) \{"city":' "$TMP/out"
  check "rejected lines are listed by file and line" test "$(grep -cE '^  [a-z]+\.ndjson:[0-9]+: ' "$TMP/out")" = "$MALFORMED"
  run 0 --json lifecycle --define machines.json --step 12h "${FILES[@]}"
  tail -n 1 "$TMP/out" >"$TMP/summary.json"
  check "--json: NDJSON, the summary last" \
    python3 -c 'import json,sys; ls=[json.loads(l) for l in open(sys.argv[1])]; sys.exit(not (all(len(l) == 1 for l in ls) and list(ls[-1]) == ["summary"]))' "$TMP/out"
  check "--json: every intent once, counted by action" \
    test "$(grep -c '^{"intent":' "$TMP/out")" = "$(json_get 'sum(d["summary"]["intents_by_action"].values())' "$TMP/summary.json")"
  check "--json: only the lifecycle's feed events" \
    test -z "$(grep '^{"feed":' "$TMP/out" | grep -Ev '"kind":"(state_changed|points|tier_changed|journey|intent)"')"
  check "--json: each machine holds every person once" \
    json_true 'len({sum(m["persons"].values()) for m in d["summary"]["lifecycle"]["machines"]}) == 1' "$TMP/summary.json"
  check "--json: the errors" test "$(grep -c '^{"error":' "$TMP/out")" = "$MALFORMED"
  check "--json: half-day steps" json_true 'd["summary"]["steps"] > 700' "$TMP/summary.json"
  # Stopping early: the records after --until are counted, not replayed.
  run 0 lifecycle --define machines.json --until 2023-07-01 "${FILES[@]}"
  check "--until stops the replay" grep -Eq '^At 2023-06-30 16:00Z: .* [1-9][0-9]* after --until not replayed' "$TMP/out"
  ;;
data)  # the bundled files are exactly what make_demo_data.py writes
  python3 make_demo_data.py "$TMP" >/dev/null
  for f in "${FILES[@]}"; do check "$f is what make_demo_data.py writes" cmp -s "$f" "$TMP/$f"; done
  check "make_demo_data.py writes no other file" test "$(ls "$TMP"/*.ndjson | wc -l)" = "${#FILES[@]}"
  ;;
*) echo "unknown case $CASE"; exit 2 ;;
esac

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
