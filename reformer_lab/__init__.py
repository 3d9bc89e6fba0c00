"""reformer_lab: the Reformer (Kitaev, Kaiser, Levskaya, ICLR 2020) rebuilt piece by piece.

The package has three layers; each imports only the ones above it in this list:

* the Reformer itself, at the top level: ``hashing``, ``attention`` (with ``lsh_chunks``), ``feedforward``,
  ``reversible``, ``model``, ``data``, ``train``, ``files`` (atomic writes) and ``validation`` (the argument
  checks every layer uses), and beside it ``alternatives`` (local attention, §2.1's limited span, and a later scheme);
* ``reformer_lab.measure``: formulas, memory tools, benchmarks, experiment runners and the statistics
  behind the lessons' tables (no plotting);
* ``reformer_lab.lessons``: one module per lesson with its figures and widget (``l02_chunking`` draws what
  ``measure.chunking_stats`` computes), the graded exercises and their solutions.

``python -m reformer_lab.bench`` and ``python -m reformer_lab.experiments`` are the command lines.

Where the paper is implemented or measured (section, equation, table or figure → name)::

    §1      memory arithmetic          reformer_lab.measure.complexity.memory_breakdown
    Eq. 1   attention                  reformer_lab.attention.full_attention
    §2      memory-efficient attention reformer_lab.attention.memory_efficient_attention
    §2      shared-QK keys             reformer_lab.attention.unit_keys
    Fig. 1  angular LSH                reformer_lab.hashing.hash_vectors
    Fig. 1  (the figure)               reformer_lab.lessons.l01_hashing.plot_figure1
    Eq. 2   attention per position     reformer_lab.attention.lsh_attention
    Eq. 3   masked attention           reformer_lab.attention.lsh_attention
    Eq. 4   same-bucket keys           reformer_lab.attention.lsh_attention
    Eq. 5   sorted chunks              reformer_lab.attention.sort_by_bucket
    Fig. 2  bucket, sort, chunk        reformer_lab.lessons.l02_chunking.plot_figure2
    Fig. 2  (its statistics)           reformer_lab.measure.chunking_stats.window_stats
    Eq. 6   hash rounds                reformer_lab.hashing.random_rotations
    Eq. 11  chunks within a round      reformer_lab.attention.lsh_attention
    Eq. 12  combining rounds           reformer_lab.measure.attention_stats.combine_rounds
    Eq. 13  combining rounds           reformer_lab.measure.attention_stats.combine_rounds
    Eq. 14  combining rounds           reformer_lab.measure.attention_stats.combine_rounds
    Eq. 15  one round's output         reformer_lab.attention.lsh_attention
    Eq. 16  causal and self masks      reformer_lab.attention.SELF_PENALTY
    App. A  duplicate pairs N_ij       reformer_lab.measure.attention_stats.visit_counts
    Table 1 attention complexity       reformer_lab.measure.complexity.attention_complexity
    Table 1 (measured)                 reformer_lab.measure.attention_stats.measure_table1
    Table 2 duplication task           reformer_lab.data.DuplicationTask
    Table 2 (trained and evaluated)    reformer_lab.measure.duplication_stats.accuracy_table
    Eq. 7   reversible block           reformer_lab.reversible.ReversibleBlock
    Eq. 8   its inverse                reformer_lab.reversible.ReversibleBlock
    Eq. 9   reversible Transformer     reformer_lab.reversible.ReversibleSequence
    Eq. 10  chunked feed-forward       reformer_lab.feedforward.chunked
    §3      chunked loss               reformer_lab.feedforward.chunked_cross_entropy
    Table 3 model complexity           reformer_lab.measure.complexity.model_complexity
    Table 3 (measured)                 reformer_lab.measure.feedforward_stats.measure_table3
    §5      the whole model            reformer_lab.model.ReformerLM
    §5      training                   reformer_lab.train.train
    Fig. 5  speed against length       reformer_lab.measure.attention_steps.time_step
    §2      local attention (§2.1)     reformer_lab.alternatives.local_attention
    §4      routing attention (later)  reformer_lab.alternatives.routing_attention
    §4      (measured beside LSH)      reformer_lab.measure.alternatives_stats.recovered_weight

Each named module's own docstring (or the named object's) cites the same item, so a search for "Eq. 11"
or "Table 3" lands in the file that holds it.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from reformer_lab.validation import as_int

__version__ = "0.1.0"

__all__ = ["__version__", "seed_everything"]


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and PyTorch, and return a fresh ``torch.Generator`` seeded the same way.

    Library functions that draw random numbers take a ``generator`` (or ``seed``) argument and fall
    back to torch's global generator only when given none; seeding it here makes that fallback, and a
    reader's own experiments, repeatable too.
    """
    seed = as_int("seed", seed, minimum=0)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
