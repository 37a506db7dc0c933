"""`reconciler lines report`: a carrier's monthly bill against the declared lines."""
from __future__ import annotations

import json

from rich.console import Console

from reconciler.audit import bills
from reconciler.cli import EXIT_OK
from reconciler.cli.reconcile import source_of
from reconciler.desired.load import load_desired_state
from reconciler.errors import ReconcilerError
from reconciler.i18n import _
from reconciler.render.audit import print_bill_findings


def bill_report(args, out: Console, err: Console) -> int:
    try:
        text = args.bill.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ReconcilerError(_("cannot read the bill {path}: {error}", path=args.bill, error=exc.strerror)) from None
    except UnicodeDecodeError:
        raise ReconcilerError(_("{path} is not UTF-8 text: export the bill as CSV in UTF-8", path=args.bill)) from None
    billed = bills.parse_bill(text, str(args.bill))
    state = load_desired_state(source_of(args).files)
    findings = bills.analyse(list(state.lines), billed)
    if args.output == "csv":
        print(bills.findings_csv(findings), end="")
    elif args.output == "json":
        print(json.dumps([f.to_dict() for f in findings], ensure_ascii=False, indent=2))
    else:
        print_bill_findings(findings, str(args.bill), len(billed), out)
    return EXIT_OK
