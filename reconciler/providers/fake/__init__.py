"""A fake kind of target: a test double for the engine's tests, not a real system.

Its "system" is a JSON file of objects keyed by employee key, and every operation it makes is
appended to a journal file, so tests can check what the engine asked of each target and in
which order, without the lab.  Faults are injected from its inventory entry (an unreadable
target, refused changes, an apply that dies halfway, changes that do not converge).

It is not in the registry: tests register it under names of their own (`registry.register`),
exactly as a real kind is added, and unregister it afterwards.
"""
