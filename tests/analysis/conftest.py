"""Write result stores in the layout trainables/schema.py defines, with known answers.

`write_store` writes any tables you give it; `synthetic_run` builds a whole run whose numbers
follow simple known rules (robust accuracy falls with compressibility, certified <= attacked <=
clean, bound >= measured gap), so figures and tables have something real to show.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from trainables import schema

_POLARS = {"str": pl.String, "int64": pl.Int64, "float64": pl.Float64, "bool": pl.Boolean}


def write_store(
    run_dir: Path,
    tables: dict[str, pl.DataFrame],
    hyperparameters: dict[str, str],
    *,
    schema_version: int = schema.SCHEMA_VERSION,
    spec: dict | None = None,
    files_per_table: int = 2,
) -> Path:
    """Write run.json, store/_schema.json and each table split over several Parquet files.
    Missing tables are written as no files (an empty table)."""
    store = run_dir / "store"
    store.mkdir(parents=True, exist_ok=True)
    declared = {name: dict(cols) for name, cols in schema.TABLES.items()}
    declared["trials"].update(hyperparameters)
    (store / "_schema.json").write_text(
        json.dumps({"schema_version": schema_version, "tables": declared})
    )
    run_spec = {"run_id": run_dir.name, "space": "synthetic", "scale": "smoke"} | (spec or {})
    (run_dir / "run.json").write_text(json.dumps(run_spec))
    for name, columns in declared.items():
        folder = store / name
        folder.mkdir(exist_ok=True)
        frame = tables.get(name)
        if frame is None or frame.height == 0:
            continue
        # A column the synthetic rows do not set is written as nulls (as a trial that did not
        # measure it would), so a new contract column needs no edit here.
        frame = frame.select([
            (pl.col(c) if c in frame.columns else pl.lit(None)).cast(_POLARS[t]).alias(c)
            for c, t in columns.items()
        ])
        for i, part in enumerate(np.array_split(np.arange(frame.height), files_per_table)):
            if len(part):
                frame[part].write_parquet(folder / f"part-{i:03d}.parquet")
    return run_dir


def synthetic_run(
    run_dir: Path,
    *,
    knobs: tuple[str, ...] = ("nuclear", "rank"),
    strengths: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0),
    seeds: tuple[int, ...] = (0, 1, 2),
    eps: dict[str, tuple[float, ...]] | None = None,
    settings: dict[str, tuple] | None = None,
    uap: bool = False,
    failed: int = 1,
) -> Path:
    """A run with one trial per (knob, strength, setting, seed). Compressibility rises with
    strength; robust accuracy = 0.85 - 0.5 * comp^2 * eps / max eps (+ seed noise); certified is
    half of attacked; the bound is 4-14x the measured gap. `failed` extra trials are errored."""
    eps = eps or {"linf": (0.01, 0.04), "l2": (0.25, 0.5)}
    settings = settings or {}
    rng = np.random.default_rng(7)
    grid = [{}]
    for name, values in settings.items():
        grid = [g | {name: v} for g in grid for v in values]
    trials, history, robustness, layers = [], [], [], []
    for knob in knobs:
        for strength in strengths:
            for setting in grid:
                for seed in seeds:
                    tid = f"t{len(trials):04d}"
                    comp = float(np.clip(0.2 + 0.7 * strength + rng.normal(0, 0.02), 0, 1))
                    scale = setting.get("weight_scale", 1.0)
                    at_eps = setting.get("at_eps", 0.0)
                    clean = float(0.9 - 0.02 * strength + rng.normal(0, 0.005) - at_eps)
                    trials.append({
                        "run_id": run_dir.name, "trial_id": tid, "space": "synthetic",
                        "status": "completed", "seed": seed, "iterations": 3,
                        "clean_acc": clean, "neuron_comp": comp * 0.9, "neuron_comp_l2": comp,
                        "spectral_comp": comp,
                        "wall_seconds": 1.0, "error": "", "compression": knob,
                        "strength": strength, **setting,
                    })
                    trials[-1]["robust_acc"] = None
                    for it in (1, 2, 3):
                        history.append({
                            "trial_id": tid, "iteration": it, "time": float(it),
                            "epoch_seconds": 1.0, "train_loss": 1.0 / it, "train_acc": clean,
                            "clean_acc": clean, "clean_loss": 0.3, "robust_acc": 0.5,
                            "neuron_comp": comp * 0.9, "neuron_comp_l2": comp,
                            "spectral_comp": comp, "lip_linf": 10.0, "lip_l2": 5.0,
                            "diverged": False, **_scale_free(comp),
                            "val_loss": float("nan"), "selected_epoch": it,
                        })
                        robustness += _robustness_rows(tid, it, comp, clean, eps, scale, uap, rng)
                        layers += _layer_rows(tid, it, comp)
                    trials[-1]["robust_acc"] = robustness[-1]["robust_acc"]
    for _ in range(failed):
        trials.append(trials[0] | {"trial_id": f"t{len(trials):04d}", "status": "errored",
                                   "error": "boom", "iterations": 0})
    hyper = {"compression": "str", "strength": "float64"}
    hyper |= {name: _type_of(values[0]) for name, values in settings.items()}
    tables = {
        "trials": pl.DataFrame(trials),
        "history": pl.DataFrame(history),
        "robustness": pl.DataFrame(robustness),
        "layers": pl.DataFrame(layers),
    }
    # run.json says how many samples each accuracy was measured on, as the launcher's does
    return write_store(run_dir, tables, hyper, spec={"fixed": {"n_eval": N_EVAL}})


N_EVAL = 200


def _robustness_rows(tid, it, comp, clean, eps, scale, uap, rng) -> list[dict]:
    rows = []
    for norm, budgets in eps.items():
        for e in budgets:
            load = comp**2 * e / max(budgets)
            for attack, extra in (("pgd", 0.0), ("autoattack", 0.03)):
                robust = float(np.clip(clean - 0.05 - 0.5 * load - extra + rng.normal(0, 0.01),
                                       0, clean))
                measured = e * (1 + 3 * comp) * (1 + extra)
                rows.append(_robust_row(tid, it, norm, e, attack, robust, clean, measured, comp))
            if uap:
                fooling = float(np.clip(0.1 + 0.6 * comp * e / max(budgets) * scale, 0, 1))
                rows.append(_robust_row(tid, it, norm, e, "uap", clean * (1 - fooling), clean,
                                        e * comp, comp) | {"fooling_rate": fooling})
    return rows


def _robust_row(tid, it, norm, e, attack, robust, clean, measured, comp) -> dict:
    return {
        "trial_id": tid, "iteration": it, "norm": norm, "eps": e, "attack": attack,
        "robust_acc": robust, "adv_loss": 0.3 + measured, "clean_loss": 0.3, "clean_acc": clean,
        "certified_acc": robust / 2, "measured_gap": measured,
        "bound_gap": e * (1 + 3 * comp) * (4 + 10 * comp), "align_est_gap": 1.5 * measured,
        "first_order_gap": 0.9 * measured, "median_r_emp": e * 2, "median_r_cert": e / 3,
        "align_top": 0.2 + 0.5 * comp, "align_rest": 0.05, "fooling_rate": float("nan"),
    }


def _layer_rows(tid, it, comp) -> list[dict]:
    rows = []
    for index in range(2):
        row = {"trial_id": tid, "iteration": it, "layer": f"encoder.{index}",
               "layer_index": index, "fro_norm": 3.0, "spec_norm": 1 + 2 * comp,
               "op_norm_l2": 1 + 2 * comp, "inf_norm": 4.0, "entropy": 3 - 2 * comp,
               "effective_rank": float(np.exp(3 - 2 * comp)), "stable_rank": 9 / (1 + 2 * comp)**2,
               "zero_row_frac": 0.0, **_scale_free(comp)}
        for kappa, column in zip(schema.KAPPAS, schema.comp_columns("spectral_spread")):
            row[column] = 1.0 + 10 * comp * kappa
        for prefix in ("neuron_comp_l1", "neuron_comp_l2", "spectral_comp"):
            for kappa, column in zip(schema.KAPPAS, schema.comp_columns(prefix)):
                row[column] = min(1.0, comp * (0.6 + kappa) + 0.1 * index)
        rows.append(row)
    return rows


def _scale_free(comp: float) -> dict[str, float]:
    """Scale-free statistics that fall as compressibility rises (schema.SCALE_FREE_STATS)."""
    ratio = 1.0 + 15.0 * (1.0 - comp)
    return {"stable_rank": 9 / (1 + 2 * comp)**2, "spectral_l1l2": ratio,
            "neuron_l1l2_l1": ratio * 0.9, "neuron_l1l2_l2": ratio, "spec_fro": (1 + 2 * comp) / 3,
            "inf_fro": 0.1 + comp, "spectral_spread": 1.0 + comp}


def _type_of(value) -> str:
    if isinstance(value, bool):
        return "bool"
    return {int: "int64", float: "float64"}.get(type(value), "str")


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory) -> Path:
    """A plain compression sweep: two knobs, five strengths, three seeds, two norms."""
    return synthetic_run(tmp_path_factory.mktemp("runs") / "plain")


@pytest.fixture(scope="session")
def uap_run_dir(tmp_path_factory) -> Path:
    """A sweep with the weight-scaling control, adversarial training and UAP rows."""
    return synthetic_run(
        tmp_path_factory.mktemp("runs") / "uap",
        knobs=("nuclear",),
        strengths=(0.0, 0.5, 1.0),
        seeds=(0, 1),
        eps={"linf": (0.02,)},
        settings={"weight_scale": (1.0, 2.0), "at_eps": (0.0, 0.01)},
        uap=True,
    )
