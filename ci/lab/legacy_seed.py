#!/usr/bin/env python3
"""The legacy lab: plant in the lab's Samba AD DC what years of hand work leave behind, so that
`reconciler import` and its reconciliation report can be tested against a directory that
follows no tidy layout.  Everything goes under OU=Legado,DC=salud,DC=lab (other tests share
the directory), plus a hand-made mail registry and a hand-made Kamailio subscriber table of its
own, and a manifest that lists, per planted problem, exactly which objects carry it.

    python3 ci/lab/legacy_seed.py [--people N] [--seed S] [--lab-dir DIR] [--out-dir DIR]
                                  [--passwords nthash|samba] [--remove]

Written with Samba's own tools against the DC's sam.ldb (how samba-tool works while the DC
runs): one ldbmodify removes what a previous run planted, one ldbmodify plants everything (one
LDIF, one transaction each).  Stdlib only.  Deterministic for a seed: the same OUs, names,
keys, memberships, mailboxes and extensions; times are relative to the run (a normal account
logged on days ago), secrets (passwords, SIP ha1) are random every run and written nowhere.
The names it picks avoid sAMAccountNames, UPNs, mail addresses and employeeIDs already held
outside OU=Legado, so with the same directory outside it the result is the same.

Layout (no tidy unit layout on purpose):
  OU=Usuarios,OU=Legado      people, in OUs named by hand ("HOSPITAL GENERAL CUAUTLA",
                             "Hosp. Gral. Jojutla", "Jurisdiccion I", nested sub-OUs, and
                             "Oficinas Centrales" where only `department` tells the unit)
  OU=Varios,OU=Legado        people that map to no unit (outside_managed_ous)
  OU=Servicios,OU=Legado     service and admin accounts (svc.*, svc_*, adm.*)
  OU=Grupos,OU=Legado        the entitlement groups by name (GG-Internet, ...): an AD target's
                             groups OU, where the reconciler manages every membership
  OU=Otros Grupos,OU=Legado  the other groups made by hand: nested ones that lead to an
                             entitlement group (Internet-Enfermeria is a member of GG-Internet,
                             its people of it only), and groups that lead to none (a cycle too)

Planted problems (each account carries at most one; see the manifest's "rules"):
  no_employee_key, duplicate_key, disabled (uac 514 and lastLogonTimestamp > 180 days ago),
  disabled_recently (uac 514, last logon 20-60 days ago), stale (uac 512 and lastLogonTimestamp
  > 90 days ago), outside_managed_ous, service,
  incomplete (a field the people schema needs is missing or not a phone number),
  mailbox_without_owner, extension_without_owner, unmapped_group.
Samba keeps whenChanged/whenCreated to itself (they are the DC's own: a relax or provision
control does not change them), so every "since when" lives in lastLogonTimestamp (and lastLogon).

Passwords: by default (`--passwords nthash`) each account gets the NT hash of a random password
through the control samba-tool's classicupgrade uses to import accounts with their hashes
(DSDB_CONTROL_BYPASS_PASSWORD_HASH_OID): it is as fast as an account without a password and
lets pwdLastSet carry a realistic past date.  The account authenticates (LDAP simple bind,
NTLM, Kerberos RC4) but has no AES Kerberos keys, like an account migrated from an NT4
domain.  `--passwords samba` has Samba derive every key from a random clear-text password
instead: about 30 ms more per account (Heimdal's PBKDF2), and pwdLastSet is then the time of
the run.
"""
from __future__ import annotations

import argparse
import base64
import datetime as dt
import fnmatch
import hashlib
import json
import os
import random
import re
import secrets
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

DOMAIN = "salud.lab"
BYPASS_PASSWORD_HASH_OID = "1.3.6.1.4.1.7165.4.3.12"  # dsdb/samdb/samdb.h: for importing accounts with hashes
MAX_SAM = 20
EXCLUDE = ("svc.*", "svc_*", "adm.*")  # the service patterns an import mapping would declare
STALE_DAYS, DISABLED_DAYS = 90, 180
# Addresses and names the repository's tests spell out: never planted, so Dovecot's lookup by
# mail (whole domain) and the reconciler's name lookups never find a legacy account for them.
RESERVED = {"ana.lopez", "ana.nunez", "jose.nunez", "informes.hgc", "recepcion.hgc", "mesa.servicios",
            "mallory.old", "nadie.declarado", "ana", "bea", "a", "b"}
PHONE = re.compile(r"^\+?[0-9][0-9 ()-]{6,24}$")  # the people schema's phone (reconciler/adoption/people.py)
NAME = re.compile(r"^[^\W\d_]+(?:[ '’.-]+[^\W\d_]+)*\.?$")  # the people schema's name

# -- the layout ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    key: str
    path: tuple[str, ...]  # OU names below OU=Legado, outermost first
    unit: str | None  # the unit of desired_state/units.yaml it stands for (None: by department / none)
    kind: str
    weight: int  # share of the people (Usuarios only)
    extensions: tuple[int, int] = (0, 0)


PLACES = [
    Place("hgc", ("Usuarios", "Hospital General Cuernavaca"), "HG-CUERNAVACA", "hospital", 13, (2000, 2699)),
    Place("hgc-enf", ("Usuarios", "Hospital General Cuernavaca", "Enfermería"), "HG-CUERNAVACA", "enfermeria", 6,
          (2700, 2899)),
    Place("hgc-urg", ("Usuarios", "Hospital General Cuernavaca", "Urgencias"), "HG-CUERNAVACA", "urgencias", 4,
          (2900, 2999)),
    Place("hgcua", ("Usuarios", "HOSPITAL GENERAL CUAUTLA"), "HG-CUAUTLA", "hospital", 14, (3000, 3999)),
    Place("hgj", ("Usuarios", "Hosp. Gral. Jojutla"), "HG-JOJUTLA", "hospital", 10, (4000, 4999)),
    Place("jsi", ("Usuarios", "Jurisdiccion I"), "JS-I", "jurisdiccion", 5, (5000, 5199)),
    Place("cstem", ("Usuarios", "Jurisdiccion I", "CS Temixco"), "CS-TEMIXCO", "cs", 5, (5200, 5399)),
    Place("csjiu", ("Usuarios", "Centro de Salud Jiutepec"), "CS-JIUTEPEC", "cs", 6, (5400, 5599)),
    Place("csyau", ("Usuarios", "C.S. Yautepec"), "CS-YAUTEPEC", "cs", 5, (5600, 5799)),
    Place("lesp", ("Usuarios", "Laboratorio Estatal"), "LESP", "lesp", 6, (6000, 6499)),
    Place("oc", ("Usuarios", "Oficinas Centrales"), None, "oc", 6, (7800, 7999)),
    Place("oc-da", ("Usuarios", "Oficinas Centrales", "Administración"), "OC-DA", "oc-da", 8, (7000, 7399)),
    Place("oc-dgpe", ("Usuarios", "Oficinas Centrales", "Planeación"), "OC-DGPE", "oc-dgpe", 7, (7400, 7799)),
]
VARIOS = Place("varios", ("Varios",), None, "varios", 0)
SERVICIOS = ("Servicios",)
GRUPOS = ("Grupos",)  # the entitlements' groups: an AD target's groups OU (every membership managed)
OTROS_GRUPOS = ("Otros Grupos",)  # every other group made by hand
# People sitting directly in OU=Oficinas Centrales: only `department` says which dirección
# (hand-typed: case, accents and spacing vary, which a folded comparison ignores).
OC_DEPARTMENTS = {
    "OC-DA": ["Dirección de Administración", "Direccion de Administracion", "DIRECCIÓN DE ADMINISTRACIÓN",
              "Dirección de  Administración"],
    "OC-DGPE": ["Dirección General de Planeación y Evaluación", "Direccion General de Planeacion y Evaluacion",
                "DIRECCIÓN GENERAL DE PLANEACIÓN Y EVALUACIÓN"],
}

GIVEN_M = ["José", "Juan", "Luis", "Carlos", "Jorge", "Miguel Ángel", "José Luis", "Juan Carlos", "Francisco",
           "Jesús", "Alejandro", "Ricardo", "Fernando", "Roberto", "Eduardo", "Sergio", "Raúl", "Óscar",
           "Víctor Hugo", "Héctor", "Martín", "Rubén", "Andrés", "Iván", "Efraín", "Ángel", "Gerardo", "Arturo",
           "Ramón", "Joaquín", "Tomás", "Agustín", "Julián", "Nicolás", "Sebastián", "Emiliano", "Rodrigo",
           "Mauricio", "Adrián", "Benjamín", "Cuauhtémoc", "Moisés", "Noé", "Saúl", "Germán", "Íñigo", "Juan Pablo",
           "Jesús Manuel", "Marco Antonio", "Félix"]
GIVEN_F = ["María", "Guadalupe", "María Guadalupe", "Ana María", "Verónica", "Leticia", "Patricia", "Rocío",
           "Mónica", "Begoña", "Sofía", "Lucía", "Ximena", "Itzel", "Citlali", "Xóchitl", "Araceli", "Beatriz",
           "Inés", "Irene", "Mariana", "Daniela", "Fernanda", "Gabriela", "Adriana", "Claudia", "Norma", "Alejandra",
           "Rosa María", "María José", "Ana Lucía", "Dolores", "Concepción", "Noemí", "Raquel", "Yolanda", "Zoé",
           "Nayeli", "Maricruz", "Elena", "Mireya", "Marisol", "Jazmín", "María de los Ángeles", "Pilar", "Susana",
           "Judith", "Eugenia", "Ma. Teresa", "Iñiga"]
SURNAMES = ["Hernández", "García", "Martínez", "López", "González", "Pérez", "Rodríguez", "Sánchez", "Ramírez",
            "Cruz", "Flores", "Gómez", "Morales", "Vázquez", "Jiménez", "Reyes", "Díaz", "Torres", "Gutiérrez",
            "Ruiz", "Mendoza", "Aguilar", "Ortiz", "Castillo", "Moreno", "Romero", "Álvarez", "Chávez", "Rivera",
            "Ramos", "Domínguez", "Herrera", "Medina", "Castro", "Vargas", "Guzmán", "Velázquez", "Muñoz", "Rojas",
            "Salazar", "Núñez", "Ibáñez", "Peña", "Ordóñez", "Villaseñor", "Carreño", "Bahena", "Ocampo", "Nava",
            "Solís", "Sotelo", "Xicoténcatl", "Quintero", "Trujillo", "Estrada", "Aragón", "Zúñiga", "Patiño",
            "Muñiz", "Güemes", "Argüelles", "Agüero", "Sigüenza", "Nuño", "Montaño", "Ávila", "Escobar", "Beltrán",
            "Valdés", "Saldaña", "De la Cruz", "Del Valle", "De la Rosa", "De los Santos", "Del Río", "De León",
            "O'Brien", "O'Farrill", "D'Acosta", "Mac Gregor", "San Román", "Zavala", "Tapia", "Castañeda", "Ríos",
            "Treviño", "Urueña", "Cedeño", "Cisneros", "Maldonado"]
# Names whose round trip through LDIF, sam.ldb and LDAPS a test can check exactly.
CANARIES = [("José Luis", "Núñez", "O'Brien"), ("María de los Ángeles", "Peña", "Argüelles"),
            ("Begoña", "D'Acosta", "Güemes"), ("Juan Pablo", "De la Cruz", "Del Valle"),
            ("Íñigo", "Ibáñez", "Muñoz"), ("Xóchitl", "Zúñiga", None)]

TITLES = {
    "hospital": ["Médico General", "Médico Especialista en Medicina Interna", "Médica Especialista en Pediatría",
                 "Médico Residente", "Enfermera General", "Jefa de Enfermeras", "Químico Farmacobiólogo",
                 "Trabajadora Social", "Auxiliar Administrativo", "Camillero", "Técnico Radiólogo", "Nutrióloga",
                 "MEDICO GENERAL", "Aux. Administrativo"],
    "enfermeria": ["Enfermera General", "Jefa de Enfermeras", "Auxiliar de Enfermería", "Enfermero Especialista",
                   "ENFERMERA GENERAL"],
    "urgencias": ["Médico Especialista en Urgencias", "Médico General", "Enfermera General", "Paramédico",
                  "Médico Residente"],
    "cs": ["Médico General", "Enfermera General", "Promotor de Salud", "Promotora de Salud", "Odontóloga",
           "Trabajadora Social", "Responsable de Unidad"],
    "jurisdiccion": ["Epidemiólogo", "Verificador Sanitario", "Enlace Informático", "Auxiliar Administrativo",
                     "Jefe de Jurisdicción", "Promotor de Salud"],
    "lesp": ["Químico Farmacobiólogo", "Técnico Laboratorista", "Responsable de Toxicología", "Químico Analista"],
    "oc": ["Secretaria", "Asesor", "Chofer", "Auxiliar Administrativo", "Analista", "Secretaria Particular"],
    "oc-da": ["Contador", "Auxiliar Administrativo", "Jefe de Recursos Humanos", "Analista de Nómina", "Secretaria",
              "Auxiliar Contable"],
    "oc-dgpe": ["Analista de Sistemas", "Soporte Técnico", "Estadígrafo", "Jefe del Departamento de Informática",
                "Analista de Información"],
    "varios": ["Becario", "Prestador de Servicio Social", "Consultor Externo", "Practicante", "Auditor Externo"],
}
DEPARTMENTS = {
    "hgc": ["Admisión", "Medicina Interna", "Pediatría", "Laboratorio Clínico", "Consulta Externa", "Admision",
            "MEDICINA INTERNA"],
    "hgc-enf": ["Enfermería", "ENFERMERIA", "Enfermeria"],
    "hgc-urg": ["Urgencias", "URGENCIAS"],
    "hgcua": ["ADMISION", "MEDICINA INTERNA", "PEDIATRIA", "LABORATORIO CLINICO", "URGENCIAS", "ENFERMERIA"],
    "hgj": ["Admisión", "Medicina Interna", "Laboratorio Clínico", "Urgencias", "Enfermería", "Pediatria"],
    "jsi": ["Epidemiología", "Vigilancia Sanitaria", "Enlace Informático", "Jurisdicción Sanitaria I"],
    "cstem": ["Consulta Externa", "Medicina Preventiva", "Enfermería"],
    "csjiu": ["Consulta Externa", "Medicina Preventiva", "Enfermería", "CONSULTA EXTERNA"],
    "csyau": ["Consulta Externa", "Medicina Preventiva", "Enfermeria"],
    "lesp": ["Toxicología", "Microbiología", "Recepción de Muestras"],
    "oc-da": ["Recursos Humanos", "Recursos Materiales", "Contabilidad", "Nómina"],
    "oc-dgpe": ["Departamento de Informática", "Departamento de Estadística", "Evaluación"],
    "varios": ["Servicio Social", "Externo"],
}
COMPANY = {
    "hospital": ["Dirección de Atención Médica", "DIRECCION DE ATENCION MEDICA", "Dir. de Atención Médica"],
    "enfermeria": ["Dirección de Atención Médica"], "urgencias": ["Dirección de Atención Médica"],
    "cs": ["Dirección de Atención Médica", "Direccion de Atencion Medica"],
    "jurisdiccion": ["Dirección de Atención Médica"],
    "lesp": ["Dirección de Protección contra Riesgos Sanitarios"],
    "oc": ["Servicios de Salud de Morelos"],
    "oc-da": ["Dirección de Administración", "DIRECCION DE ADMINISTRACION"],
    "oc-dgpe": ["Dirección General de Planeación y Evaluación"],
    "varios": ["Servicios de Salud de Morelos"],
}
# Groups.  The entitlement groups of desired_state/entitlements.yaml by name (entitlement key
# alongside, for the manifest); the rest lead to one through nesting, or to none.
ENTITLEMENT_GROUPS = {"GG-Internet": "internet", "GG-Correo": "correo",
                      "GG-SIEMPRE-Usuarios": "expediente_electronico", "GG-SINBA-Captura": "sinba",
                      "GG-Archivos-Compartidos": "carpetas_compartidas", "GG-VPN-Remoto": "vpn",
                      "GG-TI-Administradores": "admin_ti"}
GROUP_DEFS = [  # name, groupType, description, parent groups (nesting)
    ("GG-Internet", -2147483646, "Navegación en Internet", []),
    ("GG-Correo", -2147483646, "Usuarios de correo institucional", []),
    ("GG-SIEMPRE-Usuarios", -2147483646, "Acceso al SIEMPRE", []),
    ("GG-SINBA-Captura", -2147483646, "Capturistas SINBA", []),
    ("GG-Archivos-Compartidos", -2147483646, "Carpetas compartidas \\\\fs01", []),
    ("GG-VPN-Remoto", -2147483646, "VPN (autorizado por la Subdirección de TI)", []),
    ("GG-TI-Administradores", -2147483646, "Administradores de TI", []),
    ("Internet-Enfermeria", -2147483646, "Internet para enfermería (HGC)", ["GG-Internet"]),
    ("Internet-Urgencias", -2147483646, "Internet urgencias", ["GG-Internet"]),
    ("Internet-Administrativos", -2147483646, "Internet personal administrativo", ["GG-Internet"]),
    ("Correo-Oficinas-Centrales", -2147483646, "Correo OC", ["GG-Correo"]),
    ("SIEMPRE-Medicos-HGC", -2147483646, "Médicos del HGC en el SIEMPRE", ["GG-SIEMPRE-Usuarios"]),
    ("SIEMPRE-Residentes", -2147483646, "Residentes (rotación)", ["SIEMPRE-Medicos-HGC"]),
    ("Archivos-Planeacion", -2147483646, "Carpeta de Planeación", ["GG-Archivos-Compartidos"]),
    ("Impresoras-Piso2", -2147483646, "Impresoras del 2o piso", []),
    ("Compartida-Contabilidad", -2147483646, "Carpeta de contabilidad (no borrar)", []),
    ("Wifi-Invitados", -2147483644, "Red inalámbrica de invitados", []),
    ("Antiguo-Expediente-2015", -2147483646, "Sistema de expediente anterior (ya no se usa)", []),
    ("Lista-Directores", 2, "Lista de distribución de directores", ["Lista-Jefes"]),
    ("Lista-Jefes", 2, "Lista de distribución de jefes", ["Lista-Directores"]),  # a cycle, made by hand
]
SERVICES = [  # sAMAccountName (a digit is added if it is taken outside OU=Legado), description, uac, groups
    ("svc.respaldo", "Respaldo nocturno (no borrar)", 66048, []),
    ("svc_escaner", "Escáner multifuncional piso 2 (scan to folder)", 66048, ["Impresoras-Piso2"]),
    ("svc.sqlsiempre", "SQL Server del SIEMPRE", 66048, []),
    ("svc_sinba", "Interfaz con SINBA", 66048, ["GG-SINBA-Captura"]),
    ("svc.eset", "Consola del antivirus", 66048, []),
    ("svc_nomina", "Sistema de nómina", 66048, []),
    ("svc.printsrv", "Servidor de impresión", 66048, ["Impresoras-Piso2"]),
    ("adm.mesaayuda", "Administración - mesa de ayuda", 512, ["GG-TI-Administradores"]),
    ("adm.telecom", "Administración de redes y telefonía", 512, ["GG-TI-Administradores", "GG-VPN-Remoto"]),
    ("adm.respaldos", "Administración de respaldos", 512, []),
]
ORPHAN_ADDRESSES = ["contabilidad.hgc", "direccion.cuautla", "farmacia.jojutla", "capacitacion.js1",
                    "residentes.2019", "enfermeria.turno.noche", "m.garcia.baja", "congreso.2018", "calidad.hgc",
                    "archivo.clinico", "vacunacion.temixco", "j.hernandez.ant"]

# -- small helpers ------------------------------------------------------------------------------


def fold(text: str) -> str:
    """'Ñúñez O'Brien' -> 'nunez o'brien': no accents, lower case."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)).lower()


def strip_accents(text: str, keep_enye: bool = False) -> str:
    out = []
    for ch in text:
        if keep_enye and ch in "ñÑ":
            out.append(ch)
        else:
            out.append("".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c)))
    return "".join(out)


def letters(text: str) -> str:
    return re.sub(r"[^a-z]", "", fold(text))


def escape_rdn(value: str) -> str:
    """RFC 4514 escaping of one RDN value."""
    out = []
    for i, ch in enumerate(value):
        if ch in ',+"\\<>;=' or (ch == "#" and i == 0) or (ch == " " and i in (0, len(value) - 1)):
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def split_dn(dn: str) -> list[str]:
    """RDNs as written (escapes kept): split on unescaped commas."""
    parts, buf, escaped = [], [], False
    for ch in dn:
        if escaped:
            buf.append(ch)
            escaped = False
        elif ch == "\\":
            buf.append(ch)
            escaped = True
        elif ch == ",":
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    parts.append("".join(buf))
    return parts


def norm_dn(dn: str) -> str:
    """A comparable form: RDNs unescaped, case-folded, attribute names lower case."""
    out = []
    for rdn in split_dn(dn):
        attr, _, value = rdn.partition("=")
        value = re.sub(r"\\([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), value)
        value = re.sub(r"\\(.)", r"\1", value)
        out.append(f"{attr.strip().lower()}={value.strip().casefold()}")
    return ",".join(out)


def ldif_line(name: str, value: str) -> str:
    """RFC 2849: base64 for anything beyond printable ASCII or starting with space, ':' or '<'."""
    if value and value.isascii() and value.isprintable() and value[0] not in " :<" and value[-1] != " ":
        return f"{name}: {value}"
    return f"{name}:: {base64.b64encode(value.encode('utf-8')).decode('ascii')}"


EPOCH_1601 = dt.datetime(1601, 1, 1, tzinfo=dt.timezone.utc)


def filetime(when: dt.datetime) -> int:
    delta = when - EPOCH_1601
    return (delta.days * 86400 + delta.seconds) * 10_000_000 + delta.microseconds * 10


def from_filetime(value: int) -> dt.datetime:
    return EPOCH_1601 + dt.timedelta(microseconds=value // 10)


def md4(data: bytes) -> bytes:
    """MD4 (RFC 1320), for the NT hash: OpenSSL 3 no longer offers it to hashlib."""
    def rol(v: int, s: int) -> int:
        v &= 0xFFFFFFFF
        return ((v << s) | (v >> (32 - s))) & 0xFFFFFFFF

    msg = bytearray(data) + b"\x80"
    while len(msg) % 64 != 56:
        msg.append(0)
    msg += struct.pack("<Q", len(data) * 8)
    a, b, c, d = 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476
    for off in range(0, len(msg), 64):
        x = struct.unpack("<16I", msg[off:off + 64])
        aa, bb, cc, dd = a, b, c, d
        for i in (0, 4, 8, 12):
            a = rol(a + ((b & c) | (~b & d)) + x[i], 3)
            d = rol(d + ((a & b) | (~a & c)) + x[i + 1], 7)
            c = rol(c + ((d & a) | (~d & b)) + x[i + 2], 11)
            b = rol(b + ((c & d) | (~c & a)) + x[i + 3], 19)
        for i in (0, 1, 2, 3):
            a = rol(a + ((b & c) | (b & d) | (c & d)) + x[i] + 0x5A827999, 3)
            d = rol(d + ((a & b) | (a & c) | (b & c)) + x[i + 4] + 0x5A827999, 5)
            c = rol(c + ((d & a) | (d & b) | (a & b)) + x[i + 8] + 0x5A827999, 9)
            b = rol(b + ((c & d) | (c & a) | (d & a)) + x[i + 12] + 0x5A827999, 13)
        for i in (0, 2, 1, 3):
            a = rol(a + (b ^ c ^ d) + x[i] + 0x6ED9EBA1, 3)
            d = rol(d + (a ^ b ^ c) + x[i + 8] + 0x6ED9EBA1, 9)
            c = rol(c + (d ^ a ^ b) + x[i + 4] + 0x6ED9EBA1, 11)
            b = rol(b + (c ^ d ^ a) + x[i + 12] + 0x6ED9EBA1, 15)
        a, b, c, d = (a + aa) & 0xFFFFFFFF, (b + bb) & 0xFFFFFFFF, (c + cc) & 0xFFFFFFFF, (d + dd) & 0xFFFFFFFF
    return struct.pack("<4I", a, b, c, d)


assert md4(b"abc").hex() == "a448017aaf21d8525fc10ae87aa6729d"


def random_password() -> str:
    return f"Lg-{secrets.token_urlsafe(12)}-{secrets.randbelow(90) + 10}a"


def excluded(sam: str) -> bool:
    return any(fnmatch.fnmatchcase(sam.casefold(), p) for p in EXCLUDE)


# -- Samba's tools --------------------------------------------------------------------------------


class Samba:
    """ldbsearch/ldbmodify against the DC's sam.ldb (through Samba's module stack, as samba-tool)."""

    def __init__(self, url: str):
        self.url = url

    def _run(self, args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(args, input=stdin, capture_output=True, text=True, encoding="utf-8")

    def search(self, base: str, query: str, attrs: list[str], scope: str = "sub",
               controls: str | None = None) -> list[dict]:
        args = ["ldbsearch", "-H", self.url, "-b", base, "-s", scope]
        if controls:
            args.append(f"--controls={controls}")
        proc = self._run(args + [query] + attrs)
        if proc.returncode == 32 or "No such Base DN" in proc.stderr:
            return []
        if proc.returncode != 0:
            raise SystemExit(f"ldbsearch under {base} failed ({proc.returncode}): {proc.stderr.strip()}")
        return parse_ldif(proc.stdout)

    def modify(self, ldif_path: Path, controls: list[str]) -> str:
        args = ["ldbmodify", "-H", self.url]
        if controls:
            args.append("--controls=" + ",".join(controls))
        proc = self._run(args + [str(ldif_path)])
        if proc.returncode != 0:
            raise SystemExit(f"ldbmodify failed ({proc.returncode}); nothing of it was written "
                             f"(one transaction):\n{proc.stderr.strip()}\n{proc.stdout.strip()[-2000:]}")
        return proc.stdout.strip()


def parse_ldif(text: str) -> list[dict]:
    """ldbsearch's output: [{'dn': ..., attr(lower): [values]}]; referrals and comments skipped."""
    entries, current, last = [], None, None
    lines = text.split("\n")
    unfolded: list[str] = []
    for line in lines:
        if line.startswith(" ") and unfolded:
            unfolded[-1] += line[1:]
        else:
            unfolded.append(line)
    for line in unfolded + [""]:
        if not line.strip():
            if current is not None and "dn" in current:
                entries.append(current)
            current, last = None, None
            continue
        if line.startswith("#") or line.startswith("ref:"):
            continue
        name, sep, rest = line.partition(":")
        if not sep:
            continue
        if rest.startswith(":"):
            value = base64.b64decode(rest[1:].strip()).decode("utf-8", "replace")
        else:
            value = rest[1:] if rest.startswith(" ") else rest
        if current is None:
            current = {}
        if name.lower() == "dn":
            current["dn"] = value
        else:
            current.setdefault(name.lower(), []).append(value)
        last = name
    del last
    return entries


# -- the plan -----------------------------------------------------------------------------------


@dataclass
class Account:
    dn: str
    parent: str
    cn: str
    sam: str
    kind: str  # person | service
    place: str  # Place.key, or "servicios"
    unit: str | None  # the unit the proposed mapping gives it (None: outside every unit)
    problem: str | None = None
    attrs: dict = field(default_factory=dict)  # LDAP attribute -> str (one value)
    enabled: bool = True
    uac: int = 512
    last_logon_days: float | None = None
    pwd_days: float | None = None  # None: pwdLastSet 0 (must change at next logon)
    groups: list[str] = field(default_factory=list)  # direct groups, by name
    mail: str | None = None  # as in the AD `mail` attribute
    mailbox: str | None = None  # the registry address (lower case)
    extension: str | None = None
    missing: list[str] = field(default_factory=list)  # incomplete: the people-schema fields it lacks
    same_person_as: str | None = None  # duplicate_key: the other account, when it is the same person
    canary: bool = False
    names: tuple | None = None  # (given names, first surname, second surname) as typed
    role: str = ""  # the plan's role: clean, disabled_recent, incomplete, a problem, service


class Planter:
    def __init__(self, people: int, seed: int, base: str, foreign: dict[str, set[str]], now: dt.datetime):
        self.n, self.seed, self.base, self.now = people, seed, base, now
        self.rng = random.Random(seed)
        self.spare = random.Random(seed * 7919 + 17)  # draws that replace names held outside OU=Legado
        self.root = f"OU=Legado,{base}"
        self.foreign = foreign
        self.sams: set[str] = set(foreign["sam"]) | set(RESERVED)  # casefolded, taken
        self.addresses: set[str] = {a for a in foreign["address"]} | {f"{r}@{DOMAIN}" for r in RESERVED}
        self.cns: set[str] = set()
        self.ous: list[str] = []
        self.accounts: list[Account] = []
        self.groups: dict[str, dict] = {}
        self.orphan_addresses: list[str] = []
        self.orphan_extensions: list[str] = []
        self.extensions_taken: set[str] = set()

    # -- names ---------------------------------------------------------------------------------
    def ou_dn(self, path: tuple[str, ...]) -> str:
        return ",".join(f"OU={escape_rdn(p)}" for p in reversed(path)) + "," + self.root

    def count(self, base: int) -> int:
        return max(1, round(base * self.n / 2000))

    def unique_cn(self, cn: str) -> str:
        candidate, n = cn, 1
        while candidate.casefold() in self.cns:
            n += 1
            candidate = f"{cn} {n}"
        self.cns.add(candidate.casefold())
        return candidate

    def take_sam(self, base: str, service: bool = False) -> str:
        base = base.strip("._")[:MAX_SAM].rstrip("._")
        candidate, n = base, 1
        while candidate.casefold() in self.sams or excluded(candidate) != service \
                or not ("." in candidate or "_" in candidate):
            n += 1
            candidate = base[:MAX_SAM - len(str(n))].rstrip("._") + str(n)
            if "." not in candidate and "_" not in candidate:
                candidate = (base[:MAX_SAM - len(str(n)) - 1].rstrip("._") + "_" + str(n))
        self.sams.add(candidate.casefold())
        self.addresses.add(f"{candidate}@{DOMAIN}".casefold())  # its UPN
        return candidate

    def sam_for(self, given: str, first: str, second: str | None, upper: bool) -> str:
        g, gi = letters(given.split()[0]), letters(given)[:1]
        f1, f2 = letters(first), letters(second or "")
        style = self.rng.choices(["g.f1", "gi.f1_f2i", "g_f1", "f1.g", "gi.f1.f2"], [35, 20, 15, 15, 15])[0]
        if style == "g.f1":
            sam = f"{g}.{f1}"
        elif style == "gi.f1_f2i":
            sam = f"{gi}.{f1}_{f2[:1]}" if f2 else f"{gi}.{f1}"
        elif style == "g_f1":
            sam = f"{g}_{f1}"
        elif style == "f1.g":
            sam = f"{f1}.{g}"
        else:
            sam = f"{gi}.{f1}.{f2}" if f2 else f"{gi}.{f1}"
        if len(sam) > MAX_SAM:
            sam = f"{gi}.{f1}"[:MAX_SAM]
        return self.take_sam(sam.upper() if upper else sam)

    def mail_for(self, acct: Account, given: str, first: str, second: str | None) -> str:
        g, gi = letters(given.split()[0]), letters(given)[:1]
        f1, f2 = letters(first), letters(second or "")
        sam = acct.sam.lower()
        options = [sam if sam[-1:].isalpha() else f"{g}.{f1}", f"{g}.{f1}.{f2}" if f2 else f"{g}.{f1}",
                   f"{f1}.{g}", f"{g}.{f1}{self.rng.randint(60, 99)}", f"{gi}.{f1}"]
        local = self.rng.choices(options, [45, 20, 15, 12, 8])[0]
        local, n = local.strip("."), 1
        candidate = local
        while f"{candidate}@{DOMAIN}" in self.addresses or candidate in RESERVED:
            n += 1
            candidate = f"{local}{n}"
        address = f"{candidate}@{DOMAIN}"
        self.addresses.add(address)
        return address

    def extension_for(self, place: Place) -> str:
        low, high = place.extensions
        for _ in range(50):
            number = str(self.rng.randint(low, high))
            if number not in self.extensions_taken:
                break
        else:  # the unit's range is full (a large --people): five digits
            number = str(self.rng.randint(10000, 99999))
            while number in self.extensions_taken:
                number = str(self.rng.randint(10000, 99999))
        self.extensions_taken.add(number)
        return number

    def phone(self) -> str:
        a, b = self.rng.randint(100, 399), self.rng.randint(0, 9999)
        form = self.rng.choice([f"777 {a} {b:04d}", f"777{a}{b:04d}", f"777-{a}-{b:04d}", f"+52 777 {a} {b:04d}",
                                f"777 {a} {b // 100:02d} {b % 100:02d}", f"01 777 {a} {b:04d}", f"(777) {a} {b:04d}"])
        if not PHONE.match(form):  # "(777) ..." is not a phone number to the people schema
            form = f"777 {a} {b:04d}"
        return form

    def keys(self) -> list[str]:
        """employeeIDs SSM-9ddddd in a seeded order; one held outside OU=Legado is redrawn."""
        pool = self.rng.sample(range(100000), self.n)
        out, seen = [], set()
        for number in pool:
            key = f"SSM-9{number:05d}"
            while key in self.foreign["key"] or key in seen:
                key = f"SSM-9{self.spare.randrange(100000):05d}"
            seen.add(key)
            out.append(key)
        return out

    # -- the plan ------------------------------------------------------------------------------
    def plan(self) -> None:
        rng = self.rng
        for path in [("Usuarios",), *(p.path for p in PLACES), VARIOS.path, SERVICIOS, GRUPOS, OTROS_GRUPOS]:
            dn = self.ou_dn(path)
            if dn not in self.ous:
                self.ous.append(dn)
        outside = self.count(12)
        managed = self.n - outside
        if managed < 40:
            raise SystemExit("--people must be at least 60 (every problem needs accounts of its own)")
        # People per place: the weights, largest remainders first.
        total = sum(p.weight for p in PLACES)
        shares = [(managed * p.weight / total, p) for p in PLACES]
        sizes = {p.key: int(s) for s, p in shares}
        for s, p in sorted(shares, key=lambda t: t[0] - int(t[0]), reverse=True)[:managed - sum(sizes.values())]:
            sizes[p.key] += 1
        places = [p for p in PLACES for _ in range(sizes[p.key])]
        rng.shuffle(places)
        # Roles: each planted problem on accounts of its own.
        roles = ["clean"] * managed
        want = [("no_employee_key", self.count(25)), ("dup_a", self.count(12)), ("dup_b", self.count(12)),
                ("disabled", self.count(30)), ("stale", self.count(40)), ("disabled_recent", self.count(15)),
                ("incomplete", self.count(20))]
        picks = rng.sample(range(managed), sum(n for _, n in want))
        i = 0
        for role, n in want:
            for index in picks[i:i + n]:
                roles[index] = role
            i += n
        keys = self.keys()
        people: list[tuple[Place, str]] = list(zip(places, roles)) + [(VARIOS, "outside_managed_ous")] * outside
        firsts: list[Account] = []  # dup_a accounts, in order, for their twins
        canaries = list(CANARIES)
        key_iter = iter(keys)
        for index, (place, role) in enumerate(people):
            acct = self.person(place, role, next(key_iter), canaries if role == "clean" else [], index)
            if role == "dup_a":
                firsts.append(acct)
            self.accounts.append(acct)
        # The second account of each duplicate pair takes the first's employeeID; half of them
        # are the same person twice (an account made again instead of found), the rest two people.
        seconds = [a for a in self.accounts if a.problem == "dup_b"]
        for n, (first, second) in enumerate(zip(firsts, seconds)):
            second.attrs["employeeID"] = first.attrs["employeeID"]
            if n % 2 == 0:
                self.retwin(second, first)
                second.same_person_as = first.dn
                first.same_person_as = second.dn
            first.problem = second.problem = "duplicate_key"
        self.services()
        self.plan_groups()
        self.plan_orphans()

    def person(self, place: Place, role: str, key: str, canaries: list, index: int) -> Account:
        rng = self.rng
        canary = None
        if canaries and place.kind in ("hospital", "oc-dgpe", "cs", "lesp") and rng.random() < 0.2:
            canary = canaries.pop(0)
        female = rng.random() < 0.5
        if canary:
            given, first, second = canary
        else:
            pool = GIVEN_F if female else GIVEN_M
            given = rng.choice(pool)
            if rng.random() < 0.2 and " " not in given:
                other = rng.choice(pool)
                if other != given and " " not in other:
                    given = f"{given} {other}"
            first = rng.choice(SURNAMES)
            second = rng.choice(SURNAMES) if rng.random() < 0.93 else None
            if second == first:
                second = rng.choice(SURNAMES)
        era = "modern" if canary else rng.choices(["modern", "upper", "plain"], [65, 15, 20])[0]
        sn = f"{first} {second}" if second else first
        if era == "upper":
            keep = rng.random() < 0.4
            display = strip_accents(f"{given} {sn}", keep_enye=keep).upper()
            if rng.random() < 0.5:
                given_attr, sn_attr = given.upper(), sn.upper()
            else:
                given_attr, sn_attr = given, sn
        elif era == "plain":
            display = strip_accents(f"{given} {sn}")
            given_attr, sn_attr = given, sn
        else:
            display = f"{given} {sn}" if rng.random() < 0.85 or canary else f"{sn} {given}"
            given_attr, sn_attr = given, sn
        cn_base = display if rng.random() < 0.8 or canary else f"{sn}, {given}"
        cn = self.unique_cn(cn_base)
        parent = self.ou_dn(place.path)
        dn = f"CN={escape_rdn(cn)},{parent}"
        sam = self.sam_for(given, first, second, upper=(era == "upper" and rng.random() < 0.7))
        unit = place.unit
        department = rng.choice(DEPARTMENTS.get(place.key, [""])) if place.key in DEPARTMENTS else ""
        if place.key == "oc":
            unit = rng.choice(["OC-DA", "OC-DGPE"])
            department = rng.choice(OC_DEPARTMENTS[unit])
        elif place.kind == "varios":
            unit = None
        acct = Account(dn=dn, parent=parent, cn=cn, sam=sam, kind="person", place=place.key, unit=unit,
                       canary=canary is not None)
        acct.attrs = {"givenName": given_attr, "sn": sn_attr, "displayName": display,
                      "userPrincipalName": f"{sam}@{DOMAIN}", "employeeID": key,
                      "title": rng.choice(TITLES[place.kind if place.kind in TITLES else "hospital"]),
                      "company": rng.choice(COMPANY[place.kind]), "telephoneNumber": self.phone()}
        if department and (rng.random() < 0.9 or place.key == "oc"):
            acct.attrs["department"] = department
        acct.names = (given, first, second)
        # The planted problem, and the times that go with it (days before the run).
        acct.problem = {"clean": None, "disabled_recent": "disabled_recently"}.get(role, role)
        acct.role = role
        recent = rng.uniform(0.2, 21)
        if role == "no_employee_key":
            del acct.attrs["employeeID"]
            acct.last_logon_days = recent
        elif role == "stale":
            acct.last_logon_days = rng.uniform(100, 900)
        elif role == "disabled":
            acct.enabled, acct.uac = False, 514
            acct.last_logon_days = rng.uniform(200, 1500)
            if rng.random() < 0.5:
                left = self.now - dt.timedelta(days=acct.last_logon_days - rng.uniform(0, 5))
                acct.attrs["description"] = rng.choice(["BAJA {d} renuncia", "Baja {d} - jubilación",
                                                        "BAJA {d} fin de contrato"]).format(d=left.strftime("%d/%m/%Y"))
        elif role == "disabled_recent":  # disabled weeks ago: a leave, a suspension or a baja
            acct.enabled, acct.uac = False, 514
            acct.last_logon_days = rng.uniform(20, 60)
            acct.attrs["description"] = "Licencia sin goce de sueldo"
        else:
            acct.last_logon_days = recent
        if role == "incomplete":
            what = rng.choices(["no_phone", "bad_phone", "no_title", "no_company"], [45, 20, 20, 15])[0]
            if what == "no_phone":
                del acct.attrs["telephoneNumber"]
                acct.missing = ["phone"]
            elif what == "bad_phone":
                acct.attrs["telephoneNumber"] = rng.choice(["(777) 311-2233", "Ext. 2201", "N/A", "sin número",
                                                            "(777)3124455"])
                acct.missing = ["phone"]
            elif what == "no_title":
                del acct.attrs["title"]
                acct.missing = ["title"]
            else:
                del acct.attrs["company"]
                acct.missing = ["direction"]
        if acct.enabled and role == "clean" and rng.random() < 0.05:
            acct.uac = 66048  # password never expires: set by hand for a few
        acct.pwd_days = (acct.last_logon_days or 0) + rng.uniform(0, 400)
        if role == "clean" and acct.enabled and rng.random() < 0.04:
            acct.pwd_days = None  # reset by the service desk: must change at next logon
        # Mailbox and extension: only for people the import keeps (a unique key, a unit).
        keeps = role in ("clean", "disabled_recent", "incomplete", "stale", "disabled")
        if keeps and rng.random() < 0.65:
            address = self.mail_for(acct, given, first, second)
            acct.mailbox = address
            r = rng.random()
            if r < 0.08:
                acct.mail = address.split("@")[0].title() + "@" + DOMAIN  # typed with capitals
            elif r < 0.11:
                acct.mail = address.upper()
            else:
                acct.mail = address
            acct.attrs["mail"] = acct.mail
        if keeps and rng.random() < 0.55:
            acct.extension = self.extension_for(place)
            acct.attrs["ipPhone"] = acct.extension
        return acct

    def retwin(self, second: Account, first: Account) -> None:
        """The second account of a pair becomes the same person as the first, made again by hand."""
        for name in ("givenName", "sn", "title", "company"):
            if name in first.attrs:
                second.attrs[name] = first.attrs[name]
        second.attrs["displayName"] = first.attrs["displayName"].upper() if self.rng.random() < 0.5 \
            else first.attrs["displayName"]
        self.cns.discard(second.cn.casefold())
        self.sams.discard(second.sam.casefold())
        self.addresses.discard(f"{second.sam}@{DOMAIN}".casefold())
        cn = self.unique_cn(first.cn)
        second.cn = cn
        second.dn = f"CN={escape_rdn(cn)},{second.parent}"
        base = first.sam.upper() if self.rng.random() < 0.5 else first.sam
        second.sam = self.take_sam(base if base.casefold() != first.sam.casefold() else base + "2")
        second.attrs["userPrincipalName"] = f"{second.sam}@{DOMAIN}"
        second.names = first.names

    def services(self) -> None:
        parent = self.ou_dn(SERVICIOS)
        for sam, description, uac, groups in SERVICES:
            sam = self.take_sam(sam, service=True)
            acct = Account(dn=f"CN={escape_rdn(sam)},{parent}", parent=parent, cn=sam, sam=sam, kind="service",
                           place="servicios", unit=None, problem="service", uac=uac,
                           last_logon_days=self.rng.uniform(0.01, 2), pwd_days=self.rng.uniform(900, 2500),
                           groups=list(groups))
            acct.attrs = {"userPrincipalName": f"{sam}@{DOMAIN}", "description": description,
                          "displayName": description}
            acct.role = "service"
            self.accounts.append(acct)

    def plan_groups(self) -> None:
        rng = self.rng
        for name, gtype, description, parents in GROUP_DEFS:
            parent = self.ou_dn(GRUPOS if name in ENTITLEMENT_GROUPS else OTROS_GRUPOS)
            sam = self.take_sam(name.replace("-", "_"))  # pre-Windows 2000 name: never the CN itself
            self.groups[name] = {"name": name, "dn": f"CN={escape_rdn(name)},{parent}", "sAMAccountName": sam,
                                 "groupType": gtype, "description": description, "parents": list(parents),
                                 "entitlement": ENTITLEMENT_GROUPS.get(name), "members": []}
        people = [a for a in self.accounts if a.kind == "person"]
        oc = ("oc", "oc-da", "oc-dgpe")
        for a in people:
            title = fold(a.attrs.get("title", ""))
            dept = fold(a.attrs.get("department", ""))
            g = a.groups
            if a.place == "hgc-enf":
                g.append("Internet-Enfermeria")  # GG-Internet only through the nested group
            elif a.place == "hgc-urg":
                g.append("Internet-Urgencias")
            elif a.place == "oc-da":
                g.append("Internet-Administrativos")
            elif rng.random() < 0.5:
                g.append("GG-Internet")
            if a.mailbox:
                g.append("Correo-Oficinas-Centrales" if a.place in oc else "GG-Correo")
            if a.place in ("hgc", "hgc-enf", "hgc-urg") and title.startswith("medico residente"):
                g.append("SIEMPRE-Residentes")
            elif a.place in ("hgc", "hgc-urg") and title.startswith("medic"):
                g.append("SIEMPRE-Medicos-HGC")
            elif a.place in ("hgc", "hgc-enf", "hgc-urg", "hgcua", "hgj") and rng.random() < 0.6:
                g.append("GG-SIEMPRE-Usuarios")
            if a.place in ("jsi", "cstem", "csjiu", "csyau") and rng.random() < 0.6:
                g.append("GG-SINBA-Captura")
            if a.place == "oc-dgpe":
                g.append("Archivos-Planeacion")
            elif a.place == "oc-da" and rng.random() < 0.5:
                g.append("GG-Archivos-Compartidos")
            if a.place in ("oc", "oc-da") and rng.random() < 0.4:
                g.append("Impresoras-Piso2")
            if a.place == "oc-da" and "contab" in dept:
                g.append("Compartida-Contabilidad")
            if a.role == "disabled" and rng.random() < 0.5:
                g.append("Antiguo-Expediente-2015")
            if title.startswith("jef") or title.startswith("responsable"):
                g.append("Lista-Jefes")
        informatica = [a for a in people if a.place == "oc-dgpe" and a.role == "clean"
                       and "informatica" in fold(a.attrs.get("department", ""))]
        for a in informatica[:max(1, len(informatica) // 3)]:
            a.groups.append("GG-VPN-Remoto")
        for a in informatica[:2]:
            a.groups.append("GG-TI-Administradores")
        heads = [a for a in people if a.role == "clean" and a.place in ("hgc", "hgcua", "hgj", "oc")]
        for a in heads[:self.count(6)]:
            a.groups.append("Lista-Directores")
        for a in self.accounts:
            seen = []
            for name in a.groups:
                if name not in seen:
                    seen.append(name)
                    self.groups[name]["members"].append(a.dn)
            a.groups = seen

    def plan_orphans(self) -> None:
        pool = [f"{local}@{DOMAIN}" for local in ORPHAN_ADDRESSES if f"{local}@{DOMAIN}" not in self.addresses]
        self.orphan_addresses = self.rng.sample(pool, min(len(pool), self.count(6)))
        self.addresses.update(self.orphan_addresses)
        for _ in range(self.count(7)):
            place = self.rng.choice(PLACES)
            self.orphan_extensions.append(self.extension_for(place))

    # -- derived views -------------------------------------------------------------------------
    def entitlements(self, acct: Account) -> list[str]:
        seen, todo, found = set(), list(acct.groups), set()
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            if ENTITLEMENT_GROUPS.get(name):
                found.add(ENTITLEMENT_GROUPS[name])
            todo += self.groups[name]["parents"]
        return sorted(found)

    def leads_to_entitlement(self, name: str) -> bool:
        seen, todo = set(), [name]
        while todo:
            n = todo.pop()
            if n in seen:
                continue
            seen.add(n)
            if n in ENTITLEMENT_GROUPS:
                return True
            todo += self.groups[n]["parents"]
        return False

    def imported(self, acct: Account) -> bool:
        """Would become a declared person: a person with a unique key and a unit."""
        return acct.kind == "person" and acct.problem not in ("no_employee_key", "duplicate_key",
                                                              "outside_managed_ous")

    # -- the LDIF --------------------------------------------------------------------------------
    def ldif(self, passwords: str) -> str:
        out: list[str] = []

        def record(dn: str, lines: list[str]) -> None:
            out.append("\n".join([ldif_line("dn", dn), "changetype: add", *lines]) + "\n")

        record(self.root, ["objectClass: organizationalUnit",
                           ldif_line("description", "Directorio heredado (ci/lab/legacy_seed.py)")])
        for dn in self.ous:
            record(dn, ["objectClass: organizationalUnit"])
        now = self.now
        for a in self.accounts:
            lines = ["objectClass: user", ldif_line("sAMAccountName", a.sam), f"userAccountControl: {a.uac}"]
            for name, value in a.attrs.items():
                if value:
                    lines.append(ldif_line(name, value))
            if a.last_logon_days is not None:
                stamp = filetime(now - dt.timedelta(days=a.last_logon_days))
                lines += [f"lastLogonTimestamp: {stamp}", f"lastLogon: {stamp}",
                          f"logonCount: {1 + int(a.last_logon_days * 7) % 3000}"]
            password = random_password()
            if passwords == "nthash":
                nt = md4(password.encode("utf-16-le"))
                lines.append(f"unicodePwd:: {base64.b64encode(nt).decode('ascii')}")
                pwd = 0 if a.pwd_days is None else filetime(now - dt.timedelta(days=a.pwd_days))
                lines.append(f"pwdLastSet: {pwd}")
            else:
                quoted = f'"{password}"'.encode("utf-16-le")
                lines.append(f"unicodePwd:: {base64.b64encode(quoted).decode('ascii')}")
                if a.pwd_days is None:
                    lines.append("pwdLastSet: 0")
            record(a.dn, lines)
        # Groups: children before the groups they are in (member must name existing objects);
        # the one cycle is closed with a modify at the end.
        order, placed = [], set()

        def place(name: str, stack: tuple = ()) -> None:
            if name in placed or name in stack:
                return
            for child, g in self.groups.items():
                if name in g["parents"] and child not in stack:
                    place(child, stack + (name,))
            if name not in placed:
                placed.add(name)
                order.append(name)

        for name in self.groups:
            place(name)
        closing: list[tuple[str, str]] = []
        added: set[str] = set()
        for name in order:
            g = self.groups[name]
            members = list(g["members"])
            for child, cg in self.groups.items():
                if name in cg["parents"]:
                    if child in added:
                        members.append(cg["dn"])
                    else:
                        closing.append((name, cg["dn"]))
            lines = ["objectClass: group", ldif_line("sAMAccountName", g["sAMAccountName"]),
                     f"groupType: {g['groupType']}", ldif_line("description", g["description"])]
            lines += [ldif_line("member", m) for m in members]
            record(g["dn"], lines)
            added.add(name)
        for name, member in closing:
            out.append("\n".join([ldif_line("dn", self.groups[name]["dn"]), "changetype: modify", "add: member",
                                  ldif_line("member", member), "-"]) + "\n")
        return "\n".join(out)

    # -- the files -------------------------------------------------------------------------------
    def registry_text(self) -> str:
        rng = random.Random(self.seed + 1)
        lines = ["# Buzones dados de alta a mano (servidor de correo anterior).",
                 "# Formato: direccion::::comentario:home::userdb_quota_rule=*:storage=CUOTA", ""]
        entries = []
        for a in self.accounts:
            if not a.mailbox:
                continue
            entries.append((a.mailbox, a))
        for address in self.orphan_addresses:
            entries.append((address, None))
        rng.shuffle(entries)
        for address, a in entries:
            local = address.split("@")[0]
            if a is not None and rng.random() < 0.6:
                gecos = strip_accents(a.attrs["displayName"]).replace(":", " ")
                gecos = f"{gecos} - {a.place.upper()}"
            elif a is None:
                gecos = rng.choice(["buzon de area", "ya no se usa?", "", "NO BORRAR"])
            else:
                gecos = ""
            home = f"/srv/vmail/{DOMAIN}/{local}" if rng.random() < 0.7 else ""
            quota = rng.choices(["1G", "2G", "500M", ""], [60, 20, 10, 10])[0]
            extra = f"userdb_quota_rule=*:storage={quota}" if quota else ""
            lines.append(f"{address}::::{gecos}:{home}::{extra}")
        return "\n".join(lines) + "\n"

    def subscribers(self) -> list[tuple[str, str, str]]:
        rows = []
        for a in self.accounts:
            if a.extension:
                rows.append(a.extension)
        rows += self.orphan_extensions
        random.Random(self.seed + 2).shuffle(rows)
        out = []
        for number in rows:
            secret = secrets.token_hex(16)  # random, written nowhere
            ha1 = hashlib.md5(f"{number}:{DOMAIN}:{secret}".encode()).hexdigest()
            ha1b = hashlib.md5(f"{number}@{DOMAIN}:{DOMAIN}:{secret}".encode()).hexdigest()
            out.append((number, ha1, ha1b))
        return out

    # -- the manifest ----------------------------------------------------------------------------
    def manifest(self, args, files: dict, timings: dict) -> dict:
        now = self.now

        def stamp(a: Account) -> int | None:
            return None if a.last_logon_days is None else filetime(now - dt.timedelta(days=a.last_logon_days))

        def obj(a: Account, **extra) -> dict:
            item = {"dn": a.dn, "sAMAccountName": a.sam, "employeeID": a.attrs.get("employeeID")}
            item.update(extra)
            return item

        people = [a for a in self.accounts if a.kind == "person"]
        problems: dict[str, list] = {k: [] for k in (
            "no_employee_key", "duplicate_key", "disabled", "disabled_recently", "stale", "outside_managed_ous",
            "service", "incomplete",
            "mailbox_without_owner", "extension_without_owner", "unmapped_group")}
        duplicate_keys: dict[str, list[str]] = {}
        for a in self.accounts:
            if a.problem == "duplicate_key":
                problems["duplicate_key"].append(obj(a, same_person=a.same_person_as is not None))
                duplicate_keys.setdefault(a.attrs["employeeID"], []).append(a.dn)
            elif a.problem in ("disabled", "disabled_recently", "stale"):
                problems[a.problem].append(obj(a, lastLogonTimestamp=stamp(a),
                                               days_since_logon=int(a.last_logon_days or 0)))
            elif a.problem == "incomplete":
                problems["incomplete"].append(obj(a, missing=a.missing))
            elif a.problem:
                problems[a.problem].append(obj(a))
        problems["mailbox_without_owner"] = [{"address": x} for x in self.orphan_addresses]
        problems["extension_without_owner"] = [{"extension": x} for x in self.orphan_extensions]
        unmapped = sorted({g for a in people if self.imported(a) for g in a.groups
                           if not self.leads_to_entitlement(g)}, key=str.casefold)
        problems["unmapped_group"] = [{"group": g, "group_dn": self.groups[g]["dn"]} for g in unmapped]
        clean = [a for a in people if a.problem is None]
        counts = {
            "people_accounts": len(people), "service_accounts": sum(1 for a in self.accounts if a.kind == "service"),
            "groups": len(self.groups), "ous": len(self.ous) + 1,
            "people_with_password": len(people),  # every account has one (random, written nowhere)
            "people_must_change_password": sum(1 for a in people if a.pwd_days is None),  # pwdLastSet 0
            "people_disabled": sum(1 for a in people if not a.enabled),
            "mailboxes": sum(1 for a in self.accounts if a.mailbox) + len(self.orphan_addresses),
            "mailboxes_with_owner": sum(1 for a in self.accounts if a.mailbox),
            "extensions": sum(1 for a in self.accounts if a.extension) + len(self.orphan_extensions),
            "extensions_with_owner": sum(1 for a in self.accounts if a.extension),
            "imported_people": sum(1 for a in people if self.imported(a)),
            "problems": {k: len(v) for k, v in problems.items()},
            "duplicate_keys": len(duplicate_keys),
            "clean": len(clean),
        }
        root = self.root
        return {
            "generator": "ci/lab/legacy_seed.py",
            "seed": args.seed, "people": args.people, "passwords": args.passwords,
            "generated_at": now.isoformat(timespec="seconds"), "generated_at_filetime": filetime(now),
            "domain": DOMAIN, "base_dn": self.base, "root": root,
            "search_bases": [f"OU=Usuarios,{root}", f"OU=Varios,{root}", f"OU=Servicios,{root}"],
            "bases": {"people": f"OU=Usuarios,{root}", "outside": f"OU=Varios,{root}",
                      "services": f"OU=Servicios,{root}", "groups": f"OU=Grupos,{root}",
                      "other_groups": f"OU=Otros Grupos,{root}"},
            "ous": [root] + self.ous,
            "files": files,
            "rules": {
                "people_account": "objectCategory=person, objectClass=user under OU=Usuarios or OU=Varios",
                "service": f"sAMAccountName matches one of {list(EXCLUDE)} (fnmatch, any case); all in OU=Servicios",
                "no_employee_key": "a person account without employeeID",
                "duplicate_key": "two person accounts with the same employeeID (both listed; duplicate_keys groups "
                                 "them); same_person: the second account repeats the first one's names",
                "disabled": f"userAccountControl has ACCOUNTDISABLE (0x2) and lastLogonTimestamp is more than "
                            f"{DISABLED_DAYS} days before now (planted 200-1500 days ago; every disabled account "
                            f"has one: whenChanged/whenCreated cannot be planted, Samba sets them)",
                "disabled_recently": f"userAccountControl has ACCOUNTDISABLE and lastLogonTimestamp is at most "
                                     f"{DISABLED_DAYS} days before now (planted 20-60 days ago): a leave, a "
                                     f"suspension or a recent baja",
                "stale": f"enabled, and lastLogonTimestamp more than {STALE_DAYS} days before now (planted "
                         f"100-900 days ago); every other account logged on 0.2-21 days before the run",
                "outside_managed_ous": "a person account under OU=Varios: no mapping rule names it",
                "incomplete": "imported, but a field the people schema requires is missing (title, company -> "
                              "direction, telephoneNumber -> phone) or telephoneNumber is not a phone number "
                              "(^\\+?[0-9][0-9 ()-]{6,24}$); `missing` names the field",
                "mailbox_without_owner": "a registry address that no account's mail carries (case-insensitive)",
                "extension_without_owner": "a subscriber username that no account's ipPhone carries",
                "unmapped_group": "a group an imported person is a direct member of that leads (through nesting) "
                                  "to no entitlement group; item 'group' is its name (CN)",
                "imported": "a person account with a unique employeeID and a unit: clean, incomplete, stale, "
                            "disabled and disabled_recently ones",
                "clean": "person accounts with no planted problem",
                "groups": "entitlement groups (same CN as in entitlements.yaml) in OU=Grupos; every other group in "
                          "OU=Otros Grupos; a group's sAMAccountName is its pre-Windows 2000 name (CN with '_' "
                          "for '-', cut at 20), never the CN, so the reconciler's own groups never clash",
                "overlaps": "none: each account carries at most one planted problem; service accounts have no "
                            "employeeID (they are listed only as service); disabled and stale accounts keep "
                            "their mailboxes and extensions and their groups",
                "lastLogon": "lastLogon equals lastLogonTimestamp on every account that has one",
            },
            "counts": counts,
            "problems": problems,
            "duplicate_keys": duplicate_keys,
            "clean": len(clean),
            "near_misses": {  # not problems: pwdLastSet 0 (reset by the service desk), recent logon
                "must_change_password": [obj(a) for a in people if a.pwd_days is None],
            },
            "canaries": [{"dn": a.dn, "cn": a.cn, "sAMAccountName": a.sam, "givenName": a.attrs["givenName"],
                          "sn": a.attrs["sn"], "displayName": a.attrs["displayName"]}
                         for a in people if a.canary],
            "mapping": proposed_mapping(root),
            "groups": [{"name": g["name"], "dn": g["dn"], "sAMAccountName": g["sAMAccountName"],
                        "entitlement": g["entitlement"], "leads_to_entitlement": self.leads_to_entitlement(n),
                        "member_of": g["parents"],
                        "members": g["members"] + [c["dn"] for c in self.groups.values() if n in c["parents"]]}
                       for n, g in self.groups.items()],
            "accounts": [{
                "dn": a.dn, "sAMAccountName": a.sam, "kind": a.kind, "employeeID": a.attrs.get("employeeID"),
                "unit": a.unit, "problem": a.problem, "enabled": a.enabled, "userAccountControl": a.uac,
                "lastLogonTimestamp": stamp(a),
                "pwdLastSet": None if a.pwd_days is None else filetime(now - dt.timedelta(days=a.pwd_days)),
                "mail": a.mail, "mailbox": a.mailbox, "extension": a.extension, "groups": a.groups,
                "entitlements": self.entitlements(a),
            } for a in self.accounts],
            "timings_s": timings,
        }


def proposed_mapping(root: str) -> dict:
    """The mapping this layout was made for (first match wins), in the import mapping's words."""
    units = []
    for place in sorted(PLACES, key=lambda p: -len(p.path)):  # nested OUs first
        dn = ",".join(f"OU={p}" for p in reversed(place.path)) + "," + root
        if place.unit:
            units.append({"ou": dn, "unit": place.unit})
    oc = f"OU=Oficinas Centrales,OU=Usuarios,{root}"
    units += [{"ou": oc, "attribute": "department", "equals": OC_DEPARTMENTS[u][0], "unit": u}
              for u in ("OC-DA", "OC-DGPE")]
    return {"search_bases": [f"OU=Usuarios,{root}", f"OU=Varios,{root}", f"OU=Servicios,{root}"],
            "units": units, "exclude": list(EXCLUDE), "stale_days": STALE_DAYS, "disabled_days": DISABLED_DAYS}


# -- the run -------------------------------------------------------------------------------------


def foreign_names(samba: Samba, base: str, root: str) -> dict[str, set[str]]:
    """Names and keys held outside OU=Legado, which the plan must not take."""
    out = {"sam": set(), "address": set(), "key": set()}
    suffix = norm_dn(root)
    for e in samba.search(base, "(|(objectClass=user)(objectClass=group)(employeeID=*))",
                          ["sAMAccountName", "userPrincipalName", "mail", "employeeID"]):
        dn = norm_dn(e["dn"])
        if dn == suffix or dn.endswith("," + suffix):
            continue
        out["sam"].update(v.casefold() for v in e.get("samaccountname", []))
        out["address"].update(v.casefold() for v in e.get("userprincipalname", []) + e.get("mail", []))
        out["key"].update(e.get("employeeid", []))
    return out


def remove(samba: Samba, root: str, work: Path) -> int:
    """The whole subtree, deepest first, then its tombstones (expunged: a re-run must not leave
    thousands of deleted objects behind in a shared lab).  One transaction."""
    found = samba.search(root, "(objectClass=*)", ["objectGUID", "objectClass"])
    if not found:
        return 0
    # Groups first: a group's deletion drops its links in one go, whereas deleting its members
    # one by one rewrites a group of a thousand members a thousand times (5x slower).
    found.sort(key=lambda e: ("group" not in [c.lower() for c in e.get("objectclass", [])],
                              -len(split_dn(e["dn"]))))
    guids = [e["objectguid"][0] for e in found]
    # Each object to a tombstone, and the tombstone expunged at once: the Deleted Objects
    # container and the indexes never hold more than one of ours (twice as fast).
    text = "".join(f"dn: <GUID={g}>\nchangetype: delete\n\ndn: <GUID={g}>\nchangetype: delete\n\n" for g in guids)
    path = work / "legacy-remove.ldif"
    path.write_text(text, encoding="utf-8")
    try:
        samba.modify(path, ["show_deleted:1", "relax:0"])
    finally:
        path.unlink(missing_ok=True)
    return len(guids)


def write_atomically(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


FALLBACK_SCHEMA = [  # Kamailio's auth_db tables, as ci/lab/phone-up creates them
    "CREATE TABLE version (table_name VARCHAR(32) NOT NULL, table_version INTEGER DEFAULT 0 NOT NULL, "
    "CONSTRAINT version_t_name_idx UNIQUE (table_name))",
    "CREATE TABLE subscriber (id INTEGER PRIMARY KEY NOT NULL, username VARCHAR(64) DEFAULT '' NOT NULL, "
    "domain VARCHAR(64) DEFAULT '' NOT NULL, password VARCHAR(64) DEFAULT '' NOT NULL, "
    "ha1 VARCHAR(128) DEFAULT '' NOT NULL, ha1b VARCHAR(128) DEFAULT '' NOT NULL, "
    "CONSTRAINT subscriber_account_idx UNIQUE (username, domain))",
    "CREATE INDEX subscriber_username_idx ON subscriber (username)",
]


def write_subscribers(path: Path, lab_db: Path, rows: list[tuple[str, str, str]]) -> None:
    """A Kamailio database with the lab's registrar schema (Kamailio's own tables only: the
    reconciler's bookkeeping tables are not part of a hand-made PBX)."""
    schema, versions = FALLBACK_SCHEMA, [("subscriber", 7)]
    if lab_db.exists():
        src = sqlite3.connect(f"file:{lab_db}?mode=ro", uri=True)
        try:
            got = [sql for (sql,) in src.execute(
                "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' "
                "AND tbl_name NOT LIKE 'reconciler_%' ORDER BY type DESC, rowid")]
            if got:
                schema = got
                versions = src.execute("SELECT table_name, table_version FROM version").fetchall()
        finally:
            src.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        conn = sqlite3.connect(tmp)
        with conn:
            for sql in schema:
                conn.execute(sql)
            conn.executemany("INSERT INTO version (table_name, table_version) VALUES (?, ?)", versions)
            conn.executemany("INSERT INTO subscriber (username, domain, password, ha1, ha1b) VALUES (?, ?, '', ?, ?)",
                             [(u, DOMAIN, h1, h1b) for u, h1, h1b in rows])
        conn.close()
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def verify(samba: Samba, planter: Planter, manifest: dict) -> list[str]:
    """Read back what was planted (and the files written) and apply the manifest's rules to it,
    as an import would: every problem's set must be the planted one."""
    root = planter.root
    attrs = ["sAMAccountName", "employeeID", "userAccountControl", "lastLogonTimestamp", "pwdLastSet", "givenName",
             "sn", "displayName", "title", "company", "telephoneNumber", "mail", "ipPhone", "memberOf"]
    got = {norm_dn(e["dn"]): e for e in samba.search(root, "(&(objectCategory=person)(objectClass=user))", attrs)}
    errors = []
    want = {norm_dn(a.dn): a for a in planter.accounts}
    if set(got) != set(want):
        errors.append(f"accounts: {len(got)} read, {len(want)} planted; "
                      f"e.g. missing {sorted(set(want) - set(got))[:3]}, extra {sorted(set(got) - set(want))[:3]}")
    now = planter.now
    found: dict[str, set[str]] = {k: set() for k in manifest["problems"]}
    by_key: dict[str, list[str]] = {}
    people_base, varios_base = norm_dn(f"OU=Usuarios,{root}"), norm_dn(f"OU=Varios,{root}")
    for k, e in got.items():
        one = lambda n: (e.get(n.lower()) or [None])[0]  # noqa: E731
        a = want.get(k)
        if a is not None:  # names round-trip; a password set shows in pwdLastSet; direct groups
            for name in ("givenName", "sn", "displayName"):
                if (a.attrs.get(name) or None) != one(name):
                    errors.append(f"{a.dn}: {name} {one(name)!r} != {a.attrs.get(name)!r}")
            if (a.pwd_days is not None) != (int(one("pwdLastSet") or 0) != 0):
                errors.append(f"{a.dn}: pwdLastSet {one('pwdLastSet')}")
            if {norm_dn(g) for g in e.get("memberof", [])} != {norm_dn(planter.groups[g]["dn"]) for g in a.groups}:
                errors.append(f"{a.dn}: memberOf differs")
        if excluded(one("sAMAccountName") or ""):
            found["service"].add(k)
        elif k.endswith("," + varios_base):
            found["outside_managed_ous"].add(k)
        elif not k.endswith("," + people_base):
            errors.append(f"{k}: a person outside OU=Usuarios and OU=Varios")
        elif not one("employeeID"):
            found["no_employee_key"].add(k)
        else:
            by_key.setdefault(one("employeeID"), []).append(k)
    imported = [k for dns in by_key.values() if len(dns) == 1 for k in dns]
    found["duplicate_key"] = {k for dns in by_key.values() if len(dns) > 1 for k in dns}
    for k in imported:
        e = got[k]
        one = lambda n: (e.get(n.lower()) or [None])[0]  # noqa: E731
        llt = int(one("lastLogonTimestamp") or 0)
        days = (now - from_filetime(llt)).days if llt else None
        if int(one("userAccountControl") or 0) & 2:
            found["disabled" if days is not None and days > DISABLED_DAYS else "disabled_recently"].add(k)
        elif days is not None and days > STALE_DAYS:
            found["stale"].add(k)
        if not all(one(n) for n in ("givenName", "sn", "title", "company", "telephoneNumber")) \
                or not PHONE.match(one("telephoneNumber") or ""):
            found["incomplete"].add(k)
    # Groups: the ones an imported person is directly in that lead to no entitlement group of
    # OU=Grupos (nesting read back from the groups' own memberOf).
    groups = {norm_dn(g["dn"]): g for g in samba.search(root, "(objectClass=group)", ["cn", "memberOf"])}
    if len(groups) != len(planter.groups):
        errors.append(f"groups: {len(groups)} read, {len(planter.groups)} planted")
    grants = {k for k, g in groups.items() if g["cn"][0] in ENTITLEMENT_GROUPS
              and k.endswith("," + norm_dn(f"OU=Grupos,{root}"))}

    def leads(k: str) -> bool:
        seen, todo = set(), [k]
        while todo:
            x = todo.pop()
            if x in seen:
                continue
            seen.add(x)
            if x in grants:
                return True
            todo += [norm_dn(p) for p in groups.get(x, {}).get("memberof", [])]
        return False

    found["unmapped_group"] = {groups[norm_dn(g)]["cn"][0] for k in imported for g in got[k].get("memberof", [])
                               if not leads(norm_dn(g))}
    if norm_dn(planter.groups["Internet-Enfermeria"]["dn"]) not in {
            norm_dn(m) for m in groups[norm_dn(planter.groups["GG-Internet"]["dn"])].get("memberof", [])} and \
            not leads(norm_dn(planter.groups["Internet-Enfermeria"]["dn"])):
        errors.append("Internet-Enfermeria does not lead to GG-Internet")
    # Mailboxes and extensions that no account carries, from the files as written.
    mails = {(got[k].get("mail") or [""])[0].casefold() for k in got}
    phones = {(got[k].get("ipphone") or [""])[0] for k in got}
    registry = Path(manifest["files"]["mail_registry"]).read_text(encoding="utf-8").splitlines()
    addresses = [line.split(":", 1)[0].lower() for line in registry if line.strip() and not line.startswith("#")]
    found["mailbox_without_owner"] = {a for a in addresses if a.casefold() not in mails}
    conn = sqlite3.connect(f"file:{manifest['files']['sip_database']}?mode=ro", uri=True)
    try:
        numbers = [u for (u,) in conn.execute("SELECT username FROM subscriber WHERE domain = ?", (DOMAIN,))]
    finally:
        conn.close()
    found["extension_without_owner"] = {n for n in numbers if n not in phones}
    for problem, items in manifest["problems"].items():
        planted = {norm_dn(x["dn"]) if "dn" in x else x.get("address") or x.get("extension") or x.get("group")
                   for x in items}
        if found[problem] != planted:
            errors.append(f"{problem}: the rule finds {len(found[problem])}, {len(planted)} planted (only found: "
                          f"{sorted(found[problem] - planted)[:2]}, only planted: {sorted(planted - found[problem])[:2]})")
    clean = len(got) - sum(len(found[p]) for p in found if p not in (
        "service", "mailbox_without_owner", "extension_without_owner", "unmapped_group")) - len(found["service"])
    if clean != manifest["clean"]:
        errors.append(f"clean: {clean} read back, {manifest['clean']} planted")
    return errors


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--people", type=int, default=2000, help="person accounts to plant (default 2000; at least 60)")
    p.add_argument("--seed", type=int, default=1, help="the seed: the same seed plants the same directory")
    p.add_argument("--lab-dir", type=Path, default=Path(os.environ.get("RECONCILER_LAB_DIR", "/var/lib/reconciler-lab")))
    p.add_argument("--out-dir", type=Path, help="where the mail registry, subscriber database and manifest go "
                                                 "(default LAB_DIR/legacy)")
    p.add_argument("--passwords", choices=["nthash", "samba"], default="nthash",
                   help="nthash: NT hashes through Samba's import control (fast, realistic pwdLastSet); "
                        "samba: Samba derives every key from a clear-text password (~30 ms per account)")
    p.add_argument("--remove", action="store_true", help="only remove what a previous run planted")
    p.add_argument("--no-verify", action="store_true", help="skip reading the plant back")
    args = p.parse_args()
    started = time.monotonic()
    timings: dict[str, float] = {}
    samdb = args.lab_dir / "samba" / "private" / "sam.ldb"
    if not samdb.exists():
        sys.exit(f"{samdb} not found: bring the lab up first (ci/lab/up)")
    if not os.access(samdb, os.R_OK | os.W_OK):
        sys.exit(f"{samdb} is not writable: run as root")
    for tool in ("ldbsearch", "ldbmodify"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode:
            sys.exit(f"{tool} not found: install ldb-tools (ci/lab/legacy-up does)")
    out_dir = args.out_dir or args.lab_dir / "legacy"
    out_dir.mkdir(parents=True, exist_ok=True)
    for sub in ("mail", "phone"):
        (out_dir / sub).mkdir(exist_ok=True)
        os.chmod(out_dir / sub, 0o700)
    samba = Samba(f"tdb://{samdb}")
    rootdse = samba.search("", "(objectClass=*)", ["defaultNamingContext"], scope="base")
    base = (rootdse[0].get("defaultnamingcontext") or ["DC=salud,DC=lab"])[0] if rootdse else "DC=salud,DC=lab"
    root = f"OU=Legado,{base}"

    t = time.monotonic()
    removed = remove(samba, root, out_dir)
    timings["remove"] = round(time.monotonic() - t, 2)
    if args.remove:
        for name in ("mail/users", "phone/kamailio.db", "manifest.json"):
            (out_dir / name).unlink(missing_ok=True)
        print(f"[lab] legacy: removed {removed} objects under {root} (and their tombstones) "
              f"in {timings['remove']} s; removed the files in {out_dir}")
        return 0

    t = time.monotonic()
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    planter = Planter(args.people, args.seed, base, foreign_names(samba, base, root), now)
    planter.plan()
    text = planter.ldif(args.passwords)
    timings["plan"] = round(time.monotonic() - t, 2)

    t = time.monotonic()
    ldif_path = out_dir / "legacy-plant.ldif"
    fd = os.open(ldif_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds password hashes
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    try:
        controls = [f"local_oid:{BYPASS_PASSWORD_HASH_OID}:0"] if args.passwords == "nthash" else []
        samba.modify(ldif_path, controls)
    finally:
        ldif_path.unlink(missing_ok=True)
    timings["plant"] = round(time.monotonic() - t, 2)

    t = time.monotonic()
    files = {"mail_registry": str(out_dir / "mail" / "users"), "sip_database": str(out_dir / "phone" / "kamailio.db"),
             "manifest": str(out_dir / "manifest.json")}
    write_atomically(Path(files["mail_registry"]), planter.registry_text().encode("utf-8"), 0o600)
    write_subscribers(Path(files["sip_database"]), args.lab_dir / "phone" / "kamailio.db", planter.subscribers())
    timings["files"] = round(time.monotonic() - t, 2)

    manifest = planter.manifest(args, files, timings)
    if not args.no_verify:
        t = time.monotonic()
        errors = verify(samba, planter, manifest)
        timings["verify"] = round(time.monotonic() - t, 2)
        if errors:
            print("[lab] legacy: what was read back does not match the plan:", *errors[:20], sep="\n  ",
                  file=sys.stderr)
            return 1
    timings["total"] = round(time.monotonic() - started, 2)
    manifest["timings_s"] = timings
    write_atomically(Path(files["manifest"]), (json.dumps(manifest, ensure_ascii=False, indent=1) + "\n")
                     .encode("utf-8"), 0o644)
    c = manifest["counts"]
    print(f"[lab] legacy: seed {args.seed}: {c['people_accounts']} people, {c['service_accounts']} service accounts, "
          f"{c['groups']} groups, {c['ous']} OUs under {root}")
    print(f"[lab] legacy: problems {json.dumps(c['problems'])}; clean {c['clean']}")
    print(f"[lab] legacy: {c['mailboxes']} mailboxes in {files['mail_registry']}, {c['extensions']} extensions "
          f"in {files['sip_database']}; manifest {files['manifest']}")
    print(f"[lab] legacy: removed {removed} objects first; timings (s) {json.dumps(timings)}"
          + ("" if args.no_verify else "; read back and verified"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
