# corpus: healthy
# story: a risk job estimates a portfolio's value-at-risk by Monte Carlo with NumPy, vectorised over scenarios and assets
# needs: numpy
# run: launch
"""Daily 99% value-at-risk and expected shortfall for a book of positions."""
import time

import numpy as np

ASSETS = 120
SCENARIOS = 20000
HISTORY_DAYS = 750


def simulate_history(rng):
    factors = rng.standard_normal((HISTORY_DAYS, 6)) * 0.01
    loadings = rng.uniform(-1.0, 1.5, size=(6, ASSETS))
    idiosyncratic = rng.standard_normal((HISTORY_DAYS, ASSETS)) * 0.006
    return factors @ loadings + idiosyncratic


def risk_figures(returns, positions, rng, level=0.99):
    mean = returns.mean(axis=0)
    covariance = np.cov(returns, rowvar=False)
    chol = np.linalg.cholesky(covariance + np.eye(ASSETS) * 1e-10)
    shocks = rng.standard_normal((SCENARIOS, ASSETS)) @ chol.T + mean
    pnl = shocks @ positions
    cutoff = np.quantile(pnl, 1.0 - level)
    tail = pnl <= cutoff
    shortfall = pnl[tail].mean()
    contributions = (shocks[tail] * positions).mean(axis=0)
    return -cutoff, -shortfall, contributions


def main():
    rng = np.random.default_rng(20240601)
    returns = simulate_history(rng)
    positions = rng.uniform(-2e5, 1e6, size=ASSETS)
    start = time.monotonic()
    runs = 0
    worst = None
    while time.monotonic() < start + 6:
        moved = positions * (1.0 + rng.normal(0, 0.02, size=ASSETS))
        var, es, contributions = risk_figures(returns, moved, rng)
        top = np.argsort(contributions)[:3]
        worst = (var, es, top)
        runs += 1
    var, es, top = worst
    print("%d runs; last VaR %.0f, ES %.0f, largest contributors %s" % (runs, var, es, top.tolist()))


if __name__ == "__main__":
    main()
