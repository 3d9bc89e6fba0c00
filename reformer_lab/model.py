"""The whole Reformer language model (paper §3–§5), with every approximation behind a switch.

``ReformerLM`` is token embedding + positional embedding → a stack of reversible blocks (paper eq. 9:
Y₁ = X₁ + Attention(X₂), Y₂ = X₂ + FeedForward(Y₁), LayerNorm inside each block) → LayerNorm over the
concatenated halves [Y₁; Y₂] → a linear layer to the vocabulary (the layout of trax's ``ReformerLM``:
``Dup → ReversibleSerial → Concatenate → LayerNorm → Dense``). The stack's input is the embedding twice.

Each switch of :class:`ReformerConfig` turns one of the paper's approximations on or off, so every
experiment is one config away from its baseline:

* ``attention``: ``"full"`` (shared-QK or not), ``"lsh"`` (§2; always shared-QK, the hashing needs it) or
  ``"local"`` (local attention, a limited span, paper §2.1: chunks of ``chunk_size`` consecutive
  positions, shared-QK, the baseline that cannot reach far back);
* ``n_hashes``: LSH rounds in training; ``model(x, n_hashes=8)`` evaluates with another count (Table 2);
* ``reversible``: reversible backward pass (§3) or ordinary autograd over the same blocks and weights;
* ``stack``: ``"reversible"`` (the two-stream RevNet stack of eq. 9, whatever ``reversible`` says about its
  backward pass) or ``"transformer"``: the ordinary single-stream pre-norm Transformer over the same branches
  (:class:`~reformer_lab.residual.ResidualSequence`), Figure 3's baseline, with LayerNorm(d_model) → logits;
* ``ff_chunks`` / ``loss_chunks``: the feed-forward and the output log-probabilities chunked along the
  sequence (§3, eq. 10);
* ``positional``: ``"learned"`` absolute embeddings (the paper's models) or ``"axial"`` (trax's later
  enwik8 config and HF; **not in the paper**).

The duplication task is a language-modelling task (§2.1), so the attention is causal by default.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reformer_lab.alternatives import LocalSelfAttention
from reformer_lab.attention import FullSelfAttention, LSHSelfAttention
from reformer_lab.feedforward import FeedForward, chunked_cross_entropy, dropout_probability
from reformer_lab.residual import ResidualSequence
from reformer_lab.reversible import AttentionBranch, ReversibleBlock, ReversibleSequence
from reformer_lab.validation import ArgumentTypeError, as_bool, as_float, as_int, one_of, positive_int

__all__ = ["ATTENTION_KINDS", "CHUNKED_KINDS", "POSITIONAL_KINDS", "STACK_KINDS", "AxialPositionalEmbedding",
           "ReformerConfig",
           "ReformerLM", "build_stack"]

ATTENTION_KINDS = ("full", "lsh", "local")
STACK_KINDS = ("reversible", "transformer")
#: Attention kinds that cut the sequence into chunks of ``chunk_size`` (lengths must be multiples of it).
CHUNKED_KINDS = ("lsh", "local")
POSITIONAL_KINDS = ("learned", "axial")


@dataclass(frozen=True)
class ReformerConfig:
    """Everything that defines a :class:`ReformerLM`; checked when it is made (clear ``ValueError`` s).

    Defaults are a small character model. The paper's duplication model is ``n_layers=1,
    d_model=d_ff=256, n_heads=4`` (§2.1); its ablation models ``n_layers=3, d_model=1024, d_ff=4096,
    n_heads=8`` (§5).

    ``chunk_size`` is the LSH chunk length (n_buckets = 2·L/chunk_size, paper §2), and local attention's;
    with either, every sequence the model sees must be a multiple of it, so ``max_len`` must be too. ``ff_chunks`` and
    ``loss_chunks`` must divide the sequence length of every batch. ``axial_shape`` (two ints whose
    product is ``max_len``) and ``axial_dims`` (two ints summing to ``d_model``) configure the axial
    embedding; defaults are chosen from ``max_len`` and ``d_model``.
    """

    vocab_size: int = 128
    max_len: int = 256
    d_model: int = 128
    d_ff: int = 128
    n_heads: int = 4
    n_layers: int = 1
    attention: str = "lsh"
    shared_qk: bool = True
    n_hashes: int = 1
    chunk_size: int = 32
    causal: bool = True
    reversible: bool = True
    ff_chunks: int = 1
    loss_chunks: int = 1
    dropout: float = 0.0
    positional: str = "learned"
    axial_shape: tuple[int, int] | None = None
    axial_dims: tuple[int, int] | None = None
    attend_across_buckets: bool = False
    stack: str = "reversible"

    def __post_init__(self) -> None:
        # Checked by reformer_lab.validation and stored as plain Python values (NumPy integers become int),
        # so ``to_dict`` stays JSON-ready.
        checked: dict[str, Any] = {"dropout": dropout_probability("dropout", self.dropout)}
        for name in ("vocab_size", "max_len", "d_model", "d_ff", "n_heads", "n_layers", "n_hashes", "chunk_size",
                     "ff_chunks", "loss_chunks"):
            checked[name] = positive_int(name, getattr(self, name))
        for name in ("shared_qk", "causal", "reversible", "attend_across_buckets"):
            checked[name] = as_bool(name, getattr(self, name))
        for name in ("axial_shape", "axial_dims"):
            value = getattr(self, name)
            if value is not None:
                if isinstance(value, str | bytes) or not isinstance(value, Iterable):
                    raise ArgumentTypeError(f"{name} must be two positive ints, got {value!r} ({type(value).__name__})")
                checked[name] = tuple(positive_int(f"{name} entries", n) for n in value)
        for name, value in checked.items():
            object.__setattr__(self, name, value)
        one_of("attention", self.attention, ATTENTION_KINDS)
        if self.attention == "lsh" and not self.shared_qk:
            raise ValueError("LSH attention needs shared_qk=True: queries and keys must hash into the same "
                             "buckets (paper §2, 'Shared-QK Transformer')")
        if self.attention == "local" and not self.shared_qk:
            raise ValueError("local attention here is shared-QK (the parameters of the LSH and full modules): "
                             "it needs shared_qk=True")
        if one_of("stack", self.stack, STACK_KINDS) == "transformer" and self.reversible:
            raise ValueError("stack='transformer' is the ordinary single-stream Transformer, which has no reversible "
                             "backward pass: pass reversible=False with it")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if self.attention in CHUNKED_KINDS and self.max_len % self.chunk_size:
            raise ValueError(f"max_len={self.max_len} must be a multiple of chunk_size={self.chunk_size} "
                             f"({self.attention} attention cuts the sequence into chunks of that length)")
        if one_of("positional", self.positional, POSITIONAL_KINDS) == "axial":
            self._check_axial()

    def _check_axial(self) -> None:
        shape, dims = self.resolved_axial()
        if len(shape) != 2 or shape[0] * shape[1] != self.max_len:
            raise ValueError(f"axial_shape={shape} must be two ints whose product is max_len={self.max_len}")
        if len(dims) != 2 or min(dims) < 1 or sum(dims) != self.d_model:
            raise ValueError(f"axial_dims={dims} must be two positive ints summing to d_model={self.d_model}")

    def resolved_axial(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """``(axial_shape, axial_dims)`` with defaults filled in (shape near √max_len, dims halves of d_model)."""
        shape = self.axial_shape
        if shape is None:
            first = max(d for d in range(1, math.isqrt(self.max_len) + 1) if self.max_len % d == 0)
            shape = (first, self.max_len // first)
        dims = self.axial_dims or (self.d_model // 2, self.d_model - self.d_model // 2)
        return tuple(shape), tuple(dims)  # type: ignore[return-value]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``ReformerConfig(**d)`` rebuilds it)."""
        data = asdict(self)
        for key in ("axial_shape", "axial_dims"):
            data[key] = None if data[key] is None else list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReformerConfig:
        data = dict(data)
        for key in ("axial_shape", "axial_dims"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        return cls(**data)


def _check_ids(name: str, ids: Tensor, vocab_size: int, ignore: int | None = None) -> None:
    """Every id (but ``ignore``) lies in [0, vocab_size); else a ValueError naming the first bad id."""
    counted = ids if ignore is None else ids[ids != ignore]
    bad = (counted < 0) | (counted >= vocab_size)
    if bool(bad.any()):
        raise ValueError(f"{name} must be token ids in [0, vocab_size={vocab_size}), got {int(counted[bad][0])}")


class AxialPositionalEmbedding(nn.Module):
    """Axial positional embedding (trax ``AxialPositionalEncoding``, HF): **not in the Reformer paper**.

    Position p = (i, j) on a ``shape[0] × shape[1]`` grid (row-major) gets ``[E₁[i]; E₂[j]]``, the
    concatenation of one embedding per axis (``dims`` wide each, summing to d_model), so the table holds
    ``shape[0]·dims[0] + shape[1]·dims[1]`` numbers instead of ``max_len·d_model``. Shorter sequences use
    the first positions.
    """

    def __init__(self, shape: tuple[int, int], dims: tuple[int, int]) -> None:
        super().__init__()
        for name, pair in (("shape", shape), ("dims", dims)):
            if isinstance(pair, str | bytes) or not isinstance(pair, Iterable) or len(tuple(pair)) != 2:
                raise ArgumentTypeError(f"{name} must be two positive ints, got {pair!r}")
        shape = tuple(positive_int("shape entries", n) for n in shape)
        dims = tuple(positive_int("dims entries", n) for n in dims)
        self.shape, self.dims = shape, dims
        self.rows = nn.Parameter(torch.randn(shape[0], dims[0]) * 0.02)
        self.cols = nn.Parameter(torch.randn(shape[1], dims[1]) * 0.02)

    def forward(self, length: int) -> Tensor:
        length = as_int("length", length, minimum=0, maximum=self.shape[0] * self.shape[1])  # never a short table
        grid = torch.cat([self.rows[:, None, :].expand(-1, self.shape[1], -1),
                          self.cols[None, :, :].expand(self.shape[0], -1, -1)], dim=-1)
        return grid.reshape(-1, sum(self.dims))[:length]


class _LearnedPositions(nn.Module):
    def __init__(self, max_len: int, d_model: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(max_len, d_model) * 0.02)

    def forward(self, length: int) -> Tensor:
        return self.weight[:length]


def _attention_module(config: ReformerConfig) -> nn.Module:
    if config.attention == "lsh":
        return LSHSelfAttention(config.d_model, config.n_heads, chunk_size=config.chunk_size,
                                n_hashes=config.n_hashes, causal=config.causal,
                                attend_across_buckets=config.attend_across_buckets)
    if config.attention == "local":
        return LocalSelfAttention(config.d_model, config.n_heads, chunk_size=config.chunk_size, causal=config.causal)
    return FullSelfAttention(config.d_model, config.n_heads, shared_qk=config.shared_qk, causal=config.causal)


def build_stack(config: ReformerConfig, *, seed: int | None = None) -> ReversibleSequence | ResidualSequence:
    """The ``config.n_layers`` reversible blocks of a :class:`ReformerLM` (paper eq. 9), without embeddings or head.

    Each block is F = LayerNorm → attention (``config.attention``: LSH with ``chunk_size``, ``n_hashes``,
    ``attend_across_buckets``, full with ``shared_qk``, or local with ``chunk_size``; ``causal`` in each) → dropout, and
    G = LayerNorm → Linear(d_model → d_ff) → ReLU → dropout → Linear(d_ff → d_model); the sequence runs the
    feed-forward in ``config.ff_chunks`` chunks (eq. 10) and, with ``config.reversible``, the reversible
    backward pass (§3); ``config.stack == "transformer"`` wires the same blocks' branches as an ordinary
    single-stream pre-norm stack instead. ``max_len``, ``vocab_size``, the positions and the loss settings do
    not enter.

    ``seed`` fixes the parameter initialisation without touching the global RNG (the blocks are made
    under ``torch.random.fork_rng``); ``None`` draws them from the global RNG, as :class:`ReformerLM` does.
    """
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(as_int("seed", seed))
        blocks = [ReversibleBlock(AttentionBranch(_attention_module(config), dropout=config.dropout),
                                  FeedForward(config.d_model, config.d_ff, dropout=config.dropout))
                  for _ in range(config.n_layers)]
    if config.stack == "transformer":
        return ResidualSequence(blocks, config.ff_chunks)
    return ReversibleSequence(blocks, config.ff_chunks, reversible=config.reversible)


class ReformerLM(nn.Module):
    """A Reformer language model (paper §3): embeddings → reversible blocks → LayerNorm([Y₁; Y₂]) → logits.

    ``forward(tokens, n_hashes=None)`` → logits ``[B, L, vocab]``; with ``targets`` (and an optional
    boolean ``mask`` of the positions that count) it returns the mean cross-entropy instead, which is
    what :mod:`reformer_lab.train` calls (so DistributedDataParallel sees a forward call).
    ``n_hashes`` overrides the LSH rounds for this call only (paper Table 2: train with k rounds,
    evaluate with 8). Two configs that differ only in ``reversible`` have the same parameters and
    give the same outputs.
    """

    def __init__(self, config: ReformerConfig) -> None:
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.d_model)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        if config.positional == "axial":
            self.positions: nn.Module = AxialPositionalEmbedding(*config.resolved_axial())
        else:
            self.positions = _LearnedPositions(config.max_len, config.d_model)
        self.embedding_dropout = nn.Dropout(config.dropout)
        self.stack = build_stack(config)
        width = config.d_model if config.stack == "transformer" else 2 * config.d_model
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, config.vocab_size)

    def num_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def _check_tokens(self, tokens: Tensor) -> None:
        if not isinstance(tokens, Tensor):
            raise ArgumentTypeError(f"tokens must be an integer tensor [batch, length], got {type(tokens).__name__}")
        if tokens.dim() != 2 or tokens.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise ArgumentTypeError(f"tokens must be an integer tensor [batch, length], got {tuple(tokens.shape)} "
                                    f"{tokens.dtype}")
        if tokens.numel() == 0:
            raise ValueError(f"tokens must hold at least one sequence of at least one token, got {tuple(tokens.shape)}")
        _check_ids("tokens", tokens, self.config.vocab_size)
        length = tokens.shape[1]
        if length > self.config.max_len:
            raise ValueError(f"sequence length {length} exceeds max_len={self.config.max_len}")
        if self.config.attention in CHUNKED_KINDS and length % self.config.chunk_size:
            raise ValueError(f"sequence length {length} must be a multiple of chunk_size={self.config.chunk_size}")

    def hidden(self, tokens: Tensor, n_hashes: int | None = None) -> Tensor:
        """The normalised final hidden states ``[B, L, 2·d_model]`` (``[B, L, d_model]`` for the single-stream
        Transformer): the input of the output layer."""
        self._check_tokens(tokens)
        x = self.token_embedding(tokens.long()) + self.positions(tokens.shape[1])
        x = self.embedding_dropout(x)
        with self.hashes(n_hashes):
            if isinstance(self.stack, ResidualSequence):
                return self.norm(self.stack(x))
            y1, y2 = self.stack(x, x)
        return self.norm(torch.cat([y1, y2], dim=-1))

    def forward(self, tokens: Tensor, n_hashes: int | None = None, *, targets: Tensor | None = None,
                mask: Tensor | None = None) -> Tensor:
        """Logits ``[B, L, vocab]`` for ``tokens [B, L]``; the mean loss instead when ``targets`` is given."""
        if targets is None and mask is not None:
            raise ValueError("mask selects the positions of the loss: pass targets with it")
        h = self.hidden(tokens, n_hashes)
        if targets is None:
            return self.head(h)
        return self._loss(h, targets, mask)

    def loss(self, tokens: Tensor, targets: Tensor, mask: Tensor | None = None, n_hashes: int | None = None) -> Tensor:
        """Mean next-token cross-entropy over the positions where ``mask`` is True (all when None).

        With ``loss_chunks > 1`` the logits are computed a chunk of positions at a time and never
        exist for the whole sequence (paper §3, :func:`~reformer_lab.feedforward.chunked_cross_entropy`).
        """
        return self(tokens, n_hashes, targets=targets, mask=mask)

    def _loss(self, h: Tensor, targets: Tensor, mask: Tensor | None) -> Tensor:
        if not isinstance(targets, Tensor) or targets.is_floating_point() or targets.is_complex() \
                or targets.dtype == torch.bool:
            what = targets.dtype if isinstance(targets, Tensor) else type(targets).__name__
            raise ArgumentTypeError(f"targets must be an integer tensor of token ids, got {what}")
        if targets.shape != h.shape[:-1]:
            raise ValueError(f"targets must have shape {tuple(h.shape[:-1])}, got {tuple(targets.shape)}")
        if mask is not None:
            if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
                what = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
                raise ArgumentTypeError(f"mask must be a bool tensor (True where a position counts), got {what}")
            if mask.shape != targets.shape:
                raise ValueError(f"mask must have the shape of targets {tuple(targets.shape)}, got {tuple(mask.shape)}")
        targets = targets.long()
        if mask is not None:
            targets = targets.masked_fill(~mask, -100)
        _check_ids("targets", targets, self.config.vocab_size, ignore=-100)
        if self.config.loss_chunks > 1:
            return chunked_cross_entropy(h, self.head.weight, self.head.bias, targets, self.config.loss_chunks)
        return F.cross_entropy(self.head(h).flatten(0, 1), targets.flatten(), ignore_index=-100)

    @contextmanager
    def hashes(self, n_hashes: int | None) -> Iterator[None]:
        """Within the block, every LSH attention uses ``n_hashes`` rounds (None: as configured).

        ``ReversibleSequence`` has no per-call ``n_hashes`` argument, so the rounds are set on the
        modules and restored afterwards (the weights do not depend on the number of rounds).
        """
        if n_hashes is None:
            yield
            return
        n_hashes = positive_int("n_hashes", n_hashes)
        modules = [m for m in self.modules() if isinstance(m, LSHSelfAttention)]
        saved = [m.n_hashes for m in modules]
        try:
            for m in modules:
                m.n_hashes = n_hashes
            yield
        finally:
            for m, n in zip(modules, saved, strict=True):
                m.n_hashes = n

    def with_attention(self, attention: str, n_hashes: int | None = None) -> ReformerLM:
        """A copy of this model with other attention (``"full"``, ``"lsh"`` or ``"local"``) and the same weights.

        Shared-QK full, LSH and local attention have the same parameters, so a model trained with one is
        evaluated with another by moving the state dict (paper Table 2's rows and columns).
        """
        changes: dict[str, Any] = {"attention": attention}
        if n_hashes is not None:
            changes["n_hashes"] = n_hashes
        with torch.random.fork_rng(devices=[]):  # the throw-away initialisation leaves the caller's RNG alone
            other = ReformerLM(replace(self.config, **changes))
        other.load_state_dict(self.state_dict())
        return other.to(next(self.parameters()).device).train(self.training)

    @torch.no_grad()
    def generate(self, prompt: Tensor, n_tokens: int, *, temperature: float = 1.0, top_k: int | None = None,
                 generator: torch.Generator | None = None, n_hashes: int | None = None) -> Tensor:
        """Sample ``n_tokens`` after ``prompt [B, T]`` (temperature 0: greedy). Returns ``[B, T + n_tokens]``.

        Each step re-runs the model on the whole sequence, right-padded to a multiple of ``chunk_size``
        (causal attention never looks right, so padding does not change the logits except through
        LSH's sort; it is a teaching helper, not a fast decoder).
        """
        n_tokens, temperature = as_int("n_tokens", n_tokens, minimum=0), as_float("temperature", temperature, minimum=0)
        top_k = None if top_k is None else positive_int("top_k", top_k)
        if top_k is not None and top_k > self.config.vocab_size:
            raise ValueError(f"top_k must be at most vocab_size={self.config.vocab_size}, got {top_k}")
        if not isinstance(prompt, Tensor) or prompt.dim() not in (1, 2):
            raise ValueError(f"prompt must be a tensor of token ids [T] or [B, T], got "
                             f"{tuple(prompt.shape) if isinstance(prompt, Tensor) else type(prompt).__name__}")
        if prompt.dim() == 1:
            prompt = prompt[None]
        if prompt.is_floating_point() or prompt.is_complex() or prompt.dtype == torch.bool:
            raise ArgumentTypeError(f"prompt must be an integer tensor of token ids, got {prompt.dtype}")
        if prompt.numel() == 0:
            raise ValueError(f"prompt must hold at least one token per sequence, got {tuple(prompt.shape)}")
        _check_ids("prompt", prompt, self.config.vocab_size)
        if prompt.shape[1] + n_tokens > self.config.max_len:
            raise ValueError(f"prompt ({prompt.shape[1]}) + n_tokens ({n_tokens}) exceeds "
                             f"max_len={self.config.max_len}")
        was_training = self.training
        self.eval()
        out = prompt.long()
        try:
            for _ in range(n_tokens):
                logits = self(self._padded(out), n_hashes)[:, out.shape[1] - 1]
                out = torch.cat([out, self._sample(logits, temperature, top_k, generator)[:, None]], dim=1)
        finally:
            self.train(was_training)
        return out

    def _padded(self, tokens: Tensor) -> Tensor:
        size = self.config.chunk_size if self.config.attention in CHUNKED_KINDS else 1
        pad = -tokens.shape[1] % size
        return F.pad(tokens, (0, pad)) if pad else tokens

    @staticmethod
    def _sample(logits: Tensor, temperature: float, top_k: int | None, generator: torch.Generator | None) -> Tensor:
        if temperature <= 0:
            return logits.argmax(-1)
        logits = logits / temperature
        if top_k is not None:
            kth = logits.topk(top_k, dim=-1).values[..., -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = torch.softmax(logits.float(), -1).cpu()
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1).to(logits.device)
