"""Changes are judged by the rules in force before the commit that landed them: a pull
request cannot approve itself with approvers, thresholds or privileges it brings (issue 12)."""
from __future__ import annotations

from conftest import APPROVER_1, APPROVER_2, REQUESTER
from fakes import Fakes

INVENTED = (("Juan Inventado", "juan@evil.example"), ("Ana Inventada", "ana@evil.example"))


def approvals(plan) -> dict[str, tuple[bool, str]]:
    return {c.key: (c.approved, c.approval.reason) for c in plan.changes if c.target == "a-first"}


def test_approvers_a_pull_request_adds_do_not_approve_it(fakes: Fakes):
    fakes.add("SSM-000001")
    fakes.repo.squash_merge()
    fakes.apply()
    fakes.add("SSM-000002")
    for name, email in INVENTED:
        fakes.repo.policy["approvers"].append({"name": name, "email": email, "units": ["*"]})
    fakes.repo.squash_merge("Alta y dos aprobadores nuevos", approvers=INVENTED)
    approved, reason = approvals(fakes.plan())["SSM-000002"]
    assert not approved and "a signature by juan@evil.example, who is not an approver in inventory/approvers.yaml" in reason
    # The policy change landed without the approvals it needs (two, by approvers whose paths
    # cover inventory/approvers.yaml, under the policy before it): it never takes effect, so
    # the invented approvers count for nothing that lands after it either.
    fakes.add("SSM-000003")
    fakes.repo.find("SSM-000002")["title"] = "Enfermera Jefe"
    fakes.repo.squash_merge("Alta y cambio de puesto", approvers=INVENTED)
    verdicts = approvals(fakes.plan())
    assert not verdicts["SSM-000003"][0] and "juan@evil.example, who is not an approver" in verdicts["SSM-000003"][1]
    assert not verdicts["SSM-000002"][0]


def test_a_policy_edit_pushed_straight_to_main_is_never_in_force(fakes: Fakes):
    """The attacker swaps Marta's key for their own on main, then signs a pull request as
    Marta on top of it: judged by the last approved policy, the signature does not verify."""
    from conftest import key_of, public_key_of

    fakes.add("SSM-000001")
    fakes.repo.squash_merge()
    fakes.repo.policy["approvers"][0]["keys"] = [public_key_of("atacante@evil.example")]
    fakes.repo.direct_push("Llave nueva")
    base = fakes.head()
    fakes.add("SSM-000002")
    head = fakes.repo.squash_merge("Alta", signed=False)
    from reconciler.approval.approve import approve

    approve(fakes.repo.git, base, head, APPROVER_1[1], key_of("atacante@evil.example"))
    approved, reason = approvals(fakes.plan())["SSM-000002"]
    assert not approved and "signature does not verify against the keys" in reason
    # An approved policy change on top of the unapproved edit would make the edit part of the
    # policy unseen (the reviewers' diff starts from it): it does not take effect either.
    def raul_rotates_his_key_then_signs_an_alta(key: str) -> tuple[bool, str]:
        fakes.repo.policy["approvers"][1]["keys"] = [public_key_of("raul-nueva")]
        fakes.repo.squash_merge("Llave nueva de Raúl", approvers=(APPROVER_1, APPROVER_2))
        base = fakes.head()
        fakes.add(key)
        head = fakes.repo.squash_merge(f"Alta de {key}", signed=False)
        approve(fakes.repo.git, base, head, APPROVER_2[1], key_of("raul-nueva"))
        return approvals(fakes.plan())[key]

    assert not raul_rotates_his_key_then_signs_an_alta("SSM-000003")[0]
    # Reverting the edit (back to the policy in force), then changing Raúl's key approved by two.
    del fakes.repo.policy["approvers"][0]["keys"]
    del fakes.repo.policy["approvers"][1]["keys"]
    fakes.repo.direct_push("Se revierte la llave de Marta")
    approved, reason = raul_rotates_his_key_then_signs_an_alta("SSM-000004")
    assert approved, reason


def test_dropping_the_privileged_flag_in_the_same_pull_request_does_not_lower_the_bar(fakes: Fakes):
    fakes.add("SSM-000001")
    fakes.repo.squash_merge()
    fakes.apply()
    fakes.repo.entitlements["vpn"]["privileged"] = False
    fakes.repo.policy["privileged_entitlements"] = []
    fakes.repo.find("SSM-000001")["entitlements"].append("vpn")
    fakes.repo.squash_merge("VPN para SSM-000001", approvers=(APPROVER_1,))
    # The fake kind grants no groups: the privilege is read where review reads it.
    from reconciler.approval.in_force import RulesInForce
    from reconciler.desired.load import load_desired_state
    from reconciler.desired.source import at_ref

    source = at_ref(fakes.repo.root)
    rules = RulesInForce(source, load_desired_state(source.files))
    landed = fakes.head()
    assert rules.at(fakes.repo.git.commit(landed).parents[0].hexsha).privileged == {"gg-vpn-remoto": "vpn"}
    assert rules.at(landed).privileged == {}
    # The grant as AD plans it: the person's entry, one group added.
    from reconciler.approval.review import review
    from reconciler.desired.model import Source
    from reconciler.plan import AttributeChange, Change, Movement, Plan

    grant = Change(Movement.MODIFICACION, "ad", "account", "SSM-000001", "SSM-000001",
                   (AttributeChange("groups", (), ("GG-VPN-Remoto",)),), unit="HG-CUERNAVACA",
                   origins=(Source("desired_state/users/hg-cuernavaca.yaml", None, ("people", 0)),))

    class Targets:
        def removed_declaration(self, change):
            return None

        def implied_approvals(self, target, changes):
            return {}

    [judged] = review(Plan((grant,)), source, rules.state, None, Targets()).changes
    assert not judged.approved
    assert judged.approval.reason.startswith("grants privileged vpn: needs 2 distinct approvers, has 1")


def test_the_repositorys_first_commit_approves_nothing(fakes: Fakes):
    """The first commit is the trust root: the policy, alone.  People declared in it are not
    approved by anyone."""
    git_ = fakes.repo.git
    fakes.add("SSM-000001")
    fakes.repo.write()
    git_.git.add("-A")
    git_.index.commit("Todo de una vez\n\nApproved-by: Ing. Marta Ávila Ibáñez <marta.avila@salud.morelos.gob.mx>\n"
                      "Approved-by: Lic. Raúl Peña Güemes <raul.pena@salud.morelos.gob.mx>")
    approved, reason = approvals(fakes.plan())["SSM-000001"]
    assert not approved and "is the repository's first: no policy was in force before it" in reason


def test_a_policy_change_takes_effect_for_what_lands_after_it(fakes: Fakes):
    fakes.add("SSM-000001")
    fakes.repo.squash_merge()
    fakes.repo.policy["required_approvals"] = 2
    fakes.add("SSM-000002")
    fakes.repo.squash_merge("Política más estricta y un alta", approvers=(APPROVER_1, APPROVER_2))
    assert approvals(fakes.plan())["SSM-000002"][0]  # judged by the old policy: one approver
    fakes.add("SSM-000003")
    fakes.repo.squash_merge("Otra alta", requester=REQUESTER, approvers=(APPROVER_2,))
    approved, reason = approvals(fakes.plan())["SSM-000003"]
    assert not approved and "needs 2 approvers, has 1" in reason


def test_the_person_a_change_is_about_never_approves_it(fakes: Fakes):
    """Someone else typed the change; its subject approved it.  Separation of duties holds by
    the person's own addresses, whoever the Git author is."""
    fakes.add("SSM-000001")
    fakes.repo.squash_merge()
    fakes.add("SSM-000002")
    fakes.repo.find("SSM-000002")["mailbox"] = {"address": "zoe.guemes@salud.morelos.gob.mx",
                                                "aliases": [APPROVER_2[1]]}
    fakes.repo.squash_merge("Alta de SSM-000002", approvers=(APPROVER_2,))
    approved, reason = approvals(fakes.plan())["SSM-000002"]
    assert not approved and f"{APPROVER_2[0]} is the person the change is about and cannot approve it" in reason
    fakes.add("SSM-000003")
    fakes.repo.squash_merge("Alta de SSM-000003", approvers=(APPROVER_2,))
    assert approvals(fakes.plan())["SSM-000003"][0]  # about someone else, the same approver counts


def test_an_unapproved_grant_is_not_laundered_by_a_later_approved_change(fakes: Fakes):
    """A grant pushed straight to main, then an approved pull request that changes only the
    person's phone: the newest commit over the entry is approved, the grant's line is not."""
    fakes.add("SSM-000001")
    fakes.repo.squash_merge()
    fakes.apply()
    fakes.repo.find("SSM-000001")["given_names"] = "José Ignacio"
    fakes.repo.direct_push("Cambio directo")
    approved, reason = approvals(fakes.plan())["SSM-000001"]
    assert not approved and "pushed straight to the protected branch" in reason
    fakes.repo.find("SSM-000001")["phone"] = "777 311 2299"
    fakes.repo.squash_merge("Cambio de teléfono")
    approved, reason = approvals(fakes.plan())["SSM-000001"]
    assert not approved and reason.startswith("commit ") and "an approval covers the whole change" in reason
    fakes.repo.find("SSM-000001")["given_names"] = "José I."
    fakes.repo.squash_merge("Nombre corregido, revisado")
    assert approvals(fakes.plan())["SSM-000001"][0]  # the line is now written by an approved commit


def test_an_approver_named_by_employee_key_never_approves_a_change_about_themselves(fakes: Fakes):
    """Their mailbox may be on another domain than their approver e-mail: the policy says who
    they are in desired_state/ (`employee_key`), and that settles it."""
    fakes.repo.policy["approvers"][1]["employee_key"] = "SSM-000002"
    fakes.add("SSM-000001")
    fakes.repo.squash_merge()
    fakes.add("SSM-000002")
    fakes.repo.squash_merge("Alta de SSM-000002", approvers=(APPROVER_2,))
    approved, reason = approvals(fakes.plan())["SSM-000002"]
    assert not approved and f"{APPROVER_2[0]} is the person the change is about" in reason
