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


def monthly_indicators(records: list[dict], month: str) -> list[IndicatorRow]:
    """One row per movement and a total, for solicitudes approved in `month` (YYYY-MM)."""
    # One entry per approved change: (target, object, solicitud), however many runs touched it.
    approved: dict[tuple, dict] = {}
    for r in _changes(records):
        if r.get("object_kind") in CONTAINERS or r.get("movement") not in MOVEMENTS:
            continue  # an adoption is no one's request: the indicators count altas, modificaciones, bajas
        sol, approval = r.get("solicitud") or {}, r.get("approval") or {}
        when = _parse(sol.get("approved_at"))
        if not approval.get("approved") or when is None or when.astimezone(zone()).strftime("%Y-%m") != month:
            continue
        key = (r.get("target"), r.get("object_kind"), r.get("key"), r.get("movement"), sol.get("landed"))
        entry = approved.setdefault(key, {"movement": r.get("movement"), "approved_at": when, "done": None})
        applied_at = _parse(r.get("time"))
        if r.get("status") == "applied" and r.get("verified") and applied_at is not None:
            if entry["done"] is None or applied_at < entry["done"]:
                entry["done"] = applied_at
    rows = []
    for name in (*MOVEMENTS, None):
        entries = [e for e in approved.values() if name is None or e["movement"] == name]
        hours = [max(0.0, (e["done"] - e["approved_at"]).total_seconds() / 3600) for e in entries if e["done"]]
        rows.append(IndicatorRow(
            PLURAL[name] if name else "total", len(entries), len(hours), len(entries) - len(hours),
            round(statistics.median(hours), 2) if hours else None, round(max(hours), 2) if hours else None))
    return rows


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
