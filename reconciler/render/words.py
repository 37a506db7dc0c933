"""The product's own words for its identifiers: movements and the kinds of object a change
is about, as a person reads them (the identifiers stay as they are in JSON and records)."""
from __future__ import annotations

from reconciler.i18n import N_, _, ngettext
from reconciler.plan import Movement

# Every kind a provider gives its changes (providers' KIND constants), marked for the catalog.
_KINDS = {
    "ou": N_("organizational unit"), "group": N_("group"), "account": N_("account"),
    "password-reset": N_("password reset"), "computer": N_("computer"), "mailbox": N_("mailbox"),
    "shared-mailbox": N_("shared mailbox"), "mail-maps": N_("mail maps"), "mail-sessions": N_("mail sessions"),
    "sip-line": N_("phone line"), "firewall-rule": N_("firewall rule"), "firewall-chain": N_("firewall chain"),
    "rule-order": N_("rule order"), "router-acl": N_("router ACL"), "fake-account": N_("test account"),
    "work-order": N_("work order"), "work-order-confirmation": N_("work order confirmation"),
}


# The attributes an approver meets in a pull request comment, in words; any other is shown as
# its code.  (The terminal plan, for IT staff, shows every attribute by its own name.)
_ATTRIBUTES = {
    "sAMAccountName": N_("account name"), "userPrincipalName": N_("sign-in name"), "givenName": N_("given names"),
    "sn": N_("surnames"), "displayName": N_("name shown"), "display_name": N_("name shown"),
    "employeeID": N_("employee key"), "title": N_("title"), "company": N_("institution"), "division": N_("division"),
    "department": N_("department"), "physicalDeliveryOfficeName": N_("office"), "telephoneNumber": N_("telephone"),
    "ipPhone": N_("extension"), "description": N_("description"), "mail": N_("mail address"),
    "proxyAddresses": N_("mail addresses"), "groups": N_("groups"), "enabled": N_("enabled"), "ou": N_("place (OU)"),
    "unit": N_("unit"), "quota": N_("quota"), "aliases": N_("aliases"), "address": N_("address"),
    "location": N_("location"), "managedBy": N_("responsible"), "holder": N_("holder"), "password": N_("password"),
    "secret": N_("secret"), "hostname": N_("host name"), "owner": N_("owner"), "members": N_("members"),
    "order": N_("order"), "rule": N_("rule"), "status": N_("status"), "subscriber": N_("SIP subscriber"),
    "cn": N_("common name (CN)"), "access": N_("access"), "work_order": N_("work order"),
    "confirmado": N_("confirmation"),
}


def attribute_name(name: str) -> str | None:
    """"title" as "puesto"; None for an attribute this table does not know."""
    return _(_ATTRIBUTES[name]) if name in _ATTRIBUTES else None


def kind_name(kind: str) -> str:
    """"account" as "cuenta"; a kind this table does not know is shown as it is."""
    return _(_KINDS[kind]) if kind in _KINDS else kind


def movement_name(movement: Movement) -> str:
    return {Movement.ADOPCION: _("adopción"), Movement.ALTA: _("alta"), Movement.MODIFICACION: _("modificación"),
            Movement.BAJA: _("baja")}[movement]


def movements(movement: Movement, n: int) -> str:
    """"1 alta", "3 modificaciones": the count and its noun, in the plural form n needs."""
    if movement is Movement.ADOPCION:
        return ngettext("{n} adopción", "{n} adopciones", n)
    if movement is Movement.ALTA:
        return ngettext("{n} alta", "{n} altas", n)
    if movement is Movement.MODIFICACION:
        return ngettext("{n} modificación", "{n} modificaciones", n)
    return ngettext("{n} baja", "{n} bajas", n)


def summary_line(counts: dict[Movement, int]) -> str:
    if not any(counts.values()):
        return _("No changes. Every target matches the desired state.")
    words = {m.plural: movements(m, counts.get(m, 0)) for m in Movement}
    if counts.get(Movement.ADOPCION):  # only a plan that adopts says so: the others read as they always did
        return _("Plan: {adopciones}, {altas}, {modificaciones}, {bajas}.", **words)
    return _("Plan: {altas}, {modificaciones}, {bajas}.", **words)


def yes_no(value: bool) -> str:
    return _("yes") if value else _("no")
