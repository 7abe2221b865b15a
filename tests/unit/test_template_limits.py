"""Templates are bounded per rendering: known blow-ups end in a clear error naming the limit.

Each case is a template that would take minutes or gigabytes unbounded; here it must fail with
the limit in its message (never asserting a time). The CLI side (file, line, JSON path, exit
2) is covered by the invalid corpus, cases 47 to 57.
"""

from __future__ import annotations

import pytest
from bspec.spec.environment import Failure, Tpl, make_environment
from bspec.spec.limits import MAX_TEMPLATE_DEPTH, MAX_TEMPLATE_STEPS, MAX_VALUE_CHARS

STEPS = f"{MAX_TEMPLATE_STEPS:,} steps"
DEPTH = f"limit of {MAX_TEMPLATE_DEPTH}"
SIZE = f"{MAX_VALUE_CHARS:,} characters"

BLOW_UPS = [
    ("{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}", STEPS),
    ("{% for a in range(1000) %}{% for b in range(1000) %}{% endfor %}{% endfor %}", STEPS),
    ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", DEPTH),
    (
        "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(30) }}",
        STEPS,
    ),
    (
        "{% macro f() %}{{ caller() }}{% endmacro %}"
        "{% macro g(n) %}{% call f() %}{{ g(n + 1) }}{% endcall %}{% endmacro %}{{ g(0) }}",
        DEPTH,
    ),
    ("{% for x in [[[[1]]]] recursive %}{{ loop([x, x]) }}{% endfor %}", DEPTH),
    ("{{ 'x' | center(10 ** 9) }}", SIZE),
    ("{{ 'x'.center(1000000000) }}", SIZE),
    ("{{ 'x'.ljust(10 ** 9) }}{{ 'x'.zfill(10 ** 9) }}", SIZE),
    ("{{ '%1000000000s' | format(1) }}", SIZE),
    ("{{ '%*s' | format(1000000000, 1) }}", SIZE),
    ("{{ '%.*f' % (1000000000, 1.0) }}", SIZE),
    ("{{ '%1000000000s' % 1 }}", SIZE),
    ("{{ '{:1000000000}'.format(1) }}", SIZE),
    ("{{ '{:{w}}'.format(1, w=1000000000) }}", SIZE),
    ("{{ 'a' | indent(1000000000) }}", SIZE),
    ("{{ 'a b' | wordwrap(1000000000) }}", SIZE),
    ("{{ lipsum(10 ** 6) }}", SIZE),
    ("{{ range(100000) | map('center', 900000) | join }}", SIZE),
    ("{{ range(100000) | map('string') | map('center', 50) | join(',') }}", SIZE),
    (
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}{{ ns.s }}",
        SIZE,
    ),
    (
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}"
        "{% endfor %}{{ ns.s }}",
        SIZE,
    ),
    (
        "{% set ns = namespace(s=[1]) %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}"
        "{% endfor %}{{ ns.s | length }}",
        SIZE,
    ),
    ("{% set s = 'x' * 1000000 %}{% for i in range(1000) %}{{ s }}{% endfor %}", SIZE),
    (
        "{% set s = 'x' * 1000000 %}{% macro f() %}{% for i in range(1000) %}{{ s }}{% endfor %}"
        "{% endmacro %}{{ f() }}",
        SIZE,
    ),
    ("{{ 'x'.replace('x', 'y' * 999999) * 1 ~ 'zz' }}", SIZE),
    ("{{ range(10 ** 6) | join(',') }}", "MAX_RANGE"),
    ("{{ (range(100000) | list) * 100 }}", "too large"),
]


def _render(source: str) -> str:
    env = make_environment()
    return Tpl(env.from_string(source), ("jobs", 0, "tasks", 0, "commandLine"), source).render(
        dict(env.globals)
    )


@pytest.mark.parametrize(("source", "limit"), BLOW_UPS, ids=range(len(BLOW_UPS)))
def test_a_blow_up_template_fails_naming_its_limit(source: str, limit: str) -> None:
    with pytest.raises(Failure) as failure:
        _render(source)
    assert limit in failure.value.message
    assert failure.value.path == ("jobs", 0, "tasks", 0, "commandLine")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{% for i in range(3) %}{{ i }},{% endfor %}", "0,1,2,"),
        ("{% for a in range(300) %}{% for b in range(300) %}{% endfor %}{% endfor %}ok", "ok"),
        (
            "{% macro f(n) %}{{ n }}{% if n %}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}",
            "".join(str(n) for n in range(40, -1, -1)),
        ),
        ("{% macro f(x) %}<{{ caller() }}>{% endmacro %}{% call f(1) %}hi{% endcall %}", "<hi>"),
        (
            "{{ '%s-%s' | format('a', 'b') }} {{ '{}/{}'.format(1, 2) }} {{ '%05d' % 3 }}",
            "a-b 1/2 00003",
        ),
        ("{{ '%d' % 5000000000 }} {{ 'ab' ~ 'c' }} {{ 'x' | center(5) }}", "5000000000 abc   x  "),
        (
            "{{ range(5) | join(',') }} {{ ['a', 'b'] | join }} {{ lipsum(1, false) | length > 0 }}",
            "0,1,2,3,4 ab True",
        ),
        ("{{ ('x' * 999999) | length }}", "999999"),
    ],
)
def test_ordinary_templates_are_unchanged(source: str, expected: str) -> None:
    assert _render(source) == expected


def test_the_budget_is_per_rendering() -> None:
    """Each rendering of a task's template starts with a fresh budget."""
    env = make_environment()
    source = "{% for a in range(60000) %}{% endfor %}ok"
    tpl = Tpl(env.from_string(source), ("x",), source)
    assert [tpl.render(dict(env.globals)) for _ in range(3)] == ["ok"] * 3


def test_imported_macros_get_a_fresh_budget_every_rendering() -> None:
    """A template calling a macro of macros.j2 (no loop of its own) resets the budget too."""
    env = make_environment()
    source = '{% from "macros.j2" import id_for %}{{ id_for("t", item) }}'
    tpl = Tpl(env.from_string(source), ("x",), source)
    scope = dict(env.globals)
    for item in range(MAX_TEMPLATE_STEPS // 5):  # twice the calls one budget allows
        scope["item"] = item
        assert tpl.render(scope)
