"""What a model costs: bytes of the tensors it holds, inference time, and the memory an
inference takes beyond them (measured, not estimated).

- `model_nbytes`: every parameter and buffer, CSR values and index arrays included,
  each storage counted once.
- `time_inference`: median wall time of ``model(x)`` over repeats after warm-up runs,
  synchronising CUDA around each (`inference_times`: every run's time).
- `peak_inference_memory`: on CUDA, ``torch.cuda.max_memory_allocated`` above what was
  allocated before the call (exact for torch's allocator). On CPU, the peak resident set
  size of the process during the call above its size before: the kernel's high-water
  mark (VmHWM), reset just before the call through /proc/self/clear_refs where Linux
  allows it, else a thread sampling the RSS every 0.2 ms. It counts MKL's scratch memory,
  which torch's allocator does not see, but not memory that malloc kept resident from an
  earlier call and hands out again (`fixed_mmap_threshold` makes large blocks go back to
  the system on free, so that they are counted each time). The peak of Python allocations
  (tracemalloc) is reported beside it.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
import tracemalloc
from dataclasses import dataclass

import torch
from torch import nn

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def model_nbytes(model: nn.Module) -> int:
    """Bytes of the tensors `model` holds (parameters and buffers; CSR values and indices)."""
    seen, total = set(), 0
    for t in [*model.parameters(), *model.buffers()]:
        if t.layout == torch.sparse_csr:
            total += sum(p.numel() * p.element_size() for p in (t.crow_indices(), t.col_indices(), t.values()))
            continue
        key = (t.untyped_storage().data_ptr(), t.device)
        if key not in seen:
            seen.add(key)
            total += t.untyped_storage().nbytes()
    return int(total)


def rss_bytes() -> int:
    """Resident set size of this process, from /proc (Linux); 0 where unavailable."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        return 0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def inference_times(model: nn.Module, x: torch.Tensor, repeats: int = 5, warmup: int = 1) -> list[float]:
    """Seconds of each of `repeats` runs of ``model(x)`` after `warmup` runs. `x` must
    already be on the model's device."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    model.eval()
    for _ in range(warmup):
        model(x)
    _sync(x.device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(x)
        _sync(x.device)
        times.append(time.perf_counter() - start)
    return times


def time_inference(model: nn.Module, x: torch.Tensor, repeats: int = 5, warmup: int = 1) -> float:
    """Median seconds of ``model(x)`` over `repeats` runs after `warmup` runs."""
    return statistics.median(inference_times(model, x, repeats, warmup))


@dataclass(frozen=True)
class PeakMemory:
    """Memory one inference takes above what was in use before it, in bytes.
    ``rss``: peak resident set size; ``python``: peak of Python allocations (tracemalloc);
    ``cuda``: torch's peak CUDA allocation (None on CPU); ``method``: how `rss` was taken,
    "hwm" (kernel high-water mark) or "sampled"."""

    rss: int
    python: int
    cuda: int | None = None
    method: str = "hwm"


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"no {field} in /proc/self/status")


def _reset_peak_rss() -> bool:
    """Set the kernel's peak-RSS mark to the current RSS (Linux >= 4.0); False if not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status_kb("VmHWM") <= _status_kb("VmRSS") + _PAGE
    except OSError:
        return False


def fixed_mmap_threshold(nbytes: int = 128 * 1024) -> bool:
    """Make glibc serve blocks of `nbytes` and more by mmap and return them on free
    (no dynamic threshold), so that the RSS shows every large temporary anew. Affects
    the whole process; for benchmarks. False where there is no glibc."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_mmap_threshold = -3
        return bool(libc.mallopt(m_mmap_threshold, int(nbytes)))
    except (OSError, AttributeError):
        return False


@torch.no_grad()
def peak_inference_memory(model: nn.Module, x: torch.Tensor, interval_s: float = 2e-4) -> PeakMemory:
    """Peak extra memory of one ``model(x)`` call (see the module docstring)."""
    model.eval()
    cuda = None
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
        torch.cuda.reset_peak_memory_stats(x.device)
        base = torch.cuda.memory_allocated(x.device)
        out = model(x)
        torch.cuda.synchronize(x.device)
        cuda = int(torch.cuda.max_memory_allocated(x.device) - base)
        del out
    tracemalloc.start()
    if _reset_peak_rss():
        before = rss_bytes()
        try:
            out = model(x)
            _sync(x.device)
            rss = _status_kb("VmHWM") - before
        finally:
            _, py_peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        del out
        return PeakMemory(rss=max(int(rss), 0), python=int(py_peak), cuda=cuda, method="hwm")
    before = rss_bytes()
    peak = [before]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_bytes())
            time.sleep(interval_s)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        out = model(x)
        _sync(x.device)
        peak[0] = max(peak[0], rss_bytes())
    finally:
        done.set()
        sampler.join()
        _, py_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    del out
    return PeakMemory(rss=int(peak[0] - before), python=int(py_peak), cuda=cuda, method="sampled")
