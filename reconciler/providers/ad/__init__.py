"""Active Directory (and Samba AD): accounts, groups, OUs and computers over LDAPS."""
