"""Property-based tests (hypothesis) of the public entry points, over shapes, dtypes, sizes and odd values.

One property throughout: a call either raises a clear ``ValueError`` / ``TypeError`` whose message names the
argument at fault (and repeats its value where it is a number or a string), or returns a result equal to a
reference: a brute-force float64 computation written here, ``F.cross_entropy``, or the unchunked /
full-attention twin.

Each test models which inputs are valid (its ``reasons`` list): the implementation must raise exactly when the
model finds a reason, and name one of them. To keep most examples valid, :class:`_Args` breaks at most one
argument per example (or, in one case in several, lets every argument be bad at once). Non-finite inputs are not
refused (checking them would synchronise the device on every call): a NaN or inf in row i must leave row i of
the output non-finite, never a finite-looking value; a zero vector is an ordinary input.

Profiles, registered here: ``ci`` (the default: 40 examples a test, derandomized so that every run tries the
same inputs, no deadline, no example database) and ``dev`` (300 random examples); choose one with
``REFORMER_LAB_HYPOTHESIS_PROFILE=dev``. ``--hypothesis-show-statistics`` shows how many examples were refused
and how many computed. Tolerances against the float64 references: 1e-9 in float64, 1e-5 in float32, 3e-2 in
float16 and 8e-2 in bfloat16 (a rounding or two of keys, logits and output), times max(1, max |v|).
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from reformer_lab.attention import (
    FullSelfAttention,
    LSHSelfAttention,
    full_attention,
    lsh_attention,
    memory_efficient_attention,
)
from reformer_lab.data import DuplicationTask
from reformer_lab.feedforward import FeedForward, chunked, chunked_cross_entropy
from reformer_lab.hashing import hash_vectors, random_rotations
from reformer_lab.model import ReformerConfig, ReformerLM
from reformer_lab.train import TrainConfig

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large]
settings.register_profile("ci", max_examples=40, deadline=None, derandomize=True, database=None,
                          suppress_health_check=_QUIET)
settings.register_profile("dev", max_examples=300, deadline=None, database=None, suppress_health_check=_QUIET)
PROFILE = settings.get_profile(os.environ.get("REFORMER_LAB_HYPOTHESIS_PROFILE", "ci"))


pytestmark = pytest.mark.usefixtures("one_thread")


FLOATS = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
NOT_FLOATS = [torch.int64, torch.int32, torch.uint8, torch.bool]
TOLERANCE = {torch.float64: 1e-9, torch.float32: 1e-5, torch.float16: 3e-2, torch.bfloat16: 8e-2}
#: what a size argument may wrongly be: zero, negative, a bool, a float, a string, None
BAD_SIZES = st.sampled_from([0, -1, -3, True, False, 2.5, 4.0, "2", None, float("nan")])
SPECIAL = st.sampled_from(["none", "none", "none", "zero", "nan", "inf"])
SEEDS = st.integers(0, 2**16)


def ints(lo: int, hi: int):
    """A good size: a Python or a NumPy int in [lo, hi]."""
    return st.one_of(st.integers(lo, hi), st.integers(lo, hi).map(np.int64))


def divisors(n: int) -> list[int]:
    return [k for k in range(1, n + 1) if n % k == 0]


class _Args:
    """Draws arguments from good values, except the one argument ``broken`` (drawn first) that comes from bad ones.

    ``broken`` is None in about half the examples (everything valid), one of ``names``, or ``"*"``: then every
    argument is drawn from good and bad values alike.
    """

    def __init__(self, data, names: list[str]) -> None:
        self.data = data
        self.broken = data.draw(st.sampled_from([None] * (len(names) + 1) + ["*", *names]), label="broken")

    def __call__(self, name: str, good, bad=None):
        if bad is None or (self.broken != name and self.broken != "*"):
            return self.data.draw(good, label=name)
        return self.data.draw(bad if self.broken == name else st.one_of(good, bad), label=name)


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _int_reason(name: str, value: object, minimum: int = 1) -> list[tuple[str, object]]:
    return [] if _is_int(value) and value >= minimum else [(name, value)]


def _tensor(shape: tuple[int, ...], dtype: torch.dtype, seed: int, special: str = "none",
            zero_last: bool = False) -> torch.Tensor:
    """A random tensor in ``dtype``; ``special`` sets row 0 (dim -2) to zero, NaN or inf in every sequence, and
    ``zero_last`` the last row to zero (a zero query is an ordinary input: its key is 0, and it must stay finite)."""
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    if zero_last and len(shape) >= 2 and shape[-2] > 1:
        x[..., -1, :] = 0.0
    if special != "none" and len(shape) >= 2 and shape[-2] > 0:
        x[..., 0, :] = {"zero": 0.0, "nan": math.nan, "inf": math.inf}[special]
    if dtype == torch.bool:
        return x > 0
    if not dtype.is_floating_point:
        return (x.nan_to_num(0.0, 0.0, 0.0).abs() * 3).round().to(dtype)
    return x.to(dtype)


def _names(error: BaseException, reasons: list[tuple[str, object]]) -> None:
    """``error`` is a ValueError/TypeError naming one of the ``reasons`` (and its value when it is a scalar)."""
    assert isinstance(error, ValueError | TypeError), repr(error)
    message = str(error)
    for name, value in reasons:
        if not re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", message):
            continue
        if value is None:
            return
        shown = [repr(value), str(value)] + ([repr(int(value))] if _is_int(value) else [])
        if any(s in message for s in shown):
            return
    raise AssertionError(f"{message!r} names none of {reasons}")


def _outcome(call, reasons: list[tuple[str, object]]):
    """Run ``call``: it must raise naming one of ``reasons`` when there are any, else return its result."""
    event("refused" if reasons else "computed")
    if reasons:
        with pytest.raises((ValueError, TypeError)) as info:
            call()
        _names(info.value, reasons)
        return None
    return call()


def _close(got: torch.Tensor, want: torch.Tensor, dtype: torch.dtype, scale: float = 1.0) -> None:
    assert got.shape == want.shape, (got.shape, want.shape)
    atol = TOLERANCE[dtype] * max(1.0, scale)
    torch.testing.assert_close(got.double(), want.double(), atol=atol, rtol=0, equal_nan=True)


def _stays_nonfinite(out: torch.Tensor) -> None:
    if out.numel():  # an empty batch or value dim has no row to carry the NaN
        assert not torch.isfinite(out[..., 0, :]).all(), "a NaN/inf input row came out finite"


def _float_dtypes(args: _Args, names: list[str]) -> dict[str, torch.dtype]:
    """One float dtype for every tensor in ``names``; when args breaks "dtype", one integer dtype for all of them,
    or one tensor of another (integer or float) dtype."""
    one = args.data.draw(st.sampled_from(FLOATS), label="dtype")
    choices = {"dtype": ["all integer", "one other"], "*": ["fine", "all integer", "one other"]}
    how = args.data.draw(st.sampled_from(choices.get(args.broken, ["fine"])), label="break dtype")
    if how == "all integer":
        return dict.fromkeys(names, args.data.draw(st.sampled_from(NOT_FLOATS), label="integer dtype"))
    if how == "fine":
        return dict.fromkeys(names, one)
    victim = args.data.draw(st.sampled_from(names), label="dtype victim")
    other = args.data.draw(st.sampled_from([d for d in FLOATS + NOT_FLOATS if d != one]), label="other dtype")
    return {name: other if name == victim else one for name in names}


def _dtype_reasons(tensors: dict[str, torch.Tensor | None]) -> list[tuple[str, object]]:
    given = {name: t for name, t in tensors.items() if t is not None}
    reasons = [(name, None) for name, t in given.items() if not t.dtype.is_floating_point]
    if not reasons and len({t.dtype for t in given.values()}) > 1:
        reasons += [(name, None) for name in given]
    return reasons


# ----------------------------------------------------------------------------------------------------
# Hashing: hash_vectors and random_rotations
# ----------------------------------------------------------------------------------------------------


@PROFILE
@given(data=st.data(), lead=st.lists(st.integers(0, 2), max_size=2), length=st.integers(0, 6),
       special=SPECIAL, orthogonal=st.booleans(), seed=SEEDS)
def test_hash_vectors_is_argmax_of_the_concatenated_projections(data, lead, length, special, orthogonal, seed):
    args = _Args(data, ["dtype", "d", "n_buckets", "n_hashes"])
    dtype = args("dtype", st.sampled_from(FLOATS), st.sampled_from(NOT_FLOATS))
    d = args("d", st.integers(1, 5), st.just(0))
    n_buckets = args("n_buckets", ints(1, 6).map(lambda k: 2 * k), st.one_of(BAD_SIZES, st.sampled_from([1, 3, 5])))
    n_hashes = args("n_hashes", st.one_of(st.none(), ints(1, 3)), BAD_SIZES.filter(lambda v: v is not None))
    x = _tensor((*lead, length, d), dtype, seed, special)
    reasons = [("x", None)] if not dtype.is_floating_point or d == 0 else []
    if not (_is_int(n_buckets) and n_buckets >= 2 and n_buckets % 2 == 0):
        reasons.append(("n_buckets", n_buckets))
    if n_hashes is not None:
        reasons += _int_reason("n_hashes", n_hashes)
    if any(name != "x" for name, _ in reasons) or d == 0:  # no rotations to draw: hash_vectors must refuse
        _outcome(lambda: hash_vectors(x, n_buckets, n_hashes, generator=torch.Generator().manual_seed(seed)), reasons)
        return
    rounds, float_dtype = n_hashes or 1, dtype if dtype.is_floating_point else torch.float64

    def draw(orthogonal: bool) -> torch.Tensor:
        return random_rotations(d, n_buckets, rounds, generator=torch.Generator().manual_seed(seed),
                                orthogonal=orthogonal, dtype=float_dtype)

    r = _outcome(lambda: draw(orthogonal), [("n_buckets", n_buckets)] if orthogonal and n_buckets // 2 > d else [])
    if r is None:
        orthogonal, r = False, draw(False)
    assert r.shape == (rounds, d, n_buckets // 2) and r.dtype == float_dtype
    if orthogonal:
        gram = r.double().mT @ r.double()
        _close(gram, torch.eye(n_buckets // 2, dtype=torch.float64).expand_as(gram), r.dtype)
    got = _outcome(lambda: hash_vectors(x, n_buckets, n_hashes, rotations=r), reasons)
    if got is None:
        return
    projected = x.unsqueeze(-3) @ r
    assert got.shape == (*lead, rounds, length) and got.dtype == torch.long
    assert torch.equal(got, torch.argmax(torch.cat([projected, -projected], dim=-1), dim=-1))  # NaN: its first
    assert got.numel() == 0 or (got.min() >= 0 and got.max() < n_buckets)
    if special == "zero" and length:
        assert (got[..., 0] == 0).all()  # h(0) = 0, argmax's first index


# ----------------------------------------------------------------------------------------------------
# Full and memory-efficient attention
# ----------------------------------------------------------------------------------------------------


def _reference_full(q, v, k, causal: bool) -> torch.Tensor:
    """softmax(logits) v in float64: shared-QK (unit keys, scale 1, self −1e5) when ``k`` is None."""
    q, v = q.double(), v.double()
    if k is None:
        norm = q.norm(dim=-1, keepdim=True)
        keys = torch.where(norm > 1e-12, q / norm.clamp_min(1e-12), torch.zeros_like(q))
        logits = q @ keys.mT - 1e5 * torch.eye(q.shape[-2], dtype=torch.float64)
    else:
        logits = q @ k.double().mT * q.shape[-1] ** -0.5
    if causal:
        later = torch.arange(logits.shape[-1]) > torch.arange(q.shape[-2]).unsqueeze(-1)
        logits = logits.masked_fill(later, -math.inf)
    return torch.softmax(logits, dim=-1) @ v


@PROFILE
@given(data=st.data(), lead=st.lists(st.integers(0, 2), max_size=2), length=st.integers(0, 6),
       d_v=st.integers(0, 3), shared=st.booleans(), causal=st.booleans(), special=SPECIAL,
       special_in=st.sampled_from(["q", "v"]), zero_last=st.booleans(), seed=SEEDS)
def test_full_and_memory_efficient_attention_equal_the_reference(data, lead, length, d_v, shared, causal, special,
                                                                 special_in, zero_last, seed):
    args = _Args(data, ["dtype", "d", "key_length", "query_chunk_size"])
    dtypes = _float_dtypes(args, ["q", "v"] if shared else ["q", "k", "v"])
    d = args("d", st.integers(1, 4), st.just(0))
    key_length = length if shared else args("key_length", st.integers(1, 6), st.just(0))
    query_chunk_size = args("query_chunk_size", ints(1, 7), BAD_SIZES)
    q = _tensor((*lead, length, d), dtypes["q"], seed, special if special_in == "q" else "none", zero_last)
    k = None if shared else _tensor((*lead, key_length, d), dtypes["k"], seed + 1)
    v = _tensor((*lead, key_length, d_v), dtypes["v"], seed + 2, special if special_in == "v" else "none")
    reasons = _dtype_reasons({"q": q, "k": k, "v": v})
    if d == 0:
        reasons.append(("q", None))
    if key_length == 0 and length > 0:
        reasons.append(("k", None))
    full = _outcome(lambda: full_attention(q, v, k, causal=causal), reasons)
    efficient = _outcome(lambda: memory_efficient_attention(q, v, k, causal=causal, query_chunk_size=query_chunk_size),
                         reasons + _int_reason("query_chunk_size", query_chunk_size))
    if full is None:
        return
    assert full.shape == (*lead, length, d_v) and full.dtype == v.dtype
    if special in ("nan", "inf") and full.numel():
        _stays_nonfinite(full)
        if efficient is not None:
            _stays_nonfinite(efficient)
        return
    assert torch.isfinite(full).all()
    want = _reference_full(q, v, k, causal)
    scale = float(v.double().abs().max()) if v.numel() else 1.0
    _close(full, want, v.dtype, scale)
    if efficient is not None:
        _close(efficient, want, v.dtype, scale)


# ----------------------------------------------------------------------------------------------------
# LSH attention and its module
# ----------------------------------------------------------------------------------------------------


def _reference_lsh(qk, v, buckets, chunk: int, causal: bool, across: bool, dedup: bool) -> torch.Tensor:
    """Brute force for one sequence (``qk [L, d]``, ``buckets [H, L]``): softmax over the visited pairs, float64.

    Round r sorts by (bucket, position); a query sees its own chunk and the previous chunk of the same round
    (none before the first); other buckets (unless ``across``) and later positions (``causal``) are masked.
    ``dedup``: a pair counts once however many rounds visit it; else once per visit (a log-count bonus).
    """
    qk, v = qk.double(), v.double()
    n_hashes, length = buckets.shape
    visits: Counter = Counter()
    for r in range(n_hashes):
        b = buckets[r].tolist()
        order = sorted(range(length), key=lambda p: (b[p], p))
        slot = {p: s for s, p in enumerate(order)}
        for i in range(length):
            c = slot[i] // chunk
            for s in range(max(c - 1, 0) * chunk, (c + 1) * chunk):
                j = order[s]
                if not ((causal and j > i) or (not across and b[j] != b[i])):
                    visits[i, j] += 1
    norm = qk.norm(dim=-1, keepdim=True)
    keys = torch.where(norm > 1e-12, qk / norm.clamp_min(1e-12), torch.zeros_like(qk))
    out = torch.zeros(length, v.shape[-1], dtype=torch.float64)
    for i in range(length):
        js = [j for j in range(length) if (i, j) in visits]
        logits = torch.stack([qk[i] @ keys[j] - (1e5 if i == j else 0.0) for j in js])
        if not dedup:
            logits = logits + torch.tensor([math.log(visits[i, j]) for j in js], dtype=torch.float64)
        out[i] = torch.softmax(logits, dim=0) @ v[js]
    return out


def _chunking(args: _Args, length: int):
    """(chunk_size, n_buckets): usually a valid pair for ``length``; broken, a bad value or a non-divisor."""
    chunk_size = args("chunk_size", st.one_of(st.none(), st.sampled_from(divisors(max(length, 1)))),
                      st.one_of(BAD_SIZES.filter(lambda v: v is not None),
                                st.integers(1, 9).filter(lambda c: length % c != 0 or length == 0)))
    even_dividing = [b for b in range(2, 2 * max(length, 1) + 1, 2) if (2 * length) % b == 0] or [2]
    good = st.sampled_from(even_dividing) if chunk_size is None else st.integers(1, 4).map(lambda k: 2 * k)
    bad = st.one_of(BAD_SIZES, st.sampled_from([1, 3, 5]), st.sampled_from([2 * length + 2, 4 * length + 4]))
    return chunk_size, args("n_buckets", good, bad)


def _chunking_reasons(length: int, chunk_size, n_buckets) -> list[tuple[str, object]]:
    reasons = []
    buckets_ok = _is_int(n_buckets) and n_buckets >= 2 and n_buckets % 2 == 0
    if not buckets_ok:
        reasons.append(("n_buckets", n_buckets))
    if chunk_size is None:
        if buckets_ok and length and (2 * length) % n_buckets:
            reasons += [("n_buckets", n_buckets), ("chunk_size", None)]
    elif not _is_int(chunk_size) or chunk_size < 1 or (length and length % chunk_size):
        reasons.append(("chunk_size", chunk_size))
    return reasons


@PROFILE
@given(data=st.data(), d_v=st.integers(1, 3), causal=st.booleans(), across=st.booleans(), dedup=st.booleans(),
       special=SPECIAL, special_in=st.sampled_from(["qk", "v"]), zero_last=st.booleans(), seed=SEEDS)
def test_lsh_attention_equals_the_brute_force_reference(data, d_v, causal, across, dedup, special, special_in,
                                                        zero_last, seed):
    args = _Args(data, ["dtype", "shape", "n_buckets", "n_hashes", "chunk_size"])
    dtypes = _float_dtypes(args, ["qk", "v"])
    lead, length, d = args("shape", st.tuples(st.lists(st.integers(1, 2), min_size=1, max_size=2),
                                              st.integers(1, 8), st.integers(1, 4)),
                           st.sampled_from([([1], 0, 3), ([0], 4, 3), ([2, 0], 4, 3), ([1], 4, 0)]))
    chunk_size, n_buckets = _chunking(args, length)
    n_hashes = args("n_hashes", st.one_of(st.none(), ints(1, 3)), BAD_SIZES.filter(lambda v: v is not None))
    qk = _tensor((*lead, length, d), dtypes["qk"], seed, special if special_in == "qk" else "none", zero_last)
    v = _tensor((*lead, length, d_v), dtypes["v"], seed + 1, special if special_in == "v" else "none")
    reasons = _dtype_reasons({"qk": qk, "v": v})
    if length == 0 or d == 0 or math.prod(lead) == 0:
        reasons.append(("qk", None))
    reasons += _chunking_reasons(length, chunk_size, n_buckets)
    if n_hashes is not None:
        reasons += _int_reason("n_hashes", n_hashes)
    result = _outcome(lambda: lsh_attention(qk, v, n_buckets=n_buckets, n_hashes=n_hashes, chunk_size=chunk_size,
                                            causal=causal, attend_across_buckets=across, dedup=dedup,
                                            generator=torch.Generator().manual_seed(seed), return_info=True),
                      reasons)
    if result is None:
        return
    out, info = result
    rounds, chunk = n_hashes or 1, chunk_size or 2 * length // n_buckets
    assert out.shape == (*lead, length, d_v) and out.dtype == v.dtype and info.chunk_size == chunk
    assert info.buckets.shape == (*lead, rounds, length)
    if special in ("nan", "inf"):
        _stays_nonfinite(out)
        return
    assert torch.isfinite(out).all()
    scale = float(v.double().abs().max())
    flat = zip(qk.reshape(-1, length, d), v.reshape(-1, length, d_v), info.buckets.reshape(-1, rounds, length),
               strict=True)
    want = torch.stack([_reference_lsh(a, b, c, chunk, causal, across, dedup) for a, b, c in flat])
    _close(out, want.view(*lead, length, d_v), v.dtype, scale)
    if chunk == length and across:  # one chunk per round, the whole window counts: full shared-QK attention
        _close(out, _reference_full(qk, v, None, causal), v.dtype, scale)


@PROFILE
@given(data=st.data(), head_dim=st.integers(1, 4), causal=st.booleans(), across=st.booleans(), seed=SEEDS)
def test_lsh_self_attention_module(data, head_dim, causal, across, seed):
    args = _Args(data, ["n_heads", "chunk_size", "n_buckets", "n_hashes", "call_hashes", "x", "shape"])
    n_heads = args("n_heads", ints(1, 3), st.sampled_from([0, -1, True, 2.5]))
    batch, length = args("shape", st.tuples(st.integers(1, 2), st.integers(1, 8)),
                         st.sampled_from([(0, 4), (2, 0)]))
    chunk_size, n_buckets = _chunking(args, length)
    if args.broken not in ("chunk_size", "n_buckets", "*") and chunk_size is None:
        n_buckets = data.draw(st.sampled_from([n_buckets, None]), label="n_buckets or None")
        chunk_size = length if n_buckets is None else None
    n_hashes = args("n_hashes", ints(1, 3), st.sampled_from([0, True, "2"]))
    call_hashes = args("call_hashes", st.one_of(st.none(), ints(1, 3)), st.sampled_from([0, True, 1.0]))
    x_dtype = args("x", st.just(torch.float32), st.sampled_from([torch.float64, torch.int64, torch.float16]))
    d_model = head_dim * (n_heads if _is_int(n_heads) and n_heads > 0 else 2)
    reasons = _int_reason("n_heads", n_heads) + _int_reason("n_hashes", n_hashes)
    if chunk_size is not None:
        reasons += _int_reason("chunk_size", chunk_size)
    if n_buckets is not None and not (_is_int(n_buckets) and n_buckets >= 2 and n_buckets % 2 == 0):
        reasons.append(("n_buckets", n_buckets))
    torch.manual_seed(seed)
    module = _outcome(lambda: LSHSelfAttention(d_model, n_heads, chunk_size=chunk_size, n_buckets=n_buckets,
                                               n_hashes=n_hashes, causal=causal, attend_across_buckets=across,
                                               seed=seed), reasons)
    if module is None:
        return
    x = _tensor((batch, length, d_model), x_dtype, seed)
    reasons = [("x", None)] if x_dtype != torch.float32 or batch == 0 or length == 0 else []
    if n_buckets is None:
        chunk = chunk_size or 64  # DEFAULT_CHUNK_SIZE
        if length % chunk:
            reasons.append(("chunk_size", chunk))
    else:
        chunk = chunk_size or (2 * length // n_buckets if (2 * length) % n_buckets == 0 else None)
        reasons += _chunking_reasons(length, chunk_size, n_buckets)
    if call_hashes is not None:
        reasons += _int_reason("n_hashes", call_hashes)
    out = _outcome(lambda: module(x, n_hashes=call_hashes), reasons)
    if out is None:
        return
    assert out.shape == (batch, length, d_model) and out.dtype == torch.float32 and torch.isfinite(out).all()
    if across and chunk == length:  # one chunk per round: the full module with the same weights
        full = FullSelfAttention(d_model, n_heads, shared_qk=True, causal=causal)
        full.load_state_dict(module.state_dict())
        torch.testing.assert_close(out, full(x), atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------------------------------
# Feed-forward, chunking and the chunked loss
# ----------------------------------------------------------------------------------------------------


@PROFILE
@given(data=st.data(), lead=st.lists(st.integers(0, 2), max_size=2), length=st.integers(0, 8),
       special=st.sampled_from(["none", "zero", "nan"]), seed=SEEDS)
def test_chunked_feedforward_equals_the_unchunked_one(data, lead, length, special, seed):
    args = _Args(data, ["d_model", "d_ff", "dtype", "dim", "n_chunks"])
    d_model = args("d_model", ints(1, 4), st.sampled_from([0, True, 2.5]))
    d_ff = args("d_ff", ints(1, 6), st.sampled_from([0, -2, "8"]))
    dtype = args("dtype", st.sampled_from([torch.float32, torch.float64]), st.sampled_from([torch.int64]))
    torch.manual_seed(seed)
    ff = _outcome(lambda: FeedForward(d_model, d_ff), _int_reason("d_model", d_model) + _int_reason("d_ff", d_ff))
    if ff is None:
        return
    ff = ff.to(torch.float64) if dtype == torch.float64 else ff
    x = _tensor((*lead, length, d_model), dtype, seed, special)
    plain = _outcome(lambda: ff(x), [] if dtype.is_floating_point else [("x", None)])
    positions = [-2, *range(len(lead))]  # any dim but the features
    dim = args("dim", st.sampled_from(positions), st.sampled_from([-1, len(lead) + 1, 5, -9, 1.0]))
    size = x.shape[dim] if _is_int(dim) and -x.dim() <= dim < x.dim() else 1
    n_chunks = args("n_chunks", st.sampled_from(divisors(size) if size else [1, 2, 3]),
                    st.one_of(BAD_SIZES, st.integers(1, 9).filter(lambda n: size % n != 0)))
    reasons = _int_reason("n_chunks", n_chunks) + ([] if dtype.is_floating_point else [("x", None)])
    if not _is_int(dim) or not -x.dim() <= dim < x.dim():
        reasons.append(("dim", dim))
    elif _is_int(n_chunks) and n_chunks >= 1:
        if x.shape[dim] % n_chunks:
            reasons.append(("n_chunks", n_chunks))
        elif dim % x.dim() == x.dim() - 1 and n_chunks > 1:  # slices of the features are not [..., d_model]
            reasons.append(("x", None))
    got = _outcome(lambda: chunked(ff, x, n_chunks, dim=dim), reasons)
    if got is None:
        return
    assert got.shape == x.shape and got.dtype == x.dtype
    torch.testing.assert_close(got, plain, atol=TOLERANCE[dtype], rtol=0, equal_nan=True)


@PROFILE
@given(data=st.data(), lead=st.lists(st.integers(0, 2), min_size=1, max_size=2), length=st.integers(0, 6),
       d=st.integers(1, 3), with_bias=st.booleans(), seed=SEEDS)
def test_chunked_cross_entropy_equals_f_cross_entropy(data, lead, length, d, with_bias, seed):
    args = _Args(data, ["dtype", "vocab", "targets", "n_chunks", "reduction"])
    names = ["hidden", "weight", "bias"] if with_bias else ["hidden", "weight"]
    dtypes = _float_dtypes(args, names)
    if dtypes["hidden"] in (torch.float16, torch.bfloat16):  # F.cross_entropy is the reference: full precision
        dtypes = {name: torch.float32 if t == dtypes["hidden"] else t for name, t in dtypes.items()}
    vocab = args("vocab", st.integers(1, 5), st.just(0))
    target_dtype = args("targets", st.sampled_from([torch.int64, torch.int64, torch.int32]),
                        st.sampled_from([torch.float32, torch.bool]))
    kind = args("targets", st.sampled_from(["valid", "some ignored", "all ignored"]),
                st.sampled_from(["too large", "negative"]))
    n_chunks = args("n_chunks", st.sampled_from(divisors(length) if length else [1, 2, 4]),
                    st.one_of(BAD_SIZES, st.integers(1, 7).filter(lambda n: length % n != 0)))
    reduction = args("reduction", st.sampled_from(["mean", "sum"]), st.sampled_from(["none", "Mean", None]))
    g = torch.Generator().manual_seed(seed)
    hidden = _tensor((*lead, length, d), dtypes["hidden"], seed)
    weight = _tensor((vocab, d), dtypes["weight"], seed + 1)
    bias = _tensor((vocab,), dtypes["bias"], seed + 2) if with_bias else None
    ids = torch.randint(0, max(vocab, 1), (*lead, length), generator=g)
    if kind == "some ignored":
        ids = ids.masked_fill(torch.rand(ids.shape, generator=g) < 0.5, -100)
    elif kind == "all ignored":
        ids = torch.full_like(ids, -100)
    elif ids.numel():
        ids.view(-1)[0] = vocab if kind == "too large" else -3
    targets = ids.to(target_dtype)
    reasons = _dtype_reasons({"hidden": hidden, "weight": weight, "bias": bias})
    if vocab == 0:
        reasons.append(("weight", None))
    if target_dtype.is_floating_point or target_dtype == torch.bool or ((ids != -100) & (ids >= vocab)).any() \
            or ((ids != -100) & (ids < 0)).any():
        reasons.append(("targets", None))
    reasons += _int_reason("n_chunks", n_chunks)
    if _is_int(n_chunks) and n_chunks >= 1 and length % n_chunks:
        reasons.append(("n_chunks", n_chunks))
    if reduction not in ("mean", "sum"):
        reasons.append(("reduction", reduction))
    leaves = [t.requires_grad_() for t in (hidden, weight, bias) if t is not None and t.dtype.is_floating_point]
    loss = _outcome(lambda: chunked_cross_entropy(hidden, weight, bias, targets, n_chunks, reduction=reduction),
                    reasons)
    if loss is None:
        return
    want = F.cross_entropy(F.linear(hidden, weight, bias).flatten(0, -2), targets.flatten().long(),
                           reduction=reduction)
    nothing_counted = bool((targets == -100).all())
    assert loss.isnan().item() == want.isnan().item() == (reduction == "mean" and nothing_counted)
    tol = TOLERANCE[hidden.dtype]
    torch.testing.assert_close(loss, want, atol=tol, rtol=tol, equal_nan=True)
    for got_grad, want_grad in zip(torch.autograd.grad(loss, leaves), torch.autograd.grad(want, leaves), strict=True):
        assert torch.isfinite(got_grad).all()  # also when nothing counts (F.cross_entropy's gradient: zeros)
        torch.testing.assert_close(got_grad, want_grad, atol=tol, rtol=tol)


# ----------------------------------------------------------------------------------------------------
# Configs and the duplication task
# ----------------------------------------------------------------------------------------------------

_CONFIG_INTS = ("vocab_size", "max_len", "d_model", "d_ff", "n_heads", "n_layers", "n_hashes", "chunk_size",
                "ff_chunks", "loss_chunks")
_CONFIG_FLAGS = ("shared_qk", "causal", "reversible", "attend_across_buckets")
_BAD_INTS = st.sampled_from([0, -1, True, 2.5, "4", None, float("nan")])
_BAD_FLAGS = st.sampled_from([1, 0, "False", None, np.int64(1)])


def _config_kwargs(data) -> dict:
    """ReformerConfig arguments, valid unless :class:`_Args` breaks one field (or, with "*", any of them)."""
    args = _Args(data, [*_CONFIG_INTS, *_CONFIG_FLAGS, "dropout", "attention", "positional", "axial_shape",
                        "axial_dims", "divisible", "multiple"])
    kw = {name: args(name, ints(1, 3), _BAD_INTS) for name in ("n_heads", "n_layers", "n_hashes")}
    heads = kw["n_heads"] if _is_int(kw["n_heads"]) and kw["n_heads"] > 0 else 2
    kw["d_model"] = args("d_model", st.integers(1, 4).map(lambda k: heads * k), _BAD_INTS)
    if args.broken == "divisible" and heads > 1:
        kw["d_model"] = heads * data.draw(st.integers(1, 3), label="d_model") + 1
    kw["chunk_size"] = args("chunk_size", st.sampled_from([1, 2, 4, 8]), _BAD_INTS)
    chunk = kw["chunk_size"] if _is_int(kw["chunk_size"]) and kw["chunk_size"] > 0 else 4
    kw["max_len"] = args("max_len", st.integers(1, 4).map(lambda k: k * chunk), _BAD_INTS)
    if args.broken == "multiple" and chunk > 1:
        kw["max_len"] = chunk * data.draw(st.integers(1, 3), label="max_len") + 1
    for name in ("vocab_size", "d_ff"):
        kw[name] = args(name, ints(1, 9), _BAD_INTS)
    for name in ("ff_chunks", "loss_chunks"):
        kw[name] = args(name, st.sampled_from([1, 1, 2]), _BAD_INTS)
    for name in _CONFIG_FLAGS:
        kw[name] = args(name, st.booleans(), _BAD_FLAGS)
    kw["attention"] = args("attention", st.sampled_from(["full", "lsh"]), st.sampled_from(["sparse", "LSH", None]))
    if kw["attention"] == "lsh" and args.broken != "shared_qk":
        kw["shared_qk"] = True
    kw["dropout"] = args("dropout", st.sampled_from([0.0, 0.1, 0.5, np.float32(0.25), 0]),
                         st.sampled_from([1.0, -0.1, "0.1", True, float("inf"), float("nan"), None]))
    kw["positional"] = args("positional", st.sampled_from(["learned", "axial"]), st.sampled_from(["sinusoidal", 1]))
    max_len = kw["max_len"] if _is_int(kw["max_len"]) and kw["max_len"] > 0 else 4
    factor_pairs = [(a, max_len // a) for a in divisors(max_len)]
    kw["axial_shape"] = args("axial_shape", st.one_of(st.none(), st.sampled_from(factor_pairs)),
                             st.sampled_from([(max_len + 1, 1), (-1, -max_len), (0, 4), max_len, (2.0, 2)]))
    d_model = kw["d_model"] if _is_int(kw["d_model"]) and kw["d_model"] > 0 else 4
    splits = [(a, d_model - a) for a in range(1, d_model)] or [None]
    kw["axial_dims"] = args("axial_dims", st.one_of(st.none(), st.sampled_from(splits)),
                            st.sampled_from([(0, d_model), (d_model, 1), (-1, d_model + 1)]))
    return kw


def _config_reasons(kw: dict) -> list[tuple[str, object]]:
    reasons = []
    for name in _CONFIG_INTS:
        reasons += _int_reason(name, kw[name])
    for name in _CONFIG_FLAGS:
        if not isinstance(kw[name], bool | np.bool_):
            reasons.append((name, kw[name]))
    p = kw["dropout"]
    if isinstance(p, bool) or not isinstance(p, int | float | np.floating) or not 0 <= p < 1:
        reasons.append(("dropout", p))
    for name in ("axial_shape", "axial_dims"):
        value = kw[name]
        if value is not None and (not isinstance(value, tuple) or any(not _is_int(n) or n < 1 for n in value)):
            reasons.append((name, None))
    if reasons:  # the fields one at a time come first; then the choices and how the fields fit together
        return reasons
    if kw["attention"] not in ("full", "lsh"):
        reasons.append(("attention", kw["attention"]))
    if kw["attention"] == "lsh" and not kw["shared_qk"]:
        reasons.append(("shared_qk", None))
    if kw["d_model"] % kw["n_heads"]:
        reasons.append(("d_model", kw["d_model"]))
    if kw["attention"] == "lsh" and kw["max_len"] % kw["chunk_size"]:
        reasons.append(("max_len", kw["max_len"]))
    if kw["positional"] not in ("learned", "axial"):
        reasons.append(("positional", kw["positional"]))
    elif kw["positional"] == "axial" and not reasons:
        shape, dims = kw["axial_shape"], kw["axial_dims"] or (kw["d_model"] // 2, kw["d_model"] - kw["d_model"] // 2)
        if shape is not None and shape[0] * shape[1] != kw["max_len"]:
            reasons.append(("axial_shape", None))
        if min(dims) < 1 or sum(dims) != kw["d_model"]:
            reasons.append(("axial_dims", None))
    return reasons


@PROFILE
@given(data=st.data(), seed=SEEDS)
def test_reformer_config_checks_every_field_and_a_valid_one_builds_a_working_model(data, seed):
    kwargs = _config_kwargs(data)
    config = _outcome(lambda: ReformerConfig(**kwargs), _config_reasons(kwargs))
    if config is None:
        return
    assert ReformerConfig.from_dict(config.to_dict()) == config
    assert all(type(getattr(config, name)) is int for name in _CONFIG_INTS) and type(config.dropout) is float
    torch.manual_seed(seed)
    model = ReformerLM(config).eval()
    length = config.max_len  # a multiple of chunk_size for LSH (the config checked it)
    tokens = torch.randint(0, config.vocab_size, (2, length), generator=torch.Generator().manual_seed(seed))
    if length % config.ff_chunks or length % config.loss_chunks:  # the chunk counts must divide every batch
        with pytest.raises(ValueError, match=r"^n_chunks=2 must divide the length"):
            model.loss(tokens, tokens)
        return
    logits = model(tokens)
    assert logits.shape == (2, length, config.vocab_size) and torch.isfinite(logits).all()
    assert torch.isfinite(model.loss(tokens, tokens))


_TRAIN_FIELDS = {  # name → (good values, bad values)
    **{name: (ints(1, 50), _BAD_INTS) for name in ("steps", "batch_size", "eval_batches")},
    **{name: (ints(0, 50), st.sampled_from([-1, True, 2.5, None, "0"]))
       for name in ("warmup", "eval_every", "checkpoint_every", "log_every")},
    **{name: (ints(-5, 2**40), st.sampled_from([1.5, True, None, "3"])) for name in ("seed", "eval_seed")},
    "lr": (st.sampled_from([1e-3, 0.5, 2, np.float64(3e-4), np.int64(1)]), st.sampled_from([0, -1e-3, "1e-3", True,
                                                                                            float("nan"), None])),
    "min_lr_ratio": (st.sampled_from([0, 0.0, 0.1, 1, 1.0]), st.sampled_from([-0.1, 1.5, float("inf"), "0.1"])),
    "weight_decay": (st.sampled_from([0, 0.0, 0.01, 3]), st.sampled_from([-0.01, float("nan"), None, "0"])),
    "grad_clip": (st.sampled_from([None, 0, 0.5, 1.0]), st.sampled_from([-1.0, float("inf"), "1", True])),
    "eval_batch_size": (st.one_of(st.none(), ints(1, 9)), st.sampled_from([0, -1, 2.5, "4"])),
}


def _train_config_reason(name: str, value: object) -> bool:
    if name in ("grad_clip", "eval_batch_size") and value is None:
        return False
    if name in ("steps", "batch_size", "eval_batches", "eval_batch_size"):
        return not (_is_int(value) and value >= 1)
    if name in ("warmup", "eval_every", "checkpoint_every", "log_every"):
        return not (_is_int(value) and value >= 0)
    if name in ("seed", "eval_seed"):
        return not _is_int(value)
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        return True
    low = {"lr": 0.0, "min_lr_ratio": 0.0, "weight_decay": 0.0, "grad_clip": 0.0}[name]
    return not math.isfinite(value) or value < low or (name == "lr" and value == 0) or (
        name == "min_lr_ratio" and value > 1)


@PROFILE
@given(data=st.data())
def test_train_config_checks_every_field_and_its_schedule_stays_in_range(data):
    fields = data.draw(st.lists(st.sampled_from(sorted(_TRAIN_FIELDS)), max_size=4, unique=True), label="fields")
    args = _Args(data, fields)
    changes = {name: args(name, *_TRAIN_FIELDS[name]) for name in fields}
    reasons = [(name, value) for name, value in changes.items() if _train_config_reason(name, value)]
    config = _outcome(lambda: TrainConfig(**changes), reasons)
    if config is None:
        return
    for step in sorted(s for s in {0, config.warmup, config.steps // 2, config.steps - 1} if s < config.steps):
        lr = config.lr_at(step)
        assert 0 < lr <= config.lr * (1 + 1e-12) and math.isfinite(lr), (step, lr)


@PROFILE
@given(data=st.data())
def test_duplication_task_batches_are_0w0w(data):
    args = _Args(data, ["w_len", "n_symbols", "batch_size", "generator"])
    w_len, n_symbols = args("w_len", ints(1, 12), _BAD_INTS), args("n_symbols", ints(1, 9), _BAD_INTS)
    batch_size = args("batch_size", ints(1, 4), _BAD_INTS)
    generator = args("generator", st.one_of(st.integers(0, 2**31), st.none(), st.just("a generator")),
                     st.sampled_from([1.5, "3", True]))
    task = _outcome(lambda: DuplicationTask(w_len, n_symbols),
                    _int_reason("w_len", w_len) + _int_reason("n_symbols", n_symbols))
    if task is None:
        return
    generator = torch.Generator().manual_seed(0) if generator == "a generator" else generator
    reasons = _int_reason("batch_size", batch_size)
    if not (generator is None or isinstance(generator, torch.Generator) or _is_int(generator)):
        reasons.append(("generator", generator))
    b = _outcome(lambda: task.batch(batch_size, generator), reasons)
    if b is None:
        return
    assert b.inputs.shape == b.targets.shape == b.mask.shape == (batch_size, 2 * (w_len + 1))
    assert b.mask.dtype == torch.bool and b.mask.sum(1).tolist() == [w_len] * batch_size
    w = b.inputs[:, 1 : w_len + 1]
    assert (b.inputs[:, 0] == 0).all() and (b.inputs[:, w_len + 1] == 0).all()
    assert torch.equal(b.inputs[:, w_len + 2 :], w) and w.min() >= 1 and w.max() <= n_symbols
    assert torch.equal(b.targets[:, :-1], b.inputs[:, 1:]) and torch.equal(b.targets[b.mask].view(batch_size, -1), w)
