"""The desired state: YAML under desired_state/, validated into frozen values.

Modules: source (a commit or the working tree), files, yamlfile and checks (parsing and
problems with file, line and field), load (people, units, entitlements), assets, security,
model (the frozen values), naming, curp, entries (people files split by entry)."""
