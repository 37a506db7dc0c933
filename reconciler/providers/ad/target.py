"""The settings of an Active Directory target (`kind: active_directory`)."""
from __future__ import annotations

from dataclasses import dataclass, replace

from reconciler import dn as dnlib
from reconciler.config.inventory import SecretSource, TargetSettings
from reconciler.i18n import _


@dataclass(frozen=True, kw_only=True)
class ADTarget(TargetSettings):
    kind = "active_directory"
    host: str
    port: int
    base_dn: str
    upn_suffix: str
    people_ou: str
    groups_ou: str
    bajas_ou: str
    bind_dn: str
    bind_password: SecretSource
    ca_file: str | None
    validate_tls: bool
    adopt_from: tuple[str, ...] = ()  # OUs hand-made accounts may be adopted from (none: no adoption)
    # An account that may only read, for runs that only read (plans, pull request jobs, import),
    # so that their runners never hold the password that can write.
    read_bind_dn: str | None = None
    read_bind_password: SecretSource | None = None
    reading: bool = False  # these settings serve a run that only reads (for_reading)
    # Read only what changed since the last read (delta.py), with a full read at least this
    # often; None: every read is full.
    delta_read_hours: float | None = None

    @property
    def url(self) -> str:
        return f"ldaps://{self.host}:{self.port}"

    @property
    def login(self) -> tuple[str, SecretSource]:
        """The account this run binds as, and where its password is."""
        if self.reading and self.read_bind_dn:
            return self.read_bind_dn, self.read_bind_password
        return self.bind_dn, self.bind_password

    @property
    def bind_accounts(self) -> tuple[str, ...]:
        """The accounts the reconciler binds as, never adopted."""
        return (self.bind_dn, self.read_bind_dn) if self.read_bind_dn else (self.bind_dn,)

    def for_reading(self) -> "ADTarget":
        return replace(self, reading=True)

    @classmethod
    def build(cls, name: str, raw: dict) -> "ADTarget":
        tls = raw.get("tls", {})
        read = raw.get("read_bind")
        return cls(
            host=raw["host"], port=raw.get("port", 636), base_dn=raw["base_dn"],
            upn_suffix=raw["upn_suffix"], people_ou=raw["ous"]["people"], groups_ou=raw["ous"]["groups"],
            bajas_ou=raw["ous"]["bajas"], bind_dn=raw["bind_dn"],
            bind_password=SecretSource(**raw["bind_password"]), ca_file=tls.get("ca_file"),
            validate_tls=tls.get("validate", True),
            adopt_from=tuple(raw.get("adopt_from", ())),
            read_bind_dn=read["bind_dn"] if read else None,
            read_bind_password=SecretSource(**read["bind_password"]) if read else None,
            delta_read_hours=raw.get("delta_read_hours"),
            **cls.common(name, raw))

    def adoptable(self, dn: str) -> bool:
        """Whether an object made by hand at `dn` may be adopted (it lies under adopt_from)."""
        return any(dnlib.under(dn, ou) for ou in self.adopt_from)

    def check(self, add) -> None:
        for ou in (*self.adopt_from, self.people_ou, self.groups_ou, self.bajas_ou):
            if not ou.lower().endswith(self.base_dn.lower()):
                add(("ous",), _("{ou!r} is not under base_dn {base_dn!r}", ou=ou, base_dn=self.base_dn))
