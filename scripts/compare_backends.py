"""How closely the nnsight backend follows the TransformerBridge through label, activations and select:
python scripts/compare_backends.py [--model embedded] [--dtype bf16] [--per-split 8]

Quick-mode stages (as the real-model test runs them), the bridge first. Prints how many labels agree, each
backend's pick from its own labels, then nnsight on the bridge's labels (the same inputs): candidate cosine
at the swept position per layer, the largest score differences over the bridge's candidates swept through
nnsight, and that sweep's pick. The tolerances of tests/test_real_model.py's nnsight test come from here."""

from __future__ import annotations

import argparse
import tempfile

import torch

from interp import RunConfig, Study, load_model
from interp.core.selection import Scorer
from interp.study.stages.candidates import Candidates, extract_candidates
from interp.study.stages.select import select


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--dtype", default="bf16")
    parser.add_argument("--per-split", type=int, default=8)
    args = parser.parse_args()
    config = RunConfig.make(quick=True, eval_tokens=24, per_split=args.per_split, capability_n=8, kl_n=4)
    studies = {}
    for backend in ("transformer_lens", "nnsight"):
        model = load_model(args.model, dtype=args.dtype, backend=backend)
        studies[backend] = Study(model, tempfile.mkdtemp(prefix=f"compare-{backend}-"), config,
                                 splits=("train", "val"))
        picks = {k: (d.layer, d.position) for k, d in studies[backend].chosen.items()}
        print(f"{backend} ({args.dtype}), own labels: picks {picks}", flush=True)
    bridge, nn = studies["transformer_lens"], studies["nnsight"]
    pairs = list(zip(bridge.labels, nn.labels, strict=True))
    print(f"labels agree on {sum(a.label == b.label for a, b in pairs)} of {len(pairs)}")

    extracted = bridge.extracted
    theirs = Candidates.load(bridge.dir)
    ours = extract_candidates(nn.model, bridge.labels, config, extracted)
    swept = slice(-config.sweep_positions, None)
    for kind in ("censorship", "refusal"):
        cos = torch.nn.functional.cosine_similarity(theirs.by_kind[kind][:, swept].float(),
                                                    ours.by_kind[kind][:, swept].float(), dim=-1).min(dim=1).values
        print(f"{kind}: candidate cosine by layer (swept position), bridge labels: "
              + " ".join(f"{c:.3f}" for c in cos.tolist()))
    scorer = Scorer(list(bridge.selected[2].token_ids))
    chosen, sweeps = select(nn.model, theirs, bridge.labels, scorer, config, extracted, {})
    for kind, rows in sweeps.items():
        pairs = [(a, b) for a, b in zip(rows, bridge.selected[1][kind], strict=True) if b.bypass_score is not None]
        worst_kl = max(pairs, key=lambda p: abs(p[0].kl - p[1].kl))
        print(f"{kind}: bridge candidates swept through nnsight: largest |bypass diff| "
              f"{max(abs(a.bypass_score - b.bypass_score) for a, b in pairs):.3f}, |induce diff| "
              f"{max(abs(a.induce_score - b.induce_score) for a, b in pairs):.3f}, |KL diff| "
              f"{abs(worst_kl[0].kl - worst_kl[1].kl):.3f} (L{worst_kl[1].layer}, bridge KL {worst_kl[1].kl:.3f}); "
              f"pick L{chosen[kind].layer} pos {chosen[kind].position}")


if __name__ == "__main__":
    main()
