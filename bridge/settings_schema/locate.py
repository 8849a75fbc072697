"""Where each table and key of a TOML text sits: ``tomllib`` gives values without positions, errors need lines.

The text has already been parsed by ``tomllib``, so it is valid TOML; this scanner only has to step over what may
hide a ``[`` or a ``key =`` that is not one: strings (multi-line ones included), comments, and arrays or inline
tables spanning lines.
"""

from __future__ import annotations

_BARE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Each table header's and key's path (``("midi", "daw", "host")``) → its 1-based line, first occurrence."""
    scanner = _Scanner(text)
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    while scanner.skip_blank():
        if scanner.peek() == "[":
            line = scanner.line
            array = scanner.text.startswith("[[", scanner.pos)
            scanner.pos += 2 if array else 1
            table = tuple(scanner.key())
            for depth in range(1, len(table) + 1):
                lines.setdefault(table[:depth], line)
            scanner.pos = scanner.text.find("]", scanner.pos) + (2 if array else 1)
        else:
            line = scanner.line
            parts = scanner.key()
            for depth in range(1, len(parts) + 1):
                lines.setdefault(table + tuple(parts[:depth]), line)
            scanner.pos = scanner.text.find("=", scanner.pos) + 1
            scanner.value()
        scanner.skip_to_line_end()
    return lines


def line_of(lines: dict[tuple[str, ...], int], path: tuple[str, ...]) -> int | None:
    """The line of ``path``, else of its nearest enclosing key or table that has one (an inline table's keys)."""
    for depth in range(len(path), 0, -1):
        if path[:depth] in lines:
            return lines[path[:depth]]
    return None


class _Scanner:
    def __init__(self, text: str):
        self.text = text
        self.pos = 0
        self.line = 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _advance_to(self, end: int) -> None:
        self.line += self.text.count("\n", self.pos, end)
        self.pos = end

    def skip_blank(self) -> bool:
        """Skip whitespace, newlines and comments; False at the end of the text."""
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "\n":
                self.line += 1
                self.pos += 1
            elif char in " \t\r":
                self.pos += 1
            elif char == "#":
                self.skip_to_line_end()
            else:
                return True
        return False

    def skip_to_line_end(self) -> None:
        end = self.text.find("\n", self.pos)
        self.pos = len(self.text) if end < 0 else end

    def key(self) -> list[str]:
        """A dotted key (bare or quoted parts), leaving the position on the ``=`` or ``]`` after it."""
        parts: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char in " \t.":
                self.pos += 1
            elif char == '"':
                parts.append(self._basic_string())
            elif char == "'":
                end = self.text.index("'", self.pos + 1)
                parts.append(self.text[self.pos + 1:end])
                self.pos = end + 1
            elif char in _BARE:
                start = self.pos
                while self.pos < len(self.text) and self.text[self.pos] in _BARE:
                    self.pos += 1
                parts.append(self.text[start:self.pos])
            else:
                break
        return parts

    def _basic_string(self) -> str:
        out, self.pos = [], self.pos + 1
        while self.text[self.pos] != '"':
            if self.text[self.pos] == "\\":
                code = self.text[self.pos + 1]
                if code in ("u", "U"):
                    width = 4 if code == "u" else 8
                    out.append(chr(int(self.text[self.pos + 2:self.pos + 2 + width], 16)))
                    self.pos += 2 + width
                    continue
                out.append(_ESCAPES.get(code, code))
                self.pos += 2
            else:
                out.append(self.text[self.pos])
                self.pos += 1
        self.pos += 1
        return "".join(out)

    def value(self) -> None:
        """Step over one value, however many lines its strings, arrays and inline tables take."""
        depth = 0
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char in "\"'":
                self._skip_string(char)
                continue
            if char in "[{":
                depth += 1
            elif char in "]}":
                depth -= 1
            elif char == "#":
                self.skip_to_line_end()
                continue
            elif char == "\n":
                if depth <= 0:
                    return
                self.line += 1
            self.pos += 1

    def _skip_string(self, quote: str) -> None:
        if self.text.startswith(quote * 3, self.pos):
            end = self.pos + 3
            while True:
                end = self.text.index(quote * 3, end)
                if quote == "'" or not _escaped(self.text, end):
                    break
                end += 1
            run = 3
            while run < 5 and self.text.startswith(quote, end + run):
                run += 1  # a string may end with one or two quotes right before its closing three
            self._advance_to(end + run)
            return
        end = self.pos + 1
        while self.text[end] != quote or (quote == '"' and _escaped(self.text, end)):
            end += 1
        self.pos = end + 1


def _escaped(text: str, index: int) -> bool:
    """Whether the character at ``index`` is escaped by an odd number of backslashes before it."""
    count = 0
    while index - count - 1 >= 0 and text[index - count - 1] == "\\":
        count += 1
    return count % 2 == 1
