"""A composite alarm's state from its rule: the rule language of PutCompositeAlarm's AlarmRule
(functions ALARM, OK, INSUFFICIENT_DATA; TRUE, FALSE; NOT, AND, OR and parentheses) and the
errors CloudWatch answers a rule it refuses."""

from __future__ import annotations

import pytest

from localcloud.behaviours.alarm_rules import MAX_RULE_CHARS, RuleRefused, check, evaluate, parse, triggering


def holds(rule: str, **states: str) -> bool:
    return evaluate(check(rule), states)


@pytest.mark.parametrize(
    ("rule", "states", "expected"),
    [
        # AND binds tighter than OR: a OR (b AND c)
        ("ALARM(a) OR ALARM(b) AND ALARM(c)", {"a": "ALARM", "b": "OK", "c": "OK"}, True),
        ("(ALARM(a) OR ALARM(b)) AND ALARM(c)", {"a": "ALARM", "b": "OK", "c": "OK"}, False),
        # NOT binds tighter than AND: (NOT a) AND b
        ("NOT ALARM(a) AND ALARM(b)", {"a": "OK", "b": "OK"}, False),
        ("NOT (ALARM(a) AND ALARM(b))", {"a": "OK", "b": "OK"}, True),
        ("NOT NOT ALARM(a)", {"a": "ALARM"}, True),
        ("OK(a) AND INSUFFICIENT_DATA(b)", {"a": "OK", "b": "INSUFFICIENT_DATA"}, True),
        ("ALARM(a) AND ALARM(b)", {"a": "OK", "b": "ALARM"}, False),
        ("OK(a) OR INSUFFICIENT_DATA(b)", {"a": "ALARM", "b": "OK"}, False),
        ("TRUE AND NOT FALSE", {}, True),
        ("FALSE OR FALSE", {}, False),
        ('ALARM("a") AND ALARM(a)', {"a": "ALARM"}, True),  # quoted or bare: the same alarm
    ],
)
def test_a_rule_holds_as_its_precedence_says(rule, states, expected):
    assert holds(rule, **states) is expected


def test_an_alarm_the_states_lack_is_in_no_state():
    assert holds("ALARM(gone) OR OK(gone) OR INSUFFICIENT_DATA(gone)") is False
    assert holds("NOT ALARM(gone)") is True


def test_the_state_reason_names_each_alarm_in_the_state_its_rule_tests_once():
    tree = parse('ALARM("b") OR ALARM("a") OR (OK(c) AND ALARM("a")) OR ALARM(d)')
    states = {"a": "ALARM", "b": "ALARM", "c": "OK", "d": "OK"}
    assert triggering(tree, states) == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (" ALARM(a)", "AlarmRule must not contain leading or trailing whitespace or be null"),
        ("ALARM(a) ", "AlarmRule must not contain leading or trailing whitespace or be null"),
        ("", "AlarmRule must not contain leading or trailing whitespace or be null"),
        ("(ALARM(a)", "AlarmRule: expected ) but found the end of the rule"),
        ("(ALARM(a) TRUE", "AlarmRule: expected ) but found TRUE"),
        ("ALARM(a b)", "AlarmRule: expected ) but found b"),
        ("ALARM a", "AlarmRule: expected ( but found a"),
        ("ALARM(a) OR", "AlarmRule: expected more but found the end of the rule"),
        ("ALARM(a) ALARM(b)", "AlarmRule: unexpected 'ALARM' after a complete expression"),
        ('ALARM(a) OR ALARM("b)', "AlarmRule: unexpected text at character 19"),
        ("AT_LEAST(2, ALARM, (a, b))", "AlarmRule: 'AT_LEAST' is not a function, operator or constant"),
    ],
)
def test_a_rule_that_does_not_parse_is_refused_saying_where(rule, message):
    with pytest.raises(RuleRefused) as refused:
        check(rule)
    assert (refused.value.code, refused.value.message) == ("ValidationError", message)
    assert str(refused.value) == f"ValidationError: {message}"


def test_a_rule_may_hold_10240_characters_and_not_one_more():
    name = "x" * (MAX_RULE_CHARS - len("ALARM()"))
    assert check(f"ALARM({name})") == ("ALARM", name)
    with pytest.raises(RuleRefused) as refused:
        check(f"ALARM({name}x)")
    assert refused.value.code == "ValidationError"
    assert refused.value.message.endswith("Member must have length less than or equal to 10240")


def test_a_rule_may_reference_100_alarms_and_not_101():
    hundred = " OR ".join(f"ALARM(a{n})" for n in range(100))
    check(f"{hundred} OR ALARM(a0)")  # the same alarm twice counts once
    with pytest.raises(RuleRefused) as refused:
        check(f"{hundred} OR ALARM(a100)")
    assert refused.value.code == "LimitExceeded"
    assert refused.value.message.startswith("The alarm rule references 101 alarms;")
    assert "as many as 100 underlying alarms" in refused.value.message
