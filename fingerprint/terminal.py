"""Text from input shown on a terminal: control characters escaped, never obeyed.

A session log is hostile input. An account id, a device model or a system property
name holding ESC, BEL, BS, CR or a C1 control (U+0080-U+009F, where U+009B is a
one-character CSI) would otherwise move the cursor, recolour, retitle or rewrite the
analyst's terminal when it reaches ``--format table``, the summary or ``explain``.
JSON outputs keep the text as it was; only what is printed for people is escaped.
"""

from __future__ import annotations


def terminal_safe(text: str) -> str:
    """``text`` with every non-printable character shown as an escape (``\\x1b``,
    ``\\u202e``): C0 and C1 controls, DEL, and invisible format characters such as
    bidirectional overrides. Printable text, Chinese included, is unchanged."""
    if text.isprintable():
        return text  # the common case, one C-level scan
    return "".join(char if char.isprintable() else _escape(char) for char in text)


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def terminal_lines(text: str) -> str:
    """Each line of ``text`` made safe; the line breaks themselves are kept."""
    return "\n".join(terminal_safe(line) for line in text.split("\n"))
