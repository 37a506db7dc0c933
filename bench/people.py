"""Realistic people for the example data and the benchmark (deterministic for a seed).

    python bench/people.py DIR [N] [--seed S]   writes DIR/desired_state/ with N people

Names carry accents, ñ, ü, apostrophes and compound surnames; CURPs are structurally valid
with correct check digits; every person has the solicitud data the procedures require.
"""
from __future__ import annotations

import argparse
import random
import sys
import unicodedata
from pathlib import Path

import yaml

# Desired state refuses YAML anchors and aliases; PyYAML writes them for any object that
# appears twice (a shared solicitud), so the files written here spell every value out.
yaml.SafeDumper.ignore_aliases = lambda self, data: True

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from reconciler.desired.curp import check_digit  # noqa: E402

UNITS = {
    "OC-DGPE": {"name": "Oficinas Centrales - Dirección General de Planeación y Evaluación", "kind": "oficina_central"},
    "OC-DA": {"name": "Oficinas Centrales - Dirección de Administración", "kind": "oficina_central"},
    "JS-I": {"name": "Jurisdicción Sanitaria I Cuernavaca", "kind": "jurisdiccion"},
    "HG-CUERNAVACA": {"name": "Hospital General de Cuernavaca \"Dr. José G. Parres\"", "kind": "hospital",
                      "clues": "MSSSA000011"},
    "HG-CUAUTLA": {"name": "Hospital General de Cuautla \"Dr. Mauro Belaunzarán Tapia\"", "kind": "hospital",
                   "clues": "MSSSA000023"},
    "HG-JOJUTLA": {"name": "Hospital General de Jojutla \"Dr. Ernesto Meana San Román\"", "kind": "hospital",
                   "clues": "MSSSA000035"},
    "CS-JIUTEPEC": {"name": "Centro de Salud Jiutepec", "kind": "centro_de_salud", "clues": "MSSSA001230"},
    "CS-TEMIXCO": {"name": "Centro de Salud Temixco", "kind": "centro_de_salud", "clues": "MSSSA001242"},
    "CS-YAUTEPEC": {"name": "Centro de Salud Yautepec", "kind": "centro_de_salud", "clues": "MSSSA001254"},
    "LESP": {"name": "Laboratorio Estatal de Salud Pública", "kind": "laboratorio", "clues": "MSSSA000400"},
}

ENTITLEMENTS = {
    "expediente_electronico": {"description": "Acceso al expediente clínico electrónico SIEMPRE",
                               "group": "GG-SIEMPRE-Usuarios"},
    "internet": {"description": "Acceso a Internet institucional", "group": "GG-Internet"},
    "correo": {"description": "Correo electrónico institucional", "group": "GG-Correo"},
    "carpetas_compartidas": {"description": "Carpetas compartidas de la unidad", "group": "GG-Archivos-Compartidos"},
    "sinba": {"description": "Captura en SINBA (Sistema Nacional de Información Básica en Salud)",
              "group": "GG-SINBA-Captura"},
    "vpn": {"description": "Acceso remoto por VPN", "group": "GG-VPN-Remoto", "privileged": True},
    "admin_ti": {"description": "Administración de la infraestructura de TI", "group": "GG-TI-Administradores",
                 "privileged": True},
}

GIVEN_M = ["José Luis", "Juan Carlos", "Jesús", "Raúl", "Martín", "Andrés", "Óscar", "Iván", "Adrián", "Héctor",
           "Efraín", "Joaquín", "Ramón", "Germán", "Rubén", "Sebastián", "Tomás", "Ángel", "Julián", "Nicolás",
           "Fermín", "Agustín", "Benjamín", "Máximo", "Víctor Hugo", "Luis Ángel", "Arturo", "Eduardo"]
GIVEN_F = ["María José", "Sofía", "Lucía", "Mónica", "Verónica", "Begoña", "Inés", "Araceli", "Itzél", "Xóchitl",
           "Beatriz", "Ángela", "María de los Ángeles", "Leticia", "Rocío", "Noemí", "Zoé", "Dolores", "Raquel",
           "Guadalupe", "Ma. Guadalupe", "Yesenia", "Nayeli", "Citlalli", "Anaí", "Belén", "Érika", "Lourdes"]
SURNAMES = ["Núñez", "Peña", "Muñoz", "Ibáñez", "Ordóñez", "Castañeda", "Treviño", "Zúñiga", "Güemes",
            "Argüelles", "O'Farrill", "O'Gorman", "D'Acosta", "de la Fuente", "del Río", "de la Cruz",
            "Hernández", "García", "Martínez", "López", "González", "Pérez", "Rodríguez", "Sánchez", "Ramírez",
            "Cruz", "Flores", "Gómez", "Díaz", "Vázquez", "Jiménez", "Gutiérrez", "Ruíz", "Álvarez", "Chávez",
            "Ocampo", "Salgado", "Bahena", "Nava", "Sotelo", "Quintero", "Villaseñor", "Montaño", "Ayala",
            "Cortés", "Guzmán", "Domínguez", "Bárcenas", "Mendoza", "Solís", "Tapia", "Aragón", "Estrada",
            "Carreño", "Espíndola", "Uribe", "Xicoténcatl", "Ávila", "Yáñez", "Lagunas"]

HOSPITAL_TITLES = [("Médico General", ["expediente_electronico", "internet", "correo"]),
                   ("Médica Especialista en Pediatría", ["expediente_electronico", "internet", "correo"]),
                   ("Médico Especialista en Medicina Interna", ["expediente_electronico", "internet", "correo"]),
                   ("Enfermera General", ["expediente_electronico"]),
                   ("Jefa de Enfermeras", ["expediente_electronico", "correo"]),
                   ("Químico Farmacobiólogo", ["expediente_electronico", "correo"]),
                   ("Trabajadora Social", ["expediente_electronico", "correo"]),
                   ("Auxiliar Administrativo", ["correo", "carpetas_compartidas"]),
                   ("Médico Residente", ["expediente_electronico"])]
CS_TITLES = [("Médico General", ["expediente_electronico", "sinba", "correo"]),
             ("Enfermera General", ["expediente_electronico", "sinba"]),
             ("Promotor de Salud", ["sinba"]),
             ("Odontóloga", ["expediente_electronico"]),
             ("Responsable de Unidad", ["expediente_electronico", "sinba", "correo", "internet"])]
CENTRAL_TITLES = [("Jefe de Departamento", ["correo", "internet", "carpetas_compartidas", "vpn"]),
                  ("Analista de Sistemas", ["correo", "internet", "carpetas_compartidas"]),
                  ("Soporte Técnico", ["correo", "internet", "admin_ti"]),
                  ("Secretaria", ["correo", "carpetas_compartidas"]),
                  ("Auxiliar Administrativo", ["correo", "carpetas_compartidas"]),
                  ("Subdirectora", ["correo", "internet", "carpetas_compartidas", "vpn"])]

PLACEMENT = {
    "hospital": ("Dirección de Atención Médica", "Subdirección de Hospitales",
                 ["Urgencias", "Pediatría", "Medicina Interna", "Enfermería", "Laboratorio Clínico", "Admisión"]),
    "centro_de_salud": ("Dirección de Atención Médica", "Subdirección de Atención Primaria a la Salud",
                        ["Consulta Externa", "Medicina Preventiva", "Enfermería"]),
    "laboratorio": ("Dirección de Protección contra Riesgos Sanitarios", "Subdirección de Laboratorio",
                    ["Microbiología", "Toxicología", "Recepción de Muestras"]),
    "jurisdiccion": ("Dirección de Atención Médica", "Subdirección de Atención Primaria a la Salud",
                     ["Epidemiología", "Enlace Informático", "Vigilancia Sanitaria"]),
    "oficina_central": ("Dirección General de Planeación y Evaluación",
                        "Subdirección de Tecnologías de la Información en Salud",
                        ["Departamento de Informática", "Departamento de Estadística", "Recursos Humanos"]),
}
HEADS = {"hospital": "Director(a) del", "centro_de_salud": "Responsable del", "laboratorio": "Director(a) del",
         "jurisdiccion": "Jefe(a) de la", "oficina_central": "Titular de"}


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.replace("ñ", "x").replace("Ñ", "X"))
    return "".join(c for c in text if c.isalpha() and not unicodedata.combining(c)).upper()


def _first_internal(word: str, vowels: bool) -> str:
    for c in word[1:]:
        if (c in "AEIOU") == vowels:
            return c
    return "X"


def make_curp(given: str, first: str, second: str | None, birth: tuple[int, int, int], sex: str, rng) -> str:
    f1 = _fold(first.split()[-1] if first.lower().startswith(("de ", "del ")) else first)
    f2 = _fold(second) if second else "X"
    names = given.split()
    g = _fold(names[1] if len(names) > 1 and names[0] in ("José", "María", "Ma.", "J.") else names[0])
    y, m, d = birth
    head = f"{f1[0]}{_first_internal(f1, True)}{f2[0]}{g[0]}{y % 100:02d}{m:02d}{d:02d}{sex}MS"
    head += f"{_first_internal(f1, False)}{_first_internal(f2, False) if second else 'X'}{_first_internal(g, False)}"
    head += str(rng.randrange(10)) if y < 2000 else rng.choice("ABCDEFGH")
    return head + str(check_digit(head))


def _person(rng: random.Random, index: int, unit_key: str, unit: dict) -> dict:
    female = rng.random() < 0.55
    given = rng.choice(GIVEN_F if female else GIVEN_M)
    first, second = rng.sample(SURNAMES, 2)
    if rng.random() < 0.02:
        second = None
    kind = unit["kind"]
    titles = {"hospital": HOSPITAL_TITLES, "centro_de_salud": CS_TITLES, "laboratorio": HOSPITAL_TITLES[5:7],
              "jurisdiccion": CS_TITLES[-1:] + CENTRAL_TITLES[1:2]}.get(kind, CENTRAL_TITLES)
    title, entitlements = rng.choice(titles)
    direction, subdirection, departments = PLACEMENT[kind]
    key = f"SSM-{index:06d}"
    person = {"employee_key": key, "given_names": given, "first_surname": first, "second_surname": second}
    if rng.random() < 0.85:
        birth = (rng.randint(1962, 2001), rng.randint(1, 12), rng.randint(1, 28))
        person["curp"] = make_curp(given, first, second, birth, "M" if female else "H", rng)
    person.update({
        "title": title, "direction": direction, "subdirection": subdirection,
        "department": rng.choice(departments) if kind != "centro_de_salud" or rng.random() < 0.5 else "N/A",
        "phone": f"777 {rng.randint(300, 399)} {rng.randint(1000, 9999)}",
        "extension": str(rng.randint(100, 899)),
        "status": "activo",
        "entitlements": sorted(entitlements),
        "solicitud": {
            "folio": f"SSM/STI/{2024 + index % 3}/{index:05d}",
            "date": f"{2024 + index % 3}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            "justification": rng.choice(["Alta por nuevo ingreso", "Alta por contratación eventual",
                                         "Alta por cambio de adscripción", "Alta por reincorporación"]),
            "requested_by": f"{HEADS[kind]} {unit['name']}",
        },
    })
    return person


def generate(n: int, seed: int = 2026) -> dict[str, list[dict]]:
    """{unit key: [person, ...]} with n people; display names unique within a unit."""
    rng = random.Random(seed)
    keys = list(UNITS)
    weights = [3 if UNITS[k]["kind"] == "hospital" else 1 for k in keys]
    by_unit: dict[str, list[dict]] = {k: [] for k in keys}
    seen: set[tuple] = set()
    index = 1
    while index <= n:
        unit = rng.choices(keys, weights)[0]
        person = _person(rng, index, unit, UNITS[unit])
        name = (unit, person["given_names"], person["first_surname"], person["second_surname"])
        if name in seen:
            continue
        seen.add(name)
        by_unit[unit].append(person)
        index += 1
    return by_unit


def write(root: Path, by_unit: dict[str, list[dict]], header: str = "") -> None:
    ds = root / "desired_state"
    (ds / "users").mkdir(parents=True, exist_ok=True)
    dump = dict(allow_unicode=True, sort_keys=False, width=120)
    (ds / "units.yaml").write_text(header + yaml.safe_dump({"units": UNITS}, **dump), encoding="utf-8")
    (ds / "entitlements.yaml").write_text(header + yaml.safe_dump({"entitlements": ENTITLEMENTS}, **dump),
                                          encoding="utf-8")
    for unit, people in by_unit.items():
        if people:
            text = yaml.safe_dump({"unit": unit, "people": people}, **dump)
            (ds / "users" / f"{unit.lower()}.yaml").write_text(header + text, encoding="utf-8")


SPECIAL = {
    # The names the issue asks for, and the cases every directory team meets sooner or later.
    "HG-CUERNAVACA": [
        {"employee_key": "SSM-009001", "given_names": "José", "first_surname": "Ñúñez", "second_surname": "O'Brien",
         "curp": "NUOJ850412HMSXBS03", "title": "Médico Especialista en Urgencias",
         "direction": "Dirección de Atención Médica", "subdirection": "Subdirección de Hospitales",
         "department": "Urgencias", "phone": "777 311 2210", "extension": "424", "status": "activo",
         "entitlements": ["correo", "expediente_electronico", "internet"],
         "solicitud": {"folio": "SSM/STI/2026/01142", "date": "2026-10-05",
                       "justification": "Alta por nuevo ingreso al servicio de Urgencias",
                       "requested_by": "Dra. Ana Lucía Ordóñez Peña, Directora del Hospital General de Cuernavaca"}},
        {"employee_key": "SSM-009002", "given_names": "Ana", "first_surname": "López", "second_surname": "García",
         "title": "Enfermera General", "direction": "Dirección de Atención Médica",
         "subdirection": "Subdirección de Hospitales", "department": "Enfermería", "phone": "777 311 2210",
         "extension": "431", "status": "activo", "entitlements": ["expediente_electronico"],
         "solicitud": {"folio": "SSM/STI/2026/01143", "date": "2026-10-05", "justification": "Alta por nuevo ingreso",
                       "requested_by": "Dra. Ana Lucía Ordóñez Peña, Directora del Hospital General de Cuernavaca"}},
        {"employee_key": "SSM-009003", "given_names": "Rodrigo", "first_surname": "Villaseñor", "second_surname": "Ayala",
         "title": "Médico General", "direction": "Dirección de Atención Médica",
         "subdirection": "Subdirección de Hospitales", "department": "Consulta Externa", "phone": "777 311 2210",
         "extension": "455", "status": "baja", "entitlements": ["correo", "expediente_electronico"],
         "solicitud": {"folio": "SSM/RH/2026/00377", "date": "2026-11-03",
                       "justification": "Baja por renuncia voluntaria (oficio RH/2026/377)",
                       "requested_by": "Lic. Marco Antonio Bahena Solís, Jefe de Recursos Humanos"}},
    ],
    "CS-JIUTEPEC": [
        {"employee_key": "SSM-009004", "given_names": "Alberto", "first_surname": "López", "second_surname": "Gómez",
         "title": "Médico General", "direction": "Dirección de Atención Médica",
         "subdirection": "Subdirección de Atención Primaria a la Salud", "department": "N/A",
         "phone": "777 320 1180", "extension": "12", "status": "activo",
         "entitlements": ["expediente_electronico", "sinba"],
         "solicitud": {"folio": "SSM/STI/2026/01150", "date": "2026-10-09", "justification": "Alta por contratación eventual",
                       "requested_by": "Dr. Efraín Ocampo Nava, Responsable del Centro de Salud Jiutepec"}},
    ],
    "OC-DGPE": [
        {"employee_key": "SSM-009005", "given_names": "Juan Carlos", "first_surname": "Peña",
         "second_surname": "de la Fuente", "curp": "PEFJ790228HMSXNN07", "title": "Jefe del Departamento de Informática",
         "direction": "Dirección General de Planeación y Evaluación",
         "subdirection": "Subdirección de Tecnologías de la Información en Salud",
         "department": "Departamento de Informática", "phone": "777 314 3707", "extension": "424",
         "status": "activo", "entitlements": ["admin_ti", "carpetas_compartidas", "correo", "internet", "vpn"],
         "account": {"sam": "jcpena"},
         "solicitud": {"folio": "SSM/DGPE/2024/00031", "date": "2024-02-12",
                       "justification": "Cuenta con nombre de usuario histórico conservado",
                       "requested_by": "Mtra. Begoña D'Acosta Güemes, Subdirectora de Tecnologías de la Información"}},
        {"employee_key": "SSM-009006", "given_names": "Begoña", "first_surname": "D'Acosta", "second_surname": "Güemes",
         "title": "Subdirectora de Tecnologías de la Información en Salud",
         "direction": "Dirección General de Planeación y Evaluación",
         "subdirection": "Subdirección de Tecnologías de la Información en Salud", "department": "N/A",
         "phone": "777 314 3707", "extension": "400", "status": "activo",
         "entitlements": ["carpetas_compartidas", "correo", "internet", "vpn"],
         "solicitud": {"folio": "SSM/DGPE/2023/00007", "date": "2023-06-01", "justification": "Alta por nombramiento",
                       "requested_by": "Director General de Planeación y Evaluación"}},
    ],
    "CS-TEMIXCO": [
        {"employee_key": "SSM-009007", "given_names": "Xóchitl", "first_surname": "Zúñiga", "second_surname": None,
         "title": "Promotora de Salud", "direction": "Dirección de Atención Médica",
         "subdirection": "Subdirección de Atención Primaria a la Salud", "department": "N/A",
         "phone": "777 325 0042", "status": "baja", "entitlements": ["sinba"],
         "solicitud": {"folio": "SSM/RH/2026/00391", "date": "2026-11-10",
                       "justification": "Baja por término de contrato eventual",
                       "requested_by": "Lic. Marco Antonio Bahena Solís, Jefe de Recursos Humanos"}},
    ],
}

EXAMPLE_HEADER = """\
# People of one unit.  One file per unit, because requests arrive per unit (FO-DPE-STI-DI-04
# is signed by the unit's head) and approvers review exactly the file of their unit; a
# transfer to another unit moves the person's block to that unit's file.
# Each person carries the solicitud behind their current state: folio, date, justification
# and who requested it.  For a baja, set `status: baja` and put the baja request there.
"""


def write_examples(root: Path, n: int = 240) -> None:
    by_unit = generate(n)
    for unit, people in SPECIAL.items():
        for person in people:
            s = person.get("curp")
            if s:  # keep the hand-written CURPs valid: recompute the check digit
                person["curp"] = s[:17] + str(check_digit(s[:17]))
        by_unit[unit] = by_unit[unit] + people
    write(root, by_unit)
    for path in (root / "desired_state" / "users").glob("*.yaml"):
        path.write_text(EXAMPLE_HEADER + path.read_text(encoding="utf-8"), encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("n", type=int, nargs="?", default=1000)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--examples", action="store_true", help="the repository's example data (with hand-picked cases)")
    args = ap.parse_args()
    if args.examples:
        write_examples(args.root, args.n if args.n != 1000 else 240)
    else:
        write(args.root, generate(args.n, args.seed))


if __name__ == "__main__":
    main()
