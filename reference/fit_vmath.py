"""Polynomial fits behind the vectorised math of src/ops/kern_simd.h.

Prints the #define lines of kern_simd.h (KV_EXP_C*, KV_EXP2_C*, KV_ERF_Q*,
KV_ERFC_P*). Each fit is a weighted least-squares fit on Chebyshev nodes,
re-weighted towards minimax (Lawson's iteration), in double precision against
mpmath; the coefficients are then rounded to fp32. Not a golden generator:
nothing under tests/fixtures depends on it. The accuracy of the resulting
kernels is measured in C (docs/kernels.md).

    /opt/lmxref/bin/python reference/fit_vmath.py
"""
import math

import mpmath
import numpy as np

mpmath.mp.prec = 80


def lawson(x, y, basis, weight=None, iters=60):
    """Minimise max |weight·(A c - y)| approximately; returns c and the max error."""
    A = np.vstack([b(x) for b in basis]).T
    w0 = np.ones_like(x) if weight is None else weight
    wt = np.ones_like(x)
    for _ in range(iters):
        W = w0 * wt
        c, *_ = np.linalg.lstsq(A * W[:, None], y * W, rcond=None)
        err = (A @ c - y) * w0
        wt = wt * (np.abs(err) / np.abs(err).max()) ** 0.3 + 1e-3
    return c, np.abs(err).max()


def cheb(lo, hi, n):
    return (np.cos(np.linspace(0, np.pi, n)) * (hi - lo) / 2 + (hi + lo) / 2)


def emit(prefix, coefs, first=0):
    for k, c in enumerate(coefs):
        print(f"#define {prefix}{k + first} {float(np.float32(c))!r}f")


def main():
    # exp: e^r = 1 + r + r^2·(c2 + c3 r + ... + c6 r^4), |r| <= ln2/2,
    # relative error.
    r = cheb(-math.log(2) / 2, math.log(2) / 2, 4001)
    r = r[np.abs(r) > 1e-6]
    y = (np.exp(r) - 1 - r) / r ** 2
    c, e = lawson(r, y, [lambda x, k=k: x ** k for k in range(5)], weight=r ** 2 / np.exp(r))
    print(f"/* exp: max relative error {e:.2g} */")
    emit("KV_EXP_C", c, first=2)

    # exp2: 2^r = 1 + r·(c1 + c2 r + ... + c6 r^5), |r| <= 1/2.
    r = cheb(-0.5, 0.5, 4001)
    r = r[np.abs(r) > 1e-7]
    y = (2.0 ** r - 1) / r
    c, e = lawson(r, y, [lambda x, k=k: x ** k for k in range(6)], weight=r / 2.0 ** r)
    print(f"/* exp2: max relative error {e:.2g} */")
    emit("KV_EXP2_C", c, first=1)

    # erf(a)/a = Q(a^2), a in [0, 0.75], absolute error of erf.
    a = cheb(0, 0.75, 800)
    a = a[a > 1e-6]
    y = np.array([float(mpmath.erf(v) / v) for v in a])
    c, e = lawson(a * a, y, [lambda x, k=k: x ** k for k in range(6)], weight=a)
    print(f"/* erf(a)/a: max absolute error of erf {e:.2g} */")
    emit("KV_ERF_Q", c)

    # erfc(a) = t·exp(P(t) - a^2), t = 1/(1 + a), a in [0.75, 9.5],
    # P of degree 10 in (t - t0), t0 the middle of the t range.
    amin, amax = 0.75, 9.5
    tlo, thi = 1 / (1 + amax), 1 / (1 + amin)
    t0 = float(np.float32((tlo + thi) / 2))
    t = cheb(tlo, thi, 1000)
    y = np.array([float(mpmath.log(mpmath.erfc(1 / v - 1) / v) + (1 / v - 1) ** 2) for v in t])
    c, e = lawson(t - t0, y, [lambda x, k=k: x ** k for k in range(11)])
    print(f"/* erfc: P max absolute error {e:.2g} (= relative error of erfc); t0 = {t0!r} */")
    emit("KV_ERFC_P", c)


if __name__ == "__main__":
    main()
