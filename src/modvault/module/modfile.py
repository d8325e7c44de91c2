"""Reading the parts of a go.mod file a proxy needs (mirrors golang.org/x/mod/modfile).

The file is read as x/mod ``modfile.ParseLax`` reads the go.mod of a dependency: the full go.mod
syntax (lines, ``verb (`` ... ``)`` blocks, ``//`` comments, quoted strings), then only the
``module``, ``go``, ``require``, ``ignore`` and ``retract`` directives are interpreted; unknown and
main-module-only directives are ignored, and a malformed ``retract`` is skipped. Any error that
ParseLax reports makes these functions raise :class:`ModFileError` with a one-line message.

- :func:`parse_module_path`: the ``module`` directive (quoted or not, single-line or block form).
- :func:`parse_deprecation`: the "Deprecated:" paragraph of the module directive's comments.
- :func:`parse_retractions`: ``retract`` versions and ``[low, high]`` intervals with rationales.
- :func:`synthesize_gomod`: the go.mod the go command serves for a module that has none.

Input bytes are decoded as UTF-8 with ``surrogateescape``: bytes that are not UTF-8 behave like
Go's U+FFFD while lexing and come back as lone surrogates in returned strings.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from modvault.module import path as modpath
from modvault.module import semver
from modvault.module.errors import ModFileError

__all__ = [
    "GoMod",
    "Retraction",
    "auto_quote",
    "must_quote",
    "parse_deprecation",
    "parse_go_version",
    "parse_lax",
    "parse_module_path",
    "parse_retractions",
    "synthesize_gomod",
]

_FILENAME = "go.mod"


# --- results ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Retraction:
    """One ``retract`` directive: the interval ``[low, high]`` (equal for a single version).

    Versions are as written (unquoted, not canonicalized), as ParseLax leaves them.
    """

    low: str
    high: str
    rationale: str = ""


@dataclass(frozen=True, slots=True)
class GoMod:
    """What :func:`parse_lax` read from a go.mod file."""

    module: str | None  # the module path, None without a module directive
    deprecated: str | None  # the deprecation message, None if not deprecated
    go: str | None  # the go directive's version (lax-fixed, like "1.21"), None if absent
    retractions: tuple[Retraction, ...] = field(default=())
    # (module path, canonical version) of every require directive, in file order.
    requires: tuple[tuple[str, str], ...] = field(default=())


# --- Go character classes ---------------------------------------------------------------------

# unicode.IsSpace (White_Space property); strings.TrimSpace trims these.
_GO_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000"
)


def _is_surrogate(c: str) -> bool:
    return "\ud800" <= c <= "\udfff"


def _is_escaped_byte(c: str) -> bool:
    # An input byte that is not UTF-8, as decoded with surrogateescape.
    return "\udc80" <= c <= "\udcff"


def _go_is_print(c: str) -> bool:
    # unicode.IsPrint / strconv.IsPrint: letters, marks, numbers, punctuation, symbols and the
    # ASCII space. An undecodable byte reads as U+FFFD (a symbol), which is printable.
    if c == " " or _is_escaped_byte(c):
        return True
    return unicodedata.category(c)[0] in "LMNPS"


def _is_ident(c: str) -> bool:
    # x/mod modfile.isIdent: printable, not space, not one of the punctuation tokens.
    if c in " ()[]{},":
        return False
    return c not in _GO_SPACE and _go_is_print(c)


def _go_trim_space(s: str) -> str:
    return s.strip(_GO_SPACE)


# --- lexer (modfile/read.go) ------------------------------------------------------------------

_EOF = "EOF"
_EOLCOMMENT = "EOLCOMMENT"
_IDENT = "IDENT"
_STRING = "STRING"
_COMMENT = "COMMENT"
_PUNCT = "\n()[]{},"


@dataclass(slots=True)
class _Pos:
    offset: int  # character offset (only order matters, as Go's byte offset)
    line: int
    col: int


@dataclass(slots=True)
class _Token:
    kind: str  # one of the names above, or the punctuation character itself
    pos: _Pos
    end: _Pos
    text: str

    def is_eol(self) -> bool:
        return self.kind in (_EOF, _EOLCOMMENT, "\n")


@dataclass(slots=True)
class _Comment:
    pos: _Pos
    token: str  # "" for a preserved blank line


@dataclass(slots=True)
class _Node:
    """A Line, a LineBlock, a CommentBlock, or a block's LParen / RParen."""

    kind: str  # "line", "block", "comments", "lparen", "rparen"
    start: _Pos
    end: _Pos
    tokens: list[str] = field(default_factory=list)
    before: list[_Comment] = field(default_factory=list)
    suffix: list[_Comment] = field(default_factory=list)
    lines: list[_Node] = field(default_factory=list)
    lparen: _Node | None = None
    rparen: _Node | None = None


class _ParseError(Exception):
    pass


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.line = 1
        self.col = 1
        self.suffix_comments: list[_Comment] = []

    def pos(self) -> _Pos:
        return _Pos(self.i, self.line, self.col)

    def error(self, msg: str, at: _Pos | None = None) -> _ParseError:
        p = at or self.pos()
        where = f"{_FILENAME}:{p.line}:{p.col}" if p.col > 1 else f"{_FILENAME}:{p.line}"
        return _ParseError(f"{where}: {msg}")

    def eof(self) -> bool:
        return self.i >= len(self.text)

    def peek(self) -> str:
        return self.text[self.i] if self.i < len(self.text) else ""

    def advance(self) -> str:
        c = self.text[self.i]
        self.i += 1
        if c == "\n":
            self.line += 1
            self.col = 1
        else:
            self.col += 1
        return c

    def token(self) -> _Token:
        text = self.text
        # Skip spaces; a comment is a token of its own.
        while not self.eof():
            c = self.peek()
            if c in " \t\r":
                self.advance()
                continue
            if text.startswith("//", self.i):
                start = self.pos()
                nl = text.rfind("\n", 0, self.i)
                is_suffix = _go_trim_space(text[nl + 1 : self.i]) != ""
                while not self.eof() and self.advance() != "\n":
                    pass
                body = text[start.offset : self.i]
                if body.endswith("\r\n"):
                    body = body[:-2]
                elif body.endswith("\n"):
                    body = body[:-1]
                if not is_suffix:
                    return _Token(_COMMENT, start, self.pos(), body)
                self.suffix_comments.append(_Comment(start, body))
                return _Token(_EOLCOMMENT, start, self.pos(), body)
            if text.startswith("/*", self.i):
                raise self.error("mod files must use // comments (not /* */ comments)")
            break

        start = self.pos()
        if self.eof():
            return _Token(_EOF, start, start, "")
        c = self.peek()
        if c in _PUNCT:
            self.advance()
            return _Token(c, start, self.pos(), c)
        if c in "\"`":
            quote = c
            self.advance()
            while True:
                if self.eof():
                    raise self.error("unexpected EOF in string", start)
                if self.peek() == "\n":
                    raise self.error("unexpected newline in string")
                ch = self.advance()
                if ch == quote:
                    break
                if ch == "\\" and quote != "`":
                    if self.eof():
                        raise self.error("unexpected EOF in string", start)
                    self.advance()
            return _Token(_STRING, start, self.pos(), text[start.offset : self.i])
        if not _is_ident(c):
            raise self.error(f"unexpected input character {modpath.go_quote(c)}")
        while not self.eof() and _is_ident(self.peek()):
            if text.startswith("//", self.i):
                break
            if text.startswith("/*", self.i):
                raise self.error("mod files must use // comments (not /* */ comments)")
            self.advance()
        return _Token(_IDENT, start, self.pos(), text[start.offset : self.i])


# --- parser (modfile/read.go parseFile, parseStmt, parseLineBlock, assignComments) ------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.lex = _Lexer(text)
        self.next = self.lex.token()
        self.stmts: list[_Node] = []

    def peek(self) -> _Token:
        return self.next

    def take(self) -> _Token:
        tok = self.next
        self.next = self.lex.token()
        return tok

    def parse_file(self) -> list[_Node]:
        pending: _Node | None = None  # a comment block not yet followed by a statement
        while True:
            kind = self.peek().kind
            if kind == "\n":
                self.take()
                if pending is not None:
                    self.stmts.append(pending)
                    pending = None
            elif kind == _COMMENT:
                tok = self.take()
                if pending is None:
                    pending = _Node("comments", tok.pos, tok.pos)
                pending.before.append(_Comment(tok.pos, tok.text))
            elif kind == _EOF:
                if pending is not None:
                    self.stmts.append(pending)
                break
            else:
                self.parse_stmt()
                if pending is not None:
                    self.stmts[-1].before = pending.before
                    pending = None
        self.assign_comments()
        return self.stmts

    def parse_stmt(self) -> None:
        first = self.take()
        start, end = first.pos, first.end
        tokens = [first.text]
        while True:
            tok = self.take()
            if tok.is_eol():
                self.stmts.append(_Node("line", start, end, tokens))
                return
            if tok.kind == "(":
                nxt = self.peek()
                if nxt.is_eol():
                    self.stmts.append(self.parse_block(start, tokens, tok))
                    return
                if nxt.kind == ")":
                    rparen = self.take()
                    if self.peek().is_eol():
                        self.take()
                        block = _Node("block", start, _after(rparen.pos), tokens)
                        block.lparen = _Node("lparen", tok.pos, _after(tok.pos))
                        block.rparen = _Node("rparen", rparen.pos, _after(rparen.pos))
                        self.stmts.append(block)
                        return
                    tokens += [tok.text, rparen.text]  # "( )" inside a line
                else:
                    tokens.append(tok.text)  # "(" inside a line
                continue
            tokens.append(tok.text)
            end = tok.end

    def parse_block(self, start: _Pos, tokens: list[str], lparen: _Token) -> _Node:
        block = _Node("block", start, start, tokens)
        block.lparen = _Node("lparen", lparen.pos, _after(lparen.pos))
        comments: list[_Comment] = []
        while True:
            tok = self.peek()
            if tok.kind == _EOLCOMMENT:
                self.take()  # attached later by assign_comments
            elif tok.kind == "\n":
                self.take()
                # A blank line is kept as an empty comment.
                if (not comments and block.lines) or (comments and comments[-1].token != ""):
                    comments.append(_Comment(tok.pos, ""))
            elif tok.kind == _COMMENT:
                self.take()
                comments.append(_Comment(tok.pos, tok.text))
            elif tok.kind == _EOF:
                raise self.lex.error(
                    "syntax error (unterminated block started at "
                    f"{_FILENAME}:{start.line}:{start.col})"
                )
            elif tok.kind == ")":
                rparen = self.take()
                if len(comments) == 1 and comments[0].token == "":
                    comments = []
                block.rparen = _Node("rparen", rparen.pos, _after(rparen.pos), before=comments)
                block.end = _after(rparen.pos)
                if not self.peek().is_eol():
                    raise self.lex.error("syntax error (expected newline after closing paren)")
                self.take()
                return block
            else:
                line = self.parse_line()
                line.before = comments
                comments = []
                block.lines.append(line)

    def parse_line(self) -> _Node:
        first = self.take()
        start, end = first.pos, first.end
        tokens = [first.text]
        while True:
            tok = self.take()
            if tok.is_eol():
                return _Node("line", start, end, tokens)
            tokens.append(tok.text)
            end = tok.end

    def assign_comments(self) -> None:
        # Whole-line comments were attached by the parser; end-of-line comments go to the
        # syntax that ends last before them, skipping anything spanning several lines.
        post: list[_Node] = []
        for stmt in self.stmts:
            if stmt.kind == "block":
                assert stmt.lparen is not None and stmt.rparen is not None
                post.append(stmt.lparen)
                post.extend(stmt.lines)
                post.append(stmt.rparen)
            post.append(stmt)
        suffix = list(self.lex.suffix_comments)
        for node in reversed(post):
            if node.start.line != node.end.line:
                continue
            while suffix and node.end.offset <= suffix[-1].pos.offset:
                node.suffix.append(suffix.pop())
        for node in post:
            node.suffix.reverse()


def _after(p: _Pos) -> _Pos:
    # The end of a one-character token (a parenthesis) at p.
    return _Pos(p.offset + 1, p.line, p.col + 1)


# --- quoting ----------------------------------------------------------------------------------


def _unquote(t: str) -> str:
    """strconv.Unquote of a double-quoted token; raises ValueError for bad syntax."""
    if len(t) < 2 or t[0] != '"' or t[-1] != '"':
        raise ValueError("invalid syntax")
    body = t[1:-1]
    if "\\" not in body and "\n" not in body and '"' not in body:
        return "".join("\ufffd" if _is_surrogate(c) else c for c in body)
    out = bytearray()
    i = 0
    n = len(body)
    while i < n:
        c = body[i]
        if c in '"\n':
            raise ValueError("invalid syntax")
        if c != "\\":
            out += ("\ufffd" if _is_surrogate(c) else c).encode()
            i += 1
            continue
        if i + 1 >= n:
            raise ValueError("invalid syntax")
        e = body[i + 1]
        i += 2
        simple = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, '"': 34}
        if e in simple:
            out.append(simple[e])
        elif e in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[e]
            digits = body[i : i + width]
            if len(digits) < width or any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise ValueError("invalid syntax")
            v = int(digits, 16)
            i += width
            if e == "x":
                out.append(v)
            elif v > 0x10FFFF or 0xD800 <= v <= 0xDFFF:
                raise ValueError("invalid syntax")
            else:
                out += chr(v).encode()
        elif "0" <= e <= "7":
            digits = body[i : i + 2]
            if len(digits) < 2 or any(not "0" <= d <= "7" for d in digits):
                raise ValueError("invalid syntax")
            v = int(e + digits, 8)
            i += 2
            if v > 255:
                raise ValueError("invalid syntax")
            out.append(v)
        else:
            raise ValueError("invalid syntax")
    return out.decode("utf-8", "surrogateescape")


def _go_quote(s: str) -> str:
    """strconv.Quote; undecodable bytes (surrogates) are written as \\xNN."""
    parts = ['"']
    for c in s:
        o = ord(c)
        if c in '"\\':
            parts.append("\\" + c)
        elif _is_escaped_byte(c):
            parts.append(f"\\x{o - 0xDC00:02x}")
        elif _is_surrogate(c):
            parts.append("\\ufffd")
        elif _go_is_print(c):
            parts.append(c)
        elif c in "\a\b\f\n\r\t\v":
            parts.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
                          "\t": "\\t", "\v": "\\v"}[c])
        elif o < 0x20 or o == 0x7F:
            parts.append(f"\\x{o:02x}")
        elif o < 0x10000:
            parts.append(f"\\u{o:04x}")
        else:
            parts.append(f"\\U{o:08x}")
    parts.append('"')
    return "".join(parts)


def must_quote(s: str) -> bool:
    """modfile.MustQuote: whether ``s`` must be quoted to be read back as one token."""
    for c in s:
        if c in " \"'`":
            return True
        if c in "()[]{},":
            if len(s) > 1:  # Go: len(s) > 1 in bytes; every character is at least one byte
                return True
        elif not _go_is_print(c):
            return True
    return s == "" or "//" in s or "/*" in s


def auto_quote(s: str) -> str:
    """modfile.AutoQuote: ``s``, or its Go quotation if it must be quoted."""
    return _go_quote(s) if must_quote(s) else s


def _parse_string(t: str) -> str:
    # modfile.parseString: a double-quoted token is unquoted; other quotes are reserved.
    if t.startswith('"'):
        return _unquote(t)
    if any(q in t for q in "\"'`"):
        raise ValueError("unquoted string cannot contain quote")
    return t


# --- interpretation (modfile/rule.go parseToFile with strict=false) --------------------------

_GO_VERSION_RE = re.compile(r"([1-9][0-9]*)\.(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))?([a-z]+[0-9]+)?")
_LAX_GO_VERSION_RE = re.compile(r"v?(([1-9][0-9]*)\.(0|[1-9][0-9]*))([^0-9].*)")
_DEPRECATED_RE = re.compile(r"(?:^|\n\n)Deprecated: *(.*?)(?:\Z|\n\n)", re.DOTALL)
_LAX_VERBS = frozenset(["go", "module", "retract", "require", "ignore"])
_BLOCK_VERBS = frozenset(
    ["module", "godebug", "require", "exclude", "replace", "retract", "tool", "ignore"]
)


def _directive_comment(block: _Node | None, line: _Node) -> str:
    # modfile.parseDirectiveComment: the line's comments, else (if it has none) its block's.
    before, suffix = line.before, line.suffix
    if block is not None and not before and not suffix:
        before, suffix = block.before, block.suffix
    texts = [
        _go_trim_space(c.token[2:]) for c in [*before, *suffix] if c.token.startswith("//")
    ]
    return "\n".join(texts)


def _parse_version_interval(args: list[str]) -> tuple[str, str] | None:
    # modfile.parseVersionInterval with dontFixRetract: versions are only unquoted.
    try:
        if not args or args[0] == "(":
            return None
        if args[0] != "[":
            v = _parse_string(args[0])
            return v, v
        if len(args) < 5 or args[2] != "," or args[4] != "]":
            return None
        return _parse_string(args[1]), _parse_string(args[3])
    except ValueError:
        return None


class _Interpreter:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.module: str | None = None
        self.has_module = False
        self.deprecated = ""
        self.go: str | None = None
        self.retractions: list[Retraction] = []
        self.requires: list[tuple[str, str]] = []

    def error(self, line: _Node, msg: str) -> None:
        p = line.start
        where = f"{_FILENAME}:{p.line}:{p.col}" if p.col > 1 else f"{_FILENAME}:{p.line}"
        self.errors.append(f"{where}: {msg}")

    def add(self, block: _Node | None, line: _Node, verb: str, args: list[str]) -> None:
        if verb not in _LAX_VERBS:
            return  # ParseLax ignores unknown and main-module-only directives
        if verb == "go":
            self.add_go(line, args)
        elif verb == "module":
            self.add_module(block, line, args)
        elif verb == "require":
            self.add_require(line, args)
        elif verb == "ignore":
            if len(args) != 1:
                self.error(line, "ignore directive expects exactly one argument")
                return
            try:
                _parse_string(args[0])
            except ValueError as e:
                self.error(line, f"invalid quoted string: {e}")
        else:  # retract
            interval = _parse_version_interval(args)
            if interval is None:
                return  # lax: malformed intervals are skipped, extra tokens ignored
            rationale = _directive_comment(block, line)
            self.retractions.append(Retraction(interval[0], interval[1], rationale))

    def add_go(self, line: _Node, args: list[str]) -> None:
        if self.go is not None:
            self.error(line, "repeated go statement")
            return
        if len(args) != 1:
            self.error(line, "go directive expects exactly one argument")
            return
        version = args[0]
        if _GO_VERSION_RE.fullmatch(version) is None:
            m = _LAX_GO_VERSION_RE.fullmatch(version)
            if m is None:
                self.error(line, f"invalid go version '{version}': must match format 1.23.0")
                return
            version = m.group(1)
        self.go = version

    def add_module(self, block: _Node | None, line: _Node, args: list[str]) -> None:
        if self.has_module:
            self.error(line, "repeated module statement")
            return
        self.has_module = True
        # modfile.parseDeprecation: the first "Deprecated:" paragraph of the comments.
        m = _DEPRECATED_RE.search(_directive_comment(block, line))
        self.deprecated = m.group(1) if m else ""
        if len(args) != 1:
            self.error(line, "usage: module module/path")
            return
        try:
            self.module = _parse_string(args[0])
        except ValueError as e:
            self.error(line, f"invalid quoted string: {e}")

    def add_require(self, line: _Node, args: list[str]) -> None:
        if len(args) != 2:
            self.error(line, "usage: require module/path v1.2.3")
            return
        try:
            mod = _parse_string(args[0])
        except ValueError as e:
            self.error(line, f"invalid quoted string: {e}")
            return
        # modfile.parseVersion with a nil fixer: any valid semver, made canonical.
        try:
            raw = _parse_string(args[1])
        except ValueError as e:
            self.error(line, f"require {mod}: invalid version {modpath.go_quote(args[1])}: {e}")
            return
        version = modpath.canonical_version(raw)
        if version == "":
            self.error(line, f"require {mod}: version {modpath.go_quote(raw)} invalid: "
                             "must be of the form v1.2.3")
            return
        _, path_major, ok = modpath.split_path_version(mod)
        if not ok:
            self.error(line, f"require {mod}: invalid module path")
            return
        if not modpath.match_path_major(version, path_major):
            want = path_major[1:] if path_major else "v0 or v1"
            self.error(line, f"require {mod}: version {modpath.go_quote(version)} invalid: "
                             f"should be {want}, not {semver.major(version)}")
            return
        self.requires.append((mod, version))


def parse_lax(data: bytes) -> GoMod:
    """x/mod modfile.ParseLax(data, nil), reduced to what a proxy needs.

    Raises :class:`ModFileError` (first error, one line) where ParseLax would fail.
    """
    text = data.decode("utf-8", "surrogateescape")
    try:
        stmts = _Parser(text).parse_file()
    except _ParseError as e:
        raise ModFileError(str(e)) from None
    interp = _Interpreter()
    for stmt in stmts:
        if stmt.kind == "line":
            interp.add(None, stmt, stmt.tokens[0], stmt.tokens[1:])
        elif stmt.kind == "block" and len(stmt.tokens) == 1 and stmt.tokens[0] in _BLOCK_VERBS:
            for line in stmt.lines:
                interp.add(stmt, line, stmt.tokens[0], line.tokens)
        # Other blocks ("go (", "module x (") are ignored by ParseLax.
    if interp.errors:
        more = f" (and {len(interp.errors) - 1} more)" if len(interp.errors) > 1 else ""
        raise ModFileError(interp.errors[0] + more)
    return GoMod(
        module=interp.module,
        deprecated=interp.deprecated or None,
        go=interp.go,
        retractions=tuple(interp.retractions),
        requires=tuple(interp.requires),
    )


def parse_module_path(data: bytes) -> str:
    """The module path of a go.mod file; :class:`ModFileError` if unreadable or missing."""
    mod = parse_lax(data)
    if mod.module is None:
        raise ModFileError(f"{_FILENAME}: no module directive")
    return mod.module


def parse_deprecation(data: bytes) -> str | None:
    """The module's deprecation message (x/mod modfile.parseDeprecation), or None.

    The message is the paragraph starting "Deprecated:" (case-sensitive, prefix removed) in the
    comment block directly above the module directive or on its line (in block form: the line's
    comments, else the block's). An empty message means "not deprecated", as for the go command.
    """
    return parse_lax(data).deprecated


def parse_retractions(data: bytes) -> list[Retraction]:
    """The ``retract`` directives, in file order, with their rationale comments."""
    return list(parse_lax(data).retractions)


def parse_go_version(data: bytes) -> str | None:
    """The go directive's version, or None if absent or if ParseLax fails (x/mod zip.parseGoVers)."""
    try:
        return parse_lax(data).go
    except ModFileError:
        return None


def synthesize_gomod(module_path: str) -> bytes:
    """The go.mod the go command serves for a module without one (cmd/go coderepo.legacyGoMod):
    ``"module " + AutoQuote(path) + "\\n"``."""
    return ("module " + auto_quote(module_path) + "\n").encode("utf-8", "surrogateescape")


# --- requirement graph directives (for Minimal Version Selection) ------------------------------


@dataclass(frozen=True, slots=True)
class Requirement:
    """A module path at a canonical version (x/mod module.Version)."""

    path: str
    version: str


@dataclass(frozen=True, slots=True)
class Replacement:
    """``replace old [v] => new [v]``: ``old_version`` is "" for every version of ``old_path``;
    ``new_version`` is "" when ``new_path`` is a directory (go.dev/ref/mod#go-mod-file-replace)."""

    old_path: str
    old_version: str
    new_path: str
    new_version: str

    @property
    def is_directory(self) -> bool:
        return self.new_version == ""


@dataclass(frozen=True, slots=True)
class GraphDirectives:
    """What MVS reads from a go.mod: its module and go version, requirements, and (meaningful
    only in the main module) replacements and exclusions."""

    module: str | None
    go: str | None
    requires: tuple[Requirement, ...]
    replaces: tuple[Replacement, ...]
    excludes: tuple[Requirement, ...]


def is_directory_path(p: str) -> bool:
    """x/mod modfile.IsDirectoryPath: a replacement target that names a directory."""
    return (p in (".", "..") or p.startswith(("./", "../", "/", ".\\", "..\\"))
            or (len(p) >= 2 and p[1] == ":" and p[0].isalpha()))


def _graph_version(path: str, raw: str, what: str) -> str:
    v = modpath.canonical_version(_parse_string(raw))
    if v == "":
        raise ValueError(f"{what} {path}: invalid version {modpath.go_quote(raw)}")
    return v


def parse_graph(data: bytes) -> GraphDirectives:
    """The ``module``, ``go``, ``require``, ``replace`` and ``exclude`` directives of a go.mod.

    Syntax errors and malformed directives raise :class:`ModFileError` with a one-line message.
    Requirements are checked as :func:`parse_lax` checks them (canonical versions, path major).
    """
    base = parse_lax(data)  # validates module/go/require as the go command's lax reader does
    text = data.decode("utf-8", "surrogateescape")
    try:
        stmts = _Parser(text).parse_file()
    except _ParseError as e:
        raise ModFileError(str(e)) from None
    requires: list[Requirement] = []
    replaces: list[Replacement] = []
    excludes: list[Requirement] = []

    def one(verb: str, line: _Node, args: list[str]) -> None:
        p = line.start
        try:
            if verb == "require" and len(args) == 2:
                path = _parse_string(args[0])
                requires.append(Requirement(path, _graph_version(path, args[1], "require")))
            elif verb == "exclude":
                if len(args) != 2:
                    raise ValueError("usage: exclude module/path v1.2.3")
                path = _parse_string(args[0])
                excludes.append(Requirement(path, _graph_version(path, args[1], "exclude")))
            elif verb == "replace":
                replaces.append(_parse_replace(args))
        except ValueError as e:
            raise ModFileError(f"{_FILENAME}:{p.line}: {e}") from None

    for stmt in stmts:
        if stmt.kind == "line":
            one(stmt.tokens[0], stmt, stmt.tokens[1:])
        elif stmt.kind == "block" and len(stmt.tokens) == 1:
            for line in stmt.lines:
                one(stmt.tokens[0], line, line.tokens)
    return GraphDirectives(base.module, base.go, tuple(requires), tuple(replaces), tuple(excludes))


def _parse_replace(args: list[str]) -> Replacement:
    # modfile.parseReplace: old [v] => new [v]
    try:
        arrow = args.index("=>")
    except ValueError:
        raise ValueError("usage: replace module/path [v1.2.3] => other/module v1.4\n"
                         "\t or replace module/path [v1.2.3] => ../local/directory") from None
    old, new = args[:arrow], args[arrow + 1:]
    if len(old) not in (1, 2) or len(new) not in (1, 2):
        raise ValueError("usage: replace module/path [v1.2.3] => other/module v1.4")
    old_path = _parse_string(old[0])
    old_version = _graph_version(old_path, old[1], "replace") if len(old) == 2 else ""
    new_path = _parse_string(new[0])
    if len(new) == 1:
        if not is_directory_path(new_path):
            raise ValueError(f"replacement module without version must be directory path "
                             f"(rooted or starting with . or ..): {new_path}")
        return Replacement(old_path, old_version, new_path, "")
    if is_directory_path(new_path):
        raise ValueError(f"replacement module directory path {new_path} cannot have version")
    return Replacement(old_path, old_version, new_path, _graph_version(new_path, new[1], "replace"))
