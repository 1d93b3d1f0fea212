"""The three built-in stores, driven side by side at the store level, answer alike.

Hypothesis draws a sequence of store-level steps: units of work opened (read or write,
nested too), and inside them adds, updates and removes of the contract suite's sample rows
(stale versions, duplicate keys, unique clashes, values no store keeps), reads by held and
unheld values, lookups no table declares, the audit chain, customer searches, commit,
rollback, leaving blocks, use of finished units of work, and ``close()``. Each step runs on
a ``MemoryStore``, a ``SQLiteStore`` (file) and a ``PostgresStore``; after every step the
three must return the same result (normalised) or raise the same exception (class and
message). At the end, every table and the audit trail must be the same.

It found eleven kinds of difference when it was written (eighth session); ``KNOWN`` lists
those left, each described (``docs/stores.md`` states them). ``STORE_DIFF_STRICT=1``
fails on those too. (The ninth session made a unit of work opened inside an open one
refused on ``PostgresStore`` too, and one opened after a commit inside the same block
opened on ``MemoryStore`` too: that known entry had hidden the second difference.)
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import os
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from _faked_text import FakedStr as _FakedText
from partnerkit.audit import GENESIS_HASH, AuditEvent
from partnerkit.ports import Store
from partnerkit.roles import AdminRole
from partnerkit.stores.memory import MemoryStore
from partnerkit.stores.sqlite import SQLiteStore
from partnerkit.testing.contract import TABLE_SAMPLES, _chain, _event

if find_spec("psycopg") is None and not os.environ.get("PARTNERKIT_REQUIRE_POSTGRES"):
    pytest.skip("psycopg is not installed (partnerkit[postgres])", allow_module_level=True)

pytest_plugins = ["pg_fixtures"]
pytestmark = pytest.mark.postgres

#: Each example is short (a few ms per step on three stores): five times the profile's count
#: (ci: 300, about 10 s with the server's start), or STORE_DIFF_EXAMPLES.
MAX_EXAMPLES = int(os.environ.get("STORE_DIFF_EXAMPLES", "0")) or max(
    1, settings().max_examples * 5
)

_T0 = datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


class StrSub(str):
    """A str subclass whose equality is not its text's."""

    def __eq__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:
        return 0


class PlainStrSub(str):
    pass


class OddStr(str):
    """A str subclass whose own methods answer wrongly: a store reads only its text."""

    def encode(self, *args: object, **kwargs: object) -> Any:
        return 5

    def __contains__(self, item: object) -> bool:
        return False

    def replace(self, *args: object) -> Any:
        return "x"


class FakedStr(_FakedText):
    """The shared hostile subclass, claiming also to hold no text at all."""

    def __contains__(self, item: object) -> bool:
        return False


# -- values -----------------------------------------------------------------------------------

WEIRD = [
    "a\x00b",
    "\ud800",
    "usr_\udfff",
    5,
    2**70,
    -1,
    1.5,
    True,
    b"usr_b",
    None,
    "global_admin",
    "",
    PlainStrSub("usr_b"),
    StrSub("zzz"),
    OddStr("usr_b"),
    OddStr("a\x00b"),
    FakedStr("usr_b"),
    FakedStr("a\x00b"),
    ("a", "b"),
    AdminRole.GLOBAL_ADMIN,
]
BAD_FIELD_VALUES = [
    "a\x00b",
    "x\ud800",
    datetime(2024, 1, 1),
    2**63,
    True,
    1,
    None,
    "global_admin",
    -5,
    b"bytes",
    datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=2))),
]

CHAIN = _chain(
    ("cmp_a", "cmp_a"),
    ("cmp_a", "cmp_b"),
    (None, "cmp_b"),
    ("cmp_b", None),
    ("cmp_a", "cmp_a"),
    ("cmp_c", "cmp_a"),
)


def _bad_event(kind: str, i: int) -> AuditEvent:
    prev = CHAIN[i - 1].hash if i else GENESIS_HASH
    if kind == "wrong_prev":
        return _event(i + 1, "0" * 64)
    if kind == "skip":
        return _event(i + 2, prev)
    if kind == "nonutc":
        return AuditEvent.chained(
            seq=i + 1,
            prev_hash=prev,
            at=datetime(2024, 1, 1, 12, tzinfo=timezone(timedelta(hours=2))),
            action="user.create",
            outcome="success",
            correlation_id="c",
        )
    if kind == "naive":
        return AuditEvent.chained(
            seq=i + 1,
            prev_hash=prev,
            at=datetime(2024, 1, 1, 12),
            action="user.create",
            outcome="success",
            correlation_id="c",
        )
    event = attrs.evolve(CHAIN[i])
    if kind == "nul_action":
        object.__setattr__(event, "action", "user.\x00create")
    elif kind == "surrogate_reason":
        object.__setattr__(event, "reason", "r\ud800")
    elif kind == "seq_str":
        object.__setattr__(event, "seq", str(event.seq))
    elif kind == "seq_bool":
        object.__setattr__(event, "seq", True)
    elif kind == "big_seq":
        object.__setattr__(event, "seq", 2**63)
    elif kind == "detail_bad":
        object.__setattr__(event, "detail", (("k", "v\x00"),))
    elif kind == "company_int":
        object.__setattr__(event, "company_id", 7)
    return event


BAD_EVENT_KINDS = [
    "wrong_prev",
    "skip",
    "nonutc",
    "naive",
    "nul_action",
    "surrogate_reason",
    "seq_str",
    "seq_bool",
    "big_seq",
    "detail_bad",
    "company_int",
]


def _row(spec: tuple[Any, ...]) -> Any:
    """Build a row from its drawn description."""
    kind, s, n = spec[0], spec[1], spec[2]
    sample = TABLE_SAMPLES[s]
    base = sample.make(n)
    if kind == "v":  # make(n), changed or not, at version v
        _, _, _, changed, version = spec
        row = sample.change(base) if changed else base
        return attrs.evolve(row, version=version)
    if kind == "twin":  # make(n) changed to share make(m)'s values of a unique group
        _, _, _, m, g, version = spec
        groups = sample.table.unique
        if not groups:
            return base
        other = sample.make(m)
        twin = sample.twin(groups[g % len(groups)], other, base)
        return attrs.evolve(twin, version=version)
    if kind == "bad":  # one field set to a value no store keeps (or of the wrong kind)
        _, _, _, f, v, version = spec
        fields = attrs.fields(type(base))
        row = attrs.evolve(base, version=version)
        object.__setattr__(row, fields[f % len(fields)].name, BAD_FIELD_VALUES[v])
        return row
    raise AssertionError(kind)


def _where(spec: tuple[Any, ...]) -> dict[str, Any]:
    kind, s = spec[0], spec[1]
    table = TABLE_SAMPLES[s].table
    lookups = table.lookups()
    if kind == "held":
        _, _, g, n, rev = spec
        if not lookups:
            return {"id": TABLE_SAMPLES[s].make(n).id}
        group = lookups[g % len(lookups)]
        where = {c: table.value(TABLE_SAMPLES[s].make(n), c) for c in group}
        if rev:
            where = dict(reversed(list(where.items())))
        return where
    if kind == "weird":
        _, _, g, w = spec
        if not lookups:
            return {"id": WEIRD[w]}
        group = lookups[g % len(lookups)]
        return {
            c: WEIRD[w] if i == 0 else table.value(TABLE_SAMPLES[s].make(0), c)
            for i, c in enumerate(group)
        }
    if kind == "undeclared":
        _, _, u = spec
        return [
            {},
            {"id": "x"},
            {"nope": 1},
            {"version": 1},
            {"created_at": _T0},
            {"partner_id": "cmp_p1", "nope": 2},
        ][u]
    raise AssertionError(kind)


# -- strategies -------------------------------------------------------------------------------

#: Half the time one of companies, users and customer relations (more clashes, searches).
SAMPLE = st.sampled_from([0, 1, len(TABLE_SAMPLES) - 1]) | st.integers(0, len(TABLE_SAMPLES) - 1)
N = st.integers(0, 3) | st.integers(0, 15)
ROW = st.one_of(
    st.tuples(st.just("v"), SAMPLE, N, st.booleans(), st.sampled_from([1, 1, 1, 2, 2, 3, 0, 4])),
    st.tuples(st.just("twin"), SAMPLE, N, N, st.integers(0, 3), st.sampled_from([1, 2])),
    st.tuples(
        st.just("bad"),
        SAMPLE,
        N,
        st.integers(0, 30),
        st.integers(0, len(BAD_FIELD_VALUES) - 1),
        st.sampled_from([1, 2]),
    ),
)
KEY = st.one_of(
    st.tuples(st.just("held"), SAMPLE, N),
    st.tuples(st.just("weird"), st.integers(0, len(WEIRD) - 1)),
)
WHERE = st.one_of(
    st.tuples(st.just("held"), SAMPLE, st.integers(0, 4), N, st.booleans()),
    st.tuples(st.just("weird"), SAMPLE, st.integers(0, 4), st.integers(0, len(WEIRD) - 1)),
    st.tuples(st.just("undeclared"), SAMPLE, st.integers(0, 5)),
)
H = st.integers(0, 5)  # which handle (mod the number opened; counted from the newest)
PREFIX = st.sampled_from(["", "f", "c", "fab", "con", "%", "_", "C", "\x00", "\ud800", "c1", "lit"])
PARTNER = st.sampled_from(["cmp_p1", "cmp_p2", "cmp_x", "a\x00", "\ud800"]) | st.sampled_from(
    ["cmp_p1", "cmp_p2", 5, None]
)
LIMIT = st.sampled_from([0, 1, 2, 5, 500, 501, -1]) | st.sampled_from([True, 2.5, "3", None])
AFTER = st.sampled_from(
    [
        None,
        ("fabrikam", "cmp_p1:cmp_b"),
        ("contoso", ""),
        ("c", "z"),
        ("fab\x00", "x"),
        ("f", "\udfff"),
    ]
) | st.sampled_from([None, ("a",), ("a", 5), "ab"])
NOW = st.sampled_from([None, _T0, _T0 + timedelta(days=3), _T0 + timedelta(days=365)]) | st.just(
    datetime(2024, 3, 5)
)
COMPANY = st.sampled_from([None, "cmp_a", "cmp_b", "cmp_c", "cmp_z", "a\x00", "\ud800", 5])

#: Mostly the newest unit of work.
H = st.just(0) | st.integers(0, 5)
STEP = st.one_of(
    st.tuples(st.just("open"), st.booleans()),
    st.tuples(st.just("open"), st.just(True)),
    st.tuples(st.just("add"), H, ROW),
    st.tuples(st.just("add"), H, ROW),
    st.tuples(st.just("add"), H, ROW),
    st.tuples(st.just("update"), H, ROW),
    st.tuples(st.just("update"), H, ROW),
    st.tuples(st.just("remove"), H, ROW),
    st.tuples(st.just("get"), H, SAMPLE, KEY),
    st.tuples(st.just("get_many"), H, SAMPLE, st.lists(KEY, max_size=3)),
    st.tuples(st.just("find"), H, WHERE),
    st.tuples(st.just("count"), H, WHERE),
    st.tuples(st.just("audit_head"), H),
    st.tuples(st.just("append"), H, st.integers(0, len(CHAIN) - 1)),
    st.tuples(
        st.just("append_bad"),
        H,
        st.integers(0, len(CHAIN) - 1),
        st.sampled_from(BAD_EVENT_KINDS),
    ),
    st.tuples(st.just("audit_events"), H, COMPANY),
    st.tuples(st.just("search_relations"), H, PARTNER, PREFIX, LIMIT, AFTER, NOW),
    st.tuples(st.just("search_customers"), H, PARTNER, PREFIX, LIMIT, AFTER, NOW),
    st.tuples(st.just("commit"), H),
    st.tuples(st.just("rollback"), H),
    st.tuples(st.just("exit"), H, st.booleans()),
    st.tuples(st.just("close")),
)


def _steps() -> st.SearchStrategy[list[tuple[Any, ...]]]:
    # Mostly begin with a write unit of work, so the steps after it have one to act in.
    return st.lists(STEP, min_size=3, max_size=40).map(lambda s: [("open", True), *s])


# -- running ----------------------------------------------------------------------------------


@attrs.define
class Run:
    name: str
    store: Store
    #: ``[context manager, entered unit of work or None]`` in the order opened.
    handles: list[list[Any]] = attrs.Factory(list)
    closed: bool = False


def norm(value: Any) -> Any:
    """A comparable form: type names kept, dict order ignored, list order kept."""
    if attrs.has(type(value)):
        return (
            type(value).__name__,
            tuple((f.name, norm(getattr(value, f.name))) for f in attrs.fields(type(value))),
        )
    if isinstance(value, enum.Enum):
        return (type(value).__name__, value.value)
    if isinstance(value, datetime):
        return ("datetime", value.isoformat(), value.utcoffset())
    if isinstance(value, dict):
        return ("dict", sorted(((repr(k), norm(v)) for k, v in value.items()), key=repr))
    if isinstance(value, list):
        return ("list", [norm(v) for v in value])
    if isinstance(value, tuple):
        return ("tuple", tuple(norm(v) for v in value))
    if isinstance(value, frozenset | set):
        return (type(value).__name__, sorted((norm(v) for v in value), key=repr))
    return (type(value).__name__, value)


def outcome_of(call: Callable[[], Any]) -> tuple[Any, ...]:
    try:
        return ("ok", norm(call()))
    except Exception as exc:  # every exception is compared, ours or not
        return ("raised", type(exc).__name__, str(exc))


def _handle(run: Run, h: int) -> Any:
    if not run.handles:
        return None
    return run.handles[-1 - h % len(run.handles)][1]


def _do(run: Run, step: tuple[Any, ...]) -> Any:
    op = step[0]
    if op == "open":
        cm = run.store.unit_of_work(write=step[1])
        entry = [cm, None]
        run.handles.append(entry)
        entry[1] = cm.__enter__()
        return "opened"
    if op == "close":
        run.closed = True
        run.store.close()
        return None
    uow = _handle(run, step[1])
    if uow is None:
        return "no unit of work"
    if op in ("add", "update", "remove"):
        row = _row(step[2])
        repo = uow.repository(TABLE_SAMPLES[step[2][1]].table)
        return getattr(repo, op)(row)
    if op == "get":
        return uow.repository(TABLE_SAMPLES[step[2]].table).get(_key(step[3]))
    if op == "get_many":
        return uow.repository(TABLE_SAMPLES[step[2]].table).get_many([_key(k) for k in step[3]])
    if op in ("find", "count"):
        where = _where(step[2])
        return getattr(uow.repository(TABLE_SAMPLES[step[2][1]].table), op)(**where)
    if op == "audit_head":
        return uow.audit_head()
    if op == "append":
        return uow.append_audit(CHAIN[step[2]])
    if op == "append_bad":
        return uow.append_audit(_bad_event(step[3], step[2]))
    if op == "audit_events":
        return uow.audit_events(step[2])
    if op in ("search_relations", "search_customers"):
        _, _, partner, prefix, limit, after, now = step
        return getattr(uow, op)(partner, prefix, limit, after, now)
    if op == "commit":
        return uow.commit()
    if op == "rollback":
        return uow.rollback()
    if op == "exit":
        entry = run.handles[-1 - step[1] % len(run.handles)]
        if step[2]:
            return entry[0].__exit__(ValueError, ValueError("boom"), None)
        return entry[0].__exit__(None, None, None)
    raise AssertionError(op)


#: Mismatches already reported, each ``(name, predicate(step, outcomes))``: an example that
#: meets one ends there (its stores' states differ from then on). Empty it to see them fail.
KNOWN: list[tuple[str, Callable[[tuple[Any, ...], list[tuple[Any, ...]]], bool]]] = [
    (
        "a finished unit of work's repository() while another unit of work is open: "
        "PostgresStore says 'not open', the others act in the open one",
        lambda step, o: (
            o[0][:2] == o[1][:2]
            and o[2] == ("raised", "PartnerKitError", "unit of work is not open")
        ),
    ),
]
TOLERATE = os.environ.get("STORE_DIFF_STRICT", "") == ""


def _bad_field(spec: tuple[Any, ...]) -> str | None:
    """The field a ``bad`` row spec spoils."""
    if spec[0] != "bad":
        return None
    fields = attrs.fields(type(TABLE_SAMPLES[spec[1]].make(spec[2])))
    return fields[spec[3] % len(fields)].name


STATS: dict[str, int] = {}


def _known(step: tuple[Any, ...], outcomes: list[tuple[Any, ...]]) -> bool:
    for name, pred in KNOWN:
        if TOLERATE and pred(step, outcomes):
            STATS[name] = STATS.get(name, 0) + 1
            return True
    return False


def _key(spec: tuple[Any, ...]) -> Any:
    if spec[0] == "held":
        return TABLE_SAMPLES[spec[1]].make(spec[2]).id
    return WEIRD[spec[1]]


def _finish(run: Run) -> None:
    """Leave every block still open, newest first (errors ignored)."""
    for cm, _ in reversed(run.handles):
        with contextlib.suppress(Exception):
            cm.__exit__(None, None, None)
    run.handles.clear()


def _dump(store: Store) -> Any:
    with store.unit_of_work(write=False) as uow:
        out: dict[str, Any] = {"audit": norm(uow.audit_events()), "head": uow.audit_head()}
        for sample in TABLE_SAMPLES:
            ids = [sample.make(n).id for n in range(16)]
            out[sample.table.name] = norm(uow.repository(sample.table).get_many(ids))
        return out


def test_the_three_stores_answer_every_step_alike(
    shared_database: tuple[str, str], sqlite_template: Path, tmp_path: Path
) -> None:
    import psycopg

    from partnerkit.stores.postgres import PostgresStore

    dsn, empty = shared_database
    admin = psycopg.connect(dsn, autocommit=True)
    pg: list[PostgresStore] = []
    counter = itertools.count()

    def postgres() -> PostgresStore:
        if not pg:
            pg.append(PostgresStore(dsn, min_size=1, max_size=3, timeout=2))
        return pg[0]

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(steps=_steps())
    def run(steps: list[tuple[Any, ...]]) -> None:
        admin.execute(empty.encode())
        path = tmp_path / f"example-{next(counter)}.db"
        shutil.copyfile(sqlite_template, path)
        runs = [
            Run("memory", MemoryStore()),
            Run("sqlite", SQLiteStore(path, timeout=1)),
            Run("postgres", postgres()),
        ]
        spoiled = False  # a row no store should keep was taken by every store
        try:
            for number, step in enumerate(steps):
                outcomes = [outcome_of(lambda r=r, step=step: _do(r, step)) for r in runs]
                STATS["steps"] = STATS.get("steps", 0) + 1
                note(
                    f"step {number} {step!r}: "
                    + " | ".join(
                        f"{r.name}={o!r}"[:300] for r, o in zip(runs, outcomes, strict=True)
                    )
                )
                if not outcomes[0] == outcomes[1] == outcomes[2] and spoiled and TOLERATE:
                    # A malformed row every store took reads back differently (see below):
                    # the stores' answers part from here, as their final states would.
                    STATS["steps after a malformed row stopped"] = (
                        STATS.get("steps after a malformed row stopped", 0) + 1
                    )
                    return
                if not outcomes[0] == outcomes[1] == outcomes[2] and _known(step, outcomes):
                    if all(o[0] == "raised" for o in outcomes) and "storage error" not in str(
                        outcomes
                    ):
                        continue  # every store refused: the run goes on
                    return  # a mismatch already reported: the stores' states part here
                assert outcomes[0] == outcomes[1] == outcomes[2], (
                    f"step {number} {step!r} went differently:\n"
                    + "\n".join(f"  {r.name}: {o!r}" for r, o in zip(runs, outcomes, strict=True))
                )
                if step[0] in ("add", "update") and step[2][0] == "bad" and outcomes[0][0] == "ok":
                    spoiled = True
            for r in runs:
                _finish(r)
            if spoiled and TOLERATE:
                # Known: the SQL stores take a JSON field of the wrong kind (roles=1, contact
                # as text) and an aware non-UTC time, then read the first back not at all
                # (TypeError, ValueError, AttributeError) and the second in UTC, while
                # MemoryStore gives back what it was given.
                STATS["final comparison skipped: a malformed row was stored"] = (
                    STATS.get("final comparison skipped: a malformed row was stored", 0) + 1
                )
            elif not any(r.closed for r in runs):
                dumps = [_dump(r.store) for r in runs]
                assert dumps[0] == dumps[1] == dumps[2], "the stores hold different rows"
        finally:
            for r in runs:
                _finish(r)
                if r.name == "postgres":
                    if r.closed:
                        pg.clear()
                else:
                    r.store.close()
            path.unlink(missing_ok=True)

    try:
        run()
    finally:
        if os.environ.get("STORE_DIFF_STATS"):
            print("\n".join(f"{v:6d} {k}" for k, v in sorted(STATS.items())))
        for store in pg:
            store.close()
        admin.close()
