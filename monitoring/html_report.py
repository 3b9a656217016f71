"""The monitoring report as one self-contained HTML file: verdicts, distributions, the review queue.

Everything is inline (CSS, PNG figures as data URIs), so the file opens offline, from a mail attachment or an
MLflow artifact view alike.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from monitoring.monitor import Traffic
from monitoring.reference import Reference

STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:1150px;color:#1f2933}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #e4e7eb}
.verdict{display:inline-block;padding:.35rem .8rem;border-radius:6px;font-weight:600;color:#fff}
.ok{background:#2f8132}.drift{background:#c62828} .muted{color:#616e7c}
table{border-collapse:collapse;width:100%;font-size:.92rem} td,th{border-bottom:1px solid #e4e7eb;padding:.4rem;
text-align:left;vertical-align:top} th{background:#f5f7fa} td.num{text-align:right;font-variant-numeric:tabular-nums}
.figs{display:flex;flex-wrap:wrap;gap:1rem} .figs img{width:360px;border:1px solid #e4e7eb;border-radius:4px}
code{background:#f5f7fa;padding:0 .2rem}
"""


def _axes() -> Any:
    from matplotlib.figure import Figure  # not pyplot: no backend to pick, no figure left open

    return Figure(figsize=(4.2, 2.8)).subplots()


def _figure_uri(ax: Any, title: str) -> str:
    """The axes' figure, titled and with its legend, as a PNG data URI."""
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    buffer = io.BytesIO()
    ax.figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _histogram(title: str, reference: Sequence[float], current: tuple[np.ndarray, np.ndarray],
               bins: np.ndarray) -> str:
    """`current`: (values, rows with each value), as the database counted them."""
    ax = _axes()
    ax.hist(reference, bins=bins, density=True, alpha=0.55, label="reference", color="#3e7cb1")
    ax.hist(current[0], bins=bins, weights=current[1], density=True, alpha=0.55, label="window", color="#e4572e")
    return _figure_uri(ax, title)


def _bars(title: str, labels: Sequence[str], reference: dict[str, float], current: dict[str, float]) -> str:
    x = np.arange(len(labels))
    ax = _axes()
    ax.bar(x - 0.2, [reference[k] for k in labels], 0.4, label="train labels", color="#3e7cb1")
    ax.bar(x + 0.2, [current[k] for k in labels], 0.4, label="predicted (window)", color="#e4572e")
    ax.set_xticks(x, labels)
    return _figure_uri(ax, title)


def _fmt(value: Any) -> str:
    return "–" if value is None else f"{value:.3f}" if isinstance(value, float) else html.escape(str(value))


def _check_row(check: dict[str, Any]) -> str:
    verdict = "<b style=color:#c62828>drift</b>" if check["drifted"] else "ok"
    if "skipped" in check["detail"]:
        verdict += f"<br><span class=muted>{html.escape(check['detail']['skipped'])}</span>"
    return (f"<tr><td><b>{html.escape(check['name'])}</b></td><td>{html.escape(check['method'])}</td>"
            f"<td class=num>{_fmt(check['figure'])}</td><td class=num>{_fmt(check['threshold'])}</td>"
            f"<td>{verdict}</td></tr>")


def render(summary: dict[str, Any], reference: Reference, traffic: Traffic) -> str:
    checks = summary["checks"]
    drift = summary["drift_detected"]
    verdict = ("DRIFT: " + ", ".join(summary["drifted"])) if drift else "no drift"
    check_rows = "".join(_check_row(c) for c in checks.values())
    marks = checks["text"]["detail"].get("marks_current") or []
    confidence_bins = np.linspace(min(reference.confidence.min(), traffic.scores[0].min()), 1.0, 21)
    length_cap = float(np.percentile(reference.n_chars, 99))
    length_bins = np.linspace(0, length_cap, 26)
    figures = [
        _bars("labels", reference.model_labels, checks["labels"]["detail"]["train_share"],
              checks["labels"]["detail"]["current_share"]),
        _histogram("confidence (top-label probability)", reference.confidence, traffic.scores, confidence_bins),
        _histogram("characters per text", np.minimum(reference.n_chars, length_cap),
                   (np.minimum(traffic.lengths[0], length_cap), traffic.lengths[1]), length_bins),
    ]
    queue_rows = "".join(
        f"<tr><td><code>{html.escape(q['id'])}</code></td><td>{html.escape(q['text'] or '(hash only)')}</td>"
        f"<td>{html.escape(q['predicted'])}</td><td class=num>{q['score']:.3f}</td><td class=num>{q['count']}</td></tr>"
        for q in summary["review_queue"])
    window = summary["window"]
    return f"""<!doctype html><html lang=en><head><meta charset=utf-8><title>textclf monitoring report</title>
<style>{STYLE}</style></head><body>
<h1>textclf monitoring report</h1>
<p class=muted>{html.escape(window['since'])} → {html.escape(window['until'])} · {summary['rows']} predictions ·
model {html.escape(', '.join(summary['models']))}</p>
<p><span class="verdict {'drift' if drift else 'ok'}">{html.escape(verdict)}</span></p>
<h2>Checks</h2>
<table><tr><th>check</th><th>method</th><th>figure</th><th>threshold</th><th>verdict</th></tr>{check_rows}</table>
<h2>Distributions: reference (train split; model confidence on the test split) against this window</h2>
<div class=figs>{''.join(f'<img alt="distribution" src="{uri}">' for uri in figures)}</div>
<h2>What marks this window's texts</h2>
<p>{'The domain classifier leans on these character n-grams to tell this window from the train split: '
    + ' · '.join(f'<code>{html.escape(m)}</code>' for m in marks) if marks else 'Nothing stands out.'}</p>
<h2>Review queue: the least confident predictions, to label first</h2>
<p class=muted><code>python -m pipelines.feedback queue to_label.csv</code> writes them with their ids; send each
label back with <code>POST /feedback {{"id": ..., "label": ...}}</code>.</p>
<table><tr><th>id</th><th>text</th><th>predicted</th><th>score</th><th>seen</th></tr>{queue_rows}</table>
</body></html>
"""
