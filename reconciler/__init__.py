"""reconciler: desired state in Git, reconciled into Active Directory and the other systems
of a public health service's IT department (altas, modificaciones and bajas)."""

__version__ = "0.2.0.dev0"  # ci/release: the release drops .dev0; the commit after it names the next
