"""The desired state: YAML under desired_state/, validated into frozen values."""
from .load import load_desired_state
from .model import DesiredState, Entitlement, Person, Solicitud, Source, Unit

__all__ = ["load_desired_state", "DesiredState", "Entitlement", "Person", "Solicitud", "Source", "Unit"]
