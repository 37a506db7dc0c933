"""Values from the desired state written into Markdown (pull request comments, reports, work
orders): as text, never as markup."""
from __future__ import annotations

import re
from typing import Any

_MD_SPECIAL = str.maketrans({"|": "\\|", "`": "\\`", "[": "\\[", "]": "\\]", "<": "&lt;", ">": "&gt;",
                             "&": "&amp;", "@": "&#64;"})
_LINE_BREAKS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")


def markdown_cell(text: Any) -> str:
    """A value as one table cell of a pull request comment: on one line whatever breaks it held
    (CommonMark ends a line at a lone CR too), no HTML, link, code span or @mention it could open."""
    return _LINE_BREAKS.sub(" ", str(text)).translate(_MD_SPECIAL)  # str(): a Message in today's language
