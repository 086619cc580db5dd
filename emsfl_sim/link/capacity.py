"""Capacity through a pass and exact transfer timing.

A :class:`PassCapacity` holds a capacity time series sampled at ``t_s`` and
treats it as piecewise linear between samples (zero outside the pass). Its
integral is then piecewise quadratic, so ``bytes_between`` and
``completion_time`` are exact for that interpolant (no time stepping): the
simulator uses them to fire upload-complete events and to account for bytes
carried when the link drops.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from emsfl_sim.errors import InputError
from emsfl_sim.link.budget import budget_terms, rician_k_db
from emsfl_sim.link.doppler import doppler_shift_hz
from emsfl_sim.link.fading import ergodic_spectral_efficiency, segment_spectral_efficiency
from emsfl_sim.link.params import LinkParams

#: Elevations this far below the mask still count as above it (root-finding noise at rise/set).
MASK_TOLERANCE_DEG = 1e-6
GEOMETRY_COLUMNS = ("t_s", "elevation_deg", "range_km", "range_rate_km_s")


class PassCapacity:
    """Piecewise-linear capacity over one pass (or link window).

    Parameters
    ----------
    t_s:
        Sample times, strictly increasing, seconds since scenario start (>= 2 samples).
    capacity_bps:
        Capacity at each sample, bit/s, >= 0.
    shadowing_db:
        The shadowing gain drawn for this pass (metadata only).
    max_doppler_hz:
        Largest |Doppler| over the pass (metadata only).
    """

    __slots__ = ("_t", "_c", "_cum_bits", "_slope", "shadowing_db", "max_doppler_hz")

    def __init__(
        self,
        t_s: np.ndarray | Sequence[float],
        capacity_bps: np.ndarray | Sequence[float],
        *,
        shadowing_db: float = 0.0,
        max_doppler_hz: float | None = None,
    ) -> None:
        t = np.array(t_s, dtype=float)
        c = np.array(capacity_bps, dtype=float)
        if t.ndim != 1 or c.shape != t.shape or t.size < 2:
            raise ValueError(
                f"t_s and capacity_bps must be 1-D of equal length >= 2 (got {t.shape}, {c.shape})"
            )
        if not (np.all(np.isfinite(t)) and np.all(np.isfinite(c))):
            raise ValueError("t_s and capacity_bps must be finite")
        dt = np.diff(t)
        if np.any(dt <= 0):
            raise ValueError("t_s must be strictly increasing")
        if np.any(c < 0):
            raise ValueError("capacity_bps must be >= 0")
        self._t = t
        self._c = c
        self._slope = np.diff(c) / dt
        self._cum_bits = np.concatenate(([0.0], np.cumsum(0.5 * (c[1:] + c[:-1]) * dt)))
        for a in (self._t, self._c, self._slope, self._cum_bits):
            a.setflags(write=False)
        self.shadowing_db = float(shadowing_db)
        self.max_doppler_hz = max_doppler_hz

    # ----------------------------------------------------------- builders
    @classmethod
    def _from_arrays(cls, t: np.ndarray, c: np.ndarray, slope: np.ndarray, cum_bits: np.ndarray,
                     shadowing_db: float, max_doppler_hz: float | None) -> PassCapacity:
        """A capacity from checked, read-only arrays (as ``__init__`` computes them; :func:`~emsfl_sim.link.packed_capacity.packed_pass_capacities`)."""
        self = cls.__new__(cls)
        self._t, self._c, self._slope, self._cum_bits = t, c, slope, cum_bits
        self.shadowing_db = float(shadowing_db)
        self.max_doppler_hz = max_doppler_hz
        return self

    @classmethod
    def constant(cls, start_s: float, end_s: float, rate_bps: float) -> PassCapacity:
        """A constant rate over ``[start_s, end_s]`` (the idealised time mode)."""
        if not end_s > start_s:
            raise ValueError(f"end_s must be > start_s (got {start_s}, {end_s})")
        return cls([start_s, end_s], [rate_bps, rate_bps])

    def clip(self, start_s: float, end_s: float) -> PassCapacity:
        """The same capacity restricted to ``[start_s, end_s]``.

        For example a link window after handover; capacity is zero where the
        window leaves the pass.
        """
        if not end_s > start_s:
            raise ValueError(f"end_s must be > start_s (got {start_s}, {end_s})")
        inner = (self._t > start_s) & (self._t < end_s)
        t = np.concatenate(([start_s], self._t[inner], [end_s]))
        c = np.concatenate(([float(self.capacity_bps(start_s))], self._c[inner], [float(self.capacity_bps(end_s))]))
        return PassCapacity(t, c, shadowing_db=self.shadowing_db, max_doppler_hz=self.max_doppler_hz)

    # ------------------------------------------------------------ queries
    @property
    def t_s(self) -> np.ndarray:
        """Sample times (read-only)."""
        return self._t

    @property
    def rate_samples_bps(self) -> np.ndarray:
        """Capacity at the sample times (read-only)."""
        return self._c

    @property
    def start_s(self) -> float:
        """First sample time (s)."""
        return float(self._t[0])

    @property
    def end_s(self) -> float:
        """Last sample time (s)."""
        return float(self._t[-1])

    @property
    def duration_s(self) -> float:
        """Length of the pass (s)."""
        return float(self._t[-1] - self._t[0])

    @property
    def total_bits(self) -> float:
        """Bits the whole pass can carry."""
        return float(self._cum_bits[-1])

    @property
    def total_bytes(self) -> float:
        """Bytes the whole pass can carry."""
        return float(self._cum_bits[-1]) / 8.0

    @property
    def mean_rate_bps(self) -> float:
        """Time-averaged capacity over the pass."""
        return self.total_bits / self.duration_s

    def capacity_bps(self, t_s: np.ndarray | float) -> np.ndarray | float:
        """Capacity at ``t_s`` (linear between samples, 0 outside the pass)."""
        return np.interp(t_s, self._t, self._c, left=0.0, right=0.0)

    def _bits_until(self, t_s: np.ndarray | float) -> np.ndarray | float:
        """Integral of capacity from the pass start to ``t_s`` (clipped to the pass)."""
        t = np.clip(t_s, self._t[0], self._t[-1])
        i = np.clip(np.searchsorted(self._t, t, side="right") - 1, 0, self._t.size - 2)
        tau = t - self._t[i]
        return self._cum_bits[i] + tau * (self._c[i] + 0.5 * self._slope[i] * tau)

    def bytes_between(self, t0_s: np.ndarray | float, t1_s: np.ndarray | float) -> np.ndarray | float:
        """Bytes carried from ``t0_s`` to ``t1_s`` (exact integral / 8; 0 if ``t1_s <= t0_s``)."""
        t0 = np.asarray(t0_s, dtype=float)
        t1 = np.maximum(np.asarray(t1_s, dtype=float), t0)
        out = (self._bits_until(t1) - self._bits_until(t0)) / 8.0
        return float(out) if np.ndim(out) == 0 else out

    def completion_time(self, t0_s: float, payload_bytes: float) -> tuple[float | None, float]:
        """When an upload of ``payload_bytes`` started at ``t0_s`` completes.

        Returns
        -------
        (t_done_s, bytes_carried)
            ``t_done_s`` is exact for the piecewise-linear capacity (the quadratic is
            solved within the segment); ``(None, bytes the rest of the pass carries)``
            when the payload does not fit before the pass ends.
        """
        t0 = float(t0_s)
        if payload_bytes <= 0:
            return t0, 0.0
        start_bits = float(self._bits_until(t0))
        total = float(self._cum_bits[-1])
        target = start_bits + 8.0 * float(payload_bytes)
        if target > total * (1.0 + 1e-12):
            return None, (total - start_bits) / 8.0
        target = min(target, total)
        # First sample whose cumulative integral reaches the target; solve in the segment before it.
        j = int(np.searchsorted(self._cum_bits, target, side="left"))
        i = min(max(j - 1, 0), self._t.size - 2)
        rem = target - float(self._cum_bits[i])
        c0 = float(self._c[i])
        a = float(self._slope[i])
        # c0 tau + a tau^2 / 2 = rem, in the cancellation-free form of the positive root.
        disc = max(c0 * c0 + 2.0 * a * rem, 0.0)
        denom = c0 + math.sqrt(disc)
        tau = 2.0 * rem / denom if denom > 0 else 0.0
        t_done = min(max(float(self._t[i]) + tau, t0), float(self._t[i + 1]))
        return t_done, float(payload_bytes)

    def __repr__(self) -> str:
        return (
            f"PassCapacity(start_s={self.start_s:.1f}, end_s={self.end_s:.1f}, "
            f"total_bytes={self.total_bytes:.4g}, mean_rate_bps={self.mean_rate_bps:.4g})"
        )


# ------------------------------------------------------------------ builders
def _check_geometry(geometry: pd.DataFrame) -> None:
    missing = [c for c in GEOMETRY_COLUMNS if c not in geometry.columns]
    if missing:
        raise InputError(f"missing columns {missing} (need {list(GEOMETRY_COLUMNS)})", field="geometry")
    if len(geometry) < 2:
        raise InputError(f"needs at least 2 samples per pass (got {len(geometry)})", field="geometry")


def _capacity_arrays(
    geometry: pd.DataFrame, params: LinkParams, shadowing_db: float, devices_sharing: int
) -> dict[str, np.ndarray]:
    return _capacity_columns(
        geometry["elevation_deg"].to_numpy(dtype=float),
        geometry["range_km"].to_numpy(dtype=float),
        geometry["range_rate_km_s"].to_numpy(dtype=float),
        params,
        shadowing_db,
        devices_sharing,
    )


def _capacity_columns(
    elev: np.ndarray,
    range_km: np.ndarray,
    range_rate_km_s: np.ndarray,
    params: LinkParams,
    shadowing_db: float | np.ndarray,
    devices_sharing: int,
    offsets: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The link columns of samples (one pass, or many passes cut at ``offsets``: elementwise but the fading)."""
    snr_db = budget_terms(params, elev, range_km, shadowing_db)["snr_db"]
    snr = 10.0 ** (snr_db / 10.0)
    k_db = rician_k_db(params, elev)
    if params.capacity_model == "ergodic":
        k_lin = 10.0 ** (k_db / 10.0)
        # the table for every pass, however short: a window's capacity does not depend on its length's method
        se = ergodic_spectral_efficiency(snr, k_lin, method="table") if offsets is None else \
            segment_spectral_efficiency(snr, k_lin, offsets)
        capacity = params.bandwidth_hz * se
    else:  # shannon_bound and awgn are the same number: B log2(1 + mean SNR)
        capacity = params.bandwidth_hz * np.log1p(snr) / math.log(2.0)
    doppler = doppler_shift_hz(range_rate_km_s, params.carrier_frequency_hz)
    in_link = elev >= params.elevation_mask_deg - MASK_TOLERANCE_DEG
    if params.doppler_limit_hz is not None:
        in_link &= np.abs(doppler) <= params.doppler_limit_hz
    capacity = np.where(in_link, capacity, 0.0) / devices_sharing
    return {
        "snr_db": snr_db,
        "rician_k_db": k_db,
        "doppler_hz": doppler,
        "in_link": in_link,
        "capacity_bps": capacity,
    }


def draw_shadowing_db(params: LinkParams, rng: np.random.Generator | None) -> float:
    """One log-normal shadowing draw (a N(0, sigma^2) gain in dB); 0 without rng or sigma."""
    if rng is None or params.shadowing_sigma_db == 0:
        return 0.0
    return float(rng.normal(0.0, params.shadowing_sigma_db))


def _check_devices(devices_sharing: int) -> None:
    if int(devices_sharing) != devices_sharing or devices_sharing < 1:
        raise InputError(f"must be an integer >= 1 (got {devices_sharing})", field="devices_sharing")


def pass_capacity(
    geometry: pd.DataFrame,
    params: LinkParams,
    rng: np.random.Generator | None = None,
    devices_sharing: int = 1,
    *,
    shadowing_db: float | None = None,
) -> PassCapacity:
    """Per-device capacity through one pass.

    Parameters
    ----------
    geometry:
        Samples with columns ``t_s, elevation_deg, range_km, range_rate_km_s``.
    params:
        Link parameters; ``params.bandwidth_hz`` is one device's band.
    rng:
        Source of the pass's single shadowing draw (e.g. ``rng(seed, "shadowing",
        cluster, pass_index)``); ``None`` means no shadowing.
    devices_sharing:
        Devices time-sharing this channel (each gets 1/n of the capacity). For a
        frequency split set ``params.bandwidth_hz`` from :func:`per_device_bandwidth_hz`.
    shadowing_db:
        Use this shadowing gain instead of drawing one.

    Returns
    -------
    PassCapacity
        Zero below the elevation mask and where |Doppler| exceeds ``doppler_limit_hz``.
    """
    _check_geometry(geometry)
    _check_devices(devices_sharing)
    params.validate()
    shadow = draw_shadowing_db(params, rng) if shadowing_db is None else float(shadowing_db)
    arrays = _capacity_arrays(geometry, params, shadow, devices_sharing)
    return PassCapacity(
        geometry["t_s"].to_numpy(dtype=float),
        arrays["capacity_bps"],
        shadowing_db=shadow,
        max_doppler_hz=float(np.max(np.abs(arrays["doppler_hz"]))),
    )


def capacity_series(
    geometry: pd.DataFrame, params: LinkParams, shadowing_db: float = 0.0, devices_sharing: int = 1
) -> pd.DataFrame:
    """The geometry with the link columns added (for reports and plots).

    The columns are ``snr_db, rician_k_db, doppler_hz, in_link, capacity_bps``.
    """
    _check_geometry(geometry)
    _check_devices(devices_sharing)
    params.validate()
    out = geometry.copy()
    for name, values in _capacity_arrays(geometry, params, shadowing_db, devices_sharing).items():
        out[name] = values
    return out


def per_device_bandwidth_hz(
    total_bandwidth_hz: float,
    devices: int,
    mode: Literal["subchannel", "equal_share"] = "subchannel",
    subchannel_hz: float | None = None,
) -> float:
    """Band of one device when ``devices`` share ``total_bandwidth_hz``.

    ``equal_share`` splits the band equally. ``subchannel`` gives each device a
    fixed ``subchannel_hz`` (default: the equal share), which must fit
    ``devices`` times in the band.
    """
    if not (math.isfinite(total_bandwidth_hz) and total_bandwidth_hz > 0):
        raise InputError(f"must be > 0 Hz (got {total_bandwidth_hz:g})", field="total_bandwidth_hz")
    if int(devices) != devices or devices < 1:
        raise InputError(f"must be an integer >= 1 (got {devices})", field="devices")
    if mode == "equal_share":
        return total_bandwidth_hz / devices
    if mode != "subchannel":
        raise InputError(f"must be 'subchannel' or 'equal_share' (got {mode!r})", field="sharing")
    if subchannel_hz is None:
        return total_bandwidth_hz / devices
    if not (math.isfinite(subchannel_hz) and subchannel_hz > 0):
        raise InputError(f"must be > 0 Hz (got {subchannel_hz:g})", field="subchannel_hz")
    if devices * subchannel_hz > total_bandwidth_hz * (1 + 1e-12):
        raise InputError(
            f"{devices} devices x {subchannel_hz:g} Hz = {devices * subchannel_hz:g} Hz exceed the total band "
            f"{total_bandwidth_hz:g} Hz; lower the sub-channel, the device count, or use 'equal_share'",
            field="subchannel_hz",
        )
    return float(subchannel_hz)


def pass_volume_stats(passes: Sequence[PassCapacity]) -> dict[str, float]:
    """Volume statistics over passes: MB (1e6 bytes) per pass and mean rate.

    Returns
    -------
    dict
        ``n_passes, mb_min, mb_median, mb_max, mb_mean, mb_total, mean_rate_bps``
        (``mean_rate_bps`` = total bits / total pass time; NaN when there are no passes).
    """
    if len(passes) == 0:
        nan = float("nan")
        return {
            "n_passes": 0,
            "mb_min": nan,
            "mb_median": nan,
            "mb_max": nan,
            "mb_mean": nan,
            "mb_total": 0.0,
            "mean_rate_bps": nan,
        }
    mb = np.array([p.total_bytes for p in passes]) / 1e6
    duration = sum(p.duration_s for p in passes)
    return {
        "n_passes": len(passes),
        "mb_min": float(mb.min()),
        "mb_median": float(np.median(mb)),
        "mb_max": float(mb.max()),
        "mb_mean": float(mb.mean()),
        "mb_total": float(mb.sum()),
        "mean_rate_bps": float(mb.sum() * 8e6 / duration),
    }
