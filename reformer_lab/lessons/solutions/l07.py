"""Solutions to lesson 07, "the duplication task" (paper §2.1, Table 2)."""

from __future__ import annotations


def reversed_needed_key(position: int, w_len: int) -> int:
    """In 0 w 0 wᴿ the target of position i is token i + 1, the (i + 1 − (|w| + 2))-th symbol of wᴿ (from 0),
    which is symbol 2|w| − i of w (from 0), at position 2|w| + 1 − i of the first copy.

    The first masked query, |w| + 1, needs the key right before the separator (|w| back is 1 position back);
    the last, 2|w|, needs position 1: unlike 0w0w, the distance runs from 1 to 2|w| − 1.
    """
    return 2 * w_len + 1 - position


def local_coverage(w_len: int, chunk_size: int) -> float:
    """Masked queries i = |w| + 1 … 2|w| whose key i − |w| is in i's chunk or the one before, as a fraction."""
    masked = range(w_len + 1, 2 * w_len + 1)
    seen = sum(i // chunk_size - (i - w_len) // chunk_size <= 1 for i in masked)
    return seen / w_len


def predicted_accuracy(one_round_accuracy: float, n_hashes: int, n_symbols: int) -> float:
    """a₁ = p + (1 − p)/N gives the chance p that one round finds the key; n independent rounds find it with
    q = 1 − (1 − p)^n; the rest guess: a_n = q + (1 − q)/N."""
    chance = 1 / n_symbols
    p = (one_round_accuracy - chance) / (1 - chance)
    found = 1 - (1 - p) ** n_hashes
    return found + (1 - found) * chance
