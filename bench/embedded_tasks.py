"""Ten simple programming tasks, each with the tests a proposal must pass.

The tests import from ``solution``, the name the prompts ask for. They are small on purpose:
the question is whether the embedded model's proposals carry a runnable artifact, and how
many pass, not how hard a task it can solve.
"""

from __future__ import annotations

from orchestrator_core.models import Task, TaskConstraints, TaskTest


def _task(description: str, function: str, cases: list[tuple[str, str]]) -> Task:
    asserts = "\n".join(f"    assert {function}({args}) == {expected}" for args, expected in cases)
    test = f"from solution import {function}\n\n\ndef test_{function}():\n{asserts}\n"
    return Task("DEV", description, TaskConstraints(tests=(TaskTest(f"test_{function}.py", test),)))


TASKS: tuple[Task, ...] = (
    _task("Write a Python function add(a, b) that returns the sum of a and b.", "add",
          [("1, 2", "3"), ("-1, 1", "0")]),
    _task("Write a Python function is_even(n) that returns True when the integer n is even.", "is_even",
          [("2", "True"), ("7", "False")]),
    _task("Write a Python function reverse_string(s) that returns the string s reversed.", "reverse_string",
          [("'abc'", "'cba'"), ("''", "''")]),
    _task("Write a Python function factorial(n) that returns n! for a non-negative integer n.", "factorial",
          [("0", "1"), ("5", "120")]),
    _task("Write a Python function maximum(numbers) that returns the largest number in a non-empty list.",
          "maximum", [("[1, 5, 3]", "5"), ("[-2, -1]", "-1")]),
    _task("Write a Python function count_vowels(text) that returns how many of the letters a, e, i, o, u "
          "(lower case) the string contains.", "count_vowels", [("'banana'", "3"), ("'xyz'", "0")]),
    _task("Write a Python function celsius_to_fahrenheit(c) that converts degrees Celsius to Fahrenheit.",
          "celsius_to_fahrenheit", [("0", "32"), ("100", "212")]),
    _task("Write a Python function is_palindrome(s) that returns True when the string s reads the same "
          "backwards.", "is_palindrome", [("'level'", "True"), ("'abc'", "False")]),
    _task("Write a Python function square(x) that returns x multiplied by itself.", "square",
          [("3", "9"), ("-4", "16")]),
    _task("Write a Python function first_element(items) that returns the first element of a non-empty list.",
          "first_element", [("[7, 8]", "7"), ("['a']", "'a'")]),
)
