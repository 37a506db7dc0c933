"""The phone provider: extensions on a Kamailio registrar.  Reads the subscriber table in
one query, diffs as a pure function, applies in one database transaction (Kamailio reads the
table on every REGISTER, so it counts at once), drops live registrations through JSON-RPC,
then reads back."""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import secrets
import string
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

from reconciler.credentials import CredentialFile
from reconciler.errors import ReconcilerError
from reconciler.i18n import _, lazy
from reconciler.plan import Change, Movement, Outcome
from reconciler.providers.contract import Capability, Declared, PlanRequest, Provider, ReadBack, Standing, \
    TargetPlan
from reconciler.providers.sip import settled, store
from reconciler.providers.sip.diff import REGISTRATIONS, Line, desired_lines, diff, rotates
from reconciler.providers.sip.target import SipTarget

if TYPE_CHECKING:
    from reconciler.providers.found import Existing, ImportRequest

SECRET_ALPHABET = string.ascii_letters + string.digits  # desk phones' keypads and web forms take these


def new_secret(length: int = 20) -> str:
    return "".join(secrets.choice(SECRET_ALPHABET) for _ in range(length))


def ha1(user: str, realm: str, secret: str) -> str:
    return hashlib.md5(f"{user}:{realm}:{secret}".encode("utf-8")).hexdigest()


def drops_registrations(change: Change) -> bool:
    """A removed line, or an existing one with a new secret: its live registrations must go.
    A new line has none."""
    return change.movement is Movement.BAJA or (change.movement is Movement.MODIFICACION and rotates(change))


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class SipBasis:
    desired: dict[str, Line]
    gone: dict  # lines released by a baja: number -> the person who held it
    manages: Callable[[str | None], bool] = lambda unit: True  # staged rollout, as the plan judged it


class SipProvider(Provider):
    kind = "sip"
    capabilities = frozenset({Capability.IMPLIED_APPROVALS, Capability.ADOPTION, Capability.IMPORT,
                              Capability.SETTLED_PLANS})
    read_back_source = lazy("the subscriber table")

    def __init__(self, target: SipTarget):
        super().__init__(target)
        self.conn: store.Database | None = None
        self._seen: str | None = None  # what the last full plan read, as a digest (settle)

    def open(self) -> None:
        self.conn = store.connect(self.target.database, read_only=self.target.reading)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()

    def revokes(self, change: Change) -> bool:
        return change.movement is Movement.BAJA

    def removes_access(self, change: Change) -> bool:
        """A baja, or a new secret: whoever holds the old one is locked out."""
        return drops_registrations(change)

    def removed_declaration(self, change: Change) -> Declared | None:
        """A line by its number in desired_state/assets/ (pending unregistrations: implied)."""
        return Declared(change.key, "assets") if change.kind != REGISTRATIONS else None

    def implied_approvals(self, changes: Sequence[Change]) -> dict[int, str]:
        """Dropping the registrations an applied change had to drop finishes that change, which
        was approved; nothing else is implied."""
        return {i: lazy("finishes an applied change of the line") for i, c in enumerate(changes)
                if c.kind == REGISTRATIONS}

    def existing(self, request: ImportRequest) -> Existing:
        """Every subscriber of the domain, made by hand or not (the database opened read-only)."""
        from reconciler.providers.found import Existing, Extension  # importing only: a plan needs none

        db = store.connect(self.target.database, read_only=True)
        try:
            rows = db.execute("SELECT username FROM subscriber WHERE domain = ?",  # not for people
                              (self.target.domain,))
        except store.DatabaseError as exc:
            raise ReconcilerError(_("cannot read the registrar's database {database}: {error}",
                                    database=self.target.database.describe(), error=str(exc))) from None
        finally:
            db.close()
        where = _("registrar {target}", target=self.target.name)
        return Existing(extensions=tuple(Extension(str(username), where) for (username,) in rows))

    def plan(self, request: PlanRequest) -> TargetPlan:
        if not request.state.assets_loaded:  # incremental: the assets did not change, their holders may have
            holders = {s.holder for s in self._read().subscribers.values() if s.holder}
            needs = lazy("a changed person holds an extension") if holders & (request.keys or frozenset()) else None
            return TargetPlan(self.target.name, needs_full_read=needs)
        self.target.check_managed_units(request.state.units)
        desired, gone = desired_lines(request.state)
        actual = self._read()
        self._seen = settled.lines_digest(actual)
        manages = self.target.scope(request.state.units)
        changes, conflicts = diff(desired, actual, self.target.name, gone, manages)
        return TargetPlan(self.target.name, changes, conflicts, self._exposed(), SipBasis(desired, gone, manages))

    def _read(self) -> "store.ActualLines":
        try:
            return store.read(self.conn, self.target.domain)
        except store.DatabaseError as exc:
            raise ReconcilerError(_("reading the registrar's database: {error}", error=str(exc))) from None

    def _exposed(self) -> list:
        """The subscriber table's ha1 values are password-equivalent: an SQLite file others may
        read is said in every plan until it is its owner's alone.  (On a server, who may read the
        table is the server's grants: README, "Deploying in an institution".)"""
        if self.target.database.path is None:
            return []
        try:
            mode = os.stat(self.target.database.path).st_mode & 0o777
        except OSError:
            return []
        if not mode & 0o077:
            return []
        octal = f"{mode:o}"  # not for people: a mode as chmod writes it
        return [lazy("target {target}: the registrar's database {database} is readable by others (mode {mode}); its "
                     "ha1 values are as good as passwords: chmod 600 it", target=self.target.name,
                     database=self.target.database.path, mode=octal)]

    # -- apply ----------------------------------------------------------------------------
    def apply(self, planned: TargetPlan, changes: Sequence[Change], credentials: CredentialFile,
              advance=lambda n: None) -> list[Outcome]:
        started = time.perf_counter()
        outcomes = [Outcome(c) for c in changes]
        try:
            store.ensure_tables(self.conn)  # before the transaction: in MySQL a CREATE TABLE ends one
            self.conn.begin()
            for o in outcomes:
                self._stage(o, credentials)
            self.conn.commit()
        except store.DatabaseError as exc:
            if self.conn.in_transaction:
                try:
                    self.conn.rollback()
                except store.DatabaseError:
                    pass  # the connection is gone, and the transaction with it
            for o in outcomes:
                o.fail(lazy("writing the registrar's database: {error}", error=str(exc)))
        self.timings[lazy("subscribers")] = time.perf_counter() - started
        started = time.perf_counter()
        for o in outcomes:  # whoever holds an old secret or a removed line is unregistered now
            if o.status != "failed" and drops_registrations(o.change):
                try:
                    answer = self._rpc("ul.rm", ["location", o.change.key])
                    if "error" in answer and "not found" not in str(answer["error"].get("message", "")):  # not for people
                        raise ReconcilerError(_("ul.rm answered {message}", message=answer["error"].get("message")))
                    self.conn.execute(
                        "DELETE FROM reconciler_unregister WHERE username = ? AND domain = ?",  # not for people
                        (o.change.key, self.target.domain))
                except ReconcilerError as exc:
                    o.fail(lazy("the subscriber is written, but its live registrations were not dropped: {error}; "
                                "the next run drops them", error=str(exc)))
                except store.DatabaseError as exc:
                    o.fail(lazy("its registrations were dropped, but the registrar's database could not record it: "
                                "{error}", error=str(exc)))
        self.timings[lazy("registrations")] = time.perf_counter() - started
        for o in outcomes:
            if o.status == "pending":
                o.status = "applied"
        advance(len(outcomes))
        return outcomes

    def _stage(self, o: Outcome, credentials: CredentialFile) -> None:
        """One change inside the transaction, in a savepoint: a refusal fails it alone."""
        c, domain = o.change, self.target.domain
        self.conn.execute("SAVEPOINT line")  # not for people
        try:
            if drops_registrations(c):  # with the change: a run stopped before ul.rm still owes it
                self.conn.execute(
                    "INSERT INTO reconciler_unregister (username, domain, since) "  # not for people
                    "VALUES (?, ?, ?) ON CONFLICT DO NOTHING", (c.key, domain, _now()))
            if c.kind == REGISTRATIONS:
                pass  # only the ul.rm after the transaction
            elif c.movement is Movement.BAJA:
                self.conn.execute("DELETE FROM subscriber WHERE username = ? AND domain = ?",  # not for people
                                  (c.key, domain))
                self.conn.execute("DELETE FROM reconciler_line WHERE username = ? AND domain = ?",  # not for people
                                  (c.key, domain))
            else:
                want: Line = c.desired
                secret_mark = None
                if rotates(c):
                    secret = new_secret()
                    credentials.record(c.key, f"{c.key}@{domain}", want.holder or "", c.folio, secret)
                    digest = ha1(c.key, domain, secret)
                    digest_b = ha1(f"{c.key}@{domain}", domain, secret)
                    del secret
                    if c.movement is Movement.ALTA:
                        self.conn.execute("INSERT INTO subscriber (username, domain, ha1, ha1b) "  # not for people
                                          "VALUES (?, ?, ?, ?)",
                                          (c.key, domain, digest, digest_b))
                    else:
                        self.conn.execute("UPDATE subscriber SET ha1 = ?, ha1b = ?, password = '' "  # not for people
                                          "WHERE username = ? AND domain = ?", (digest, digest_b, c.key, domain))
                    secret_mark = store.mark(digest)
                elif c.movement is Movement.ADOPCION:  # the secret it has is the one recorded as set
                    rows = self.conn.execute("SELECT ha1 FROM subscriber WHERE username = ? AND domain = ?",  # not for people
                                             (c.key, domain))
                    if not rows:
                        raise ReconcilerError(_("the subscriber is no longer in the registrar"))
                    secret_mark = store.mark(rows[0][0] or "")
                self.conn.execute(
                    "INSERT INTO reconciler_line (username, domain, holder, unit, secret_mark) "  # not for people
                    "VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (username, domain) DO UPDATE SET holder = excluded.holder, unit = excluded.unit, "
                    "secret_mark = COALESCE(?, reconciler_line.secret_mark)",
                    (c.key, domain, want.holder, want.unit, secret_mark or "", secret_mark))
            self.conn.execute("RELEASE SAVEPOINT line")  # not for people
        except (store.DatabaseError, ReconcilerError) as exc:  # ReconcilerError: the secret could not be sealed
            self.conn.execute("ROLLBACK TO SAVEPOINT line")  # not for people
            self.conn.execute("RELEASE SAVEPOINT line")  # not for people
            o.fail(lazy("{movement} of line {number}: {error}", movement=c.movement.value, number=c.key,
                        error=str(exc)))

    def _rpc(self, method: str, params: list) -> dict:
        body = json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": 1}).encode()
        request = urllib.request.Request(self.target.rpc_url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                answer = json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:  # Kamailio answers an RPC error with HTTP 500 and a JSON body
            try:
                answer = json.loads(exc.read().decode("utf-8"))
            except ValueError:
                raise ReconcilerError(_("Kamailio's JSON-RPC {url}: HTTP {code}",
                                        url=self.target.rpc_url, code=exc.code)) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise ReconcilerError(_("Kamailio's JSON-RPC {url}: {reason}",
                                    url=self.target.rpc_url, reason=getattr(exc, "reason", exc))) from None
        return answer

    def _registered(self, number: str) -> bool:
        answer = self._rpc("ul.lookup", ["location", number])
        return "result" in answer and bool(answer["result"].get("Contacts"))

    # -- verify ---------------------------------------------------------------------------
    # -- settled plans (settled.py) ----------------------------------------------------------
    def settle(self, planned: TargetPlan, inputs: str) -> None:
        """Only a full plan is remembered (an incremental one has no basis), with what its read saw."""
        if self._seen is not None and isinstance(planned.basis, SipBasis):
            settled.record(self.target, inputs, self._seen)

    def settled(self, inputs: str) -> Standing | None:
        try:
            if self._exposed():  # a plan would warn, and a plan that warns is not one to stand on
                return None
            return settled.holds(self.target, inputs, self._read)
        except Exception:  # noqa: BLE001 - anything that cannot be read: a normal plan tells
            return None

    @classmethod
    def remembers(cls, target: SipTarget, inputs: str) -> bool:
        return settled.remembered(target, inputs)

    def unsettle(self) -> None:
        settled.forget(self.target)

    def read_back(self, planned: TargetPlan) -> ReadBack:
        basis: SipBasis = planned.basis
        actual = self._read()
        remaining = diff(basis.desired, actual, self.target.name, basis.gone, basis.manages)[0]
        return ReadBack(remaining, actual)

    def confirm(self, planned: TargetPlan, back: ReadBack, shown: list[Outcome]) -> dict[int, str]:
        """A removed or re-keyed line must have no live registration left."""
        problems = {}
        for o in shown:
            if drops_registrations(o.change):
                try:
                    if self._registered(o.change.key):
                        problems[id(o)] = lazy("a registration made with the old secret is still live")
                except ReconcilerError as exc:
                    problems[id(o)] = lazy("could not ask Kamailio about live registrations: {error}", error=str(exc))
        return problems
