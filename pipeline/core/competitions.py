"""The competition description: each competition described once, as data, built in or read from its folder."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.core.errors import DataError, UsageError

if TYPE_CHECKING:
    from pipeline.core.metrics import Metric

TASKS = ("binary", "multiclass", "regression")
LABELS = ("int", "bool", "float", "str")  # how a submission writes its labels (str: exactly as train spells them)
SUBMISSIONS = ("labels", "proba")  # a submission holds one label or value per row, or class probabilities
METRIC_SOURCES = ("built in", "default", "--metric", "Kaggle API")
ID_TYPES = ("int", "str")
MODALITIES = ("tabular", "pixels", "images")  # images: PNG/JPG files in folders, resized to image_shape
FEATURES = ("generic", "titanic", "pixels", "houses")  # feature builders
_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,99}")
DESCRIPTION = "competition.json"  # a competition kc inferred, in `competitions/<slug>/`
# bounds on a description (it may be edited by hand, or planted): far above any real competition's
MAX_SIDE = 4096  # pixels along an image side
MAX_PIXELS = 1 << 18  # pixels in an image (512 × 512): each is a CSV column
MAX_CLASSES = 1000
MAX_TEXT = 200  # characters of a name, a title, a class label or an option
MAX_ITEMS = 100  # entries of a list field (extra files, aliases, options)
CHANNELS = (1, 3)  # image files: grey, or RGB
IMAGE_FOLDERS = ("train", "test")  # where image-file competitions keep their images, as Kaggle names the folders
_KC_NAMES = {".kc-fetch.json", DESCRIPTION, "runs", "derived"}  # what kc itself keeps in the folder


@dataclass(frozen=True)
class Competition:
    """Everything kc needs to know about one competition."""

    slug: str
    title: str
    id_column: str  # the id in the submission
    target_column: str
    task: str  # one of TASKS
    metric: str  # a name in pipeline.core.metrics
    id_type: str = "int"  # one of ID_TYPES
    labels: str = "int"  # one of LABELS
    classes: tuple[str, ...] = ()  # classification: labels as written, in class-code order
    modality: str = "tabular"  # one of MODALITIES
    image_shape: tuple[int, int] | None = None  # pixels: (rows, columns) of each image
    features: str = "generic"  # one of FEATURES
    default_model: str = "linear"
    default_options: tuple[str, ...] = ()  # "key=value" options the default model trains with unless given others
    train_file: str = "train.csv"
    test_file: str = "test.csv"
    sample_file: str = "sample_submission.csv"
    extra_files: tuple[str, ...] = ()  # shipped beside the CSVs, e.g. data_description.txt
    test_has_ids: bool = True  # False: test rows carry no id; ids are row numbers 1..n (Digit Recognizer)
    aliases: tuple[str, ...] = ()
    class_names: tuple[str, ...] = ()  # readable names for the classes in pictures, e.g. died/survived
    label_column: str = ""  # the submission's name for the target when it differs (digits: Label vs label)
    submission: str = "labels"  # one of SUBMISSIONS
    # proba with one column per class: the sample's class columns in its order (each one of `classes`); empty for
    # labels, and for a binary target whose one column holds the probability of classes[1] (e.g. Santander)
    proba_columns: tuple[str, ...] = ()
    id_in_train: bool = True  # False: train has no id column (Kannada-MNIST: only test and the sample have ids)
    dropped_columns: tuple[str, ...] = ()  # in train, not in test and not the target: left out of the features
    date_columns: tuple[str, ...] = ()  # text columns holding dates, turned into year, month, ... (as described)
    # the date columns whose test values all come after train's (found at fetch): kc train warns that its random
    # folds then flatter a model that must forecast
    forecast_columns: tuple[str, ...] = ()
    metric_source: str = "built in"  # one of METRIC_SOURCES: where the metric came from
    # several target columns (train.csv's, in the sample's order; target_column is the first), all values or all
    # 0/1 classes, each learned by its own model and scored by a column-wise metric; empty for one target
    targets: tuple[str, ...] = ()
    # values (regression): predictions are raised to at least this (0 when train's targets are never negative: no
    # negative counts or prices are written or scored); None leaves them as the model gives them
    value_floor: float | None = None
    # images: the folders holding the train and test images (train/ and test/), each image named by its id plus
    # image_suffix (".jpg" when the ids have no extension), read as image_channels (1 grey, 3 RGB) and resized
    # to image_shape; the test ids are the sample's (test_file is the sample submission)
    image_folders: tuple[str, ...] = ()
    image_suffix: str = ""
    image_channels: int = 1

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def files(self) -> tuple[str, ...]:
        """Every file `kc fetch` must produce (image folders aside; an image competition's test file is its sample)."""
        if self.modality == "images" and self.test_file == self.sample_file:
            return (self.train_file, self.sample_file, *self.extra_files)
        return (self.train_file, self.test_file, self.sample_file, *self.extra_files)

    @property
    def submission_columns(self) -> tuple[str, ...]:
        """The submission's header, in order."""
        return (self.id_column, *(self.proba_columns or self.targets or (self.label_column or self.target_column,)))

    @property
    def target_columns(self) -> tuple[str, ...]:
        """train.csv's target columns: the several targets, or the one."""
        return self.targets or (self.target_column,)

    def for_target(self, column: str) -> Competition:
        """One of several targets as a competition of its own, scored by the per-column metric (what its model
        learns and how its column is scored)."""
        from pipeline.core import metrics

        if column not in self.targets:
            raise ValueError(f"{column!r} is not one of {self.slug}'s targets")
        per_column = metrics.METRICS[self.metric].per_column
        return dataclasses.replace(self, target_column=column, targets=(), metric=per_column)

    @property
    def value_columns(self) -> tuple[str, ...]:
        """The submission's columns after the id: one label or value, or class probabilities."""
        return self.submission_columns[1:]

    @property
    def writes_proba(self) -> bool:
        """Whether the submission holds probabilities rather than labels or values."""
        return self.submission == "proba"

    @property
    def is_classification(self) -> bool:
        """Whether the target is a class (binary or multiclass) rather than a value."""
        return self.task != "regression"

    @property
    def scorer(self) -> Metric:
        """The competition's metric."""
        from pipeline.core import metrics

        return metrics.get(self.metric, self.task)

    @property
    def pixel_columns(self) -> tuple[str, ...]:
        """pixel0 ... pixelN-1 for a pixel competition; empty otherwise."""
        if self.image_shape is None:
            return ()
        return tuple(f"pixel{i}" for i in range(self.image_shape[0] * self.image_shape[1]))

    def options_for(self, model: str) -> dict[str, str]:
        """The competition's own options for `model` (its default model's), as `-p key=value` would give them."""
        if model != self.default_model:
            return {}
        return {key.strip(): value.strip() for key, _, value in (p.partition("=") for p in self.default_options)}

    @property
    def display_classes(self) -> tuple[str, ...]:
        """Class names for pictures: the readable names when given, else the labels as written."""
        return self.class_names or self.classes

    @property
    def learning_key(self) -> str:
        """A short key of what a model learns and how its outputs are read and scored (target, task, classes in order,
        metric, value floor): a run trained under another is stale, like one trained on other files."""
        import hashlib

        learnt: list[object] = [self.task, self.target_column, self.targets, self.classes, self.labels, self.metric]
        if self.value_floor is not None:  # a description from before the floor keeps its key
            learnt.append(float(self.value_floor))  # 0 and 0.0 are one floor
        return hashlib.sha256(json.dumps(learnt).encode()).hexdigest()[:12]

    def to_json(self) -> dict[str, Any]:
        """The description as JSON-ready data."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Any, origin: str) -> Competition:
        """Rebuild a description, failing with one line that names the file and the problem."""
        if not isinstance(data, dict):
            raise DataError(f"{origin}: expected a JSON object of competition fields")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise DataError(f"{origin}: unknown field {', '.join(unknown)}; fields are: {', '.join(fields)}")
        missing = [n for n, f in fields.items() if f.default is dataclasses.MISSING and n not in data]
        if missing:
            raise DataError(f"{origin}: missing field {', '.join(missing)}")
        values = dict(data)
        try:
            for name in ("classes", "extra_files", "aliases", "class_names", "default_options", "proba_columns",
                         "dropped_columns", "date_columns", "forecast_columns", "targets", "image_folders"):
                if name in values:
                    values[name] = tuple(_strings(name, values[name]))
            if values.get("image_shape") is not None:
                shape = values["image_shape"]
                if not (isinstance(shape, list) and len(shape) == 2 and all(type(v) is int for v in shape)):
                    raise ValueError("image_shape must be [rows, columns] or null")
                values["image_shape"] = tuple(shape)
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{origin}: {exc}") from None


def _strings(name: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name} must be a list of strings")
    return value


def _problems(c: Competition) -> list[str]:
    """What is wrong with a description, as short phrases (empty when it is sound)."""
    from pipeline.core import metrics

    out = []
    for name in ("slug", "title", "id_column", "target_column", "default_model", "train_file", "test_file",
                 "sample_file", "metric"):
        value = getattr(c, name)
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
            out.append(f"{name} must be a non-empty string of at most {MAX_TEXT} characters")
    if not isinstance(c.label_column, str) or len(c.label_column) > MAX_TEXT:
        out.append(f"label_column must be a string of at most {MAX_TEXT} characters")
    for name in ("classes", "extra_files", "aliases", "class_names", "default_options", "proba_columns",
                 "dropped_columns", "date_columns", "forecast_columns", "targets", "image_folders"):
        values = getattr(c, name)
        limit = MAX_CLASSES if name in ("classes", "class_names", "proba_columns", "targets") else \
            MAX_PIXELS if name in ("dropped_columns", "date_columns", "forecast_columns") else MAX_ITEMS
        if not isinstance(values, tuple) or len(values) > limit:
            out.append(f"{name} must be a list of at most {limit} entries")
        elif not all(isinstance(v, str) and len(v) <= MAX_TEXT for v in values):
            out.append(f"{name} must hold strings of at most {MAX_TEXT} characters")
    for name, allowed in (("task", TASKS), ("labels", LABELS), ("id_type", ID_TYPES), ("modality", MODALITIES),
                          ("features", FEATURES), ("submission", SUBMISSIONS), ("metric_source", METRIC_SOURCES)):
        if getattr(c, name) not in allowed:
            out.append(f"{name} is {getattr(c, name)!r}, expected one of {', '.join(allowed)}")
    if out:
        return out
    for pair in c.default_options:
        if not isinstance(pair, str) or not pair.partition("=")[0].strip() or "=" not in pair:
            out.append(f"default_options must be key=value strings, not {pair!r}")
    for name in ("test_has_ids", "id_in_train"):
        if not isinstance(getattr(c, name), bool):
            out.append(f"{name} must be true or false")
    metric = metrics.METRICS.get(c.metric)
    if metric is None and isinstance(c.metric, str) and (known := metrics.canonical(c.metric)):
        out.append(f"metric {c.metric!r} is another name of kc's {known!r}: write that")
    elif metric is None:
        out.append(f"metric {c.metric!r} is unknown; kc knows: {', '.join(metrics.METRICS)}")
    elif c.task not in metric.tasks:
        out.append(f"metric {c.metric!r} does not score {c.task} tasks; use one of: "
                   f"{', '.join(metrics.fitting(c.task, bool(c.targets)))}")
    elif metric.columnwise != bool(c.targets):
        out.append(f"metric {c.metric!r} scores " + ("several target columns; list them in targets" if
                   metric.columnwise else "one target; several targets take a column-wise metric such as "
                   + ("mean-rmse" if c.task == "regression" else "mean-auc")))
    floor = c.value_floor
    # abs(...) < 1e30 is False for NaN and infinities, and compares a 400-digit int without overflowing; past 1e30 the
    # metrics overflow (kc refuses such targets in train too)
    if floor is not None and (type(floor) not in (int, float) or not abs(floor) < 1e30 or c.task != "regression"):
        out.append("value_floor must be a number between -1e30 and 1e30 for a regression task, or null")
    if unknown := [name for name in c.forecast_columns if name not in c.date_columns]:
        out.append(f"forecast_columns names '{unknown[0]}', which is not one of date_columns")
    if c.task == "regression":
        if c.labels != "float" or c.classes:
            out.append("a regression task writes float labels and has no classes")
    else:
        want = 2 if c.task == "binary" else 3
        if len(c.classes) < want or (c.task == "binary" and len(c.classes) != 2):
            out.append(f"a {c.task} task needs {'exactly 2' if c.task == 'binary' else 'at least 3'} classes")
        if len(set(c.classes)) != len(c.classes):
            out.append("classes must be distinct")
        if c.labels == "bool" and tuple(c.classes) != ("False", "True"):
            out.append("bool labels have classes [\"False\", \"True\"]")
        if c.labels == "int" and not all(_is_int(v) for v in c.classes):
            out.append("int labels need integer classes, e.g. [\"0\", \"1\"]")
        if c.labels == "float":
            out.append("float labels are for regression tasks")
        if c.class_names and len(c.class_names) != len(c.classes):
            out.append("class_names must name every class")
    out += _submission_problems(c)
    images = c.modality in ("pixels", "images")
    if images != (c.image_shape is not None):
        out.append("pixels and images modalities need image_shape, and only they have one")
    if images != (c.features == "pixels"):
        out.append("the pixels feature builder goes with the pixels and images modalities")
    out += _image_file_problems(c)
    shape = c.image_shape
    if shape is not None and not (isinstance(shape, tuple) and len(shape) == 2 and all(type(v) is int for v in shape)):
        out.append("image_shape must be [rows, columns] or null")
    elif shape is not None and (min(shape) < 1 or max(shape) > MAX_SIDE or shape[0] * shape[1] > MAX_PIXELS):
        out.append(f"image_shape must be positive, at most {MAX_SIDE} a side and {MAX_PIXELS:,} pixels in all")
    files = list(c.files)
    if len(set(files)) != len(files) or (c.test_file == c.sample_file and c.modality != "images"):
        out.append("file names must be distinct")
    for name in files:
        if not _plain_file(name):
            out.append(f"file {name!r} must be a plain name in the competition's folder (no folder, no leading "
                       f"dot, none of {', '.join(sorted(_KC_NAMES))})")
            break
    return out


def _image_file_problems(c: Competition) -> list[str]:
    """What is wrong with the fields of an image-file competition (and their defaults elsewhere)."""
    out = []
    if type(c.image_channels) is not int or c.image_channels not in CHANNELS:
        out.append(f"image_channels must be {' or '.join(map(str, CHANNELS))}")
    suffix = c.image_suffix
    if not isinstance(suffix, str) or len(suffix) > 10 or (suffix and not (suffix.startswith(".") and _plain_file(
            "x" + suffix))):
        out.append("image_suffix must be empty or a file extension such as \".jpg\"")
    if c.modality == "images":
        if c.image_folders != IMAGE_FOLDERS:
            out.append(f"image_folders must be {list(IMAGE_FOLDERS)}")
        if not c.id_in_train or not c.test_has_ids:
            out.append("an images competition names each image by its id in train and in the sample")
    elif c.image_folders or suffix or c.image_channels != 1:
        out.append("image_folders, image_suffix and image_channels are for the images modality")
    return out


def _submission_problems(c: Competition) -> list[str]:
    """What is wrong with how the description says submissions are written."""
    out = []
    if c.submission == "proba" and not c.is_classification:
        out.append("probability submissions are for classification tasks")
    if c.proba_columns:
        if c.submission != "proba":
            out.append("proba_columns go with \"submission\": \"proba\"")
        if sorted(c.proba_columns) != sorted(c.classes):
            out.append("proba_columns must be the classes, each once (in the sample's order)")
    elif c.submission == "proba" and c.task != "binary":
        out.append("a multiclass probability submission names its columns in proba_columns")
    if c.id_column in c.dropped_columns or set(c.target_columns) & set(c.dropped_columns):
        out.append("dropped_columns cannot hold the id or the target")
    if c.targets:
        out += _targets_problems(c)
    return out


def _targets_problems(c: Competition) -> list[str]:
    """What is wrong with a description of several target columns."""
    out = []
    if len(c.targets) < 2 or len(set(c.targets)) != len(c.targets) or c.target_column != c.targets[0]:
        out.append("targets must list 2 or more distinct columns, the first of them the target_column")
    if c.id_column in c.targets:
        out.append("targets cannot hold the id")
    if c.task == "multiclass":
        out.append("several targets are all values (task regression) or all 0/1 classes (task binary)")
    if c.proba_columns or c.label_column:
        out.append("several targets are written under their own names: no proba_columns or label_column")
    if c.task == "binary" and c.submission != "proba":
        out.append("several binary targets are written as probabilities: \"submission\": \"proba\"")
    if c.modality != "tabular":
        out.append("several targets are for tables")
    return out


def _plain_file(name: str) -> bool:
    """A name that stays in the competition folder: no separators, no `..`, no hidden or kc's own names."""
    return (name.isprintable() and "/" not in name and "\\" not in name and ":" not in name
            and not name.startswith(".") and name not in _KC_NAMES)


def _is_int(text: str) -> bool:
    return text.isascii() and text.lstrip("-").isdigit()


TITANIC = Competition(
    slug="titanic",
    title="Titanic - Machine Learning from Disaster",
    id_column="PassengerId",
    target_column="Survived",
    task="binary",
    metric="accuracy",
    classes=("0", "1"),
    class_names=("died", "survived"),
    features="titanic",
    default_model="linear",
    # 30 epochs of 23 batches stop short of the optimum at lr 0.01; 0.08 reaches it (benchmarks/RESULTS.md)
    default_options=("lr=0.08",),
    sample_file="gender_submission.csv",
)

DIGIT_RECOGNIZER = Competition(
    slug="digit-recognizer",
    title="Digit Recognizer",
    id_column="ImageId",
    target_column="label",
    task="multiclass",
    metric="accuracy",
    classes=tuple(str(d) for d in range(10)),
    modality="pixels",
    image_shape=(28, 28),
    features="pixels",
    default_model="cnn",
    test_has_ids=False,
    label_column="Label",
)

HOUSE_PRICES = Competition(
    slug="house-prices-advanced-regression-techniques",
    title="House Prices - Advanced Regression Techniques",
    id_column="Id",
    target_column="SalePrice",
    task="regression",
    metric="rmse-log",
    labels="float",
    features="houses",
    default_model="blend",
    extra_files=("data_description.txt",),
    aliases=("house-prices",),
)

REGISTRY: dict[str, Competition] = {c.slug: c for c in (TITANIC, DIGIT_RECOGNIZER, HOUSE_PRICES)}
_ALIASES = {alias: c.slug for c in REGISTRY.values() for alias in c.aliases}


def canonical(slug: str) -> str:
    """The registry's slug for an alias (house-prices -> house-prices-advanced-regression-techniques)."""
    return _ALIASES.get(slug, slug)


def known(slug: str) -> Competition | None:
    """The built-in description of a slug or alias, if kc has one."""
    return REGISTRY.get(canonical(slug))


def description_path(root: Path, slug: str) -> Path:
    """Where an inferred competition's description lives: `competitions/<slug>/competition.json`."""
    return root / "competitions" / slug / DESCRIPTION


def load(path: Path) -> Competition:
    """Read and validate a `competition.json`."""
    if path.stat().st_size > 1 << 20:
        raise DataError(f"{path}: over 1 MB, far more than a description; fetch the competition again with --force")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise DataError(f"{path}: nested too deeply to be a description") from None
    comp = Competition.from_json(data, str(path))
    if comp.slug != path.parent.name:
        raise DataError(f"{path}: slug is '{comp.slug}' but the folder is '{path.parent.name}'")
    return comp


def save(comp: Competition, root: Path) -> Path:
    """Write an inferred description beside its data (atomically); return the path."""
    from pipeline.core.workspace import atomic_path

    path = description_path(root, comp.slug)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(comp.to_json(), indent=2) + "\n", encoding="utf-8")
    return path


def check_slug(slug: str) -> str:
    """The slug itself, when it is one Kaggle could have made (lowercase letters, digits, hyphens)."""
    if not _SLUG.fullmatch(slug):
        raise UsageError(f"'{slug}' is not a competition slug: use lowercase letters, digits and hyphens, "
                         "as in the competition's Kaggle address")
    return slug


def get(slug: str, root: Path | None = None) -> Competition:
    """A competition by slug or alias: built in, or described by `competition.json` in the workspace at `root`."""
    check_slug(slug)
    comp = known(slug)
    if comp is not None:
        return comp
    if root is not None:
        path = description_path(root, slug)
        if path.is_file():
            return load(path)
    names = ", ".join(sorted([*REGISTRY, *_ALIASES]))
    raise UsageError(f"unknown competition '{slug}'; kc knows: {names}. For another competition, "
                     f"`kc fetch {slug} --from FILE.zip` describes it from its files")
