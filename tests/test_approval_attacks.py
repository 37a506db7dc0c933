"""Attacks an adversarial review of the signed approvals found (issue 12), each now refused:
signing onto an old base to be judged by old rules, replaying an approval that never landed,
a bot attestation stretched over a direct push, an approver hidden in a branch's merge commit,
a policy that one commit of an approved branch had."""
from __future__ import annotations

import git
from conftest import APPROVER_1, APPROVER_2, REQUESTER, key_of, person, public_key_of, sign_approvals
from fakes import Fakes
from test_signatures import attest, bot_policy, feature, forge, landed_first, main_sha, merge, verdict  # noqa: F401

from reconciler.approval.approve import approve
from reconciler.approval.review import review
from reconciler.desired.load import load_desired_state
from reconciler.desired.model import Source
from reconciler.desired.source import at_ref
from reconciler.plan import AttributeChange, Change, Movement, Plan
from reconciler.providers.network.rules import device_rules, order_change, rule_attributes, rule_change

SOL = {"folio": "SSM/STI/2026/00900", "date": "2026-11-01", "justification": "Regla", "requested_by": "TI"}

ATTACKER = ("Mallory", "mallory@evil.example")


def push_tree(fakes: Fakes, tree_of: str, message: str = "Ajuste", author=REQUESTER) -> str:
    """A commit straight onto main whose tree is `tree_of`'s (what anyone with push rights can do)."""
    repo = fakes.repo.git
    tree = repo.commit(tree_of).tree.hexsha
    sha = repo.git.commit_tree(tree, "-p", main_sha(fakes), "-m", message,
                               env={"GIT_AUTHOR_NAME": author[0], "GIT_AUTHOR_EMAIL": author[1]})
    repo.git.update_ref("refs/heads/main", sha)
    repo.git.reset("--hard", sha)
    return sha


# A rotated (revoked) key, or any approver, signs onto an OLD base of their choosing.
def test_a_revoked_key_cannot_approve_by_naming_an_old_base(fakes: Fakes):
    landed_first(fakes)
    old_base = main_sha(fakes)
    # Marta's key was compromised: the policy rotates it, approved by two.
    fakes.repo.policy["approvers"][0]["keys"] = [public_key_of("marta-nueva")]
    fakes.repo.squash_merge("Llave nueva de Marta", approvers=(APPROVER_1, APPROVER_2))
    # The holder of Marta's OLD key pushes an alta straight to main ...
    fakes.add("SSM-000002")
    y = fakes.repo.direct_push("Alta", author=REQUESTER)
    # ... signed onto the current base it does not count:
    approve(fakes.repo.git, fakes.repo.git.commit(y).parents[0].hexsha, y, APPROVER_1[1], key_of(APPROVER_1))
    assert not verdict(fakes)[0]
    # ... signed onto a base from before the rotation, it does:
    approve(fakes.repo.git, old_base, y, APPROVER_1[1], key_of(APPROVER_1))
    approved, reason = verdict(fakes)
    assert not approved and "signature does not verify" in reason


def test_one_approver_cannot_pick_a_base_where_the_threshold_was_lower(fakes: Fakes):
    landed_first(fakes)
    old_base = main_sha(fakes)
    fakes.repo.policy["required_approvals"] = 2
    fakes.repo.squash_merge("Política: dos aprobaciones", approvers=(APPROVER_1, APPROVER_2))
    fakes.add("SSM-000002")
    y = fakes.repo.direct_push("Alta", author=REQUESTER)
    approve(fakes.repo.git, fakes.repo.git.commit(y).parents[0].hexsha, y, APPROVER_2[1], key_of(APPROVER_2))
    assert "needs 2 approvers, has 1" in verdict(fakes)[1]
    approve(fakes.repo.git, old_base, y, APPROVER_2[1], key_of(APPROVER_2))
    approved, reason = verdict(fakes)
    assert not approved and "needs 2 approvers, has 1" in reason


# A dangling approval (a head that never landed with its tree) is replayed after a baja.
def test_a_dangling_approval_does_not_resurrect_a_baja(fakes: Fakes):
    two_applied(fakes)
    base = main_sha(fakes)
    # An honest pull request off `base` (an alta), approved by Marta, then closed unmerged
    # (or updated after the approval, or merged onto a newer main: same effect).
    head = feature(fakes, "alta", "SSM-000003")
    fakes.repo.remove("SSM-000003")
    sign_approvals(fakes.repo.git, base, head, (APPROVER_1,))
    # SSM-000002 is given a baja, approved, applied.
    fakes.repo.remove("SSM-000002")
    fakes.repo.squash_merge("Baja de SSM-000002", approvers=(APPROVER_2,))
    fakes.apply()
    assert "SSM-000002" not in fakes.state("a-first")
    # Months later the attacker pushes, straight to main, a commit with the old head's tree.
    push_tree(fakes, head, "Ajuste", author=("Otro", "otro@salud.morelos.gob.mx"))
    approved, reason = verdict(fakes, "SSM-000002")
    assert not approved and "without a signed approval" in reason
    fakes.apply()
    assert "SSM-000002" not in fakes.state("a-first")  # revoked access stays revoked


# The bot's attestation of a merge commit also covers a direct push in the same push.
def test_an_attestation_does_not_cover_a_direct_push_before_the_merge(fakes: Fakes, forge):
    bot_policy(fakes)
    landed_first(fakes)
    base = main_sha(fakes)
    head = feature(fakes, "alta", "SSM-000002")
    # The attacker, in one push: a commit of their own straight on main, then the pull
    # request's merge on top of it (GitHub marks a PR merged when its head reaches main).
    from conftest import person
    from fakes import PEOPLE
    fakes.repo.add("CS-JIUTEPEC", person("SSM-000003", **PEOPLE["SSM-000003"]))  # another file: merges cleanly
    fakes.repo.direct_push("Alta de SSM-000003", author=ATTACKER)
    landed = merge(fakes, head)
    forge.merged(9, landed, head, "jnunez", [("marta-avila", "APPROVED", head)])
    code, out, err = attest(fakes, forge, base, landed)
    assert code == 0, err
    approved, reason = verdict(fakes, "SSM-000003")
    assert not approved, reason
    assert verdict(fakes, "SSM-000002")[0] is False  # nor the merge: the attestation's base is not its parent


# Separation of duties: an approver's content in a merge commit of the branch is not "requested".
def test_an_approver_authoring_in_a_branch_merge_commit_is_a_requester(fakes: Fakes):
    landed_first(fakes)
    base = main_sha(fakes)
    repo = fakes.repo.git
    branch = repo.create_head("alta", base)
    branch.checkout()
    (fakes.repo.root / "NOTAS.md").write_text("x\n")
    repo.git.add("-A")
    repo.index.commit("Notas", author=git.Actor(*REQUESTER), committer=git.Actor(*REQUESTER))
    side = repo.create_head("lado", base)
    side.checkout()
    (fakes.repo.root / "OTRO.md").write_text("y\n")
    repo.git.add("-A")
    repo.index.commit("Otro", author=git.Actor(*REQUESTER), committer=git.Actor(*REQUESTER))
    branch.checkout()
    # Marta merges `lado` into the branch and, in the merge commit, adds the person herself.
    repo.git.merge("--no-ff", "--no-commit", "lado")
    fakes.add("SSM-000002")
    fakes.repo.write()
    repo.git.add("-A")
    repo.git.commit("-m", "Merge branch lado", env={"GIT_AUTHOR_NAME": APPROVER_1[0],
                                                    "GIT_AUTHOR_EMAIL": APPROVER_1[1]})
    repo.heads.main.checkout()
    sign_approvals(repo, base, branch.commit.hexsha, (APPROVER_1,))
    merge(fakes, branch.commit.hexsha)
    approved, reason = verdict(fakes)
    assert not approved and f"{APPROVER_1[0]} requested the change" in reason


# A multi-commit stretch: an intermediate policy nobody saw is "in force" at that commit.
def test_a_policy_one_commit_of_a_branch_had_is_never_in_force(fakes: Fakes):
    import yaml
    landed_first(fakes)
    base = main_sha(fakes)
    repo = fakes.repo.git
    branch = repo.create_head("limpieza", base)
    branch.checkout()
    path = fakes.repo.root / "inventory" / "approvers.yaml"
    honest = path.read_text(encoding="utf-8")
    policy = yaml.safe_load(honest)
    policy["approvers"][0]["keys"] = [public_key_of("mallory")]
    path.write_text(yaml.safe_dump(policy, allow_unicode=True), encoding="utf-8")
    repo.git.add("-A")
    c1 = repo.index.commit("wip", author=git.Actor(*REQUESTER), committer=git.Actor(*REQUESTER)).hexsha
    path.write_text(honest, encoding="utf-8")
    fakes.add("SSM-000002")
    fakes.repo.write()
    repo.git.add("-A")
    head = repo.index.commit("Alta", author=git.Actor(*REQUESTER), committer=git.Actor(*REQUESTER)).hexsha
    repo.heads.main.checkout()
    assert "approvers.yaml" not in repo.git.diff("--stat", base, head)  # what the reviewers see
    sign_approvals(repo, base, head, (APPROVER_1, APPROVER_2))
    repo.git.merge("--ff-only", head)  # fast-forward (or rebase) merge
    assert not verdict(fakes)[0]  # several commits fast-forwarded are not covered at all
    # Later: Mallory pushes an alta and signs it in Marta's name, onto c1.
    fakes.add("SSM-000003")
    y = fakes.repo.direct_push("Alta", author=REQUESTER)
    approve(repo, c1, y, APPROVER_1[1], key_of("mallory"))
    approved, reason = verdict(fakes, "SSM-000003")
    assert not approved  # the policy c1 had was never in force


def two_applied(fakes: Fakes) -> None:
    """SSM-000001 and SSM-000002 landed approved and applied."""
    fakes.add("SSM-000001", "SSM-000002")
    fakes.repo.squash_merge()
    fakes.apply()


# -- scope: what a change's approval must cover ---------------------------------------------------

class Targets:
    def removed_declaration(self, change):
        return None

    def implied_approvals(self, target, changes):
        return {}


def grant_judged(fakes: Fakes, group: str = "GG-VPN-Remoto") -> Change:
    """SSM-000001 added to `group`, as AD plans it, reviewed against the repository."""
    source = at_ref(fakes.repo.root)
    grant = Change(Movement.MODIFICACION, "ad", "account", "SSM-000001", "SSM-000001",
                   (AttributeChange("groups", (), (group,)),), unit="HG-CUERNAVACA",
                   origins=(Source("desired_state/users/hg-cuernavaca.yaml", None, ("people", 0)),))
    [judged] = review(Plan((grant,)), source, load_desired_state(source.files), None, Targets()).changes
    return judged


def test_dropping_a_privileged_flag_takes_the_privileged_number_of_approvals(fakes: Fakes):
    """privileged_approvals needs two; one approver approves two ordinary pull requests."""
    fakes.repo.policy["privileged_entitlements"] = []  # privileged only by entitlements.yaml's flag
    fakes.add("SSM-000001")
    fakes.repo.squash_merge()
    fakes.repo.entitlements["vpn"]["privileged"] = False
    fakes.repo.squash_merge("Ordenar entitlements", approvers=(APPROVER_1,))  # 1 approval: ordinary file
    fakes.repo.find("SSM-000001")["entitlements"].append("vpn")
    fakes.repo.squash_merge("VPN para SSM-000001", approvers=(APPROVER_1,))
    judged = grant_judged(fakes)
    assert not judged.approved and "needs 2 distinct approvers" in judged.approval.reason


def test_renaming_a_privileged_entitlement_takes_the_privileged_number_of_approvals(fakes: Fakes):
    """The policy lists privileged entitlements by key; renaming the key (same AD group) in an
    ordinary pull request leaves the group unprivileged."""
    fakes.add("SSM-000001")
    fakes.repo.squash_merge()
    fakes.repo.entitlements["acceso_remoto"] = dict(fakes.repo.entitlements.pop("vpn"), privileged=False)
    fakes.repo.squash_merge("Renombrar vpn", approvers=(APPROVER_1,))
    fakes.repo.find("SSM-000001")["entitlements"].append("acceso_remoto")
    fakes.repo.squash_merge("Acceso remoto para SSM-000001", approvers=(APPROVER_1,))
    judged = grant_judged(fakes)
    assert not judged.approved and "needs 2 distinct approvers" in judged.approval.reason


def test_a_files_unit_line_changed_without_approval_moves_no_one(fakes: Fakes):
    two_applied(fakes)
    path = fakes.repo.root / "desired_state" / "users" / "hg-cuernavaca.yaml"
    fakes.repo.write()
    text = path.read_text(encoding="utf-8")
    assert text.startswith("unit: HG-CUERNAVACA\n")
    path.write_text(text.replace("unit: HG-CUERNAVACA\n", "unit: CS-JIUTEPEC\n", 1), encoding="utf-8")
    fakes.repo.git.git.add("-A")
    fakes.repo.git.index.commit("x")  # straight to main, author: anyone
    plan = fakes.plan()
    moved = [c for c in plan.changes if c.target == "a-first"]
    assert moved and not any(c.approved for c in moved)
    assert all("pushed straight to the protected branch" in c.approval.reason for c in moved)


def test_an_approver_of_the_entitlements_file_approves_no_ones_alta(fakes: Fakes):
    """AD's account changes list units.yaml and entitlements.yaml among their files; `paths`
    matching either lets a catalogue owner approve everyone's altas and grants."""
    catalog = ("Catálogo", "catalogo@salud.morelos.gob.mx")
    fakes.repo.policy["approvers"].append({"name": catalog[0], "email": catalog[1], "units": ["OC-DGPE"],
                                           "paths": ["desired_state/entitlements.yaml"]})
    fakes.add("SSM-000001")
    fakes.repo.squash_merge()
    fakes.add("SSM-000002")
    fakes.repo.squash_merge("Alta de SSM-000002", approvers=(catalog,))
    source = at_ref(fakes.repo.root)
    state = load_desired_state(source.files)
    p = next(p for p in state.people if p.employee_key == "SSM-000002")
    origins = tuple(s for s in (p.source, state.units[p.unit].source,
                                *(state.entitlements[e].source for e in p.entitlements)) if s is not None)
    alta = Change(Movement.ALTA, "ad", "account", p.employee_key, p.employee_key,
                  (AttributeChange("groups", (), ("GG-SIEMPRE-Usuarios",)),), unit=p.unit, origins=origins)
    [judged] = review(Plan((alta,)), source, state, None, Targets()).changes
    assert not judged.approved and "Catálogo may not approve unit HG-CUERNAVACA" in judged.approval.reason


def test_a_network_widened_without_approval_does_not_ride_on_the_rules_approval(repo):
    """What a rule lets through depends on networks.yaml as much as on the rule: a network
    widened straight on main is a change of the rule nobody approved."""
    repo.add("HG-CUERNAVACA", person("SSM-000001"))
    repo.networks = {"networks": {"clientes": {"cidr": "10.10.1.0/24"}},
                     "hosts": {"expediente": {"address": "10.10.2.2"}},
                     "services": {"web": {"protocol": "tcp", "ports": [443]}}}
    repo.rules = {"hg": [{"name": "hgc-web", "source": "clientes", "destination": "expediente", "service": "web",
                          "action": "allow", "devices": ["fw-1"], "unit": "HG-CUERNAVACA",
                          "justification": "Expediente", "solicitud": SOL}]}
    repo.squash_merge("Regla web", approvers=(APPROVER_1,))
    before = load_desired_state(at_ref(repo.root).files, devices=frozenset({"fw-1"}))
    # Straight to main, no approval: the network becomes (almost) everything, the service every port.
    repo.networks["networks"]["clientes"]["cidr"] = "0.0.0.0/1"
    repo.networks["services"]["web"]["ports"] = ["1-65535"]
    repo.direct_push("Ajuste de redes", author=("Mallory", "mallory@evil.example"))
    source = at_ref(repo.root)
    state = load_desired_state(source.files, devices=frozenset({"fw-1"}))
    old = device_rules(before.security, "fw-1", "2026-11-01").rules[0]
    new = device_rules(state.security, "fw-1", "2026-11-01").rules[0]
    change = rule_change(Movement.MODIFICACION, "fw-1", new, rule_attributes(old, new))
    [judged] = review(Plan((change,)), source, state, None, Targets()).changes
    assert not judged.approved and "pushed straight to the protected branch" in judged.approval.reason


# -- revocations: never kept alive, never forced ---------------------------------------------------

def test_an_unapproved_edit_of_a_persons_entry_does_not_keep_their_baja_from_being_applied(fakes: Fakes):
    """The baja carries out the `status: baja` line an approved pull request wrote; a phone
    number pushed straight to main afterwards does not veto it."""
    two_applied(fakes)
    fakes.repo.find("SSM-000002")["status"] = "baja"
    fakes.repo.squash_merge("Baja de SSM-000002", approvers=(APPROVER_1,))
    fakes.repo.find("SSM-000002")["phone"] = "777 311 2211"
    fakes.repo.direct_push("tel", author=("Zoé", "zoe@salud.morelos.gob.mx"))
    approved, reason = verdict(fakes)
    assert approved, reason
    fakes.apply()
    assert "SSM-000002" not in fakes.state("a-first")


def test_a_baja_pushed_straight_to_main_is_not_applied(fakes: Fakes):
    two_applied(fakes)
    fakes.repo.find("SSM-000002")["status"] = "baja"
    fakes.repo.direct_push("Baja sin solicitud", author=("Mallory", "mallory@evil.example"))
    approved, reason = verdict(fakes)
    assert not approved and "pushed straight to the protected branch" in reason
    fakes.apply()
    assert "SSM-000002" in fakes.state("a-first")


def test_a_comment_naming_a_removed_person_does_not_veto_their_baja(fakes: Fakes):
    two_applied(fakes)
    fakes.repo.remove("SSM-000002")
    fakes.repo.squash_merge("Baja de SSM-000002", approvers=(APPROVER_1,))
    path = fakes.repo.root / "desired_state" / "users" / "hg-cuernavaca.yaml"
    fakes.repo.write()
    path.write_text(path.read_text(encoding="utf-8") + "# ver SSM-000002\n", encoding="utf-8")
    fakes.repo.git.git.add("-A")
    fakes.repo.git.index.commit("comentario")
    approved, reason = verdict(fakes)
    assert approved, reason


def test_a_removal_pushed_to_main_is_not_approved_by_a_later_pull_request_that_names_the_key(fakes: Fakes):
    from conftest import person
    from fakes import PEOPLE

    two_applied(fakes)
    fakes.repo.remove("SSM-000002")  # the victim's entry deleted, straight to main
    fakes.repo.direct_push("limpieza", author=("Mallory", "mallory@evil.example"))
    p = person("SSM-000003", **PEOPLE["SSM-000003"])
    p["solicitud"]["justification"] = "Sustituye a SSM-000002 en Urgencias"
    fakes.repo.add("HG-CUERNAVACA", p)
    fakes.repo.squash_merge("Alta de SSM-000003", approvers=(APPROVER_1,))
    approved, reason = verdict(fakes)
    assert not approved and "pushed straight to the protected branch" in reason
    fakes.apply()
    assert "SSM-000002" in fakes.state("a-first")


def test_addresses_swapped_on_main_do_not_move_a_shared_mailbox_to_someone_else(repo):
    """Who may read direccion@ depends on the members' own addresses: swapping two people's
    addresses straight on main is a change of the shared mailbox nobody approved."""
    from types import SimpleNamespace

    from reconciler.providers.mail.diff import _change
    from reconciler.providers.mail.records import expand

    repo.add("HG-CUERNAVACA", person("SSM-000001", mailbox={"address": "ana@salud.lab"}),
             person("SSM-000002", curp=None, given_names="Mallory", first_surname="Ruíz",
                    mailbox={"address": "mallory@salud.lab"}))
    repo.shared["HG-CUERNAVACA"] = [{"address": "direccion@salud.lab", "name": "Dirección", "members": ["SSM-000001"],
                                     "solicitud": SOL}]
    repo.squash_merge("Buzones", approvers=(APPROVER_1,))
    target = SimpleNamespace(name="mail", domains=("salud.lab",), default_quota="1G")
    before = expand(load_desired_state(at_ref(repo.root).files), target)["shared:direccion@salud.lab"]
    # Straight to main: the two people's addresses swapped (no address used twice).
    repo.find("SSM-000001")["mailbox"] = {"address": "mallory@salud.lab"}
    repo.find("SSM-000002")["mailbox"] = {"address": "mallory.old@salud.lab"}
    repo.direct_push("Correcciones", author=("Mallory", "mallory@evil.example"))
    source = at_ref(repo.root)
    state = load_desired_state(source.files)
    want = expand(state, target)["shared:direccion@salud.lab"]
    change = _change(Movement.MODIFICACION, target, want, None, (AttributeChange("members", before.members,
                                                                                  want.members),))
    [judged] = review(Plan((change,)), source, state, None, Targets()).changes
    assert want.members == ("mallory@salud.lab",)
    assert not judged.approved and "pushed straight to the protected branch" in judged.approval.reason


def test_an_unapproved_namesake_does_not_rename_an_approved_account(repo):
    """A namesake with a lower employee key, pushed straight to main, would take the account
    name: the rename is part of the other person's change, and nobody approved it."""
    from test_diff import TARGET

    from reconciler.providers.ad.diff import _account_change
    from reconciler.providers.ad.records import person_account

    repo.add("HG-CUERNAVACA", person("SSM-000001"))
    repo.squash_merge("Alta", approvers=(APPROVER_1,))
    before_state = load_desired_state(at_ref(repo.root).files)
    before = person_account(before_state.people[0], before_state, TARGET)
    repo.add("CS-JIUTEPEC", person("SSM-000000", curp=None))  # same name, lower key
    repo.direct_push("Alta directa", author=("Mallory", "mallory@evil.example"))
    source = at_ref(repo.root)
    state = load_desired_state(source.files)
    mine = next(p for p in state.people if p.employee_key == "SSM-000001")
    after = person_account(mine, state, TARGET)
    assert after.attributes["sAMAccountName"] != before.attributes["sAMAccountName"]
    assert any(o.file.endswith("cs-jiutepec.yaml") for o in after.origins)
    change = _account_change(Movement.MODIFICACION, TARGET, after, before)
    [judged] = review(Plan((change,)), source, state, None, Targets()).changes
    assert not judged.approved and "pushed straight to the protected branch" in judged.approval.reason


def _edit_entry_and_push(fakes: Fakes, change, author) -> str:
    """Edit SSM-000002's entry as text (what the YAML dumper would never write) and push it."""
    fakes.repo.write()
    path = fakes.repo.root / "desired_state" / "users" / "hg-cuernavaca.yaml"
    text = path.read_text(encoding="utf-8")
    i = text.index("- employee_key: SSM-000002")
    path.write_text(text[:i] + change(text[i:]), encoding="utf-8")
    fakes.repo.git.git.add("-A")
    return fakes.repo.git.index.commit("ajuste", author=git.Actor(*author), committer=git.Actor(*author)).hexsha


def test_a_baja_hidden_behind_the_approved_status_line_is_not_approved(fakes: Fakes):
    """A multi-line value keeps the approved `status: activo` line byte for byte, and a second
    `status: baja` below it decides: the baja is judged by the landing that made the value
    baja, not by a line."""
    two_applied(fakes)
    _edit_entry_and_push(fakes, lambda t: t.replace("  department: Urgencias\n", "", 1).replace(
        "  status: activo\n", "  department: \"Urgencias\n  status: activo\n  nocturno\"\n  status: baja\n", 1),
        ("Mallory", "mallory@evil.example"))
    approved, reason = verdict(fakes)
    assert not approved and "pushed straight to the protected branch" in reason
    fakes.apply()
    assert "SSM-000002" in fakes.state("a-first")


def test_rewriting_an_approved_status_line_does_not_veto_the_baja(fakes: Fakes):
    two_applied(fakes)
    fakes.repo.find("SSM-000002")["status"] = "baja"
    fakes.repo.squash_merge("Baja de SSM-000002", approvers=(APPROVER_1,))
    _edit_entry_and_push(fakes, lambda t: t.replace("  status: baja\n", "  status: 'baja'  # sí\n", 1),
                         ("Zoé", "zoe@salud.morelos.gob.mx"))
    approved, reason = verdict(fakes)
    assert approved, reason
    fakes.apply()
    assert "SSM-000002" not in fakes.state("a-first")


def test_renaming_an_entitlement_the_policy_lists_as_privileged_keeps_its_group_privileged(fakes: Fakes):
    # README's own example: privileged_entitlements: [vpn, admin_ti]; admin_ti is not flagged in entitlements.yaml
    fakes.repo.policy["privileged_entitlements"] = ["vpn", "admin_ti"]
    fakes.repo.entitlements["admin_ti"] = {"description": "Administración TI", "group": "GG-Admins-TI"}
    fakes.add("SSM-000001")
    fakes.repo.squash_merge()
    # One approver: rename the key, same group (nothing flagged is dropped: ordinary change).
    fakes.repo.entitlements["soporte"] = fakes.repo.entitlements.pop("admin_ti")
    fakes.repo.squash_merge("Renombrar admin_ti", approvers=(APPROVER_1,))
    fakes.repo.find("SSM-000001")["entitlements"].append("soporte")
    fakes.repo.squash_merge("Soporte para SSM-000001", approvers=(APPROVER_1,))
    judged = grant_judged(fakes, "GG-Admins-TI")
    assert not judged.approved and "needs 2 distinct approvers" in judged.approval.reason


def test_giving_a_privileged_group_to_an_unflagged_entitlement_keeps_it_privileged(fakes: Fakes):
    fakes.add("SSM-000001")
    fakes.repo.squash_merge()
    # One approver: vpn (still flagged privileged) now names a dummy group; a new, unflagged
    # entitlement names the real VPN group.  No privileged flag or key dropped.
    fakes.repo.entitlements["vpn"]["group"] = "GG-VPN-Legado"
    fakes.repo.entitlements["remoto"] = {"description": "Acceso remoto", "group": "GG-VPN-Remoto"}
    fakes.repo.squash_merge("Reorganizar grupos", approvers=(APPROVER_1,))
    fakes.repo.find("SSM-000001")["entitlements"].append("remoto")
    fakes.repo.squash_merge("Remoto para SSM-000001", approvers=(APPROVER_1,))
    judged = grant_judged(fakes)
    assert not judged.approved and "needs 2 distinct approvers" in judged.approval.reason


def test_renaming_a_rules_file_without_approval_does_not_reorder_the_rules(repo):
    """Rules are evaluated in file-name order: `git mv a-bloqueos.yaml z-bloqueos.yaml`, not one
    line changed, would put an allow before a deny.  The rename is part of the new order."""
    repo.add("HG-CUERNAVACA", person("SSM-000001"))
    repo.networks = {"networks": {"clientes": {"cidr": "10.10.1.0/24"}, "red": {"cidr": "10.10.0.0/16"}},
                     "hosts": {"expediente": {"address": "10.10.2.2"}}, "services": {}}
    deny = {"name": "hgc-deny", "source": "clientes", "destination": "expediente", "action": "deny",
            "devices": ["fw-1"], "unit": "HG-CUERNAVACA", "justification": "Bloqueo", "solicitud": SOL}
    allow = {"name": "hgc-allow", "source": "red", "destination": "expediente", "protocol": "tcp",
             "ports": [443], "action": "allow", "devices": ["fw-1"], "unit": "HG-CUERNAVACA",
             "justification": "Web", "solicitud": SOL}
    repo.rules = {"a-bloqueos": [deny], "m-web": [allow]}
    repo.squash_merge("Reglas", approvers=(APPROVER_1,))
    state0 = load_desired_state(at_ref(repo.root).files, devices=frozenset({"fw-1"}))
    before = [r.name for r in device_rules(state0.security, "fw-1", "2026-11-01").rules]
    # Straight to main, no approval: `git mv a-bloqueos.yaml z-bloqueos.yaml`, not one line changed.
    g = repo.git
    g.git.mv("desired_state/security_rules/a-bloqueos.yaml", "desired_state/security_rules/z-bloqueos.yaml")
    g.index.commit("renombrar", author=git.Actor("Mallory", "mallory@evil.example"),
                   committer=git.Actor("Mallory", "mallory@evil.example"))
    source = at_ref(repo.root)
    state = load_desired_state(source.files, devices=frozenset({"fw-1"}))
    wanted = device_rules(state.security, "fw-1", "2026-11-01")
    after = [r.name for r in wanted.rules]
    assert before != after
    [change] = order_change("fw-1", "fw-1:order", "fw-1", before, after, wanted)
    [judged] = review(Plan((change,)), source, state, None, Targets()).changes
    assert not judged.approved and "pushed straight to the protected branch" in judged.approval.reason


def test_an_unapproved_revert_of_an_approved_baja_not_yet_applied_is_said_in_the_plan(fakes: Fakes):
    """The revert leaves nothing to change (the account was never disabled), so no change in
    the plan would show it: the plan says what landed without approval since the applied
    commit."""
    two_applied(fakes)
    fakes.repo.find("SSM-000002")["status"] = "baja"
    fakes.repo.squash_merge("Baja de SSM-000002", approvers=(APPROVER_1,))
    fakes.repo.find("SSM-000002")["status"] = "activo"
    revert = fakes.repo.direct_push("Se revierte la baja", author=("Zoé", "zoe@salud.morelos.gob.mx"))
    plan = fakes.plan()
    assert not [c for c in plan.changes if c.target == "a-first"]
    [warning] = [w for w in plan.warnings if "without a signed approval" in w]
    assert revert[:10] in warning and "an approved change they undid is not applied either" in warning
