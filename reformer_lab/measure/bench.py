"""Benchmarks: measured side by side, in one run, printed as tables with ratios.

What of the paper they measure: Table 1 and Figure 5 (right) for attention, Table 3 for stacks of reversible
layers, and a whole model's training step (§5).

``python -m reformer_lab.bench attention`` times forward+backward of causal attention at growing
sequence length with the number of tokens per step held fixed (paper §5, Figure 5 right), and
measures each configuration's peak memory (Table 1's memory column: L² for dot-product attention, linear in
L for LSH). Every configuration runs in its own fresh process
(:func:`reformer_lab.measure.memory.peak_rss_bytes`), so one measurement's memory cannot leak into the next;
attention timings are the fastest of ``--repeats`` steps after one warm-up step (on a shared machine
the fastest step is the least disturbed one).

On a CPU the memory figure is the growth of the process's peak resident set during the steps; on
CUDA (``--device cuda``) it is the peak allocated by PyTorch.

``python -m reformer_lab.bench memory`` times a training step (forward + backward) of a stack of
n_l Reformer layers run three ways, ordinary autograd, reversible, and reversible with a chunked
feed-forward (paper §3, Table 3), and counts the bytes autograd saves for the backward pass
(:func:`reformer_lab.measure.memory.step_memory`), one fresh process per setting. The three ways run the
same blocks and weights, so their step times are taken in one fresh process per depth, the variants
taking turns: the time ratios then compare steps taken side by side.

Every argument is checked before the first measurement (:mod:`reformer_lab.validation`), and so is the
``--json`` file's directory (created, and written to); the JSON is written atomically
(:mod:`reformer_lab.files`). A measurement that fails is shown in the table with its message and,
after everything else was measured and written, makes the command exit with status 1.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from reformer_lab.files import check_writable, write_json_atomic
from reformer_lab.measure.attention_steps import (
    ATTENTION_VARIANTS,
    PEER_VARIANTS,
    AttentionSetting,
    time_step,
)
from reformer_lab.measure.feedforward_stats import table3_bytes
from reformer_lab.measure.memory import (
    format_bytes,
    peak_rss_bytes,
    stack_options,
    step_memory,
    torch_threads,
    training_step,
)
from reformer_lab.measure.provenance import git_commit, git_dirty
from reformer_lab.measure.speed_stats import SpeedPoint, peer_targets, speed_targets
from reformer_lab.measure.stacks import MeasuredStack
from reformer_lab.model import ReformerConfig
from reformer_lab.reversible import STACK_VARIANTS, ReversibleSequence
from reformer_lab.validation import as_int, positive_int


@dataclass(frozen=True)
class Measurement:
    setting: AttentionSetting
    seconds: float | None
    peak_bytes: int | None
    note: str = ""


def _time_on_cuda(s: AttentionSetting) -> tuple[float, int]:
    from reformer_lab.measure.memory import peak_cuda_bytes

    peak = peak_cuda_bytes(time_step, s)
    return peak.output, peak.delta_bytes


def measure(s: AttentionSetting, timeout: float = 900.0) -> Measurement:
    """Time and peak memory of one setting in a fresh process; failures become a note, not a crash."""
    try:
        if s.device.startswith("cuda"):
            seconds, peak = _time_on_cuda(s)
            return Measurement(s, seconds, peak)
        result = peak_rss_bytes(time_step, s, timeout=timeout)
        return Measurement(s, result.output, result.delta_bytes)
    except (RuntimeError, TimeoutError, ImportError) as error:
        return Measurement(s, None, None, note=str(error).splitlines()[0][:160])


def _settings(args: argparse.Namespace, variants: Sequence[str]) -> list[AttentionSetting]:
    """Every setting of the attention benchmark; an impossible argument stops here, before any measurement."""
    settings = []
    try:
        tokens, chunk = positive_int("--tokens", args.tokens), positive_int("--chunk", args.chunk)
        as_int("--full-cap", args.full_cap, minimum=0)
        for length in args.lengths:
            if tokens % positive_int("--lengths entries", length):
                raise ValueError(f"--tokens {tokens} must be a multiple of every length (got {length})")
            if length % chunk:
                raise ValueError(f"length {length} must be a multiple of --chunk {chunk}")
            settings += [AttentionSetting(variant, length, tokens // length, args.d_model, args.heads, chunk,
                                          args.repeats, args.device, layer=args.layer) for variant in variants]
    except ValueError as error:
        raise SystemExit(f"python -m reformer_lab.bench attention: {error}") from error
    return settings


def _skip_reason(s: AttentionSetting, full_cap: int) -> str:
    if s.variant == "full" and s.length > full_cap:
        l_by_l = s.batch * s.n_heads * s.length**2 * 4
        return f"skipped: one L×L fp32 tensor is {format_bytes(l_by_l)} (raise --full-cap to run it)"
    return ""


def _progress(items: Sequence[Any]):
    try:
        from tqdm.auto import tqdm

        return tqdm(items, desc="measuring", unit="setting", file=sys.stderr)
    except ImportError:
        return items


def run(settings: Sequence[AttentionSetting], full_cap: int) -> list[Measurement]:
    results = []
    bar = _progress(settings)
    for s in bar:
        if hasattr(bar, "set_postfix_str"):
            bar.set_postfix_str(f"{s.variant} L={s.length}")
        reason = _skip_reason(s, full_cap)
        results.append(Measurement(s, None, None, reason) if reason else measure(s))
    return results


def format_table(results: Sequence[Measurement], reference: str) -> str:
    """One row per (length, variant): seconds, peak memory, and both as ratios to ``reference``."""
    ref = {m.setting.length: m for m in results if m.setting.variant == reference}
    lines = [f"{'L/batch':>12s} {'variant':>17s} {'s/step':>9s} {'peak':>10s} {'time ÷ ' + reference:>14s}"
             f" {'mem ÷ ' + reference:>13s}"]
    for m in results:
        s, r = m.setting, ref.get(m.setting.length)
        if m.seconds is None:
            lines.append(f"{s.length:>6d}/{s.batch:<5d} {s.variant:>17s}  {m.note}")
            continue
        t_ratio = f"{m.seconds / r.seconds:.2f}×" if r and r.seconds else "–"
        m_ratio = f"{m.peak_bytes / r.peak_bytes:.2f}×" if r and r.peak_bytes else "–"
        lines.append(f"{s.length:>6d}/{s.batch:<5d} {s.variant:>17s} {m.seconds:9.3f} "
                     f"{format_bytes(m.peak_bytes):>10s} {t_ratio:>14s} {m_ratio:>13s}")
    return "\n".join(lines)


def _points(results: Sequence[Measurement]) -> list[SpeedPoint]:
    return [SpeedPoint(m.setting.variant, m.setting.length, m.setting.batch, m.seconds, m.peak_bytes,
                       m.setting.chunk_size, m.setting.n_heads, m.setting.d_model, m.note) for m in results]


def attention_targets(results: Sequence[Measurement], at: int = 8192) -> list[tuple[str, bool, str]]:
    """:func:`~reformer_lab.measure.speed_stats.speed_targets` on this run's measurements."""
    return speed_targets(_points(results), at)


def peers_targets(results: Sequence[Measurement], at: int = 8192) -> list[tuple[str, bool, str]]:
    """:func:`~reformer_lab.measure.speed_stats.peer_targets` on this run's module measurements."""
    return peer_targets([(m.setting.variant, m.setting.length, m.seconds, m.peak_bytes) for m in results], at)


# --------------------------------------------------------------------------------------------------
# memory: ordinary vs reversible vs reversible + chunked feed-forward stacks (paper §3, Table 3)


#: The memory benchmark's stack unless told otherwise, and its command line's defaults: 12 layers (the depth the
#: targets are judged at), d_model 256, d_ff 1024, 4 heads, LSH attention with chunks of 64 and 2 hash rounds,
#: not causal, and 4 feed-forward chunks (d_ff / d_model: the widest feed-forward activation then matches
#: d_model, as Table 3's chunked rows assume).
BENCH_MODEL = ReformerConfig(max_len=4096, d_model=256, d_ff=1024, n_heads=4, n_layers=12, attention="lsh",
                             n_hashes=2, chunk_size=64, ff_chunks=4, causal=False)


@dataclass(frozen=True, init=False)
class MemorySetting(MeasuredStack):
    """One point of the memory benchmark: a stack ``variant`` (one of
    :data:`~reformer_lab.reversible.STACK_VARIANTS`) of the stack ``model`` (its ``n_layers`` is the depth) on
    ``batch`` sequences of ``length``, timed over ``repeats`` steps on ``device`` with ``threads`` torch threads
    (None: torch's choice).

    The defaults (:data:`BENCH_MODEL`, L = 4096, batch 1) are the setting the benchmark's targets are stated
    for: at 4096 tokens the saved activations outgrow the parameters (about 1 GiB for 12 ordinary layers
    against 33 MiB of weights), yet a step of 12 layers takes seconds on a CPU. Keyword sizes work too
    (:class:`~reformer_lab.measure.stacks.MeasuredStack`):
    ``MemorySetting("reversible", n_layers=2, length=128, d_model=32)``.
    """

    variant: str
    model: ReformerConfig = BENCH_MODEL
    length: int = 4096
    batch: int = 1
    repeats: int = 3
    device: str = "cpu"
    seed: int = 0
    threads: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        stack_options(self.variant)
        object.__setattr__(self, "repeats", positive_int("repeats", self.repeats))
        if self.threads is not None:
            object.__setattr__(self, "threads", positive_int("threads", self.threads))


@dataclass(frozen=True)
class MemoryMeasurement:
    """What one setting measured; ``peak_bytes`` is the peak RSS growth on CPU, peak allocated on CUDA."""

    setting: MemorySetting
    seconds: float | None
    saved_after_forward: int | None
    saved_peak: int | None
    peak_bytes: int | None
    note: str = ""


def memory_step(s: MemorySetting) -> dict[str, int | None]:
    """Saved bytes of a training step of ``s``'s stack (run in the measuring child).

    The stack is built from ``s.seed``; the step is forward + backward with a fixed upstream gradient
    for both halves (no loss graph, so nothing but the stack is measured). After one warm-up step, the
    saved bytes (and, on CUDA, the peak allocated) come from :func:`~reformer_lab.measure.memory.step_memory`.
    """
    with torch_threads(s.threads):
        stack, x, grad = _stack_and_inputs(s)
        _timed_step(stack, x, grad, s)
        stack.ff_chunks = s.ff_chunks
        memory = step_memory(stack, x, s.variant)
    return {"saved_after_forward": memory.saved_after_forward, "saved_peak": memory.saved_peak,
            "cuda_peak": memory.cuda_peak}


def paired_seconds(settings: Sequence[MemorySetting]) -> dict[str, float]:
    """Median seconds of a training step of each variant of one depth, the variants taking turns (run in a child).

    One stack serves every variant (ordinary, reversible and reversible+chunked run the same blocks and
    weights, only differently), so they are timed in one process: after a warm-up step of each, they
    step in turn for ``repeats`` rounds, and whatever changes the machine's speed meanwhile (other
    work, clocks, the allocator settling) falls on all of them alike. Each variant's time is its median.
    """
    if not settings:
        raise ValueError("paired_seconds needs at least one setting to time")
    first = settings[0]
    for s in settings:
        if replace(s, variant=first.variant) != first:
            raise ValueError("paired_seconds times the variants of one setting: all else must be equal")
    with torch_threads(first.threads):
        stack, x, grad = _stack_and_inputs(first)
        for s in settings:
            _timed_step(stack, x, grad, s)  # warm-up
        times: dict[str, list[float]] = {s.variant: [] for s in settings}
        for _ in range(first.repeats):
            for s in settings:
                times[s.variant].append(_timed_step(stack, x, grad, s))
    return {variant: statistics.median(t) for variant, t in times.items()}


def _stack_and_inputs(s: MemorySetting) -> tuple[ReversibleSequence, torch.Tensor, torch.Tensor]:
    x, grad = s.inputs(2)
    return s.build().to(s.device), x.to(s.device).requires_grad_(), grad.to(s.device)


def _timed_step(stack: ReversibleSequence, x: torch.Tensor, grad: torch.Tensor, s: MemorySetting) -> float:
    """Seconds of one training step of ``stack`` run as ``s.variant`` (FF chunked only for reversible+chunked)."""
    stack.ff_chunks = s.ff_chunks if s.variant == "reversible+chunked" else 1
    start = time.perf_counter()
    training_step(stack, x, grad, s.variant != "ordinary")
    if s.device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _failure(error: Exception) -> str:
    return str(error).splitlines()[0][:160]


def measure_memory(s: MemorySetting, timeout: float = 1800.0, fresh_process: bool = True) -> MemoryMeasurement:
    """Saved bytes and peak memory of ``s`` in a fresh process (or in this one), without its time (see
    :func:`measure_seconds`); failures become a note, not a crash."""
    try:
        if fresh_process:
            result = peak_rss_bytes(memory_step, s, timeout=timeout)
            out, rss = result.output, result.delta_bytes
        else:
            out, rss = memory_step(s), None
    except (RuntimeError, TimeoutError, ValueError) as error:
        return MemoryMeasurement(s, None, None, None, None, note=_failure(error))
    peak = out["cuda_peak"] if s.device.startswith("cuda") else rss
    return MemoryMeasurement(s, None, out["saved_after_forward"], out["saved_peak"], peak)


def measure_seconds(settings: Sequence[MemorySetting], timeout: float = 1800.0,
                    fresh_process: bool = True) -> dict[str, float] | str:
    """:func:`paired_seconds` in a fresh process (or in this one); a failure comes back as its message."""
    try:
        if fresh_process:
            return peak_rss_bytes(paired_seconds, list(settings), timeout=timeout).output
        return paired_seconds(settings)
    except (RuntimeError, TimeoutError, ValueError) as error:
        return _failure(error)


def run_memory(
    settings: Sequence[MemorySetting], fresh_process: bool = True, rounds: int = 1
) -> list[MemoryMeasurement]:
    """Measure every setting ``rounds`` times and combine the rounds (each setting's time: the median).

    Per round and depth, one process times the variants in turn (:func:`paired_seconds`) and one process
    per variant measures its memory (:func:`measure_memory`), so no measurement inherits another's
    memory. Sweeping all depths once per round spreads a shared machine's changing load over them all.
    """
    groups: dict[MemorySetting, list[MemorySetting]] = {}
    for s in settings:
        groups.setdefault(replace(s, variant=STACK_VARIANTS[0]), []).append(s)
    runs: dict[MemorySetting, list[MemoryMeasurement]] = {s: [] for s in settings}
    bar = _progress([group for _ in range(rounds) for group in groups.values()])
    for group in bar:
        if hasattr(bar, "set_postfix_str"):
            bar.set_postfix_str(f"n_l={group[0].n_layers}")
        seconds = measure_seconds(group, fresh_process=fresh_process)
        for s in group:
            m = measure_memory(s, fresh_process=fresh_process)
            if isinstance(seconds, str):
                m = replace(m, note=m.note or seconds)
            elif m.saved_peak is not None:
                m = replace(m, seconds=seconds[s.variant])
            runs[s].append(m)
    return [_combine(s, measured) for s, measured in runs.items()]


def _combine(s: MemorySetting, measured: Sequence[MemoryMeasurement]) -> MemoryMeasurement:
    ok = [m for m in measured if m.seconds is not None]
    if not ok:
        return measured[0]
    peaks = [m.peak_bytes for m in ok if m.peak_bytes is not None]
    return MemoryMeasurement(s, statistics.median(m.seconds for m in ok), ok[0].saved_after_forward,
                             max(m.saved_peak for m in ok), int(statistics.median(peaks)) if peaks else None,
                             "" if len(ok) == len(measured) else f"{len(measured) - len(ok)} round(s) failed")


def _table3(s: MemorySetting) -> float:
    return table3_bytes(s.variant, s.model, s.length, s.batch)


def _memory_ref(results: Sequence[MemoryMeasurement]) -> dict[int, MemoryMeasurement]:
    return {m.setting.n_layers: m for m in results if m.setting.variant == "ordinary" and m.seconds}


def _ratio(value: float | None, reference: float | None) -> str:
    return f"{value / reference:.2f}×" if value and reference else "–"


def format_memory_table(results: Sequence[MemoryMeasurement]) -> str:
    """One row per (depth, variant): s/step, saved bytes, peak, Table 3, and ratios to the ordinary stack."""
    ref, device = _memory_ref(results), results[0].setting.device if results else "cpu"
    peak_name = "cuda peak" if device.startswith("cuda") else "rss peak"
    lines = [f"{'n_l':>3s} {'variant':>18s} {'s/step':>8s} {'saved fwd→bwd':>13s} {'saved peak':>10s} "
             f"{peak_name:>10s} {'Table 3':>9s} {'time ÷ ord':>10s} {'saved peak ÷ ord':>16s}"]
    for m in results:
        s, r = m.setting, ref.get(m.setting.n_layers)
        if m.seconds is None:
            lines.append(f"{s.n_layers:>3d} {s.variant:>18s}  {m.note}")
            continue
        peak = format_bytes(m.peak_bytes) if m.peak_bytes is not None else "–"
        lines.append(f"{s.n_layers:>3d} {s.variant:>18s} {m.seconds:8.3f} {format_bytes(m.saved_after_forward):>13s} "
                     f"{format_bytes(m.saved_peak):>10s} {peak:>10s} {format_bytes(_table3(s)):>9s} "
                     f"{_ratio(m.seconds, r and r.seconds):>10s} {_ratio(m.saved_peak, r and r.saved_peak):>16s}")
    return "\n".join(lines)


def memory_targets(results: Sequence[MemoryMeasurement], at: int = 12) -> list[tuple[str, bool | None, str]]:
    """What the reversible + chunked stack should show at ``at`` layers against the ordinary one: ≤ 1/8 of its
    saved bytes (judged on the step's saved peak) for a step ≤ 1.6× as long. Each (claim, met?, evidence);
    nothing is judged unless both stacks were measured at that depth."""
    def get(variant: str) -> MemoryMeasurement | None:
        return next((m for m in results if m.setting.variant == variant and m.setting.n_layers == at
                     and m.seconds and m.saved_peak and m.saved_after_forward), None)  # no division by 0

    ordinary, chunked = get("ordinary"), get("reversible+chunked")
    if not (ordinary and chunked):
        return []
    saved = ordinary.saved_peak / chunked.saved_peak
    kept = ordinary.saved_after_forward / chunked.saved_after_forward
    time_ratio = chunked.seconds / ordinary.seconds
    return [
        (f"n_l={at}: reversible+chunked saves ≤ 1/8 of the ordinary stack's bytes", saved >= 8,
         f"ordinary/rev+chunked saved peak = {saved:.1f}× (held from forward to backward: {kept:.1f}×)"),
        (f"n_l={at}: reversible+chunked step ≤ 1.6× the ordinary step", time_ratio <= 1.6,
         f"rev+chunked/ordinary time = {time_ratio:.2f}×"),
    ]


def _memory_settings(args: argparse.Namespace) -> list[MemorySetting]:
    try:
        positive_int("--rounds", args.rounds)
        model = replace(BENCH_MODEL, max_len=args.length, d_model=args.d_model, d_ff=args.d_ff, n_heads=args.heads,
                        attention=args.attention, chunk_size=args.chunk, n_hashes=args.hashes,
                        ff_chunks=args.ff_chunks)
        return [MemorySetting(variant, replace(model, n_layers=n), args.length, args.batch, args.repeats,
                              args.device, threads=args.threads) for n in args.layers for variant in args.variants]
    except ValueError as error:
        raise SystemExit(f"python -m reformer_lab.bench memory: {error}") from error


def _main_memory(args: argparse.Namespace) -> int:
    settings = _memory_settings(args)
    print(f"training step (forward+backward) of n_l layers, {args.attention} attention, L {args.length}, "
          f"batch {args.batch}, d_model {args.d_model}, d_ff {args.d_ff}, {args.heads} heads, "
          f"chunk {args.chunk}, {args.hashes} hashes, {args.ff_chunks} FF chunks; median of {args.repeats} steps,"
          f" the variants taking turns, × {args.rounds} round(s) on {args.device}"
          + (f", {args.threads} threads" if args.threads else ""))
    results = run_memory(settings, fresh_process=not args.in_process, rounds=args.rounds)
    print(format_memory_table(results))
    print("saved fwd→bwd: bytes autograd holds after the forward pass; saved peak: the most held at any "
          "moment of the step; Table 3: the paper's memory formula × 4 B")
    at = max(args.layers)
    targets = memory_targets(results, at)
    for claim, met, evidence in targets:
        print(f"[{'MET' if met else 'MISSED'}] {claim}: {evidence}")
    if not targets:
        print(f"targets not judged: ordinary and reversible+chunked at n_l={at} were not both measured")
    if args.json:
        records = [{**m.setting.to_dict(), "seconds": m.seconds, "saved_after_forward": m.saved_after_forward,
                    "saved_peak": m.saved_peak, "peak_bytes": m.peak_bytes, "table3_bytes": _table3(m.setting),
                    "note": m.note} for m in results]
        provenance = _provenance(args.device)
        if args.threads:
            provenance["threads"] = str(args.threads)
        _write(args.json, {"provenance": provenance, "results": records,
                           "targets": [{"claim": c, "met": met, "evidence": e} for c, met, e in targets]})
    return _status("memory", [f"n_l={m.setting.n_layers} {m.setting.variant}: {m.note}" for m in results
                              if m.seconds is None or "failed" in m.note])


def _write(path: Path, payload: dict[str, Any]) -> None:
    write_json_atomic(path, payload)
    print(f"wrote {path}")


def _status(command: str, failures: Sequence[str]) -> int:
    """0, or 1 with the failed measurements on stderr: a run with a failed measurement must not pass as done."""
    if not failures:
        return 0
    print(f"python -m reformer_lab.bench {command}: {len(failures)} measurement(s) failed:\n  " + "\n  ".join(failures),
          file=sys.stderr)
    return 1


def _check_args(args: argparse.Namespace) -> None:
    """What every command needs before its first measurement: a usable device and a writable --json."""
    try:
        if args.device != "cpu" and not args.device.startswith("cuda"):
            raise ValueError(f"--device must be cpu or cuda, got {args.device!r}")
        if args.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError("--device cuda was asked for but torch sees no CUDA device")
        for name in ("repeats", "batch"):
            if hasattr(args, name):
                positive_int(f"--{name}", getattr(args, name))
        if args.json:
            check_writable(args.json)
    except (ValueError, OSError) as error:
        raise SystemExit(f"python -m reformer_lab.bench {args.command}: {error}") from error


def _cpu_name() -> str:
    """The processor's model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} logical cores"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _provenance(device: str) -> dict[str, Any]:
    name = torch.cuda.get_device_name() if device.startswith("cuda") else _cpu_name()
    return {"device": f"{device} ({name})", "torch": torch.__version__, "commit": git_commit(),
            "dirty": git_dirty(), "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "threads": str(torch.get_num_threads())}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m reformer_lab.bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    att = sub.add_parser("attention", help="attention time and peak memory against length, tokens fixed")
    att.add_argument("--lengths", type=int, nargs="+", default=[1024, 2048, 4096, 8192, 16384])
    att.add_argument("--tokens", type=int, default=16384, help="tokens per step (batch = tokens / length)")
    att.add_argument("--variants", nargs="+", default=list(ATTENTION_VARIANTS), choices=ATTENTION_VARIANTS)
    att.add_argument("--d-model", type=int, default=256)
    att.add_argument("--heads", type=int, default=4)
    att.add_argument("--chunk", type=int, default=64)
    att.add_argument("--repeats", type=int, default=3)
    att.add_argument("--full-cap", type=int, default=8192, help="skip plain full attention above this length")
    att.add_argument("--device", default="cpu")
    att.add_argument("--layer", action="store_true",
                     help="time the whole attention layer (QK/V and output projections) instead of the function")
    att.add_argument("--peers", action="store_true",
                     help="also compare whole LSH modules with reformer-pytorch and HF transformers "
                          "(pip install -e '.[peers]')")
    att.add_argument("--json", type=Path, help="also write the measurements and provenance to this JSON file")
    mem = sub.add_parser("memory", help="saved bytes and step time of ordinary vs reversible (+chunked) stacks")
    mem.add_argument("--layers", type=int, nargs="+", default=[1, 2, 4, 8, 12])
    mem.add_argument("--length", type=int, default=4096)
    mem.add_argument("--batch", type=int, default=1)
    mem.add_argument("--d-model", type=int, default=256)
    mem.add_argument("--d-ff", type=int, default=1024)
    mem.add_argument("--heads", type=int, default=4)
    mem.add_argument("--attention", choices=("lsh", "full"), default="lsh")
    mem.add_argument("--chunk", type=int, default=64, help="LSH chunk size (n_buckets = 2·L/chunk)")
    mem.add_argument("--hashes", type=int, default=2)
    mem.add_argument("--ff-chunks", type=int, default=4,
                     help="feed-forward chunks of the reversible+chunked stack (default d_ff / d_model = 4)")
    mem.add_argument("--variants", nargs="+", default=list(STACK_VARIANTS), choices=STACK_VARIANTS)
    mem.add_argument("--repeats", type=int, default=3,
                     help="timed steps of each variant, the variants of one depth taking turns (median)")
    mem.add_argument("--rounds", type=int, default=1,
                     help="sweep all depths this many times, each in fresh processes; time = median over rounds")
    mem.add_argument("--device", default="cpu")
    mem.add_argument("--threads", type=int, help="torch threads in each measurement (default: torch's choice)")
    mem.add_argument("--in-process", action="store_true",
                     help="measure in this process instead of a fresh one per setting (quick runs, tests)")
    mem.add_argument("--json", type=Path, help="also write the measurements and provenance to this JSON file")
    mod = sub.add_parser("model", help="seconds and peak memory per training step of the whole ReformerLM")
    mod.add_argument("--experiment", choices=("duplication", "charlm"), default="duplication")
    mod.add_argument("--settings", nargs="+", default=["full", "lsh-1", "lsh-2", "lsh-4"])
    mod.add_argument("--scale", default="lesson", help="model size of `python -m reformer_lab.experiments`")
    mod.add_argument("--batch", type=int, default=8)
    mod.add_argument("--repeats", type=int, default=3)
    mod.add_argument("--device", default="cpu")
    mod.add_argument("--json", type=Path, help="also write the measurements and provenance to this JSON file")
    return parser


def _main_model(args: argparse.Namespace) -> int:
    """Whole-model training steps (forward, backward, Adam), one fresh process per setting on CPU."""
    from reformer_lab.measure.experiments import measure_model_step, spec_for

    try:
        specs = {s: spec_for(args.experiment, s, args.scale) for s in args.settings}
    except ValueError as error:
        raise SystemExit(str(error)) from error
    print(f"{args.experiment} model at --scale {args.scale}, batch {args.batch}, {args.device}")
    rows, first, failures = [], None, []
    for setting, spec in _progress(list(specs.items())):
        try:
            m = measure_model_step(spec.model, args.batch, args.repeats, args.device)
        except (RuntimeError, TimeoutError, ValueError) as error:
            rows.append({"setting": setting, "seconds": None, "note": _failure(error)})
            failures.append(f"{setting}: {rows[-1]['note']}")
            print(f"{setting:>8s}  {rows[-1]['note']}")
            continue
        peak = m.get("peak_rss_bytes", m.get("peak_cuda_bytes"))
        rows.append({"setting": setting, **m})
        first = first or rows[-1]
        print(f"{setting:>8s} {m['seconds']:8.3f} s/step  peak {format_bytes(peak) if peak else '–':>10s}  "
              f"time ÷ {first['setting']} {_ratio(m['seconds'], first['seconds'])}")
    if args.json:
        _write(args.json, {"provenance": _provenance(args.device), "results": rows})
    return _status("model", failures)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _check_args(args)
    if args.command == "memory":
        return _main_memory(args)
    if args.command == "model":
        return _main_model(args)
    settings, peer_settings = _settings(args, args.variants), _settings(args, PEER_VARIANTS) if args.peers else []
    what = "attention layer (projections included)" if args.layer else "attention"
    print(f"{what} forward+backward, causal, d_model {args.d_model}, {args.heads} heads, chunk {args.chunk}, "
          f"{args.tokens} tokens per step, fastest of {args.repeats} steps on {args.device}")
    results = run(settings, args.full_cap)
    print(format_table(results, reference="lsh-2"))
    for claim, met, evidence in attention_targets(results):
        print(f"[{'MET' if met else 'MISSED'}] {claim}: {evidence}")
    peers: list[Measurement] = []
    if args.peers:
        print("\nwhole LSH self-attention modules (projections included), n_hashes 2:")
        peers = run(peer_settings, args.full_cap)
        print(format_table(peers, reference="ours-module"))
        for claim, met, evidence in peers_targets(peers):
            print(f"[{'MET' if met else 'MISSED'}] {claim}: {evidence}")
    if args.json:
        records = [{**asdict(m.setting), "seconds": m.seconds, "peak_bytes": m.peak_bytes, "note": m.note}
                   for m in results + peers]
        _write(args.json, {"provenance": _provenance(args.device), "results": records})
    return _status("attention", [f"{m.setting.variant} L={m.setting.length}: {m.note}" for m in results + peers
                                 if m.seconds is None and not m.note.startswith("skipped")])


if __name__ == "__main__":
    raise SystemExit(main())
