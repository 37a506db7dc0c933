"""The digests a settled mail plan stands on (providers/mail/settled.py): equal only for what
the plan would read the same."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from reconciler.providers.mail.settled import FILES, files_digest, server_digest

TEXTS = st.fixed_dictionaries({name: st.none() | st.text(max_size=20) for name in FILES})


@given(TEXTS, TEXTS)
def test_the_files_digest_is_equal_exactly_when_every_file_reads_the_same(one, other):
    assert (files_digest(one) == files_digest(other)) == (one == other)


def test_an_absent_file_is_not_an_empty_one_and_no_file_borrows_anothers_bytes():
    empty = dict.fromkeys(FILES, "")
    assert files_digest(empty) != files_digest({**empty, "kicks": None})
    assert files_digest({**empty, "registry": "a\n", "recipients": ""}) != \
        files_digest({**empty, "registry": "", "recipients": "a\n"})
    assert files_digest({**empty, "registry": "ñ"}) != files_digest({**empty, "registry": "n\u0303"})


USERS = st.frozensets(st.text(max_size=8), max_size=5)
MEMBERS = st.dictionaries(st.text(max_size=8), st.lists(st.text(max_size=8), max_size=3).map(tuple), max_size=3)


@given(USERS, MEMBERS, USERS, MEMBERS)
def test_the_server_digest_is_equal_exactly_when_dovecot_answered_the_same(served, members, other, theirs):
    same = served == other and members == theirs
    assert (server_digest(served, members) == server_digest(other, theirs)) == same
