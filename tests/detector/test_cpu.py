"""CPU quota -> torch threads (never more than the process may use), and bf16 detection."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hydrophone_worker.detector import cpu
from threadpoolctl import threadpool_info


@pytest.mark.parametrize(
    ("text", "cpus"),
    [("max 100000", None), ("100000 100000", 1.0), ("150000 100000", 1.5), ("50000 100000\n", 0.5)],
)
def test_quota_cpus_reads_cgroup_v2_cpu_max(text, cpus):
    assert cpu.quota_cpus(text) == cpus


@pytest.mark.parametrize(
    ("quota", "affinity", "threads"),
    [(None, 8, 8), (1.0, 64, 1), (1.5, 64, 1), (0.5, 64, 1), (4.0, 2, 2), (2.0, 16, 2)],
)
def test_usable_threads_never_exceed_the_quota_or_the_affinity(quota, affinity, threads):
    assert cpu.usable_threads(quota, affinity) == threads


def _cgroup_tree(tmp_path: Path, limits: dict[str, str]) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    for relative, text in limits.items():
        directory = root / relative
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "cpu.max").write_text(text)
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text("0::/kubepods/pod1/worker\n")
    return root, proc


def test_the_tightest_limit_up_the_cgroup_tree_wins(tmp_path: Path):
    root, proc = _cgroup_tree(
        tmp_path,
        {"": "max 100000", "kubepods/pod1": "100000 100000", "kubepods/pod1/worker": "300000 100000"},
    )
    assert cpu.cgroup_quota(root, proc) == 1.0  # the pod's 1-CPU limit, not the container's 3


def test_no_cgroup_v2_means_no_quota(tmp_path: Path):
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text("4:memory:/x\n1:cpu:/\n")  # cgroup v1 only
    assert cpu.cgroup_quota(tmp_path, proc) is None
    assert cpu.cgroup_quota(tmp_path, tmp_path / "missing") is None
    root, proc = _cgroup_tree(tmp_path, {"kubepods": "max 100000"})
    assert cpu.cgroup_quota(root, proc) is None


def test_configure_engine_threads_uses_what_is_available_and_refuses_more():
    available = cpu.available_threads()
    assert 1 <= available <= len(os.sched_getaffinity(0))
    before = torch.get_num_threads()
    try:
        assert cpu.configure_engine_threads() == available == torch.get_num_threads()
        assert cpu.configure_engine_threads(1) == 1 == torch.get_num_threads()
        with pytest.raises(ValueError, match=rf"threads {available + 1} is more than the {available} CPU"):
            cpu.configure_engine_threads(available + 1)
        with pytest.raises(ValueError, match="threads 0"):
            cpu.configure_engine_threads(0)
    finally:
        torch.set_num_threads(before)


def test_numpys_blas_gets_the_engine_thread_count_too():
    # The frontend's resampler runs in numpy's BLAS; its own threads would spin beside the engine's.
    def blas_threads() -> set[int]:
        return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}

    before = torch.get_num_threads()
    try:
        cpu.configure_engine_threads(1)
        assert blas_threads() == {1}
        cpu.configure_engine_threads()
        assert blas_threads() == {cpu.available_threads()}
    finally:
        torch.set_num_threads(before)


def test_bf16_support_is_read_from_the_cpu_flags():
    assert cpu.supports_bf16("processor : 0\nflags : fpu sse avx512f avx512_bf16 amx_tile\n")
    assert cpu.supports_bf16("flags\t\t: fpu amx_bf16\n")
    assert not cpu.supports_bf16("flags : fpu sse avx2 avx512f\n")
    assert cpu.cpu_supports_bf16() == ("avx512_bf16" in Path("/proc/cpuinfo").read_text().split())
