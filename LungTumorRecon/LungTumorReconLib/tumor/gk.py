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


def _check_clustering(data: np.ndarray, n_clusters: int, m: float = 2.0, tol: float = 0.0, max_iter: int = 1) -> None:
    """The argument checks shared by the three clustering functions (``data`` already an array)."""
    if data.ndim != 2 or data.shape[0] == 0 or data.shape[1] == 0:
        raise ValueError(f"data must be a non-empty (N, n) array of N points with n features, got shape {data.shape}")
    if not 2 <= n_clusters <= data.shape[0]:
        raise ValueError(f"n_clusters must be at least 2 and at most the {data.shape[0]} points, got {n_clusters}")
    if not m > 1:
        raise ValueError(f"the fuzzifier m must be greater than 1, got {m}")
    if not tol >= 0:
        raise ValueError(f"tol must be non-negative, got {tol}")
    if max_iter < 1:
        raise ValueError(f"max_iter must be at least 1, got {max_iter}")


def _check_gk_options(n_points: int, n_clusters: int, gamma: float, max_condition: float, rho: float,
                      init: np.ndarray | None) -> None:
    if not 0 <= gamma <= 1 or not max_condition >= 1 or not rho > 0:
        raise ValueError("gamma must lie in 0..1, max_condition be at least 1 and rho be positive")
    if init is not None and np.shape(init) != (n_clusters, n_points):
        raise ValueError(f"init must be (n_clusters, N) = {(n_clusters, n_points)}, got {np.shape(init)}")


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
    """Cluster ``data`` into ``n_clusters`` fuzzy Gustafson–Kessel clusters (module docstring).

    Parameters
    ----------
    data : ndarray
        (N, n): N points of n features.
    n_clusters : int, optional
        The number of clusters c, 2 <= c <= N.
    m : float, optional
        The fuzzifier, > 1 (2: the usual choice).
    tol : float, optional
        Stop when no membership moves more than this, >= 0.
    max_iter : int, optional
        At most this many iterations, >= 1.
    seed : int, optional
        The random start's seed (when ``init`` is not given).
    gamma : float, optional
        Babuška et al.'s blend of each covariance with the data's, 0..1.
    max_condition : float, optional
        The largest ratio of a covariance's eigenvalues, >= 1.
    rho : float, optional
        The clusters' volume ρ_k (one for all), > 0.
    init : ndarray, optional
        (c, N) initial memberships instead of the seeded random start.

    Returns
    -------
    FuzzyResult
        Centres (c, n), memberships (c, N) (columns sum to 1), iterations, J, covariances F_k.

    Raises
    ------
    ValueError
        If ``data`` is not a non-empty 2D array, n_clusters < 2 or > N, m <= 1, tol < 0,
        max_iter < 1, gamma outside 0..1, max_condition < 1, rho <= 0 or ``init`` not (c, N).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> data = np.vstack([rng.normal(1, 0.1, (10, 2)), rng.normal(3, 0.1, (10, 2))])
    >>> result = gustafson_kessel(data, n_clusters=2)
    >>> result.memberships.shape, sorted(np.round(result.centers[:, 0]).tolist())
    ((2, 20), [1.0, 3.0])
    """
    data = np.asarray(data, dtype=np.float64)
    _check_clustering(data, n_clusters, m, tol, max_iter)
    _check_gk_options(len(data), n_clusters, gamma, max_condition, rho, init)
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
    """Fuzzy c-means through scikit-fuzzy's ``cmeans`` (same interface as :func:`gustafson_kessel`).

    Parameters
    ----------
    data : ndarray
        (N, n): N points of n features.
    n_clusters : int, optional
        The number of clusters c, 2 <= c <= N.
    m : float, optional
        The fuzzifier, > 1.
    tol : float, optional
        scikit-fuzzy's stopping criterion ``error``, >= 0.
    max_iter : int, optional
        At most this many iterations, >= 1.
    seed : int, optional
        The random start's seed (the same start as :func:`gustafson_kessel`'s).

    Returns
    -------
    FuzzyResult
        Centres (c, n), memberships (c, N), iterations and the final objective; no covariances.

    Raises
    ------
    ValueError
        If ``data`` is not a non-empty 2D array, n_clusters < 2 or > N, m <= 1, tol < 0 or
        max_iter < 1.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> data = np.vstack([rng.normal(1, 0.1, (10, 2)), rng.normal(3, 0.1, (10, 2))])
    >>> result = fuzzy_c_means(data, n_clusters=2)
    >>> sorted(np.round(result.centers[:, 0]).tolist()), bool(np.allclose(result.memberships.sum(axis=0), 1))
    ([1.0, 3.0], True)
    """
    import skfuzzy

    data = np.asarray(data, dtype=np.float64)
    _check_clustering(data, n_clusters, m, tol, max_iter)
    init = initial_memberships(len(data), n_clusters, seed)
    centers, u, _, _, jm, p, _ = skfuzzy.cluster.cmeans(
        data.T, n_clusters, m, error=tol, maxiter=max_iter, init=init, seed=seed
    )
    return FuzzyResult(centers=centers, memberships=u, iterations=int(p), objective=float(jm[-1]))


def k_means(data: np.ndarray, n_clusters: int = 2, seed: int = 0, max_iter: int = 100, **_: object) -> FuzzyResult:
    """K-means through scikit-learn (same interface as :func:`gustafson_kessel`); memberships are crisp.

    Parameters
    ----------
    data : ndarray
        (N, n): N points of n features.
    n_clusters : int, optional
        The number of clusters c, 2 <= c <= N.
    seed : int, optional
        scikit-learn's ``random_state`` (4 starts, the best kept).
    max_iter : int, optional
        At most this many iterations per start, >= 1.
    **_
        The fuzzy methods' other arguments (``m``, ``tol``), ignored.

    Returns
    -------
    FuzzyResult
        Centres (c, n), memberships (c, N) of 0 or 1, iterations and the inertia as objective.

    Raises
    ------
    ValueError
        If ``data`` is not a non-empty 2D array, n_clusters < 2 or > N, or max_iter < 1.

    Examples
    --------
    >>> data = np.array([[0.0, 0.0], [0.1, 0.0], [3.0, 3.0], [3.1, 3.0]])
    >>> result = k_means(data, n_clusters=2)
    >>> result.memberships.sum(axis=0).tolist(), sorted(result.centers[:, 0].round(2).tolist())
    ([1.0, 1.0, 1.0, 1.0], [0.05, 3.05])
    """
    from sklearn.cluster import KMeans

    data = np.asarray(data, dtype=np.float64)
    _check_clustering(data, n_clusters, max_iter=max_iter)
    km = KMeans(n_clusters=n_clusters, n_init=4, max_iter=max_iter, random_state=seed).fit(data)
    u = np.zeros((n_clusters, len(data)))
    u[km.labels_, np.arange(len(data))] = 1.0
    return FuzzyResult(centers=km.cluster_centers_, memberships=u, iterations=int(km.n_iter_), objective=float(km.inertia_))


CLUSTERING = {"gk": gustafson_kessel, "fcm": fuzzy_c_means, "kmeans": k_means}
