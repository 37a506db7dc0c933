"""Account names derived from people: sAMAccountName, CN and display name.

The sAMAccountName is the initial of the first given name, the whole first surname and the
initial of the second surname, accents and punctuation stripped, lower case, at most 20
characters: José Luis Núñez O'Brien -> jnunezo.

Collisions are resolved so that a name never depends on people it does not collide with:
  1. an explicit `account.sam` in the YAML always wins;
  2. among people deriving the same base, the lowest employee key keeps the base (employee
     keys are issued in order, so the person who was there first keeps their name);
  3. the others get the base shortened and followed by the digits of their own employee key,
     which are unique, so the suffixed name depends on nobody else.  A derived base has no
     digits, so a suffixed name can never take an unrelated person's base.
Anything still clashing (two explicit names, say) is a validation problem, never a guess.
"""
from __future__ import annotations

import re
from functools import lru_cache
import unicodedata
from collections import defaultdict
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:  # a name for types only: the AD provider's settled plan loads no desired state
    from reconciler.desired.model import Person

MAX_SAM = 20
_NOT_LETTER = re.compile(r"[^a-z]")
_NOT_ALNUM = re.compile(r"[^a-z0-9]")


@lru_cache(maxsize=1 << 16)  # names repeat: a directory of 100,000 people has a few thousand distinct words
def ascii_fold(text: str) -> str:
    """'Ñúñez O'Brien' -> 'nunez obrien' (lower case, accents and ñ folded)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()


def _letters(text: str | None) -> str:
    return _NOT_LETTER.sub("", ascii_fold(text or ""))


def base_name(person: Person) -> str:
    given = _letters(person.given_names.split()[0])[:1]
    second = _letters(person.second_surname)[:1]
    first = _letters(person.first_surname)
    base = f"{given}{first}{second}"
    if len(base) > MAX_SAM:
        base = f"{given}{first}"[: MAX_SAM - len(second)] + second
    return base or "usuario"


def _suffixed(base: str, employee_key: str) -> str:
    key = ascii_fold(employee_key)
    suffix = "".join(ch for ch in key if ch.isdigit()) or _NOT_ALNUM.sub("", key)
    suffix = suffix[-(MAX_SAM - 1):]
    return base[: MAX_SAM - len(suffix)] + suffix


def common_name(person: Person) -> str:
    """CN: 'Surnames, Given names', the directory order used in Mexican institutions."""
    return person.explicit_cn or f"{person.surnames}, {person.given_names}"


def namesake_groups(people: Iterable[Person]) -> list[list[Person]]:
    """The people whose account names depend on each other (deriving the same base name, with
    any explicit name equal to it), groups of two or more: a person's name is known from the
    people of their group alone."""
    groups: dict[str, list[Person]] = {}
    for p in people:
        groups.setdefault(p.explicit_sam.lower() if p.explicit_sam else base_name(p), []).append(p)
    return [group for group in groups.values() if len(group) > 1]


def assign_account_names(people: Iterable[Person]) -> tuple[dict[str, str], list[tuple[str, list[Person]]]]:
    """Returns ({employee key: sam}, [(sam, people sharing it)]) for unresolvable clashes."""
    people = list(people)
    names: dict[str, str] = {}
    by_base: dict[str, list[Person]] = defaultdict(list)
    explicit = {p.explicit_sam.lower() for p in people if p.explicit_sam}
    for person in people:
        if person.explicit_sam:
            names[person.employee_key] = person.explicit_sam.lower()
        else:
            by_base[base_name(person)].append(person)
    for base, group in by_base.items():
        group.sort(key=lambda p: p.employee_key)
        for index, person in enumerate(group):
            keeps_base = index == 0 and base not in explicit
            names[person.employee_key] = base if keeps_base else _suffixed(base, person.employee_key)
    holders: dict[str, list[Person]] = defaultdict(list)
    for person in people:
        holders[names[person.employee_key]].append(person)
    clashes = [(sam, group) for sam, group in holders.items() if len(group) > 1]
    return names, clashes
