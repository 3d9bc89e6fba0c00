"""Honest memory measurement: what autograd saves, the CUDA allocator's peak, a fresh process's peak RSS.

The paper's three memory problems (§1) are all about memory that training keeps alive: activations
saved for backprop in every layer, the feed-forward's d_ff-wide activations, and the L×L attention
matrices. The formulas live in :mod:`reformer_lab.measure.complexity`; this module measures the same things:

- :func:`saved_tensor_bytes` counts the bytes autograd saves for the backward pass (the quantity
  reversible layers and chunking shrink, §3), exactly and on any device, including CPU.
- :func:`peak_cuda_bytes` reads the CUDA caching allocator's peak during one call.
- :func:`peak_rss_bytes` runs a call in a fresh process and reports how far its resident memory rose,
  so memory left over in the notebook's own process does not blur the number.
"""

from __future__ import annotations

import multiprocessing
import pickle
import sys
import traceback
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from reformer_lab.reversible import STACK_VARIANTS, ReversibleSequence
from reformer_lab.validation import as_float, positive_float, positive_int

__all__ = [
    "SavedGroup",
    "SavedTensors",
    "PeakMemory",
    "saved_tensor_bytes",
    "peak_cuda_bytes",
    "peak_rss_bytes",
    "format_bytes",
    "StepMemory",
    "check_callable",
    "stack_options",
    "torch_threads",
    "step_memory",
    "training_step",
]

_StorageKey = tuple


# --------------------------------------------------------------------------------------------------
# Formatting


_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def format_bytes(n: float) -> str:
    """Format a byte count in binary units with three significant figures.

    ``format_bytes(16 * 2**30) == "16.0 GiB"``, ``format_bytes(512 * 2**10) == "512 KiB"``,
    ``format_bytes(1536) == "1.50 KiB"``, ``format_bytes(100) == "100 B"``. Negative counts (a
    measured delta can be negative) keep their sign.
    """
    value = as_float("bytes", n)
    sign, value = ("-" if value < 0 else ""), abs(value)
    unit, last = 0, len(_BINARY_UNITS) - 1
    while unit < last and value >= 1024:
        value, unit = value / 1024, unit + 1
    text = _three_figures(value, unit)
    if float(text) >= 1024 and unit < last:  # e.g. 1023.96 KiB would print as "1024 KiB": promote
        value, unit = value / 1024, unit + 1
        text = _three_figures(value, unit)
    return f"{sign}{text} {_BINARY_UNITS[unit]}"


def _three_figures(value: float, unit: int) -> str:
    if unit == 0:
        return str(round(value))
    return f"{value:.{2 if value < 9.995 else 1 if value < 99.95 else 0}f}"


# --------------------------------------------------------------------------------------------------
# Tensors saved for backward


@dataclass(frozen=True)
class SavedGroup:
    """Saved storages that share a shape, dtype and device (one row of :meth:`SavedTensors.table`).

    ``shape`` is the shape of the first tensor saved from each storage; the bytes are whole storages.
    """

    shape: tuple[int, ...]
    dtype: str
    device: str
    count: int
    total_bytes: int


@dataclass(frozen=True)
class SavedTensors:
    """What :func:`saved_tensor_bytes` found.

    Attributes:
        total_bytes: bytes of the distinct storages that autograd saved for backward and still holds
            when ``fn`` returns (each storage counted once, whole, however many views of it were saved).
        n_storages: number of those distinct storages.
        n_saved: number of saved-tensor slots still held (a storage saved twice counts twice here).
        peak_bytes: the highest value ``total_bytes`` reached during the call; larger than
            ``total_bytes`` when ``fn`` itself freed a graph (for example by calling ``backward``).
        groups: ``total_bytes`` broken down by shape, dtype and device, largest first.
        output: whatever ``fn`` returned; keep it to run backward or inspect it.
    """

    total_bytes: int
    n_storages: int
    n_saved: int
    peak_bytes: int
    groups: tuple[SavedGroup, ...]
    output: Any = field(default=None, repr=False, compare=False)

    def table(self) -> str:
        """A plain-text table of :attr:`groups`, for printing in a lesson."""
        row = _table_row
        rows = [row("shape", "dtype", "device", "count", "bytes")]
        for g in self.groups:
            shape = "[" + ", ".join(str(s) for s in g.shape) + "]"
            rows.append(row(shape, g.dtype, g.device, g.count, format_bytes(g.total_bytes)))
        rows.append(row("total", "", "", self.n_storages, format_bytes(self.total_bytes)))
        return "\n".join(rows)

    def __str__(self) -> str:
        return (f"saved for backward: {format_bytes(self.total_bytes)} in {self.n_storages} storages "
                f"(peak during the call {format_bytes(self.peak_bytes)})")


def _table_row(shape: str, dtype: str, device: str, count: Any, size: str) -> str:
    return f"{shape:<24} {dtype:<10} {device:<8} {count:>5} {size:>10}"


def _nbytes_without_storage(tensor: torch.Tensor) -> int:
    """Bytes of a tensor that has no single storage (sparse COO / CSR, nested): its parts, or dense size."""
    if tensor.layout == torch.sparse_coo:
        return tensor._indices().nbytes + tensor._values().nbytes
    if tensor.layout == torch.sparse_csr:
        return tensor.crow_indices().nbytes + tensor.col_indices().nbytes + tensor.values().nbytes
    return tensor.numel() * tensor.element_size()


def _storage_key(tensor: torch.Tensor) -> tuple[_StorageKey, int]:
    """Identify the memory behind ``tensor`` and its size in bytes.

    Strided tensors are keyed on (device, storage address), so every view of one storage, and two
    storages over the same memory, count once; the size is the whole storage, which is what stays
    allocated. Storages without an address (meta tensors, empty storages) are keyed on the storage
    object itself; tensors without a single storage (sparse) are marked ``"tensor"`` and counted per
    saved tensor.
    """
    try:
        storage = tensor.untyped_storage()
    except (NotImplementedError, RuntimeError):
        return ("tensor", id(tensor)), _nbytes_without_storage(tensor)
    address = storage.data_ptr()
    if address == 0:
        return ("storage", storage._cdata), storage.nbytes()
    return (tensor.device.type, tensor.device.index, address), storage.nbytes()


def _ignored_tensors(items: Any) -> Iterable[torch.Tensor]:
    """Expand ``ignore=``: a tensor, a module (its parameters and buffers), or an iterable of those."""
    if items is None:
        return
    if isinstance(items, torch.Tensor):
        yield items
    elif isinstance(items, nn.Module):
        yield from items.parameters()
        yield from items.buffers()
    elif isinstance(items, Iterable) and not isinstance(items, str | bytes):
        for item in items:
            yield from _ignored_tensors(item)
    else:
        raise TypeError(f"ignore= takes tensors, modules or an iterable of them, got {type(items).__name__}")


class _Packed:
    """What the pack hook hands to autograd: a detached alias (no grad_fn, so no reference cycle)."""

    __slots__ = ("tensor", "__weakref__")

    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = tensor


class _Entry:
    __slots__ = ("n_saved", "nbytes", "shape", "dtype", "device")

    def __init__(self, tensor: torch.Tensor, nbytes: int) -> None:
        self.n_saved, self.nbytes = 0, nbytes
        self.shape, self.dtype, self.device = tuple(tensor.shape), tensor.dtype, tensor.device


class _SavedTensorTracker:
    """Counts live saved storages: +bytes when a storage is first saved, −bytes when its last slot dies."""

    def __init__(self, ignored: set[_StorageKey]) -> None:
        self.ignored = ignored
        self.live: dict[_StorageKey, _Entry] = {}
        self.refs: set[weakref.ref] = set()
        self.current = 0
        self.peak = 0

    def pack(self, tensor: torch.Tensor) -> Any:
        key, nbytes = _storage_key(tensor)
        if key in self.ignored:
            return tensor
        packed = _Packed(tensor.detach())
        if key[0] == "tensor":  # no storage to share: key on the alias we keep alive, not a temporary
            key = ("tensor", id(packed.tensor))
        entry = self.live.get(key)
        if entry is None:
            entry = self.live[key] = _Entry(tensor, nbytes)
            self.current += nbytes
            self.peak = max(self.peak, self.current)
        entry.n_saved += 1
        self.refs.add(weakref.ref(packed, partial(self._release, key)))
        return packed

    @staticmethod
    def unpack(packed: Any) -> torch.Tensor:
        return packed.tensor if isinstance(packed, _Packed) else packed

    def _release(self, key: _StorageKey, ref: weakref.ref) -> None:
        self.refs.discard(ref)
        entry = self.live[key]
        entry.n_saved -= 1
        if entry.n_saved == 0:
            del self.live[key]
            self.current -= entry.nbytes

    def result(self, output: Any) -> SavedTensors:
        entries = list(self.live.values())  # a snapshot: a garbage collection may free a graph meanwhile
        groups: dict[tuple, list[int]] = {}
        for entry in entries:
            dtype = str(entry.dtype).removeprefix("torch.")
            row = groups.setdefault((entry.shape, dtype, str(entry.device)), [0, 0])
            row[0] += 1
            row[1] += entry.nbytes
        ordered = sorted(groups.items(), key=lambda item: (-item[1][1], item[0]))
        return SavedTensors(
            total_bytes=sum(entry.nbytes for entry in entries),
            n_storages=len(entries),
            n_saved=sum(entry.n_saved for entry in entries),
            peak_bytes=self.peak,
            groups=tuple(SavedGroup(shape, dtype, device, count, nbytes)
                         for (shape, dtype, device), (count, nbytes) in ordered),
            output=output,
        )

    def close(self) -> None:
        """Stop counting: drop the weak references so later frees (e.g. a backward) call nothing here."""
        self.refs.clear()


def check_callable(fn: Any, who: str) -> None:
    """``TypeError`` unless ``fn`` is callable; ``who`` (the function that needs it) opens the message."""
    if not callable(fn):
        shown = repr(fn)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise TypeError(f"{who} needs a callable fn, got {type(fn).__name__}: {shown}")


def saved_tensor_bytes(fn: Callable[..., Any], *args: Any, ignore: Any = None, **kwargs: Any) -> SavedTensors:
    """Run ``fn(*args, **kwargs)`` and count the bytes autograd saves for the backward pass.

    This is the activation memory of paper §1 and §3 (Table 3's memory column): what a training step
    must keep between forward and backward. It is exact and device-independent; it does not count
    temporaries that are freed during the forward pass, nor parameters, nor the output itself unless
    an op saved it.

    Every tensor that autograd saves while ``fn`` runs passes through
    ``torch.autograd.graph.saved_tensors_hooks``. Memory is counted per underlying storage, keyed on
    (device, ``untyped_storage().data_ptr()``), so views of one storage count once, at the size of the
    whole storage (what stays allocated). Only storages still held by a live autograd graph when ``fn``
    returns are in ``total_bytes``; ``peak_bytes`` is the most held at any moment during the call.

    Parameters are not activations: when ``fn`` is an ``nn.Module`` (or a bound method of one), the
    storages of its parameters and buffers are ignored. ``ignore`` takes more tensors or modules (or an
    iterable of them) whose storages are ignored too, e.g. ``ignore=model`` when ``fn`` is a lambda.

    Not seen: tensors a custom ``autograd.Function`` keeps as ``ctx`` attributes instead of
    ``ctx.save_for_backward``, ops run in other threads, and regions under another pair of
    saved-tensor hooks (non-reentrant checkpointing), which take precedence while active.

    The hooks are removed when ``fn`` returns or raises; an exception from ``fn`` propagates unchanged.

    Example: ``saved_tensor_bytes(nn.Linear(d, e), x).total_bytes == x.numel() * 4`` for float32 ``x``.
    """
    check_callable(fn, "saved_tensor_bytes")
    owner = fn if isinstance(fn, nn.Module) else getattr(fn, "__self__", None)
    ignored_tensors = list(_ignored_tensors(ignore))
    if isinstance(owner, nn.Module):
        ignored_tensors += list(_ignored_tensors(owner))
    tracker = _SavedTensorTracker({_storage_key(t)[0] for t in ignored_tensors})
    try:
        with torch.autograd.graph.saved_tensors_hooks(tracker.pack, tracker.unpack):
            output = fn(*args, **kwargs)
        return tracker.result(output)
    finally:
        tracker.close()


# --------------------------------------------------------------------------------------------------
# Peaks: CUDA allocator and process RSS


@dataclass(frozen=True)
class PeakMemory:
    """Peak memory of one call, measured by :func:`peak_cuda_bytes` or :func:`peak_rss_bytes`.

    Attributes:
        peak_bytes: the highest memory in use during the call (allocator bytes for CUDA, resident set
            size for RSS).
        baseline_bytes: memory in use just before the call (inputs, imports, earlier work).
        delta_bytes: ``peak_bytes - baseline_bytes``, what the call itself added at its peak.
        source: how it was measured, e.g. ``"cuda:0 max_memory_allocated"`` or ``"rss VmHWM (reset)"``.
        output: what ``fn`` returned (for RSS, a copy sent back from the child process).
    """

    peak_bytes: int
    baseline_bytes: int
    delta_bytes: int
    source: str
    output: Any = field(default=None, repr=False, compare=False)

    def __str__(self) -> str:
        return (f"peak {format_bytes(self.delta_bytes)} above a baseline of "
                f"{format_bytes(self.baseline_bytes)} ({self.source})")


def _cuda_device(device: Any) -> torch.device:
    if device is None:
        return torch.device("cuda", torch.cuda.current_device())
    resolved = torch.device("cuda", device) if isinstance(device, int) else torch.device(device)
    if resolved.type != "cuda":
        raise ValueError(f"peak_cuda_bytes measures a CUDA device, got device={device!r}")
    if resolved.index is None:
        resolved = torch.device("cuda", torch.cuda.current_device())
    return resolved


def peak_cuda_bytes(fn: Callable[..., Any], *args: Any, device: Any = None, **kwargs: Any) -> PeakMemory:
    """Run ``fn(*args, **kwargs)`` and report the CUDA caching allocator's peak during the call.

    Synchronises, resets the peak statistics, records ``memory_allocated`` as the baseline, runs ``fn``,
    synchronises again and reads ``max_memory_allocated``. Allocated bytes count live tensors (not the
    allocator's reserved cache), so the delta is the call's own high-water mark above what already
    existed. Library workspaces (cuBLAS, cuDNN) allocated on first use count too: warm up first.
    ``device`` (index, ``"cuda:1"`` or ``torch.device``) defaults to the current CUDA device.

    Raises ``RuntimeError`` when CUDA is not available; use :func:`peak_rss_bytes` on a CPU.
    """
    check_callable(fn, "peak_cuda_bytes")
    if not torch.cuda.is_available():
        raise RuntimeError("CUDA is not available on this machine; use peak_rss_bytes for CPU")
    dev = _cuda_device(device)
    torch.cuda.synchronize(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    baseline = torch.cuda.memory_allocated(dev)
    output = fn(*args, **kwargs)
    torch.cuda.synchronize(dev)
    peak = torch.cuda.max_memory_allocated(dev)
    return PeakMemory(peak, baseline, peak - baseline, f"{dev} max_memory_allocated", output)


def _status_kib(field_name: str) -> int | None:
    """A ``kB`` field of /proc/self/status (``VmRSS``, ``VmHWM``), or None where there is none."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_high_water_mark() -> bool:
    """Reset the kernel's peak-RSS record (VmHWM) to the current RSS (Linux ≥ 4.0); False if refused."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return _status_kib("VmHWM") is not None and _status_kib("VmRSS") is not None


def _max_rss_bytes() -> int:
    import resource

    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024  # bytes on macOS, KiB on Linux


def _rss_child(conn: Any, payload: bytes) -> None:
    """Child side of :func:`peak_rss_bytes`: unpickle, measure one call, send the numbers and output back."""
    try:
        fn, args, kwargs = pickle.loads(payload)
        if _reset_high_water_mark():
            baseline, source = _status_kib("VmRSS") * 1024, "rss VmHWM (reset before the call)"
            output = fn(*args, **kwargs)
            peak = _status_kib("VmHWM") * 1024
        else:  # ru_maxrss is a high-water mark since start: report the growth of that mark
            baseline, source = _max_rss_bytes(), "rss ru_maxrss (growth of the high-water mark)"
            output = fn(*args, **kwargs)
            peak = _max_rss_bytes()
        conn.send(("ok", peak, baseline, source, output))
    except BaseException as error:  # report everything, including SystemExit, to the parent
        conn.send(("error", type(error).__qualname__, str(error), traceback.format_exc()))
    finally:
        conn.close()


def _pickled_call(fn: Callable[..., Any], args: tuple, kwargs: dict) -> bytes:
    hint = ("peak_rss_bytes runs fn in a fresh process, so fn and its arguments must be picklable: use a "
            "module-level function (e.g. from reformer_lab.measure.workloads), not a lambda, closure or local "
            "function")
    main = sys.modules.get("__main__")
    if getattr(fn, "__module__", None) == "__main__" and not hasattr(main, "__file__"):
        raise TypeError(f"{hint}; {getattr(fn, '__qualname__', fn)!r} is defined in an interactive session, "
                        "which the new process cannot import")
    try:
        return pickle.dumps((fn, args, kwargs))
    except (pickle.PicklingError, AttributeError, TypeError) as error:
        raise TypeError(f"{hint}; pickling failed: {error}") from error


def peak_rss_bytes(fn: Callable[..., Any], *args: Any, timeout: float = 120.0, **kwargs: Any) -> PeakMemory:
    """Run ``fn(*args, **kwargs)`` in a fresh process and report how far its resident memory rose.

    A ``spawn`` child starts a new interpreter, so memory held or fragmented by earlier work in this
    process does not count. In the child, after imports and after unpickling the arguments, the baseline
    is taken; then ``fn`` runs; ``delta_bytes`` is the peak resident set size during the call minus that
    baseline. On Linux the kernel's peak record is reset first (``/proc/self/clear_refs``), so the peak
    is exact to a page even for memory freed before ``fn`` returns. Where that reset is refused the
    child falls back to ``ru_maxrss``, a high-water mark since process start: the delta is then the
    growth of that mark, which undercounts when imports already reached higher (``source`` says which).

    Untouched pages are not resident: ``np.empty`` or ``torch.empty`` of 1 GB that is never written
    adds almost nothing. Pass small arguments (sizes, seeds) and build big data inside ``fn``.

    ``fn``'s return value comes back as ``output`` (keep it small: a number or a dict). ``timeout``
    (seconds) covers the child's start-up (importing torch takes a few seconds); the child is killed
    when it runs out.

    Raises:
        TypeError: ``fn`` is not callable, or it or its arguments cannot be pickled (a lambda, a closure,
            a function defined in a notebook).
        RuntimeError: ``fn`` raised in the child (the message carries the child's exception type, message
            and traceback), or the child died without reporting (e.g. killed for memory).
        TimeoutError: the child did not finish within ``timeout`` seconds.
    """
    check_callable(fn, "peak_rss_bytes")
    timeout = positive_float("timeout", timeout)
    payload = _pickled_call(fn, args, kwargs)
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_rss_child, args=(sender, payload), name="peak_rss_bytes")
    child.start()
    sender.close()
    try:
        if not receiver.poll(timeout):
            child.kill()
            raise TimeoutError(f"peak_rss_bytes: {_name(fn)} did not finish within {timeout} s "
                               "in the child process")
        try:
            message = receiver.recv()
        except EOFError:
            child.join(5)
            raise RuntimeError(f"peak_rss_bytes: the child process running {_name(fn)} died without "
                               f"reporting ({_exit_reason(child.exitcode)})") from None
    finally:
        receiver.close()
        child.join(5)
        if child.is_alive():
            child.kill()
            child.join()
    if message[0] == "error":
        _, kind, text, child_traceback = message
        raise RuntimeError(f"{_name(fn)} raised {kind} in the child process: {text}\n\n"
                           f"Child traceback:\n{child_traceback}")
    _, peak, baseline, source, output = message
    return PeakMemory(peak, baseline, peak - baseline, source, output)


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        hint = "; SIGKILL often means the out-of-memory killer" if code == -9 else ""
        return f"killed by signal {-code}{hint}"
    return f"exit code {code}; its error, if any, is on stderr above"


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the body with ``n`` torch threads (None: the current count) and restore the count after.

    On a shared machine a multi-threaded step waits for its slowest thread, so fewer threads make times
    steadier; tiny tensors run faster on one.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(before if n is None else positive_int("threads", n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


# --------------------------------------------------------------------------------------------------
# Memory of one training step


@dataclass(frozen=True)
class StepMemory:
    """Memory of one training step of a stack, measured with :func:`reformer_lab.measure.memory.saved_tensor_bytes`.

    Attributes:
        saved_after_forward: bytes autograd holds between the forward and the backward pass (what
            Table 3's memory column counts for the stored activations).
        saved_peak: the most saved bytes alive at any moment of forward + backward; for a reversible
            stack this is reached in the backward recomputation of one block (its attention, or one
            feed-forward chunk).
        cuda_peak: peak CUDA bytes allocated during one step above what existed before (CUDA only).
    """

    saved_after_forward: int
    saved_peak: int
    cuda_peak: int | None = None


def stack_options(variant: str) -> tuple[bool, bool]:
    """``(reversible, chunked feed-forward)`` of a :data:`~reformer_lab.reversible.STACK_VARIANTS` entry.

    The one check of a stack variant in the package: any other value is a ``ValueError`` naming the three.
    """
    if variant not in STACK_VARIANTS:
        raise ValueError(f"unknown stack variant {variant!r}; choose from {', '.join(STACK_VARIANTS)}")
    return variant != "ordinary", variant == "reversible+chunked"


def training_step(stack: ReversibleSequence, x: Tensor, grad: Tensor, reversible: bool) -> None:
    """Forward and backward through ``stack`` with upstream gradient ``grad`` for both halves (no loss graph)."""
    y1, y2 = stack(x, reversible=reversible)
    torch.autograd.backward((y1, y2), (grad, grad))


def step_memory(stack: ReversibleSequence, x: Tensor, variant: str) -> StepMemory:
    """Saved-for-backward bytes of one step of ``stack`` on input ``x`` run as ``variant``.

    ``variant`` is one of :data:`STACK_VARIANTS`; "reversible+chunked" uses the stack's ``ff_chunks``
    (set it > 1), the other two run with one chunk. Parameters are not counted. On CUDA the peak
    allocated bytes of one step are measured too.
    """
    reversible, chunked_ff = stack_options(variant)
    saved_chunks = stack.ff_chunks
    stack.ff_chunks = saved_chunks if chunked_ff else 1
    try:
        grad = torch.randn_like(x)
        forward = saved_tensor_bytes(lambda: stack(x, reversible=reversible), ignore=stack)
        after = forward.total_bytes
        del forward
        step = saved_tensor_bytes(training_step, stack, x, grad, reversible, ignore=stack)
        cuda = None
        if x.device.type == "cuda":
            cuda = peak_cuda_bytes(training_step, stack, x, grad, reversible).delta_bytes
        stack.zero_grad(set_to_none=True)
        return StepMemory(after, step.peak_bytes, cuda)
    finally:
        stack.ff_chunks = saved_chunks

