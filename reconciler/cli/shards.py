"""`reconciler shards` and `reconciler push`: an apply split into jobs, and what each job pushes.

`shards` lists the inventory's targets as shards (run/shards.py); a pipeline runs one apply
job per shard (`apply --shard NAME`), each followed by `push --shard NAME`, which pushes only
what that shard's targets wrote and merges the audit notes other shards pushed meanwhile
(audit/publish.py).  Both read the inventory apply reads: the version in force at the commit
(run/proposal.py), never an unapproved edit of it, which would otherwise decide which targets
get a job and what each job pushes."""
from __future__ import annotations

import json
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape

from reconciler.cli import EXIT_OK
from reconciler.errors import ReconcilerError
from reconciler.i18n import _, ngettext


@contextmanager
def _approved_targets(args):
    """The targets of the inventory in force at --ref, as apply loads them."""
    from reconciler.config.inventory import load_inventory
    from reconciler.desired.source import at_ref
    from reconciler.run.proposal import approved_inventory

    source = at_ref(args.repo, args.ref)
    with approved_inventory(source, args.inventory) as (inventory, _note):
        yield source, load_inventory(inventory)


def list_shards(args, out: Console, err: Console) -> int:
    from reconciler.run.shards import shards

    with _approved_targets(args) as (_source, targets):
        found = shards(targets)
    names = [s.name for s in found]
    if len({args.job is None, args.index is None, args.jobs is None}) > 1:
        raise ReconcilerError(_("--job, --index and --jobs go together"))
    # The job at place I of N is the I-th shard, and there are N: so every shard has one job,
    # whatever else the matrix holds.
    if args.job is not None and (args.jobs != len(found) or not 1 <= args.index <= len(found)
                                 or names[args.index - 1] != args.job):
        # A pipeline that lists its shards by hand (GitLab's parallel:matrix) would otherwise
        # never apply a target added to the inventory since.
        raise ReconcilerError(ngettext(
            "this job ({job}, {index} of {jobs}) is not the inventory's one shard: the pipeline's matrix must "
            "list exactly what `reconciler shards` prints, in its order ({shards})",
            "this job ({job}, {index} of {jobs}) is not the inventory's shard {index} of {n}: the pipeline's matrix "
            "must list exactly what `reconciler shards` prints, in its order ({shards})",
            len(found), job=args.job, index=args.index, jobs=args.jobs, n=len(found), shards=" ".join(names)))
    if args.output == "json":
        print(json.dumps([s.to_dict() for s in found], ensure_ascii=False))
        return EXIT_OK
    for s in found:
        out.print(escape(_("{shard}: {targets}", shard=s.name, targets=", ".join(s.targets))))
    return EXIT_OK


def push(args, out: Console, err: Console) -> int:
    from reconciler.audit.publish import publish
    from reconciler.providers import registry
    from reconciler.run.shards import shard

    with _approved_targets(args) as (source, targets):
        chosen = list(shard(targets, args.shard).targets) if args.shard else None
        # Envelopes come from the targets that serve people, which are one shard together.
        sealing = chosen is None or any(not registry.kind(targets[t].kind).alone for t in chosen)
        done = publish(source.repo, args.remote, chosen, envelopes=sealing)
    out.print(escape(ngettext("Pushed {n} envelope.", "Pushed {n} envelopes.", done.envelopes, n=done.envelopes)))
    out.print(escape(ngettext("Pushed {n} applied ref or work order.", "Pushed {n} applied refs and work orders.",
                              len(done.refs), n=len(done.refs))))
    if done.notes:
        out.print(escape(ngettext("Pushed the audit notes, merged once with those another job pushed meanwhile.",
                                  "Pushed the audit notes, merged {n} times with those other jobs pushed meanwhile.",
                                  done.merges, n=done.merges) if done.merges else _("Pushed the audit notes.")))
    return EXIT_OK
