"""Compute model: how long a local training round takes on a device profile.

A round's simulated duration is the FLOPs of forward + backward for the tokens
it processes divided by the device's sustained throughput. Peak numbers are the
vendors' dense tensor figures for 16-bit training; ``efficiency`` (model FLOPs
utilisation) scales them to what training really sustains (0.3 is typical).
"""

from __future__ import annotations

from dataclasses import dataclass

from emsfl_sim.errors import InputError
from emsfl_sim.scenario import Scenario


@dataclass(frozen=True)
class DeviceProfile:
    """A ground device's compute capability."""

    name: str
    peak_flops: float  # dense 16-bit tensor FLOP/s
    memory_bytes: float
    description: str


#: Device profiles by name (scenario ``clusters[].compute_profile``).
PROFILES: dict[str, DeviceProfile] = {
    p.name: p
    for p in (
        DeviceProfile("h100", 989e12, 80e9, "NVIDIA H100 SXM, BF16 dense"),
        DeviceProfile("a100-80gb", 312e12, 80e9, "NVIDIA A100 80GB, BF16 dense"),
        DeviceProfile("rtx-4090", 165e12, 24e9, "NVIDIA RTX 4090, FP16 dense with FP32 accumulate"),
        DeviceProfile("jetson-orin", 42.5e12, 64e9, "NVIDIA Jetson AGX Orin 64GB, FP16 dense tensor"),
        DeviceProfile("phone-npu", 10e12, 12e9, "flagship phone NPU, FP16 (order of magnitude)"),
        DeviceProfile("cpu", 1e12, 32e9, "server CPU socket, FP32 (order of magnitude)"),
    )
}


def get_profile(name: str, field: str = "compute_profile") -> DeviceProfile:
    """Look up a device profile; an unknown name is an InputError listing the valid ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise InputError(f"unknown compute profile {name!r}; use one of {', '.join(PROFILES)}", field=field) from None


def round_duration_s(flops_per_token: float, tokens: float, profile: DeviceProfile, efficiency: float) -> float:
    """Simulated seconds for a local round processing ``tokens`` tokens.

    ``flops_per_token`` counts forward and backward (for a dense transformer about
    6 x active parameters when everything is trained; less when only some parts
    need weight gradients).
    """
    if efficiency <= 0:
        raise InputError("must be > 0", field="training.compute_efficiency")
    return float(flops_per_token) * float(tokens) / (profile.peak_flops * efficiency)


def check_compute_profiles(scenario: Scenario) -> None:
    """Every cluster's ``compute_profile`` is a known profile (one-line InputError naming the cluster)."""
    for index, cluster in enumerate(scenario.clusters):
        try:
            get_profile(cluster.compute_profile)
        except InputError as exc:
            raise InputError(exc.message, scenario.source_file, f"clusters[{index}].compute_profile") from None
