"""A small reader for the YAML subset the probe's config uses, for worker nodes without PyYAML.

Supported: block mappings and sequences (indentation-based, ``- item`` and ``- key: value`` items),
flow sequences/mappings (``[a, b]``, ``{k: v}``), single/double-quoted and plain scalars, ``#``
comments, and PyYAML's scalar typing for null (``null``, ``~``, empty), booleans
(true/false/yes/no/on/off), decimal integers and floats. Refused with :class:`YAMLSubsetError`
naming the line, rather than read differently: octal/hex/binary/sexagesimal numbers, anchors,
tags, multi-line ``|``/``>`` strings, documents. JSON documents are read as JSON.
"""

from __future__ import annotations

import json
import re
from typing import Any, List, Tuple

_INT = re.compile(r"^[-+]?(0|[1-9][0-9_]*)$")
_FLOAT = re.compile(r"^([-+]?[0-9][0-9_]*\.[0-9_]*([eE][-+][0-9]+)?|\.[0-9][0-9_]*([eE][-+][0-9]+)?)$")
# Numbers YAML 1.1 reads in other bases (0b1, 010 octal, 0x1F, 1:30 sexagesimal): refused, not guessed.
_OTHER_INT = re.compile(r"^[-+]?(0b[01_]+|0[0-7_]+|0x[0-9a-fA-F_]+|[1-9][0-9_]*(:[0-5]?[0-9])+)$")
_BOOLS = {w: True for w in ("yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON")}
_BOOLS.update({w: False for w in ("no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF")})
_INF = {s + w: (-1 if s == "-" else 1) * float("inf") for s in ("", "+", "-") for w in (".inf", ".Inf", ".INF")}


class YAMLSubsetError(ValueError):
    """The text is outside the supported YAML subset (message names the line)."""


Line = Tuple[int, str, int]  # indent, content, line number


def _quote_end(text: str, i: int) -> int:
    """Index of the quote closing the quoted scalar that starts at ``text[i]`` (len(text) if none)."""
    q, j = text[i], i + 1
    while j < len(text):
        if q == '"' and text[j] == "\\":
            j += 2
            continue
        if text[j] == q:
            if q == "'" and j + 1 < len(text) and text[j + 1] == "'":
                j += 2
                continue
            return j
        j += 1
    return len(text)


def _starts_token(text: str, i: int) -> bool:
    return i == 0 or text[i - 1] in " [{,:"  # not "-": in "-'x" the quote is part of a plain scalar


def _strip_comment(text: str) -> str:
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in "\"'" and _starts_token(text, i):
            i = _quote_end(text, i) + 1
            continue
        if ch == "#" and (i == 0 or text[i - 1] in " \t"):
            return text[:i].rstrip()
        i += 1
    return text.rstrip()


def _lines(text: str) -> List[Line]:
    lines = []
    for no, raw in enumerate(text.splitlines(), 1):
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise YAMLSubsetError(f"line {no}: tabs are not allowed for indentation")
        content = _strip_comment(raw)
        if not content.strip():
            continue
        if content.strip() in ("---", "..."):
            raise YAMLSubsetError(f"line {no}: document markers are not supported")
        lines.append((len(content) - len(content.lstrip(" ")), content.strip(), no))
    return lines


def scalar(text: str, no: int = 0) -> Any:
    """Convert one scalar (quoted or plain) to a Python value, typed as PyYAML's safe_load does."""
    t = text.strip()
    if not t or t in ("~", "null", "Null", "NULL"):
        return None
    if t[0] == '"':
        try:
            return json.loads(t)
        except ValueError:
            raise YAMLSubsetError(f"line {no}: bad double-quoted string {t}") from None
    if t[0] == "'":
        if len(t) < 2 or t[-1] != "'":
            raise YAMLSubsetError(f"line {no}: unterminated single-quoted string")
        return t[1:-1].replace("''", "'")
    if t[0] in "&*!|>%@`":
        raise YAMLSubsetError(f"line {no}: unsupported YAML feature at {t[:20]!r}")
    if t in _BOOLS:
        return _BOOLS[t]
    if _INT.match(t):
        return int(t.replace("_", ""))
    if _FLOAT.match(t):
        return float(t.replace("_", ""))
    if t in _INF:
        return _INF[t]
    if t in (".nan", ".NaN", ".NAN"):
        return float("nan")
    if _OTHER_INT.match(t):
        raise YAMLSubsetError(f"line {no}: {t!r} is a YAML 1.1 non-decimal number; write it in decimal "
                              f"or quote it")
    return t


def _split_key(content: str, no: int):
    """Split ``key: rest`` outside quotes; None if the content is not a mapping entry."""
    if content[:1] in "[{":
        return None
    i = _quote_end(content, 0) + 1 if content[:1] in "\"'" else 0
    while i < len(content):
        if content[i] == ":" and (i + 1 == len(content) or content[i + 1] == " "):
            key = scalar(content[:i], no)
            if key is None:
                raise YAMLSubsetError(f"line {no}: unsupported mapping key")
            return key, content[i + 1:].strip()
        i += 1
    return None


def _flow(text: str, no: int) -> Any:
    """Parse a flow collection (``[...]`` or ``{...}``) that fits on one line."""
    pos = 0

    def skip() -> None:
        nonlocal pos
        while pos < len(text) and text[pos] == " ":
            pos += 1

    def value() -> Any:
        nonlocal pos
        skip()
        if pos >= len(text):
            raise YAMLSubsetError(f"line {no}: unterminated flow collection")
        ch = text[pos]
        if ch in "[{":
            close = "]" if ch == "[" else "}"
            pos += 1
            items: Any = [] if ch == "[" else {}
            skip()
            if pos < len(text) and text[pos] == close:
                pos += 1
                return items
            while True:
                if ch == "[":
                    items.append(value())
                else:
                    k = value()
                    skip()
                    if pos >= len(text) or text[pos] != ":":
                        raise YAMLSubsetError(f"line {no}: expected ':' in flow mapping")
                    pos += 1
                    items[k] = value()
                skip()
                if pos < len(text) and text[pos] == ",":
                    pos += 1
                    continue
                if pos < len(text) and text[pos] == close:
                    pos += 1
                    return items
                raise YAMLSubsetError(f"line {no}: expected ',' or '{close}' in flow collection")
        if ch in "\"'":
            end = _quote_end(text, pos)
            token, pos = text[pos:end + 1], end + 1
            return scalar(token, no)
        end = pos
        while end < len(text) and text[end] not in ",]}" and not (
                text[end] == ":" and (end + 1 == len(text) or text[end + 1] in " ,]}")):
            end += 1
        token, pos = text[pos:end], end
        return scalar(token, no)

    result = value()
    skip()
    if pos != len(text):
        raise YAMLSubsetError(f"line {no}: unexpected text after flow collection")
    return result


def _value(text: str, no: int) -> Any:
    if text[:1] in "[{":
        return _flow(text, no)
    return scalar(text, no)


class _Parser:
    def __init__(self, lines: List[Line]) -> None:
        self.lines = lines
        self.i = 0

    def node(self, indent: int) -> Any:
        ind, content, no = self.lines[self.i]
        if content == "-" or content.startswith("- "):
            return self.sequence(ind)
        if _split_key(content, no) is not None:
            return self.mapping(ind)
        self.i += 1
        return _value(content, no)

    def sequence(self, indent: int) -> list:
        items = []
        while self.i < len(self.lines):
            ind, content, no = self.lines[self.i]
            if ind < indent:
                break
            if ind > indent:
                raise YAMLSubsetError(f"line {no}: bad indentation")
            if not (content == "-" or content.startswith("- ")):
                break
            rest = content[1:].lstrip()
            if not rest:
                self.i += 1
                if self.i < len(self.lines) and self.lines[self.i][0] > indent:
                    items.append(self.node(self.lines[self.i][0]))
                else:
                    items.append(None)
                continue
            child_indent = ind + len(content) - len(rest)
            self.lines[self.i] = (child_indent, rest, no)
            items.append(self.node(child_indent))
        return items

    def mapping(self, indent: int) -> dict:
        result: dict = {}
        while self.i < len(self.lines):
            ind, content, no = self.lines[self.i]
            if ind < indent:
                break
            if ind > indent:
                raise YAMLSubsetError(f"line {no}: bad indentation")
            split = _split_key(content, no)
            if split is None:
                if content.startswith("- ") or content == "-":
                    break
                raise YAMLSubsetError(f"line {no}: expected 'key: value'")
            key, rest = split
            if key in result:
                raise YAMLSubsetError(f"line {no}: duplicate key {key!r}")
            self.i += 1
            if rest:
                result[key] = _value(rest, no)
            elif self.i < len(self.lines) and self.lines[self.i][0] > indent:
                result[key] = self.node(self.lines[self.i][0])
            elif (self.i < len(self.lines) and self.lines[self.i][0] == indent
                  and (self.lines[self.i][1] == "-" or self.lines[self.i][1].startswith("- "))):
                result[key] = self.sequence(indent)
            else:
                result[key] = None
        return result


def loads(text: str) -> Any:
    """Parse ``text`` (JSON, or YAML within the subset above)."""
    stripped = text.strip()
    if stripped[:1] in "[{":
        try:
            return json.loads(stripped)
        except ValueError:
            pass
    lines = _lines(text)
    if not lines:
        return None
    parser = _Parser(lines)
    result = parser.node(lines[0][0])
    if parser.i != len(lines):
        raise YAMLSubsetError(f"line {lines[parser.i][2]}: unexpected content (check the indentation)")
    return result
