"""Per-query calibration: a cosine judged against how this query scores unrelated photos.

Some queries' cosines all run high ("a plate of food"), others' all run low; one global map from
cosine to score then saturates for the first and starves the second. Here each query is first
scored against a fixed bank of reference image vectors that ships with the model (everyday
photos, none of them the user's); the cosine's z-score against that distribution says how
unusual the similarity is *for this query*. A logistic over (cosine, z) then gives the score.
It is fitted on captioned photos with matching and non-matching pairs weighted equally and
shifted so that 0.5 is where a match is `MATCH_ODDS` times as likely as a non-match: half a
score is then a fairly sure match, whatever was asked.
"""

from __future__ import annotations

import math

import numpy as np

MATCH_ODDS = 3.0  # likelihood ratio at score 0.5


def query_features(
    similarities: np.ndarray, query_vector: np.ndarray, bank: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(cosine, z-score of the cosine among the query's cosines to the bank)."""
    s = np.asarray(similarities, dtype=np.float64)
    ref = bank @ np.asarray(query_vector, dtype=np.float32)
    z = (s - float(ref.mean())) / max(float(ref.std()), 1e-6)
    return s, z


def calibrated(
    similarities: np.ndarray, query_vector: np.ndarray, bank: np.ndarray, coef: np.ndarray
) -> np.ndarray:
    """Scores in [0, 1], monotonic in the cosine for a given query."""
    s, z = query_features(similarities, query_vector, bank)
    logit = coef[0] * s + coef[1] * z + coef[2]
    return (1.0 / (1.0 + np.exp(-np.clip(logit, -50.0, 50.0)))).astype(np.float32)


def fit_calibration(
    cosines: np.ndarray, zscores: np.ndarray, relevant: np.ndarray, odds: float = MATCH_ODDS
) -> np.ndarray:
    """(a, b, c) of logit = a * cosine + b * z + c, by balanced logistic regression (Newton).

    The intercept is lowered by ln(odds) so that 0.5 sits at likelihood ratio `odds`.
    """
    y = np.asarray(relevant, dtype=bool).ravel()
    x = np.stack([np.ravel(cosines), np.ravel(zscores), np.ones(y.size)], axis=1)
    if not 0 < y.sum() < y.size:
        raise ValueError("need both relevant and irrelevant pairs")
    w = np.where(y, 0.5 / y.sum(), 0.5 / (~y).sum()) * y.size
    theta = np.zeros(3)
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(x @ theta)))
        grad = x.T @ (w * (p - y))
        hess = (x * (w * p * (1.0 - p))[:, None]).T @ x
        step = np.linalg.solve(hess + 1e-9 * np.eye(3), grad)
        theta -= step
        if np.abs(step).max() < 1e-10:
            break
    theta[2] -= math.log(odds)
    return theta
