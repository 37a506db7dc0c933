"""The `reconciler` command: argument parsing, then the command's own module.

Parsing imports nothing but argparse: `reconciler --help` answers at once.  Each command's
module (and through it the desired-state loader, Git, and a target kind's libraries) is
imported only when that command runs; providers are loaded by the registry only for the
targets an inventory names.
"""
from __future__ import annotations

import argparse
import importlib
import os
from pathlib import Path

from reconciler.i18n import N_, _

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2
EXIT_SKIPPED = 3  # applied what was approved; some changes were skipped for lack of approval
DEFAULT_REF = "main"  # the protected branch (reconciler.desired.source says the same)

# command -> "module:function" run with (args, out, err)
COMMANDS = {
    "validate": "reconciler.cli.validate:validate",
    "plan": "reconciler.cli.reconcile:plan",
    "apply": "reconciler.cli.reconcile:apply",
    "probe": "reconciler.cli.reconcile:probe",
    "audit": "reconciler.cli.records:audit",
    "history": "reconciler.cli.records:history",
    "report": "reconciler.cli.records:monthly",
    "lines": "reconciler.cli.lines:bill_report",
    "approve": "reconciler.cli.approve:approve",
    "attest": "reconciler.cli.approve:attest",
    "credentials": "reconciler.cli.credentials:open_folio",
    "import": "reconciler.cli.importer:import_directory",
    "pending": "reconciler.cli.pending:pending",
    "offboarding": "reconciler.cli.offboarding:offboarding",
    "shards": "reconciler.cli.shards:list_shards",
    "push": "reconciler.cli.shards:push",
}


class _Version(argparse.Action):
    """--version: the exact release (a checkout's commit read only when asked, not at every start)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from reconciler.about import exact_version

        import sys

        print(f"reconciler {exact_version()}", file=sys.stdout)
        parser.exit()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="reconciler", description=(
        _("Reconcile what desired_state/ declares (people, mailboxes, phone lines, equipment, security "
        "rules) into Active Directory, the mail server, the SIP registrar, firewalls and routers: "
        "altas, modificaciones and bajas, planned before they are applied.")))
    p.add_argument("--version", action=_Version, help=_("show the version and exit"))
    p.add_argument("--repo", type=Path, default=Path("."), help=_("repository holding desired_state/ (default: .)"))
    p.add_argument("--debug", action="store_true", help=_("show a traceback on internal errors"))
    p.add_argument("--no-color", action="store_true", help=_("plain text even on a terminal"))
    p.add_argument("--lang", metavar="LANG", help=_("language of everything printed: es_MX or en (default: the "
                                                "environment's LANG, else the inventory's institution.language, "
                                                "else es_MX)"))
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_inventory(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument("--inventory", type=Path,
                        default=Path(os.environ.get("RECONCILER_INVENTORY", "inventory/lab.yaml")),
                        help=_("inventory file naming the targets (default: $RECONCILER_INVENTORY or inventory/lab.yaml)"))
        return sp

    validate = with_inventory(sub.add_parser("validate", help=_("check desired_state/ and report every problem")))
    validate.add_argument("--ref", help=_("check this commit instead of the working tree"))

    def targeted(name: str, help_text: str) -> argparse.ArgumentParser:
        sp = with_inventory(sub.add_parser(name, help=help_text))
        sp.add_argument("--target", action="append", default=[], help=_("only this target (repeatable)"))
        sp.add_argument("--shard", metavar="NAME", help=_("only the targets of this shard (`reconciler shards` lists "
                                                          "them)"))
        sp.add_argument("--ref", default=os.environ.get("RECONCILER_REF", DEFAULT_REF),
                        help=_("read the desired state from this commit (default: $RECONCILER_REF or main)"))
        sp.add_argument("--since-applied", action="store_true",
                        help=_("only the files changed since the commit last applied to each target"))
        sp.add_argument("--full-read", action="store_true",
                        help=_("read every target whole, not only what changed since the last read "
                               "(delta_read_hours)"))
        return sp

    plan = targeted("plan", _("show what apply would change (exit 0: nothing to do, 2: changes, 1: error)"))
    plan.add_argument("--output", choices=["text", "json", "markdown"], default="text")
    plan.add_argument("--working-tree", action="store_true",
                      help=_("preview the files on disk, committed or not (apply never does)"))
    plan.add_argument("--proposal", metavar="BASE", nargs="?", const="origin/main",
                      help=_("the plan of a pull request into BASE (default origin/main): its own changes are "
                           "shown as awaiting approval, not judged"))
    apply = targeted("apply", _("plan from a commit, then apply the approved changes and verify them"))
    apply.add_argument("--output", choices=["text", "json"], default="text")
    apply.add_argument("--auto-approve", action="store_true", help=_("do not ask for confirmation"))
    apply.add_argument("--allow-mass-baja", action="store_true",
                       help=_("apply even when the bajas exceed a target's max_bajas deletion guard"))
    apply.add_argument("--allow-mass-adoption", action="store_true",
                       help=_("apply even when the adoptions of existing accounts exceed a target's max_bajas "
                              "(bringing a whole directory under management)"))
    apply.add_argument("--strict", action="store_true",
                       help=_("refuse the whole run if any change lacks a valid approval (default: skip those)"))
    apply.add_argument("--expect-fingerprint", metavar="F", action="append", default=[],
                       help=_("refuse unless the plan made now has this fingerprint (the one approved); or, "
                              "repeated, TARGET=F for each target of a shard"))
    apply.add_argument("--approved-plan", metavar="FILE", type=Path,
                       help=_("the Markdown plan the reviewers approved (the pipeline's comment): refuse unless each "
                              "target's part of the plan made now has the fingerprint it lists"))
    apply.add_argument("--protected-branch", metavar="BRANCH",
                       default=os.environ.get("RECONCILER_PROTECTED_BRANCH", DEFAULT_REF),
                       help=_("apply only commits that landed on this branch (or origin/BRANCH), never going back "
                            "(default: $RECONCILER_PROTECTED_BRANCH or main)"))

    imp = with_inventory(sub.add_parser("import", help=_("read an existing directory and write its people as desired "
                                                         "state that adopts their accounts, with a reconciliation "
                                                         "report (read-only against every target)")))
    imp.add_argument("--mapping", type=Path, default=Path("inventory/import.yaml"),
                     help=_("the import mapping: OUs and attributes to units, excluded accounts (default: "
                            "inventory/import.yaml)"))
    imp.add_argument("--out", type=Path, help=_("the desired_state folder to write users/<unit>.yaml and "
                                                "assets/lines.yaml in (default: desired_state of --repo); existing "
                                                "files are never overwritten"))
    imp.add_argument("--report-only", action="store_true", help=_("write no desired state, only the report"))
    imp.add_argument("--output", choices=["markdown", "csv", "json"], default="markdown",
                     help=_("the report on standard output"))
    imp.add_argument("--csv", type=Path, metavar="FILE", help=_("also write the report as CSV to FILE"))

    audit_cmd = with_inventory(sub.add_parser("audit", help=_("the audit trail")))
    audit_sub = audit_cmd.add_subparsers(dest="audit_command", required=True, metavar="SUBCOMMAND")
    verify = audit_sub.add_parser("verify", help=_("check every target's hash chain, and that the records noted "
                                                 "in Git match it"))
    verify.add_argument("--inventory", type=Path, default=argparse.SUPPRESS, help=_("as before the subcommand"))
    from_git = _("read the records from the git notes (refs/notes/reconciler) alone, not from the audit files")
    verify.add_argument("--from-git", action="store_true", help=from_git)
    verify.add_argument("--ref", default=os.environ.get("RECONCILER_REF", DEFAULT_REF),
                        help=_("check the signed approvals on this branch's line (default: main)"))
    export = audit_sub.add_parser("export", help=_("write the records of a period as an archive that verifies on "
                                                   "any machine from itself alone (records, seals, Git objects)"))
    export.add_argument("--inventory", type=Path, default=argparse.SUPPRESS, help=_("as before the subcommand"))
    export.add_argument("--since", required=True, metavar="YYYY-MM-DD", help=_("first day (the institution's)"))
    export.add_argument("--until", required=True, metavar="YYYY-MM-DD", help=_("last day, included"))
    export.add_argument("--out", type=Path, metavar="FILE.tar.gz",
                        help=_("the archive (default: reconciler-audit-SINCE-UNTIL.tar.gz)"))
    prune = audit_sub.add_parser("prune", help=_("shorten this runner's trail files by the runs that ended before a "
                                                 "date, once their retention is over and an archive holds them"))
    prune.add_argument("--inventory", type=Path, default=argparse.SUPPRESS, help=_("as before the subcommand"))
    prune.add_argument("--before", required=True, metavar="YYYY-MM-DD", help=_("the runs that ended before this day"))
    prune.add_argument("--archive", required=True, type=Path, metavar="FILE.tar.gz",
                       help=_("the archive audit export wrote of them, checked before anything is removed"))
    prune.add_argument("--target", action="append", default=[], help=_("only this target (repeatable)"))
    checked = audit_sub.add_parser("verify-archive", help=_("check an archive audit export wrote, from the archive "
                                                            "alone"))
    checked.add_argument("archive", type=Path, metavar="FILE.tar.gz")
    checked.add_argument("--key", metavar="KEY", help=_("the apply key's public half (a key line or a .pub file), as "
                                                        "the institution keeps it (default: RECONCILER_APPLY_PUBLIC_KEY)"))
    history = with_inventory(sub.add_parser("history", help=_("every movement of a person, account or object")))
    history.add_argument("query", help=_("employee key, account name, or part of a name"))
    history.add_argument("--output", choices=["text", "json"], default="text")
    history.add_argument("--from-git", action="store_true", help=from_git)
    report = with_inventory(sub.add_parser("report", help=_("monthly indicators: approved versus applied and verified")))
    report.add_argument("--month", required=True, help=_("YYYY-MM (approval month)"))
    report.add_argument("--output", choices=["table", "csv", "json", "pdf", "html"], default="table",
                        help=_("pdf and html: the document for management, with charts (written to --out)"))
    report.add_argument("--out", type=Path, metavar="FILE", help=_("where --output pdf or html writes the document "
                                                                  "(default: reporte-YYYY-MM.pdf or .html)"))
    report.add_argument("--ref", default=os.environ.get("RECONCILER_REF", DEFAULT_REF),
                        help=_("read the work orders' confirmations from this commit (default: $RECONCILER_REF or "
                               "main)"))
    report.add_argument("--from-git", action="store_true", help=from_git)
    probe = targeted("probe", _("run every declared probe of the firewalls' and routers' rules now (exit 1 if one "
                              "fails), changing nothing"))
    probe.add_argument("--output", choices=["text", "json"], default="text")
    pending = with_inventory(sub.add_parser("pending", help=_("work orders still open on the systems with no API, "
                                                              "with their age (exit 1 if one is past its SLA)")))
    pending.add_argument("--target", action="append", default=[], help=_("only this target (repeatable)"))
    pending.add_argument("--ref", default=os.environ.get("RECONCILER_REF", DEFAULT_REF),
                         help=_("read the confirmations from this commit (default: $RECONCILER_REF or main)"))
    pending.add_argument("--output", choices=["text", "json"], default="text")
    pending.add_argument("--show", metavar="FOLIO", help=_("print the document of this work order as its operator "
                                                            "received it, once the apply key's signature is checked"))
    leaving = with_inventory(sub.add_parser("offboarding", help=_(
        "a person's baja de servicios: every access removed (verified), every work order raised, the equipment to "
        "collect and the carrier lines to cancel (exit 2 while an item is pending)")))
    leaving.add_argument("key", help=_("the person's employee key"))
    leaving.add_argument("--ref", default=os.environ.get("RECONCILER_REF", DEFAULT_REF),
                         help=_("read the desired state from this commit (default: $RECONCILER_REF or main)"))
    leaving.add_argument("--output", choices=["text", "json", "markdown", "pdf"], default="text")
    leaving.add_argument("--out", type=Path, metavar="FILE.pdf", help=_("where --output pdf writes the document "
                                                                     "(default: baja-de-servicios-KEY.pdf)"))
    leaving.add_argument("--from-git", action="store_true", help=from_git)
    lines = sub.add_parser("lines", help=_("phone lines"))
    lines_sub = lines.add_subparsers(dest="lines_command", required=True, metavar="SUBCOMMAND")
    bill = lines_sub.add_parser("report", help=_("a carrier's monthly bill against the declared lines: billed but "
                                                "not declared, declared but not billed, over the plan"))
    bill.add_argument("--bill", type=Path, required=True, metavar="FILE.csv", help=_("the carrier's export (see README)"))
    bill.add_argument("--ref", default=os.environ.get("RECONCILER_REF", DEFAULT_REF),
                      help=_("the declared lines at this commit (default: $RECONCILER_REF or main)"))
    bill.add_argument("--working-tree", action="store_true", help=_("the declared lines on disk instead"))
    bill.add_argument("--output", choices=["table", "csv", "json"], default="table")
    approve = sub.add_parser("approve", help=_("sign your approval of a pull request (its head onto its base)"))
    approve.add_argument("ref", nargs="?", default="HEAD", help=_("the pull request's head (default: HEAD)"))
    approve.add_argument("--base", default="origin/main", help=_("the branch it goes onto (default: origin/main)"))
    approve.add_argument("--key", type=Path, help=_("SSH key to sign with (default: git config user.signingkey, "
                                                  "else ~/.ssh/id_ed25519); a .pub file uses ssh-agent"))
    approve.add_argument("--as", dest="signer", metavar="EMAIL", help=_("your approver email (default: git config "
                                                                      "user.email)"))
    approve.add_argument("--fingerprint", help=_("the plan fingerprint you reviewed (recorded with the signature)"))
    approve.add_argument("--push", metavar="REMOTE", help=_("push the approvals ref to REMOTE afterwards"))
    approve.add_argument("--yes", action="store_true", help=_("do not ask before signing"))
    attest = sub.add_parser("attest", help=_("merge bot: sign what the forge says approved the merges of a push"))
    attest.add_argument("--forge", choices=["github", "gitlab"], required=True)
    attest.add_argument("--repository", required=True, help=_("owner/name (GitHub) or the project path (GitLab)"))
    attest.add_argument("--api", help=_("the forge's API (default: $GITHUB_API_URL or $CI_API_V4_URL)"))
    attest.add_argument("--token-env", help=_("environment variable holding the API token "
                                            "(default: GITHUB_TOKEN or GITLAB_TOKEN)"))
    attest.add_argument("--before", required=True, help=_("the protected branch before the push"))
    attest.add_argument("--after", required=True, help=_("the protected branch after the push"))
    attest.add_argument("--key", type=Path, required=True, help=_("the bot's SSH private key"))
    attest.add_argument("--name", required=True, help=_("the bot's name in inventory/approvers.yaml"))
    attest.add_argument("--remote", default="origin", help=_("where pull request heads are fetched from"))
    attest.add_argument("--push", metavar="REMOTE", help=_("push the approvals ref to REMOTE afterwards"))
    shards_cmd = with_inventory(sub.add_parser("shards", help=_("the inventory's targets as shards: the jobs an "
                                                                "apply can be split into")))
    shards_cmd.add_argument("--output", choices=["text", "json"], default="text")
    shards_cmd.add_argument("--ref", default=os.environ.get("RECONCILER_REF", DEFAULT_REF),
                            help=_("the commit whose approved inventory is read, as apply reads it (default: "
                                   "$RECONCILER_REF or main)"))
    shards_cmd.add_argument("--job", metavar="NAME", help=_("with --index and --jobs: fail unless NAME is the "
                                                            "shard at that place in the list"))
    shards_cmd.add_argument("--index", metavar="I", type=int, help=_("with --job: its place in the pipeline's matrix, "
                                                                     "from 1"))
    shards_cmd.add_argument("--jobs", metavar="N", type=int,
                            help=_("with --job: fail unless there are N shards (a pipeline's fixed matrix of jobs, "
                                   "each one shard, covers them all)"))
    push = with_inventory(sub.add_parser("push", help=_("push what apply left (envelopes, work orders, applied refs, "
                                                        "audit notes) to a remote, merging the notes other jobs "
                                                        "pushed meanwhile")))
    push.add_argument("remote", nargs="?", default="origin", help=_("the remote (default: origin)"))
    push.add_argument("--shard", metavar="NAME", help=_("only what this shard's apply wrote"))
    push.add_argument("--ref", default=os.environ.get("RECONCILER_REF", DEFAULT_REF),
                      help=_("the commit apply applied: its approved inventory names the shard's targets (default: "
                             "$RECONCILER_REF or main)"))
    credentials = sub.add_parser("credentials", help=_("the sealed envelopes of new passwords and line secrets"))
    credentials_sub = credentials.add_subparsers(dest="credentials_command", required=True, metavar="SUBCOMMAND")
    open_cmd = credentials_sub.add_parser("open", help=_("print the secrets of a request sealed to your key, and "
                                                        "write its carta responsiva"))
    open_cmd.add_argument("folio", help=_("the request's folio"))
    open_cmd.add_argument("--identity", "-i", type=Path, required=True,
                          help=_("your age identity (age-keygen) or unencrypted SSH private key"))
    open_cmd.add_argument("--out", default=".", help=_("where the carta is written (default: .)"))
    return p


# argparse's own words (usage, headings, its errors), said through the catalogs: argparse looks
# up its module-level `_` and `ngettext` when it speaks, so main() points them at ours.
ARGPARSE_WORDS = (
    N_("usage: "), N_("positional arguments"), N_("options"), N_("show this help message and exit"),
    N_("the following arguments are required: %s"), N_("unrecognized arguments: %s"),
    N_("invalid choice: %(value)r (choose from %(choices)s)"), N_("argument %(argument_name)s: %(message)s"),
    N_("%(prog)s: error: %(message)s\n"), N_("expected one argument"), N_("invalid %(type)s value: %(value)r"),
    N_("ambiguous option: %(option)s could match %(matches)s"), N_("one of the arguments %s is required"),
    N_("not allowed with argument %s"), N_("ignored explicit argument %r"),
)


def _argparse_speaks() -> None:
    from reconciler import i18n

    argparse._ = i18n._
    argparse.ngettext = i18n.unformatted_ngettext


def _requested_language(argv: list[str]) -> str | None:
    """--lang, read before the parser is built: the help is in that language too."""
    for i, arg in enumerate(argv):
        if arg == "--lang" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--lang="):
            return arg.split("=", 1)[1]
    return None


def main(argv: list[str] | None = None) -> int:
    import sys

    from reconciler import i18n

    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        i18n.choose(_requested_language(argv))
    except ValueError as exc:
        print(f"reconciler: {exc}", file=sys.stderr)
        return EXIT_ERROR
    _argparse_speaks()
    from reconciler.about import foreign_reconciler

    if foreign := foreign_reconciler():
        print(_("reconciler: another project's package named `reconciler` is installed in this Python "
                "environment ({where}): it shares this program's files, so what would run is not certainly "
                "this program. Make the virtual environment again with reconciler-salud alone (uninstalling the "
                "other would remove files the two share): README, \"Installing on a runner\".", where=foreign),
              file=sys.stderr)
        return EXIT_ERROR
    args = _parser().parse_args(argv)
    if not i18n.explicit():
        from reconciler.config.institution import speak_from

        speak_from(getattr(args, "inventory", None) or Path(os.environ.get("RECONCILER_INVENTORY", "inventory/lab.yaml")))
    if args.command == "attest":
        defaults = {"github": ("https://api.github.com", "GITHUB_API_URL", "GITHUB_TOKEN"),
                    "gitlab": ("https://gitlab.com/api/v4", "CI_API_V4_URL", "GITLAB_TOKEN")}[args.forge]
        args.api = args.api or os.environ.get(defaults[1], defaults[0])
        args.token_env = args.token_env or defaults[2]
    from rich.console import Console

    from reconciler.errors import ReconcilerError, ValidationFailed

    plain = args.no_color or "NO_COLOR" in os.environ
    out = Console(highlight=False, no_color=plain, soft_wrap=True)
    err = Console(stderr=True, highlight=False, no_color=plain, soft_wrap=True)
    try:
        module, name = COMMANDS[args.command].split(":")
        return getattr(importlib.import_module(module), name)(args, out, err)
    except ValidationFailed as exc:
        for problem in exc.problems:
            err.print(str(problem), markup=False)
        invalid = _("Invalid:")
        err.print(f"[bold red]{invalid}[/] {exc}.")
        return EXIT_ERROR
    except ReconcilerError as exc:
        err.print(_("Error: {message}", message=exc), markup=False, style="bold red")
        return EXIT_ERROR
    except KeyboardInterrupt:
        err.print(_("Interrupted."), markup=False)
        return 130
    except Exception as exc:  # a bug: say so briefly, traceback only on request
        if args.debug:
            raise
        err.print(_("Internal error: {kind}: {message} (run with --debug for a traceback)",
                    kind=type(exc).__name__, message=exc), markup=False)
        return EXIT_ERROR
