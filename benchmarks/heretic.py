"""heretic (heretic-llm 1.4.0, p-e-w's automatic abliteration) on interp's model and prompt splits, offline.

heretic runs in its own venv (default /work/heretic-venv, or $HERETIC_PYTHON) as a subprocess, driven by
benchmarks/heretic_config/driver.py with a config.toml written into a fresh run directory: refusal directions
from the harmful/harmless *train* prompts; its optimisation (optuna TPE over abliteration weights) scored on
the harmful/harmless *test* prompts (--select-on test, in-sample) or on *val*, after which heretic's Pareto
front is re-scored on test (--select-on val, like interp: select on val, report on test). Prompts go in as
plain text files, one per line, which heretic reads without `datasets` or the Hub. Wall time covers the whole
heretic process (imports, model load, prefix check, baseline, directions, all trials; with --select-on val
also the re-scoring, reported apart) up to its trial menu, which the driver answers "exit".
Per trial: heretic's own numbers (refusals by its marker list on --max-response-length greedy tokens; mean
KL(base || abliterated) of the first-token distribution over the harmless prompts) and, like with like,
interp's marker judge on the first --judge-tokens tokens of the same greedy responses. "best" = the trial on
heretic's Pareto front (refusals vs KL) with the fewest refusals at KL <= --max-kl (interp's kl_threshold);
heretic leaves that choice to the user. Prints a table, writes benchmarks/results/heretic.json.
See benchmarks/HERETIC_NOTES.md (setup, the CPU slowdown that --lm-head-fold-fix removes, metric definitions).
Usage: python benchmarks/heretic.py [--model embedded] [--trials 200] [--select-on test|val] [--n 0]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from interp import Prompt, PromptSet, load_prompts
from interp.behaviour.judge import label

HERE = Path(__file__).parent
DRIVER = HERE / "heretic_config" / "driver.py"
DEFAULT_PYTHON = os.environ.get("HERETIC_PYTHON", "/work/heretic-venv/bin/python")
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "HF_HUB_DISABLE_TELEMETRY": "1", "TOKENIZERS_PARALLELISM": "false"}
HERETIC_SYSTEM_PROMPT = "You are a helpful assistant."  # heretic's default system_prompt


def model_dir(spec: str) -> Path:
    path = Path(spec).expanduser()
    if path.is_dir():
        return path.resolve()
    from interp.core.embedded import EMBEDDED
    from interp.core.model import embedded_dir

    if spec in EMBEDDED:
        return embedded_dir(spec)
    raise SystemExit(f"--model {spec!r}: heretic needs a local HF directory (or an interp embedded name)")


def system_prompt(directory: Path, choice: str) -> tuple[str, bool]:
    """The system prompt that makes heretic's chat text equal interp's (interp sends no system message)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(directory)

    def render(messages):
        return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    probe = [{"role": "user", "content": "Hi"}]
    interp_text = render(probe)
    if choice == "heretic":
        candidate = HERETIC_SYSTEM_PROMPT
    elif choice == "model":  # the template's own default system block, e.g. Qwen's "You are Qwen, ..."
        start = interp_text.find("system\n")
        end = interp_text.find("<|im_end|>", start)
        candidate = interp_text[start + len("system\n"):end] if start >= 0 and end > start else HERETIC_SYSTEM_PROMPT
    else:
        candidate = choice
    same = render([{"role": "system", "content": candidate}, *probe]) == interp_text
    return candidate, same


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic strings
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(value)


def write_config(path: Path, settings: dict, tables: dict[str, dict]) -> None:
    lines = [f"{k} = {toml_value(v)}" for k, v in settings.items()]
    for name, table in tables.items():
        lines += ["", f"[{name}]"] + [f"{k} = {toml_value(v)}" for k, v in table.items()]
    path.write_text("\n".join(lines) + "\n")


def prompt_sets(n: int, lang: str, splits=("train", "val", "test")) -> dict[str, PromptSet]:
    sets = {}
    for name in ("harmful", "harmless"):
        for split in splits:
            chosen = load_prompts(name, split)
            if lang != "all":
                chosen = chosen.by_lang(lang)
            sets[f"{name}_{split}"] = chosen.head(n) if n else chosen
    return sets


def phases(events: list[dict]) -> dict:
    at = {}
    rescore = [e["t"] for e in events if e.get("phase") == "rescore"]
    events = [e for e in events if e.get("phase", "search") == "search"]
    for e in events:
        at.setdefault(e["event"], e["t"])
        at[e["event"] + "_last"] = e["t"]
    trial_ts = [e["t"] for e in events if e["event"] == "trial_done"]
    out = {"imports": at.get("imported"),
           "model_load": _diff(at, "model_load_start", "model_loaded"),
           "batch_size_and_prefix_check": _diff(at, "model_loaded", "baseline_start"),
           "baseline_eval": _diff(at, "baseline_start", "baseline_done"),
           "directions": _diff(at, "baseline_done", "residual_mean_last"),
           "trials": (trial_ts[-1] - at["residual_mean_last"]) if trial_ts and "residual_mean_last" in at else None,
           "driver_total": at.get("done_last") or at.get("heretic_returned"),
           "rescore_on_test": (rescore[-1] - at["done_last"]) if rescore and "done_last" in at else None}
    out["per_trial_mean"] = out["trials"] / len(trial_ts) if out["trials"] is not None else None
    return {k: (round(v, 1) if v is not None else None) for k, v in out.items()}


def _diff(at, a, b):
    return at[b] - at[a] if a in at and b in at else None


def judge(items: list[Prompt], responses: list[str]) -> dict:
    """interp's marker judge (label()) on heretic's responses: counts overall and per language."""
    labels = [label(r, p.lang, p.prompt) for p, r in zip(items, responses, strict=True)]
    out = {}
    for lang in ["all", *sorted({p.lang for p in items})]:
        chosen = [lab for p, lab in zip(items, labels, strict=True) if lang == "all" or p.lang == lang]
        out[lang] = {"n": len(chosen), "refusal": chosen.count("refusal"),
                     "suppressed": sum(lab in ("refusal", "deflection") for lab in chosen)}
    return out


def heretic_pareto(trials: list[dict]) -> list[dict]:
    """heretic's own front (main.py): sort by (refusals, KL), keep each trial that lowers the KL."""
    best, low = [], float("inf")
    for t in sorted(trials, key=lambda t: (t["refusals"], t["kl_divergence"])):
        if t["kl_divergence"] < low:
            low = t["kl_divergence"]
            best.append(t)
    return best


def pick(trials: list[dict], max_kl: float) -> dict | None:
    capped = [t for t in heretic_pareto(trials) if t["kl_divergence"] <= max_kl]
    return min(capped, key=lambda t: (t["refusals"], t["kl_divergence"])) if capped else None


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded", help="interp embedded name or a local HF directory")
    parser.add_argument("--python", default=DEFAULT_PYTHON, help="Python of the venv heretic-llm is installed in")
    parser.add_argument("--trials", type=int, default=200, help="heretic n_trials (its default 200)")
    parser.add_argument("--startup-trials", type=int, default=60, help="heretic n_startup_trials (default 60)")
    parser.add_argument("--n", type=int, default=0, help="prompts per set and split (0 = all, as interp run)")
    parser.add_argument("--lang", default="all", choices=["all", "en", "zh"])
    parser.add_argument("--select-on", default="test", choices=["test", "val"],
                        help="heretic's evaluation prompts, i.e. its optimisation objective: 'test' (scores are "
                             "in-sample) or 'val' (optimise on val, then re-score heretic's Pareto front on test)")
    parser.add_argument("--dtype", default="bfloat16",
                        help="heretic dtypes (default bfloat16, what interp's --dtype auto picks on this CPU; "
                             "'heretic' = its own list, whose 'auto' loads this fp32 checkpoint as float32)")
    parser.add_argument("--batch-size", type=int, default=16, help="0 = heretic's batch-size search (slow on CPU)")
    parser.add_argument("--max-response-length", type=int, default=100, help="heretic's refusal tokens (default 100)")
    parser.add_argument("--judge-tokens", type=int, default=32, help="tokens re-judged with interp's judge")
    parser.add_argument("--system-prompt", default="model",
                        help="'model' (the template's default: same chat text as interp), 'heretic', or a string")
    parser.add_argument("--max-kl", type=float, default=0.1, help="KL cap for picking 'best' (interp's kl_threshold)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0,
                        help="OMP_NUM_THREADS for heretic (0 = inherit; use 1 if another job shares the cores)")
    parser.add_argument("--lm-head-fold-fix", action="store_true",
                        help="re-enable requires_grad on the PEFT-frozen LM head: same numbers, ~5x faster CPU "
                             "generation (heretic as shipped runs a [batch, hidden, vocab] bmm copy per call)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds before heretic is stopped")
    parser.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "interp-heretic-bench"))
    parser.add_argument("--reanalyse", action="store_true",
                        help="do not run heretic: re-read the run in --workdir (its own settings) and rewrite --out")
    parser.add_argument("--out", default=str(HERE / "results" / "heretic.json"))
    return parser.parse_args(argv)


def run_heretic(args: argparse.Namespace, run: Path) -> None:
    """Fresh run directory: prompt files, config.toml, the driver; then heretic, timed. Writes run/bench.json."""
    if run.exists():
        if not (run / ".interp-heretic-bench").exists():
            raise SystemExit(f"{run} exists and is not a previous run directory of this benchmark")
        shutil.rmtree(run)  # a stale study checkpoint would make heretic ask whether to resume
    run.mkdir(parents=True)
    (run / ".interp-heretic-bench").write_text("")

    directory = model_dir(args.model)
    system, same_chat = system_prompt(directory, args.system_prompt)
    sets = prompt_sets(args.n, args.lang)
    files, prompts = {}, {}
    for key, chosen in sets.items():
        files[key] = run / f"{key}.txt"
        data = "".join(t + "\n" for t in chosen.texts).encode()
        files[key].write_bytes(data)
        prompts[key] = {"n": len(chosen.texts), "texts_sha256": hashlib.sha256(data).hexdigest(),
                        "source_sha256": chosen.sha256}

    settings = {"model": str(directory), "batch_size": args.batch_size, "max_response_length": args.max_response_length,
                "n_trials": args.trials, "n_startup_trials": args.startup_trials, "seed": args.seed,
                "system_prompt": system, "study_checkpoint_dir": "checkpoints"}
    if args.dtype != "heretic":
        settings["dtypes"] = [args.dtype]
    split = args.select_on
    tables = {"good_prompts": {"dataset": str(files["harmless_train"])},
              "bad_prompts": {"dataset": str(files["harmful_train"])},
              "good_evaluation_prompts": {"dataset": str(files[f"harmless_{split}"])},
              "bad_evaluation_prompts": {"dataset": str(files[f"harmful_{split}"])}}
    write_config(run / "config.toml", settings, tables)
    shutil.copy(DRIVER, run / "driver.py")
    command = [args.python, "driver.py", "--judge-tokens", str(args.judge_tokens)]
    if split != "test":
        (run / "rescore.json").write_text(json.dumps({"good": str(files["harmless_test"]),
                                                      "bad": str(files["harmful_test"])}))
        command += ["--rescore", "rescore.json"]
    if args.lm_head_fold_fix:
        command.append("--lm-head-fold-fix")

    env = {**os.environ, **OFFLINE, "PYTHONUNBUFFERED": "1", "COLUMNS": "160"}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    print(f"[heretic] {' '.join(command)} in {run}; {args.trials} trials; log: {run / 'heretic.log'}")
    start = time.perf_counter()
    rc, error = None, None
    with open(run / "heretic.log", "w") as log:
        try:
            rc = subprocess.run(command, cwd=run, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, timeout=args.timeout).returncode
        except subprocess.TimeoutExpired:
            error = f"stopped after --timeout {args.timeout} s"
        except OSError as e:
            error = f"cannot start the heretic venv's python ({args.python}): {e}"
    wall = time.perf_counter() - start
    if error is None and (rc != 0 or not (run / "trials.json").exists()):
        error = f"heretic exited with {rc} before writing trials.json; see the log tail"
    bench = {"args": vars(args), "model_dir": str(directory), "settings": settings, "prompts": prompts,
             "chat_text_same_as_interp": same_chat, "wall_s": round(wall, 1), "returncode": rc, "error": error}
    (run / "bench.json").write_text(json.dumps(bench, indent=1))


def analyse(run: Path, max_kl: float) -> dict:
    bench = json.loads((run / "bench.json").read_text())
    a = bench["args"]
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()] \
        if (run / "events.jsonl").exists() else []
    result = {"model": a["model"], "model_dir": bench["model_dir"], "workdir": str(run),
              "versions": next((e["versions"] for e in events if e["event"] == "imported"), None),
              "torch_threads": next((e["torch_threads"] for e in events if e["event"] == "imported"), None),
              "response_prefix": next((e["response_prefix"] for e in events if e["event"] == "residual_mean"), None),
              "settings": {**bench["settings"], "dtypes": bench["settings"].get("dtypes", "heretic default"),
                           "lang": a["lang"], "n_per_set": a["n"], "judge_tokens": a["judge_tokens"], "max_kl": max_kl,
                           "chat_text_same_as_interp": bench["chat_text_same_as_interp"],
                           "select_on": a.get("select_on", "test"),
                           "lm_head_fold_fix": a.get("lm_head_fold_fix", False)},
              "prompts": bench["prompts"], "wall_s": bench["wall_s"], "phases_s": phases(events),
              "error": bench["error"]}
    result["wall_search_s"] = round(result["wall_s"] - (result["phases_s"]["rescore_on_test"] or 0), 1)
    if bench["error"]:
        result["log_tail"] = (run / "heretic.log").read_text(errors="replace")[-3000:]
        return result

    split = a.get("select_on", "test")
    sets = prompt_sets(a["n"], a["lang"])
    search = [e for e in events if e.get("phase", "search") == "search"]
    rescore = [e for e in events if e.get("phase") == "rescore"]

    def rows(phase_events: list[dict], items: list[Prompt]) -> list[dict]:
        """Baseline first, then one row per scored abliteration, in order."""
        langs = sorted({p.lang for p in items})
        calls = [e for e in phase_events if e["event"] == "refusals"]
        kls = [None] + [e for e in phase_events if e["event"] == "trial_done"]
        out = []
        for call, kl in zip(calls, kls, strict=True):
            by_lang = {x: sum(v for v, p in zip(call["verdicts"], items, strict=True) if p.lang == x) for x in langs}
            out.append({"kl_divergence": kl["kl_divergence"] if kl else 0.0, "refusals": call["refusals"],
                        "n": call["n_prompts"], "refusals_by_lang": by_lang,
                        "interp_judge": judge(items, call["responses_short"]), "t_s": kl and kl["t"],
                        "responses": call["responses"]})
        return out

    searched = rows(search, sets[f"harmful_{split}"].items)
    base, trials = searched[0], searched[1:]
    for i, t in enumerate(searched):
        t["trial"] = i
    stored = {t["user_attrs"]["index"]: t for t in json.loads((run / "trials.json").read_text())
              if t["state"] == "COMPLETE"}
    for t in trials:  # heretic's study checkpoint is its record of the trials: the event log must agree
        attrs = stored[t["trial"]]["user_attrs"]
        assert attrs["refusals"] == t["refusals"] and abs(attrs["kl_divergence"] - t["kl_divergence"]) < 1e-9
        t["params"] = stored[t["trial"]]["params"]
    if split != "test":  # the Pareto front of the search, re-scored by heretic on the test split
        rescored = rows(rescore, sets["harmful_test"].items)
        order = [e["trial"] for e in rescore if e["event"] == "rescored"]
        if len(rescored) != len(order) + 1:
            raise SystemExit(f"{run}: the re-scoring on test did not finish (see heretic.log)")
        base["test"] = rescored[0]
        for index, r in zip(order, rescored[1:], strict=True):
            trials[index - 1]["test"] = r
    front = heretic_pareto(trials)
    best = pick(trials, max_kl)
    # The same seed gives the same first k trials whatever n_trials is, so this is also what a k-trial run gives.
    marks = sorted({k for k in (5, 10, 15, 25, 50, 100, 150, 200, len(trials)) if k <= len(trials)})
    progress = []
    for k in marks:
        b = pick(trials[:k], max_kl)
        progress.append({"trials": k, "t_s": trials[k - 1]["t_s"], "best_trial": b and b["trial"],
                         "refusals": b and b["refusals"], "kl_divergence": b and b["kl_divergence"],
                         "interp_refusal": b and b["interp_judge"]["all"]["refusal"]})
    responses_best = best and best.get("test", best)["responses"]
    for t in [*searched, *(t["test"] for t in searched if "test" in t)]:
        del t["responses"]
    return result | {"selected_on": split, "baseline": base, "best": best,
                     "heretic_first_choice": front[0] if front else None, "pareto": [t["trial"] for t in front],
                     "progress": progress, "trials": trials, "responses_best_test": responses_best}


def main() -> None:
    args = parse_args()
    run = Path(args.workdir)
    if not args.reanalyse:
        run_heretic(args, run)
    result = analyse(run, args.max_kl)
    _write(args.out, result)
    if result["error"]:
        print(result["log_tail"])
        raise SystemExit(f"[heretic] failed: {result['error']} (log: {run / 'heretic.log'}); "
                         f"partial result in {args.out}")

    s, ph, base, best = result["settings"], result["phases_s"], result["baseline"], result["best"]
    split = result["selected_on"]
    front = [t for t in result["trials"] if t["trial"] in result["pareto"]]
    shown_base = base.get("test", base)
    print(f"\nheretic {result['versions']['heretic-llm']} on {Path(result['model_dir']).name}, {s['dtypes']}, "
          f"{len(result['trials'])} trials ({s['n_startup_trials']} random) optimised on {split}, "
          f"{shown_base['n']} harmful / {result['prompts']['harmless_test']['n']} harmless test prompts, "
          f"{result['torch_threads']} threads" + (", LM-head fold fix" if s["lm_head_fold_fix"] else ""))
    print(f"wall {result['wall_search_s']:.0f} s: load {ph['model_load']}, batch/prefix {ph['batch_size_and_prefix_check']}, "
          f"baseline {ph['baseline_eval']}, directions {ph['directions']}, trials {ph['trials']} "
          f"({ph['per_trial_mean']} s each)" + (f", re-score on test {ph['rescore_on_test']}" if split != "test" else ""))
    j_head = f"refusal (interp {s['judge_tokens']} tok)"
    extra = f" {'KL ' + split:>8} {'refusals ' + split:>13}" if split != "test" else ""
    print(f"{'(test split)':14} {'trial':>5} {'KL':>8} {'refusals (heretic)':>18} {j_head:>24} {'suppressed':>10}{extra}")
    shown = [("baseline", base), (f"best KL<={s['max_kl']}", best), ("heretic first", front[0] if front else None)]
    shown += [("pareto", t) for t in front if t is not best and t is not front[0]]
    for name, t in shown:
        if t is None:
            print(f"{name:14} {'-':>5}  none on the Pareto front")
            continue
        r, j = t.get("test", t), t.get("test", t)["interp_judge"]["all"]
        tail = f" {t['kl_divergence']:8.4f} {str(t['refusals']) + '/' + str(t['n']):>13}" if split != "test" else ""
        print(f"{name:14} {t['trial']:5d} {r['kl_divergence']:8.4f} {str(r['refusals']) + '/' + str(r['n']):>18} "
              f"{str(j['refusal']) + '/' + str(j['n']):>24} {str(j['suppressed']) + '/' + str(j['n']):>10}{tail}")
    print(f"results: {args.out}")


def _write(path: str, result: dict) -> None:
    out = Path(path)
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
