"""The experiment report: report.md and report.html, written atomically.

Every number is in a table with its n and uncertainty; the paper's headline
numbers stand beside the reproduction ("paper" vs "this run"). Also: run
configs (stage commands), compute per run and whether the baseline matched
the trait-RL budget within 1%, judge ids, the reward model's held-out
agreement with its judge, data hashes, the figures and a "not run" list.
The HTML is rendered by `markdown_to_html`, a converter of the small
markdown subset written here (headings, tables, lists, images, code blocks,
paragraphs).
"""

from __future__ import annotations

import html
import json
import math
import pathlib
import re
from typing import Any, Mapping, Sequence

from beneficial_rl.figures import persistence as persistence_figs
from beneficial_rl.figures import traits as trait_figs
from beneficial_rl.figures.results import ExperimentResults
from beneficial_rl.figures.results import NotRun
from beneficial_rl.utils import io as io_lib

BUDGET_TOLERANCE = 0.01


def fmt(x: Any, spec: str = ".4f") -> str:
  """A number for a table; '-' for None / NaN."""
  if x is None or (isinstance(x, float) and not math.isfinite(x)):
    return "-"
  if isinstance(x, (int, float)) and not isinstance(x, bool):
    return format(x, spec)
  return str(x).replace("|", "\\|")


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
  lines = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---" for _ in header) + "|"]
  lines += ["| " + " | ".join(fmt(v) if not isinstance(v, str) else
                              v.replace("|", "\\|") for v in r) + " |"
            for r in rows]
  return "\n".join(lines)


def _headline(results: ExperimentResults, paper: Mapping[str, Any]) -> str:
  rows = []
  for variant, key, scope in (("beneficial", "benchmarks", None),
                              ("health_only", "transfer_health_only",
                               "out_of_domain_summary")):
    ref = paper.get(key, {})
    try:
      name, cmp = results.compare_for(variant)
      s = (cmp["domain_split"][scope] if scope
           else cmp["comparison"]["summary"])
      run = (f"{s['num_improved']}/{s['num_benchmarks']}",
             fmt(s["mean_difference_points"], "+.1f"))
    except NotRun:
      name, run = "not run", ("-", "-")
    rows.append((ref.get("description", key), name,
                 f"{ref.get('num_improved')}/{ref.get('num_benchmarks')}",
                 run[0], fmt(ref.get("mean_difference_points"), "+.1f"),
                 run[1]))
  out = table(("comparison", "this run", "paper improved", "this run "
               "improved", "paper mean diff (points)",
               "this run mean diff (points)"), rows)
  evals = results.final_evals()
  ref = paper.get("heldout_traits", {})
  trows = []
  for run in trait_figs.model_order(list(evals)):
    scores = trait_figs.trait_scores(evals[run])
    if scores:
      n = sum(v[2] for v in scores.values())
      trows.append((run, fmt(trait_figs.trait_average(evals[run])),
                    fmt(trait_figs.trait_average_stderr(evals[run])),
                    str(len(scores)), str(n)))
  out += ("\n\nHeld-out trait average (unweighted mean over traits; paper: "
          f"before RL {fmt(ref.get('before_rl'), '.3f')}, after trait RL "
          f"{fmt(ref.get('after_trait_rl'), '.3f')}).\n\n")
  out += table(("run", "this run: mean score", "stderr", "traits",
                "items (n)"),
               trows) if trows else "not run: no held-out trait scores."
  return out


def _trait_section(results: ExperimentResults) -> str:
  rows = []
  evals = results.final_evals()
  for run in trait_figs.model_order(list(evals)):
    for trait, (s, se, n) in trait_figs.trait_scores(evals[run]).items():
      rows.append((run, trait, fmt(s), fmt(se), str(n)))
  return table(("run", "trait", "score", "stderr", "n"), rows) if rows else (
      "not run: no held-out trait scores.")


def _comparison_section(results: ExperimentResults) -> str:
  parts = []
  for name, cmp in sorted(results.compares.items()):
    c = cmp["comparison"]
    s = c["summary"]
    split = cmp.get("domain_split") or {}
    srows = [("all", s)]
    if split:
      srows += [(split["in_domain"], split["in_domain_summary"]),
                (f"not {split['in_domain']}", split["out_of_domain_summary"])]
    parts.append(f"### {name}\n\n" + table(
        ("benchmarks", "N", "improved", "significant wins", "significant "
         "losses", "mean diff (points)", "q threshold"),
        [(label, str(v["num_benchmarks"]), str(v["num_improved"]),
          str(v["num_significant_improvements"]),
          str(v["num_significant_regressions"]),
          fmt(v["mean_difference_points"], "+.2f"), fmt(v["q_threshold"],
                                                         ".2f"))
         for label, v in srows]))
    parts.append(table(
        ("benchmark", "n base", "n cand", "base (SE)", "cand (SE)",
         "diff (points)", "95% CI", "p", "BH q"),
        [(b["benchmark"], str(b["num_baseline"]), str(b["num_candidate"]),
          f"{fmt(b['mean_baseline'])} ({fmt(b['se_baseline'])})",
          f"{fmt(b['mean_candidate'])} ({fmt(b['se_candidate'])})",
          fmt(b["difference_points"], "+.2f"),
          f"[{fmt(b['ci_low_points'], '+.2f')}, "
          f"{fmt(b['ci_high_points'], '+.2f')}]",
          fmt(b["p_value"], ".3g"), fmt(b["q_value"], ".3g"))
         for b in c["benchmarks"]]))
  return "\n\n".join(parts) if parts else "not run: no compare files."


def _eval_section(results: ExperimentResults) -> str:
  rows, runs = [], []
  for name, e in sorted(results.evals.items()):
    r = e.summary.get("run", {})
    runs.append((name, str(r.get("policy_id", "-")),
                 fmt(r.get("checkpoint_step"), "d"),
                 str(r.get("judge_id", "-")),
                 str(r.get("judge_prompt_version", "-")),
                 str(len(e.benchmarks)), str(len(e.summary.get("skipped",
                                                               {}))),
                 str(len(e.summary.get("failed", {})))))
    for b, v in sorted(e.benchmarks.items()):
      pin = v.get("data_pin")
      rows.append((name, b, fmt(v.get("score")), fmt(v.get("stderr")),
                   fmt(v.get("n"), "d"), fmt(v.get("refusal_rate"), ".3f"),
                   fmt(v.get("raw")), f"{v.get('metric', '-')} "
                   f"({v.get('direction', '-')})",
                   str(v.get("judge_id") or "-"),
                   json.dumps(pin, sort_keys=True) if pin else "-"))
  if not runs:
    return "not run: no eval summaries."
  return (table(("eval dir", "policy", "step", "judge id", "judge prompt",
                 "scored", "skipped", "failed"), runs) + "\n\n" +
          table(("eval dir", "benchmark", "oriented score", "stderr", "n",
                 "refusal rate", "raw", "metric (direction)", "judge id",
                 "data pin"), rows))


def _persistence_section(results: ExperimentResults) -> str:
  parts = []
  degs = persistence_figs.entries(results, "degradation")
  if degs:
    parts.append(table(
        ("model", "key", "clean", "attacked", "degradation", "95% CI", "n"),
        [(m, k, fmt(e["clean"]), fmt(e["attacked"]), fmt(e["degradation"]),
          f"[{fmt(e['ci']['low'])}, {fmt(e['ci']['high'])}]", str(e["n"]))
         for m, k, e in degs]))
  sel = persistence_figs.entries(results, "selective")
  if sel:
    parts.append(table(
        ("key", "A", "B", "harmful deg_A - deg_B (95% CI)", "n",
         "helpful deg_A - deg_B (95% CI)", "n", "selective"),
        [(k, e["model_a"], e["model_b"],
          f"{fmt(e['harmful']['estimate'])} [{fmt(e['harmful']['low'])}, "
          f"{fmt(e['harmful']['high'])}]", str(e["n_harmful"]),
          f"{fmt(e['helpful']['estimate'])} [{fmt(e['helpful']['low'])}, "
          f"{fmt(e['helpful']['high'])}]", str(e["n_helpful"]),
          str(e["selective"])) for _, k, e in sel]))
  curves = persistence_figs.entries(results, "curve")
  if curves:
    parts.append(table(
        ("model", "key", "initial", "final", "drop", "max drop",
         "mean over log-steps", "steps to threshold"),
        [(m, k, fmt(e["initial"]), fmt(e["final"]), fmt(e["drop"]),
          fmt(e["max_drop"]), fmt(e["mean_log_steps"]),
          fmt(e["steps_to_threshold"], ".1f")) for m, k, e in curves]))
  return "\n\n".join(parts) if parts else "not run: no persistence metrics."


def _reward_model_section(results: ExperimentResults) -> str:
  """Held-out agreement of the learned reward model with its judge."""
  s = results.reward_model
  if s is None:
    return "not run: no reward_model/reward_model_summary.json."
  h = s["heldout"]
  intro = (f"Reward model trained for {s['step']} steps (objective "
           f"`{s['objective']}`) on the rubric scores of judge "
           f"`{s['judge_id']}`: {s['samples']['train']} train samples "
           f"({s['pairs']['train']} within-prompt pairs), agreement on "
           f"{s['samples']['heldout']} held-out samples.")
  return intro + "\n\n" + table(("metric", "value", "n"), [
      ("held-out Spearman (reward model vs judge)", fmt(h["spearman"]),
       f"{h['n_samples']:.0f} samples"),
      ("held-out within-prompt pairwise accuracy",
       fmt(h["pairwise_accuracy"]), f"{h['n_pairs']:.0f} pairs"),
      ("final training loss", fmt(s["final_loss"]), f"step {s['step']}")])


def compute_rows(results: ExperimentResults) -> list[tuple[str, ...]]:
  """Per RL run: stop reason, steps, FLOPs, budget, relative gap, matched."""
  rows = []
  for name, run in sorted(results.rl.items()):
    s = run.summary
    if s is None:
      rows.append((name, "not finished", "-", "-", "-", "-", "-"))
      continue
    gap = s.get("budget_relative_gap")
    matched = ("-" if gap is None else
               "yes" if abs(gap) <= BUDGET_TOLERANCE else "NO")
    rows.append((name, str(s.get("stop_reason")),
                 f"{s.get('steps_completed')}/{s.get('num_steps')}",
                 fmt(s.get("flops_used"), ".4g"),
                 fmt(s.get("compute_budget"), ".4g"),
                 fmt(gap, "+.4%"), matched))
  return rows


def _config_section(results: ExperimentResults) -> str:
  parts = []
  if results.stages:
    parts.append(table(("stage", "seconds", "command"),
                       [(n, fmt(s.get("seconds"), ".1f"),
                         "`" + " ".join(s.get("argv", [])) + "`")
                        for n, s in sorted(results.stages.items())]))
  rl = [(n, str(r.summary.get("variant")), str(r.summary.get("seed")),
         str(r.summary.get("mixture")))
        for n, r in sorted(results.rl.items()) if r.summary]
  if rl:
    parts.append(table(("run", "variant", "seed", "data mixture"), rl))
  if results.stage_times:
    parts.append(table(("stage", "seconds"), [
        (n, fmt(v, ".1f")) for n, v in sorted(results.stage_times.items())]))
  return "\n\n".join(parts) if parts else "not run: no stage records."


def _data_section(results: ExperimentResults) -> str:
  m = results.manifest
  if m is None:
    return "not run: no data/manifest.json."
  rows = [(rel, e.get("sha256", "-"), fmt(e.get("bytes"), "d"))
          for rel, e in sorted(m.get("files", {}).items())]
  counts = [(k, fmt(v, "d")) for k, v in sorted(m.get("counts", {}).items())]
  return (f"Manifest format {m.get('format')}, seed {m.get('seed')}.\n\n" +
          table(("file", "sha256", "bytes"), rows) +
          ("\n\n" + table(("split", "count"), counts) if counts else ""))


def build_markdown(results: ExperimentResults, paper: Mapping[str, Any],
                   figures: Mapping[str, str], not_run: Mapping[str, str]
                   ) -> str:
  """The report as markdown.

  Args:
    results: the loaded experiment.
    paper: paper_reference.json.
    figures: figure name -> PNG path relative to the report.
    not_run: figure or input -> why it was not run / read.
  """
  sections = [
      f"# Experiment report: {results.experiment_dir.name}",
      "Numbers marked \"paper\" are the study's published values; all "
      "others are from this run. Uncertainties: stderr of the mean, "
      "bootstrap 95% CIs of differences, Benjamini-Hochberg q-values.",
      "## Headline numbers", _headline(results, paper),
      "## Held-out trait scores", _trait_section(results),
      "## Benchmark comparisons", _comparison_section(results),
      "## Evaluation runs (judge ids, data pins)", _eval_section(results),
      "## Persistence", _persistence_section(results),
      "## Reward model", _reward_model_section(results),
      "## Compute per run",
      "Matched: the run's FLOPs are within "
      f"{BUDGET_TOLERANCE:.0%} of its compute budget (the baseline's budget "
      "is the trait-RL run's FLOPs).",
      table(("run", "stop reason", "steps", "FLOPs used", "budget",
             "gap to budget", "matched within 1%"), compute_rows(results))
      if results.rl else "not run: no RL runs.",
      "## Configs and stages", _config_section(results),
      "## Data (manifest hashes)", _data_section(results),
      "## Figures"]
  for name, path in figures.items():
    sections.append(f"### {name}\n\n![{name}]({path})")
  sections.append("## Not run")
  sections.append("\n".join(f"- {k}: {v}" for k, v in sorted(
      not_run.items())) if not_run else "Everything ran.")
  return "\n\n".join(sections) + "\n"


# ------------------------------------------------------------ md -> html --

def _inline(text: str) -> str:
  out = html.escape(text, quote=True)
  out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
  return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def _cells(line: str) -> list[str]:
  cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
  return [c.strip().replace("\\|", "|") for c in cells]


def markdown_to_html(md: str, title: str = "report") -> str:
  """HTML of the markdown subset `build_markdown` writes."""
  out = [f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>"
         f"{html.escape(title)}</title><style>table{{border-collapse:collapse;"
         "font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px}"
         "img{max-width:100%}</style></head><body>"]
  lines = md.splitlines()
  i = 0
  while i < len(lines):
    line = lines[i]
    if not line.strip():
      i += 1
    elif m := re.match(r"^(#{1,6}) (.*)$", line):
      n = len(m[1])
      out.append(f"<h{n}>{_inline(m[2])}</h{n}>")
      i += 1
    elif m := re.match(r"^!\[([^\]]*)\]\(([^)]+)\)$", line):
      out.append(f"<p><img alt=\"{html.escape(m[1])}\" "
                 f"src=\"{html.escape(m[2])}\"></p>")
      i += 1
    elif line.startswith("|"):
      block = []
      while i < len(lines) and lines[i].startswith("|"):
        block.append(lines[i])
        i += 1
      head = "".join(f"<th>{_inline(c)}</th>" for c in _cells(block[0]))
      body = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>"
                                      for c in _cells(r)) + "</tr>"
                     for r in block[2:])
      out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}"
                 "</tbody></table>")
    elif line.startswith("- "):
      items = []
      while i < len(lines) and lines[i].startswith("- "):
        items.append(f"<li>{_inline(lines[i][2:])}</li>")
        i += 1
      out.append("<ul>" + "".join(items) + "</ul>")
    else:
      para = []
      while i < len(lines) and lines[i].strip() and not re.match(
          r"^(#|\||- |!\[)", lines[i]):
        para.append(lines[i])
        i += 1
      out.append(f"<p>{_inline(' '.join(para))}</p>")
  out.append("</body></html>")
  return "\n".join(out) + "\n"


def write_report(out_dir: io_lib.PathLike, markdown: str
                 ) -> tuple[pathlib.Path, pathlib.Path]:
  """Writes out_dir/report.md and report.html atomically."""
  out = pathlib.Path(out_dir)
  md_path, html_path = out / "report.md", out / "report.html"
  io_lib.atomic_write_text(md_path, markdown)
  io_lib.atomic_write_text(html_path, markdown_to_html(markdown))
  return md_path, html_path
