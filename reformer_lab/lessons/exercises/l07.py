"""Lesson 07, the duplication task (paper §2.1, Table 2): the checks of the three exercises.

Each one moves the lesson's reasoning to a new case: the key a query needs when the second copy is reversed
(exercise 1), how many queries a local window serves at another |w| and chunk size (exercise 2), and what
independent hash rounds would predict for Table 2's columns from its LSH-1 column (exercise 3).
"""

from __future__ import annotations

from collections.abc import Callable

from reformer_lab.lessons.exercises import Case, CheckResult, Mistake, grade

__all__ = ["check_reversed_needed_key", "check_local_coverage", "check_predicted_accuracy"]


# Exercise 1: the needed key in 0 w 0 reverse(w) ---------------------------------------------------------------


def check_reversed_needed_key(fn: Callable[[int, int], int]) -> CheckResult:
    """Exercise 1: in 0 w 0 wᴿ (the second copy reversed), ``fn(position, w_len)`` → the position in the first
    copy whose token is ``targets[position]``, for the masked positions |w| + 1 … 2|w|: 2|w| + 1 − position."""
    pairs = [(64, 63), (100, 63), (126, 63), (4, 3), (6, 3), (600, 511), (512, 511)]
    cases = [Case((i, n), float(2 * n + 1 - i)) for i, n in pairs]
    mistakes = [
        Mistake(lambda i, n: i - n, "position − |w| is the answer for 0w0w; reversed, the second copy walks the first "
                "one backwards, so the key moves *left* as the query moves right."),
        Mistake(lambda i, n: 2 * n + 2 - i, "that is where the *current* token's symbol sits in the first copy; the "
                "model predicts the next token, the symbol one step further back in w: 2|w| + 1 − position."),
        Mistake(lambda i, n: 2 * n - i, "one too far left: check the first masked position, |w| + 1, whose target "
                "is the last symbol of w, at position |w|."),
        Mistake(lambda i, n: i + 1, "that is where the target sits in the second copy; causal attention cannot read "
                "it, the model must find the same symbol in the first copy."),
    ]
    return grade("Exercise 1 (reversed_needed_key)", fn, cases, mistakes)


# Exercise 2: how much a local window covers ------------------------------------------------------------------


def _coverage(w_len: int, chunk: int, *, back: int = 1, offset: int = 0, over_all: bool = False,
              count: bool = False) -> float:
    """Share of masked queries i = |w| + 1 … 2|w| whose key i − |w| − ``offset`` is at most ``back`` chunks
    before i's chunk (chunks of ``chunk`` positions); the usual mistakes as switches."""
    masked = range(w_len + 1, 2 * w_len + 1)
    seen = sum((i // chunk) - ((i - w_len - offset) // chunk) <= back for i in masked)
    if count:
        return float(seen)
    return seen / (2 * (w_len + 1) if over_all else w_len)


_COVERAGE_MISTAKES = [
    Mistake(lambda n, m: float(n <= m), "chunks have fixed borders: a key up to 2m − 1 positions back can still be "
            "in the previous chunk. Compare chunk numbers, ⌊i/m⌋ and ⌊(i − |w|)/m⌋, query by query."),
    Mistake(lambda n, m: _coverage(n, m, back=0), "a query also sees the chunk before its own (eq. 5), not only "
            "its own chunk."),
    Mistake(lambda n, m: float(n < 2 * m), "chunks have fixed borders, so the answer depends on where each query "
            "sits in its chunk: compare chunk numbers ⌊i/m⌋ and ⌊(i − |w|)/m⌋ query by query."),
    Mistake(lambda n, m: _coverage(n, m, offset=1), "the key that holds the target is |w| back, not |w| + 1 (that "
            "is the current token's first copy)."),
    Mistake(lambda n, m: _coverage(n, m, over_all=True), "divide by the masked queries (|w| of them), not by the "
            "whole sequence."),
    Mistake(lambda n, m: _coverage(n, m, count=True), "return a fraction of the masked queries, not a count."),
]


def check_local_coverage(fn: Callable[[int, int], float]) -> CheckResult:
    """Exercise 2: ``fn(w_len, chunk_size)`` → the fraction of the masked queries (|w| + 1 … 2|w|) whose needed key
    (|w| back) lies in the query's own chunk or the one before, with the sequence cut into chunks of
    ``chunk_size`` positions (LSH's chunking without the hashing)."""
    pairs = [(12, 16), (10, 8), (63, 32), (7, 4), (3, 2), (40, 32), (63, 64), (511, 128), (20, 8)]
    cases = [Case((n, m), _coverage(n, m)) for n, m in pairs]
    return grade("Exercise 2 (local_coverage)", fn, cases, _COVERAGE_MISTAKES)


# Exercise 3: what independent rounds predict for Table 2 -----------------------------------------------------


def _predicted(a1: float, n: int, n_symbols: int, *, chance: bool = True) -> float:
    guess = 1 / n_symbols if chance else 0.0
    p = (a1 - guess) / (1 - guess)  # one round finds the key with probability p, else the model guesses
    found = 1 - (1 - p) ** n
    return found + (1 - found) * guess


def check_predicted_accuracy(fn: Callable[[float, int, int], float]) -> CheckResult:
    """Exercise 3: ``fn(one_round_accuracy, n_hashes, n_symbols)`` → the accuracy with ``n_hashes`` rounds that
    independent rounds predict, if a query whose key shares its bucket in at least one round answers right and
    any other query guesses one of ``n_symbols`` symbols uniformly (our simplified model, not the paper's)."""
    triples = [(0.525, 2, 127), (0.525, 8, 127), (0.779, 4, 127), (0.3, 3, 10), (1.0, 2, 127), (0.5, 1, 2)]
    cases = [Case(t, _predicted(*t)) for t in triples]
    mistakes = [
        Mistake(lambda a, n, s: _predicted(a, n, s, chance=False),
                "part of the one-round accuracy is lucky guessing (1/n_symbols of the misses): take it out to get "
                "the chance p that a round finds the key, a₁ = p + (1 − p)/n_symbols, then put it back at the end."),
        Mistake(lambda a, n, s: 1 - (1 - (a - 1 / s) / (1 - 1 / s)) ** n,
                "the queries no round finds still guess, and 1/n_symbols of those guesses are right: add "
                "(1 − q)/n_symbols."),
        Mistake(lambda a, n, s: a**n, "a^n is the chance that *every* round finds the key; one round that finds it "
                "is enough (eq. 6)."),
        Mistake(lambda a, n, s: min(1.0, n * a), "rounds do not add up (n·a can exceed 1): go through the chance "
                "that every round misses, (1 − p)^n."),
    ]
    return grade("Exercise 3 (predicted_accuracy)", fn, cases, mistakes, rel=1e-9)
