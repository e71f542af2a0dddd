"""How many CPUs this process may really use, and whether they do bfloat16 in hardware.

Upstream ran torch with one thread per *host* core under a 1-CPU Kubernetes limit and lost 30x to
throttling. The quota is read from cgroup v2 `cpu.max` (every level up the tree: the tightest wins), else
the scheduler affinity; torch never gets more intra-op threads than that. Torch-free: the fp32 worker with
an ONNX export runs without importing torch (~500 MiB), so the count is kept here and handed to torch only
if and when a torch engine is built (apply_torch_threads).
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

from threadpoolctl import threadpool_limits

CGROUP_ROOT = Path("/sys/fs/cgroup")
# What configure_engine_threads chose; None until it ran (tests and benchmarks may set torch's directly).
_configured: int | None = None


def quota_cpus(cpu_max: str) -> float | None:
    """`cpu.max` text ("max 100000" or "150000 100000") -> CPUs allowed, None when unlimited."""
    fields = cpu_max.split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    quota, period = int(fields[0]), int(fields[1])
    return quota / period if period > 0 else None


def cgroup_v2_path(proc_self_cgroup: str) -> str | None:
    """The unified-hierarchy path from /proc/self/cgroup (the `0::/path` line), if any."""
    for line in proc_self_cgroup.splitlines():
        if line.startswith("0::"):
            return line[3:].strip() or "/"
    return None


def cgroup_quota(
    root: Path = CGROUP_ROOT, proc_self_cgroup: Path = Path("/proc/self/cgroup")
) -> float | None:
    """The tightest cpu.max quota from this process's cgroup up to the root; None when unlimited/unknown."""
    try:
        relative = cgroup_v2_path(proc_self_cgroup.read_text())
    except OSError:
        return None
    if relative is None:
        return None
    limits = []
    directory = root / relative.lstrip("/")
    for level in (directory, *directory.parents):
        try:
            limit = quota_cpus((level / "cpu.max").read_text())
        except OSError:
            limit = None
        if limit is not None:
            limits.append(limit)
        if level == root:
            break
    return min(limits) if limits else None


def usable_threads(quota: float | None, affinity: int) -> int:
    """Whole CPUs we may keep busy: floor of the quota (never above it, at least 1), capped by affinity."""
    if quota is None:
        return max(affinity, 1)
    return max(1, min(affinity, math.floor(quota)))


def available_threads() -> int:
    return usable_threads(cgroup_quota(), len(os.sched_getaffinity(0)))


def configure_engine_threads(requested: int | None = None) -> int:
    """The engine's intra-op threads: `requested` or all usable CPUs; refuse more than usable."""
    limit = available_threads()
    if requested is not None and not 1 <= requested <= limit:
        raise ValueError(
            f"threads {requested} is more than the {limit} CPU(s) this process may use (cgroup cpu.max / "
            f"affinity); give 1 to {limit}, or leave it unset to use {limit}"
        )
    global _configured
    _configured = threads = requested or limit
    # The frontend's resampler is BLAS products: OpenBLAS would start a thread per host core, and their
    # spin-waiting ate 0.11 CPU-s per clip beside a one-thread bf16 engine (+29%).
    threadpool_limits(limits=threads, user_api="blas")
    if "torch" in sys.modules:  # else apply_torch_threads hands it over when a torch engine is built
        apply_torch_threads()
    return threads


def apply_torch_threads() -> None:
    """Give torch the configured thread count (torch's own default is every host core)."""
    import torch

    if _configured is not None:
        torch.set_num_threads(_configured)


def engine_threads() -> int:
    """Intra-op threads for the detector's engine: the configured count, else torch's, else all usable."""
    if _configured is not None:
        return _configured
    torch = sys.modules.get("torch")
    return int(torch.get_num_threads()) if torch is not None else available_threads()


def cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The feature flags /proc/cpuinfo lists (x86 `flags` lines)."""
    lines = (line for line in cpuinfo.splitlines() if line.startswith("flags"))
    return frozenset(flag for line in lines for flag in line.split())


def read_cpu_flags() -> frozenset[str]:
    try:
        return cpu_flags(Path("/proc/cpuinfo").read_text())
    except OSError:
        return frozenset()


def supports_bf16(cpuinfo: str) -> bool:
    """True when /proc/cpuinfo lists a bfloat16 dot-product extension (AVX512-BF16 or AMX-BF16)."""
    return bool(cpu_flags(cpuinfo) & {"avx512_bf16", "amx_bf16"})


def cpu_supports_bf16() -> bool:
    try:
        return supports_bf16(Path("/proc/cpuinfo").read_text())
    except OSError:
        return False
