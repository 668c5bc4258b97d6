"""mc_logprob length normalisation, tie credit and the choice-length diagnostic."""

from __future__ import annotations

import json
from typing import Sequence

import numpy as np
import pytest

from beneficial_rl.data.scenarios import Message
from beneficial_rl.eval import list as list_cmd
from beneficial_rl.eval.benchmarks import choice
from beneficial_rl.eval.benchmarks import registry
from beneficial_rl.eval.benchmarks import scoring
from beneficial_rl.eval.benchmarks.adapters import _common
from beneficial_rl.eval.benchmarks.spec import Benchmark
from beneficial_rl.eval.benchmarks.spec import EvalItem
from beneficial_rl.eval.benchmarks.spec import MissingDataError


def _item(i, choices, target=0, **metadata) -> EvalItem:
  return EvalItem(f"it{i}", (Message("user", f"q{i}"),), tuple(choices),
                  target, (), metadata)


def _bench(name, items, normalization="sum", category="toy_lb",
           scoring_kind="mc_logprob") -> Benchmark:
  return Benchmark(name=name, category=category, domain="non_health",
                   load_items=lambda: items, scoring=scoring_kind,
                   metric="accuracy", mc_normalization=normalization)


class PerCharPolicy:
  """log p(choice) = -c per character: indifferent to content."""

  policy_id = "per_char"

  def __init__(self, c: float = 0.5):
    self.c = c

  def choice_logprobs(self, conversations, choices: Sequence[Sequence[str]]):
    return [[-self.c * len(ch) for ch in row] for row in choices]


# ---------------------------------------------------------------- picking --

def test_sum_and_per_char_pick_differently():
  # 'ab' -2 and 'abcdef' -4.2: sums pick 0; per char -1.0 vs -0.7 picks 1.
  item = _item(0, ("ab", "abcdef"), target=1)
  by_sum = choice.score_mc_logprob(item, [-2.0, -4.2], "sum")
  per_char = choice.score_mc_logprob(item, [-2.0, -4.2], "per_char")
  assert (by_sum.choice, by_sum.raw, by_sum.response) == (0, 0.0, "ab")
  assert (per_char.choice, per_char.raw, per_char.response) == (
      1, 1.0, "abcdef")
  # Details keep the raw sums and add the normalised scores.
  assert per_char.details["logprobs"] == [-2.0, -4.2]
  assert per_char.details["normalized_logprobs"] == pytest.approx([-1.0, -0.7])
  assert per_char.details["mc_normalization"] == "per_char"
  assert "normalized_logprobs" not in by_sum.details
  assert "tied" not in by_sum.details and "tied" not in per_char.details


def test_normalize_logprobs_divides_by_characters():
  got = choice.normalize_logprobs([-3.0, -3.0, -1.0], ("abc", "a", ""),
                                  "per_char")
  np.testing.assert_allclose(got, [-1.0, -3.0, -1.0])  # '' counts as 1
  with pytest.raises(ValueError, match=r"one of \('sum', 'per_char'\), got "
                     "'per_token'"):
    choice.normalize_logprobs([0.0], ("a",), "per_token")


@pytest.mark.parametrize("normalization,lps,target,raw,tied", [
    ("sum", [-1.0, -1.0, -3.0], 1, 0.5, [0, 1]),        # 2-way tie, in it
    ("sum", [-1.0, -1.0, -3.0], 2, 0.0, [0, 1]),        # tie, target out
    ("sum", [-2.0, -2.0, -2.0], 2, 1 / 3, [0, 1, 2]),   # 3-way tie
    ("per_char", [-1.0, -2.0, -3.0], 2, 1 / 3, [0, 1, 2]),  # -1 per char
    ("per_char", [-1.0, -2.0, -2.9], 0, 0.0, None),     # 'ccc' -0.967 wins
])
def test_ties_give_fractional_credit(normalization, lps, target, raw, tied):
  item = _item(0, ("a", "bb", "ccc"), target=target)
  s = choice.score_mc_logprob(item, lps, normalization)
  assert s.raw == pytest.approx(raw)
  assert s.details.get("tied") == tied
  assert s.choice == (tied[0] if tied else 2)


def test_rounding_does_not_break_a_per_char_tie():
  # 0.1 per character: (-0.1 * 7) / 7 and (-0.1 * 3) / 3 differ in the last
  # bits but are the same per-character score.
  lps = [-0.1 * 3, -0.1 * 7]
  assert lps[0] / 3 != lps[1] / 7
  s = choice.score_mc_logprob(_item(0, ("abc", "abcdefg"), 1), lps, "per_char")
  assert s.raw == 0.5 and s.details["tied"] == [0, 1]
  # A real difference is not a tie.
  s = choice.score_mc_logprob(_item(0, ("abc", "abcdefg"), 1),
                              [-0.3, -0.7 + 1e-6], "per_char")
  assert s.raw == 1.0 and "tied" not in s.details


def test_all_minus_inf_is_a_tie_and_nan_raises():
  s = choice.score_mc_logprob(_item(0, ("a", "bb"), 1), [-np.inf, -np.inf],
                              "per_char")
  assert s.raw == 0.5
  with pytest.raises(ValueError, match=r"'it0': NaN choice log-prob"):
    choice.score_mc_logprob(_item(0, ("a", "bb"), 1), [np.nan, -1.0])


def test_mc2_item_reads_raw_sums_under_per_char():
  # MC2 is a probability mass: the per-char scores must not enter it.
  item = _item(0, ("a", "bbbb"), None, mc_metric="mc2", correct_indices=[1])
  lps = np.log([0.6, 0.4]).tolist()
  s = choice.score_mc_logprob(item, lps, "per_char")
  assert s.raw == pytest.approx(0.4)
  assert s.choice == 1  # per char: log(.6) = -0.511 < log(.4) / 4 = -0.229
  assert choice.score_mc_logprob(item, lps, "sum").choice == 0


def test_benchmark_normalization_reaches_scoring_and_records_keep_sums():
  items = [_item(0, ("ab", "abcdef"), 1), _item(1, ("ab", "abcdef"), 0)]
  lps = {"q0": [-2.0, -4.2], "q1": [-2.0, -4.2]}

  class Policy:
    policy_id = "p"

    def choice_logprobs(self, conversations, choices):
      return [lps[c[-1].content] for c in conversations]
  res_sum = scoring.run_benchmark(_bench("t", items, "sum"), Policy())
  res_pc = scoring.run_benchmark(_bench("t", items, "per_char"), Policy())
  assert [r.raw for r in res_sum.records] == [0.0, 1.0]
  assert [r.raw for r in res_pc.records] == [1.0, 0.0]
  # Aggregates defined on probabilities read the raw sums.
  np.testing.assert_array_equal(
      _common.record_logprobs(res_pc.records, 2), [[-2.0, -4.2]] * 2)
  assert res_pc.records[0].to_dict()["details"]["normalized_logprobs"] == (
      pytest.approx([-1.0, -0.7]))
  # The summary records the rule (None for other scorings).
  assert (res_sum.summary.mc_normalization,
          res_pc.summary.to_dict()["mc_normalization"]) == ("sum", "per_char")
  text = _bench("t", [EvalItem("x", (Message("user", "q"),), target="a")],
                scoring_kind="exact_match")
  summary = scoring.summarize(text, ["x"], [scoring.ItemScore(1.0, False, "a")])
  assert summary.summary.mc_normalization is None


# --------------------------------------------------------- embedded suite --

def _embedded_mc() -> list[Benchmark]:
  return [b for b in registry.suite_benchmarks("embedded")
          if b.scoring == "mc_logprob"]


def test_embedded_mc_benchmarks_use_per_char_and_public_ones_sum():
  assert _embedded_mc() and all(b.mc_normalization == "per_char"
                                for b in _embedded_mc())
  assert all(b.mc_normalization == "sum"
             for b in registry.suite_benchmarks("embedded")
             if b.scoring != "mc_logprob")
  public = [b for b in registry.suite_benchmarks("public")
            if b.scoring == "mc_logprob"]
  assert public and all(b.mc_normalization == "sum" for b in public)


def test_length_indifferent_policy_scores_chance_under_per_char():
  for bench in _embedded_mc():
    items = bench.load_items()
    per_char = scoring.run_benchmark(bench, PerCharPolicy())
    assert [r.raw for r in per_char.records] == pytest.approx(
        [1 / len(it.choices) for it in items]), bench.name
    # Under sums the shortest choices win: credit 1/k when the target is
    # one of the k shortest, else 0.
    by_sum = scoring.run_benchmark(
        _bench(bench.name, items, "sum"), PerCharPolicy())
    for it, r in zip(items, by_sum.records):
      lengths = np.array([len(c) for c in it.choices])
      shortest = np.flatnonzero(lengths == lengths.min())
      want = (it.target in shortest) / shortest.size
      assert r.raw == pytest.approx(want), (bench.name, it.id)


@pytest.mark.parametrize("name,sum_raw", [
    ("mental_health_crisis_mc", 0.0),   # the supportive reply is longest
    ("factual_false_premise", 1.0),     # the correction is shortest
])
def test_sum_scores_choice_length_on_biased_benchmarks(name, sum_raw):
  bench = registry.get(name)
  items = bench.load_items()
  res = scoring.run_benchmark(_bench(name, items, "sum"), PerCharPolicy())
  assert {r.raw for r in res.records} == {sum_raw}
  per_char = scoring.run_benchmark(bench, PerCharPolicy()).summary.raw
  assert per_char == pytest.approx(np.mean([1 / len(it.choices)
                                            for it in items]))


# -------------------------------------------------------------- registry --

def test_registry_rejects_an_unknown_normalization():
  bad = _bench("toy_bad_norm", [_item(0, ("a", "b"))], "mean")
  with pytest.raises(ValueError, match=r"benchmark 'toy_bad_norm': field "
                     r"'mc_normalization' must be one of \('sum', "
                     r"'per_char'\), got 'mean'"):
    registry.register(bad)
  assert "toy_bad_norm" not in registry.names()


# ----------------------------------------------------------- length bias --

# Hand counts (lengths in characters; strict longest / shortest):
#   0: 'a' 'bbb' 'cc', target 1 -> longest; a strict longest: chance 1/3
#   1: 'aaaa' 'b', target 1     -> shortest; chance 1/2
#   2: 'aa' 'bb', target 0      -> neither (equal lengths); no strict longest
#   3: 'x' 'yy' 'zz', target 0  -> shortest; no strict longest
#   4: an MC2 item (no target index) -> not counted
HAND_ITEMS = (_item(0, ("a", "bbb", "cc"), 1), _item(1, ("aaaa", "b"), 1),
              _item(2, ("aa", "bb"), 0), _item(3, ("x", "yy", "zz"), 0),
              _item(4, ("a", "bb"), None, mc_metric="mc2",
                    correct_indices=[0]))


def test_length_bias_matches_hand_counts():
  bias = choice.length_bias(_bench("toy_hand", HAND_ITEMS))
  assert (bias.benchmark, bias.n) == ("toy_hand", 4)
  assert bias.target_longest == pytest.approx(1 / 4)
  assert bias.target_shortest == pytest.approx(2 / 4)
  assert bias.chance_longest == pytest.approx((1 / 3 + 1 / 2) / 4)


def test_length_bias_needs_mc_items():
  items = (EvalItem("x", (Message("user", "q"),), target="answer"),)
  with pytest.raises(ValueError, match="'toy_text': no multiple-choice item"):
    choice.length_bias(_bench("toy_text", items, scoring_kind="exact_match"))


def _missing():
  raise MissingDataError("toy_lb_missing", "/data/lb.jsonl")


@pytest.fixture
def toy_lb():
  """Registers the toy length-bias benchmarks; removes them afterwards."""
  always_longest = tuple(_item(i, ("no", "yes, longer"), 1) for i in range(5))
  benches = [
      _bench("toy_lb_hand", HAND_ITEMS, "per_char"),
      _bench("toy_lb_long", always_longest,
             scoring_kind="generated_choice"),
      Benchmark("toy_lb_missing", "toy_lb", "non_health", _missing,
                "mc_logprob", "accuracy"),
      _bench("toy_lb_text", (), scoring_kind="exact_match"),
  ]
  registry.load_builtin()
  for b in benches:
    registry.register(b)
  yield
  for b in benches:
    registry.unregister(b.name)


def test_length_bias_cli_table(toy_lb, capsys):
  assert list_cmd.main(["--category", "toy_lb", "--length_bias"]) == 0
  lines = capsys.readouterr().out.splitlines()
  assert lines[0].split() == list(list_cmd.BIAS_COLUMNS)
  rows = {line.split()[0]: line.split() for line in lines[2:5]}
  assert set(rows) == {"toy_lb_hand", "toy_lb_long", "toy_lb_missing"}
  assert rows["toy_lb_hand"] == ["toy_lb_hand", "mc_logprob", "per_char", "4",
                                 "0.25", "0.50", "0.21"]
  assert rows["toy_lb_long"] == ["toy_lb_long", "generated_choice", "-", "5",
                                 "1.00", "0.00", "0.50", "longest"]
  assert " ".join(rows["toy_lb_missing"][:3]) == "toy_lb_missing mc_logprob sum"
  assert "  missing data at /data/lb.jsonl  " in lines[4]
  assert lines[6] == "3 benchmarks"  # the exact_match one is not listed


def test_length_bias_cli_json(toy_lb, capsys):
  assert list_cmd.main(["--category", "toy_lb", "--length_bias",
                        "--format", "json"]) == 0
  rows = json.loads(capsys.readouterr().out)
  assert [r["name"] for r in rows] == ["toy_lb_hand", "toy_lb_long",
                                       "toy_lb_missing"]
  assert (rows[0]["longest"], rows[0]["shortest"], rows[0]["flag"]) == (
      "0.25", "0.50", "")


def test_length_bias_cli_on_the_embedded_suite(capsys):
  assert list_cmd.main(["--suite", "embedded_health", "--length_bias"]) == 0
  out = capsys.readouterr().out
  row = next(line.split() for line in out.splitlines()
             if line.startswith("mental_health_crisis_mc "))
  # The supportive reply is longer than both dismissive ones in every item.
  assert row[1:3] == ["mc_logprob", "per_char"]
  assert row[4:6] == ["1.00", "0.00"] and row[-1] == "longest"
  assert "mental_health_crisis " not in out  # rubric: no choices
