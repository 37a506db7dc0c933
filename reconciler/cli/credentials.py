"""`reconciler credentials open FOLIO`: a recipient opens the envelopes of a request.

Run by the person the secrets were sealed to, on their own machine, in their clone of the
desired-state repository (after fetching refs/reconciler/envelopes/*): each secret sealed to
their key is printed, and the carta responsiva is written beside them to print and have signed.
Plain `age -d -i KEY` opens the same files (`git show REF:FILE`).  With the apply key's public
half (RECONCILER_APPLY_PUBLIC_KEY, as auditors have it) only envelopes the apply key signed are
opened: age does not say who sealed a file, and anyone who can write the ref could forge one.
"""
from __future__ import annotations

import os
from pathlib import Path

from rich.console import Console

from reconciler.audit.seal import ApplyKey
from reconciler.cli import EXIT_OK
from reconciler.delivery.carta import carta_name
from reconciler.delivery.envelopes import CARTA, Envelope, envelopes
from reconciler.desired.source import open_repo
from reconciler.errors import ReconcilerError, plain
from reconciler.i18n import _, ngettext


def open_folio(args, out: Console, err: Console) -> int:
    repo = open_repo(args.repo)
    if repo is None:
        raise ReconcilerError(_("{path} is not a Git repository", path=args.repo))
    found = [e for e in envelopes(repo) if e.folio == args.folio]
    if not found:
        raise ReconcilerError(_("no envelope for folio {folio} here; fetch them first: git fetch origin "
                                "'+refs/reconciler/envelopes/*:refs/reconciler/envelopes/*'", folio=plain(args.folio)))
    identities = _identities(args.identity)
    apply_key = ApplyKey.from_env()
    if apply_key is None:
        err.print(_("Warning: RECONCILER_APPLY_PUBLIC_KEY is not set: who made these envelopes is not checked "
                    "(anyone who can write refs/reconciler/envelopes/ could have)"), markup=False, style="yellow")
    opened = 0
    for envelope in found:
        if apply_key is not None and not envelope.signed_by(apply_key):
            err.print(_("{ref}: not signed by the apply key: ignored", ref=envelope.ref), markup=False,
                      style="yellow")
            continue
        opened += _open(repo, envelope, identities, Path(args.out), out)
    if not opened:
        raise ReconcilerError(ngettext("the key {key} opens no secret in the {n} envelope of folio {folio}: it was "
                                       "sealed to other recipients",
                                       "the key {key} opens no secret in the {n} envelopes of folio {folio}: they "
                                       "were sealed to other recipients", len(found), key=args.identity,
                                       folio=plain(args.folio)))
    return EXIT_OK


def _open(repo, envelope: Envelope, identities: list, directory: Path, out: Console) -> int:
    import pyrage

    opened = 0
    tree = repo.commit(envelope.commit).tree
    out.print(_("Envelope {ref}", ref=envelope.ref), markup=False, style="bold")
    for name in envelope.files:
        blob = tree[name]
        try:
            if blob.size > _LARGEST:
                raise ValueError(blob.size)
            text = pyrage.decrypt(blob.data_stream.read(), identities).decode("utf-8")
        except (pyrage.DecryptError, UnicodeDecodeError, ValueError):  # not ours, or not an envelope's letter
            out.print("  " + _("{file}: not sealed to this key", file=plain(name)), markup=False)
            continue
        opened += 1
        out.print("  " + name, markup=False)
        for line in text.splitlines():
            out.print("    " + plain(line), markup=False)
    if opened and CARTA in {b.name for b in tree.blobs} and tree[CARTA].size <= _LARGEST:
        # Readable, and unique per envelope (two folios may read alike once made safe for a file name).
        path = directory / carta_name(envelope.folio, envelope.holder).replace(".pdf", f"-{envelope.ref[-8:]}.pdf")
        _write_new(path, tree[CARTA].data_stream.read())
        out.print("  " + _("Carta responsiva to print and have signed: {path}", path=path), markup=False)
    return opened


_LARGEST = 16 * 1024 * 1024  # no letter or carta is near this; a blob this large is not one


def _write_new(path: Path, data: bytes) -> None:
    """A new file, never through a link and never over an existing one: the repository the
    recipient runs this in may hold a file or link of that name that someone committed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise ReconcilerError(_("cannot write the carta {path}: {error} (choose another --out)", path=path,
                                error=exc.strerror)) from None
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _identities(path: Path) -> list:
    """The age identities in an age key file (age-keygen), or an SSH private key (unencrypted)."""
    import pyrage

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ReconcilerError(_("cannot read the key {path}: {error}", path=path, error=exc.strerror)) from None
    text = data.decode("utf-8", errors="replace")
    try:
        if "AGE-SECRET-KEY-" in text:
            return [pyrage.x25519.Identity.from_str(line.strip()) for line in text.splitlines()
                    if line.strip().startswith("AGE-SECRET-KEY-")]
        return [pyrage.ssh.Identity.from_buffer(data)]
    except pyrage.IdentityError as exc:
        raise ReconcilerError(_("{path} is not an age identity or an unencrypted SSH private key: {error}",
                                path=path, error=exc)) from None
