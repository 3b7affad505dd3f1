"""House Prices: the sale's table with quality words as ranks, totals, ages and flags, before the generic encoder.

Every added column is computed from its own row (data_description.txt's meanings, no statistics, no labels),
so the builder cannot leak: what the generic encoder learns afterwards comes from train rows only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.core.errors import DataError

QUALITY = {"Ex": 5, "Gd": 4, "TA": 3, "Fa": 2, "Po": 1}  # excellent, good, typical, fair, poor
FINISH = {"GLQ": 6, "ALQ": 5, "BLQ": 4, "Rec": 3, "LwQ": 2, "Unf": 1}  # good living quarters ... unfinished
# ordered words -> ranks; a missing cell means "none" (no basement, garage...) and ranks 0. Not PoolQC: 7 houses
# in 1,460 have a pool, and PoolArea already marks them; more copies of so rare a column make gradient descent diverge
RANKS: dict[str, dict[str, int]] = {
    **{c: QUALITY for c in ("ExterQual", "ExterCond", "BsmtQual", "BsmtCond", "HeatingQC", "KitchenQual",
                            "FireplaceQu", "GarageQual", "GarageCond")},
    "BsmtExposure": {"Gd": 4, "Av": 3, "Mn": 2, "No": 1},
    "BsmtFinType1": FINISH,
    "BsmtFinType2": FINISH,
    "GarageFinish": {"Fin": 3, "RFn": 2, "Unf": 1},
    "Functional": {"Typ": 7, "Min1": 6, "Min2": 5, "Mod": 4, "Maj1": 3, "Maj2": 2, "Sev": 1, "Sal": 0},
    "Fence": {"GdPrv": 4, "MnPrv": 3, "GdWo": 2, "MnWw": 1},
    "LandSlope": {"Gtl": 2, "Mod": 1, "Sev": 0},
    "LotShape": {"Reg": 3, "IR1": 2, "IR2": 1, "IR3": 0},
    "PavedDrive": {"Y": 2, "P": 1, "N": 0},
}
MISSING_RANK = {"Functional": 7}  # "assume typical unless deductions are warranted"
AREAS = ("TotalBsmtSF", "1stFlrSF", "2ndFlrSF")
BATHS = {"FullBath": 1.0, "HalfBath": 0.5, "BsmtFullBath": 1.0, "BsmtHalfBath": 0.5}
PORCHES = ("OpenPorchSF", "EnclosedPorch", "3SsnPorch", "ScreenPorch", "WoodDeckSF")
PRESENT = ("2ndFlrSF", "GarageArea", "TotalBsmtSF", "Fireplaces", "MasVnrArea")  # 0/1: has one
CODES = ("MSSubClass",)  # numbers that name a category (dwelling type): one-hot, not a line
COLUMNS = (*RANKS, *AREAS, *BATHS, *PORCHES, *PRESENT, *CODES, "OverallQual", "GrLivArea", "YearBuilt",
           "YearRemodAdd", "YrSold", "MoSold")


def build(table: pd.DataFrame) -> pd.DataFrame:
    """A copy of a train or test table with the House Prices columns added (row by row; the originals stay)."""
    absent = [c for c in dict.fromkeys(COLUMNS) if c not in table.columns]
    if absent:
        raise DataError(f"the table lacks column {absent[0]!r}, which the House Prices builder reads; "
                        "use --features generic for another table")
    out = table.copy()
    for column, ranks in RANKS.items():
        words = out[column].astype(object).map(lambda v: str(v).strip(), na_action="ignore")
        out[f"{column}_rank"] = words.map(ranks).fillna(MISSING_RANK.get(column, 0)).astype(np.float64)
    for column in CODES:  # as whole numbers: a blank cell elsewhere in the column must not turn 20 into "20.0"
        codes = pd.to_numeric(out[column], errors="coerce").astype("Int64")
        out[column] = (column + codes.astype(str)).where(codes.notna(), None)

    def number(column: str) -> pd.Series:
        return pd.to_numeric(out[column], errors="coerce")

    def zero(column: str) -> pd.Series:  # an area or count left blank: none of it
        return number(column).fillna(0.0)

    out["TotalSF"] = sum(zero(c) for c in AREAS)
    out["TotalBath"] = sum(w * zero(c) for c, w in BATHS.items())
    out["PorchSF"] = sum(zero(c) for c in PORCHES)
    out["Age"] = number("YrSold") - number("YearBuilt")
    out["RemodAge"] = number("YrSold") - number("YearRemodAdd")
    both = number("YearRemodAdd").notna() & number("YearBuilt").notna()  # unknown years: not known remodelled
    out["Remodelled"] = (both & (number("YearRemodAdd") != number("YearBuilt"))).astype(np.float64)
    out["QualSF"] = number("OverallQual") * out["TotalSF"]
    out["QualLiving"] = number("OverallQual") * zero("GrLivArea")
    out["Sold"] = number("YrSold") + (number("MoSold") - 1) / 12  # years, with the month as a fraction
    for column in PRESENT:
        out[f"Has{column}"] = (zero(column) > 0).astype(np.float64)
    return out
