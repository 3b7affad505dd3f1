"""The package's layers: no module imports from a layer above its own (README, Layout)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pipeline"
# lower numbers are lower layers; modules at the package's top level are the API layer
LAYERS = {"core": 0, "ingest": 1, "tables": 2, "pixels": 2, "models": 3, "training": 4, "tuning": 5,
          "submitting": 5, "": 6, "cli": 7}


def layer_of(module: str) -> int:
    """The layer of a dotted module name inside `pipeline`."""
    parts = module.split(".")[1:]  # drop "pipeline"
    if not parts:  # the package root holds only the version, the errors and lazy names
        return LAYERS["core"]
    if parts == ["__main__"]:  # `python -m pipeline` runs the command line
        return LAYERS["cli"]
    if not parts or parts[0] not in LAYERS or (len(parts) == 1 and (PACKAGE / f"{parts[0]}.py").is_file()):
        return LAYERS[""]
    return LAYERS[parts[0]]


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every `pipeline` module the file imports, wherever the import stands."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "pipeline":
            if node.module == "pipeline":  # `from pipeline import api`: the names are modules or verbs
                found += [(node.lineno, f"pipeline.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "pipeline"]
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(PACKAGE)) for p in MODULES])
def test_no_module_imports_from_a_layer_above(path: Path) -> None:
    own = layer_of("pipeline." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts))
    above = [f"line {line}: {module}" for line, module in imports(path) if layer_of(module) > own]
    assert not above, f"{path.relative_to(PACKAGE)} imports from a higher layer: {above}"


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from pipeline.training.records import Run\n")
    assert [m for _, m in imports(bad) if layer_of(m) > LAYERS["core"]] == ["pipeline.training.records"]


def test_every_subpackage_has_a_layer() -> None:
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")} - {"data"}
    assert packages <= set(LAYERS)


def test_the_readme_layout_names_every_module() -> None:
    readme = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Layout", 1)[1].split("\n\n", 2)[2].split("\n\n", 1)[0]
    rows = {row.split("|")[1].strip().strip("`/"): row.split("|")[2] for row in table.splitlines()[2:]}
    unnamed = [str(path.relative_to(PACKAGE)) for path in MODULES if not path.name.startswith("__")
               and f"`{path.name}`" not in rows["top" if path.parent == PACKAGE else path.parent.name]]
    assert not unnamed, f"README's Layout table does not name {unnamed}"
