"""The learned projection: EfficientNet's pooled feature mapped into the text tower's space.

ConSE sees an image only through the 1000 ImageNet classes. The classifier's pooled 1280-d
feature (the same forward pass, before the classifier) knows more: people, scenes, layouts that
no class names. A ridge regression maps the L2-normalised, centred feature onto the mean
embedding of the photo's captions; the embedder blends the projected vector with the ConSE one.
The weights ship with the package (``tables/projection-<text model>.npz``, see ``tables/NOTICE``);
``train_projection.py`` makes them, numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import ConfigurationError
from ..base import l2_normalize
from .cache import arrays_from_bytes

TABLES = Path(__file__).parent / "tables"


def projection_path(text_model: str) -> Path:
    """Where the shipped projection (and its calibration bank) of `text_model` lives."""
    return TABLES / f"projection-{text_model}.npz"


@dataclass(frozen=True)
class Projection:
    """x -> normalise(normalise(normalise(x) - mean) @ weights)."""

    mean: np.ndarray  # (d_in,) mean of the normalised training features
    weights: np.ndarray  # (d_in, d_out)

    def apply(self, features: np.ndarray) -> np.ndarray:
        """(n, d_out) unit rows for (n, d_in) pooled features."""
        x = l2_normalize(l2_normalize(features) - self.mean)
        # einsum, not BLAS: a few rows do not pay for BLAS's threads, which on a busy machine
        # spin for milliseconds (4 ms against 0.1 ms an image measured on 2 loaded cores)
        return l2_normalize(np.einsum("ij,jk->ik", x, self.weights))


def fit_projection(features: np.ndarray, targets: np.ndarray, ridge: float) -> Projection:
    """Ridge regression of centred unit features onto `targets` (rows: one photo each).

    Solved in the dual (n photos << d features): W = X^T (X X^T + ridge I)^-1 Y.
    """
    x = l2_normalize(np.asarray(features, np.float64)).astype(np.float64)
    mean = x.mean(axis=0)
    xc = l2_normalize(x - mean).astype(np.float64)
    gram = xc @ xc.T + ridge * np.eye(len(xc))
    weights = xc.T @ np.linalg.solve(gram, np.asarray(targets, np.float64))
    return Projection(mean.astype(np.float32), weights.astype(np.float32))


@dataclass(frozen=True)
class ShippedModel:
    """The trained parts that ship with the package for one text model."""

    projection: Projection
    bank: np.ndarray  # (m, dim) reference image vectors for per-query calibration
    calibration: np.ndarray  # (3,) logit = a * cosine + b * z + c (calibration.py)
    # hubness correction (hubness.py): reference query vectors (m, dim - 1) and the mean
    # offset of the training photos; None where the file has none
    hubs: np.ndarray | None = None
    hub_centre: float = 0.0


def load_shipped(text_model: str, dim: int, path: Path | None = None) -> ShippedModel:
    """Read the shipped projection, bank and calibration of `text_model`, checking shapes."""
    path = path or projection_path(text_model)
    try:
        arrays = arrays_from_bytes(path.read_bytes())
    except OSError as exc:
        arrays = None
        reason = str(exc)
    else:
        reason = "not a valid .npz"
    if arrays is not None:
        try:
            mean = arrays["mean"].astype(np.float32)
            weights = arrays["weights"].astype(np.float32)
            bank = arrays["bank"].astype(np.float32)
            calibration = arrays["calibration"].astype(np.float64)
        except KeyError as exc:
            reason = f"missing {exc}"
        else:
            ok = (
                mean.ndim == 1
                and weights.shape == (mean.shape[0], weights.shape[1])
                and bank.ndim == 2
                and bank.shape[1] == dim
                and calibration.shape == (3,)
                and all(np.isfinite(a).all() for a in (mean, weights, bank, calibration))
            )
            hubs = arrays["hubs"].astype(np.float32) if "hubs" in arrays else None
            centre = arrays["hub_centre"].astype(np.float64) if "hub_centre" in arrays else None
            if hubs is not None:
                ok = ok and (
                    hubs.ndim == 2
                    and hubs.shape[1] == dim - 1
                    and centre is not None
                    and centre.shape == ()
                    and bool(np.isfinite(hubs).all() and np.isfinite(centre))
                )
            if ok:
                return ShippedModel(
                    Projection(mean, weights),
                    l2_normalize(bank),
                    calibration,
                    l2_normalize(hubs) if hubs is not None else None,
                    float(centre) if hubs is not None and centre is not None else 0.0,
                )
            reason = "unexpected shapes or values"
    raise ConfigurationError(
        f"the built-in model's projection {path} cannot be read ({reason}); reinstall "
        "viewfinder (`pip install --force-reinstall viewfinder`)"
    )
