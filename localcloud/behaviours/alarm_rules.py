"""Composite alarm rules: parsed, checked against AWS's limits, and evaluated on alarm states.

A rule is what ``PutCompositeAlarm``'s ``AlarmRule`` documents: the functions
``ALARM(name)``, ``OK(name)`` and ``INSUFFICIENT_DATA(name)`` (the name or ARN of another alarm,
quoted or bare), the constants ``TRUE`` and ``FALSE``, combined with ``NOT``, ``AND``, ``OR`` and
parentheses (``NOT`` binds tightest, then ``AND``, then ``OR``). A parsed rule is a nested tuple
(``("ALARM", name)``, ``("NOT", rule)``, ``("AND", left, right)`` ...) evaluated against a
mapping of alarm name to state; an alarm the mapping lacks is in no state, so every function of
it is false.

AWS's limits (the PutCompositeAlarm API reference): a rule holds at most
:data:`MAX_RULE_CHARS` characters and references at most :data:`MAX_UNDERLYING_ALARMS` alarms.
:func:`check` raises :class:`RuleRefused` with the error code and message AWS answers.

Not emulated: ``AT_LEAST(...)``, refused here as unknown syntax.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_RULE_CHARS = 10240
MAX_UNDERLYING_ALARMS = 100
STATE_FUNCTIONS = ("ALARM", "OK", "INSUFFICIENT_DATA")
_TOKEN = re.compile(r'\s*(?:(?P<paren>[()])|(?P<quoted>"[^"]*")|(?P<word>[^\s()"]+))')


@dataclass(frozen=True)
class RuleRefused(Exception):
    """What CloudWatch answers a rule it refuses: the error code and its message."""

    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def _tokens(rule: str) -> list[str]:
    tokens, position = [], 0
    while position < len(rule):
        if rule[position:].strip() == "":
            break
        match = _TOKEN.match(rule, position)
        if match is None:
            raise RuleRefused("ValidationError", f"AlarmRule: unexpected text at character {position + 1}")
        tokens.append(match.group("paren") or match.group("quoted") or match.group("word"))
        position = match.end()
    return tokens


def parse(rule: str) -> tuple[Any, ...]:
    """The rule as a nested tuple; :class:`RuleRefused` (``ValidationError``) if it is not one."""
    if rule != rule.strip() or not rule:
        # What AWS answers, as seen in terraform-provider-aws issue #19575.
        raise RuleRefused(
            "ValidationError", "AlarmRule must not contain leading or trailing whitespace or be null"
        )
    tokens = _tokens(rule)
    position = 0

    def peek() -> str | None:
        return tokens[position] if position < len(tokens) else None

    def take(expected: str | None = None) -> str:
        nonlocal position
        token = peek()
        if token is None or (expected is not None and token != expected):
            raise RuleRefused(
                "ValidationError",
                f"AlarmRule: expected {expected or 'more'} but found {token or 'the end of the rule'}",
            )
        position += 1
        return token

    def either() -> tuple[Any, ...]:
        node = both()
        while peek() == "OR":
            take()
            node = ("OR", node, both())
        return node

    def both() -> tuple[Any, ...]:
        node = negation()
        while peek() == "AND":
            take()
            node = ("AND", node, negation())
        return node

    def negation() -> tuple[Any, ...]:
        if peek() == "NOT":
            take()
            return ("NOT", negation())
        return atom()

    def atom() -> tuple[Any, ...]:
        token = take()
        if token == "(":
            node = either()
            take(")")
            return node
        if token in ("TRUE", "FALSE"):
            return (token,)
        if token in STATE_FUNCTIONS:
            take("(")
            name = take()
            take(")")
            return (token, name[1:-1] if name.startswith('"') else name)
        raise RuleRefused("ValidationError", f"AlarmRule: {token!r} is not a function, operator or constant")

    tree = either()
    if peek() is not None:
        raise RuleRefused("ValidationError", f"AlarmRule: unexpected {peek()!r} after a complete expression")
    return tree


def referenced(tree: tuple[Any, ...]) -> set[str]:
    """The alarm names (or ARNs) a parsed rule refers to."""
    if tree[0] in STATE_FUNCTIONS:
        return {tree[1]}
    return set().union(*(referenced(child) for child in tree[1:] if isinstance(child, tuple)))


def triggering(tree: tuple[Any, ...], states: Mapping[str, str]) -> list[str]:
    """The referenced alarms whose state is one the rule tests them for (the state reason names them)."""
    if tree[0] in STATE_FUNCTIONS:
        return [tree[1]] if states.get(tree[1]) == tree[0] else []
    found = [name for child in tree[1:] if isinstance(child, tuple) for name in triggering(child, states)]
    return sorted(set(found))


def check(rule: str) -> tuple[Any, ...]:
    """Parse ``rule`` and refuse what AWS refuses: over-long rules, too many alarms, bad syntax."""
    if len(rule) > MAX_RULE_CHARS:
        # A length beyond the model's maximum: AWS's standard validation message.
        raise RuleRefused(
            "ValidationError",
            f"1 validation error detected: Value '{rule}' at 'alarmRule' failed to satisfy constraint: "
            f"Member must have length less than or equal to {MAX_RULE_CHARS}",
        )
    tree = parse(rule)
    names = referenced(tree)
    if len(names) > MAX_UNDERLYING_ALARMS:
        # PutCompositeAlarm's one documented error, LimitExceeded, for a quota it enforces.
        raise RuleRefused(
            "LimitExceeded",
            f"The alarm rule references {len(names)} alarms; a composite alarm's rule can include "
            f"as many as {MAX_UNDERLYING_ALARMS} underlying alarms.",
        )
    return tree


def evaluate(tree: tuple[Any, ...], states: Mapping[str, str]) -> bool:
    """Whether the rule holds for these alarm states (name or ARN → state value)."""
    kind = tree[0]
    if kind in STATE_FUNCTIONS:
        return states.get(tree[1]) == kind
    if kind == "TRUE":
        return True
    if kind == "FALSE":
        return False
    if kind == "NOT":
        return not evaluate(tree[1], states)
    if kind == "AND":
        return evaluate(tree[1], states) and evaluate(tree[2], states)
    return evaluate(tree[1], states) or evaluate(tree[2], states)
