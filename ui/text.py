"""User-supplied text shown literally inside Streamlit markdown.

Streamlit renders every message, caption and widget label as GitHub-flavoured markdown (with its own
additions: `:red[…]` colours, `:emoji:` shortcodes, `$…$` maths). Text a user or a link supplies —
query parameters, typed paths, upload file names, dataset ids and file names, run names, and error
messages that quote any of these — goes through `md_escape` before it reaches markdown, so
`[Session expired](https://evil.example/login)` shows as those characters and never as a link, and
`![x](http://host/p.png)` never makes the browser fetch anything.

Backslashes cannot stop GitHub's autolinks: Streamlit's renderer finds `https://…`, `www.…` and e-mail
addresses in the text after markdown has been parsed. An invisible WORD JOINER (U+2060) after `https:`,
`www` and `@` breaks their pattern while the text looks the same (a copy of it holds the joiner).
"""

from __future__ import annotations

import re

# Always escaped: link and image brackets, emphasis, code, HTML and autolinks (< >),
# tables (|), strikethrough (~), maths ($), e-mail autolinks (@) and the escape character itself.
ALWAYS = frozenset("\\`*[]<>|~$@")
# A block marker at the start of the text (heading, list item, setext underline, numbered list): the
# group is the character to escape.
LEADING_MARKER = re.compile(r"^\s*(?:([#+=-])|\d+([.)]))")
WORD_JOINER = "\u2060"
ENTITY = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")  # "&amp;", "&#60;": escaped
AUTOLINK_START = re.compile(r"(?i)(https?:(?=//)|www(?=\.)|@)")  # what GFM's autolinks begin with


def md_escape(text: object) -> str:
    """`text` (any object, as str() shows it) escaped so that markdown shows it character for character.

    Line breaks become spaces (a new line could start a heading or a list), every markdown and HTML
    special is backslash-escaped, `_` only where it could start emphasis (not inside a word such as
    PATCHLENS_HOME), `:` unless a space follows (it starts `:shortcode:` and `https://`), and a WORD
    JOINER follows every start of an autolink.
    """
    flat = AUTOLINK_START.sub(lambda match: match.group(1) + WORD_JOINER, " ".join(str(text).splitlines()))
    marked = set()
    leading = LEADING_MARKER.match(flat)
    if leading:
        marked.add(leading.start(1) if leading.group(1) else leading.start(2))
    return "".join("\\" + char if k in marked or _special(flat, k) else char for k, char in enumerate(flat))


def _special(text: str, k: int) -> bool:
    """Whether the character at `k` could start or end markup where it stands."""
    char = text[k]
    if char == "_":
        return not _inside_word(text, k)
    if char == ":":
        return k + 1 < len(text) and not text[k + 1].isspace()
    if char == "&":  # only where it starts an entity: "H&E" stays as it is
        return ENTITY.match(text, k) is not None
    return char in ALWAYS


def _inside_word(text: str, k: int) -> bool:
    return 0 < k < len(text) - 1 and text[k - 1].isalnum() and text[k + 1].isalnum()


def md_code(text: object) -> str:
    """`text` as an inline code span that shows it literally, whatever backticks it holds: the fence is
    one backtick longer than its longest run of them (CommonMark), and line breaks become spaces."""
    flat = " ".join(str(text).splitlines())
    fence = "`" * (max((len(run) for run in re.findall(r"`+", flat)), default=0) + 1)
    padding = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{padding}{flat}{padding}{fence}"
