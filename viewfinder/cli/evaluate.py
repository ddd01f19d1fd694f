"""`viewfinder eval DIR`: text-to-image retrieval figures on a captioned folder."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click

from ..errors import ViewfinderError
from .app import cli, fail, settings_from, show_model_progress


@cli.command("eval")
@click.argument("folder", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--model", default=None, help="Embedding model [env VIEWFINDER_MODEL].")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def evaluate(folder: Path, model: str | None, as_json: bool) -> None:
    """Evaluate retrieval on FOLDER (images/ + captions.jsonl): Recall@1/5/10, median rank.

    Images are indexed through the server's own upload and worker code into a temporary data
    directory (the model cache, VIEWFINDER_CACHE_DIR, is reused); every caption is a query.
    The indexing speed counts decoding, embedding and storing, not loading the model.
    """
    from ..eval_runner import run_eval

    show_model_progress()
    base = settings_from(model=model)
    with tempfile.TemporaryDirectory(prefix="viewfinder-eval-") as tmp:
        settings = base.model_copy(
            update={
                "database_url": f"sqlite:///{Path(tmp) / 'eval.db'}",
                "blob_url": f"file://{Path(tmp) / 'blobs'}",
                "vector_url": f"exact://{Path(tmp) / 'vectors.db'}",
            }
        )
        try:
            report = run_eval(folder, settings)
        except ViewfinderError as exc:
            fail(exc)
    m = report.metrics
    figures = {
        "model": report.model_id,
        "images": m.n_images,
        "queries": m.n_queries,
        "recall_at_1": round(m.recall_at_1, 2),
        "recall_at_5": round(m.recall_at_5, 2),
        "recall_at_10": round(m.recall_at_10, 2),
        "median_rank": m.median_rank,
        "indexing_images_per_s": round(report.images_per_s, 2),
        "model_load_s": round(report.load_s, 2),
        "query_ms": round(report.query_ms, 2),
        "failed_images": report.failed,
        "subsets": {
            name: {
                "queries": s.n_queries,
                "recall_at_1": round(s.recall_at_1, 2),
                "recall_at_5": round(s.recall_at_5, 2),
                "recall_at_10": round(s.recall_at_10, 2),
            }
            for name, s in report.subsets.items()
        },
        "calibration": [
            {"threshold": r.threshold, "precision": r.precision, "recall": r.recall}
            for r in report.calibration
        ],
    }
    if as_json:
        click.echo(json.dumps(figures, indent=2))
        return
    click.echo(f"model            {report.model_id}")
    click.echo(f"images, queries  {m.n_images}, {m.n_queries}")
    click.echo(f"Recall@1/5/10    {m.recall_at_1:.1f} / {m.recall_at_5:.1f} / {m.recall_at_10:.1f}")
    click.echo(f"median rank      {m.median_rank:g}")
    for name, s in report.subsets.items():
        click.echo(
            f"  {name + ' captions':<17}{s.recall_at_1:.1f} / {s.recall_at_5:.1f} / "
            f"{s.recall_at_10:.1f}  ({s.n_queries} queries)"
        )
    click.echo(f"indexing         {report.images_per_s:.1f} images/s (decode + embed + commit)")
    click.echo(f"model load       {report.load_s:.1f} s (not counted above)")
    click.echo(f"query            {report.query_ms:.1f} ms (embed + rank)")
    if report.failed:
        click.echo(f"failed images    {report.failed}")
    click.echo("score threshold  precision  recall")
    for r in report.calibration:
        precision = "-" if r.precision is None else f"{100 * r.precision:.1f}%"
        click.echo(f"  {r.threshold:.1f}            {precision:>8}  {100 * r.recall:5.1f}%")
