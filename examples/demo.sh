#!/usr/bin/env bash
# The demo: the cdp tool on the bundled data of one brand (examples/data, seven channels),
# showing what OneID made of it. Usage: bash examples/demo.sh PATH/TO/cdp
set -euo pipefail
CDP=$(realpath "${1:?usage: demo.sh PATH/TO/cdp}")
cd "$(dirname "$0")/data"  # so errors name the files briefly: pos.ndjson:9: ...
FILES=(pos.ndjson events.ndjson wecom.ndjson wechat.ndjson tmall.ndjson app.ndjson crm.ndjson)
LINA_WECOM=external_userid:wmLiNa0mEAAAq1vX9bR2kP3w8yZ5cD7eF

heading() {
  if [ -t 1 ]; then printf '\n\033[1m== %s ==\033[0m\n' "$*"; else printf '\n== %s ==\n' "$*"; fi
}

heading "Ingest: $(cat "${FILES[@]}" | wc -l) touchpoints from ${#FILES[@]} channels"
"$CDP" ingest "${FILES[@]}"

heading "Persons (masked, the first 4)"
"$CDP" persons --mask --limit 4 "${FILES[@]}"

heading "Merges: two persons found to be one (the first 5)"
"$CDP" merges --limit 5 "${FILES[@]}"

heading "Conflicts: unions the rules refused (the first 5)"
"$CDP" conflicts --limit 5 "${FILES[@]}"

heading "Quarantined: identifiers that kept joining strangers"
"$CDP" quarantined "${FILES[@]}"

heading "Li Na, PwC's scenario: seven channels over a year, one OneID"
echo "\$ cdp resolve 'mobile:+86 138 1726 5409'  ->  $("$CDP" resolve 'mobile:+86 138 1726 5409' "${FILES[@]}")"
echo "\$ cdp resolve unionid:o6_bmjrPTlm6_2sgVt7hMZOPfL2M  ->  $("$CDP" resolve unionid:o6_bmjrPTlm6_2sgVt7hMZOPfL2M "${FILES[@]}")"
"$CDP" person --mask mobile:13817265409 "${FILES[@]}"

heading "An audience condition for Li Na, at 2024-01-10 (the engine never reads the clock)"
COND='count(order, this_year) == 0 && sum(order.amount) >= 500 && attrs.city == "上海"'
echo "\$ cdp eval --now 2024-01-10T09:00:00+08:00 '$COND' mobile:13817265409"
"$CDP" eval --now 2024-01-10T09:00:00+08:00 "$COND" mobile:13817265409 "${FILES[@]}"

heading "Explain: why is Li Na's Tmall account her WeCom contact?"
"$CDP" explain tb_nick:lina_0520 "$LINA_WECOM" "${FILES[@]}"

heading "Explain: a couple sharing the family iPad stays two persons"
"$CDP" explain mobile:13916820431 mobile:13916820477 "${FILES[@]}"

heading "Assign: the OneID of every input line, to join back to the source tables"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
"$CDP" ingest --assign "$OUT/assign.tsv" "${FILES[@]}" >/dev/null
echo "file<TAB>line<TAB>oneid (empty: rejected, or no identifier linked)"
head -n 8 "$OUT/assign.tsv"

heading "Tags: the catalogue over the bundled data (examples/data/tags.json), at 2024-01-10"
NOW=2024-01-10T09:00:00+08:00
"$CDP" tags --define tags.json --now "$NOW" "${FILES[@]}"

heading "An audience (圈人): high-value members in Shanghai, a 20% holdout, its portrait"
"$CDP" audience 'tags.value_tier == "high" && tags.member == "member" && tags.city == "上海"' \
  --defs tags.json --now "$NOW" --holdout spring:20 --distribution stage,rfm,channel_pref,gender --members 3 --mask \
  "${FILES[@]}"

heading "Lifecycle: the year replayed day by day through AIPL, FAST+, activity, loyalty and the PwC journeys"
echo "\$ cdp lifecycle --define machines.json --define loyalty.json --define journeys.json (docs/lifecycle.md)"
"$CDP" lifecycle --define machines.json --define loyalty.json --define journeys.json "${FILES[@]}" >"$OUT/life.txt"
echo "The last week's action intents (the engine decides; the host sends), $(grep -c ' intent #' "$OUT/life.txt") in the year:"
grep ' intent #' "$OUT/life.txt" | awk '$1 >= "2023-12-31"' | tail -n 15
echo
echo "The lifecycle distribution at the end:"
sed -n '/^At /,/^Rejected lines:/p' "$OUT/life.txt" | grep -v '^Rejected lines:'
