"""Micro-benchmark of the link layer: pass -> PassCapacity, transfer timing, fading.

Run: ``.venv/bin/python benchmarks/bench_link.py`` (prints milliseconds / microseconds).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from emsfl_sim.link import LinkParams, ergodic_spectral_efficiency, pass_capacity, slant_range_km
from emsfl_sim.rng import rng


def _median_s(fn, repeat: int) -> float:
    fn()
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return float(np.median(runs))


def main() -> None:
    t = np.arange(0.0, 601.0)
    elev = 25.0 + 60.0 * np.sin(np.pi * t / 600.0)
    geo = pd.DataFrame(
        {
            "t_s": t,
            "elevation_deg": elev,
            "range_km": slant_range_km(elev, 600.0),
            "range_rate_km_s": np.linspace(-6.5, 6.5, t.size),
        }
    )
    params = LinkParams(rician_k_horizon_db=3.0, shadowing_sigma_db=2.0, doppler_limit_hz=5e4)
    t0 = time.perf_counter()
    pass_capacity(geo, params)
    print(
        f"first call (builds fading table, imports scipy.interpolate): {(time.perf_counter() - t0) * 1e3:.1f} ms"
    )
    g = rng(0, "bench")
    print(f"pass_capacity, 601 samples: {_median_s(lambda: pass_capacity(geo, params, g), 200) * 1e3:.3f} ms")
    cap = pass_capacity(geo, params, g)
    print(f"completion_time: {_median_s(lambda: cap.completion_time(120.0, 2e8), 2000) * 1e6:.1f} us")
    print(f"bytes_between: {_median_s(lambda: cap.bytes_between(120.0, 400.0), 2000) * 1e6:.1f} us")
    snr = np.exp(np.linspace(-5, 8, 601))
    print(
        f"ergodic quadrature, 601 values: {_median_s(lambda: ergodic_spectral_efficiency(snr, 10.0, 'quadrature'), 50) * 1e3:.2f} ms"
    )
    print(
        f"ergodic table, 601 values: {_median_s(lambda: ergodic_spectral_efficiency(snr, 10.0, 'table'), 200) * 1e3:.3f} ms"
    )


if __name__ == "__main__":
    main()
