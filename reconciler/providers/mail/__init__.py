"""Mailboxes on Dovecot and Postfix: the registry, the maps and the doveadm API."""
