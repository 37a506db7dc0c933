"""Before-images (issue 13 item 7), without a server: the LDIF that undoes a run on an
account, and the file the run writes."""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
import stat

from reconciler.audit import before
from reconciler.providers.ad.records import Account, undo_ldif

PEOPLE = "OU=Personal,DC=salud,DC=lab"
GROUPS = "OU=Grupos,DC=salud,DC=lab"


def account(parent: str, title: str, groups: set, cn: str = "Ñúñez O'Brien, José", enabled: bool = True,
            dn: str | None = None) -> Account:
    attributes = {"sAMAccountName": "jnunezo", "displayName": "José Ñúñez O'Brien", "title": title}
    return Account("SSM-1", cn, parent, attributes, enabled, frozenset(groups), dn=dn, uac=512 if enabled else 514,
                   applied_hash="abc" if dn else None)


def test_undo_ldif_moves_back_restores_attributes_and_memberships():
    old_parent, new_parent = f"OU=HG-CUERNAVACA,{PEOPLE}", f"OU=CS-JIUTEPEC,{PEOPLE}"
    was = account(old_parent, "Médico General", {"GG-Internet", "GG-SIEMPRE"},
                  dn=f"CN=Ñúñez O'Brien\\, José,{old_parent}")
    will = account(new_parent, "Jefe", {"GG-Internet", "GG-VPN"})
    text = undo_ldif(was, will, {"gg-internet": f"CN=GG-Internet,{GROUPS}", "gg-siempre": f"CN=GG-SIEMPRE,{GROUPS}"},
                     GROUPS)
    blocks = text.strip().split("\n\n")
    moved, modified, add, delete = blocks
    assert "changetype: modrdn" in moved and "deleteoldrdn: 1" in moved
    assert f"newsuperior: {old_parent}" in moved
    # Non-ASCII DNs and values are base64, as LDIF requires
    encoded = [line for line in modified.splitlines() if line.startswith("dn:: ")]
    assert base64.b64decode(encoded[0][5:]).decode() == was.dn
    title = next(line for line in modified.splitlines() if line.startswith("title:"))
    assert base64.b64decode(title.split(":: ")[1]).decode() == "Médico General"
    assert "replace: givenName\n-" in modified  # absent before: emptied
    assert "userAccountControl: 512" in modified and "adminDescription: reconciler applied=abc" in modified
    assert f"dn: CN=GG-SIEMPRE,{GROUPS}" in add and "add: member" in add
    assert f"dn: CN=GG-VPN,{GROUPS}" in delete and "delete: member" in delete


def test_the_before_image_file_is_private_and_its_hash_is_returned(tmp_path):
    record = before.write(tmp_path, "ad", "run-1", ("ldif", "version: 1\n".encode()))
    path = tmp_path / "before" / "ad-run-1.ldif"
    assert record == {"path": str(path), "sha256": hashlib.sha256(b"version: 1\n").hexdigest(), "bytes": 11}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert before.write(tmp_path, "ad", "run-2", None) is None
    assert before.write(tmp_path, "ad", "run-3", ("jsonl", b"")) is None


def test_ldif_lines_encode_what_ldif_cannot_carry_plainly():
    assert before.ldif_line("title", "Director") == "title: Director"
    for value in ("Ñúñez", " leading", ":colon", "<angle", "trailing ", "line\nbreak"):
        assert before.ldif_line("cn", value).startswith("cn:: ")


def test_a_display_name_with_line_breaks_cannot_add_a_record_to_the_ldif():
    """A display name is typed by people: in a comment it must stay one line, or applying the
    file by hand would run what it smuggled in (a member added to Domain Admins)."""
    hostile = "Ana\ndn: CN=Domain Admins,CN=Users,DC=salud,DC=lab\nchangetype: modify\nadd: member\u2028x\r"
    was = account(f"OU=HG,{PEOPLE}", "Médico", set(), dn=f"CN=Ana,OU=HG,{PEOPLE}")
    was = dataclasses.replace(was, attributes={**was.attributes, "displayName": hostile})
    text = undo_ldif(was, was, {}, GROUPS)
    assert not any(line.startswith(("dn: CN=Domain", "changetype: modify\nadd")) for line in text.splitlines())
    assert text.splitlines()[0].startswith("# jnunezo (Ana?dn: CN=Domain Admins")
