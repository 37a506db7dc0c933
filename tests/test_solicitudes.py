"""Provenance, policy and incremental scope from real Git repositories (no directory needed)."""
from __future__ import annotations

import pytest

from conftest import APPROVER_1, APPROVER_2, REQUESTER, UNIT_HEAD, person, two_long_files
from reconciler.desired.model import Source
from reconciler.run.incremental import scope_since_applied
from reconciler.approval.policy import Approver, Policy, Scope, Vouch, parse_policy
from reconciler.approval.solicitudes import History, Identity, pull_request_of
from reconciler.desired.source import at_ref
from reconciler.errors import ValidationFailed


def person_source(index: int, file: str = "desired_state/users/hg-cuernavaca.yaml") -> Source:
    return Source(file, None, ("people", index))


def history_of(repo) -> History:
    return History(repo.git, repo.git.head.commit)


@pytest.mark.parametrize("message, number", [
    ("Merge pull request #12 from salud/alta-ana\n\nAlta", "#12"),
    ("Alta de Ana López (#7)\n\nApproved-by: A <a@x.mx>", "#7"),
    ("Merge branch 'alta' into 'main'\n\nAlta\n\nSee merge request salud/identidades!31\n", "!31"),
    ("Alta\n\nMenciona #5 en el cuerpo", None),
    ("Alta directa", None),
])
def test_pull_request_numbers_from_github_and_gitlab_messages(message, number):
    assert pull_request_of(message) == number


def test_blame_finds_the_commit_that_last_changed_a_persons_lines(repo):
    repo.add("HG-CUERNAVACA", person("SSM-000001"), person("SSM-000002", curp=None, given_names="Ana"))
    first = repo.squash_merge("Altas", requester=UNIT_HEAD, approvers=(APPROVER_1,))
    repo.find("SSM-000002")["title"] = "Enfermera Jefe"
    second = repo.squash_merge("Cambio de puesto", requester=REQUESTER, approvers=(APPROVER_1, APPROVER_2))
    history = history_of(repo)
    assert history.last_change((person_source(0),)) == first
    assert history.last_change((person_source(1),)) == second
    p = history.provenance(second)
    assert p.pull_request == "#2" and p.how == "squash merge" and p.requester.email == REQUESTER[1]
    assert [a.name for a in p.claimed] == [APPROVER_1[0], APPROVER_2[0]]  # the trailers: information only


def test_a_persons_provenance_includes_the_entitlements_it_refers_to(repo):
    repo.add("HG-CUERNAVACA", person("SSM-000001"))
    repo.squash_merge("Alta")
    repo.entitlements["internet"]["group"] = "GG-Internet-Total"
    renamed = repo.squash_merge("Renombrar el grupo de internet")
    ents = Source("desired_state/entitlements.yaml", None, ("entitlements", "internet"))
    assert history_of(repo).last_change((person_source(0), ents)) == renamed


def test_a_removed_person_is_traced_to_the_commit_that_removed_them(repo):
    repo.add("HG-CUERNAVACA", person("SSM-000001"), person("SSM-000012", curp=None, given_names="Ana"))
    repo.squash_merge("Altas")
    repo.remove("SSM-000001")
    removal = repo.merge_pr("baja", "Baja por jubilación", requester=UNIT_HEAD)
    history = history_of(repo)
    sha = history.removal("SSM-000001", "desired_state/users")
    assert sha == removal  # the landing on main's first-parent line, not the branch's commit
    assert history.provenance(sha).how == "merge commit" and history.provenance(sha).requester.email == UNIT_HEAD[1]
    # SSM-00001 is a prefix of SSM-000012's key, not the same key
    assert history.removal("SSM-00001", "desired_state/users") is None


POLICY = Policy((Approver(Identity(*APPROVER_1), ("*",)), Approver(Identity(*APPROVER_2), ("*",)),
                 Approver(Identity(*UNIT_HEAD), ("HG-CUERNAVACA",)),
                 Approver(Identity("Infra", "infra@x.mx"), (), ("desired_state/entitlements.yaml",))),
                1, 2, frozenset({"vpn"}))
SCOPE = Scope("HG-CUERNAVACA", ("desired_state/users/hg-cuernavaca.yaml",))
ASKED = {REQUESTER[1].casefold()}


def vouches(*people) -> list[Vouch]:
    """Approvals whose signatures verified (signing itself: test_signatures.py)."""
    return [Vouch(POLICY.by_email(Identity(*who)), "signature") for who in people]


def test_policy_accepts_one_valid_approver_and_names_them():
    verdict = POLICY.evaluate(vouches(APPROVER_1), ASKED, SCOPE)
    assert verdict.ok and verdict.reason == f"approved by {APPROVER_1[0]}"


def test_policy_email_comparison_ignores_case():
    upper = (APPROVER_1[0], APPROVER_1[1].upper())
    assert POLICY.by_email(Identity(*upper)) is POLICY.by_email(Identity(*APPROVER_1))
    assert not POLICY.evaluate(vouches(APPROVER_1), {APPROVER_1[1].upper().casefold()}, SCOPE).ok


@pytest.mark.parametrize("approvers, requesters, scope, reason", [
    ((APPROVER_1,), {APPROVER_1[1]}, SCOPE, "requested the change and cannot approve it"),
    ((UNIT_HEAD,), ASKED, Scope("CS-JIUTEPEC", ()), "may not approve unit CS-JIUTEPEC"),
    ((APPROVER_1,), ASKED, Scope("HG-CUERNAVACA", (), ("vpn",)), "grants privileged vpn: needs 2 distinct approvers, has 1"),
    ((APPROVER_1, APPROVER_1), ASKED, Scope("HG-CUERNAVACA", (), ("vpn",)), "needs 2 distinct approvers, has 1"),
    ((APPROVER_1,), ASKED, Scope("HG-CUERNAVACA", (), (), frozenset({APPROVER_1[1]})),
     "is the person the change is about and cannot approve it"),
])
def test_policy_refusals_say_exactly_why(approvers, requesters, scope, reason):
    verdict = POLICY.evaluate(vouches(*approvers), requesters, scope)
    assert not verdict.ok and reason in verdict.reason


def test_policy_paths_let_an_approver_approve_files_outside_any_unit():
    scope = Scope(None, ("desired_state/entitlements.yaml",))
    assert POLICY.evaluate(vouches(("Infra", "infra@x.mx")), ASKED, scope).ok
    assert not POLICY.evaluate(vouches(UNIT_HEAD), ASKED, scope).ok


def test_two_distinct_approvers_grant_a_privileged_entitlement():
    assert POLICY.evaluate(vouches(APPROVER_1, APPROVER_2), ASKED, Scope("HG-CUERNAVACA", (), ("vpn",))).ok


def test_policy_file_errors_name_file_line_and_field():
    text = "approvers:\n  - name: Ana\n    email: no-es-correo\n    units: [HG]\n"
    with pytest.raises(ValidationFailed) as caught:
        parse_policy(text, "inventory/approvers.yaml")
    [problem] = caught.value.problems
    assert (problem.file, problem.line, problem.field) == ("inventory/approvers.yaml", 3, "approvers[0].email")


def test_incremental_scope_names_changed_people_files_and_their_keys_before_and_after(repo):
    repo.add("HG-CUERNAVACA", person("SSM-000001"))
    repo.add("CS-JIUTEPEC", person("SSM-000002", curp=None, given_names="Ana"))
    base = repo.squash_merge("Altas")
    repo.git.git.update_ref("refs/reconciler/applied/ad", base)
    repo.remove("SSM-000001")
    repo.add("HG-CUERNAVACA", person("SSM-000003", curp=None, given_names="Luis"))
    repo.squash_merge("Baja y alta")
    scope = scope_since_applied(at_ref(repo.root), ["refs/reconciler/applied/ad"])
    assert not scope.full and scope.user_files == {"users/hg-cuernavaca.yaml"}
    assert scope.employee_keys == {"SSM-000001", "SSM-000003"} and scope.previous_keys == {"SSM-000001"}


def test_incremental_scope_falls_back_to_full_and_says_why(repo):
    repo.add("HG-CUERNAVACA", person("SSM-000001"))
    base = repo.squash_merge("Altas")
    assert scope_since_applied(at_ref(repo.root), ["refs/reconciler/applied/ad"]).reason.startswith(
        "no applied commit recorded yet")
    repo.git.git.update_ref("refs/reconciler/applied/ad", base)
    repo.entitlements["internet"]["description"] = "Internet"
    repo.squash_merge("Descripción")
    assert scope_since_applied(at_ref(repo.root), ["refs/reconciler/applied/ad"]).reason == \
        "desired_state/entitlements.yaml changed"


def test_validate_checks_the_approval_policy_too(repo):
    from conftest import run_cli

    repo.add("HG-CUERNAVACA", person("SSM-000001"))
    repo.policy["approvers"][0]["units"] = "HG-CUERNAVACA"  # a string where a list belongs
    repo.write()
    code, out, err = run_cli("--repo", str(repo.root), "validate")
    assert code == 1 and "inventory/approvers.yaml:" in err and "approvers[0].units: expected a list" in err
    repo.policy["approvers"][0]["units"] = ["HG-CUERNAVACA"]
    repo.write()
    code, out, err = run_cli("--repo", str(repo.root), "validate")
    assert code == 0 and "inventory/approvers.yaml is valid: 4 approvers." in out


@pytest.mark.parametrize("message, expected", [
    ("Alta (#3)\n\nApproved-by: Ana <a@x.mx>\nApproved-by: Raúl <r@x.mx>\n",
     [("Approved-by", "Ana <a@x.mx>"), ("Approved-by", "Raúl <r@x.mx>")]),
    ("Merge pull request #4 from x/y\n\nAlta de personal\n\nApproved-by: Ana <a@x.mx>", [("Approved-by", "Ana <a@x.mx>")]),
    ("Approved-by: Ana <a@x.mx>", []),  # a subject line is never a trailer
    ("Alta\n\nApproved-by: Ana <a@x.mx>\nesto no es un trailer", []),  # the last paragraph must be all trailers
])
def test_trailers_are_read_like_git_interpret_trailers(message, expected, repo):
    from reconciler.approval.solicitudes import trailers

    assert trailers(message) == expected
    (repo.root).mkdir(parents=True, exist_ok=True)
    repo.git.index.commit(message)
    assert [(k, v) for k, v in repo.git.head.commit.trailers_list] == expected


def test_an_applied_commit_missing_from_the_clone_means_a_full_plan(repo):
    repo.add("HG-CUERNAVACA", person("SSM-000001"))
    repo.squash_merge("Alta")
    # A ref naming an object this clone does not have, as a shallow CI checkout would.
    (repo.root / ".git" / "refs" / "reconciler" / "applied").mkdir(parents=True)
    (repo.root / ".git" / "refs" / "reconciler" / "applied" / "ad").write_text("1" * 40 + "\n")
    scope = scope_since_applied(at_ref(repo.root), ["refs/reconciler/applied/ad"])
    assert scope.full and scope.reason == ("the commit refs/reconciler/applied/ad names is not in this clone "
                                           "(fetch the full history)")


def test_the_baja_of_a_removed_line_or_rule_is_judged_by_the_commit_that_removed_it_there(repo):
    """A line's number or a rule's name may also be written in a unit's file (a person's
    extension): the removal is looked for where lines and rules are declared, so an approved
    commit that gave someone extension 4477 never approves removing line 4477."""
    from reconciler.approval.review import review
    from reconciler.config.inventory import SecretSource
    from reconciler.desired.load import load_desired_state
    from reconciler.plan import Change, Movement, Plan
    from reconciler.providers.cisco_ios.target import CiscoTarget
    from reconciler.providers.network.device import DeviceProvider
    from reconciler.providers.sip.provider import SipProvider
    from reconciler.providers.sip.target import SipTarget

    providers = {"phone": SipProvider(SipTarget(name="phone", domain="x", database="/nonexistent", rpc_url="http://x")),
                 "fw": DeviceProvider(CiscoTarget(name="fw", host="h", username="u", known_hosts="/nonexistent", password=SecretSource(env="X"),
                                                  interface="Gi0/1", acl="RC"))}

    class Targets:  # what the engine answers, from the providers
        def removed_declaration(self, change):
            return providers[change.target].removed_declaration(change)

        def implied_approvals(self, target, changes):
            return {}

    repo.add("HG-CUERNAVACA", person("SSM-000001", extension="4477"))
    repo.squash_merge("Alta con extensión 4477", approvers=(APPROVER_1, APPROVER_2))
    repo.find("SSM-000001")["phone"] = "777 311 2211"
    repo.direct_push("Cambio directo, sin aprobación")
    source = at_ref(repo.root)
    line = Change(Movement.BAJA, "phone", "sip-line", "4477", "4477", reason="no longer declared", unit="HG-CUERNAVACA")
    rule = Change(Movement.BAJA, "fw", "firewall-rule", "SSM-000001", "r", reason="no longer declared")
    reviewed = review(Plan((line, rule)), source, load_desired_state(source.files), None, Targets())
    assert [c.approved for c in reviewed.changes] == [False, False]
    assert all(c.provenance is None for c in reviewed.changes)  # no commit under assets/ or security_rules/


def test_the_unit_of_a_removed_person_is_the_parsed_unit_of_the_file_that_declared_them(tmp_path):
    """Whose baja it is when the object no longer says (an account left in the bajas OU): the
    `unit:` of the file the person was removed from, as YAML reads it, never a line inside a
    quoted value that only looks like one."""
    import git as gitlib

    from reconciler.approval.solicitudes import History

    repo = gitlib.Repo.init(tmp_path, initial_branch="main")
    users = tmp_path / "desired_state" / "users"
    users.mkdir(parents=True)
    actor = gitlib.Actor("TI", "ti@salud.morelos.gob.mx")

    def commit(text: str, message: str) -> str:
        (users / "hg.yaml").write_text(text, encoding="utf-8")
        repo.index.add(["desired_state/users/hg.yaml"])
        return repo.index.commit(message, author=actor, committer=actor).hexsha

    tricky = ('"unit": HG-CUERNAVACA\npeople:\n  - employee_key: SSM-000007\n    given_names: Ana\n'
              '    solicitud: {justification: "Alta\nunit: CS-JIUTEPEC\n  por ingreso"}\n')
    commit(tricky, "Alta")
    removed = commit('"unit": HG-CUERNAVACA\npeople: []\n', "Baja por eliminación")
    history = History(repo, repo.commit(removed))
    assert history.removed_unit(removed, "desired_state/users", "SSM-000007") == "HG-CUERNAVACA"
    assert history.removed_unit(removed, "desired_state/users", "SSM-000099") is None  # never declared there


def test_batched_blames_of_a_long_file_credit_each_person_as_one_blame_each_does(repo):
    """History.prefetch blames many people of a long file in one process (one -L each): every
    person's landings must be what a blame of their lines alone, or of the whole file, gives."""
    people = [person(f"SSM-{i:06d}", curp=None, given_names=f"Ana {i}") for i in range(1, 161)]
    repo.add("HG-CUERNAVACA", *people)
    repo.squash_merge("Altas")
    for step, keys in enumerate([(3, 50, 51, 159), (4, 50, 120), (1, 160)]):
        for k in keys:
            repo.find(f"SSM-{k:06d}")["title"] = f"Puesto {step}"
        repo.squash_merge(f"Cambios {step}")
    text = (repo.root / "desired_state" / "users" / "hg-cuernavaca.yaml").read_text(encoding="utf-8")
    assert text.count("\n") > 2000  # a long file: blamed by line range
    sources = [person_source(i) for i in (0, 2, 3, 49, 50, 119, 158, 159)]
    batched = History(repo.git, repo.git.head.commit)
    batched.prefetch(sources)
    assert len(batched._spans) == 9  # eight people and the file's unit line, in one blame
    alone, whole = History(repo.git, repo.git.head.commit, by_span=True), history_of(repo)
    for source in sources:
        assert batched.written_by(source) == alone.written_by(source) == whole.written_by(source), source


def test_a_partial_load_and_provenance_read_each_people_file_once(repo, monkeypatch):
    """A plan of a few people loads their entries, then blames their lines: each file of
    thousands of people is read from Git once (entries.text_of_blob), and the landings are
    those a provenance that reads everything again finds."""
    from reconciler.desired import entries, files
    from reconciler.desired.load import load_desired_state
    from reconciler.approval import solicitudes
    two_long_files(repo)
    entries._BLOB_TEXTS.clear()
    reads: list[str] = []
    read_text, blob_text = files.CommitFiles.read_text, solicitudes.blob_text
    monkeypatch.setattr(files.CommitFiles, "read_text", lambda self, rel: reads.append(rel) or read_text(self, rel))
    monkeypatch.setattr(solicitudes, "blob_text", lambda commit, path: reads.append(path) or blob_text(commit, path))
    source = at_ref(repo.root, "main")
    only = {"users/hg-cuernavaca.yaml": frozenset({"SSM-000007", "SSM-000100"}),
            "users/cs-jiutepec.yaml": frozenset({"SSM-000200"})}
    state = load_desired_state(source.files, only=only)
    people = [p.source for p in state.people]
    assert len(people) == 3
    history = History(source.repo, source.commit)
    history.prefetch(people)
    landings = [history.written_by(p) for p in people]
    assert sorted(r for r in reads if "users/" in r) == ["users/cs-jiutepec.yaml", "users/hg-cuernavaca.yaml"]
    entries._BLOB_TEXTS.clear()
    again = History(source.repo, source.commit, by_span=True)
    assert landings == [again.written_by(p) for p in people]
    assert repo.git.head.commit.hexsha in landings[[p.path for p in people].index(("people", 6))]


def test_a_link_is_never_named_like_the_file_with_the_same_bytes(repo):
    """A link's blob holds its target's path: one that spells a people file's text has the
    same blob id, and a text read by id (entries.text_of_blob) would then be the file's."""
    from reconciler.desired.files import CommitFiles, identity_at
    repo.add("HG-CUERNAVACA", person("SSM-000001"))
    repo.squash_merge("Alta")
    text = (repo.root / "desired_state" / "users" / "hg-cuernavaca.yaml").read_text(encoding="utf-8")
    (repo.root / "desired_state" / "users" / "hg-cuautla.yaml").symlink_to(text)
    repo.git.git.add("-A")
    commit = repo.git.index.commit("Un enlace")
    regular, link = "desired_state/users/hg-cuernavaca.yaml", "desired_state/users/hg-cuautla.yaml"
    assert (commit.tree / regular).hexsha == (commit.tree / link).hexsha
    assert identity_at(commit, regular) == f"blob:{(commit.tree / regular).hexsha}"
    assert identity_at(commit, link) is None and CommitFiles(commit).identity("users/hg-cuautla.yaml") is None
