"""The model registry: names to classes, imported only when asked for."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline.core.errors import UsageError

if TYPE_CHECKING:
    from pipeline.core.competitions import Competition
    from pipeline.models.base import Model

_ALL = ("binary", "multiclass", "regression")
_CLASSES = ("binary", "multiclass")
_BOTH = ("tabular", "pixels", "images")


@dataclass(frozen=True)
class ModelInfo:
    """Where a model lives, which tasks and inputs it takes, and what it is (without importing it)."""

    module: str
    cls: str
    tasks: tuple[str, ...]
    modalities: tuple[str, ...]
    description: str


MODELS: dict[str, ModelInfo] = {
    "linear": ModelInfo("pipeline.models.linear", "LinearModel", _ALL, _BOTH,
                        "gradient descent written out: logistic / softmax / least-squares regression"),
    "knn": ModelInfo("pipeline.models.knn", "KNNModel", _ALL, _BOTH,
                     "k nearest neighbours by matrix multiplication; votes or a weighted mean"),
    "cnn": ModelInfo("pipeline.models.cnn", "CNNModel", _CLASSES, ("pixels", "images"),
                     "fastai Learner with a small ResNet, from scratch"),
    "tabular": ModelInfo("pipeline.models.tabular", "TabularModel", _ALL, ("tabular",),
                         "fastai's tabular learner (embeddings + MLP), from scratch"),
    "sk-logistic": ModelInfo("pipeline.models.sklearn_models", "SkLogistic", _CLASSES, _BOTH,
                             "scikit-learn LogisticRegression baseline"),
    "sk-ridge": ModelInfo("pipeline.models.sklearn_models", "SkRidge", ("regression",), _BOTH,
                          "scikit-learn Ridge regression baseline"),
    "sk-forest": ModelInfo("pipeline.models.sklearn_models", "SkForest", _ALL, _BOTH,
                           "scikit-learn random forest baseline"),
    "sk-gbm": ModelInfo("pipeline.models.sklearn_models", "SkGBM", _ALL, _BOTH,
                        "scikit-learn HistGradientBoosting"),
    "lgbm": ModelInfo("pipeline.models.lgbm", "LGBMModel", _ALL, _BOTH,
                      "LightGBM boosted trees, early-stopped on an inner split of the rows each fit sees"),
    "catboost": ModelInfo("pipeline.models.cat", "CatBoostModel", _ALL, ("tabular",),
                          "CatBoost's ordered boosting, early-stopped on an inner split of the rows each fit sees"),
    "blend": ModelInfo("pipeline.models.blend", "BlendModel", _ALL, ("tabular",),
                       "weighted mean of several models (default: sk-ridge + sk-gbm for values, sk-logistic + "
                       "sk-gbm + catboost for classes)"),
}


def fitting(comp: Competition) -> list[str]:
    """The models that take this competition's task and inputs."""
    return [n for n, m in MODELS.items() if comp.task in m.tasks and comp.modality in m.modalities]


def model_by_name(name: str) -> type[Model]:
    """The class registered under `name`, unchecked (for models that hold other models)."""
    info = MODELS.get(name)
    if info is None:
        raise UsageError(f"unknown model '{name}'; kc knows: {', '.join(MODELS)}")
    return getattr(importlib.import_module(info.module), info.cls)


def model_class(name: str, comp: Competition) -> type[Model]:
    """The class registered under `name`, checked against the competition's task and modality."""
    info = MODELS.get(name)
    if info is None:
        raise UsageError(f"unknown model '{name}'; kc knows: {', '.join(MODELS)}")
    if comp.task not in info.tasks or comp.modality not in info.modalities:
        what = f"{comp.task} tasks" if comp.task not in info.tasks else f"{comp.modality} inputs"
        raise UsageError(f"model '{name}' does not handle {what} ({comp.slug}); use one of: {', '.join(fitting(comp))}")
    return model_by_name(name)
