"""k nearest neighbours by matrix multiplication: ‖a‖² − 2a·b + ‖b‖², in batches, float32."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.models import _torch
from pipeline.models.base import EpochCallback, Model

EIGH_MAX = 2048  # PCA through the (d, d) covariance up to this many values per image; a randomised SVD above


def deskew(images: np.ndarray, batch: int = 8192) -> np.ndarray:
    """Straighten slanted digits by their second moments and centre their mass; (n, 28, 28) uint8 in and out."""
    n, h, w = images.shape
    rows, cols = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                                indexing="ij")
    out = np.empty_like(images)
    for start in range(0, n, batch):
        x = torch.from_numpy(np.asarray(images[start : start + batch], dtype=np.float32))
        mass = x.sum((1, 2)).clamp_min(1e-6)
        cr = (x * rows).sum((1, 2)) / mass  # centre of mass, row
        cc = (x * cols).sum((1, 2)) / mass
        dr, dc = rows - cr[:, None, None], cols - cc[:, None, None]
        var_r = (x * dr * dr).sum((1, 2)) / mass
        cov = (x * dr * dc).sum((1, 2)) / mass
        alpha = cov / var_r.clamp_min(1e-6)  # the slant: columns drift by alpha per row
        # output pixel (r, c) samples input (r - h/2 + cr, c - w/2 + cc + alpha (r - h/2))
        src_r = rows[None] - h / 2 + cr[:, None, None]
        src_c = cols[None] - w / 2 + cc[:, None, None] + alpha[:, None, None] * (rows[None] - h / 2)
        grid = torch.stack([(2 * src_c + 1) / w - 1, (2 * src_r + 1) / h - 1], dim=-1)
        warped = F.grid_sample(x[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        out[start : start + batch] = warped[:, 0].round().clamp(0, 255).to(torch.uint8).numpy()
    return out


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of (n, h, w) float images."""
    radius = max(1, round(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(t**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    x = F.conv2d(x[:, None], kernel.view(1, 1, 1, -1), padding=(0, radius))
    x = F.conv2d(x, kernel.view(1, 1, -1, 1), padding=(radius, 0))
    return x[:, 0]


@dataclasses.dataclass
class KNNModel(Model):
    """kNN votes or weighted mean of neighbours' values; digit images may be deskewed, blurred and PCA-projected."""

    name: ClassVar[str] = "knn"
    tasks: ClassVar[tuple[str, ...]] = ("binary", "multiclass", "regression")
    space: ClassVar[dict[str, str]] = {"k": "1:40", "weighting": "distance|uniform", "pca": "0|20|50|100"}
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"weighting": ("distance", "uniform")}
    images_only: ClassVar[tuple[str, ...]] = ("deskew", "blur", "pca")
    k: int = 4
    weighting: str = "distance"  # or "uniform"
    deskew: bool = True
    blur: float = 0.0  # Gaussian sigma in pixels, 0 = off (images only)
    pca: int = 50  # components, 0 = off (images only: a table's few encoded columns are searched as they are)
    batch: int = 2048

    mean_: torch.Tensor | None = dataclasses.field(default=None, init=False, repr=False)
    components_: torch.Tensor | None = dataclasses.field(default=None, init=False, repr=False)
    train_: torch.Tensor | None = dataclasses.field(default=None, init=False, repr=False)
    train_sq_: torch.Tensor | None = dataclasses.field(default=None, init=False, repr=False)
    labels_: torch.Tensor | None = dataclasses.field(default=None, init=False, repr=False)  # class positions
    values_: torch.Tensor | None = dataclasses.field(default=None, init=False, repr=False)  # regression targets

    def _embed(self, X: np.ndarray) -> torch.Tensor:
        """Input -> (n, d) float32 search space (deskew, blur, PCA as configured)."""
        if X.dtype == np.uint8 and X.ndim == 3:
            if self.deskew:
                X = deskew(X)
            x = torch.from_numpy(np.asarray(X, dtype=np.float32)) / 255.0
            if self.blur > 0:
                x = blur(x, self.blur)
            x = x.reshape(len(x), -1)
        else:
            x = _torch.features(X)
        if self.components_ is not None:
            x = (x - self.mean_) @ self.components_
        return x.contiguous()

    def fit(self, X: np.ndarray, y: np.ndarray, X_valid: np.ndarray | None = None,
            y_valid: np.ndarray | None = None, on_epoch: EpochCallback | None = None) -> KNNModel:
        """Store the (projected) training set and its labels or values."""
        self.components_ = self.mean_ = None
        x = self._embed(X)
        if 0 < self.pca < x.shape[1] and np.asarray(X).ndim >= 3:  # images, grey or RGB
            self.mean_ = x.mean(0)
            centred = x - self.mean_
            if x.shape[1] <= EIGH_MAX:
                # eigenvectors of the (d, d) covariance: cheap when n >> d
                # float64: float32 eigh fails to converge on some small, nearly singular covariances
                _, vectors = torch.linalg.eigh((centred.T @ centred).double())
                vectors = vectors.float()
                self.components_ = vectors[:, -self.pca :].flip(1).contiguous()
            else:  # image files (64×64×3 = 12,288 values): a randomised SVD, never a (d, d) matrix
                with torch.random.fork_rng():
                    torch.manual_seed(0)
                    _, _, vectors = torch.svd_lowrank(centred, q=min(self.pca + 10, *centred.shape), niter=4)
                self.components_ = vectors[:, : self.pca].contiguous()
            x = centred @ self.components_
        self._start(y)
        self.train_ = x.contiguous()
        self.train_sq_ = (x * x).sum(1)
        self.labels_ = self.values_ = None
        if self.regression_:
            self.values_ = torch.from_numpy(np.asarray(y, np.float64))
        else:
            self.labels_ = torch.from_numpy(np.searchsorted(self.classes_, y)).long()
        return self

    def kneighbors(self, X: np.ndarray, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(n, k) squared distances and (n, k) indices into the training set, nearest first."""
        self._check_fitted()
        k = min(k or self.k, len(self.train_))
        q = self._embed(X)
        dists, idxs = [], []
        n_train = len(self.train_)
        for start in range(0, len(q), self.batch):
            a = q[start : start + self.batch]
            best_d, best_i = [], []
            # tiles of the training set keep the distance block in cache; ‖a‖² is added after the search
            for t0 in range(0, n_train, self.batch):
                part = torch.addmm(self.train_sq_[None, t0 : t0 + self.batch], a, self.train_[t0 : t0 + self.batch].T,
                                   beta=1, alpha=-2)
                d, i = torch.topk(part, min(k, part.shape[1]), dim=1, largest=False)
                best_d.append(d)
                best_i.append(i + t0)
            d, j = torch.topk(torch.cat(best_d, 1), k, dim=1, largest=False)  # sorted, nearest first
            dists.append((d + (a * a).sum(1, keepdim=True)).clamp_min(0))
            idxs.append(torch.gather(torch.cat(best_i, 1), 1, j))
        return torch.cat(dists).numpy(), torch.cat(idxs).numpy()

    def _weights(self, d2: np.ndarray) -> torch.Tensor:
        """(n, k) neighbour weights: inverse distance, or all ones."""
        if self.weighting == "uniform":
            return torch.ones(d2.shape, dtype=torch.float64)
        return 1.0 / (torch.from_numpy(d2).double().sqrt() + 1e-6)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Votes of the k nearest neighbours, weighted by inverse distance or uniformly."""
        d2, idx = self.kneighbors(X)
        proba = torch.zeros(len(idx), len(self.classes_), dtype=torch.float64)
        proba.scatter_add_(1, self.labels_[torch.from_numpy(idx)], self._weights(d2))
        return (proba / proba.sum(1, keepdim=True)).float().numpy()

    def predict_values(self, X: np.ndarray) -> np.ndarray:
        """Mean of the k nearest neighbours' values, weighted by inverse distance or uniformly."""
        d2, idx = self.kneighbors(X)
        w = self._weights(d2)
        return ((w * self.values_[torch.from_numpy(idx)]).sum(1) / w.sum(1)).numpy()

    def save(self, folder: Path) -> None:
        """The projected training set, labels or values, and projection."""
        self._check_fitted()
        if self.regression_:
            state = {"train": self.train_, "values": self.values_}
        else:
            state = {"train": self.train_, "labels": self.labels_, "classes": torch.from_numpy(self.classes_)}
        if self.components_ is not None:
            state |= {"mean": self.mean_, "components": self.components_}
        _torch.save_state(state, folder)

    def load(self, folder: Path) -> KNNModel:
        """Restore what `save` wrote."""
        s = _torch.load_state(folder)
        self.train_, self.labels_, self.values_ = s["train"], s.get("labels"), s.get("values")
        self.regression_ = self.values_ is not None
        self.classes_ = None if self.regression_ else s["classes"].numpy()
        self.train_sq_ = (self.train_ * self.train_).sum(1)
        self.mean_, self.components_ = s.get("mean"), s.get("components")
        self.fitted_ = True
        return self
