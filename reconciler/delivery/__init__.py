"""Handing credentials over: sealed envelopes, the carta responsiva, acknowledgements."""
