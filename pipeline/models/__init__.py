"""The model registry: names to classes, imported only when asked for."""

from __future__ import annotations

import importlib

from pipeline.errors import UsageError
from pipeline.models.base import Model

# name -> (module, class, task kinds it supports, one-line description)
MODELS: dict[str, tuple[str, str, tuple[str, ...], str]] = {
    "linear": ("pipeline.models.linear", "LinearModel", ("tabular", "image"),
               "gradient descent written out: logistic / softmax regression"),
    "knn": ("pipeline.models.knn", "KNNModel", ("tabular", "image"),
            "k nearest neighbours by matrix multiplication, optional deskew and PCA"),
    "cnn": ("pipeline.models.cnn", "CNNModel", ("image",), "fastai Learner with a small ResNet, from scratch"),
    "sk-logistic": ("pipeline.models.sklearn_models", "SkLogistic", ("tabular", "image"),
                    "scikit-learn LogisticRegression baseline"),
    "sk-forest": ("pipeline.models.sklearn_models", "SkForest", ("tabular", "image"),
                  "scikit-learn RandomForestClassifier baseline"),
}


def model_class(name: str, task: str) -> type[Model]:
    """The class registered under `name`, checked against the competition's task kind."""
    if name not in MODELS:
        raise UsageError(f"unknown model '{name}'; kc knows: {', '.join(MODELS)}")
    module, cls, tasks, _ = MODELS[name]
    if task not in tasks:
        fits = ", ".join(n for n, m in MODELS.items() if task in m[2])
        raise UsageError(f"model '{name}' does not handle {task} competitions; use one of: {fits}")
    return getattr(importlib.import_module(module), cls)
