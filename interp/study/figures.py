"""Paper figures from a saved run directory: pure functions of its typed records (report.json,
directions.safetensors, per_prompt.jsonl, read through RunDir). Nothing here imports or loads a model.
Each figure is saved as PNG and PDF, with fixed metadata so a rerun writes identical files. The kinds
drawn follow the run's own contrast table.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from interp.behaviour.judge import is_suppressed  # noqa: E402
from interp.core.errors import InterpError  # noqa: E402
from interp.study.records import PairedRow, Report  # noqa: E402
from interp.study.rundir import RunDir  # noqa: E402
from interp.study.search_records import SearchResult  # noqa: E402

__all__ = ["FIGURES", "STYLE", "Run", "cosine_matrix", "cross_model", "load_run", "make_all", "make_cross_model", "save",
           "search_front", "write_search_front"]

COLORS = {"censorship": "#c0392b", "refusal": "#2c3e50", "random": "#95a5a6", "before": "#7f8c8d", "after": "#27ae60",
          "faithful before": "#aab7b8", "faithful after": "#2980b9", "invented after": "#e67e22"}
STYLE = {"figure.dpi": 120, "savefig.dpi": 150, "font.size": 9, "axes.spines.top": False,
         "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3, "svg.hashsalt": "interp"}


def _color(kind: str) -> str:
    return COLORS.get(kind, "#8e44ad")


@dataclass
class Run:
    report: Report
    candidates: dict[str, torch.Tensor]  # kind -> [layer, pos, d_model]
    per_prompt: list[PairedRow]

    @property
    def caption(self) -> str:
        return f"{self.report.model.name} ({self.report.model.dtype})"

    @property
    def kinds(self) -> tuple[str, ...]:
        """The extracted (not derived) kinds, in the run's contrast-table order."""
        return tuple(k for k, c in self.report.contrasts.items() if not c.derived and k in self.report.kinds)


def load_run(run_dir: Path | str) -> Run:
    run_dir = RunDir(run_dir)
    run = Run(run_dir.report(), run_dir.direction_candidates(), run_dir.per_prompt())
    _check_consistent(run, run_dir.path)
    return run


def _check_consistent(run: Run, path: Path) -> None:
    """The figures index the report by its own kinds, selected layers and candidates: a run whose files
    contradict each other is refused here, naming them, not met as a KeyError inside a figure."""
    fix = "the run's files do not belong together; rerun `interp run` into a new --out"
    report = run.report
    for kind in run.kinds:
        chosen = report.kinds[kind]
        if not any(r.layer == chosen.layer and r.position == chosen.position and r.bypass_score is not None
                   for r in report.sweeps.get(kind, ())):
            raise InterpError(f"{path / 'report.json'}: the {kind} sweep has no scored row for the selected "
                              f"layer {chosen.layer}, position {chosen.position}; {fix}")
        if any(kind not in p.values for p in report.projections):
            raise InterpError(f"{path / 'report.json'}: a projection lacks the {kind} direction; {fix}")
    for kind in ("censorship", "refusal"):
        found = run.candidates.get(kind)
        position = report.kinds[kind].position if kind in report.kinds else None
        if found is None or position is None or found.ndim != 3 or not -found.shape[1] <= position < found.shape[1]:
            raise InterpError(f"{path / 'directions.safetensors'}: no {kind} candidates matching report.json's "
                              f"selected {kind} direction; {fix}")


def layer_sweep(run: Run) -> plt.Figure:
    """Bypass, induce and KL of every (layer, position) candidate; the selected one starred."""
    fig, axes = plt.subplots(3, len(run.kinds), figsize=(4.5 * len(run.kinds), 7), sharex=True, squeeze=False)
    for col, kind in enumerate(run.kinds):
        rows = [r for r in run.report.sweeps[kind] if r.bypass_score is not None]
        chosen = run.report.kinds[kind]
        for row_index, metric in enumerate(("bypass_score", "induce_score", "kl")):
            ax = axes[row_index, col]
            for pos in sorted({r.position for r in rows}):
                pts = sorted((r.layer, getattr(r, metric)) for r in rows if r.position == pos)
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", lw=1, label=f"pos {pos}")
            best = next(r for r in rows if r.layer == chosen.layer and r.position == chosen.position)
            ax.plot(best.layer, getattr(best, metric), marker="*", ms=14, color=_color(kind), zorder=5, label="selected")
            ax.set_ylabel({"bypass_score": "bypass (log-odds)", "induce_score": "induce (log-odds)", "kl": "KL (nats)"}[metric])
            if metric == "kl":
                ax.set_yscale("symlog", linthresh=0.01)
                ax.axhline(run.report.config.kl_threshold, ls="--", color="k", lw=0.8)
        axes[0, col].set_title(f"{kind} direction candidates")
        axes[-1, col].set_xlabel("layer (resid_pre)")
    axes[0, 0].legend(fontsize=7, ncol=2)
    fig.suptitle(f"Direction selection sweep: {run.caption}")
    return fig


def cosine(run: Run) -> plt.Figure:
    """Censorship vs refusal: cosine per layer, and between every pair of layers."""
    c, r = run.report.kinds["censorship"].position, run.report.kinds["refusal"].position
    cens, ref = run.candidates["censorship"][:, c], run.candidates["refusal"][:, r]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    per_layer = run.report.cosine_censorship_refusal
    left.plot(range(len(per_layer)), per_layer, marker=".", color=_color("censorship"))
    left.axhline(0, color="k", lw=0.6)
    left.set(xlabel="layer", ylabel="cosine(censorship, refusal)", ylim=(-1, 1), title="same layer")
    image = right.imshow(cosine_matrix(cens, ref).numpy(), cmap="RdBu_r", vmin=-1, vmax=1, origin="lower")
    right.set(xlabel="refusal direction layer", ylabel="censorship direction layer", title="across layers")
    right.grid(False)
    fig.colorbar(image, ax=right, shrink=0.8)
    fig.suptitle(f"Is censorship the refusal direction? {run.caption}")
    return fig


def cosine_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[layer_a, layer_b] cosine similarity between two [layer, d_model] stacks of directions."""
    a = torch.nn.functional.normalize(a.float(), dim=-1, eps=1e-12)
    b = torch.nn.functional.normalize(b.float(), dim=-1, eps=1e-12)
    return a @ b.T


def projections(run: Run) -> plt.Figure:
    """Histogram of each prompt's projection on the selected direction, by group and language."""
    rows = run.report.projections
    fig, axes = plt.subplots(2, len(run.kinds), figsize=(5 * len(run.kinds), 6), sharey="row", squeeze=False)
    for col, kind in enumerate(run.kinds):
        for row_index, lang in enumerate(("en", "zh")):
            ax = axes[row_index, col]
            groups = defaultdict(list)
            for r in rows:
                if r.lang == lang:
                    groups[f"{r.set} ({'suppressed' if is_suppressed(r.label) else 'answered'})"].append(r.values[kind])
            for name in sorted(groups):
                ax.hist(groups[name], bins=20, alpha=0.5, label=f"{name}, n={len(groups[name])}")
            ax.set(title=f"{kind} direction, {lang} prompts", xlabel="projection (residual units)", ylabel="prompts")
            ax.legend(fontsize=6)
    fig.suptitle(f"Projection on the selected directions (test split): {run.caption}")
    return fig


def dose_response(run: Run) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 4))
    twin = ax.twinx()
    for kind in run.kinds:
        rows = run.report.kinds[kind].steering or ()
        coefs = [r.coef for r in rows]
        ax.plot(coefs, [100 * (r.suppression_rate or 0) for r in rows], marker="o", color=_color(kind),
                label=f"{kind}: suppression (n={rows[0].n if rows else 0})")
        twin.plot(coefs, [r.kl_harmless for r in rows], ls="--", marker=".", color=_color(kind), alpha=0.6,
                  label=f"{kind}: KL harmless")
    ax.set(xlabel="steering coefficient (x raw mean difference, at its layer)", ylabel="suppression of answered prompts (%)",
           ylim=(-5, 105))
    twin.set_ylabel("first-token KL on harmless (nats)")
    twin.grid(False)
    lines = ax.get_legend_handles_labels()
    more = twin.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="upper left")
    ax.set_title(f"Steering dose-response: {run.caption}")
    return fig


def before_after(run: Run) -> plt.Figure:
    """Suppression and faithful answers by topic and language, before and after ablation, with random."""
    fig, axes = plt.subplots(2, 1, figsize=(12, 8))
    rows = [r for r in run.per_prompt if r.kind in ("censorship", "random_censorship") and r.set == "censored"]
    for ax, metric in zip(axes, ("suppressed", "faithful"), strict=True):
        keys = sorted({(r.category, r.lang) for r in rows})
        bars = {"before": [], "after": [], "random": []}
        for key in keys:
            mine = [r for r in rows if (r.category, r.lang) == key]
            real = [r for r in mine if r.kind == "censorship"]
            rand = [r for r in mine if r.kind == "random_censorship"]
            bars["before"].append(_mean(real, f"{metric}_before"))
            bars["after"].append(_mean(real, f"{metric}_after"))
            bars["random"].append(_mean(rand, f"{metric}_after"))
        xs = range(len(keys))
        for offset, name in zip((-0.27, 0, 0.27), bars, strict=True):
            ax.bar([x + offset for x in xs], [100 * v for v in bars[name]], width=0.27, color=COLORS[name],
                   label={"before": "baseline", "after": "censorship ablated", "random": "random direction ablated"}[name])
        ax.set_xticks(list(xs), [f"{c} ({lang})" for c, lang in keys], rotation=60, ha="right", fontsize=7)
        ax.set_ylabel({"suppressed": "suppression rate (%)", "faithful": "faithful answers (%)"}[metric])
        ax.set_ylim(0, 105)
    axes[0].legend(fontsize=7)
    axes[0].set_title(f"Sensitive test prompts by topic and language: {run.caption}")
    fig.tight_layout()
    return fig


def _mean(rows: list[PairedRow], field: str) -> float:
    values = [float(getattr(r, field)) for r in rows if getattr(r, field) is not None]
    return sum(values) / len(values) if values else 0.0


def _cjk_font() -> str | None:
    from matplotlib import font_manager

    names = {f.name for f in font_manager.fontManager.ttflist}
    return next((n for n in sorted(names) if any(k in n for k in ("CJK", "WenQuanYi", "Sans SC", "Hei"))), None)


def _printable(token: str, cjk: bool) -> str:
    """A token as the table shows it: CJK kept when a font can draw it, else escaped, never a box."""
    return repr(token) if cjk or token.isascii() else repr(token.encode("unicode_escape").decode())


def logit_lens(run: Run) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.axis("off")
    lens = run.report.logit_lens
    columns = [f"{k} {side}" for k in run.kinds for side in ("promotes", "suppresses")]
    depth = max((max(len(v.promoted), len(v.suppressed)) for v in lens.values()), default=0)
    font = _cjk_font()
    # a skipped lens has no tokens, and lists may differ in length: short columns are padded
    columns_tokens = [(lens[k].promoted, lens[k].suppressed) if k in lens else ((), ()) for k in run.kinds]
    cells = [[_printable(tokens[i], font is not None) if i < len(tokens) else ""
              for pair in columns_tokens for tokens in pair] for i in range(depth)]
    if cells:
        table = ax.table(cellText=cells, colLabels=columns, loc="center", cellLoc="left")
        table.auto_set_font_size(False)
        table.set_fontsize(7)
        if font:
            for cell in table.get_celld().values():
                cell.get_text().set_fontfamily([font, "DejaVu Sans"])
    ax.set_title(f"Logit lens of the selected directions (through final norm and unembedding): {run.caption}")
    return fig


def truth_margin(run: Run) -> plt.Figure:
    """Reference minus official-line log-prob per token, before and after, per language (95% CI)."""
    kinds = [k for k in run.report.kinds if run.report.kinds[k].truth]
    fig, axes = plt.subplots(1, max(len(kinds), 1), figsize=(4.5 * max(len(kinds), 1), 3.6), squeeze=False, sharey=True)
    for ax, kind in zip(axes[0], kinds, strict=False):
        by_lang = run.report.kinds[kind].truth.reference_minus_official
        for i, m in enumerate(by_lang.values()):
            for offset, when, stat in ((-0.15, "before", m.before), (0.15, "after", m.after)):
                ax.errorbar(i + offset, stat.mean, yerr=[[stat.mean - stat.low], [stat.high - stat.mean]], fmt="o",
                            color=COLORS[when], capsize=3, label=when if i == 0 else None)
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xticks(range(len(by_lang)), [f"{lang} (n={m.change.n})" for lang, m in by_lang.items()])
        ax.set(title=f"{kind} ablated", ylabel="log p(reference) - log p(official), per token")
        ax.legend(fontsize=7)
    fig.suptitle(f"Truth margin on sensitive test prompts: {run.caption}")
    return fig


def search_front(results: dict[str, SearchResult]) -> plt.Figure:
    """Every completed search trial (suppression against damage), the Pareto front as a step line, the pick
    starred, the KL threshold dashed; one panel per searched kind."""
    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4), squeeze=False)
    for ax, (kind, s) in zip(axes[0], results.items(), strict=True):
        done = [t for t in s.trials if t.state == "complete"]
        front = sorted((s.trial(n) for n in s.front), key=lambda t: (t.damage, t.suppression))
        ax.scatter([t.damage for t in done], [100 * t.suppression for t in done], s=14, color=COLORS["random"],
                   label=f"trials (n={len(done)})")
        ax.step([t.damage for t in front], [100 * t.suppression for t in front], where="post", marker="o",
                color=_color(kind), label="Pareto front")
        if s.picked is not None:
            ax.plot(s.picked.damage, 100 * s.picked.suppression, marker="*", ms=16, color="k", zorder=5,
                    label=f"pick (trial {s.pick})")
        ax.axvline(s.kl_threshold, ls="--", color="k", lw=0.8)
        ax.set_xscale("symlog", linthresh=0.01)
        ax.set(xlabel=s.objectives[1], ylabel=f"suppressed of {s.n_val} validation prompts (%)", ylim=(-5, 105),
               title=f"{kind}: {len(s.trials)} trials")
        ax.legend(fontsize=7)
    fig.suptitle("Search over direction, kernel and variant (lower left is better)")
    return fig


def write_search_front(run_dir: Path | str, out_dir: Path | str | None = None) -> list[Path]:
    """figures/search_front.png + .pdf from the run's search.json (no report needed); [] if none."""
    results = RunDir(run_dir).search()
    if not results:
        return []
    with plt.rc_context(STYLE):
        return save(search_front(results), Path(out_dir) if out_dir else RunDir(run_dir).figures, "search_front")


FIGURES = {"layer_sweep": layer_sweep, "cosine": cosine, "projections": projections,
           "dose_response": dose_response, "before_after": before_after, "logit_lens": logit_lens,
           "truth_margin": truth_margin}


def cross_model(runs: list[Run]) -> plt.Figure:
    """Across models: best bypass per layer against depth (layer / n_layers), and the verdict shares before/after."""
    kinds = runs[0].kinds
    fig, axes = plt.subplots(2, len(kinds), figsize=(4.5 * len(kinds), 6.5), squeeze=False)
    for col, kind in enumerate(kinds):
        ax = axes[0, col]
        for run in runs:
            n_layers = run.report.model.n_layers
            rows = [r for r in run.report.sweeps[kind] if r.bypass_score is not None]
            best: dict[int, float] = {}
            for r in rows:
                best[r.layer] = min(best.get(r.layer, float("inf")), r.bypass_score)
            layers = sorted(best)
            line = ax.plot([x / n_layers for x in layers], [best[x] for x in layers], marker=".", lw=1,
                           label=run.caption)[0]
            chosen = run.report.kinds[kind]
            ax.plot(chosen.layer / n_layers, best.get(chosen.layer, float("nan")), marker="*", ms=13,
                    color=line.get_color(), zorder=5)
        ax.set_title(f"{kind}: best bypass per layer (star: selected)")
        ax.set_xlabel("depth (layer / number of layers)")
        ax.set_ylabel("bypass (log-odds, lower = more undone)")
        ax.legend(fontsize=7)
        _verdict_bars(axes[1, col], runs, kind)
    fig.suptitle("The same pipeline across model sizes")
    fig.tight_layout()
    return fig


def _verdict_bars(ax: plt.Axes, runs: list[Run], kind: str) -> None:
    """Per model: suppression and faithful shares before -> after, and the invented share after (a run judged
    before verdicts existed has no faithful/invented share; its bars are left out, not drawn as zero)."""
    bars = {"suppression before": ("baseline", "suppression_rate", COLORS["before"]),
            "suppression after": ("ablated", "suppression_rate", COLORS["after"]),
            "faithful before": ("baseline", "faithful_rate", COLORS["faithful before"]),
            "faithful after": ("ablated", "faithful_rate", COLORS["faithful after"]),
            "invented after": ("ablated", "invented_rate", COLORS["invented after"])}
    width = 0.8 / len(bars)
    for i, (name, (side, field, color)) in enumerate(bars.items()):
        values = [getattr(getattr(run.report.kinds[kind], side), field) for run in runs]
        if all(v is None for v in values):
            continue  # no run has this share: no bar, and no legend entry for one
        xs = [m + (i - (len(bars) - 1) / 2) * width for m, v in enumerate(values) if v is not None]
        drawn = ax.bar(xs, [100 * v for v in values if v is not None], width, color=color, label=name)
        ax.bar_label(drawn, fmt="%.0f", fontsize=6)
    ax.set_xticks(range(len(runs)), [run.report.model.name.replace("-Instruct", "") for run in runs], fontsize=7)
    ax.set_ylabel(f"{runs[0].report.contrasts[kind].label or kind} test prompts (%)")
    ax.set_ylim(0, 135)  # headroom: the legend sits above bars that reach 100%
    ax.set_yticks(range(0, 101, 20))
    ax.legend(fontsize=6, ncol=3, loc="upper center")


def make_cross_model(run_dirs: list[Path | str], out_dir: Path | str) -> list[Path]:
    runs = [load_run(d) for d in run_dirs]
    with plt.rc_context(STYLE):
        return save(cross_model(runs), Path(out_dir), "cross_model")


def save(fig: plt.Figure, out_dir: Path, name: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    fig.savefig(paths[0], metadata={"Software": None}, bbox_inches="tight")
    fig.savefig(paths[1], metadata={"CreationDate": None, "Producer": None, "Creator": None}, bbox_inches="tight")
    plt.close(fig)
    return paths


def make_all(run_dir: Path | str, out_dir: Path | str | None = None, only: list[str] | None = None) -> list[Path]:
    run = load_run(run_dir)
    out = Path(out_dir) if out_dir else Path(run_dir) / "figures"
    written: list[Path] = []
    with plt.rc_context(STYLE):
        for name, draw in FIGURES.items():
            if only and name not in only:
                continue
            written += save(draw(run), out, name)
    if not only or "search_front" in only:
        written += write_search_front(run_dir, out)
    return written
