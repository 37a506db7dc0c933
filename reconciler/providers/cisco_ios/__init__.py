"""Security rules as an extended ACL on a Cisco IOS router, reached with netmiko."""
