"""Math answers checked with math-verify.

The gold answer is parsed as LaTeX (``$...$``); the completion is parsed by
math-verify's default extractors, which prefer the last ``\\boxed{}`` and fall
back to the last LaTeX or plain expression. GSM8K's ``#### 42`` form is turned
into a boxed answer first so that a model imitating GSM8K solutions is scored
on the number after ``####``.

A final answer must be a value, not the computation asked for: math-verify parses "95 + 87" in
"I think 95 + 87 is hard" as the unevaluated sum and ``verify`` then finds it equal to 182, so a
completion that restates an arithmetic question would count as solving it (a policy trained on
2-digit addition learns exactly that). A prediction that is a sum or product of plain numbers
(``95 + 87``, ``12 \\times 3``, ``\\frac{1}{2} + \\frac{1}{3}``) is therefore rejected; a single number,
a fraction, a negative number and expressions with a radical, a power, a constant or a variable
(``1 + \\sqrt{2}``, ``3 \\times 10^{5}``, ``2\\pi``, ``x + 1``) are judged by ``verify`` as before.
"""

from __future__ import annotations

import re
from functools import lru_cache

import sympy
from math_verify import parse, verify

_GSM8K_FINAL = re.compile(r"####\s*([^\n]+)")


@lru_cache(maxsize=4096)
def _parse_gold(answer: str):
    return parse(f"${answer}$")


def _prepare_completion(completion: str) -> str:
    if "\\boxed" not in completion:
        match = _GSM8K_FINAL.search(completion)
        if match:
            return f"\\boxed{{{match.group(1).strip().replace(',', '')}}}"
    return completion


def is_unevaluated_arithmetic(expr) -> bool:
    """True for a sum or product of plain numbers left uncomputed (``95 + 87``, ``12 * 3``); False for a
    single number or fraction (math-verify parses ``3/4`` as one rational), a negative number, and any
    expression with a power, radical, constant or variable (``1 + \\sqrt{2}``, ``3 \\times 10^{5}``)."""
    if not isinstance(expr, sympy.Basic):
        return False
    operations = 0
    for node in sympy.preorder_traversal(expr):
        if isinstance(node, sympy.Add):
            operations += 1
        elif isinstance(node, sympy.Mul):
            operations += len([a for a in node.args if a != sympy.S.NegativeOne]) > 1
        elif not isinstance(node, sympy.Number):
            return False
    return operations > 0


def is_correct(completion: str, answers: list[str]) -> bool:
    """True when the completion's final answer is a value equal to any gold answer."""
    predicted = parse(_prepare_completion(completion))
    if not predicted or is_unevaluated_arithmetic(predicted[0]):
        return False
    return any(verify(_parse_gold(str(a)), predicted) for a in answers)


def math_reward(completion: str, answers: list[str], **_) -> float:
    return float(is_correct(completion, answers))
