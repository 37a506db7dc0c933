"""Systems with no API (`kind: manual`): their altas and bajas become work orders for the people
who operate them, tracked until a confirmation lands in the desired state."""
