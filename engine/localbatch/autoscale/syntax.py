"""Tokenizer and recursive-descent parser: formula text to an AST of frozen dataclasses.

The grammar, from Microsoft's "Create a formula to automatically scale compute nodes":

    formula    := statement? (';' statement?)*
    statement  := NAME '=' expr | expr
    expr       := or ('?' expr ':' expr)?           (right-associative ternary)
    or         := and ('||' and)*
    and        := equality ('&&' equality)*
    equality   := relation (('==' | '!=') relation)*
    relation   := additive (('<' | '<=' | '>' | '>=') additive)*
    additive   := term (('+' | '-') term)*
    term       := unary (('*' | '/') unary)*
    unary      := ('-' | '!') unary | postfix
    postfix    := primary ('.' NAME ('(' args ')')?)*
    primary    := NUMBER | STRING | NAME ('(' args ')')? | '(' expr ')'

Names may start with `$`. `//` starts a comment to the end of the line. Positions are 1-based
line and column, as Batch prints them ("Line 1, Col 24: ...").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import syntax_error


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "num", "str", "name", "op", "end"
    text: str
    line: int
    column: int


_TOKEN = re.compile(
    r"""
    (?P<space>[ \t\r\n]+|//[^\n]*)
  | (?P<num>[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)
  | (?P<str>"[^"\n]*")
  | (?P<name>\$?[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>&&|\|\||==|!=|<=|>=|[-+*/!<>?:=(),.;])
    """,
    re.VERBOSE,
)


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos, line, line_start = 0, 1, 0
    end = len(text)
    while pos < end:
        m = _TOKEN.match(text, pos)
        if m is None:
            char = text[pos]
            if char == '"':
                raise syntax_error("Unterminated string literal", line, pos - line_start + 1)
            raise syntax_error(f"Unexpected character '{char}'", line, pos - line_start + 1)
        kind = m.lastgroup
        assert kind is not None
        if kind != "space":
            tokens.append(Token(kind, m.group(), line, pos - line_start + 1))
        newlines = m.group().count("\n")
        if newlines:
            line += newlines
            line_start = pos + m.group().rfind("\n") + 1
        pos = m.end()
    tokens.append(Token("end", "", line, pos - line_start + 1))
    return tokens


# ---- AST -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Num:
    value: float
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Str:
    value: str
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Name:
    name: str
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Unary:
    op: str
    operand: Expr
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Binary:
    op: str
    left: Expr
    right: Expr
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Ternary:
    condition: Expr
    if_true: Expr
    if_false: Expr
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Call:
    """`name(args)`; the position is the opening parenthesis's."""

    name: str
    args: tuple[Expr, ...]
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Method:
    """`$Variable.Method(args)`; the position is the opening parenthesis's, as Batch reports it."""

    target: Expr
    name: str
    args: tuple[Expr, ...]
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Member:
    """`expr.member` (a timestamp's year, month, ...)."""

    target: Expr
    name: str
    line: int
    column: int


Expr = Num | Str | Name | Unary | Binary | Ternary | Call | Method | Member


@dataclass(frozen=True, slots=True)
class Assign:
    target: Name
    value: Expr
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class ExprStatement:
    value: Expr
    line: int
    column: int


Statement = Assign | ExprStatement


# ---- parser ----------------------------------------------------------------------------------

_BINARY_LEVELS: tuple[tuple[str, ...], ...] = (
    ("||",),
    ("&&",),
    ("==", "!="),
    ("<", "<=", ">", ">="),
    ("+", "-"),
    ("*", "/"),
)


def _describe(token: Token) -> str:
    return "end of formula" if token.kind == "end" else f"'{token.text}'"


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.i = 0

    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def at(self, text: str) -> bool:
        token = self.tokens[self.i]
        return token.kind == "op" and token.text == text

    def expect(self, text: str, context: str) -> Token:
        token = self.peek()
        if not self.at(text):
            raise syntax_error(
                f"Expected '{text}' {context}, found {_describe(token)}", token.line, token.column
            )
        return self.take()

    def formula(self) -> list[Statement]:
        statements: list[Statement] = []
        while True:
            while self.at(";"):
                self.take()
            if self.peek().kind == "end":
                return statements
            statements.append(self.statement())
            token = self.peek()
            if token.kind == "end":
                return statements
            if not self.at(";"):
                raise syntax_error(
                    f"Expected ';' between statements, found {_describe(token)}",
                    token.line,
                    token.column,
                )

    def statement(self) -> Statement:
        first = self.peek()
        nxt = self.tokens[self.i + 1]
        if first.kind == "name" and nxt.kind == "op" and nxt.text == "=":
            self.take()
            self.take()
            target = Name(first.text, first.line, first.column)
            return Assign(target, self.expr(), first.line, first.column)
        return ExprStatement(self.expr(), first.line, first.column)

    def expr(self) -> Expr:
        condition = self.binary(0)
        if not self.at("?"):
            return condition
        mark = self.take()
        if_true = self.expr()
        self.expect(":", "in the conditional expression")
        if_false = self.expr()
        return Ternary(condition, if_true, if_false, mark.line, mark.column)

    def binary(self, level: int) -> Expr:
        if level == len(_BINARY_LEVELS):
            return self.unary()
        ops = _BINARY_LEVELS[level]
        left = self.binary(level + 1)
        while True:
            token = self.peek()
            if token.kind != "op" or token.text not in ops:
                return left
            self.take()
            right = self.binary(level + 1)
            left = Binary(token.text, left, right, token.line, token.column)

    def unary(self) -> Expr:
        token = self.peek()
        if token.kind == "op" and token.text in ("-", "!"):
            self.take()
            return Unary(token.text, self.unary(), token.line, token.column)
        return self.postfix()

    def postfix(self) -> Expr:
        node = self.primary()
        while self.at("."):
            self.take()
            name = self.take()
            if name.kind != "name" or name.text.startswith("$"):
                raise syntax_error(
                    f"Expected a method or member name after '.', found {_describe(name)}",
                    name.line,
                    name.column,
                )
            if self.at("("):
                paren = self.take()
                node = Method(node, name.text, self.args(), paren.line, paren.column)
            else:
                node = Member(node, name.text, name.line, name.column)
        return node

    def args(self) -> tuple[Expr, ...]:
        args: list[Expr] = []
        if self.at(")"):
            self.take()
            return ()
        while True:
            args.append(self.expr())
            if self.at(","):
                self.take()
                continue
            self.expect(")", "after the arguments")
            return tuple(args)

    def primary(self) -> Expr:
        token = self.take()
        if token.kind == "num":
            return Num(float(token.text), token.line, token.column)
        if token.kind == "str":
            return Str(token.text[1:-1], token.line, token.column)
        if token.kind == "name":
            if self.at("("):
                paren = self.take()
                return Call(token.text, self.args(), paren.line, paren.column)
            return Name(token.text, token.line, token.column)
        if token.kind == "op" and token.text == "(":
            inner = self.expr()
            self.expect(")", "to close '('")
            return inner
        raise syntax_error(
            f"Expected an expression, found {_describe(token)}", token.line, token.column
        )


def parse(text: str) -> list[Statement]:
    """The statements of a formula, or FormulaError (AutoScalingFormulaSyntaxError) with where."""
    return _Parser(tokenize(text)).formula()
