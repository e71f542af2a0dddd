"""The configured thread count reaches the engine whether or not torch is imported yet."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import sys
    from hydrophone_worker.detector import cpu
    assert cpu.configure_engine_threads(1) == 1
    assert "torch" not in sys.modules  # configuring the count does not import torch
    assert cpu.engine_threads() == 1  # what ONNX Runtime gets
    import torch
    torch.set_num_threads(2)  # torch's default is every host core: building a torch engine hands it over
    from hydrophone_worker.detector.demo_network import DemoCNN
    from hydrophone_worker.detector.fast import fast_forward
    fast_forward(DemoCNN().eval(), "fp32")
    print(torch.get_num_threads())
    """
)


def test_the_configured_count_is_kept_without_torch_and_handed_to_torch_when_it_is_used():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1"]
