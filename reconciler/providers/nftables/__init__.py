"""Security rules on an nftables firewall, reached over SSH with pyinfra."""
