"""The legacy lab: what years of hand work leave in a directory, planted under
OU=Heredado,DC=salud,DC=lab with Samba's own tools (one LDIF, one `ldbadd` on the DC's sam.ldb,
as samba-tool does), plus a hand-made mail registry and a registrar's subscriber table of their
own.  Deterministic for a seed; planting again first removes what was planted (`ldbdel -r`), and
`--remove` only removes it.  Its entitlement groups carry names of their own (Usuarios-Internet...,
not the example data's GG-...), so the legacy lab and the example data share one domain; the
entitlements that map them are written to $LAB_DIR/legacy/entitlements.yaml, for the repository
an import starts from.

Planted, and listed in $LAB_DIR/legacy/manifest.json by problem:
  no_employee_key       people accounts without employeeID
  duplicate_key         pairs of accounts carrying one employeeID
  disabled              disabled, last logon more than 400 days ago (lastLogonTimestamp: AD
                        stamps no "disabled since", and whenChanged is the DC's own)
  disabled_recently     disabled, last logon 20 days ago (a leave, a suspension or a baja)
  stale                 enabled, last logon 200 days ago
  outside_managed_ous   people in OU=Varios, which the mapping sends nowhere
  service               service accounts in OU=Servicios (svc.*, svc_*, adm.*)
  incomplete            people without telephoneNumber
  mailbox_without_owner hand-made mailboxes whose address no account carries
  extension_without_owner  subscribers whose extension no account's ipPhone carries
  unmapped_group        groups that grant no entitlement and lead to none
  computer, computer_outside_managed_ous  computers made by hand, five in unit OUs (with a
                        holder in managedBy), one in OU=Varios
  firewall_rule, firewall_rule_unreadable  rules made by hand on the lab's firewall (rc-fw), in
                        a table of their own: two the reconciler can express, one it cannot
Every other account has a recent last logon.  Names carry accents, ñ, ü and apostrophes;
OU names and display names have inconsistent case and accents; Usuarios-Internet is granted to
some through the nested group Internet-Enfermeria.  The entitlements' groups sit in OU=Grupos (the
AD target's groups OU, where every membership is managed); the others in OU=Otros Grupos.  Only sAMAccountNames with a dot or an
underscore and employeeIDs SSM-9xxxxx are used, so nothing collides with the other tests.
"""
from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import random
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

BASE = "DC=salud,DC=lab"
LEGACY = f"OU=Heredado,{BASE}"
USERS = f"OU=Usuarios,{LEGACY}"
GROUPS = f"OU=Grupos,{LEGACY}"  # the entitlements' groups: the AD target's groups OU
OTHER_GROUPS = f"OU=Otros Grupos,{LEGACY}"  # every membership in the groups OU is managed: the rest live here
# OU (under OU=Usuarios) -> (the unit a person would map it to, departments seen there)
PLACES = {
    "OU=Hospital General Cuernavaca": ("HG-CUERNAVACA", ["Urgencias", "Consulta Externa", "Pediatría"]),
    "OU=Enfermería,OU=Hospital General Cuernavaca": ("HG-CUERNAVACA", ["Enfermería"]),
    "OU=HOSPITAL GENERAL CUAUTLA": ("HG-CUAUTLA", ["URGENCIAS", "Ginecología"]),
    "OU=Hosp. Gral. Jojutla": ("HG-JOJUTLA", ["Urgencias", "Medicina Interna"]),
    "OU=Jurisdiccion I": ("JS-I", ["Epidemiología", "Vacunación"]),
    "OU=Centro de Salud Jiutepec": ("CS-JIUTEPEC", ["Consulta Externa"]),
    "OU=Administración,OU=Oficinas Centrales": ("OC-DA", ["Recursos Humanos", "Contabilidad"]),
    "OU=Planeación,OU=Oficinas Centrales": ("OC-DGPE", ["Estadística"]),
    "OU=Oficinas Centrales": (None, ["Dirección de Administración", "Dirección General de Planeación y Evaluación"]),
}
DIRECTIONS = ["Dirección de Atención Médica", "Dirección de Administración", "Dirección de Salud Pública"]
TITLES = ["Médico General", "Enfermera General", "Jefa de Piso", "Capturista", "Químico Laboratorista",
          "Trabajadora Social", "Administrativo"]
GIVEN = ["José", "María", "Ana Lucía", "Juan Pablo", "Íñigo", "Begoña", "Raúl", "Inés", "Jesús", "Sofía",
         "Ángel", "Lucía", "Martín", "Ximena", "Güendolín", "Noé", "Pilar", "Joaquín", "Zoé", "Germán"]
SURNAMES = ["Núñez", "Peña", "O'Brien", "Ibáñez", "Güemes", "Ordóñez", "De la Cruz", "Del Valle", "López",
            "Martínez", "Hernández", "García", "Muñoz", "Zúñiga", "Domínguez", "Castañeda", "Agüero", "Sánchez",
            "Álvarez", "Ríos"]
# Entitlement -> (the group the institution made by hand for it, what it grants): the legacy
# repository's entitlements.yaml.
ENTITLEMENTS = {
    "internet": ("Usuarios-Internet", "Acceso a Internet institucional"),
    "correo": ("Usuarios-Correo", "Correo electrónico institucional"),
    "expediente_electronico": ("Usuarios-SIEMPRE", "Acceso al expediente clínico electrónico SIEMPRE"),
    "sinba": ("Captura-SINBA", "Captura en SINBA (Sistema Nacional de Información Básica en Salud)"),
    "carpetas_compartidas": ("Archivos-Compartidos", "Carpetas compartidas de la unidad"),
}
ENTITLEMENT_GROUPS = [group for group, _ in ENTITLEMENTS.values()]
INTERNET = ENTITLEMENTS["internet"][0]
UNMAPPED_GROUPS = ["Impresoras-Piso2", "Compartida-Contabilidad"]
NESTED = "Internet-Enfermeria"  # a member of Usuarios-Internet


def fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)).lower()


def filetime(when: dt.datetime) -> int:
    return int((when - dt.datetime(1601, 1, 1, tzinfo=dt.timezone.utc)).total_seconds() * 10_000_000)


def ldif_value(name: str, value: str) -> str:
    """RFC 2849: base64 for anything beyond plain ASCII or starting with a space, colon or '<'."""
    if value.isascii() and value.isprintable() and value[:1] not in (" ", ":", "<") and value[-1:] != " ":
        return f"{name}: {value}"
    return f"{name}:: {base64.b64encode(value.encode('utf-8')).decode('ascii')}"


def escape_rdn(value: str) -> str:
    out = value.replace("\\", "\\\\")
    for ch in ',+"<>;=#':
        out = out.replace(ch, "\\" + ch)
    return out


class Plant:
    def __init__(self, seed: int, people: int, now: dt.datetime, password_every: int = 1):
        self.rng, self.now, self.people = random.Random(seed), now, people
        self.password_every = max(1, password_every)
        self.records: list[list[str]] = []
        self.manifest: dict = {"seed": seed, "people": people, "search_base": LEGACY, "ous": [],
                               "problems": {k: [] for k in (
                                   "no_employee_key", "duplicate_key", "disabled", "disabled_recently", "stale",
                                   "outside_managed_ous",
                                   "service", "incomplete", "mailbox_without_owner", "extension_without_owner",
                                   "unmapped_group", "computer", "computer_outside_managed_ous")}, "clean": 0}
        self.sams: set[str] = set()
        self.cns: set[tuple[str, str]] = set()
        self.members: dict[str, list[str]] = {g: [] for g in ENTITLEMENT_GROUPS + UNMAPPED_GROUPS + [NESTED]}
        self.accounts: list[dict] = []
        self.key = 900000
        self.password = base64.b64encode(f'"Lg#{secrets.token_urlsafe(12)}9a"'.encode("utf-16-le")).decode("ascii")

    def ou(self, dn: str) -> None:
        self.records.append([ldif_value("dn", dn), "objectClass: organizationalUnit"])
        self.manifest["ous"].append(dn)

    def sam_for(self, given: str, surname: str, style: int) -> str:
        g, s = fold(given.split()[0]), fold(surname).replace("'", "").replace(" ", "")
        base = {0: f"{g}.{s}", 1: f"{g[0]}.{s}", 2: f"{g}_{s}"}[style][:17]
        sam, n = base, 1
        while sam.casefold() in self.sams:
            n += 1
            sam = f"{base}{n}"
        self.sams.add(sam.casefold())
        return sam.upper() if style == 1 and self.rng.random() < 0.2 else sam

    def account(self, parent: str, *, key: str | None = "new", enabled: bool = True, logon_days: int | None = None,
                phone: bool = True, department: str | None = None, groups: tuple[str, ...] = (),
                sam: str | None = None, service: bool = False) -> dict:
        rng = self.rng
        given, first, second = rng.choice(GIVEN), rng.choice(SURNAMES), rng.choice(SURNAMES)
        sam = sam or self.sam_for(given, first, rng.randrange(3))
        if key == "new":
            self.key += 1
            key = f"SSM-{self.key}"
        display = f"{given} {first} {second}"
        display = display.upper() if rng.random() < 0.15 else fold(display).title() if rng.random() < 0.15 else display
        cn = display if not service else sam
        while (parent.casefold(), cn.casefold()) in self.cns:  # namesakes in one OU: as people tell them apart
            cn = f"{cn} {rng.randrange(2, 99)}"
        self.cns.add((parent.casefold(), cn.casefold()))
        dn = f"CN={escape_rdn(cn)},{parent}"
        logon = self.now - dt.timedelta(days=logon_days if logon_days is not None else rng.randrange(1, 20),
                                        hours=rng.randrange(24))
        extension = str(50000 + len(self.accounts))
        lines = [ldif_value("dn", dn), "objectClass: user", ldif_value("sAMAccountName", sam),
                 ldif_value("userPrincipalName", f"{sam.lower()}@salud.lab"),
                 f"userAccountControl: {512 if enabled else 514}", f"lastLogonTimestamp: {filetime(logon)}"]
        if len(self.accounts) % self.password_every == 0:  # Samba derives every password's Kerberos keys: slow
            lines.insert(4, f"unicodePwd:: {self.password}")
        if not service:
            lines += [ldif_value("givenName", given), ldif_value("sn", f"{first} {second}"),
                      ldif_value("displayName", display), ldif_value("title", rng.choice(TITLES)),
                      ldif_value("company", rng.choice(DIRECTIONS)), f"ipPhone: {extension}"]
            if department:
                lines.append(ldif_value("department", department))
            if phone:
                lines.append(f"telephoneNumber: 777 3{rng.randrange(10, 99)} {rng.randrange(1000, 9999)}")
            if rng.random() < 0.6:
                lines.append(f"mail: {sam.lower()}@salud.lab")
        if key:
            lines.append(ldif_value("employeeID", key))
        self.records.append(lines)
        for g in groups:
            self.members[g].append(dn)
        record = {"dn": dn, "sam": sam, "employeeID": key, "mail": f"{sam.lower()}@salud.lab"
                  if any(x.startswith("mail:") for x in lines) else None, "extension": None if service else extension}
        self.accounts.append(record)
        return record

    def plan(self) -> None:
        for dn in (LEGACY, USERS, f"OU=Varios,{LEGACY}", f"OU=Servicios,{LEGACY}", GROUPS, OTHER_GROUPS):
            self.ou(dn)
        for rdn in sorted(PLACES, key=lambda r: r.count(",")):
            self.ou(f"{rdn},{USERS}")
        problems = self.manifest["problems"]
        places = list(PLACES)
        rng = self.rng
        planted = 0

        def place() -> tuple[str, str]:
            rdn = rng.choice(places)
            return f"{rdn},{USERS}", rng.choice(PLACES[rdn][1])

        for _ in range(40):
            parent, dept = place()
            problems["no_employee_key"].append(self.account(parent, key=None, department=dept))
        for _ in range(10):
            self.key += 1
            key = f"SSM-{self.key}"
            for _twin in range(2):
                parent, dept = place()
                problems["duplicate_key"].append(self.account(parent, key=key, department=dept))
        for _ in range(30):
            parent, dept = place()
            problems["disabled"].append(self.account(parent, enabled=False, logon_days=400 + rng.randrange(300),
                                                     department=dept))
        for _ in range(30):
            parent, dept = place()
            problems["stale"].append(self.account(parent, logon_days=200 + rng.randrange(100), department=dept))
        for _ in range(15):
            problems["outside_managed_ous"].append(self.account(f"OU=Varios,{LEGACY}", department="Varios"))
        for sam in ("svc.backup", "svc.antivirus", "svc_scanner", "svc_sql", "adm.soporte", "adm.redes",
                    "svc.impresion", "adm.mesa"):
            problems["service"].append(self.account(f"OU=Servicios,{LEGACY}", sam=sam, key=None, service=True))
        for _ in range(25):
            parent, dept = place()
            problems["incomplete"].append(self.account(parent, phone=False, department=dept))
        for _ in range(10):  # disabled recently (a leave, a suspension, a baja): imported as bajas, to confirm
            parent, dept = place()
            problems["disabled_recently"].append(self.account(parent, enabled=False, logon_days=20, department=dept))
        while len(self.accounts) < self.people:
            rdn = rng.choice(places)
            dept = rng.choice(PLACES[rdn][1])
            nurse = "Enfermería" in rdn
            groups = tuple(g for g in ENTITLEMENT_GROUPS if rng.random() < 0.3)
            if nurse:
                groups = tuple(g for g in groups if g != INTERNET) + (NESTED,)
            if rng.random() < 0.1:
                groups += (rng.choice(UNMAPPED_GROUPS),)
            self.account(f"{rdn},{USERS}", department=dept, groups=groups)
            planted += 1
        self.manifest["clean"] = planted
        sound = [a for a in self.accounts if a["employeeID"] and a["dn"].endswith(USERS) and "OU=Varios" not in a["dn"]]
        for i in range(6):  # computers made by hand; one where no mapping rule looks
            outside = i == 5
            parent = f"OU=Varios,{LEGACY}" if outside else f"{places[i % 5]},{USERS}"
            host = f"LEG-PC{i + 1:02d}"
            lines = [ldif_value("dn", f"CN={host},{parent}"), "objectClass: computer", f"sAMAccountName: {host}$",
                     "userAccountControl: 4096", ldif_value("location", f"Piso {i + 1}")]
            if not outside:
                lines.append(ldif_value("managedBy", sound[-(i + 1)]["dn"]))  # sound people: added last
            self.records.append(lines)
            problems["computer_outside_managed_ous" if outside else "computer"].append({"dn": f"CN={host},{parent}"})
        for g in [NESTED] + ENTITLEMENT_GROUPS + UNMAPPED_GROUPS:  # a nested group exists before its parent
            members = self.members[g] + ([f"CN={NESTED},{OTHER_GROUPS}"] if g == INTERNET else [])
            where = GROUPS if g in ENTITLEMENT_GROUPS else OTHER_GROUPS
            self.records.append([ldif_value("dn", f"CN={g},{where}"), "objectClass: group",
                                 ldif_value("sAMAccountName", g), *(ldif_value("member", m) for m in members)])
        for g in UNMAPPED_GROUPS:
            if self.members[g]:
                problems["unmapped_group"].append({"group": g, "members": len(self.members[g])})

    def ldif(self) -> str:
        return "\n".join("\n".join(r) + "\n" for r in self.records)


def ldb(samdb: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(args) + ["-H", str(samdb)], input=stdin, capture_output=True, text=True)


def write_entitlements(path: Path) -> None:
    """The entitlements.yaml of a repository that starts from the legacy directory (its strings
    quoted as JSON, which YAML reads as they are)."""
    lines = ["# The legacy lab's entitlements: the groups its directory grants them by (ci/lab/legado.py).",
             "entitlements:"]
    for key, (group, text) in ENTITLEMENTS.items():
        lines += [f"  {key}:", f"    description: {json.dumps(text, ensure_ascii=False)}", f"    group: {group}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_mail(plant: Plant, folder: Path) -> None:
    """A Dovecot passwd-file registry made by hand: many people's mailboxes, and a few nobody owns."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"{a['mail']}::::::userdb_quota_rule=*:storage=1G" for a in plant.accounts if a["mail"]]
    for name in ("recepcion.hgc", "archivo.clinico", "vacunacion.jsi", "farmacia.cuautla", "compras.oc"):
        address = f"{name}@salud.lab"
        lines.append(f"{address}::::::userdb_quota_rule=*:storage=2G")
        plant.manifest["problems"]["mailbox_without_owner"].append({"address": address})
    path = folder / "users"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


SQLITE_SCHEMA = Path("/usr/share/kamailio/db_sqlite/auth_db-create.sql")


def write_phone(plant: Plant, folder: Path) -> None:
    """A small site's Kamailio subscriber table made by hand, in SQLite, with Kamailio's own
    schema (kamailio-sqlite-modules)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "kamailio.db"
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE version (table_name VARCHAR(32) NOT NULL, table_version INTEGER DEFAULT 0 NOT NULL)")
    db.executescript(SQLITE_SCHEMA.read_text())
    rows = [a["extension"] for a in plant.accounts if a["extension"] and plant.rng.random() < 0.5]
    orphans = [str(40000 + i) for i in range(5)]
    for number in rows + orphans:
        db.execute("INSERT INTO subscriber (username, domain, ha1, ha1b) VALUES (?, 'salud.lab', ?, ?)",
                   (number, secrets.token_hex(16), secrets.token_hex(16)))
    db.commit()
    db.close()
    plant.manifest["problems"]["extension_without_owner"] = [{"extension": n} for n in orphans]


# Rules made by hand on the lab's firewall, in a table of their own and a chain no hook calls
# (so they change no packet the other tests send): two the reconciler can express, one it cannot.
FIREWALL_RULES = """table inet legado {
  chain reglas-viejas {
    ip saddr 10.10.1.0/24 ip daddr 10.10.2.2 tcp dport 443 counter accept comment "expediente, lo pidió el director"
    ip saddr 10.10.9.0/24 udp dport { 53, 5353 } accept
    ct state established,related accept
  }
}
"""


def write_firewall(plant: Plant, netns: str = "rc-fw") -> None:
    subprocess.run(["ip", "netns", "exec", netns, "nft", "delete", "table", "inet", "legado"], capture_output=True)
    done = subprocess.run(["ip", "netns", "exec", netns, "nft", "-f", "-"], input=FIREWALL_RULES, capture_output=True,
                          text=True)
    if done.returncode != 0:
        sys.exit(f"planting the firewall's hand-made rules failed: {done.stderr}")
    plant.manifest["problems"]["firewall_rule"] = [{"rule": "inet legado reglas-viejas", "expressible": True}] * 2
    plant.manifest["problems"]["firewall_rule_unreadable"] = [{"rule": "inet legado reglas-viejas",
                                                               "expressible": False}]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--people", type=int, default=2000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--password-every", type=int, default=1, metavar="K",
                   help="set a password on one account in K (a large benchmark; the others get none, "
                        "as a local ldbadd allows)")
    p.add_argument("--lab-dir", type=Path, default=Path(os.environ.get("RECONCILER_LAB_DIR", "/var/lib/reconciler-lab")))
    p.add_argument("--remove", action="store_true",
                   help="only remove what was planted")
    args = p.parse_args()
    samdb = args.lab_dir / "samba" / "private" / "sam.ldb"
    started = time.monotonic()
    gone = ldb(samdb, "ldbdel", "-r", LEGACY)
    if gone.returncode != 0 and "No such" not in gone.stdout + gone.stderr:
        sys.exit(f"removing the previous legacy tree failed: {gone.stdout}{gone.stderr}")
    if args.remove:
        subprocess.run(["ip", "netns", "exec", "rc-fw", "nft", "delete", "table", "inet", "legado"], capture_output=True)
        import shutil

        shutil.rmtree(args.lab_dir / "legacy", ignore_errors=True)
        print(f"[lab] legacy: {LEGACY} and the legacy files removed")
        return 0
    plant = Plant(args.seed, args.people, dt.datetime.now(dt.timezone.utc), args.password_every)
    plant.plan()
    with tempfile.NamedTemporaryFile("w", suffix=".ldif", encoding="utf-8") as f:
        f.write(plant.ldif())
        f.flush()
        added = subprocess.run(["ldbadd", "-H", str(samdb), f.name], capture_output=True, text=True)
    if added.returncode != 0 or "ERR" in added.stdout + added.stderr:  # ldbadd stops at an error, and may exit 0
        sys.exit(f"ldbadd failed: {added.stdout[-2000:]}{added.stderr[-2000:]}")
    # The reconciler takes this tree over as svc-reconciler: the same rights as on its own OUs.
    delegated = subprocess.run([str(Path(__file__).with_name("delegate")), LEGACY], capture_output=True, text=True)
    if delegated.returncode != 0:
        sys.exit(f"delegating {LEGACY} failed: {delegated.stderr}")
    legacy_dir = args.lab_dir / "legacy"
    write_mail(plant, legacy_dir / "mail")
    write_phone(plant, legacy_dir / "phone")
    write_firewall(plant)
    write_entitlements(legacy_dir / "entitlements.yaml")
    (legacy_dir / "manifest.json").write_text(json.dumps(plant.manifest, ensure_ascii=False, indent=1), encoding="utf-8")
    counts = {k: len(v) for k, v in plant.manifest["problems"].items()}
    print(f"[lab] legacy: {len(plant.accounts)} accounts under {LEGACY} in {time.monotonic() - started:.1f} s; "
          f"planted {counts}; {plant.manifest['clean']} without a problem")
    return 0


if __name__ == "__main__":
    sys.exit(main())
