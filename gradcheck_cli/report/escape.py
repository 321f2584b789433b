"""Making untrusted text safe to show: on a terminal, in CI logs and in XML.

Layer names, model names and messages reach the renderers from the user's model or, through
``compare`` and ``--baseline``, from a report file anyone may have written. A terminal obeys the
escape sequences in such text (colours, titles, cursor moves, hyperlinks), and bidirectional
overrides reorder what is shown; XML 1.0 has no way at all to write most control characters.
Every function here is pure and keeps ordinary text (any printable Unicode) as it is.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

# C0 and C1 controls (newline and tab included: a name is one line), DEL, line and paragraph
# separators, the bidirectional embeddings, overrides and isolates, and lone surrogates (a
# Python str holds them, no UTF-8 stream can: writing one raised UnicodeEncodeError, exit 3).
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
# Everything XML 1.0 cannot represent (https://www.w3.org/TR/xml/#charsets).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _escaped(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape").decode("ascii")


def printable(text: str) -> str:
    """``text`` with every control character written out as Python writes it (``\\x1b``)."""
    return _UNPRINTABLE.sub(_escaped, text)


# What can change the structure of a Markdown document (GitHub-flavoured) when it comes from
# outside: HTML (`<img onerror=...>`, a `</details>` closing the report early), code spans, table
# cells, emphasis, links and strikethrough. Written as numeric character references, which
# GitHub renders as the characters themselves, outside code spans. `_` stays: GitHub reads no
# emphasis inside a word (`sample_models`), and names are full of it; so does `\`, which can
# only make the next character literal (``\x1b`` as printable() writes it reads as itself).
_MARKDOWN = re.compile(r"[&<>`|*\[\]~]")


def markdown_text(text: str) -> str:
    """``text`` safe anywhere in a Markdown document outside code spans: one line, control
    characters written out, and every character that Markdown or HTML would read as structure
    written as a character reference (``<`` as ``&#60;``)."""
    return _MARKDOWN.sub(lambda m: f"&#{ord(m.group())};", printable(text))


def xml_text(text: str) -> str:
    """``text`` with the characters XML 1.0 cannot hold written out (``\\x1b``)."""
    return _NOT_XML.sub(_escaped, text)


def xml_safe(root: ET.Element) -> ET.Element:
    """Make every text, tail, tag attribute and value under ``root`` valid XML 1.0, in place."""
    for element in root.iter():
        if element.text:
            element.text = xml_text(element.text)
        if element.tail:
            element.tail = xml_text(element.tail)
        for key, value in list(element.attrib.items()):
            element.set(key, xml_text(value))
    return root
