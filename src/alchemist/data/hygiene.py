"""Column hygiene in prep: what a table holds that no model should see, found before encoding.
Each finding is one warning line (printed by `alchemist prep` and the parse-time check) and an
entry in prep.json's `hygiene`.

Refused, naming the column: duplicate column names (pandas would rename them `a.1`), nested
values (Parquet lists/structs), a column named in `data.columns` that does not exist, a
`data.columns.numeric` column holding text, a target that is empty, all missing, or numeric
but for a few stray strings (it would become a class each).

Decided on the TRAIN rows and applied to every split (PB-2):
* `data.columns.drop` — left out; `.categorical` / `.numeric` — read as said, kept whatever they look like;
* all-missing features — dropped;
* dates (datetime columns, or text of which 90 % parses as dates) — dropped, or with
  `data.dates: expand` turned into numeric `<col>__year/__month/__day/__dayofweek`;
* ID-like columns (text or integers unique on ≥ 95 % of ≥ 50 train rows) — dropped: a model
  memorises them (train accuracy up, validation at the majority baseline);
* ±inf — counted; they are missing values for `data.missing` (imputed, or refused by `fail`).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from alchemist.errors import UserError

ID_UNIQUE = 0.95        # share of distinct values that makes a text/integer column an ID
ID_MIN_ROWS = 50
DATE_SHARE = 0.9        # share of sampled text values that must parse as dates
DATE_PARTS = ("year", "month", "day", "dayofweek")


def check_header(path: Path) -> None:
    """Duplicate column names in a CSV/Parquet file, refused before pandas renames them."""
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        names = pq.read_schema(path).names
    else:
        import csv

        with open(path, newline="", encoding="utf-8", errors="replace") as handle:
            names = next(csv.reader(handle, delimiter="\t" if suffix == ".tsv" else ","), [])
    seen = set()
    for name in map(str, names):
        if name in seen:
            raise UserError(f"data.source: column name '{name}' appears twice in {path}; rename one")
        seen.add(name)


def check_source(frame: pd.DataFrame, target: str, columns: dict) -> pd.DataFrame:
    """Structural refusals on the whole table; `data.columns.drop` applied first."""
    named = {k: list(columns.get(k) or []) for k in ("drop", "categorical", "numeric")}
    for key, names in named.items():
        for name in names:
            if name not in frame.columns or name == target:
                raise UserError(f"data.columns.{key}: no feature column '{name}' "
                                f"(columns: {', '.join(map(str, frame.columns[:20]))})")
    frame = frame.drop(columns=named["drop"])
    for col in frame.columns[(frame.dtypes == object).to_numpy()]:     # nested values hide in object columns
        sample = frame[col].dropna().head(20)
        if any(isinstance(v, (list, tuple, dict, np.ndarray)) for v in sample):
            kind = type(next(v for v in sample if isinstance(v, (list, tuple, dict, np.ndarray)))).__name__
            raise UserError(f"data.source: column '{col}' holds nested values ({kind}); flatten it "
                            "or list it in data.columns.drop")
    y = frame[target]
    if not len(y):
        raise UserError("data.source: the table has no rows")
    if y.isna().all():
        raise UserError(f"data.target: column '{target}' has no values (all missing)")
    if not pd.api.types.is_numeric_dtype(y):
        as_number = pd.to_numeric(y, errors="coerce")
        stray = y[as_number.isna() & y.notna()]
        if len(stray) and as_number.notna().mean() >= 0.9 and y.nunique() > 20:
            raise UserError(f"data.target: column '{target}' is numeric but for {len(stray)} value(s) "
                            f"such as {stray.iloc[0]!r} (row {stray.index[0]}); fix them, or each "
                            "would become a class")
    return frame


def decide(train: pd.DataFrame, features: list[str], cfg: dict) -> dict:
    """The report — what to drop, expand and cast — decided on the train rows."""
    columns = cfg.get("columns") or {}
    told = {"numeric": list(columns.get("numeric") or []),
            "categorical": list(columns.get("categorical") or [])}
    report: dict = {"dropped": {}, "dates_expanded": {}, "non_finite": {}, **told}
    expand = cfg.get("dates", "drop") == "expand"
    for col in features:
        if col in told["numeric"] or col in told["categorical"]:
            continue
        reason = _drop_reason(train[col])
        if reason == "date" and expand:
            report["dates_expanded"][col] = [f"{col}__{p}" for p in DATE_PARTS]
        elif reason:
            report["dropped"][col] = reason
    report["kept"] = [c for c in features if c not in report["dropped"]]
    return report


def apply(frame: pd.DataFrame, report: dict, what: str = "the data") -> pd.DataFrame:
    """The report's decisions on any table with the source's columns (a split, or new data for
    `alchemist predict`): the kept columns, casts, dates expanded."""
    out = frame[report["kept"]].copy()
    for col in report["numeric"]:
        number = pd.to_numeric(out[col], errors="coerce")
        text = out[col][number.isna() & out[col].notna()]
        if len(text):
            raise UserError(f"data.columns.numeric: column '{col}' holds text such as "
                            f"{text.iloc[0]!r} in {what}")
        out[col] = number
    for col in report["categorical"]:
        out[col] = out[col].astype("string")
    for col in report["dates_expanded"]:
        out = _expand_date(out, col)
    return out


def screen(parts: dict[str, pd.DataFrame], features: list[str], cfg: dict
           ) -> tuple[dict[str, pd.DataFrame], dict]:
    """(every split's features cleaned, the report with its warning lines)."""
    report = decide(parts["train"], features, cfg)
    out = {name: apply(part, report, f"the {name} split") for name, part in parts.items()}
    for col in out["train"].columns:
        if pd.api.types.is_float_dtype(out["train"][col]):
            n = sum(int(np.isinf(f[col].to_numpy(dtype=float)).sum()) for f in out.values())
            if n:
                report["non_finite"][col] = n
    report["warnings"] = _warnings(report, len(parts["train"]))
    return out, report


def _drop_reason(column: pd.Series) -> str | None:
    values = column.dropna()
    if not len(values):
        return "all missing"
    if pd.api.types.is_datetime64_any_dtype(column) or (
            column.dtype == object or pd.api.types.is_string_dtype(column)) and _looks_like_dates(values):
        return "date"
    text = not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)
    integral = pd.api.types.is_integer_dtype(column)
    if (text or integral) and len(values) >= ID_MIN_ROWS and values.nunique() >= ID_UNIQUE * len(values):
        return "ID-like"
    return None


def _looks_like_dates(values: pd.Series) -> bool:
    sample = values.astype(str).head(200)
    if pd.to_numeric(sample, errors="coerce").notna().mean() > 0.5:
        return False                                    # numbers as text are not dates
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
    return parsed.notna().mean() >= DATE_SHARE


def _expand_date(frame: pd.DataFrame, col: str) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        when = pd.to_datetime(frame[col], errors="coerce", format="mixed")
    parts = {f"{col}__{p}": getattr(when.dt, p).astype("float64") for p in DATE_PARTS}
    at = frame.columns.get_loc(col)
    frame = frame.drop(columns=[col])
    for i, (name, values) in enumerate(parts.items()):
        frame.insert(at + i, name, values)
    return frame


def _warnings(report: dict, rows: int) -> list[str]:
    lines = []
    for col, reason in report["dropped"].items():
        why = {"ID-like": f"looks like an ID (unique on ≥ {ID_UNIQUE:.0%} of {rows} train rows; a model "
                          "would memorise it)",
               "date": "holds dates (data.dates: expand turns them into numbers)",
               "all missing": "has no values in train"}[reason]
        keep = " (keep it: data.columns.categorical or .numeric)" if reason != "all missing" else ""
        lines.append(f"data: column '{col}' {why}: dropped{keep}")
    for col, parts in report["dates_expanded"].items():
        lines.append(f"data: column '{col}' holds dates: expanded into {', '.join(parts)}")
    for col, n in report["non_finite"].items():
        lines.append(f"data: column '{col}' has {n} infinite value(s): treated as missing (data.missing)")
    return lines
