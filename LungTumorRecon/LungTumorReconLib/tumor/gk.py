"""Gustafson–Kessel fuzzy clustering (Gustafson & Kessel, 1979), vectorised in numpy.

Written by hand: scikit-fuzzy offers fuzzy c-means but not GK. GK is fuzzy c-means whose
distance uses a norm adapted to each cluster's shape (seed paper 000, eqs. 6–7):

    J = Σ_i Σ_k u_ik^m  D²_ikA_k,       D²_ikA_k = (z_i − v_k)ᵀ A_k (z_i − v_k)
    F_k = Σ_i u_ik^m (z_i − v_k)(z_i − v_k)ᵀ / Σ_i u_ik^m          (fuzzy covariance)
    A_k = (ρ_k det F_k)^(1/n) F_k⁻¹                                  (unit-volume norm)
    u_ik = 1 / Σ_j (D_ik / D_ij)^(2/(m−1))

Numerical safety follows Babuška, van der Veen & Kaymak (2002): each F_k is blended with
a small multiple of the whole data's covariance (``gamma``) and its eigenvalues are kept
within ``max_condition`` of the largest, so that F_k stays invertible and det F_k > 0
even for flat clusters. Iteration stops when no membership moves more than ``tol``, or at
``max_iter``. The start is a deterministic function of ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class FuzzyResult:
    centers: np.ndarray  # (c, n)
    memberships: np.ndarray  # (c, N), columns sum to 1
    iterations: int
    objective: float
    covariances: np.ndarray | None = None  # (c, n, n) for GK


def initial_memberships(n_points: int, n_clusters: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    u = rng.random((n_clusters, n_points))
    return u / u.sum(axis=0, keepdims=True)


def _condition(F: np.ndarray, data_cov: np.ndarray, gamma: float, max_condition: float) -> np.ndarray:
    """Babuška et al.: blend with the data covariance, then cap the eigenvalue ratio."""
    n = F.shape[-1]
    F = (1.0 - gamma) * F + gamma * np.linalg.det(data_cov) ** (1.0 / n) * np.eye(n)
    w, v = np.linalg.eigh(F)
    w = np.maximum(w, w[..., -1:] / max_condition)
    return (v * w[..., None, :]) @ np.swapaxes(v, -1, -2)


def memberships_from_distances(d2: np.ndarray, m: float) -> np.ndarray:
    """u_ik from squared distances (c, N); a point on a centre belongs to it alone."""
    d2 = np.maximum(d2, 0.0)
    zero = d2 <= np.finfo(float).tiny
    with np.errstate(divide="ignore"):
        inv = d2 ** (-1.0 / (m - 1.0))  # (D²)^(-1/(m-1)) = D^(-2/(m-1))
    u = inv / inv.sum(axis=0, keepdims=True)
    hit = zero.any(axis=0)
    if hit.any():
        u[:, hit] = zero[:, hit] / zero[:, hit].sum(axis=0, keepdims=True)
    return u


def gk_distances(data: np.ndarray, centers: np.ndarray, covariances: np.ndarray, rho: float = 1.0) -> np.ndarray:
    """D²_ik = (z_i − v_k)ᵀ A_k (z_i − v_k) with A_k = (ρ det F_k)^(1/n) F_k⁻¹, shape (c, N)."""
    return _gk_distances(data[None, :, :] - centers[:, None, :], covariances, rho)


def _gk_distances(diff: np.ndarray, covariances: np.ndarray, rho: float) -> np.ndarray:
    n = diff.shape[-1]
    scale = (rho * np.linalg.det(covariances)) ** (1.0 / n)  # (c,)
    inverse = np.linalg.inv(covariances)  # (c, n, n)
    # batched matmul (BLAS) rather than a 3-operand einsum: several times faster
    return scale[:, None] * ((diff @ inverse) * diff).sum(axis=-1)


def predict_memberships(result: FuzzyResult, data: np.ndarray, m: float = 2.0, rho: float = 1.0) -> np.ndarray:
    """Memberships of new points in fitted clusters (c, N): GK's norms when the result has
    covariances, Euclidean (FCM) otherwise; crisp when the fit was crisp (K-means)."""
    data = np.asarray(data, dtype=np.float64)
    diff = data[None, :, :] - result.centers[:, None, :]
    if result.covariances is not None:
        return memberships_from_distances(_gk_distances(diff, result.covariances, rho), m)
    d2 = (diff * diff).sum(axis=-1)
    if np.isin(result.memberships, (0.0, 1.0)).all():
        u = np.zeros_like(d2)
        u[np.argmin(d2, axis=0), np.arange(d2.shape[1])] = 1.0
        return u
    return memberships_from_distances(d2, m)


def gustafson_kessel(
    data: np.ndarray,
    n_clusters: int = 2,
    m: float = 2.0,
    tol: float = 1e-5,
    max_iter: int = 100,
    seed: int = 0,
    gamma: float = 0.0,
    max_condition: float = 1e15,
    rho: float = 1.0,
    init: np.ndarray | None = None,
) -> FuzzyResult:
    """Cluster ``data`` (N, n) into ``n_clusters`` fuzzy GK clusters."""
    data = np.asarray(data, dtype=np.float64)
    n_points, n = data.shape
    u = initial_memberships(n_points, n_clusters, seed) if init is None else np.array(init, dtype=np.float64)
    data_cov = np.atleast_2d(np.cov(data, rowvar=False)) + 1e-12 * np.eye(n)
    iterations = 0
    for iterations in range(1, max_iter + 1):
        um = u**m
        weight = um.sum(axis=1)  # (c,)
        centers = (um @ data) / weight[:, None]
        diff = data[None, :, :] - centers[:, None, :]
        F = (np.swapaxes(diff * um[:, :, None], 1, 2) @ diff) / weight[:, None, None]
        F = _condition(F, data_cov, gamma, max_condition)
        d2 = _gk_distances(diff, F, rho)
        new_u = memberships_from_distances(d2, m)
        change = float(np.abs(new_u - u).max())
        u = new_u
        if change < tol:
            break
    objective = float(((u**m) * d2).sum())
    return FuzzyResult(centers=centers, memberships=u, iterations=iterations, objective=objective, covariances=F)


def fuzzy_c_means(
    data: np.ndarray, n_clusters: int = 2, m: float = 2.0, tol: float = 1e-5, max_iter: int = 100, seed: int = 0
) -> FuzzyResult:
    """FCM through scikit-fuzzy's ``cmeans`` (same interface as :func:`gustafson_kessel`)."""
    import skfuzzy

    data = np.asarray(data, dtype=np.float64)
    init = initial_memberships(len(data), n_clusters, seed)
    centers, u, _, _, jm, p, _ = skfuzzy.cluster.cmeans(
        data.T, n_clusters, m, error=tol, maxiter=max_iter, init=init, seed=seed
    )
    return FuzzyResult(centers=centers, memberships=u, iterations=int(p), objective=float(jm[-1]))


def k_means(data: np.ndarray, n_clusters: int = 2, seed: int = 0, max_iter: int = 100, **_: object) -> FuzzyResult:
    """K-means through scikit-learn; memberships are crisp (0 or 1)."""
    from sklearn.cluster import KMeans

    data = np.asarray(data, dtype=np.float64)
    km = KMeans(n_clusters=n_clusters, n_init=4, max_iter=max_iter, random_state=seed).fit(data)
    u = np.zeros((n_clusters, len(data)))
    u[km.labels_, np.arange(len(data))] = 1.0
    return FuzzyResult(centers=km.cluster_centers_, memberships=u, iterations=int(km.n_iter_), objective=float(km.inertia_))


CLUSTERING = {"gk": gustafson_kessel, "fcm": fuzzy_c_means, "kmeans": k_means}
