"""Providers: one package per kind of target, plugged in through contract.py and named in
registry.py."""
