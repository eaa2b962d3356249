"""The pythonic face of cdpcore: an Engine that turns touchpoint records into persons.

    with cdpcore.Engine() as e:
        e.ingest([{"source": "pos", "ts": 1700000000000, "ids": {"mobile": "13912345678"}}])
        oneid = e.resolve("mobile", "+86 139-1234-5678")
        print(e.person(oneid, mask=True))

Every method is a thin wrapper over one C function of capi/cdp.h: arguments are
encoded to UTF-8 bytes, the status is turned into a typed exception (errors.py), and
JSON results are decoded into dicts. Identifiers are (type, value) tuples.
"""

from __future__ import annotations

import json
import os
from ctypes import byref, c_uint64, string_at
from decimal import Decimal
from typing import (Any, Dict, Iterable, Iterator, List, Mapping, NamedTuple, Optional,
                    Tuple, Union)

from . import _lib
from .errors import MisuseError, _check

Identifier = Tuple[str, str]  # (type, value), e.g. ("mobile", "13912345678")
Record = Union[Mapping[str, Any], str, bytes]
Config = Union[Mapping[str, Any], str, bytes, None]


def _bytes(text: Union[str, bytes]) -> bytes:
    if isinstance(text, str):
        return text.encode("utf-8")
    if isinstance(text, (bytes, bytearray, memoryview)):
        return bytes(text)
    raise TypeError(f"expected str or bytes, not {type(text).__name__}")


def _sv(text: Union[str, bytes]) -> Tuple[bytes, int]:
    """A string view for the C API: the UTF-8 bytes and their length."""
    data = _bytes(text)
    return data, len(data)


def _json_call(fn, *args, exact: bool = False) -> Any:
    """Calls a C function whose first argument is a cdp_buf, returns the decoded JSON.
    exact=True decodes numbers with a fraction (money, in yuan) as Decimal."""
    buf = _lib.cdp_buf()
    try:
        _check(fn(byref(buf), *args))
        if not buf.ptr:
            return None
        text = string_at(buf.ptr, buf.size)
        return json.loads(text, parse_float=Decimal) if exact else json.loads(text)
    finally:
        _lib.cdp_buf_free(byref(buf))


def _text_call(fn, *args) -> str:
    """Like _json_call for a function whose result is text but not one JSON document."""
    buf = _lib.cdp_buf()
    try:
        _check(fn(byref(buf), *args))
        return string_at(buf.ptr, buf.size).decode("utf-8") if buf.ptr else ""
    finally:
        _lib.cdp_buf_free(byref(buf))


def _json_bytes(value: Any) -> bytes:
    """A dict or list as compact UTF-8 JSON; str and bytes pass through as JSON text."""
    if isinstance(value, (str, bytes, bytearray, memoryview)):
        return _bytes(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _audience_request(expr: Union[str, Mapping[str, Any], None], ast: Optional[Mapping[str, Any]],
                      audience: Optional[str], now: Optional[int],
                      holdout: Optional[Mapping[str, Any]], group: Optional[str],
                      **options: Any) -> bytes:
    """The JSON request of the cdp_audience_* queries (docs/audiences.md). Exactly one of
    expr (text, or an AST dict), ast and audience names the members."""
    given = [x is not None for x in (expr, ast, audience)]
    if sum(given) != 1:
        raise TypeError("give exactly one of expr, ast= or audience=")
    req: Dict[str, Any] = {}
    if isinstance(expr, Mapping):
        req["ast"] = dict(expr)
    elif expr is not None:
        req["expr"] = expr
    if ast is not None:
        req["ast"] = dict(ast)
    if audience is not None:
        req["audience"] = audience
    if now is not None:
        req["now"] = now
    if holdout is not None:
        req["holdout"] = dict(holdout)
    if group is not None:
        req["group"] = group
    req.update((k, v) for k, v in options.items() if v is not None)
    return _json_bytes(req)


def _line(record: Record) -> bytes:
    """One record as one line of NDJSON, without its line terminator."""
    if isinstance(record, Mapping):
        return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    line = _bytes(record).rstrip(b"\r\n")  # lines read from a file keep their terminator
    if b"\n" in line:
        # It would become two lines and shift the report's line numbers and "assign".
        raise ValueError("a record line contains a newline; pass NDJSON text as a whole")
    return line


def _ndjson(records: Union[bytes, str, Iterable[Record]]) -> bytes:
    if isinstance(records, (bytes, bytearray, memoryview)):
        return bytes(records)
    if isinstance(records, str):
        return records.encode("utf-8")
    if isinstance(records, Mapping):
        raise TypeError("ingest() takes many records; use ingest_record() for one")
    return b"\n".join(_line(r) for r in records)


def version() -> str:
    """The runtime library version, "MAJOR.MINOR.PATCH"."""
    return _lib.cdp_version_string().decode()


def default_config() -> Dict[str, Any]:
    """The built-in engine config: every identifier type's policy and the blocklist.

    Edit it and pass it to Engine(config=...) to change a policy."""
    return _json_call(_lib.cdp_config_default)


class Engine:
    """An identity graph: records in, persons (OneIDs) out.

    Use it as a context manager, or call close(). Threads may share an engine:
    reads run concurrently, changes one at a time (cdp.h rule 6); close it only when no
    other thread uses it.
    """

    def __init__(self, config: Config = None, path: Optional[Union[str, os.PathLike]] = None,
                 key: Optional[bytes] = None) -> None:
        """Opens an engine.

        config: a dict, or JSON text; None for default_config().
        path: None for an in-memory engine; a directory for a persistent one, created
        if missing (its parent must exist). Every write is logged there before it
        returns, and opening the directory again replays the log: the engine comes back
        as it was. A new directory keeps the config it was created with; reopening it
        takes config=None (the stored one) or the very same config. One open engine per
        directory. stats()["durability"] reports the log and what opening recovered.
        Raises InvalidError for a bad config (its message names the line, column or
        JSON path at fault) or one other than the directory's; CdpIOError when the
        directory cannot be used (missing parent, held by another open engine, a
        corrupt log: the message names the file and offset). On a persistent engine,
        any write raises CdpIOError if its log cannot be written, and so does every
        later write until the engine is reopened.

        key: the host's key (bytes, at least 16) when the config stores identifier
        types hashed ("hashed": True in a type's policy): their values are then kept
        as a keyed hash and a mask, never raw. Needed exactly then; a directory
        remembers its key and refuses another (InvalidError).
        """
        self._handle: Optional[int] = None  # set first: __del__ runs even if open fails
        if config is None:
            data = b""
        elif isinstance(config, Mapping):
            data = json.dumps(config, ensure_ascii=False).encode("utf-8")
        else:
            data = _bytes(config)
        directory = os.fsencode(path) if path is not None else None
        handle = _lib.cdp_engine_p()
        if key is None:
            _check(_lib.cdp_engine_open(byref(handle), data or None, len(data), directory))
        else:
            key = _bytes(key)
            _check(_lib.cdp_engine_open_keyed(byref(handle), data or None, len(data), directory,
                                              key, len(key)))
        self._handle = handle.value

    # --- lifetime -------------------------------------------------------------------

    def close(self) -> None:
        """Frees the engine. Safe to call twice; every other method then raises
        MisuseError."""
        handle, self._handle = self._handle, None
        if handle is not None:
            _check(_lib.cdp_engine_close(handle))

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __del__(self) -> None:
        # At interpreter exit the module globals may already be gone; the OS frees then.
        if getattr(self, "_handle", None) is not None and _lib is not None:
            _lib.cdp_engine_close(self._handle)
            self._handle = None

    def __repr__(self) -> str:
        return f"<cdpcore.Engine {'open' if self._handle is not None else 'closed'}>"

    @property
    def _h(self) -> int:
        """The C handle; raises MisuseError once the engine is closed."""
        if self._handle is None:
            raise MisuseError(_lib.CDP_EMISUSE, "the engine is closed")
        return self._handle

    # --- ingestion ------------------------------------------------------------------

    def ingest(self, records: Union[bytes, str, Iterable[Record]], *, assign: bool = False
               ) -> Dict[str, Any]:
        """Ingests one batch of records and returns the report.

        records: NDJSON as bytes or str, or an iterable of records, each a dict or one
        JSON line (str or bytes). The batch's persons do not depend on its order.
        Malformed lines are not raised: the report counts them and lists them under
        "errors" with their 1-based line and field, and the other lines still land.
        assign=True adds "assign": the OneID of every input line, 0 where a line was
        rejected or linked no identifier.
        Raises LimitError when the batch is over the configured size.
        """
        data = _ndjson(records)
        flags = _lib.CDP_INGEST_ASSIGN if assign else 0
        return _json_call(_lib.cdp_ingest_ndjson, self._h, data, len(data), flags)

    def ingest_record(self, record: Record) -> Dict[str, Any]:
        """Ingests one record (a dict or a JSON object as text) and returns its report,
        whose "oneid" is the person it landed in. Raises InvalidError naming the field
        when the record is malformed; nothing is ingested then."""
        if isinstance(record, Mapping):
            record = json.dumps(record, ensure_ascii=False)
        data = _bytes(record)  # one JSON object, which may span lines
        return _json_call(_lib.cdp_ingest_record, self._h, data, len(data))

    # --- persons --------------------------------------------------------------------

    def resolve_records(self, records: Union[bytes, str, Iterable[Record]]) -> List[int]:
        """The OneID each record belongs to now, one per line, without ingesting them
        (0 for a blank or malformed line or one with no known identifier). Use it to
        refresh OneIDs stored from ingest(assign=True) after merges, splits and
        quarantines."""
        data = _ndjson(records)
        return _json_call(_lib.cdp_records_resolve, self._h, data, len(data))["oneids"]

    def resolve(self, type: str, value: str) -> Optional[int]:
        """The OneID holding an identifier, or None when it is unknown. The value is
        normalised first: ("mobile", "+86 139-1234-5678") finds "13912345678"."""
        oneid = c_uint64()
        status = _lib.cdp_resolve(byref(oneid), self._h, *_sv(type), *_sv(value))
        if status == _lib.CDP_ENOTFOUND:
            return None
        _check(status)
        return oneid.value

    def person(self, oneid: int, mask: bool = False) -> Dict[str, Any]:
        """The whole person: identifiers, attributes with their lineage (source, ts and
        survivorship rule), an event summary per type, tags and states. Money amounts
        are Decimal (yuan). An absorbed OneID answers for its survivor ("requested"
        keeps the one asked for). mask=True masks identifier values (138****8000).
        Raises NotFoundError for an unknown OneID."""
        flags = _lib.CDP_MASK if mask else 0
        return _json_call(_lib.cdp_person_get, self._h, oneid, flags, exact=True)

    def person_identifiers(self, oneid: int, mask: bool = False) -> Dict[str, Any]:
        """A person's identifiers only (cheaper than person()). Raises NotFoundError for
        an unknown OneID."""
        flags = _lib.CDP_MASK if mask else 0
        return _json_call(_lib.cdp_person_identifiers, self._h, oneid, flags)

    def persons(self, mask: bool = False, page_size: int = 1000) -> Iterator[Dict[str, Any]]:
        """Iterates over every person, fetching page_size at a time. Do not change the
        engine while iterating."""
        flags = _lib.CDP_MASK if mask else 0
        cursor = 0
        while True:
            page = _json_call(_lib.cdp_persons_page, self._h, cursor, page_size, flags)
            yield from page["persons"]
            cursor = page["next"]
            if cursor == 0:
                return

    def explain(self, a: Identifier, b: Identifier) -> Dict[str, Any]:
        """Why two identifiers are one person (the evidence path, "linked": True) or
        what kept them apart ("linked": False, "kept_apart_by"). Raises NotFoundError
        when either is unknown."""
        return _json_call(_lib.cdp_explain, self._h,
                          *_sv(a[0]), *_sv(a[1]), *_sv(b[0]), *_sv(b[1]))

    # --- unmerge and manual rules ---------------------------------------------------
    # Each returns {"oneids": [the persons that result], "feed": {"from": C, "to": C}}.

    def remove_identifier(self, type: str, value: str) -> Dict[str, Any]:
        """Removes an identifier and all evidence touching it; its person is rebuilt
        from what remains. Raises NotFoundError when it is unknown."""
        return _json_call(_lib.cdp_identifier_remove, self._h, *_sv(type), *_sv(value))

    def remove_source(self, source: str) -> Dict[str, Any]:
        """Removes all evidence that came from a source (e.g. a system found to be
        wrong). Raises NotFoundError when no record came from it."""
        return _json_call(_lib.cdp_source_remove, self._h, *_sv(source))

    def split(self, oneid: int, identifiers: Iterable[Union[str, Identifier]]
              ) -> Dict[str, Any]:
        """Splits a person: the listed identifiers ("type:value" or (type, value)) become
        one side, the rest the other, and a never_link rule keeps them apart. Raises
        InvalidError when the list is all, none or not of this person."""
        idents = [i if isinstance(i, str) else f"{i[0]}:{i[1]}" for i in identifiers]
        data = json.dumps(idents, ensure_ascii=False).encode("utf-8")
        return _json_call(_lib.cdp_person_split, self._h, oneid, data, len(data))

    def forget(self, oneids: Iterable[int] = (), identifiers: Iterable[Identifier] = (),
               compact: bool = True) -> Dict[str, Any]:
        """Forgets persons completely (a PIPL deletion request), named by OneID or by any
        (type, value) identifier: identifiers, evidence, profile, tags, states, points,
        journeys, outbox intents and earlier feed events about them. Only keyed hashes of
        the identifiers remain, so later records carrying them are refused. On a persistent
        engine, compact=True then writes a snapshot and removes every older file, so the
        directory holds none of their values (compact=False leaves that to the next
        snapshot). Returns {"forgotten": [{"oneid", "identifiers", "absorbed"}],
        "not_found", "feed", "snapshot", "erasure_pending"}. Raises NotFoundError when no
        live person matches."""
        request = {"oneids": list(oneids),
                   "identifiers": [{"type": t, "value": v} for t, v in identifiers],
                   "compact": compact}
        data = json.dumps(request, ensure_ascii=False).encode("utf-8")
        return _json_call(_lib.cdp_person_forget, self._h, data, len(data))

    def export_person(self, oneid: int) -> Dict[str, Any]:
        """Everything held about a person (an access request), unmasked: the person
        document plus every piece of evidence, manual rule, attribute observation and
        event with its properties. Money amounts are Decimal. Raises NotFoundError."""
        return _json_call(_lib.cdp_person_export, self._h, oneid, exact=True)

    def force_link(self, a: Identifier, b: Identifier, note: str = "") -> int:
        """Joins the persons of two identifiers despite the policies; returns the rule
        id. Raises ConflictError across a never_link rule."""
        return self._add_rule("force_link", a, b, note)

    def never_link(self, a: Identifier, b: Identifier, note: str = "") -> int:
        """Keeps two identifiers in different persons (splitting one holding both);
        returns the rule id. Raises ConflictError across a force_link rule."""
        return self._add_rule("never_link", a, b, note)

    def _add_rule(self, kind: str, a: Identifier, b: Identifier, note: str) -> int:
        rule = c_uint64()
        _check(_lib.cdp_rule_add(byref(rule), self._h, *_sv(kind),
                                 *_sv(a[0]), *_sv(a[1]), *_sv(b[0]), *_sv(b[1]), *_sv(note)))
        return rule.value

    def remove_rule(self, rule: int) -> Dict[str, Any]:
        """Removes a manual rule and rebuilds the persons it touched. Raises
        NotFoundError for an unknown rule id."""
        return _json_call(_lib.cdp_rule_remove, self._h, rule)

    def rules(self) -> List[Dict[str, Any]]:
        """The manual rules: [{"id", "kind", "a": "type:value", "b", "note"}]."""
        return _json_call(_lib.cdp_rules_list, self._h)["rules"]

    # --- change feed ----------------------------------------------------------------

    def feed(self, cursor: int = 0, limit: int = 1000) -> Tuple[List[Dict[str, Any]], int]:
        """Reads up to limit change events with seq >= cursor. Returns (events, next):
        pass next back to continue; an empty list means caught up."""
        page = _json_call(_lib.cdp_feed_read, self._h, cursor, limit)
        return page["events"], page["next"]

    def feed_iter(self, cursor: int = 0, limit: int = 1000) -> Iterator[Dict[str, Any]]:
        """Iterates over change events from cursor until caught up."""
        while True:
            events, cursor = self.feed(cursor, limit)
            if not events:
                return
            yield from events

    def trim_feed(self, cursor: int) -> None:
        """Drops events with seq < cursor, which the host has consumed."""
        _check(_lib.cdp_feed_trim(self._h, cursor))

    # --- statistics -----------------------------------------------------------------

    # --- expressions ----------------------------------------------------------------

    def compile(self, expression: Union[str, Mapping[str, Any]]) -> "Expression":
        """Compiles an expression (docs/expressions.md): text such as
        'attrs.city == "上海" && count(order, 30d) >= 2', or its JSON AST as a dict
        (what Expression.ast returns). Raises InvalidError naming the line and column
        (or the AST's JSON path), LimitError over the configured expression limits."""
        if isinstance(expression, Mapping):
            data = json.dumps(expression, ensure_ascii=False).encode("utf-8")
            flags = _lib.CDP_EXPR_AST
        else:
            data, flags = _bytes(expression), 0
        handle = _lib.cdp_expr_p()
        _check(_lib.cdp_expr_compile(byref(handle), self._h, data, len(data), flags))
        return Expression(self, handle.value)

    def stats(self) -> Dict[str, Any]:
        """Counts of persons, identifiers, links, conflicts, quarantined identifiers and
        records, the feed's cursor range, and memory in bytes by structure."""
        return _json_call(_lib.cdp_engine_stats, self._h)

    def snapshot(self) -> Dict[str, Any]:
        """Writes the whole state of a persistent engine to a snapshot in its directory, so
        the next open loads it and replays only the log after it; removes snapshots but
        the newest two and the log segments older than those. Returns
        {"seq", "file", "bytes", "removed"}. Raises UnsupportedError for an in-memory
        engine and CdpIOError for OS failures (the state and the log are unaffected)."""
        return _json_call(_lib.cdp_snapshot, self._h)

    # --- tags -----------------------------------------------------------------------

    def define_tags(self, defs: Union[List[Mapping[str, Any]], Mapping[str, Any], str, bytes]
                    ) -> Dict[str, Any]:
        """Defines or redefines tags (docs/tags.md): one definition dict, a list of them,
        or their JSON text. All are checked before any is installed, then each is
        evaluated for every person at the engine's clock. Returns
        {"defined": [{"name", "version", "persons", "changed"}]}.
        Raises InvalidError naming the definition and field ("tags[1] (tier).rules[0].when:
        line 1, column 9: ...") or the cycle ("tag cycle: a -> b -> a"); LimitError past
        limits.max_tags."""
        data = _json_bytes(defs)
        return _json_call(_lib.cdp_tags_define, self._h, data, len(data))

    def drop_tag(self, name: str) -> None:
        """Drops a tag and its values. Raises NotFoundError when it is not defined,
        ConflictError while another tag reads it."""
        _check(_lib.cdp_tag_drop(self._h, *_sv(name)))

    def tags(self) -> List[Dict[str, Any]]:
        """The tag catalogue in dependency order: each tag's name, kind, version,
        description, value type, index (category, number or list), time_dependent, the
        tags it reads, persons with a value, distinct values, and its definition."""
        return _json_call(_lib.cdp_tags_list, self._h)["tags"]

    def person_tags(self, oneid: int) -> Dict[str, Dict[str, Any]]:
        """A person's tag values: {"tier": {"value": "high", "version": 2}, ...}; tags
        without a value for this person are left out. Money is Decimal. Raises
        NotFoundError for an unknown OneID (an absorbed one answers for its survivor)."""
        return _json_call(_lib.cdp_person_tags, self._h, oneid, exact=True)["tags"]

    def advance(self, now_ms: int) -> Dict[str, Any]:
        """Moves the engine's clock to now_ms (epoch ms), re-evaluates the tags whose
        values may have changed with time and fires the lifecycle deadlines due by then,
        in time order. Returns {"now", "persons" (re-evaluated), "changed" (values
        changed), "next" (the next instant a tag value may change or a deadline is due,
        or None), "lifecycle": {"fired" (timers due), "transitions", "intents" (put in
        the outbox), "capped" (only when some person reached the 1000 timers one call
        fires for a person: their other due deadlines wait for the next call), "next"
        (the next deadline, or None)}}. Raises ConflictError when now_ms is before an
        earlier advance: the clock never goes back; InvalidError for a time before 1970
        or after 9999."""
        return _json_call(_lib.cdp_advance, self._h, now_ms)

    # --- audiences ------------------------------------------------------------------
    # The members are named by exactly one of: expr (text, or a JSON AST dict), ast=, or
    # audience= (a saved audience's name). now= (epoch ms, default the engine's clock) is
    # when the expression's own windows are read; holdout={"salt": ..., "percent": P} (or
    # "basis_points") splits the members by a hash of OneID and salt, and group= ("all",
    # "target" or "holdout") keeps one side. Errors: InvalidError naming the line and
    # column or the option at fault, NotFoundError for an unknown saved audience,
    # LimitError over the expression limits.

    def audience_count(self, expr: Union[str, Mapping[str, Any], None] = None, *,
                       ast: Optional[Mapping[str, Any]] = None, audience: Optional[str] = None,
                       now: Optional[int] = None, holdout: Optional[Mapping[str, Any]] = None,
                       group: Optional[str] = None) -> Dict[str, Any]:
        """Counts an audience: {"count", "target" and "holdout" (with a holdout), "now",
        "plan": {"indexed_leaves", "scanned_leaves", "persons_evaluated"}}."""
        data = _audience_request(expr, ast, audience, now, holdout, group)
        return _json_call(_lib.cdp_audience_count, self._h, data, len(data))

    def audience_members(self, expr: Union[str, Mapping[str, Any], None] = None, *,
                         ast: Optional[Mapping[str, Any]] = None, audience: Optional[str] = None,
                         now: Optional[int] = None, holdout: Optional[Mapping[str, Any]] = None,
                         group: Optional[str] = None, ids: Optional[Iterable[str]] = None,
                         mask: bool = True, page_size: int = 1000) -> Iterator[Dict[str, Any]]:
        """Iterates over an audience's members, fetching page_size at a time: each is
        {"oneid", "holdout" (with a holdout), "ids": {"mobile": [...]} (for the identifier
        types in ids)}; identifier values are masked unless mask=False. Every page
        selects the audience again: do not change the engine while iterating."""
        cursor = 0
        id_types = list(ids) if ids is not None else None
        while True:
            data = _audience_request(expr, ast, audience, now, holdout, group, cursor=cursor,
                                     limit=page_size, ids=id_types, mask=mask)
            page = _json_call(_lib.cdp_audience_members, self._h, data, len(data))
            yield from page["members"]
            cursor = page["next"]
            if cursor == 0:
                return

    def audience_distribution(self, expr: Union[str, Mapping[str, Any], None] = None, *,
                              tags: Iterable[str], top: int = 10,
                              ast: Optional[Mapping[str, Any]] = None,
                              audience: Optional[str] = None, now: Optional[int] = None,
                              holdout: Optional[Mapping[str, Any]] = None,
                              group: Optional[str] = None) -> Dict[str, Any]:
        """How an audience spreads over tags: {"count", "tags": {name: {"values":
        [{"value", "count"}] (most common first, at most top), "other" (members with
        values beyond the top), "none" (members without a value)}}}. Money is Decimal.
        Raises InvalidError for an undefined tag."""
        if isinstance(tags, str):
            raise TypeError("tags= takes a list of tag names")
        data = _audience_request(expr, ast, audience, now, holdout, group, tags=list(tags), top=top)
        return _json_call(_lib.cdp_audience_distribution, self._h, data, len(data), exact=True)

    def audience_export(self, expr: Union[str, Mapping[str, Any], None] = None, *,
                        channel: Iterable[str], format: str = "ndjson", mask: bool = False,
                        fallback: bool = True, ast: Optional[Mapping[str, Any]] = None,
                        audience: Optional[str] = None, now: Optional[int] = None,
                        holdout: Optional[Mapping[str, Any]] = None,
                        group: Optional[str] = None) -> str:
        """Exports an audience for a channel, as NDJSON (one {"oneid", "type", "value"}
        line per member) or CSV ("oneid,type,value,source,holdout"). channel lists the
        identifier types the channel reaches, best first (e.g. ["mobile", "unionid"]);
        with fallback, a member holding none of them is reached through the source of
        their latest record ("fallback_source"). Members with no identifier to use are
        left out."""
        if isinstance(channel, str):
            raise TypeError("channel= takes a list of identifier types, best first")
        data = _audience_request(expr, ast, audience, now, holdout, group, channel=list(channel),
                                 format=format, mask=mask, fallback=fallback)
        return _text_call(_lib.cdp_audience_export, self._h, data, len(data))

    def save_audience(self, name: str, expr: Union[str, Mapping[str, Any], None] = None, *,
                      ast: Optional[Mapping[str, Any]] = None,
                      holdout: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
        """Saves an audience (an "audience package") under a name: its expression and
        holdout. Saving an existing name replaces its request and keeps its count history.
        Returns {"name", "count"}. Raises InvalidError for a bad name or request,
        LimitError past limits.max_audiences."""
        data = _audience_request(expr, ast, None, None, holdout, None)
        return _json_call(_lib.cdp_audience_save, self._h, *_sv(name), data, len(data))

    def drop_audience(self, name: str) -> None:
        """Drops a saved audience. Raises NotFoundError when there is none of that name."""
        _check(_lib.cdp_audience_drop(self._h, *_sv(name)))

    def audiences(self) -> List[Dict[str, Any]]:
        """The saved audiences: [{"name", "request", "counts" (recounts so far), "count"
        and "counted_at" (the last recount's, None before the first)}]."""
        return _json_call(_lib.cdp_audiences_list, self._h)["audiences"]

    def recount_audience(self, name: str) -> Dict[str, Any]:
        """Counts a saved audience again at the engine's clock: {"audience", "count",
        "previous" (None the first time), "entered", "left", "now"}; the same goes to the
        change feed as an audience_counted event. A member whose person has ended since
        the last count (absorbed by a merge, or forgotten) counts as left. Raises
        NotFoundError for an unknown name."""
        return _json_call(_lib.cdp_audience_recount, self._h, *_sv(name))

    # --- metrics --------------------------------------------------------------------

    def metrics(self, request: Union[Mapping[str, Any], str, bytes]) -> Dict[str, Any]:
        """Computes an operating metric: request names it ({"metric": "funnel", ...};
        docs/metrics.md lists the metrics, their requests and reports). Money is Decimal.
        Raises InvalidError naming the field at fault, LimitError when an evaluation runs
        over the step limit, UnsupportedError from a library built without metrics."""
        data = _json_bytes(request)
        return _json_call(_lib.cdp_metrics, self._h, data, len(data), exact=True)

    # --- lifecycle ------------------------------------------------------------------
    # Machines, the loyalty program and journeys (docs/lifecycle.md, loyalty.md,
    # journeys.md), and the outbox of the action intents they emit. The engine sends
    # nothing: the host reads intents, delivers them and acknowledges them.

    def define_lifecycle(self, defs: Union[Mapping[str, Any], str, bytes]) -> Dict[str, Any]:
        """Defines or redefines machines, the loyalty program and journeys: a document
        (a dict, or its JSON text) with any of "machines", "loyalty", "journeys" and
        "delivery". Everything is checked before anything is installed. A new machine
        enters every person with a profile at its initial state; a redefined one keeps
        each person's state when it still exists. Returns what was installed, by part:
        {"machines": [names], ...}.
        Raises InvalidError naming the JSON path ("machines[0] (activity).transitions[1]
        .after: expected a duration ..."), LimitError past
        limits.max_lifecycle_definitions."""
        if isinstance(defs, (list, tuple)):
            raise TypeError('define_lifecycle() takes one document: {"machines": [...], ...}')
        data = _json_bytes(defs)
        return _json_call(_lib.cdp_lifecycle_define, self._h, data, len(data))

    def drop_lifecycle(self, kind: str, name: str) -> None:
        """Drops a definition: kind is "machine", "journey" or "loyalty". Its per-person
        state and pending deadlines go; the history already recorded stays. Raises
        NotFoundError when there is none of that kind and name, InvalidError for an
        unknown kind."""
        _check(_lib.cdp_lifecycle_drop(self._h, *_sv(kind), *_sv(name)))

    def lifecycle(self) -> Dict[str, Any]:
        """The lifecycle catalogue: {"machines": [{"name", "version", "monotonic",
        "reset", "initial", "transitions", "persons": {state: count}, "refused_backward",
        "definition"}], "loyalty": ..., "journeys": [...], ...}."""
        return _json_call(_lib.cdp_lifecycle_list, self._h)

    def lifecycle_apply(self, op: Union[str, Mapping[str, Any], bytes],
                        person: Union[int, Identifier, None] = None, **fields: Any
                        ) -> Dict[str, Any]:
        """Applies one manual operation and returns its report ({"oneid", ...}).

        op: the operation's name with its fields as keyword arguments,
            e.lifecycle_apply("set_state", ("mobile", "13917205836"),
                              machine="aipl", state="loyal")
        or the whole request as a dict or JSON text. person: a OneID, or an identifier
        (type, value); ts= (epoch ms) sets the operation's time (default: the engine's
        clock). Operations: set_state; earn, spend, adjust, refund, tier (loyalty);
        enter, exit (journeys).
        Raises InvalidError for a bad request (the field is named), NotFoundError for an
        unknown person, machine or journey, ConflictError when the definitions refuse it
        (a monotonic machine moved backwards, a spend over the balance).
        """
        if isinstance(op, str) and not op.lstrip().startswith("{"):
            req: Dict[str, Any] = {"op": op}
        else:
            if fields:
                raise TypeError("give the fields inside the request, or op as a name")
            if not isinstance(op, Mapping):
                if person is not None:
                    raise TypeError("person= goes with op as a name or a dict")
                data = _bytes(op)
                return _json_call(_lib.cdp_lifecycle_apply, self._h, data, len(data), exact=True)
            req = dict(op)
        if isinstance(person, int) and not isinstance(person, bool):
            req["oneid"] = person
        elif person is not None:
            req["type"], req["value"] = person
        req.update(fields)
        data = _json_bytes(req)
        return _json_call(_lib.cdp_lifecycle_apply, self._h, data, len(data), exact=True)

    def person_lifecycle(self, oneid: int) -> Dict[str, Any]:
        """A person's lifecycle: {"oneid", "history": [{"ts", "machine", "from", "to",
        "reason", "event"?}] (the last limits.max_history, in the order made), "states":
        {machine: {"state", "since", "next"}}, "loyalty", "journeys"}. Raises
        NotFoundError for an unknown OneID (an absorbed one answers for its survivor)."""
        return _json_call(_lib.cdp_person_lifecycle, self._h, oneid, exact=True)

    def outbox(self, cursor: int = 0, limit: int = 100) -> "OutboxPage":
        """Reads the intents not yet acknowledged with id >= cursor, oldest first, at
        most limit (1 to 10000). Returns an OutboxPage (intents, next, pending): each
        intent is {"id", "key" (idempotency), "oneid", "origin", "step", "action",
        "channel", "at", "created", "payload"}; pass next back for the next page; pending
        counts the whole outbox. An intent comes back on every read that starts at or
        before it until it is acknowledged (ack())."""
        page = _json_call(_lib.cdp_outbox_read, self._h, cursor, limit, exact=True)
        return OutboxPage(page["intents"], page["next"], page["pending"])

    def outbox_iter(self, cursor: int = 0, limit: int = 100) -> Iterator[Dict[str, Any]]:
        """Iterates over the unacknowledged intents from cursor until caught up."""
        while True:
            page = self.outbox(cursor, limit)
            if not page.intents:
                return
            yield from page.intents
            cursor = page.next

    def ack(self, ids: Optional[Iterable[Union[int, Mapping[str, Any]]]] = None,
            through: Optional[int] = None) -> Dict[str, Any]:
        """Acknowledges intents, which then leave the outbox: ids (intent ids, or the
        intents themselves as outbox() returns them), or through (every intent with an
        id up to it). Unknown or already acknowledged ids are skipped. Returns
        {"acked": N, "pending": N}."""
        if (ids is None) == (through is None):
            raise TypeError("give exactly one of ids= or through=")
        if ids is not None:
            req: Dict[str, Any] = {"ids": [i["id"] if isinstance(i, Mapping) else i for i in ids]}
        else:
            req = {"through": through}
        data = _json_bytes(req)
        return _json_call(_lib.cdp_outbox_ack, self._h, data, len(data))


class OutboxPage(NamedTuple):
    """One read of the outbox: the intents, the cursor to pass back, and how many
    intents the whole outbox holds unacknowledged."""
    intents: List[Dict[str, Any]]
    next: int
    pending: int


class Evaluation(NamedTuple):
    """One evaluation: the value (money as Decimal, timestamps as epoch ms, dates as
    "YYYY-MM-DD"), its kind ("bool", "int", "money", ...), and valid_until: the epoch ms
    at which it may change without new input, or None."""
    value: Any
    kind: str
    valid_until: Optional[int]


class Expression:
    """A compiled expression of one engine. Made by Engine.compile(); close() it (or use
    it as a context manager) to free it. It keeps its engine alive."""

    def __init__(self, engine: Engine, handle: int) -> None:
        self._engine = engine
        self._handle: Optional[int] = handle

    def close(self) -> None:
        """Frees the expression. Safe to call twice."""
        handle, self._handle = self._handle, None
        if handle is not None:
            _check(_lib.cdp_expr_free(handle))

    def __enter__(self) -> "Expression":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_handle", None) is not None and _lib is not None:
            _lib.cdp_expr_free(self._handle)
            self._handle = None

    @property
    def _h(self) -> int:
        if self._handle is None:
            raise MisuseError(_lib.CDP_EMISUSE, "the expression is closed")
        return self._handle

    @property
    def ast(self) -> Dict[str, Any]:
        """The canonical JSON AST, as a dict; Engine.compile() accepts it back."""
        return _json_call(_lib.cdp_expr_ast, self._h)

    def evaluate(self, oneid: int, now_ms: int) -> Evaluation:
        """Evaluates for a person at now_ms (epoch ms: the engine never reads the clock).
        Raises NotFoundError for an unknown OneID, LimitError when evaluation runs over
        the configured step limit, InvalidError for a time before 1970 or after 9999."""
        self._engine._h  # raises MisuseError once the engine is closed
        r = _json_call(_lib.cdp_expr_eval, self._h, oneid, now_ms, exact=True)
        return Evaluation(r["value"], r["kind"], r["valid_until"])
