"""Where the networks run on the CPU: torch, or OpenVINO's CPU plugin when it is installed.

``runtime="auto"`` (the default everywhere) picks OpenVINO for the any-painting network on the CPU when
the ``openvino`` package is there (``pip install "depthstyle[cpu]"``), torch otherwise; on a GPU it is
always torch. Both give the same pictures (within 1/255); OpenVINO is faster on the CPU
(bench/results/cpu_runtime.md).
"""

from .choice import RUNTIMES, chosen_runtime, openvino_problem

__all__ = ["RUNTIMES", "chosen_runtime", "openvino_problem"]
