"""The institution an inventory belongs to: its name, the language its people read, and the
time zone its times are shown in (the inventory's `institution:` block, all optional)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from reconciler import i18n


@dataclass(frozen=True)
class Institution:
    name: str = ""
    language: str = i18n.DEFAULT_LANGUAGE
    time_zone: str = i18n.DEFAULT_TIME_ZONE

    @classmethod
    def from_inventory(cls, data: object) -> Institution:
        block = data.get("institution") if isinstance(data, dict) else None
        if not isinstance(block, dict):
            return cls()
        return cls(**{k: block[k] for k in ("name", "language", "time_zone") if isinstance(block.get(k), str)})

    def check(self, add: Callable[[tuple, str], None]) -> None:
        if not _zone_exists(self.time_zone):
            add(("institution", "time_zone"), i18n._("no such time zone: {zone} (a name like America/Mexico_City)",
                                                     zone=self.time_zone))

    def speak(self) -> None:
        """Make this institution's language (unless --lang or the environment chose) and zone current."""
        i18n.institution(self.language, self.time_zone if _zone_exists(self.time_zone) else None)


def _zone_exists(name: str) -> bool:
    from zoneinfo import ZoneInfo

    try:
        ZoneInfo(name)
    except (ValueError, OSError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        return False
    return True


def speak_from(path: Path) -> None:
    """Before a command runs: the inventory's language and zone, if it can be read at all.
    Anything wrong with it is the command's to report, in the default language."""
    from reconciler.desired.yamlfile import read_yaml

    try:
        if not Path(path).is_file():
            return
        data, problems = read_yaml(Path(path), str(path))
    except OSError:
        return
    if not problems:
        Institution.from_inventory(data).speak()
