"""Countdown: combine given numbers with + - * / to reach a target.

The arithmetic-reasoning target task of "Retaining by Doing" (arXiv 2510.18874).
A puzzle is a multiset of 3-4 numbers and a target; a solution is an arithmetic
expression that uses every given number exactly once and evaluates to the
target.

Design choices:

* Generation is constructive, so every puzzle is solvable: draw the numbers,
  fold them together with random operations into one expression, and use its
  value as the target.  Every intermediate must be a positive integer (classic
  Countdown rules: subtraction only from a larger number, division only when
  exact), and the target must lie in ``[1, max_target]``; draws that break
  these rules are redrawn.  The defaults (numbers in 1..99, targets in 1..99)
  follow the authors' checker, which only accepts values in 0..99.
* :func:`solve` searches exhaustively under the same classic rules, so it
  always finds a solution for generated puzzles; it returns ``None`` for a
  puzzle that can only be solved through zero, negative or fractional steps.
* :func:`check` follows the authors' checker (``CountdownDataset.reward_fn`` in
  ``core/data.py`` of princeton-pli/retaining-by-doing) by default:

  - the expression is the last ``\\boxed{...}`` (one level of nested braces, as the
    authors' regular expression allows), stripped; a response with no such box is
    checked whole, as the expression;
  - it is parsed with :mod:`ast` and walked over a whitelist (binary ``+ - * /``
    and ``//``, integer literals, parentheses), so no string is ever evaluated.
    Unary minus, powers, names, calls, floats, ``=`` and typeset operators
    (``\\times``, ``\\cdot``, ``×``, ``÷``, ``−``) are rejected.  ``True`` and
    ``False`` are Python integers, so they count as 1 and 0, as there;
  - arithmetic is on integers: ``/`` and ``//`` are accepted only when the
    division is exact, so ``(3/2)*4`` is wrong even though it equals 6;
    intermediate values may be negative;
  - the value must equal the target *and* lie in ``0..99`` (so a puzzle whose
    target is above 99 can never be solved), and the literals must be the given
    numbers as a multiset.

  Each departure the suite used before is a keyword option of :func:`check`
  (:data:`SUITE_RULES` sets them all): ``require_box``, ``exact_fractions``
  (rational arithmetic, any intermediate), ``floor_division`` (``False``: reject ``//``),
  ``latex_operators`` (rewrite typeset operators to ASCII) and ``value_range``
  (``None``: no range).
"""

from __future__ import annotations

import ast
import operator
import random
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from fractions import Fraction
from itertools import combinations

PROMPT_TEMPLATE = (
    "Using each of the numbers {numbers} exactly once, write an arithmetic "
    "expression that equals {target}. You may use +, -, * and / and "
    "parentheses. Think it through step by step, then write only the final "
    "expression (not its value) inside \\boxed{{}}, for example "
    "\\boxed{{(1 + 2) * 3}}."
)

_SYMBOLS = {"\\times": "*", "\\cdot": "*", "×": "*", "\\div": "/", "÷": "/", "−": "-"}
_OPERATORS = {
    ast.Add: ("+", operator.add),
    ast.Sub: ("-", operator.sub),
    ast.Mult: ("*", operator.mul),
    ast.Div: ("/", operator.truediv),
}
_ALLOWED_NODES = (ast.Expression, ast.BinOp, ast.Constant, *_OPERATORS)

# A partial expression during generation and search: its value and its AST.
_Item = tuple[int, ast.expr]


def generate(
    n: int,
    seed: int,
    n_numbers: int | tuple[int, int] = (3, 4),
    max_number: int = 99,
    max_target: int = 99,
) -> list[dict]:
    """Generate ``n`` solvable puzzles, deterministically from ``seed``.

    ``n_numbers`` is a fixed count or an inclusive ``(low, high)`` range drawn
    per puzzle; numbers are drawn uniformly from ``1..max_number`` (repeats
    allowed).
    """
    low, high = (n_numbers, n_numbers) if isinstance(n_numbers, int) else n_numbers
    if not 2 <= low <= high:
        raise ValueError(f"n_numbers must be >= 2 and ordered, got {n_numbers}")
    if max_number < 1 or max_target < 1:
        raise ValueError("max_number and max_target must be positive")
    rng = random.Random(seed)
    records = []
    for index in range(n):
        count = rng.randint(low, high)
        numbers, target, solution = _random_puzzle(rng, count, max_number, max_target)
        records.append(
            {
                "id": f"countdown-{seed}-{index}",
                "prompt": format_prompt(numbers, target),
                "answers": [str(target)],
                "metadata": {"numbers": numbers, "target": target, "solution": solution},
            }
        )
    return records


def format_prompt(numbers: Sequence[int], target: int) -> str:
    """The task prompt for one puzzle."""
    return PROMPT_TEMPLATE.format(numbers=", ".join(map(str, numbers)), target=target)


def solve(numbers: Sequence[int], target: int) -> str | None:
    """An expression reaching ``target`` under classic rules, or ``None``."""
    items = [(number, ast.Constant(number)) for number in numbers]
    node = _search(items, target, failed=set())
    return None if node is None else ast.unparse(node)


# The suite's former, more permissive rules (each one a departure from the authors' checker).
SUITE_RULES = {"require_box": True, "exact_fractions": True, "floor_division": False,
               "latex_operators": True, "value_range": None}
REFERENCE_RANGE = (0, 99)  # the authors' ``min_val``, ``max_val``: the final value must lie in it

# The last-box pattern of the authors' ``parse_output_text``: box content is any run of non-brace
# characters and brace groups one level deep.
_BOXED = re.compile(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}")


def check(
    completion: str,
    numbers: Sequence[int],
    target: int | str,
    *,
    require_box: bool = False,
    exact_fractions: bool = False,
    floor_division: bool = True,
    latex_operators: bool = False,
    value_range: tuple[int, int] | None = REFERENCE_RANGE,
) -> bool:
    """Whether ``completion`` solves the puzzle; the defaults are the authors' checker (module doc).

    ``require_box``: a response without ``\\boxed{}`` is wrong (default: checked whole);
    ``exact_fractions``: exact rational arithmetic, fractional intermediates allowed (default:
    integers, exact division only); ``floor_division``: accept ``//`` as (exact) division;
    ``latex_operators``: rewrite ``\\times``, ``\\cdot``, ``×``, ``\\div``, ``÷``, ``−`` to ASCII;
    ``value_range``: inclusive range the value must lie in (``None``: any).
    """
    expression = extract_expression(completion, require_box=require_box)
    if expression is None or "\x00" in expression:
        return False
    if latex_operators:
        for symbol, ascii_operator in _SYMBOLS.items():
            expression = expression.replace(symbol, ascii_operator)
    expression = expression.strip()
    if not expression:
        return False
    try:
        tree = ast.parse(expression, mode="eval")
        used: Counter = Counter()
        value = _checked_value(tree.body, used, exact_fractions, floor_division)
    except (SyntaxError, ValueError, TypeError, ZeroDivisionError, RecursionError, MemoryError):
        return False
    if value_range is not None and not value_range[0] <= value <= value_range[1]:
        return False
    return value == Fraction(target) and used == Counter(numbers)


def extract_expression(completion: str, require_box: bool = False) -> str | None:
    """The stripped content of the last ``\\boxed{...}`` (the authors' pattern: braces nest one
    level deep); without one, the whole completion, or ``None`` when ``require_box``."""
    boxes = _BOXED.findall(completion)
    if boxes:
        return boxes[-1].strip()
    return None if require_box else completion


def _checked_value(node: ast.AST, used: Counter, exact_fractions: bool, floor_division: bool) -> int | Fraction:
    """Value of a whitelisted expression, counting its literals into ``used``; ``ValueError``
    for any other node, a ``//`` that is not allowed, or (integer rules) an inexact division."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int):  # bools too, as in Python
        used[node.value] += 1
        return Fraction(node.value) if exact_fractions else node.value
    if not isinstance(node, ast.BinOp):
        raise ValueError("not an arithmetic expression")
    left = _checked_value(node.left, used, exact_fractions, floor_division)
    right = _checked_value(node.right, used, exact_fractions, floor_division)
    op = type(node.op)
    if op is ast.FloorDiv and not floor_division:
        raise ValueError("'//' is not allowed")
    if op in (ast.Div, ast.FloorDiv):
        if right == 0 or (not exact_fractions and left % right):
            raise ValueError("division by zero or not exact")
        return left / right if exact_fractions else left // right
    if op not in _OPERATORS:
        raise ValueError("operator not allowed")
    return _OPERATORS[op][1](left, right)


def expert_solution(record: dict) -> str:
    """A short step-by-step derivation ending in ``\\boxed{expression}``.

    Uses the recorded solution, or :func:`solve` for records that carry none.
    """
    metadata = record["metadata"]
    expression = metadata.get("solution") or solve(metadata["numbers"], metadata["target"])
    if expression is None:
        raise ValueError(f"no classic-rules solution for record {record['id']}")
    steps: list[str] = []
    value = _evaluate(ast.parse(expression, mode="eval").body, steps)
    return (
        "Let me combine the numbers one step at a time.\n"
        + "\n".join(steps)
        + f"\nSo {expression} = {value}.\n\n\\boxed{{{expression}}}"
    )


def last_boxed(text: str) -> str | None:
    """The contents of the last ``\\boxed{...}`` (nested braces allowed)."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth = 0
    for position in range(start + len("\\boxed"), len(text)):
        depth += {"{": 1, "}": -1}.get(text[position], 0)
        if depth == 0:
            return text[start + len("\\boxed{") : position]
    return None


def parse_expression(expression: str) -> ast.Expression | None:
    """Parse an arithmetic expression, or ``None`` if it is not whitelisted."""
    for symbol, ascii_operator in _SYMBOLS.items():
        expression = expression.replace(symbol, ascii_operator)
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    return tree if all(_is_allowed(node) for node in ast.walk(tree)) else None


def _is_allowed(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return type(node.value) is int
    return isinstance(node, _ALLOWED_NODES)


def _literals(tree: ast.Expression) -> list[int]:
    return [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)]


def _evaluate(node: ast.expr, steps: list[str] | None = None) -> Fraction:
    """Exact value of a whitelisted expression; optionally log each operation."""
    if isinstance(node, ast.Constant):
        return Fraction(node.value)
    left, right = _evaluate(node.left, steps), _evaluate(node.right, steps)
    symbol, apply = _OPERATORS[type(node.op)]
    value = apply(left, right)
    if steps is not None:
        steps.append(f"{left} {symbol} {right} = {value}")
    return value


def _combinations(a: _Item, b: _Item) -> Iterator[_Item]:
    """Every positive-integer result of one operation on ``a`` and ``b``."""
    (x, x_node), (y, y_node) = a, b
    yield x + y, ast.BinOp(x_node, ast.Add(), y_node)
    yield x * y, ast.BinOp(x_node, ast.Mult(), y_node)
    for (p, p_node), (q, q_node) in ((a, b), (b, a)):
        if p > q:
            yield p - q, ast.BinOp(p_node, ast.Sub(), q_node)
        if p % q == 0:
            yield p // q, ast.BinOp(p_node, ast.Div(), q_node)


def _random_puzzle(
    rng: random.Random, count: int, max_number: int, max_target: int
) -> tuple[list[int], int, str]:
    """Draw numbers and fold them into a random expression until it is in range."""
    while True:
        numbers = [rng.randint(1, max_number) for _ in range(count)]
        items = [(number, ast.Constant(number)) for number in numbers]
        while len(items) > 1:
            a, b = (items.pop(rng.randrange(len(items))) for _ in range(2))
            items.append(rng.choice(list(_combinations(a, b))))
        value, node = items[0]
        if value <= max_target:
            return numbers, value, ast.unparse(node)


def _search(items: list[_Item], target: int, failed: set[tuple[int, ...]]) -> ast.expr | None:
    """Depth-first search over pairwise combinations, memoising dead ends."""
    if len(items) == 1:
        return items[0][1] if items[0][0] == target else None
    key = tuple(sorted(value for value, _ in items))
    if key in failed:
        return None
    for i, j in combinations(range(len(items)), 2):
        rest = [item for k, item in enumerate(items) if k not in (i, j)]
        for combined in _combinations(items[i], items[j]):
            found = _search([*rest, combined], target, failed)
            if found is not None:
                return found
    failed.add(key)
    return None
