"""The post-hoc frontier of a user's model (space posthoc_audit): robust accuracy against the kept
fraction of encoder weights, structured compression (SVD truncation, row pruning) beside
unstructured magnitude pruning, with the uncompressed model as the reference point."""

from __future__ import annotations

from pathlib import Path

import polars as pl

STRUCTURED = ("svd_truncate", "prune_rows")
UNSTRUCTURED = ("magnitude_layer", "magnitude_global")
REFERENCE = "none"


def posthoc_table(final: pl.DataFrame) -> pl.DataFrame:
    """Seed-mean robust / certified / clean accuracy per (norm, eps, compression, keep_frac), with
    each row's robust accuracy relative to the uncompressed model at the same (norm, eps)."""
    if "keep_frac" not in final.columns or "compression" not in final.columns:
        return pl.DataFrame()
    table = (
        final.group_by("norm", "eps", "compression", "keep_frac", maintain_order=True)
        .agg(pl.col("robust_acc").mean(), pl.col("certified_acc").mean(),
             pl.col("clean_acc").mean(), pl.len().alias("trials"))
        .with_columns(
            pl.when(pl.col("compression").is_in(STRUCTURED)).then(pl.lit("structured"))
            .when(pl.col("compression").is_in(UNSTRUCTURED)).then(pl.lit("unstructured"))
            .otherwise(pl.lit("reference")).alias("kind")
        )
    )
    reference = (table.filter(pl.col("compression") == REFERENCE)
                 .select("norm", "eps", pl.col("robust_acc").alias("reference_robust_acc")))
    return (table.join(reference, on=["norm", "eps"], how="left")
            .with_columns((pl.col("robust_acc") - pl.col("reference_robust_acc"))
                          .alias("robust_acc_change"))
            .sort("norm", "eps", "kind", "compression", "keep_frac"))


def winners(table: pl.DataFrame) -> pl.DataFrame:
    """Per (norm, eps, keep_frac): the best structured and best unstructured robust accuracy."""
    best = (table.filter(pl.col("kind") != "reference")
            .group_by("norm", "eps", "keep_frac", "kind").agg(pl.col("robust_acc").max())
            .pivot(on="kind", index=["norm", "eps", "keep_frac"], values="robust_acc"))
    if "structured" not in best.columns or "unstructured" not in best.columns:
        return pl.DataFrame()
    return best.with_columns(
        (pl.col("structured") - pl.col("unstructured")).alias("structured_minus_unstructured")
    ).sort("norm", "eps", "keep_frac")


def draw_posthoc(table: pl.DataFrame, path: Path) -> None:
    from matplotlib.figure import Figure  # Agg, no pyplot state (as analysis.plots)

    panels = table.select("norm", "eps").unique().sort("norm", "eps").rows()
    fig = Figure(figsize=(4 * len(panels), 3.4))
    fig.subplots_adjust(left=0.6 / (4 * len(panels)), right=0.98, bottom=0.16, top=0.9,
                        wspace=0.35)
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (norm, eps) in zip(axes[0], panels):
        part = table.filter((pl.col("norm") == norm) & (pl.col("eps") == eps))
        for (name,), group in part.filter(pl.col("kind") != "reference").group_by(
                "compression", maintain_order=True):
            group = group.sort("keep_frac")
            style = "-" if name in STRUCTURED else "--"
            ax.plot(group["keep_frac"], group["robust_acc"], style, marker="o", label=name)
        ref = part.filter(pl.col("kind") == "reference")
        if ref.height:
            ax.axhline(ref["robust_acc"][0], color="k", lw=0.8, label="uncompressed")
        ax.set_xscale("log")
        ax.set_xlabel("kept fraction of encoder weights")
        ax.set_ylabel("robust accuracy")
        ax.set_title(f"{norm}, eps={eps:g}")
    axes[0][0].legend(fontsize=7)
    fig.savefig(path, dpi=100)
