"""A constant-velocity Kalman filter on boxes, vectorised over tracks (the motion model of ByteTrack).

State per track: ``(cx, cy, w, h, vcx, vcy, vw, vh)`` in image pixels and pixels per frame; measured:
``(cx, cy, w, h)``. The process and measurement noise scale with the box's own width (x terms) and
height (y terms), so a large, near object may move more pixels per frame than a small, far one. The
noise weights are those of SORT-family trackers (position 1/20 of the side, velocity 1/160).
"""

from __future__ import annotations

import numpy as np

_POS = 1.0 / 20  # position noise, a fraction of the box side
_VEL = 1.0 / 160  # velocity noise, a fraction of the box side per frame

# x_{t+1} = F x_t (one frame ahead); z = H x
_F = np.eye(8)
_F[:4, 4:] = np.eye(4)
_H = np.eye(4, 8)


def _sides(w: np.ndarray, h: np.ndarray) -> np.ndarray:
    """``(N, 4)`` = ``(w, h, w, h)``: the scale of each measured coordinate."""
    return np.stack([w, h, w, h], axis=1)


def initiate(measurements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """New tracks at ``(N, 4)`` boxes ``(cx, cy, w, h)``: means ``(N, 8)`` at rest, covariances
    ``(N, 8, 8)`` diagonal, wide on the (unknown) velocity."""
    z = np.asarray(measurements, np.float64).reshape(-1, 4)
    mean = np.concatenate([z, np.zeros_like(z)], axis=1)
    s = _sides(z[:, 2], z[:, 3])
    std = np.concatenate([2 * _POS * s, 10 * _VEL * s], axis=1)  # (N, 8)
    cov = np.zeros((len(z), 8, 8))
    idx = np.arange(8)
    cov[:, idx, idx] = std**2
    return mean, cov


def predict(mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One frame ahead for every track: ``(N, 8)``, ``(N, 8, 8)`` -> the same shapes."""
    if not len(mean):
        return mean, cov
    s = _sides(mean[:, 2], mean[:, 3])
    q = np.concatenate([_POS * s, _VEL * s], axis=1) ** 2  # (N, 8) process noise variances
    mean = mean @ _F.T
    cov = _F @ cov @ _F.T
    idx = np.arange(8)
    cov[:, idx, idx] += q
    return mean, cov


def update(mean: np.ndarray, cov: np.ndarray, measurements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Kalman correction of ``(N, 8)`` / ``(N, 8, 8)`` states by ``(N, 4)`` boxes ``(cx, cy, w, h)``
    (row k measures track k)."""
    z = np.asarray(measurements, np.float64).reshape(-1, 4)
    if not len(z):
        return mean, cov
    r = (_POS * _sides(mean[:, 2], mean[:, 3])) ** 2  # (N, 4) measurement noise variances
    ph = cov[:, :, :4]  # P H^T: (N, 8, 4)
    s = cov[:, :4, :4].copy()  # H P H^T + R: (N, 4, 4)
    idx = np.arange(4)
    s[:, idx, idx] += r
    gain = np.linalg.solve(s, ph.transpose(0, 2, 1)).transpose(0, 2, 1)  # K = P H^T S^-1: (N, 8, 4)
    innovation = z - mean[:, :4]
    mean = mean + np.einsum("nij,nj->ni", gain, innovation)
    cov = cov - gain @ s @ gain.transpose(0, 2, 1)
    return mean, cov
