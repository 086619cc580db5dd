"""Rician ergodic capacity against independent references, and its ordering properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special

from emsfl_sim.errors import InputError
from emsfl_sim.link import (
    ergodic_capacity_bps,
    ergodic_spectral_efficiency,
    rayleigh_ergodic_capacity_bps,
    sample_rician_gain,
    shannon_bound_bps,
)
from tests.fakes import rician_ergodic_quad

SNR_DB = [-20.0, -10.0, 0.0, 5.0, 10.0, 20.0, 30.0, 40.0]
K_LIN = [0.1, 1.0, 3.0, 10.0, 100.0]


@pytest.mark.parametrize("k", K_LIN)
def test_quadrature_matches_scipy_quad(k):
    snr = 10 ** (np.array(SNR_DB) / 10)
    want = np.array([rician_ergodic_quad(s, k) for s in snr])
    got = ergodic_spectral_efficiency(snr, k, method="quadrature")
    np.testing.assert_allclose(got, want, rtol=1e-8)
    got_table = ergodic_spectral_efficiency(snr, k, method="table")
    np.testing.assert_allclose(got_table, want, rtol=2e-6)


def test_table_matches_quadrature_on_random_points():
    rng = np.random.default_rng(7)
    snr = np.exp(rng.uniform(math.log(1e-6), math.log(1e8), 5000))
    k = 10 ** (rng.uniform(-40, 50, 5000) / 10)
    table = ergodic_spectral_efficiency(snr, k, method="table")
    quad = ergodic_spectral_efficiency(snr, k, method="quadrature")
    np.testing.assert_allclose(table, quad, rtol=2e-6)


def test_rayleigh_closed_form():
    # K = 0: E[ln(1 + s X)] = exp(1/s) E1(1/s) with X ~ Exp(1) (docs/link-model.md sec. 2;
    # Gradshteyn & Ryzhik, Table of Integrals, 4.337.2, int_0^inf e^{-mu x} ln(b + x) dx with b = 1/s).
    snr = np.logspace(-2, 5, 40)
    closed = 1e6 * np.exp(1 / snr) * special.exp1(1 / snr) / math.log(2)
    np.testing.assert_allclose(ergodic_capacity_bps(snr, 0.0, 1e6), closed, rtol=1e-8)
    np.testing.assert_allclose(rayleigh_ergodic_capacity_bps(snr, 1e6), closed, rtol=1e-10)
    # Outside the table domain (K = 0) the auto path uses the quadrature, also exact.
    np.testing.assert_allclose(
        ergodic_capacity_bps(np.logspace(-2, 5, 100), 0.0, 1e6),
        rayleigh_ergodic_capacity_bps(np.logspace(-2, 5, 100), 1e6),
        rtol=1e-8,
    )


def test_decreases_with_lower_k_and_below_shannon_bound():
    snr = 10 ** (np.array(SNR_DB) / 10)
    ks = np.array([0.0, 0.1, 0.5, 1, 2, 5, 10, 30, 100, 1000])
    for method in ("quadrature", "table"):
        cap = ergodic_spectral_efficiency(snr[:, None], ks[None, :], method=method)
        assert np.all(np.diff(cap, axis=1) > 0), method  # more LOS power, more capacity
        bound = np.log2(1 + snr)[:, None]
        assert np.all(cap < bound), method  # Jensen
    # Large K approaches AWGN; K = inf is AWGN exactly.
    awgn = np.log2(1 + snr)
    np.testing.assert_allclose(ergodic_spectral_efficiency(snr, 1e6), awgn, rtol=1e-5)
    np.testing.assert_allclose(ergodic_spectral_efficiency(snr, np.inf), awgn, rtol=1e-12)
    gap_10 = awgn - ergodic_spectral_efficiency(snr, 10.0)
    gap_100 = awgn - ergodic_spectral_efficiency(snr, 100.0)
    assert np.all(gap_100 < gap_10)


def test_low_snr_limit_keeps_relative_precision():
    # E[log2(1 + s X)] -> s E[X] / ln 2 = s / ln 2 as s -> 0 (no cancellation).
    for s in (1e-9, 1e-12):
        assert float(ergodic_spectral_efficiency(s, 5.0)) == pytest.approx(s / math.log(2), rel=1e-6)
    assert float(ergodic_spectral_efficiency(0.0, 5.0)) == 0.0


def test_monte_carlo_agrees():
    rng = np.random.default_rng(2024)
    k, snr = 3.0, 10.0
    x = sample_rician_gain(rng, k, 400_000)
    assert x.mean() == pytest.approx(1.0, abs=0.005)  # normalised: E|h|^2 = 1
    samples = np.log2(1 + snr * x)
    se = samples.std() / math.sqrt(samples.size)
    assert abs(samples.mean() - float(ergodic_spectral_efficiency(snr, k))) < 4 * se


def test_shannon_bound_formula_and_errors():
    assert float(shannon_bound_bps(1.0, 5e6)) == pytest.approx(5e6)
    assert float(shannon_bound_bps(10.0, 1.0)) == pytest.approx(math.log2(11))
    with pytest.raises(InputError, match="bandwidth_hz: must be > 0 Hz"):
        shannon_bound_bps(1.0, 0.0)
    with pytest.raises(InputError, match="bandwidth_hz"):
        ergodic_capacity_bps(1.0, 1.0, -5e6)
    with pytest.raises(InputError, match="mean_snr_linear: must be >= 0"):
        ergodic_capacity_bps(-1.0, 1.0, 5e6)
    with pytest.raises(InputError, match="k_factor_linear"):
        ergodic_capacity_bps(1.0, -1.0, 5e6)


def test_shapes_broadcast():
    out = ergodic_capacity_bps(np.ones((3, 4)), np.full((1, 4), 10.0), 1e6)
    assert out.shape == (3, 4)
    assert np.ndim(ergodic_capacity_bps(1.0, 10.0, 1e6)) == 0
