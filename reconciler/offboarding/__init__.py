"""A person's baja de servicios: every access removed, every work order raised, the equipment
to collect and the carrier lines to cancel (servicios.py), and its document (document.py)."""
