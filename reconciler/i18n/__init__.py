"""The words people read, in their language: gettext catalogs (managed with Babel, see
`ci/catalogs`), plural forms, and dates, times and numbers as the institution writes them.

The source language of every message is English; `locale/<lang>/LC_MESSAGES/reconciler.po`
holds each language's words (Mexican Spanish, and English itself), compiled to `.mo`.

Which language: `--lang`, else the environment (LC_ALL, LC_MESSAGES, LANG, when it names a
language with a catalog; "C" and "POSIX" name none), else the inventory's
`institution.language`, else Mexican Spanish.

Two ways to say something:

- `_(msgid, **args)` and `ngettext(...)` translate now: for what is printed or raised now.
- `lazy(msgid, **args)` and `lazy_n(...)` make a `Message`: for text kept in a plan, a change
  or a record.  A Message *is* its source-language text (so a fingerprint, `--output json`
  and the audit trail are the same whatever language a run speaks) and becomes the current
  language only when shown: `str(m)`, `f"{m}"`.  Renderers call `str()` before escaping.

Placeholders are named, `{name}`, so a translation may reorder them; the catalog test checks
every translation keeps exactly its message's placeholders.
"""
from __future__ import annotations

import datetime as dt
import gettext as _gettext
import os
from functools import cache
from pathlib import Path

LANGUAGES = ("es_MX", "en")  # the catalogs there are; the first is the default
DEFAULT_LANGUAGE = "es_MX"
DEFAULT_TIME_ZONE = "America/Mexico_City"
DOMAIN = "reconciler"
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"


class _State:
    language = DEFAULT_LANGUAGE
    explicit = False  # chosen by --lang or the environment: an inventory does not change it
    time_zone = DEFAULT_TIME_ZONE


def negotiate(requested: str | None) -> str | None:
    """The catalog for a language tag ("es", "es_MX.UTF-8", "en-US"), or None."""
    if not requested:
        return None
    tag = requested.split(".")[0].split("@")[0].replace("-", "_")
    if tag in ("C", "POSIX", ""):
        return None
    for language in LANGUAGES:
        if tag.lower() == language.lower():
            return language
    prefix = tag.split("_")[0].lower()
    return next((lang for lang in LANGUAGES if lang.split("_")[0].lower() == prefix), None)


def from_environment(environ: dict | None = None) -> str | None:
    """The language the environment asks for (POSIX order: the first of LC_ALL, LC_MESSAGES,
    LANG that is set decides), if there is a catalog for it."""
    environ = os.environ if environ is None else environ
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        if environ.get(name):
            return negotiate(environ[name])
    return None


def use(language: str | None, *, explicit: bool = False) -> str:
    """Speak `language` from now on (None: the default).  Returns the catalog chosen."""
    chosen = negotiate(language) or DEFAULT_LANGUAGE
    _State.language, _State.explicit = chosen, explicit or _State.explicit
    return chosen


def choose(flag: str | None, environ: dict | None = None) -> str:
    """At start: `--lang` if given (an unknown language is an error), else the environment."""
    if flag:
        language = negotiate(flag)
        if language is None:
            use(None)
            raise ValueError(_("no catalog for language {language!r} (there are: {languages})",
                               language=flag, languages=", ".join(LANGUAGES)))
        return use(language, explicit=True)
    found = from_environment(environ)
    _State.explicit = False
    return use(found, explicit=found is not None)


def institution(language: str | None, time_zone: str | None) -> None:
    """The inventory's settings: its language unless one was chosen explicitly, its zone."""
    if language and not _State.explicit:
        use(language)
    if time_zone:
        _State.time_zone = time_zone


def current() -> str:
    return _State.language


def explicit() -> bool:
    """Whether --lang or the environment chose the language (an inventory may not change it)."""
    return _State.explicit


@cache
def _catalog(language: str) -> _gettext.NullTranslations:
    try:
        with open(LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.mo", "rb") as fp:
            return _gettext.GNUTranslations(fp)
    except OSError:  # a checkout whose catalogs were not compiled: the source language
        return _gettext.NullTranslations()


def _format(text: str, args: dict) -> str:
    return text.format(**args) if args else text


def _(msgid: str, /, **args) -> str:
    """`msgid` in the current language, with its {placeholders} filled."""
    return _format(_catalog(_State.language).gettext(msgid), args)


def ngettext(singular: str, plural: str, n: int, /, **args) -> str:
    """The form for `n` in the current language; `{n}` is n."""
    return _format(_catalog(_State.language).ngettext(singular, plural, n), {"n": n, **args})


def unformatted_ngettext(singular: str, plural: str, n: int) -> str:
    """The form for `n`, placeholders left as they are (for a caller that fills them itself)."""
    return _catalog(_State.language).ngettext(singular, plural, n)


def pgettext(context: str, msgid: str, /, **args) -> str:
    """Like _(), for a word whose translation depends on where it stands ("alta" as a noun)."""
    return _format(_catalog(_State.language).pgettext(context, msgid), args)


def N_(msgid: str) -> str:
    """Marks a message for the catalog without translating it (a constant, translated when shown)."""
    return msgid


class Message(str):
    """Text kept for later: its value is the source language; str() and format() speak the
    current one."""

    def __new__(cls, msgid: str, plural: str | None = None, n: int | None = None, args: dict | None = None):
        args = dict(args or {})
        if plural is not None:
            args = {"n": n, **args}
        source = _format(msgid if plural is None or n == 1 else plural, _sources(args))
        self = super().__new__(cls, source)
        self._ids, self._n, self._args = (msgid, plural), n, args
        return self

    def __str__(self) -> str:
        msgid, plural = self._ids
        catalog = _catalog(_State.language)
        text = catalog.gettext(msgid) if plural is None else catalog.ngettext(msgid, plural, self._n)
        return _format(text, self._args)

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    def __reduce__(self):  # copies and pickles stay Messages
        return (Message, (self._ids[0], self._ids[1], self._n, self._args))


def _sources(args: dict) -> dict:
    return {k: str.__str__(v) if isinstance(v, Message) else v for k, v in args.items()}


def lazy(msgid: str, /, **args) -> Message:
    return Message(msgid, args=args)


def lazy_n(singular: str, plural: str, n: int, /, **args) -> Message:
    return Message(singular, plural, n, args)


def shown(text) -> str:
    """What a person reads of a value that may be a Message: its current-language words."""
    return str(text) if isinstance(text, Message) else text


def source(text) -> str:
    """The language-neutral text of a value that may be a Message (for JSON and records)."""
    return str.__str__(text) if isinstance(text, Message) else text


# -- dates, times and numbers -------------------------------------------------------------

def _locale() -> str:
    return "es_MX" if _State.language == "es_MX" else "en_US"


def zone():
    from zoneinfo import ZoneInfo

    return ZoneInfo(_State.time_zone)


def day_start(day: dt.date) -> str:
    """The first instant of the institution's `day`, in UTC as the audit records write time."""
    return dt.datetime.combine(day, dt.time(), tzinfo=zone()).astimezone(dt.timezone.utc).isoformat(timespec="seconds")


def _moment(value) -> dt.datetime | dt.date | None:
    if isinstance(value, (dt.datetime, dt.date)):
        return value
    try:
        if len(str(value)) == 10:  # a day, not a moment: no zone to convert from
            return dt.date.fromisoformat(str(value))
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def date(value) -> str:
    """A day as people write it: "1 de diciembre de 2026" / "December 1, 2026".  A moment
    (datetime with a zone) is first taken to the institution's zone."""
    from babel.dates import format_date

    moment = _moment(value)
    if moment is None:
        return str(value)
    if isinstance(moment, dt.datetime):
        moment = _local(moment).date()
    return format_date(moment, "long", locale=_locale())


def when(value) -> str:
    """A moment in the institution's zone: "1 de diciembre de 2026, 14:05 CST"."""
    from babel.dates import format_date

    moment = _moment(value)
    if not isinstance(moment, dt.datetime):
        return date(value) if moment is not None else str(value)
    local = _local(moment)
    return f"{format_date(local.date(), 'long', locale=_locale())}, {local:%H:%M} {local:%Z}"


def month(year_month: str) -> str:
    """"2026-11" as "noviembre de 2026" / "November 2026"."""
    from babel.dates import format_date

    try:
        first = dt.date.fromisoformat(f"{year_month}-01")
    except ValueError:
        return year_month
    pattern = "MMMM 'de' y" if _locale() == "es_MX" else "MMMM y"  # not for people: CLDR patterns
    return format_date(first, pattern, locale=_locale())


def _local(moment: dt.datetime) -> dt.datetime:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)
    try:
        return aware.astimezone(zone())
    except (OverflowError, ValueError):  # year 1 or 9999 from a hostile record: shown in its own zone
        return aware


def number(value, decimals: int | None = None) -> str:
    """1210 as "1,210"; 0.5 as "0.5" (decimals fixed when given)."""
    from babel.numbers import format_decimal

    pattern = None if decimals is None else "#,##0." + "0" * decimals if decimals else "#,##0"
    return format_decimal(value, format=pattern, locale=_locale())


def percent(value: float) -> str:
    from babel.numbers import format_percent

    return format_percent(value, format="#,##0.0%", locale=_locale())


def money(amount, currency: str = "MXN") -> str:
    """"$1,210.00 MXN": the amount as the locale writes it, and the currency named.  The peso's
    sign is "$" in both languages (CLDR's English writes "MX$", which no Mexican bill does)."""
    if currency == "MXN":
        return f"{'-' if amount < 0 else ''}${number(abs(amount), 2)} MXN"
    from babel.numbers import format_currency

    return f"{format_currency(amount, currency, format='¤#,##0.00', currency_digits=False, locale=_locale())} {currency}"
