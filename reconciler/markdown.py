"""Values from the desired state written into Markdown (pull request comments, reports, work
orders): as text, never as markup."""
from __future__ import annotations

import re
from typing import Any

# The backslash first among equals: unescaped, "\\[" would undo the escape of the bracket after it.
_MD_SPECIAL = str.maketrans({"\\": "\\\\", "|": "\\|", "`": "\\`", "[": "\\[", "]": "\\]", "<": "&lt;",
                             ">": "&gt;", "&": "&amp;", "@": "&#64;", "*": "\\*", "~": "\\~"})
_LINE_BREAKS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")
# What GitHub's Markdown turns into a link by itself: a scheme's "://", or "www.".
_AUTOLINK = re.compile(r"(?i)(?<=[a-z])(:)(?=//)|(?<![a-z0-9])(www)(\.)")


def markdown_cell(text: Any) -> str:
    """A value as one table cell of a pull request comment: on one line whatever breaks it held
    (CommonMark ends a line at a lone CR too), no HTML, link (written or automatic), code span,
    emphasis or @mention it could open."""
    escaped = _LINE_BREAKS.sub(" ", str(text)).translate(_MD_SPECIAL)  # str(): a Message in today's language
    # A zero-width space, not an entity: a linkifier may run on the text after entities are read.
    return _AUTOLINK.sub(lambda m: ":\u200b" if m.group(1) else m.group(2) + "\u200b.", escaped)
