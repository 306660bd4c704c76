"""A stored run, read once into memory (:class:`Run`, :func:`load_run`), and the report's
statistical settings (:func:`report_settings`).

Only trials whose status is ``done`` enter any table; a run in progress or with failed
trials is reported on what is finished, and :func:`~ntklab.report.notes.run_notes`
says so.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import DataConfig, MethodConfig, ReportSection, StudyConfig
from ..store import FINAL, GENERATOR_METHOD, RunStore, StoreError
from .configs import (
    parse_data,
    parse_method,
    parse_points,
    parse_report,
    parse_study,
    point_methods,
)

__all__ = ["ReportError", "Run", "load_run", "report_section", "report_settings"]


class ReportError(ValueError):
    """A run, or a request about it, that a report cannot serve (a one-line message)."""


# ---- the run ---------------------------------------------------------------------------------
@dataclass(eq=False)
class Run:
    """A stored run, read once into memory.

    Attributes
    ----------
    path : Path
        The run directory.
    meta : dict
        The ``meta`` table (``config``, ``config_hash``, ``assumed``, ``versions``, ...).
    points : DataFrame
        ``point, params`` (params: dict keyed by dotted config path; ``{}`` without a sweep).
    methods : DataFrame
        ``method, kind, label, family, depth, parameterization, spec``, in the run's order.
    trials : DataFrame
        Every trial row, whatever its status.
    results : DataFrame
        ``point, trial, method, metric, step, value`` of the *finished* (``done``) trials only.
    errors : DataFrame
        Methods that failed inside trials.
    """

    path: Path
    meta: dict[str, Any]
    points: pd.DataFrame
    methods: pd.DataFrame
    trials: pd.DataFrame
    results: pd.DataFrame
    errors: pd.DataFrame
    _final: pd.DataFrame = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._final = self.results[self.results["step"] == FINAL]
        self._wide: dict[tuple[str, int | None], pd.DataFrame] = {}  # final()'s, computed once
        done = self.trials[self.trials["status"] == "done"]
        self._done: dict[int, set[int]] = {}
        for p, t in zip(done["point"], done["trial"], strict=True):
            self._done.setdefault(int(p), set()).add(int(t))
        keys = set(zip(done["point"].astype(int), done["trial"].astype(int), strict=True))
        errs = self.errors
        if len(errs):
            mask = [
                (int(p), int(t)) in keys for p, t in zip(errs["point"], errs["trial"], strict=True)
            ]
            errs = errs[mask]
        self._errors_done = errs
        self._typed: dict[Any, Any] = {}  # the config as the schema's models, read once
        self._attempted: dict[tuple[int, str], set[int]] = {}
        for df in (self.results, errs):
            for (p, m), grp in df.groupby(["point", "method"]):
                self._attempted.setdefault((int(p), str(m)), set()).update(
                    int(t) for t in grp["trial"]
                )

    # -- meta ----------------------------------------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        return self.meta.get("config") or {}

    @property
    def assumed(self) -> dict[str, Any]:
        """Values SPEC marks *assumed*, as the run set them ({name: value})."""
        return self.meta.get("assumed") or {}

    @property
    def versions(self) -> dict[str, Any]:
        return self.meta.get("versions") or {}

    @property
    def reductions(self) -> list[str]:
        """What a reduced preset changed against its full version (meta ``reductions``, e.g.
        ``"methods.NN2.width: 10000 -> 256"``); empty for a full run."""
        red = self.meta.get("reductions") or []
        if isinstance(red, str | dict):
            red = [red] if isinstance(red, str) else [f"{k}: {v}" for k, v in red.items()]
        return [str(r) for r in red]

    @property
    def settings(self) -> dict[str, float]:
        """The report's statistical settings: ``equivalence_margin`` (relative) and ``alpha``
        from the config's ``report`` table (:class:`~ntklab.config.schema.ReportSection`)."""
        return report_settings(self)

    @property
    def study_config(self) -> StudyConfig | None:
        """The stored config as the schema's :class:`StudyConfig` (None for a store whose
        config the schema does not accept)."""
        if "study" not in self._typed:
            self._typed["study"] = parse_study(self.config)
        return self._typed["study"]

    @property
    def data_config(self) -> DataConfig | None:
        """The config's ``[data]`` as a :class:`DataConfig` (None without one)."""
        if "data" not in self._typed:
            study = self.study_config
            self._typed["data"] = study.data if study is not None else parse_data(self.config)
        return self._typed["data"]

    def method_config(self, method: str, point: int | None = None) -> MethodConfig:
        """A method's resolved settings as a :class:`MethodConfig`: at sweep point ``point``
        (its swept values applied: the stored sweep replayed, else the point's values
        applied to the methods table's specs), else the base config's, else the methods
        table's spec (:mod:`ntklab.report.configs`)."""
        key = ("method", method, point)
        if key not in self._typed:
            found = None
            if point is not None and len(self.points) > 1:
                if "points" not in self._typed:
                    stored = {p: self.point_params(p) for p in self.point_ids}
                    self._typed["points"] = parse_points(self.config, stored)
                found = _named(self._typed["points"].get(point), method)
                if found is None:
                    specs = {
                        m: (k, s)
                        for m, k, s in zip(
                            self.methods["method"], self.methods["kind"], self.methods["spec"],
                            strict=True,
                        )
                    }  # fmt: skip
                    found = point_methods(specs, self.point_params(point)).get(method)
            if found is None:
                found = _named(self.study_config, method)
            if found is None:
                info = self.method_info(method)
                found = parse_method(method, info.get("kind"), info.get("spec"))
            self._typed[key] = found
        return self._typed[key]

    @property
    def name(self) -> str:
        return str(self.meta.get("name") or self.path.name)

    @property
    def point_ids(self) -> list[int]:
        return [int(p) for p in self.points["point"]]

    @property
    def method_names(self) -> list[str]:
        """Methods in the run's order (those of the methods table, then any others in results;
        never :data:`~ntklab.store.GENERATOR_METHOD`, whose rows are about the data)."""
        names = list(self.methods["method"])
        extra = sorted(set(self._final["method"]) - set(names) - {GENERATOR_METHOD})
        return names + extra

    def point_params(self, point: int) -> dict[str, Any]:
        row = self.points.loc[self.points["point"] == point, "params"]
        return dict(row.iloc[0]) if len(row) else {}

    def point_label(self, point: int) -> str:
        """``point 1 (methods.NN.width = 1024)``, or ``all trials`` without a sweep."""
        params = self.point_params(point)
        if not params:
            return "all trials" if len(self.points) <= 1 else f"point {point}"
        inner = ", ".join(f"{k} = {v}" for k, v in params.items())
        return f"point {point} ({inner})"

    def method_info(self, method: str) -> dict[str, Any]:
        row = self.methods.loc[self.methods["method"] == method]
        if not len(row):
            return {
                "method": method,
                "kind": "",
                "label": method,
                "family": None,
                "depth": None,
                "parameterization": None,
                "spec": {},
            }
        info = row.iloc[0].to_dict()
        info["depth"] = None if pd.isna(info.get("depth")) else int(info["depth"])
        for key in ("family", "parameterization", "label", "kind"):
            if isinstance(info.get(key), float) and math.isnan(info[key]):
                info[key] = None
        info["label"] = info.get("label") or method
        return info

    def method_trial_limit(self, method: str) -> int | None:
        """The method's own trial count (``trials`` of its :class:`MethodConfig`), when it
        runs in fewer trials than the study; else None."""
        return self.method_config(method).trials

    def expected_trials(self, method: str, point: int) -> int:
        """Finished trials at ``point`` that should have a value of ``method``: all of them,
        or with a per-method trial count the first ``trials`` of them (and any other in which
        the method wrote a row or failed)."""
        done = self._done.get(point, set())
        limit = self.method_trial_limit(method)
        if limit is None:
            return len(done)
        tried = self._attempted.get((point, method), set())
        return len({t for t in done if t < limit} | (tried & done))

    def n_diverged(self, method: str, point: int) -> int:
        """Finished trials at ``point`` in which the network ``method`` diverged."""
        div = self.final("diverged", point)
        return int((div[method] > 0).sum()) if method in div else 0

    def n_method_errors(self, method: str, point: int) -> int:
        """Finished trials at ``point`` in which ``method`` raised an error."""
        err = self._errors_done
        sel = (err["point"] == point) & (err["method"] == method)
        return int(err.loc[sel, "trial"].nunique())

    def is_network(self, method: str) -> bool:
        """True for a trained finite network (``kind = "network"`` in the methods table)."""
        return self.method_info(method).get("kind") == "network"

    @property
    def network_methods(self) -> list[str]:
        return [m for m in self.method_names if self.is_network(m)]

    # -- trial status --------------------------------------------------------------------------
    @property
    def n_expected(self) -> int | None:
        """Trials the run will have when complete (``n_trials`` x sweep points), if known."""
        n = self.meta.get("n_trials")
        return int(n) * max(len(self.points), 1) if n is not None else None

    @property
    def n_done(self) -> int:
        return int((self.trials["status"] == "done").sum())

    @property
    def n_failed(self) -> int:
        return int((self.trials["status"] == "failed").sum())

    def require_finished(self) -> None:
        """Raise :class:`ReportError` if no trial has finished yet."""
        if self.n_done == 0:
            of = f" of {self.n_expected}" if self.n_expected is not None else ""
            failed = f", {self.n_failed} failed" if self.n_failed else ""
            raise ReportError(
                f"run {self.path} has no finished trials yet (0{of}{failed}); wait for "
                "`ntklab run` to finish a trial (see `ntklab status RUN_DIR`)"
            )

    # -- values --------------------------------------------------------------------------------
    def final(self, metric: str = "rmse", point: int | None = None) -> pd.DataFrame:
        """Final values of ``metric``: index ``(point, trial)``, one column per method.

        Non-finite values (e.g. the RMSE of a diverged network) become NaN. (A run is read
        once and never changes: each table is computed once and handed out as a copy.)
        """
        key = (metric, point)
        if key not in self._wide:
            df = self._final[self._final["metric"] == metric]
            if point is not None:
                df = df[df["point"] == point]
            wide = df.pivot(index=["point", "trial"], columns="method", values="value")
            wide = wide.reindex(columns=[m for m in self.method_names if m in wide.columns])
            wide.columns.name = None
            self._wide[key] = wide.where(np.isfinite(wide))
        return self._wide[key].copy()

    def jitter(self, point: int | None = None) -> pd.DataFrame:
        """The nonzero jitter of the finished trials: columns ``point, trial, method, value``,
        ``method`` :data:`~ntklab.store.GENERATOR_METHOD` for the data generator's Cholesky
        factor (metric ``generator_jitter``), else a method's Cholesky solve (``jitter``)."""
        df = self._final
        sel = df["metric"].isin(("jitter", "generator_jitter")) & (df["value"] != 0)
        if point is not None:
            sel &= df["point"] == point
        order = {m: i for i, m in enumerate([GENERATOR_METHOD, *self.method_names])}
        out = df.loc[sel, ["point", "trial", "method", "value"]]
        out = out.assign(_order=out["method"].map(order).fillna(len(order)))
        return (
            out.sort_values(["point", "_order", "trial"])
            .drop(columns="_order")
            .reset_index(drop=True)
        )

    def values(self, method: str, metric: str = "rmse", point: int = 0) -> pd.Series:
        """Finite final values of one method at one point, indexed by trial."""
        df = self._final
        sel = (df["method"] == method) & (df["metric"] == metric) & (df["point"] == point)
        s = df.loc[sel].set_index("trial")["value"].astype(float).sort_index()
        return s[np.isfinite(s)]

    def common_trials(
        self, methods: list[str], metric: str = "rmse", point: int = 0
    ) -> pd.DataFrame:
        """Final values of ``methods`` (columns, in that order) on the trials at ``point`` where
        all of them are finite; no rows when one of them has no value there."""
        wide = self.final(metric, point)
        if not set(methods) <= set(wide.columns):
            return pd.DataFrame(columns=list(methods), dtype=float)
        return wide[list(methods)].dropna()

    def check_method(self, method: str, what: str = "method") -> str:
        """``method``, or :class:`ReportError` naming the run's methods when it is not one."""
        if method not in self.method_names:
            raise ReportError(
                f"{what} {method!r} is not a method of run {self.path}; choose one of "
                f"{', '.join(self.method_names)}"
            )
        return method

    def check_point(self, point: int | None) -> int:
        """``point`` (default the first), or :class:`ReportError` when it is not a sweep point."""
        if point is None:
            return self.point_ids[0]
        if point not in self.point_ids:
            raise ReportError(
                f"point {point} is not a sweep point of the run; choose one of {self.point_ids}"
            )
        return point

    def curves(self, metric: str, point: int | None = None) -> pd.DataFrame:
        """Rows of a training-curve metric (``step`` >= 0)."""
        df = self.results[(self.results["metric"] == metric) & (self.results["step"] != FINAL)]
        return df if point is None else df[df["point"] == point]

    def has_metric(self, metric: str) -> bool:
        return bool((self.results["metric"] == metric).any())

    def width(self, point: int, method: str) -> float:
        """Hidden-layer width of a network method at a sweep point (its
        :class:`MethodConfig` there; NaN if unknown)."""
        width = self.method_config(method, point).width
        return float(width) if width is not None else math.nan


def load_run(path: str | Path) -> Run:
    """Read a run directory written by ``ntklab run``.

    Raises
    ------
    ReportError
        If ``path`` is not a run directory or its store cannot be read.
    """
    try:
        with RunStore.open(path) as store:
            meta = store.meta()
            trials = store.trials()
            results = store.results()
            run = Run(
                path=Path(path),
                meta=meta,
                points=store.points(),
                methods=store.methods(),
                trials=trials,
                results=_done_rows(results, trials),
                errors=store.errors(),
            )
    except StoreError as exc:
        raise ReportError(str(exc)) from None
    except (json.JSONDecodeError, pd.errors.DatabaseError) as exc:
        raise ReportError(f"{path} holds an unreadable ntklab store ({exc})") from None
    if not len(run.points):
        run.points = pd.DataFrame({"point": [0], "params": [{}]})
    return run


def _done_rows(results: pd.DataFrame, trials: pd.DataFrame) -> pd.DataFrame:
    done = trials.loc[trials["status"] == "done", ["point", "trial"]]
    return results.merge(done, on=["point", "trial"], how="inner").reset_index(drop=True)


def _named(config: StudyConfig | None, method: str) -> MethodConfig | None:
    if config is None:
        return None
    return next((m for m in config.methods if m.name == method), None)


def report_section(run: Run) -> ReportSection:
    """The run config's ``[report]`` table as its :class:`~ntklab.config.schema.ReportSection`
    (its defaults where the config sets none).

    Raises
    ------
    ReportError
        If the table is invalid (one line naming the key).
    """
    try:
        section = run.study_config.report if run.study_config is not None else None
        return section or parse_report(run.config)
    except ValueError as exc:
        raise ReportError(str(exc)) from None


def report_settings(
    run: Run, *, margin: float | None = None, alpha: float | None = None
) -> dict[str, float]:
    """``{"equivalence_margin": ..., "alpha": ...}``: the arguments, else the run config's
    ``[report]`` table (:class:`~ntklab.config.schema.ReportSection`, with its defaults).
    The margin is *relative* to the mean of the reference method of each comparison.

    Raises
    ------
    ReportError
        If the margin is not a positive number or alpha is not in (0, 1).
    """
    out: dict[str, Any] = report_section(run).model_dump()
    if margin is not None:
        out["equivalence_margin"] = margin
    if alpha is not None:
        out["alpha"] = alpha
    m, a = out["equivalence_margin"], out["alpha"]
    if isinstance(m, bool) or not isinstance(m, int | float) or not (math.isfinite(m) and m > 0):
        raise ReportError(
            f"the equivalence margin must be a positive number (relative, e.g. 0.02); got {m!r}"
        )
    if isinstance(a, bool) or not isinstance(a, int | float) or not 0 < a < 1:
        raise ReportError(f"alpha must be in (0, 1); got {a!r}")
    return {"equivalence_margin": float(m), "alpha": float(a)}
