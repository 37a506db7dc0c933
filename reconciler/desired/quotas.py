"""Mailbox quotas as the schemas write them ('500M', '2G'): compared by the inventory's check
of a mail target and by the loader, without importing the desired-state model."""
from __future__ import annotations


def quota_megabytes(quota: str) -> int:
    """'500M' -> 500, '2G' -> 2048 (the schema guarantees the form)."""
    return int(quota[:-1]) * (1024 if quota.endswith("G") else 1)
