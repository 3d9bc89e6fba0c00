"""What every stack measurement is made of: a :class:`~reformer_lab.model.ReformerConfig` and an input size.

Table 3 (:class:`~reformer_lab.measure.feedforward_stats.Table3Config`), the memory benchmark
(:class:`~reformer_lab.measure.bench.MemorySetting`) and lesson 04's memory curves
(:class:`~reformer_lab.measure.reversible_stats.StackConfig`) all measure a stack of the paper's reversible
blocks (eq. 9) built by :func:`reformer_lab.model.build_stack`. Each describes it by the model's own config,
``model``, where the sizes are defined and checked, and adds only what it measures: the input's ``length``
and ``batch``, the ``seed`` of the weights and the input, and its own settings. :class:`MeasuredStack` is
what they share.
"""

from __future__ import annotations

from dataclasses import MISSING, fields, replace
from typing import Any

import torch
from torch import Tensor

from reformer_lab.model import ReformerConfig, build_stack
from reformer_lab.reversible import ReversibleSequence
from reformer_lab.validation import ArgumentTypeError, as_int, positive_int

__all__ = ["MODEL_FIELDS", "MeasuredStack"]

#: The names of :class:`~reformer_lab.model.ReformerConfig`'s fields.
MODEL_FIELDS = frozenset(f.name for f in fields(ReformerConfig))


class MeasuredStack:
    """Base of the frozen dataclasses that describe a measured stack; each has the fields ``model``,
    ``length``, ``batch`` and ``seed`` (and may add its own).

    Made from a model, ``StackConfig(model=config, length=256)``, or from the model's sizes as keywords,
    ``StackConfig(length=256, d_model=32, attention="full")``: those change the class's default ``model``
    (or the ``model`` given with them), and :class:`~reformer_lab.model.ReformerConfig` checks the result.
    ``length`` defaults to the given model's ``max_len``, else to the class's default; the model's
    ``max_len`` is then set to ``length``, the one length the stack sees (a stack has no position table), so
    the config's own rule for LSH, a multiple of ``chunk_size``, is the rule for ``length``.
    ``model.ff_chunks`` must divide ``length`` too.

    The model's fields read through: ``setting.d_model`` is ``setting.model.d_model``.
    """

    model: ReformerConfig
    length: int
    batch: int
    seed: int

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The subclass's fields, positionally or by name; any other keyword is one of the model's sizes.
        names = [f.name for f in fields(self)]  # type: ignore[arg-type]
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__} takes at most {len(names)} positional arguments "
                            f"({', '.join(names)}), got {len(args)}")
        for name, value in zip(names, args, strict=False):
            if name in kwargs:
                raise TypeError(f"{type(self).__name__} got {name} twice")
            kwargs[name] = value
        sizes = {name: kwargs.pop(name) for name in list(kwargs) if name not in names}
        unknown = sorted(name for name in sizes if name not in MODEL_FIELDS or name == "max_len")
        if unknown:
            raise TypeError(f"{type(self).__name__} got unexpected keyword arguments {unknown}: neither its own "
                            f"fields ({', '.join(names)}) nor ReformerConfig's (max_len is length here)")
        for f in fields(self):  # type: ignore[arg-type]
            if f.name in kwargs:
                value = kwargs[f.name]
            elif f.default is not MISSING:
                value = f.default
            else:
                raise TypeError(f"{type(self).__name__} needs {f.name}")
            object.__setattr__(self, f.name, value)
        if not isinstance(self.model, ReformerConfig):
            raise ArgumentTypeError(f"model must be a ReformerConfig, got {type(self.model).__name__}")
        if "length" not in kwargs and "model" in kwargs:
            object.__setattr__(self, "length", self.model.max_len)
        object.__setattr__(self, "length", positive_int("length", self.length))
        object.__setattr__(self, "model", replace(self.model, **{**sizes, "max_len": self.length}))
        self.__post_init__()

    def __post_init__(self) -> None:
        object.__setattr__(self, "batch", positive_int("batch", self.batch))
        object.__setattr__(self, "seed", as_int("seed", self.seed, minimum=0))
        if self.length % self.model.ff_chunks:
            raise ValueError(f"ff_chunks={self.model.ff_chunks} must divide length={self.length}")

    def __getattr__(self, name: str) -> Any:
        if name in MODEL_FIELDS and "model" in vars(self):
            return getattr(self.model, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the fields, with ``model`` as :meth:`ReformerConfig.to_dict
        <reformer_lab.model.ReformerConfig.to_dict>` (``type(self)(**d)`` with ``d["model"]`` rebuilt by
        ``ReformerConfig.from_dict`` gives this setting back)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]
        return {**data, "model": self.model.to_dict()}

    def build(self, **changes: Any) -> ReversibleSequence:
        """The stack of ``model`` with ``changes`` (e.g. ``n_layers=4``), weights drawn from ``seed``.

        :func:`~reformer_lab.model.build_stack` under the model's rules; the global RNG is left alone.
        """
        return build_stack(replace(self.model, **changes), seed=self.seed)

    def inputs(self, count: int = 1) -> tuple[Tensor, ...]:
        """``count`` tensors ``[batch, length, d_model]`` ~ N(0, 1), drawn in turn from a generator seeded
        with ``seed`` (the input, then e.g. an upstream gradient); the global RNG is left alone."""
        generator = torch.Generator().manual_seed(self.seed)
        shape = (self.batch, self.length, self.model.d_model)
        return tuple(torch.randn(shape, generator=generator) for _ in range(positive_int("count", count)))
