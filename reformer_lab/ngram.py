"""Count-based character n-gram language models: the baseline beside a neural model's bits/char curve.

An order-n model predicts each token from the n − 1 tokens before it and nothing else, so its held-out
bits/char says what "looking only at the last n − 1 characters" achieves; a Reformer that beats the order-6
line has learned something a short window cannot see.

Smoothing is *interpolated Kneser–Ney* with one absolute discount ``D`` (Chen & Goodman 1999, §2.7).
With a_k(h, w) the count of token w after the context h of k − 1 tokens, A(h) = Σ_w a_k(h, w) and
T(h) = #{w : a_k(h, w) > 0}::

    P_k(w | h) = (max(a_k(h, w) − D, 0) + D · T(h) · P_{k−1}(w | h[1:])) / A(h)     if A(h) > 0
               = P_{k−1}(w | h[1:])                                                 otherwise
    P_0(w)     = 1 / vocab_size

At the model's own order a_k is the raw count; below it a_k(h, w) is the *continuation count*, the number
of distinct tokens seen just before h w in the training text. Kneser–Ney is used because a lower order is
only consulted where the higher one has little evidence, and there what matters is how many different
contexts a string completes, not how often it occurs (the classic example: "Francisco" is frequent but
follows almost nothing but "San"). The discount subtracted from every seen count pays for the mass handed
to the lower order, which keeps every distribution normalised; the uniform P_0 makes every probability
> 0. Order 1 is the same formula with raw unigram counts: absolute discounting interpolated with uniform.

Context never crosses the start of a row: a token whose row offers fewer than n − 1 tokens of context is
predicted by the lower-order distribution of the context it has. Contexts and (context, token) pairs are
stored as sorted int64 keys (tokens as base-``vocab_size`` digits, so up to 7 context tokens with
``vocab_size`` <= 256) and looked up with :func:`numpy.searchsorted`, so fitting is a few :func:`numpy.unique`
calls per order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from reformer_lab.validation import ArgumentTypeError, as_float, as_int

__all__ = ["MAX_ORDER", "MAX_VOCAB_SIZE", "NGramModel", "fit_ngrams"]

#: The longest context (MAX_ORDER − 1 tokens) and the largest vocabulary whose keys fit in an int64.
MAX_ORDER = 8
MAX_VOCAB_SIZE = 256

TokenArray = torch.Tensor | np.ndarray


def _token_array(name: str, value: object, vocab_size: int) -> np.ndarray:
    """``value`` (a tensor or array of token ids) as an int64 array, every id checked to lie in [0, vocab_size)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if not isinstance(value, np.ndarray):
        what = type(value).__name__
        raise ArgumentTypeError(f"{name} must be a torch.Tensor or numpy array of token ids, got {what}")
    if not np.issubdtype(value.dtype, np.integer):
        raise ArgumentTypeError(f"{name} must hold integer token ids, got dtype {value.dtype}")
    if value.size and (value.min() < 0 or value.max() >= vocab_size):
        bad = value.min() if value.min() < 0 else value.max()
        raise ValueError(f"{name} must hold token ids in [0, vocab_size={vocab_size}), got {bad}")
    return value.astype(np.int64)


def _window_keys(tokens: np.ndarray, width: int, base: int) -> np.ndarray:
    """The key of every window ``tokens[..., j : j + width]`` along the last axis: its tokens as base-``base`` digits.

    A width-0 window (the empty context) has key 0, and there are ``length + 1`` of them.
    """
    count = max(tokens.shape[-1] - width + 1, 0)
    keys = np.zeros((*tokens.shape[:-1], count), dtype=np.int64)
    for offset in range(width):
        keys = keys * base + tokens[..., offset : offset + count]
    return keys


def _lookup(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """The index of each of ``keys`` in ``sorted_keys``, −1 where it is absent."""
    if len(sorted_keys) == 0:
        return np.full(np.shape(keys), -1, dtype=np.int64)
    index = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return np.where(sorted_keys[index] == keys, index, -1)


@dataclass(frozen=True)
class _Level:
    """The counts a_k(h, w) of one order k: contexts h of k − 1 tokens and the tokens w seen after them."""

    context_keys: np.ndarray  # sorted keys of the contexts h
    totals: np.ndarray  # A(h) = Σ_w a_k(h, w), one per context
    types: np.ndarray  # T(h) = #{w : a_k(h, w) > 0}, one per context
    pair_keys: np.ndarray  # sorted keys (index of h) · vocab_size + w of the pairs with a_k(h, w) > 0
    pair_counts: np.ndarray  # a_k(h, w), one per pair

    @classmethod
    def count(cls, ids: np.ndarray, k: int, vocab_size: int, continuation: bool) -> _Level:
        """Raw counts of the k-grams of ``ids``, or with ``continuation`` the number of distinct tokens before each."""
        first = 1 if continuation else 0  # a continuation count needs a token to the left of the k-gram
        stop = len(ids) - k + 1  # the k-grams start at j = first … stop − 1
        contexts = _window_keys(ids, k - 1, vocab_size)[first:stop]
        context_keys, context_index = np.unique(contexts, return_inverse=True)
        pairs = context_index.reshape(-1) * vocab_size + ids[first + k - 1 :]
        if continuation:
            distinct = np.unique(pairs * vocab_size + ids[: max(stop - 1, 0)])  # (pair, token before it)
            pairs = distinct // vocab_size
        pair_keys, pair_counts = np.unique(pairs, return_counts=True)
        owner = pair_keys // vocab_size
        totals = np.bincount(owner, weights=pair_counts, minlength=len(context_keys))
        types = np.bincount(owner, minlength=len(context_keys))
        return cls(context_keys, totals, types, pair_keys, pair_counts)

    def interpolate(self, contexts: np.ndarray, tokens: np.ndarray, lower: np.ndarray, discount: float,
                    vocab_size: int) -> np.ndarray:
        """P_k(token | context) from P_{k−1} = ``lower``; ``contexts`` index ``context_keys`` (−1: not seen)."""
        seen = contexts >= 0
        if not seen.any():
            return lower
        context = np.where(seen, contexts, 0)
        pair = _lookup(self.pair_keys, context * vocab_size + tokens)
        count = np.where(pair >= 0, self.pair_counts[pair], 0)
        types, totals = self.types[context], self.totals[context]
        interpolated = (np.maximum(count - discount, 0.0) + discount * types * lower) / totals
        return np.where(seen, interpolated, lower)


class NGramModel:
    """An interpolated Kneser–Ney character n-gram model; build one with :meth:`fit`."""

    def __init__(self, order: int, vocab_size: int, discount: float, levels: Sequence[_Level]) -> None:
        self.order, self.vocab_size, self.discount = order, vocab_size, discount
        self._levels = tuple(levels)  # levels[k − 1] holds the counts of order k

    def __repr__(self) -> str:
        return f"NGramModel(order={self.order}, vocab_size={self.vocab_size}, discount={self.discount})"

    @classmethod
    def fit(cls, ids: TokenArray, order: int, vocab_size: int, discount: float = 0.75) -> NGramModel:
        """Count the training text ``ids`` (1-D token ids in [0, vocab_size)) for a model of ``order`` (1 … 8)."""
        order = as_int("order", order, minimum=1, maximum=MAX_ORDER)
        vocab_size = as_int("vocab_size", vocab_size, minimum=1, maximum=MAX_VOCAB_SIZE)
        discount = as_float("discount", discount)
        if not 0.0 < discount < 1.0:
            raise ValueError(f"discount must lie in (0, 1), got {discount}")
        tokens = _token_array("ids", ids, vocab_size)
        if tokens.ndim != 1:
            raise ValueError(f"ids must be 1-D (one training text), got shape {tokens.shape}")
        if len(tokens) == 0:
            raise ValueError("ids must hold at least one token, got an empty training text")
        levels = [_Level.count(tokens, k, vocab_size, continuation=k < order) for k in range(1, order + 1)]
        return cls(order, vocab_size, discount, levels)

    def _probabilities(self, context_indices: Sequence[np.ndarray], tokens: np.ndarray) -> np.ndarray:
        """P(token | context), given for every order k the context's index among that order's contexts (−1: none)."""
        probs = np.full(tokens.shape, 1.0 / self.vocab_size)
        for level, contexts in zip(self._levels, context_indices, strict=True):
            probs = level.interpolate(contexts, tokens, probs, self.discount, self.vocab_size)
        return probs

    def prob_table(self, context: TokenArray | Sequence[int]) -> np.ndarray:
        """P(c | context) for every token c, float64 [vocab_size]; only the last order − 1 tokens of context count."""
        if isinstance(context, list | tuple):
            context = np.array([as_int("context entries", token) for token in context], dtype=np.int64)
        tokens = _token_array("context", context, self.vocab_size)
        if tokens.ndim != 1:
            raise ValueError(f"context must be 1-D, got shape {tokens.shape}")
        indices = []
        for k, level in enumerate(self._levels, start=1):
            if k - 1 > len(tokens):
                indices.append(np.int64(-1))
            else:
                key = _window_keys(tokens[len(tokens) - (k - 1) :], k - 1, self.vocab_size)
                indices.append(_lookup(level.context_keys, key)[0])
        return self._probabilities(indices, np.arange(self.vocab_size))

    def _rows(self, sequences: TokenArray) -> np.ndarray:
        rows = _token_array("sequences", sequences, self.vocab_size)
        if rows.ndim not in (1, 2):
            raise ValueError(f"sequences must be [batch, length] or [length], got shape {rows.shape}")
        return rows.reshape(1, -1) if rows.ndim == 1 else rows

    def log2_probs(self, sequences: TokenArray) -> np.ndarray:
        """log2 P(sequences[b, t + 1] | up to order − 1 tokens before it in row b), float64 [B, L − 1].

        ``sequences`` is [B, L] or [L] (one row); the context never reaches back past the start of a row.
        """
        rows = self._rows(sequences)
        targets = rows[:, 1:]
        length = targets.shape[1]
        indices = []
        for k, level in enumerate(self._levels, start=1):
            # The target at column t of ``targets`` (row position t + 1) has context rows[:, t + 2 − k : t + 1].
            keys = _window_keys(rows[:, :-1], k - 1, self.vocab_size)
            contexts = np.full(targets.shape, -1, dtype=np.int64)
            start = min(max(k - 2, 0), length)
            contexts[:, start:] = _lookup(level.context_keys, keys[:, max(2 - k, 0) :])
            indices.append(contexts)
        return np.log2(self._probabilities(indices, targets))

    def bits_per_token(self, sequences: TokenArray, mask: TokenArray | None = None) -> float:
        """Mean −log2 P over the predicted positions (columns 1 … L − 1) where ``mask`` [B, L − 1] (bool) is True."""
        log2_probs = self.log2_probs(sequences)
        if mask is not None:
            log2_probs = log2_probs[self._mask(mask, log2_probs.shape, np.ndim(sequences) == 1)]
        if log2_probs.size == 0:
            raise ValueError("no positions to score: sequences need length >= 2 and mask at least one True")
        return float(-log2_probs.mean())

    @staticmethod
    def _mask(mask: TokenArray, shape: tuple[int, ...], one_row: bool) -> np.ndarray:
        if isinstance(mask, torch.Tensor):
            mask = mask.detach().cpu().numpy()
        if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_:
            what = f"dtype {mask.dtype}" if isinstance(mask, np.ndarray) else type(mask).__name__
            raise ArgumentTypeError(f"mask must be a bool tensor or array (True where a position counts), got {what}")
        if one_row and mask.shape == shape[1:]:
            mask = mask.reshape(shape)
        if mask.shape != shape:
            raise ValueError(f"mask must have the shape [B, L − 1] = {list(shape)} of the scored positions, "
                             f"got {list(mask.shape)}")
        return mask


def fit_ngrams(ids: TokenArray, orders: Iterable[int], vocab_size: int,
               discount: float = 0.75) -> dict[int, NGramModel]:
    """One :class:`NGramModel` per order in ``orders``, all fitted on the training text ``ids``."""
    orders = [as_int("orders entries", order) for order in orders]
    if not orders:
        raise ValueError("orders must name at least one order, got none")
    return {order: NGramModel.fit(ids, order, vocab_size, discount) for order in orders}
