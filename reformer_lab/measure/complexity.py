"""The paper's memory and time formulas: the introduction's (§1) back-of-envelope numbers, Table 1 and Table 3.

Everything here is arithmetic on sizes; nothing is measured (for that see :mod:`reformer_lab.measure.memory`).
Table functions return element counts as floats (multiply by bytes per value for bytes); the
back-of-envelope functions return bytes. Argument names follow the package, with the paper's symbols
in the docstrings: b = ``batch``, l = ``length``, n_h = ``n_heads``, n_l = ``n_layers``,
n_r = ``n_hashes`` (hash rounds), n_c = ``n_chunks`` (LSH chunks), c = (4l/n_c)².

Sizes must be positive integers (Python or NumPy; not floats, not ``bool``) and ``bytes_per_value`` a positive
number, checked by :mod:`reformer_lab.validation`: anything else raises ``ValueError`` naming the argument.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from reformer_lab.validation import one_of, positive_float, positive_int

__all__ = [
    "PAPER_4L_OVER_NC",
    "PAPER_C",
    "MEMORY_FIXES",
    "Complexity",
    "MemoryBreakdown",
    "attention_variants",
    "model_variants",
    "attention_complexity",
    "model_complexity",
    "qk_matrix_bytes",
    "parameter_bytes",
    "activation_bytes",
    "feedforward_activation_bytes",
    "memory_breakdown",
    "attention_crossover_length",
]

#: 4l/n_c with the paper's n_c = l/32 (§3, under Table 3), i.e. four chunk lengths m = l/n_c = 32; not a window of
#: keys. A query sees its chunk and the one before, 2m = 64 keys; Table 1 and Table 3 charge it (4l/n_c)² = 128² per
#: position.
PAPER_4L_OVER_NC = 128
#: The paper's c = (4l/n_c)² = 128² = 16,384 (Table 3).
PAPER_C = PAPER_4L_OVER_NC**2

_ATTENTION_VARIANTS = ("dot-product", "memory-efficient", "lsh")
_MODEL_VARIANTS = ("transformer", "reversible", "chunked-reversible", "lsh-transformer", "reformer")

#: Which of Reformer's fixes (paper §1) removes each of the three memory problems.
MEMORY_FIXES = {
    "activations": "reversible layers (§3) store activations once: b·l·d_model·n_l → b·l·d_model",
    "feedforward": "chunking the feed-forward (§3) removes the d_ff factor: b·l·d_ff → b·l·d_model",
    "attention": "LSH attention (§2) replaces l² by l·n_r·c (c = 128²); reversibility removes n_l",
}


def _sizes(**sizes: int) -> tuple[int, ...]:
    """The ``sizes`` in the order given, each a positive int (:func:`~reformer_lab.validation.positive_int`)."""
    return tuple(positive_int(name, value) for name, value in sizes.items())


# --------------------------------------------------------------------------------------------------
# Tables 1 and 3


@dataclass(frozen=True)
class Complexity:
    """One row of Table 1 or Table 3: memory and time, as element counts (not bytes, not seconds)."""

    memory: float
    time: float


def attention_variants() -> tuple[str, ...]:
    """The rows of Table 1, in the paper's order: ``("dot-product", "memory-efficient", "lsh")``."""
    return _ATTENTION_VARIANTS


def model_variants() -> tuple[str, ...]:
    """The rows of Table 3, in the paper's order."""
    return _MODEL_VARIANTS


def attention_complexity(
    variant: str,
    *,
    batch: int,
    length: int,
    n_heads: int,
    d_k: int,
    n_hashes: int = 1,
    n_chunks: int | None = None,
) -> Complexity:
    """Table 1 (paper §2): memory and time of one attention layer, exactly as printed.

    ============================  =================================  =================================
    variant                       memory                             time
    ============================  =================================  =================================
    ``"dot-product"``             max(b·n_h·l·d_k, b·n_h·l²)         max(b·n_h·l·d_k, b·n_h·l²)
    ``"memory-efficient"``        max(b·n_h·l·d_k, b·n_h·l²)         max(b·n_h·l·d_k, b·n_h·l²)
    ``"lsh"``                     max(b·n_h·l·d_k,                   max(b·n_h·l·d_k,
                                  b·n_h·l·n_r·(4l/n_c)²)             b·n_h·n_r·l·(4l/n_c)²)
    ============================  =================================  =================================

    Note the table's oddity: it gives memory-efficient attention the *same* memory as full attention,
    although §2 says its memory grows only linearly in l (queries are processed in chunks). We
    reproduce the table as printed; a lesson should point this out rather than fix it silently.

    ``n_chunks`` (n_c) defaults to the paper's n_c = l/32, i.e. 4l/n_c = 128 (:data:`PAPER_4L_OVER_NC`).
    ``n_hashes`` and ``n_chunks`` only enter the ``"lsh"`` row.
    """
    one_of("variant", variant, _ATTENTION_VARIANTS)
    b, l_, n_h, d_k, n_r = _sizes(batch=batch, length=length, n_heads=n_heads, d_k=d_k, n_hashes=n_hashes)
    four_l_over_nc = PAPER_4L_OVER_NC if n_chunks is None else 4 * l_ / positive_int("n_chunks", n_chunks)
    projections = float(b * n_h * l_ * d_k)
    if variant == "lsh":
        return Complexity(memory=max(projections, float(b * n_h * l_ * n_r) * four_l_over_nc**2),
                          time=max(projections, float(b * n_h * n_r * l_) * four_l_over_nc**2))
    full = max(projections, float(b * n_h * l_**2))
    return Complexity(memory=full, time=full)


def model_complexity(
    variant: str,
    *,
    batch: int,
    length: int,
    d_model: int,
    d_ff: int,
    n_heads: int,
    n_layers: int,
    n_hashes: int = 1,
    c: int = PAPER_C,
) -> Complexity:
    """Table 3 (paper §3): memory and time of a whole model, exactly as printed.

    ==========================  ==================================  ==================================
    variant                     memory                              time
    ==========================  ==================================  ==================================
    ``"transformer"``           max(b·l·d_ff, b·n_h·l²)·n_l         (b·l·d_ff + b·n_h·l²)·n_l
    ``"reversible"``            max(b·l·d_ff, b·n_h·l²)             (b·n_h·l·d_ff + b·n_h·l²)·n_l
    ``"chunked-reversible"``    max(b·l·d_model, b·n_h·l²)          (b·n_h·l·d_ff + b·n_h·l²)·n_l
    ``"lsh-transformer"``       max(b·l·d_ff, b·n_h·l·n_r·c)·n_l    (b·l·d_ff + b·n_h·n_r·l·c)·n_l
    ``"reformer"``              max(b·l·d_model, b·n_h·l·n_r·c)     (b·l·d_ff + b·n_h·n_r·l·c)·n_l
    ==========================  ==================================  ==================================

    Probable typo, reproduced verbatim: the two reversible rows' time has b·n_h·l·d_ff where the
    Transformer row has b·l·d_ff; reversibility changes memory, not the order of the time (the
    recomputation is a constant factor the table leaves out). The paper assumes d_ff ≥ d_model and
    c = 128² (n_c = l/32, so 4l/n_c = 128; :data:`PAPER_C`). ``n_hashes`` (n_r) and ``c`` only enter
    the LSH rows.
    """
    one_of("variant", variant, _MODEL_VARIANTS)
    b, l_, d_m, d_f, n_h, n_l, n_r, c_ = _sizes(batch=batch, length=length, d_model=d_model, d_ff=d_ff,
                                                n_heads=n_heads, n_layers=n_layers, n_hashes=n_hashes, c=c)
    full_attention, lsh_attention = float(b * n_h * l_**2), float(b * n_h * l_ * n_r * c_)
    if variant == "transformer":
        return Complexity(max(b * l_ * d_f, full_attention) * n_l, (b * l_ * d_f + full_attention) * n_l)
    if variant == "reversible":
        return Complexity(max(b * l_ * d_f, full_attention), (b * n_h * l_ * d_f + full_attention) * n_l)
    if variant == "chunked-reversible":
        return Complexity(max(b * l_ * d_m, full_attention), (b * n_h * l_ * d_f + full_attention) * n_l)
    if variant == "lsh-transformer":
        return Complexity(max(b * l_ * d_f, lsh_attention) * n_l, (b * l_ * d_f + lsh_attention) * n_l)
    return Complexity(max(b * l_ * d_m, lsh_attention), (b * l_ * d_f + lsh_attention) * n_l)


# --------------------------------------------------------------------------------------------------
# The introduction's back-of-envelope (paper §1 and §3)


def qk_matrix_bytes(length: int, batch: int = 1, n_heads: int = 1, bytes_per_value: float = 4) -> float:
    """Bytes of the attention matrices QKᵀ of one layer: batch·n_heads·length²·bytes_per_value.

    Paper §1: at length 64K, one sequence, fp32, "the QKᵀ matrix alone is 64K × 64K floats", 16 GiB:
    ``qk_matrix_bytes(65536) == 16 * 2**30``.
    """
    length, batch, n_heads = _sizes(length=length, batch=batch, n_heads=n_heads)
    return float(batch * n_heads * length**2) * positive_float("bytes_per_value", bytes_per_value)


def parameter_bytes(n_params: int, bytes_per_value: float = 4) -> float:
    """Bytes of ``n_params`` parameters. Paper §1: 0.5B parameters per layer take 2 GB (decimal, fp32)."""
    return float(positive_int("n_params", n_params)) * positive_float("bytes_per_value", bytes_per_value)


def activation_bytes(
    batch: int, length: int, d_model: int, n_layers: int = 1, bytes_per_value: float = 4
) -> float:
    """Bytes of the layer inputs kept for backprop: batch·length·d_model·n_layers·bytes_per_value.

    Paper §1: 64K tokens × embedding 1024 × batch 8 = 0.5B floats (0.5·2³⁰), "another 2GB" (2 GiB) for
    one layer; §3: b·l·d_model per layer, n_l times over the stack.
    """
    count = math.prod(_sizes(batch=batch, length=length, d_model=d_model, n_layers=n_layers))
    return float(count) * positive_float("bytes_per_value", bytes_per_value)


def feedforward_activation_bytes(
    batch: int, length: int, d_ff: int, n_layers: int, bytes_per_value: float = 4
) -> float:
    """Bytes of the feed-forward's inner activations over the stack: batch·length·d_ff·n_layers·bytes.

    Paper §3: "d_ff = 4K and n_l = 16 so with l = 64K this again would use an impractical 16GB":
    ``feedforward_activation_bytes(1, 65536, 4096, 16) == 16 * 2**30``.
    """
    count = math.prod(_sizes(batch=batch, length=length, d_ff=d_ff, n_layers=n_layers))
    return float(count) * positive_float("bytes_per_value", bytes_per_value)


@dataclass(frozen=True)
class MemoryBreakdown:
    """The paper's three memory problems (§1) for one configuration and one Table 3 model type, in bytes.

    Attributes:
        model: the Table 3 row (see :func:`model_variants`).
        activations: layer inputs kept for backprop, b·l·d_model (× n_l unless reversible).
        feedforward: feed-forward inner activations, b·l·d_ff (× n_l unless reversible; d_ff → d_model
            when chunked).
        attention: attention matrices, b·n_h·l² (LSH: b·n_h·l·n_r·c), for the whole stack.
    """

    model: str
    activations: float
    feedforward: float
    attention: float

    def terms(self) -> dict[str, float]:
        """The three terms in the paper's order, for a bar chart; keys match :data:`MEMORY_FIXES`."""
        return {"activations": self.activations, "feedforward": self.feedforward, "attention": self.attention}

    @property
    def largest(self) -> float:
        """The largest term: Table 3's memory entry times bytes per value (when d_ff ≥ d_model)."""
        return max(self.terms().values())

    @property
    def total(self) -> float:
        """The sum of the three terms: an upper bound where the paper's table takes the maximum."""
        return sum(self.terms().values())


def memory_breakdown(
    length: int,
    batch: int,
    d_model: int,
    d_ff: int,
    n_layers: int,
    n_heads: int,
    bytes_per_value: float = 4,
    *,
    model: str = "transformer",
    n_hashes: int = 1,
    c: int = PAPER_C,
) -> MemoryBreakdown:
    """Bytes of the paper's three memory problems (§1) for one configuration, split as in Table 3.

    Every term is for the **whole stack**: what must be held at once to run backprop. For a model that
    stores activations per layer (``"transformer"``, ``"lsh-transformer"``) each term has the factor
    n_l, so the attention term is n_l layers × b·n_h·l² (the intro's 16 GiB QKᵀ is one layer's, one
    head's share; see :func:`qk_matrix_bytes`). The Reformer's fixes (:data:`MEMORY_FIXES`) reduce the
    terms by ``model``:

    ======================  ===================  ===================  ======================
    model                   activations          feedforward          attention
    ======================  ===================  ===================  ======================
    transformer             b·l·d_model·n_l      b·l·d_ff·n_l         b·n_h·l²·n_l
    reversible              b·l·d_model          b·l·d_ff             b·n_h·l²
    chunked-reversible      b·l·d_model          b·l·d_model          b·n_h·l²
    lsh-transformer         b·l·d_model·n_l      b·l·d_ff·n_l         b·n_h·l·n_r·c·n_l
    reformer                b·l·d_model          b·l·d_model          b·n_h·l·n_r·c
    ======================  ===================  ===================  ======================

    The largest term equals Table 3's memory entry (:func:`model_complexity`) times ``bytes_per_value``
    whenever d_ff ≥ d_model, as the paper assumes.
    """
    model = one_of("model", model, _MODEL_VARIANTS)
    b, l_, d_m, d_f, n_h, n_l, n_r, c_ = _sizes(batch=batch, length=length, d_model=d_model, d_ff=d_ff,
                                                n_heads=n_heads, n_layers=n_layers, n_hashes=n_hashes, c=c)
    scale = positive_float("bytes_per_value", bytes_per_value)
    layers = 1 if model in ("reversible", "chunked-reversible", "reformer") else n_l
    feedforward_width = d_m if model in ("chunked-reversible", "reformer") else d_f
    attention = b * n_h * l_ * n_r * c_ if model in ("lsh-transformer", "reformer") else b * n_h * l_**2
    return MemoryBreakdown(
        model=model,
        activations=float(b * l_ * d_m * layers) * scale,
        feedforward=float(b * l_ * feedforward_width * layers) * scale,
        attention=float(attention * layers) * scale,
    )


_FULL_ATTENTION_MODELS = ("transformer", "reversible", "chunked-reversible")
_LSH_MODELS = ("lsh-transformer", "reformer")


def attention_crossover_length(
    full_model: str = "chunked-reversible",
    lsh_model: str = "reformer",
    *,
    n_layers: int = 1,
    n_hashes: int = 1,
    c: int = PAPER_C,
) -> float:
    """The length at which Table 3's attention term of ``lsh_model`` equals that of ``full_model``.

    Full attention's term grows as l² (b·n_h·l², times n_l for a model that stores every layer), LSH's as l
    (b·n_h·l·n_r·c, likewise). Batch and heads cancel, so the two are equal at
    l = n_r·c · (LSH model's stored layers) / (full model's stored layers); **below** that length the LSH term
    is the larger one, because c is a constant (the paper plugs in c = 128², :data:`PAPER_C`) while l² / l = l
    shrinks. Both models are read from :func:`memory_breakdown` (at length 1), so the answer is the crossing of
    the bars that function draws. Defaults: one layer of full attention against one of LSH, l = n_r·c.
    """
    one_of("full_model", full_model, _FULL_ATTENTION_MODELS)
    one_of("lsh_model", lsh_model, _LSH_MODELS)
    sizes = dict(length=1, batch=1, d_model=1, d_ff=1, n_layers=n_layers, n_heads=1, n_hashes=n_hashes, c=c)
    full = memory_breakdown(**sizes, model=full_model).attention  # full(l) = full · l²
    lsh = memory_breakdown(**sizes, model=lsh_model).attention  # lsh(l) = lsh · l
    return lsh / full
