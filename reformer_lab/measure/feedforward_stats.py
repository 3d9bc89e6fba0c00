"""Table 3 of the paper (§3), formula beside measurement, and the memory of chunking against chunk count.

Table 3 gives the memory and time of five model types as formulas
(:func:`reformer_lab.measure.complexity.model_complexity`, reproduced verbatim). Here every row is also
*measured* on a tiny stack built from the package's parts:

==========================  =============================================================================
Table 3 row                 stack measured (:func:`reformer_lab.model.build_stack`, :class:`Table3Config`)
==========================  =============================================================================
``"transformer"``           full shared-QK attention, ordinary residual autograd (every layer keeps its
                            activations), one feed-forward chunk
``"reversible"``            full attention, reversible backward (eqs. 7–9), one feed-forward chunk
``"chunked-reversible"``    full attention, reversible, feed-forward in ``ff_chunks`` chunks (eq. 10)
``"lsh-transformer"``       LSH attention (``chunk_size``, ``n_hashes``), ordinary autograd
``"reformer"``              LSH attention, reversible, feed-forward chunked
==========================  =============================================================================

**What is measured.** :func:`reformer_lab.measure.memory.step_memory` counts, with
:func:`reformer_lab.measure.memory.saved_tensor_bytes`, the bytes autograd saves for the backward pass during one
training step (forward and backward, parameters not counted). ``saved_peak`` is the most of them alive at
any moment: for an ordinary stack that is the end of the forward pass (every layer's activations: the
n_l factor); for a reversible stack it is reached while one block is recomputed in the backward pass
(one layer's attention, or one feed-forward chunk). That is Table 3's memory column, the activation
memory a step must hold, which the table writes as the largest term (``max``) where we measure the sum
of every saved tensor; so measured / (formula × 4 bytes) is a constant of order one *when the formula's
terms are the right ones*. Temporaries freed inside the forward pass, parameters and the optimizer are
not in either.

**The LSH rows' c.** Table 3 writes c = (4l/n_c)² (n_c chunks; 128² in the paper). Our LSH query compares
itself with its own chunk and the previous one, 2·``chunk_size`` keys per round, so the rows are also
evaluated with c = 2·``chunk_size`` (``formula_window``): the count of logits actually formed.

:func:`peak_live_bytes` measures something saved-bytes cannot see: the largest amount of tensor memory
alive at once while a call runs (no graph needed), e.g. a feed-forward under ``torch.no_grad`` (the
reversible forward pass) or a chunked loss. :func:`chunk_memory` uses both for the lesson's
"memory against chunk count".
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from reformer_lab.feedforward import FeedForward, chunked, chunked_cross_entropy
from reformer_lab.measure.complexity import Complexity, model_complexity, model_variants
from reformer_lab.measure.memory import check_callable, saved_tensor_bytes, stack_options, step_memory, training_step
from reformer_lab.measure.stacks import MeasuredStack
from reformer_lab.model import ReformerConfig
from reformer_lab.reversible import ReversibleBlock, ReversibleSequence
from reformer_lab.validation import one_of, positive_float, positive_int

__all__ = [
    "BYTES_PER_FLOAT",
    "TABLE3_MODEL",
    "ChunkMemory",
    "Table3Config",
    "Table3Row",
    "chunk_memory",
    "matmul_flops",
    "measure_table3",
    "peak_live_bytes",
    "plain_loss_memory",
    "stack_for",
    "table3_bytes",
]

BYTES_PER_FLOAT = 4

#: How each Table 3 row is built: (attention, reversible, chunked feed-forward).
_ROW_STACKS: dict[str, tuple[str, bool, bool]] = {
    "transformer": ("full", False, False),
    "reversible": ("full", True, False),
    "chunked-reversible": ("full", True, True),
    "lsh-transformer": ("lsh", False, False),
    "reformer": ("lsh", True, True),
}


# --------------------------------------------------------------------------------------------------
# Table 3

#: The stack Table 3 is measured on unless told otherwise: 4 layers, d_model 32 and d_ff 1024 (d_ff ≫ d_model,
#: so the feed-forward's activations are the largest, as the table assumes), 2 heads, one hash round, LSH chunks
#: of 32, 16 feed-forward chunks for the chunked rows, not causal. Each row sets attention, reversibility and
#: chunking itself.
TABLE3_MODEL = ReformerConfig(max_len=256, d_model=32, d_ff=1024, n_heads=2, n_layers=4, attention="lsh",
                              n_hashes=1, chunk_size=32, ff_chunks=16, causal=False)


@dataclass(frozen=True, init=False)
class Table3Config(MeasuredStack):
    """The stack behind every row of Table 3 (``model``, its sizes named as in
    :func:`reformer_lab.measure.complexity.model_complexity`) and the input: ``batch``, ``length``, ``seed``.

    Each row takes the model's sizes and sets its own attention (shared-QK), reversibility and feed-forward
    chunking (``model.ff_chunks`` for the chunked rows, eq. 10), so ``model.attention`` does not matter; the LSH
    rows need ``length`` to be a multiple of ``chunk_size`` (n_c = length / chunk_size chunks, n_buckets =
    2·length/chunk_size) whatever it says. Keyword sizes work too (:class:`~reformer_lab.measure.stacks.MeasuredStack`):
    ``Table3Config(length=256, d_model=32, d_ff=1024, n_heads=2, n_layers=4)``.
    """

    model: ReformerConfig = TABLE3_MODEL
    batch: int = 1
    length: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        replace(self.model, **_row_changes("reformer", self.model))  # the LSH rows' config must hold too

    @property
    def paper_c(self) -> int:
        """Table 3's c = (4l/n_c)² with n_c = length/chunk_size: (4·chunk_size)²."""
        return (4 * self.model.chunk_size) ** 2

    @property
    def window_c(self) -> int:
        """Keys one LSH query actually compares per round: its own chunk and the previous one."""
        return 2 * self.model.chunk_size

    def formula(self, variant: str, c: int | None = None) -> Complexity:
        """Table 3's row ``variant`` at these sizes (element counts), with ``c`` defaulting to :attr:`paper_c`."""
        return _formula(variant, self.model, self.length, self.batch, self.paper_c if c is None else c)


def _formula(row: str, model: ReformerConfig, length: int, batch: int, c: int, n_layers: int | None = None
             ) -> Complexity:
    return model_complexity(row, batch=batch, length=length, d_model=model.d_model, d_ff=model.d_ff,
                            n_heads=model.n_heads, n_layers=model.n_layers if n_layers is None else n_layers,
                            n_hashes=model.n_hashes, c=c)


def table3_bytes(variant: str, model: ReformerConfig, length: int, batch: int = 1,
                 bytes_per_value: float = BYTES_PER_FLOAT) -> float:
    """Table 3's memory in bytes for ``model``'s stack run as ``variant`` (one of
    :data:`~reformer_lab.reversible.STACK_VARIANTS`) on ``batch`` sequences of ``length``, c = (4·chunk_size)².

    Rows: ordinary → "transformer" / "lsh-transformer"; reversible+chunked → "chunked-reversible" /
    "reformer"; reversible (unchunked) → "reversible" for full attention, and for LSH, which Table 3
    has no row for, the "lsh-transformer" row with n_l = 1 (= max(b·l·d_ff, b·n_h·l·n_r·c)). c follows
    Table 1's (4l/n_c)² with n_c = l/chunk_size chunks.
    """
    reversible, chunked_ff = stack_options(variant)
    lsh = model.attention == "lsh"
    if not reversible:
        row, n_layers = ("lsh-transformer" if lsh else "transformer"), model.n_layers
    elif chunked_ff:
        row, n_layers = ("reformer" if lsh else "chunked-reversible"), model.n_layers
    else:
        row, n_layers = ("lsh-transformer", 1) if lsh else ("reversible", model.n_layers)
    memory = _formula(row, model, length, batch, (4 * model.chunk_size) ** 2, n_layers).memory
    return memory * positive_float("bytes_per_value", bytes_per_value)


@dataclass(frozen=True)
class Table3Row:
    """One row of Table 3: the formula (element counts, verbatim) and the measurement (bytes).

    Attributes:
        variant: the row (see :func:`reformer_lab.measure.complexity.model_variants`).
        formula: Table 3 with the paper's c = (4l/n_c)².
        formula_window: Table 3 with c = the keys a query actually compares (LSH rows only differ).
        saved_after_forward: saved-for-backward bytes held between forward and backward.
        saved_peak: the most saved-for-backward bytes alive at once during the step (Table 3's memory).
        step_flops: matrix-multiply FLOPs of the same training step, forward and backward (Table 3's time).
    """

    variant: str
    formula: Complexity
    formula_window: Complexity
    saved_after_forward: int
    saved_peak: int
    step_flops: int

    @property
    def formula_bytes(self) -> float:
        """Table 3's memory entry in bytes (float32), with the paper's c."""
        return BYTES_PER_FLOAT * self.formula.memory

    @property
    def window_bytes(self) -> float:
        """Table 3's memory entry in bytes (float32), with c = keys compared per query."""
        return BYTES_PER_FLOAT * self.formula_window.memory

    @property
    def ratio(self) -> float:
        """Measured peak over the formula with c = keys compared (a constant of order one if the terms are right)."""
        return self.saved_peak / self.window_bytes


def _row_changes(variant: str, model: ReformerConfig) -> dict[str, Any]:
    """How Table 3's row ``variant`` changes ``model``: attention, reversibility, feed-forward chunks."""
    attention, reversible, chunked_ff = _ROW_STACKS[one_of("variant", variant, model_variants())]
    return {"attention": attention, "shared_qk": True, "reversible": reversible,
            "ff_chunks": model.ff_chunks if chunked_ff else 1}


def stack_for(variant: str, config: Table3Config) -> tuple[ReversibleSequence, str]:
    """The tiny stack that stands for Table 3's ``variant``, and the :data:`~reformer_lab.reversible.STACK_VARIANTS`
    entry to run it as."""
    changes = _row_changes(variant, config.model)
    chunked_ff = _ROW_STACKS[variant][2]
    run_as = "reversible+chunked" if chunked_ff else ("reversible" if changes["reversible"] else "ordinary")
    return config.build(**changes), run_as


def measure_table3(config: Table3Config | None = None, variants: Sequence[str] | None = None) -> list[Table3Row]:
    """Table 3 for ``variants`` (default: all five, in the paper's order), formula beside measurement.

    Each row builds its stack with the same seed (same weights), feeds the same ``N(0, 1)`` input of shape
    ``[batch, length, d_model]`` (drawn from a generator seeded with ``config.seed``) and measures one
    training step with :func:`~reformer_lab.measure.memory.step_memory` (bytes) and
    :func:`matmul_flops` (time).
    Deterministic: both depend on shapes only, and the LSH hashing draws from torch's global generator
    inside a ``fork_rng`` seeded here.
    """
    config = config or Table3Config()
    variants = list(model_variants() if variants is None else variants)
    (x,) = config.inputs()
    rows = []
    for variant in variants:
        stack, run_as = stack_for(variant, config)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            memory = step_memory(stack, x, run_as)
            flops = matmul_flops(training_step, stack, x, torch.ones_like(x), run_as != "ordinary")
        stack.zero_grad(set_to_none=True)
        rows.append(Table3Row(variant, config.formula(variant), config.formula(variant, config.window_c),
                              memory.saved_after_forward, memory.saved_peak, flops))
    return rows


# --------------------------------------------------------------------------------------------------
# Peak live tensor memory


class _LiveTensors(TorchDispatchMode):
    """Counts the bytes of storages that ops allocate while active: + when allocated, − when the last tensor on the
    storage dies.

    An op's output shares its storage with one of the op's inputs when it is a view (``t()``, ``split``, ``view``)
    or an in-place result. If that storage was counted, the output is one more tensor keeping it alive; if not (an
    input or a parameter of the measured call), nothing was allocated and nothing is counted.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, int] = {}  # storage address → bytes, for the storages counted and still alive
        self.tensors: dict[int, int] = {}  # storage address → how many tracked tensors still use it
        self.current = 0
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        out = func(*args, **(kwargs or {}))
        inputs = {t.untyped_storage().data_ptr() for t in tree_flatten((args, kwargs))[0] if isinstance(t, Tensor)}
        for tensor in tree_flatten(out)[0]:
            if isinstance(tensor, Tensor):
                self._track(tensor, inputs)
        return out

    def _track(self, tensor: Tensor, inputs: set[int]) -> None:
        storage = tensor.untyped_storage()
        key, nbytes = storage.data_ptr(), storage.nbytes()
        if nbytes == 0:
            return
        if key not in self.live:
            if key in inputs:  # a view of (or in place on) a storage allocated before the call: not counted
                return
            self.live[key] = nbytes
            self.tensors[key] = 0
            self.current += nbytes
            self.peak = max(self.peak, self.current)
        self.tensors[key] += 1
        weakref.finalize(tensor, self._release, key)

    def _release(self, key: int) -> None:
        if key not in self.tensors:
            return
        self.tensors[key] -= 1
        if self.tensors[key] == 0:
            del self.tensors[key]
            self.current -= self.live.pop(key)


def peak_live_bytes(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """The most bytes of tensors created by ``fn(*args, **kwargs)`` that are alive at the same moment.

    Every storage an op allocates is counted when it is made and released when the last tensor on it (the
    output and any views of it) is freed, so run ``fn`` under ``torch.no_grad()`` (as here by default): with a
    graph, autograd keeps storages alive after their Python tensors die, which this count would miss (use
    :func:`reformer_lab.measure.memory.saved_tensor_bytes` for those). Inputs and parameters are not counted,
    nor are views of them (``weight.t()`` inside ``F.linear``, ``x.split(...)``): they allocate nothing. The
    output is counted while it lives. Deterministic: it depends on shapes and on the order of ops only.
    """
    check_callable(fn, "peak_live_bytes")
    counter = _LiveTensors()
    with torch.no_grad(), counter:
        out = fn(*args, **kwargs)
    del out
    return counter.peak


# --------------------------------------------------------------------------------------------------
# Matrix-multiply FLOPs

_aten = torch.ops.aten


class _MatmulFlops(TorchDispatchMode):
    """Adds 2·m·k·n for every (batched) matrix product that runs while active, forward or backward."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        packet = func.overloadpacket
        if packet in (_aten.mm, _aten.addmm, _aten.bmm, _aten.baddbmm):
            a, b = args[:2] if packet in (_aten.mm, _aten.bmm) else args[1:3]
            batch = a.shape[0] if a.dim() == 3 else 1
            self.total += 2 * batch * a.shape[-2] * a.shape[-1] * b.shape[-1]
        return func(*args, **(kwargs or {}))


def matmul_flops(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """Floating-point operations of the matrix products (``mm``, ``addmm``, ``bmm``, ``baddbmm``) in ``fn``.

    The dominant cost of a Transformer step, counted exactly (2·m·k·n per product) from the shapes, so
    the count is the same on every machine and run, unlike a wall-clock time. Products run by the
    backward pass count too (autograd on CPU runs in the calling thread). Element-wise work, softmax
    and LayerNorm are not counted. Linear layers and attention on 2-D to 4-D inputs reach these ops.
    """
    check_callable(fn, "matmul_flops")
    counter = _MatmulFlops()
    with counter:
        fn(*args, **kwargs)
    return counter.total


# --------------------------------------------------------------------------------------------------
# Memory against chunk count


@dataclass(frozen=True)
class ChunkMemory:
    """Memory of one chunk count ``n_chunks`` (bytes), for one feed-forward and one output loss.

    Attributes:
        ff_forward_peak: peak live bytes of ``chunked(ff, x, n_chunks)`` without a graph (the reversible
            forward pass, or inference): the d_ff-wide activation exists for L/n_chunks positions at once.
        ff_saved: saved-for-backward bytes of the same call under ordinary autograd: every chunk's
            activations are kept, so chunking alone does not lower them.
        ff_recompute_peak: the most saved bytes alive while a reversible block's backward pass recomputes
            its feed-forward, above what the forward pass kept (one chunk's activations at a time).
        loss_forward_peak: peak live bytes of :func:`chunked_cross_entropy` (forward, no graph): one
            chunk's [L/n_chunks, vocab] logits at a time.
        loss_saved: saved-for-backward bytes of :func:`chunked_cross_entropy` (its inputs and one
            logsumexp per position; no logits at any chunk count).
    """

    n_chunks: int
    ff_forward_peak: int
    ff_saved: int
    ff_recompute_peak: int
    loss_forward_peak: int
    loss_saved: int


def _cheap_attention(d_model: int) -> nn.Module:
    """An F branch with almost no activations, so a block's backward peak is its feed-forward's."""
    return nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, d_model))


def chunk_memory(
    chunk_counts: Sequence[int],
    *,
    length: int = 256,
    d_model: int = 32,
    d_ff: int = 1024,
    vocab: int = 2048,
    seed: int = 0,
) -> list[ChunkMemory]:
    """Measure :class:`ChunkMemory` for each of ``chunk_counts`` (each must divide ``length``); batch 1, float32.

    The feed-forward is :class:`~reformer_lab.feedforward.FeedForward` (``d_model`` → ``d_ff`` → ``d_model``);
    the loss projects ``[1, length, d_model]`` hidden states onto ``vocab`` classes. Weights and inputs
    come from ``torch.Generator``/``fork_rng`` seeded with ``seed``; every number depends on shapes only.
    """
    counts = [positive_int("n_chunks", n) for n in chunk_counts]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ff = FeedForward(d_model, d_ff)
        block = ReversibleBlock(_cheap_attention(d_model), ff)
        x = torch.randn(1, length, d_model)
        hidden = x.clone().requires_grad_()
        weight = torch.randn(vocab, d_model) / d_model**0.5
        targets = torch.randint(0, vocab, (1, length))
    rows = []
    for n in counts:
        if length % n:
            raise ValueError(f"n_chunks={n} must divide length={length}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            step = step_memory(ReversibleSequence([block], ff_chunks=n), x, "reversible+chunked")
        rows.append(ChunkMemory(
            n_chunks=n,
            ff_forward_peak=peak_live_bytes(chunked, ff, x, n),
            ff_saved=saved_tensor_bytes(chunked, ff, x, n, ignore=ff).total_bytes,
            ff_recompute_peak=step.saved_peak - step.saved_after_forward,
            loss_forward_peak=peak_live_bytes(chunked_cross_entropy, hidden, weight, None, targets, n),
            loss_saved=saved_tensor_bytes(chunked_cross_entropy, hidden, weight, None, targets, n,
                                          ignore=weight).total_bytes,
        ))
    return rows


def plain_loss_memory(hidden: Tensor, weight: Tensor, targets: Tensor) -> tuple[int, int]:
    """(peak live bytes, saved bytes) of the unchunked loss ``F.cross_entropy(F.linear(hidden, weight), targets)``."""
    def loss(h: Tensor) -> Tensor:
        return F.cross_entropy(F.linear(h, weight).flatten(0, -2), targets.flatten())

    return peak_live_bytes(loss, hidden), saved_tensor_bytes(loss, hidden.detach().requires_grad_(),
                                                             ignore=weight).total_bytes
