"""Suite runner: resume, partial lines, fallbacks, and the binary end to end."""

from __future__ import annotations

import dataclasses
import json
import pathlib

import jax
import numpy as np
import optax
import pytest

from beneficial_rl import checkpoints
from beneficial_rl.data import chat
from beneficial_rl.data import vocab as vocab_lib
from beneficial_rl.data.scenarios import Message
from beneficial_rl.eval import __main__ as eval_main
from beneficial_rl.eval import policies
from beneficial_rl.eval import runner
from beneficial_rl.eval.benchmarks import adapters
from beneficial_rl.eval.benchmarks import registry
from beneficial_rl.eval.benchmarks import scoring
from beneficial_rl.eval.benchmarks.spec import Benchmark
from beneficial_rl.eval.benchmarks.spec import EvalItem
from beneficial_rl.eval.benchmarks.spec import MissingDataError
from beneficial_rl.grading import model_judge
from beneficial_rl.models import config as config_lib
from beneficial_rl.models import transformer
from beneficial_rl.train_state import TrainState
from beneficial_rl.utils import io as io_lib

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


class FakePolicy:
  """Deterministic answers from the last user turn; records every call.

  generate answers '(B)' when the question number is odd, else '(A)'.
  choice_logprobs prefers choice (question number mod #choices).
  `fail_on_call` raises on that generate call (1-based): an interruption.
  """

  def __init__(self, policy_id: str = "fake", fail_on_call: int | None = None,
               logprobs: bool = True):
    self.policy_id = policy_id
    self.supports_choice_logprobs = logprobs
    self.fail_on_call = fail_on_call
    self.generate_calls: list[list[str]] = []
    self.choice_calls: list[list[str]] = []

  def generate(self, conversations, *, max_new_tokens):
    self.generate_calls.append([c[-1].content for c in conversations])
    if len(self.generate_calls) == self.fail_on_call:
      raise RuntimeError("interrupted")
    return ["(B)" if _number(c) % 2 else "(A)" for c in conversations]

  def choice_logprobs(self, conversations, choices):
    self.choice_calls.append([c[-1].content for c in conversations])
    return [[0.0 if j == _number(c) % len(ch) else -1.0
             for j in range(len(ch))] for c, ch in zip(conversations, choices)]


def _number(conversation) -> int:
  return int(conversation[-1].content.split()[1])


def _toy(name: str, kind: str, n: int = 5, higher: bool = True,
         missing: bool = False) -> Benchmark:
  items = [EvalItem(f"{name}-{i}", (Message("user", f"question {i} ?"),),
                    ("red", "blue"), int(i % 3 == 0)) for i in range(n)]

  def load():
    if missing:
      raise MissingDataError(name, "/nowhere/data.csv")
    return items

  return Benchmark(name=name, category="toy", domain="non_health",
                   load_items=load, scoring=kind, metric="m",
                   higher_is_better=higher)


def _benchmarks():
  return [_toy("toy_gen", "generated_choice", higher=False),
          _toy("toy_mc", "mc_logprob"),
          _toy("toy_missing", "generated_choice", missing=True)]


def _entries(summary):
  return {k: v for k, v in summary.items() if k != "run"}


# --------------------------------------------------------------- resuming --


def test_scores_match_one_shot_scoring_and_missing_data_is_skipped(tmp_path):
  settings = runner.RunSettings(suite="toy", chunk_size=2)
  summary = runner.run_suite(_benchmarks(), FakePolicy(), tmp_path, settings)
  assert summary["complete"] and not summary["failed"]
  assert summary["skipped"] == {
      "toy_missing": {"reason": "missing data at /nowhere/data.csv"}}
  for bench in _benchmarks()[:2]:
    want = scoring.run_benchmark(bench, FakePolicy()).summary.to_dict()
    got = summary["benchmarks"][bench.name]
    assert {k: got[k] for k in want} == want
    rows = runner.read_item_rows(runner.items_path(tmp_path, bench.name))
    assert list(rows) == [f"{bench.name}-{i}" for i in range(5)]
    assert np.mean([r["score"] for r in rows.values()]) == pytest.approx(
        got["score"])
  gen = summary["benchmarks"]["toy_gen"]
  # Answers: i odd -> 1, else 0. Targets: 1 on i in {0, 3}, else 0.
  # Hits (raw 1) on i = 2, 3, 4; lower is better, so score = 1 - 3/5.
  assert gen["raw"] == pytest.approx(0.6)
  assert gen["score"] == pytest.approx(0.4)
  assert gen["direction"] == "lower" and gen["scoring_fallback"] is None
  assert io_lib.read_json(tmp_path / "summary.json") == json.loads(
      json.dumps(summary))
  table = runner.format_summary(summary)
  assert "toy_missing" in table and "missing data at /nowhere" in table


def test_resume_after_interruption_scores_only_unfinished_items(tmp_path):
  settings = runner.RunSettings(suite="toy", chunk_size=2)
  broken = FakePolicy(fail_on_call=2)
  first = runner.run_suite(_benchmarks(), broken, tmp_path, settings)
  assert "interrupted" in first["failed"]["toy_gen"]["error"]
  assert "toy_mc" in first["benchmarks"]
  path = runner.items_path(tmp_path, "toy_gen")
  assert list(runner.read_item_rows(path)) == ["toy_gen-0", "toy_gen-1"]

  again = FakePolicy()
  second = runner.run_suite(_benchmarks(), again, tmp_path, settings)
  assert not second["failed"]
  # Only items 2, 3 (one chunk) and 4 were asked; toy_mc not at all.
  assert again.generate_calls == [["question 2 ?", "question 3 ?"],
                                  ["question 4 ?"]]
  assert again.choice_calls == []
  fresh = runner.run_suite(_benchmarks(), FakePolicy(), tmp_path / "fresh",
                           settings)
  assert _entries(second) == _entries(fresh)

  third = FakePolicy()
  assert _entries(runner.run_suite(_benchmarks(), third, tmp_path,
                                   settings)) == _entries(fresh)
  assert third.generate_calls == [] and third.choice_calls == []


def test_partial_last_line_is_dropped_and_rescored(tmp_path):
  settings = runner.RunSettings(suite="toy", chunk_size=2)
  bench = [_toy("toy_gen", "generated_choice")]
  runner.run_suite(bench, FakePolicy(), tmp_path, settings)
  path = runner.items_path(tmp_path, "toy_gen")
  lines = path.read_text().splitlines(keepends=True)
  path.write_text("".join(lines[:-1]) + lines[-1][:25])  # A torn append.
  policy = FakePolicy()
  summary = runner.run_suite(bench, policy, tmp_path, settings)
  assert policy.generate_calls == [["question 4 ?"]]
  assert summary["benchmarks"]["toy_gen"]["n"] == 5
  assert path.read_text().endswith("\n")
  assert len(path.read_text().splitlines()) == 5
  # A malformed line in the middle is an error naming file and line.
  text = path.read_text().splitlines(keepends=True)
  path.write_text(text[0] + "{not json\n" + "".join(text[1:]))
  with pytest.raises(io_lib.DataError, match=r"toy_gen.jsonl:2: bad JSON"):
    runner.read_item_rows(path, repair=True)


def test_changed_item_and_other_policy_are_refused(tmp_path):
  settings = runner.RunSettings(suite="toy", chunk_size=2)
  runner.run_suite([_toy("toy_gen", "generated_choice")], FakePolicy(),
                   tmp_path, settings)
  changed = _toy("toy_gen", "generated_choice")
  items = list(changed.load_items())
  items[1] = dataclasses.replace(items[1], messages=(
      Message("user", "question 1 changed"),))
  changed = dataclasses.replace(changed, load_items=lambda: items)
  summary = runner.run_suite([changed], FakePolicy(), tmp_path, settings)
  assert "item 'toy_gen-1' was stored with prompt hash" in (
      summary["failed"]["toy_gen"]["error"])
  with pytest.raises(io_lib.DataError, match=r"run.json: field 'policy_id': "
                     r"this run has 'other'"):
    runner.run_suite([changed], FakePolicy("other"), tmp_path, settings)
  with pytest.raises(io_lib.DataError, match="field 'max_new_tokens'"):
    runner.run_suite([changed], FakePolicy(), tmp_path,
                     dataclasses.replace(settings, max_new_tokens=7))


def test_mc_logprob_without_logprobs_falls_back_or_skips(tmp_path):
  bench = [_toy("toy_mc", "mc_logprob")]
  policy = FakePolicy(logprobs=False)
  summary = runner.run_suite(bench, policy, tmp_path / "a",
                             runner.RunSettings(suite="toy"))
  entry = summary["benchmarks"]["toy_mc"]
  assert entry["scoring"] == "generated_choice"
  assert entry["scoring_fallback"] == "mc_logprob->generated_choice"
  assert policy.generate_calls[0][0] == (
      "question 0 ?\n(A) red\n(B) blue\nReply with A or B.")
  # Prompt hashes are those of the original items, so runs stay comparable.
  rows = runner.read_item_rows(runner.items_path(tmp_path / "a", "toy_mc"))
  original = bench[0].load_items()[0]
  assert rows["toy_mc-0"]["prompt_hash"] == runner.prompt_hash(original)
  skipped = runner.run_suite(
      bench, FakePolicy(logprobs=False), tmp_path / "b",
      runner.RunSettings(suite="toy", mc_fallback="skip"))
  assert "gives no choice log-probs" in skipped["skipped"]["toy_mc"]["reason"]


class DiscrimPolicy:
  """Choice log-probs of the DiscrimEval fixture by prompt; raises on call
  `fail_on_call` (1-based), an interruption."""

  policy_id = "discrim"

  def __init__(self, logprobs_of, fail_on_call=None, logprobs=True):
    self.logprobs_of, self.fail_on_call = logprobs_of, fail_on_call
    self.supports_choice_logprobs = logprobs
    self.calls = 0

  def generate(self, conversations, *, max_new_tokens):
    return ["(A)" for _ in conversations]

  def choice_logprobs(self, conversations, choices):
    self.calls += 1
    if self.calls == self.fail_on_call:
      raise RuntimeError("interrupted")
    return [self.logprobs_of[c[-1].content] for c in conversations]


def test_aggregates_are_written_and_survive_a_resume(tmp_path):
  benches = adapters.adapter_benchmarks(FIXTURES)
  discrim = next(b for b in benches if b.name == "discrim_eval_explicit")
  items = discrim.load_items()
  # logit P(yes) per row; the fixture's gaps are then (hand-computed in
  # test_adapters): black +0.5, asian 0, female +0.5, younger +0.5, older 0.
  logit = [0.0, 1.0, -1.0, 0.5, 0.5, 1.5]
  lp = {it.messages[-1].content: [x - 2.0, -2.0]
        for it, x in zip(items, logit)}
  want = {"race:black": 0.5, "race:asian": 0.0, "gender:female": 0.5,
          "age_group:younger": 0.5, "age_group:older": 0.0,
          "max_abs_gap": 0.5}
  settings = runner.RunSettings(suite="toy", chunk_size=2)
  first = runner.run_suite([discrim], DiscrimPolicy(lp, fail_on_call=2),
                           tmp_path, settings)
  assert "interrupted" in first["failed"]["discrim_eval_explicit"]["error"]
  again = DiscrimPolicy(lp)
  second = runner.run_suite([discrim], again, tmp_path, settings)
  assert again.calls == 2  # items 2..5 only: two chunks of two
  entry = second["benchmarks"]["discrim_eval_explicit"]
  assert entry["aggregates"] == pytest.approx(want)
  on_disk = io_lib.read_json(tmp_path / runner.SUMMARY_FILE)
  assert on_disk["benchmarks"]["discrim_eval_explicit"]["aggregates"] == (
      pytest.approx(want))
  # A rerun that asks nothing recomputes them from the stored rows alone.
  third = DiscrimPolicy(lp)
  rerun = runner.run_suite([discrim], third, tmp_path, settings)
  assert third.calls == 0
  assert rerun["benchmarks"]["discrim_eval_explicit"]["aggregates"] == (
      pytest.approx(want))
  fresh = runner.run_suite([discrim], DiscrimPolicy(lp), tmp_path / "fresh",
                           settings)
  assert _entries(rerun) == _entries(fresh)


def test_mc2_without_logprobs_is_skipped(tmp_path):
  mc2 = next(b for b in adapters.adapter_benchmarks(FIXTURES)
             if b.name == "truthfulqa_mc2")
  summary = runner.run_suite([mc2], DiscrimPolicy({}, logprobs=False),
                             tmp_path, runner.RunSettings(suite="toy"))
  assert not summary["failed"]
  assert "which the MC2 score needs" in (
      summary["skipped"]["truthfulqa_mc2"]["reason"])


def test_rubric_benchmark_records_the_judge(tmp_path):
  bench = registry.get("health_emergency_triage")
  policy = FakePolicy()
  policy.generate = lambda convs, max_new_tokens: [
      "Call emergency services now; this may be serious."] * len(convs)
  settings = runner.RunSettings(suite="embedded", max_items=4, chunk_size=3)
  summary = runner.run_suite([bench], policy, tmp_path, settings)
  entry = summary["benchmarks"][bench.name]
  want = scoring.run_benchmark(bench, policy, limit=4).summary.to_dict()
  assert {k: entry[k] for k in want} == want
  assert entry["judge_id"] == "pattern" and entry["n"] == 4
  assert entry["num_available"] == len(bench.load_items())
  rows = runner.read_item_rows(runner.items_path(tmp_path, bench.name))
  assert {r["judge_id"] for r in rows.values()} == {"pattern"}
  assert summary["run"]["judge_prompt_version"] == "evidence-v1"


def test_format_summary_lists_aggregates_under_their_benchmark():
  entry = {"domain": "non_health", "n": 4, "score": 0.75, "stderr": 0.1,
           "refusal_rate": None, "raw": 0.25, "metric": "lie_rate",
           "direction": "lower",
           "aggregates": {"honesty": 0.75, "accuracy": None}}
  summary = {"benchmarks": {"mask": entry,
                            "plain": {**entry, "aggregates": {}}},
             "skipped": {"gone": {"reason": "missing data at /x"}},
             "failed": {}}
  lines = runner.format_summary(summary).splitlines()
  i = next(k for k, line in enumerate(lines) if line.startswith("mask "))
  assert lines[i].split()[:4] == ["mask", "non_health", "4", "0.7500"]
  assert lines[i + 1:i + 3] == ["    honesty: 0.7500", "    accuracy: -"]
  assert lines[i + 3].startswith("plain ")
  assert lines[i + 4].startswith("gone ") and len(lines) == i + 5


# ------------------------------------------------------------- end to end --

E2E_BENCHMARKS = ("power_seeking_resources", "alignment_oversight_yes_no",
                  "harmful_compliance")


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory):
  """A tiny random policy saved with config and tokenizer asset."""
  corpus = [it.messages[-1].content + " " + " ".join(it.choices)
            for name in E2E_BENCHMARKS
            for it in registry.get(name).load_items()]
  root = tmp_path_factory.mktemp("e2e")
  vocab = vocab_lib.train_sentencepiece(root / "tok.model", corpus,
                                        vocab_size=512)
  cfg = config_lib.TransformerConfig(
      vocab_size=512, num_layers=2, embed_dim=32, num_heads=4,
      num_kv_heads=2, head_dim=8, mlp_dim=64, max_seq_len=128)
  params = transformer.init_params(transformer.Transformer(cfg),
                                   jax.random.key(1))
  state = TrainState.create(params, optax.sgd(0.1), jax.random.key(0))
  config = model_judge.chat_model_config(cfg, vocab, chat.default_template())
  with checkpoints.CheckpointManager(root / "ckpt") as manager:
    manager.save(12, state, config=config,
                 tokenizer=checkpoints.TokenizerAsset.from_file(
                     root / "tok.model"))
  return root / "ckpt"


def test_binary_end_to_end_and_rerun_asks_nothing(checkpoint_dir, tmp_path,
                                                  monkeypatch, capsys):
  calls = []
  for method in ("generate", "choice_logprobs"):
    original = getattr(policies.LocalPolicy, method)

    def counted(self, *args, _original=original, _name=method, **kwargs):
      calls.append(_name)
      return _original(self, *args, **kwargs)

    monkeypatch.setattr(policies.LocalPolicy, method, counted)
  out = tmp_path / "run"
  argv = [f"--checkpoint_dir={checkpoint_dir}", "--suite=embedded",
          f"--benchmarks={','.join(E2E_BENCHMARKS)}", "--max_items=3",
          "--max_new_tokens=6", "--policy_batch_size=4", f"--out_dir={out}"]
  assert eval_main.main(argv) == 0
  assert sorted(calls) == ["choice_logprobs", "generate", "generate"]
  assert "power_seeking_resources" in capsys.readouterr().out

  summary = io_lib.read_json(out / "summary.json")
  run = summary["run"]
  assert run["checkpoint_dir"] == str(checkpoint_dir.absolute())
  assert run["checkpoint_step"] == 12
  assert run["policy_id"] == f"local:{checkpoint_dir.absolute()}@12"
  assert run["judge_id"] == "pattern" and run["suite"] == "embedded"
  assert run["seed"] == 0 and run["max_items"] == 3
  assert run["policy_settings"]["temperature"] == 0.0
  assert summary["complete"] and not summary["failed"]
  assert sorted(summary["benchmarks"]) == sorted(E2E_BENCHMARKS)
  assert run["benchmarks"] == list(E2E_BENCHMARKS)  # Order of evaluation.
  for name in E2E_BENCHMARKS:
    bench = registry.get(name)
    entry = summary["benchmarks"][name]
    rows = runner.read_item_rows(out / "items" / f"{name}.jsonl", name)
    items = bench.load_items()[:3]
    assert list(rows) == [it.id for it in items]
    assert entry["n"] == 3 and entry["scoring"] == bench.scoring
    assert entry["direction"] == ("higher" if bench.higher_is_better
                                  else "lower")
    assert entry["score"] == pytest.approx(
        np.mean([r["score"] for r in rows.values()]))
    for item in items:
      row = rows[item.id]
      assert set(runner.ITEM_FIELDS) <= set(row)
      assert row["prompt_hash"] == runner.prompt_hash(item)
      assert row["score"] == pytest.approx(bench.orient(row["raw"]))
      if bench.scoring == "mc_logprob":
        lp = row["details"]["logprobs"]
        assert row["choice"] == int(np.argmax(
            row["details"].get("normalized_logprobs", lp)))
        assert row["raw"] == float(row["choice"] == item.target)
        assert row["response"] == item.choices[row["choice"]]
      elif bench.scoring == "generated_choice":
        assert row["choice"] == scoring.parse_choice(row["response"],
                                                     item.choices)
  calls.clear()
  assert eval_main.main(argv) == 0
  assert calls == []
  assert io_lib.read_json(out / "summary.json")["benchmarks"] == (
      summary["benchmarks"])


def test_binary_flag_errors(capsys):
  with pytest.raises(SystemExit):
    eval_main.main(["--suite=embedded"])
  assert "exactly one of --checkpoint_dir and --policy_url" in (
      capsys.readouterr().err)
  with pytest.raises(ValueError, match=r"benchmarks \['nope'\] are not in "
                     "suite 'embedded'"):
    eval_main.select_benchmarks("embedded", "nope", None)


def test_config_file_sets_defaults_and_flags_win(tmp_path, capsys):
  smoke = pathlib.Path(__file__).resolve().parents[2] / "configs/eval/smoke.py"
  args = eval_main.parse_args([f"--config={smoke}", "--checkpoint_dir=x"])
  assert args.max_items == 4 and args.suite == "embedded"
  assert "health_emergency_triage" in args.benchmarks.split(",")
  args = eval_main.parse_args([f"--config={smoke}", "--checkpoint_dir=x",
                               "--max_items=2"])
  assert args.max_items == 2
  bad = tmp_path / "bad.py"
  bad.write_text("def get_config():\n  return {'max_itemz': 3}\n")
  with pytest.raises(SystemExit):
    eval_main.parse_args([f"--config={bad}", "--checkpoint_dir=x"])
  assert "unknown key 'max_itemz'" in capsys.readouterr().err
