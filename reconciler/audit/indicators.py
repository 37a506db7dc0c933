"""What auditors read from the audit trail: one object's history, and the monthly indicators.

The indicators count the movements people asked for (accounts, and later mailboxes, lines,
equipment); OUs and groups created on the way are not solicitudes of their own.

Both are pure functions over audit records (dicts, as audit.py writes them).

The ISSEMYM indicators (procedure 004): for the solicitudes approved in a month (their pull
request landed on the protected branch that month), how many altas, modificaciones and bajas
were applied and verified by reading back, as a percentage, and how long it took from
approval to the verified apply (median and longest, in hours).
"""
from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass

from reconciler.i18n import lazy, zone

MOVEMENTS = ("alta", "modificacion", "baja")
PLURAL = {"alta": "altas", "modificacion": "modificaciones", "baja": "bajas"}


CONTAINERS = ("ou", "group", "mail-maps")  # side effects of people's solicitudes, not requested
# A work order (a system with no API) is attended once its confirmation is recorded; the
# confirmation is that order's completion, not a solicitud of its own.
WORK_ORDER, CONFIRMATION = "work-order", "work-order-confirmation"


def _changes(records: list[dict]) -> list[dict]:
    return [r for r in records if r.get("kind") == "change"]


def _matches(record: dict, query: str) -> bool:
    q = query.casefold()
    if record.get("key", "").casefold() == q:
        return True
    if q in record.get("label", "").casefold():
        return True
    for a in record.get("attributes", ()):
        if a.get("name") == "sAMAccountName" and q in {str(a.get("before")).casefold(), str(a.get("after")).casefold()}:
            return True
    return False


@dataclass(frozen=True)
class RecordedMovement:
    time: str
    target: str
    movement: str
    kind: str
    label: str
    key: str
    status: str  # applied, failed, skipped
    verified: bool | None
    pull_request: str | None
    commit: str | None
    requester: str | None
    approvers: tuple[str, ...]
    approved_at: str | None
    changed: tuple[str, ...]  # "title: 'A' → 'B'"
    note: str | None  # error or reason for skipping
    approved: bool = False  # the policy's verdict, and its reason
    verdict: str = ""

    def to_dict(self) -> dict:
        return {**self.__dict__, "approvers": list(self.approvers), "changed": list(self.changed)}


def _short(value) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    return lazy("(none)") if value is None else repr(value) if isinstance(value, str) else str(value)


def history(records: list[dict], query: str) -> list[RecordedMovement]:
    """Every recorded movement of the person, account or object matching `query` (employee key,
    account name, or part of the name), oldest first."""
    out = []
    for r in _changes(records):
        if not _matches(r, query):
            continue
        sol = r.get("solicitud") or {}
        # Kept as Messages: JSON gets "(none)" whatever the language, people read it in theirs.
        changed = tuple(lazy("{name}: {before} → {after}", name=a["name"], before=_short(a.get("before")),
                             after=_short(a.get("after"))) for a in r.get("attributes", ()))
        out.append(RecordedMovement(
            time=r.get("time", ""), target=r.get("target", ""), movement=r.get("movement", ""), kind=r.get("object_kind", ""),
            label=r.get("label", ""), key=r.get("key", ""), status=r.get("status", ""), verified=r.get("verified"),
            pull_request=sol.get("pull_request"), commit=sol.get("landed") or r.get("commit"),
            requester=sol.get("requester"), approvers=tuple(sol.get("approvers") or ()),
            approved_at=sol.get("approved_at"), changed=changed, note=r.get("error"),
            approved=bool((r.get("approval") or {}).get("approved")), verdict=(r.get("approval") or {}).get("reason", "")))
    return out


def _parse(ts: str | None) -> dt.datetime | None:
    if not ts:
        return None
    try:
        value = dt.datetime.fromisoformat(ts)
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


@dataclass(frozen=True)
class IndicatorRow:
    movement: str  # altas, modificaciones, bajas, total
    approved: int
    applied_verified: int
    failed_or_pending: int
    median_hours: float | None
    max_hours: float | None

    @property
    def percent(self) -> float | None:
        return round(100.0 * self.applied_verified / self.approved, 1) if self.approved else None

    def to_dict(self) -> dict:
        return {"movement": self.movement, "approved": self.approved, "applied_verified": self.applied_verified,
                "failed_or_pending": self.failed_or_pending, "percent": self.percent,
                "median_hours_to_apply": self.median_hours, "max_hours_to_apply": self.max_hours}


@dataclass(frozen=True)
class Approved:
    """One approved change of a solicitud: its movement and unit, when it was approved, and when
    it was first applied and verified (None: not yet)."""

    movement: str
    unit: str
    approved_at: dt.datetime
    done: dt.datetime | None

    @property
    def hours(self) -> float | None:
        return max(0.0, (self.done - self.approved_at).total_seconds() / 3600) if self.done else None


def approved_in(records: list[dict], month: str) -> list[Approved]:
    """The changes of the solicitudes approved in `month` (YYYY-MM, the institution's), one per
    (target, object, solicitud) however many runs touched it."""
    approved: dict[tuple, dict] = {}
    confirmed = _confirmed(records)
    for r in _changes(records):
        if r.get("object_kind") in (*CONTAINERS, CONFIRMATION) or r.get("movement") not in MOVEMENTS:
            continue  # an adoption is no one's request: the indicators count altas, modificaciones, bajas
        sol, approval = r.get("solicitud") or {}, r.get("approval") or {}
        when = _parse(sol.get("approved_at"))
        if not approval.get("approved") or when is None or when.astimezone(zone()).strftime("%Y-%m") != month:
            continue
        key = (r.get("target"), r.get("object_kind"), r.get("key"), r.get("movement"), sol.get("landed"))
        entry = approved.setdefault(key, {"movement": r.get("movement"), "unit": r.get("unit") or "",
                                          "approved_at": when, "done": None})
        applied_at = _parse(r.get("time"))
        if r.get("object_kind") == WORK_ORDER:  # issued is not done: attended once its confirmation is recorded
            applied_at = confirmed.get(_folio_of(r)) if r.get("status") == "applied" else None
        if r.get("status") == "applied" and r.get("verified") and applied_at is not None:
            if entry["done"] is None or applied_at < entry["done"]:
                entry["done"] = applied_at
    return [Approved(**e) for e in approved.values()]


def _folio_of(record: dict) -> str | None:
    return next((a.get("after") for a in record.get("attributes") or () if a.get("name") == "work_order"), None)


def _confirmed(records: list[dict]) -> dict[str, dt.datetime]:
    """When each work order's confirmation was recorded (applied and verified), by folio."""
    out = {}
    for r in _changes(records):
        when = _parse(r.get("time"))
        if r.get("object_kind") == CONFIRMATION and r.get("status") == "applied" and r.get("verified") and when:
            out.setdefault(str(r.get("key")), when)
    return out


def indicator_rows(entries: list[Approved]) -> list[IndicatorRow]:
    """One row per movement and a total."""
    rows = []
    for name in (*MOVEMENTS, None):
        mine = [e for e in entries if name is None or e.movement == name]
        hours = [e.hours for e in mine if e.hours is not None]
        rows.append(IndicatorRow(
            PLURAL[name] if name else "total", len(mine), len(hours), len(mine) - len(hours),
            round(statistics.median(hours), 2) if hours else None, round(max(hours), 2) if hours else None))
    return rows


def monthly_indicators(records: list[dict], month: str) -> list[IndicatorRow]:
    """One row per movement and a total, for solicitudes approved in `month` (YYYY-MM)."""
    return indicator_rows(approved_in(records, month))


def per_unit(entries: list[Approved]) -> dict[str, list[IndicatorRow]]:
    """The same rows for each unit (the unit a change belongs to; "" for none), by unit key."""
    units = sorted({e.unit for e in entries})
    return {unit: indicator_rows([e for e in entries if e.unit == unit]) for unit in units}


@dataclass(frozen=True)
class Week:
    """One week of the month (Monday first, cut at the month's edges): solicitud changes
    approved in it, and those applied and verified in it."""

    start: str  # the institution's date
    end: str
    approved: int
    attended: int

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def weekly(entries: list[Approved], month: str) -> list[Week]:
    first = dt.date.fromisoformat(month + "-01")
    following = (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    out, start = [], first
    while start < following:
        end = min(start + dt.timedelta(days=6 - start.weekday()), following - dt.timedelta(days=1))

        def inside(moment: dt.datetime | None) -> bool:
            return moment is not None and start <= moment.astimezone(zone()).date() <= end

        out.append(Week(start.isoformat(), end.isoformat(), sum(inside(e.approved_at) for e in entries),
                        sum(inside(e.done) for e in entries)))
        start = end + dt.timedelta(days=1)
    return out


# The time from approval to verified apply, in ranges people ask about: within the hour, the
# working day, the next day, the week, longer; and not yet applied.
BUCKETS = ((1, "< 1 h"), (8, "1–8 h"), (24, "8–24 h"), (72, "1–3 d"), (None, "> 3 d"))  # not for people: range labels


def time_to_apply(entries: list[Approved]) -> list[dict]:
    """How many changes of each movement took each range of hours (the last: not applied yet)."""
    out = []
    low = 0.0
    for high, label in BUCKETS:
        row = {"range": label}
        for name in MOVEMENTS:
            row[PLURAL[name]] = sum(1 for e in entries if e.movement == name and e.hours is not None
                                    and e.hours >= low and (high is None or e.hours < high))
        out.append(row)
        low = float(high or 0)
    out.append({"range": "pending", **{PLURAL[name]: sum(1 for e in entries if e.movement == name and e.done is None)
                                       for name in MOVEMENTS}})
    return out


@dataclass(frozen=True)
class MonthlyReport:
    """Everything the month's report says: the indicators, per movement and per unit, the weeks,
    the time to apply, and what is still open (work orders, deliveries without acuse)."""

    month: str
    rows: list[IndicatorRow]
    units: dict[str, list[IndicatorRow]]
    weeks: list[Week]
    times: list[dict]
    waiting: list  # OpenDelivery
    work_orders: list[dict]  # the open work orders, as `reconciler pending --output json` lists them

    def to_dict(self) -> dict:
        return {"month": self.month, "indicators": [r.to_dict() for r in self.rows],
                "per_unit": {unit: [r.to_dict() for r in rows] for unit, rows in self.units.items()},
                "weekly": [w.to_dict() for w in self.weeks], "time_to_apply": self.times,
                "unacknowledged": [d.to_dict() for d in self.waiting], "pending_work_orders": self.work_orders}


def monthly_report(records: list[dict], month: str, work_orders: list[dict], now: dt.datetime | None = None
                   ) -> MonthlyReport:
    entries = approved_in(records, month)
    return MonthlyReport(month, indicator_rows(entries), per_unit(entries), weekly(entries, month),
                         time_to_apply(entries), unacknowledged(records, now), work_orders)


@dataclass(frozen=True)
class OpenDelivery:
    """An envelope still waiting for its acknowledgement: sealed, never taken back."""

    holder: str
    folio: str
    envelope: str
    sealed: str  # when its first secret was sealed (the record's time)
    days: int

    def to_dict(self) -> dict:
        return {"employee_key": self.holder, "folio": self.folio, "envelope": self.envelope,
                "sealed": self.sealed, "days": self.days}


def unacknowledged(records: list[dict], now: dt.datetime | None = None) -> list[OpenDelivery]:
    """Deliveries with no acknowledgement yet, oldest first: envelopes sealed (`envelope`
    records) that no `envelope-removed` record has taken back."""
    now = now or dt.datetime.now(dt.timezone.utc)
    sealed: dict[tuple, dict] = {}
    taken: set[tuple] = set()
    for r in records:
        key = (r.get("envelope"), r.get("envelope_file"))
        if r.get("kind") == "envelope":
            sealed.setdefault(key, r)
            taken.discard(key)  # sealed again after a removal: open again
        elif r.get("kind") == "envelope-removed":
            taken.add(key)
    first: dict[str, dict] = {}
    for key, r in sealed.items():
        if key not in taken and (key[0] not in first or str(r.get("time")) < str(first[key[0]].get("time"))):
            first[key[0]] = r
    out = []
    for ref, r in first.items():
        when = _parse(r.get("time"))
        out.append(OpenDelivery(str(r.get("employee_key") or ""), str(r.get("folio") or ""), str(ref),
                                str(r.get("time") or ""), (now - when).days if when else 0))
    return sorted(out, key=lambda d: d.sealed)
