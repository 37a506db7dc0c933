"""The import mapping (a YAML file in inventory/): how an existing directory's accounts are
sorted into the declared units, which accounts are the domain's own (service, built-in), and
what the report calls stale.

    active_directory:
      target: ad-lab                  # optional when the inventory has one AD target
      search_bases: ["OU=Usuarios,DC=salud,DC=lab"]   # default: the target's base_dn
      units:                          # first match wins
        - ou: "OU=Hospital General Cuernavaca,OU=Usuarios,DC=salud,DC=lab"   # that subtree
          unit: HG-CUERNAVACA
        - ou: "OU=Oficinas Centrales,OU=Usuarios,DC=salud,DC=lab"
          attribute: department       # and this attribute (compared without case or accents)
          equals: Dirección de Administración
          unit: OC-DA
      exclude: ["svc.*", "svc_*", "adm.*"]   # sAMAccountName patterns (fnmatch, any case)
      stale_days: 90                  # enabled, no logon for longer: reported
      disabled_days: 180              # disabled, and no logon for longer: reported
      solicitud: {folio: ..., date: ..., justification: ..., requested_by: ...}
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path

import jsonschema

from reconciler import dn as dnlib
from reconciler.desired.naming import ascii_fold
from reconciler.desired.yamlfile import read_yaml
from reconciler.errors import Problem, ValidationFailed
from reconciler.i18n import _

_TEXT = {"type": "string", "minLength": 1, "maxLength": 256, "pattern": r"^\S(.*\S)?$"}
SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["active_directory"],
    "properties": {"active_directory": {
        "type": "object", "additionalProperties": False, "required": ["units", "solicitud"],
        "properties": {
            "target": {"type": "string", "minLength": 1},
            "search_bases": {"type": "array", "minItems": 1, "items": _TEXT},
            "units": {"type": "array", "items": {
                "type": "object", "additionalProperties": False, "required": ["unit"],
                "anyOf": [{"required": ["ou"]}, {"required": ["attribute", "equals"]}],
                "dependentRequired": {"attribute": ["equals"], "equals": ["attribute"]},
                "properties": {"ou": _TEXT, "unit": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$"},
                               "attribute": {"enum": ["department", "company", "division",
                                                      "physicalDeliveryOfficeName", "title"]},
                               "equals": _TEXT}}},
            "exclude": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 64}},
            "stale_days": {"type": "integer", "minimum": 1},
            "disabled_days": {"type": "integer", "minimum": 1},
            "solicitud": {"type": "object", "additionalProperties": False,
                          "required": ["folio", "justification", "requested_by"],
                          "properties": {"folio": _TEXT, "justification": _TEXT, "requested_by": _TEXT,
                                         "date": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}}},
        }}},
}


@dataclass(frozen=True)
class UnitRule:
    unit: str
    ou: str | None = None
    attribute: str | None = None
    equals: str | None = None

    def matches(self, dn: str, attributes: dict) -> bool:
        if self.ou is not None and not dnlib.under(dnlib.parent(dn), self.ou):
            return False
        if self.attribute is not None:
            return folded(attributes.get(self.attribute)) == folded(self.equals)
        return True


@dataclass(frozen=True)
class ImportMapping:
    target: str | None
    search_bases: tuple[str, ...]
    rules: tuple[UnitRule, ...]
    exclude: tuple[str, ...]
    stale_days: int
    disabled_days: int
    solicitud: dict

    def unit_for(self, dn: str, attributes: dict) -> str | None:
        return next((r.unit for r in self.rules if r.matches(dn, attributes)), None)

    def excluded(self, sam: str) -> bool:
        return any(fnmatch.fnmatchcase(sam.casefold(), p.casefold()) for p in self.exclude)


def folded(text) -> str:
    """Without case, accents or repeated spaces: how hand-typed values are compared."""
    return " ".join(ascii_fold(str(text or "")).split())


def load_mapping(path: Path, units: set[str]) -> ImportMapping:
    """The mapping file, validated; every unit it names must be declared."""
    data, problems = read_yaml(path, str(path))
    if not problems:
        for error in sorted(jsonschema.Draft202012Validator(SCHEMA).iter_errors(data), key=lambda e: list(e.path)):
            problems.append(Problem(str(path), None, ".".join(str(p) for p in error.path), error.message))
    if problems:
        raise ValidationFailed(problems)
    ad = data["active_directory"]
    rules = tuple(UnitRule(r["unit"], r.get("ou"), r.get("attribute"), r.get("equals")) for r in ad["units"])
    unknown = [Problem(str(path), None, f"active_directory.units.{i}.unit",
                       _("{unit} is not a unit of desired_state/units.yaml", unit=r.unit))
               for i, r in enumerate(rules) if r.unit not in units]
    if unknown:
        raise ValidationFailed(unknown)
    return ImportMapping(ad.get("target"), tuple(ad.get("search_bases") or ()), rules, tuple(ad.get("exclude") or ()),
                         ad.get("stale_days", 90), ad.get("disabled_days", 180), dict(ad["solicitud"]))
