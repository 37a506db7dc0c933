"""What firewalls and routers share: the declared rules per device, the probes, and the
provider base that plans, applies and proves a device's whole rule set."""
