"""`reconciler shards` and `reconciler push`: an apply split into jobs, and what each job pushes.

`shards` lists the inventory's targets as shards (run/shards.py); a pipeline runs one apply
job per shard (`apply --shard NAME`), each followed by `push --shard NAME`, which pushes only
what that shard's targets wrote and merges the audit notes other shards pushed meanwhile
(audit/publish.py)."""
from __future__ import annotations

import json

from rich.console import Console
from rich.markup import escape

from reconciler.cli import EXIT_OK
from reconciler.errors import ReconcilerError
from reconciler.i18n import _, ngettext


def list_shards(args, out: Console, err: Console) -> int:
    from reconciler.config.inventory import load_inventory
    from reconciler.run.shards import shards

    found = shards(load_inventory(args.inventory))
    if args.expect is not None and sorted(args.expect.split()) != sorted(s.name for s in found):
        # A pipeline that lists its shards by hand (GitLab's parallel:matrix) would otherwise
        # never apply a target added to the inventory since.
        raise ReconcilerError(_("the pipeline's shards ({listed}) are not the inventory's ({shards}): list every "
                                "shard `reconciler shards` prints", listed=args.expect.strip() or "-",
                                shards=" ".join(s.name for s in found)))
    if args.output == "json":
        print(json.dumps([s.to_dict() for s in found], ensure_ascii=False))
        return EXIT_OK
    for s in found:
        out.print(escape(_("{shard}: {targets}", shard=s.name, targets=", ".join(s.targets))))
    return EXIT_OK


def push(args, out: Console, err: Console) -> int:
    import git

    from reconciler.audit.publish import publish
    from reconciler.config.inventory import load_inventory
    from reconciler.providers import registry
    from reconciler.run.shards import shard

    targets = load_inventory(args.inventory)
    chosen = list(shard(targets, args.shard).targets) if args.shard else None
    # Envelopes come from the targets that serve people, which are one shard together.
    sealing = chosen is None or any(not registry.kind(targets[t].kind).alone for t in chosen)
    try:
        repo = git.Repo(args.repo, search_parent_directories=False)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise ReconcilerError(_("{path} is not a Git repository", path=args.repo)) from None
    done = publish(repo, args.remote, chosen, envelopes=sealing)
    out.print(escape(ngettext("Pushed {n} envelope.", "Pushed {n} envelopes.", done.envelopes, n=done.envelopes)))
    out.print(escape(ngettext("Pushed {n} applied ref or work order.", "Pushed {n} applied refs and work orders.",
                              len(done.refs), n=len(done.refs))))
    if done.notes:
        out.print(escape(ngettext("Pushed the audit notes, merged once with those another job pushed meanwhile.",
                                  "Pushed the audit notes, merged {n} times with those other jobs pushed meanwhile.",
                                  done.merges, n=done.merges) if done.merges else _("Pushed the audit notes.")))
    return EXIT_OK
