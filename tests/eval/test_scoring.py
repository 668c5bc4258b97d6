"""Per-item scoring kinds and run_benchmark, with a fake deterministic policy."""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Sequence

import numpy as np
import pytest

from beneficial_rl.data.scenarios import Criterion
from beneficial_rl.data.scenarios import Evidence
from beneficial_rl.data.scenarios import Message
from beneficial_rl.eval.benchmarks import scoring
from beneficial_rl.eval.benchmarks.spec import Benchmark
from beneficial_rl.eval.benchmarks.spec import EvalItem
from beneficial_rl.grading import judges


class FakePolicy:
  """Answers from lookup functions of the last user turn; counts calls."""

  policy_id = "fake"

  def __init__(self, text_of: Callable[[str], str] | None = None,
               logprobs_of: Callable[[str, Sequence[str]], list[float]]
               | None = None):
    self.text_of, self.logprobs_of = text_of, logprobs_of
    self.calls: list[int] = []

  def generate(self, conversations, *, max_new_tokens):
    assert max_new_tokens > 0
    self.calls.append(len(conversations))
    return [self.text_of(c[-1].content) for c in conversations]

  def choice_logprobs(self, conversations, choices):
    self.calls.append(len(conversations))
    return [self.logprobs_of(c[-1].content, ch)
            for c, ch in zip(conversations, choices)]


def _item(i, choices=(), target=None, rubric=(), **metadata) -> EvalItem:
  return EvalItem(f"it{i}", (Message("user", f"q{i}"),), tuple(choices),
                  target, tuple(rubric), metadata)


def _bench(items, scoring_kind, higher_is_better=True) -> Benchmark:
  return Benchmark(name="toy", category="toy", domain="non_health",
                   load_items=lambda: items, scoring=scoring_kind,
                   metric="m", higher_is_better=higher_is_better)


# --------------------------------------------------------------- parsing --

@pytest.mark.parametrize("text,want", [
    ("(B)", 1), ("Answer: B", 1), ("The answer is (b)", 1), ("B.", 1),
    ("b", 1), ("  C\nbecause", 2), ("Option A", 0), ("I'd say (C) here", 2),
    ("Not (A). The answer is B", 1),          # an explicit answer wins
    ("Red", 0), ("blue, surely", 1), ("The green one", 2),
    ("A good choice is red", None),           # an article, not a letter
    ("(D)", None), ("purple", None), ("", None),
])
def test_parse_choice(text, want):
  assert scoring.parse_choice(text, ("red", "blue", "green")) == want


def test_parse_choice_prefers_longest_choice_text():
  assert scoring.parse_choice("Not sure yet", ("Not", "Not sure")) == 1


def test_format_choices():
  assert scoring.format_choices("Q?", ("x", "y", "z")) == (
      "Q?\n(A) x\n(B) y\n(C) z\nReply with A, B or C.")


def test_normalize_answer():
  assert scoring.normalize_answer("  The  Paris! ") == "paris"
  assert scoring.normalize_answer("An apple, a day.") == "apple day"


# ------------------------------------------------------------ mc_logprob --

def test_mc_logprob_scores_and_summary():
  items = [_item(i, ("a", "b", "c"), target=t) for i, t in
           enumerate((0, 1, 2, 2))]
  lps = {"q0": [-1.0, -2.0, -3.0],   # argmax 0 == 0 -> 1
         "q1": [-1.0, -2.0, -0.5],   # argmax 2 != 1 -> 0
         "q2": [-4.0, -4.0, -0.1],   # argmax 2 == 2 -> 1
         "q3": [-1.0, -1.0, -1.0]}   # 3-way tie holding 2 -> 1/3
  policy = FakePolicy(logprobs_of=lambda q, ch: lps[q])
  res = scoring.run_benchmark(_bench(items, "mc_logprob"), policy)
  assert [r.raw for r in res.records] == pytest.approx([1, 0, 1, 1 / 3])
  assert [r.choice for r in res.records] == [0, 2, 2, 0]  # tie: first
  assert res.records[3].details["tied"] == [0, 1, 2]
  assert res.records[1].response == "c"
  assert all(r.refused is None for r in res.records)
  s = res.summary
  assert (s.n, s.n_scored) == (4, 4)
  assert (s.score, s.raw) == pytest.approx((7 / 12, 7 / 12))
  # sem of [1, 0, 1, 1/3]: deviations 5, -7, 5, -3 twelfths; squares sum to
  # 108/144 = 0.75, variance 0.25, sem sqrt(0.25 / 4).
  assert s.stderr == pytest.approx(0.25)
  assert s.refusal_rate is None and s.n_unparsable == 0


def test_mc_logprob_lower_is_better_is_oriented():
  # target = the behaviour counted (e.g. power seeking); picked in 1 of 4.
  items = [_item(i, ("seek", "decline"), target=0) for i in range(4)]
  policy = FakePolicy(logprobs_of=lambda q, ch: [0.0, -1.0] if q == "q0"
                      else [-1.0, 0.0])
  res = scoring.run_benchmark(_bench(items, "mc_logprob", False), policy)
  assert res.summary.raw == 0.25
  assert res.summary.score == 0.75
  assert [r.score for r in res.records] == [0.0, 1.0, 1.0, 1.0]


def test_mc_logprob_bad_target_and_shape():
  with pytest.raises(ValueError, match="'it0'.*'target'"):
    scoring.score_mc_logprob(_item(0, ("a", "b"), target=2), [0.0, 0.0])
  with pytest.raises(ValueError, match="'target'"):
    scoring.score_mc_logprob(_item(0, ("a", "b"), target=True), [0.0, 0.0])
  with pytest.raises(ValueError, match="3 log-probs for 2 choices"):
    scoring.score_mc_logprob(_item(0, ("a", "b"), target=0), [0, 0, 0])


def test_mc2_item_scores_probability_mass_on_true_answers():
  # q0: true answers 0 and 1 hold 0.4 + 0.1 of the mass; argmax 0.
  # q1: log-probs unnormalised (sum 2.0); true answer 2 holds 0.5 / 2.
  items = [_item(0, ("a", "b", "c", "d"), mc_metric="mc2",
                 correct_indices=[0, 1]),
           _item(1, ("a", "b", "c"), mc_metric="mc2", correct_indices=[2])]
  lps = {"q0": np.log([0.4, 0.1, 0.3, 0.2]).tolist(),
         "q1": np.log([1.0, 0.5, 0.5]).tolist()}
  policy = FakePolicy(logprobs_of=lambda q, ch: lps[q])
  res = scoring.run_benchmark(_bench(items, "mc_logprob"), policy)
  assert [r.raw for r in res.records] == pytest.approx([0.5, 0.25])
  assert [r.choice for r in res.records] == [0, 0]
  assert res.records[0].details["mc_metric"] == "mc2"
  assert res.summary.raw == pytest.approx(0.375)
  assert res.summary.score == pytest.approx(0.375)
  assert res.summary.aggregates == {}  # no aggregate on this benchmark


def test_mc2_item_needs_valid_correct_indices():
  for bad in (None, [], [0, 1], [2], [True]):
    item = _item(0, ("a", "b"), mc_metric="mc2", correct_indices=bad)
    with pytest.raises(ValueError, match=r"'it0': field "
                       r"'metadata.correct_indices' must list some but not"):
      scoring.score_mc_logprob(item, [0.0, -1.0])


# ------------------------------------------------------------- aggregates --

def _first_choice_rate(items, records):
  """Toy aggregate: share of picks that are choice 0 (NaN without picks)."""
  picks = [r.choice for r in records if r.choice is not None]
  first = sum(p == 0 for p in picks) / len(picks) if picks else math.nan
  return {"first_choice_rate": first, "n_items": len(items),
          "undefined": math.nan}


def test_aggregate_reaches_the_summary_and_json():
  items = [_item(i, ("a", "b", "c"), target=2) for i in range(4)]
  picks = {"q0": 0, "q1": 0, "q2": 2, "q3": 1}
  policy = FakePolicy(logprobs_of=lambda q, ch: [
      0.0 if j == picks[q] else -3.0 for j in range(len(ch))])
  bench = dataclasses.replace(_bench(items, "mc_logprob"),
                              aggregate=_first_choice_rate)
  res = scoring.run_benchmark(bench, policy)
  agg = res.summary.aggregates
  assert agg["first_choice_rate"] == 0.5 and agg["n_items"] == 4.0
  assert math.isnan(agg["undefined"])
  assert res.summary.raw == 0.25  # the mean is unchanged
  d = res.to_dict()["summary"]["aggregates"]
  assert d == {"first_choice_rate": 0.5, "n_items": 4.0, "undefined": None}
  # Summaries of bare ids (the runner's chunks) leave the aggregate out.
  part = scoring.summarize(bench, ["it0"], [scoring.ItemScore(1.0, None, "c",
                                                              2)])
  assert part.summary.aggregates == {}


def test_aggregate_errors_name_the_benchmark():
  items = [_item(0, ("a", "b"), target=0)]
  scores = [scoring.ItemScore(1.0, None, "a", 0)]
  bad = dataclasses.replace(_bench(items, "mc_logprob"),
                            aggregate=lambda its, rs: {"x": "high"})
  with pytest.raises(ValueError, match=r"'toy': aggregate entry 'x': 'high' "
                     "is not a number"):
    scoring.summarize(bad, ["it0"], scores, items=items)
  good = dataclasses.replace(bad, aggregate=_first_choice_rate)
  with pytest.raises(ValueError, match="'toy': aggregate needs the items"):
    scoring.summarize(good, ["it0"], scores, items=[_item(5, ("a", "b"))])


# ------------------------------------------------------ generated_choice --

def test_generated_choice_counts_unparsable():
  items = [_item(i, ("yes", "no"), target=1) for i in range(5)]
  texts = {"q0": "(B)", "q1": "Answer: A", "q2": "hmm, hard to say",
           "q3": "No.", "q4": "I'm sorry, but I can't help with that."}
  res = scoring.run_benchmark(_bench(items, "generated_choice"),
                              FakePolicy(text_of=texts.get))
  assert [r.raw for r in res.records] == [1.0, 0.0, 0.0, 1.0, 0.0]
  assert [r.choice for r in res.records] == [1, 0, None, 1, None]
  assert res.summary.n_unparsable == 2
  assert res.summary.score == pytest.approx(0.4)
  assert [r.refused for r in res.records] == [False] * 4 + [True]
  assert res.summary.refusal_rate == pytest.approx(0.2)
  assert res.records[2].details["parsed"] is False


# ---------------------------------------------------------------- rubric --

RUBRIC = (
    Criterion("States the dose", 5, ("axis:accuracy",),
              Evidence(any_of=(r"\b5 ?mg\b",))),
    Criterion("Suggests a doctor", 3, ("axis:completeness",),
              Evidence(any_of=("doctor",))),
    Criterion("Agrees blindly", -4, ("axis:accuracy",),
              Evidence(any_of=("you are right",))),
)


def test_rubric_pattern_judge_scores():
  items = [_item(i, rubric=RUBRIC) for i in range(4)]
  texts = {"q0": "Take 5 mg and ask a doctor.",            # 8/8
           "q1": "You are right, take 5 mg.",              # (5-4)/8
           "q2": "You are right.",                         # -4/8 -> 0
           "q3": "Ask your doctor."}                       # 3/8
  res = scoring.run_benchmark(_bench(items, "rubric"),
                              FakePolicy(text_of=texts.get))
  assert [r.raw for r in res.records] == pytest.approx(
      [1.0, 0.125, 0.0, 0.375])
  assert res.records[2].details["rubric_score"] == pytest.approx(-0.5)
  assert res.records[1].details["criteria_met"] == [True, False, True]
  assert res.summary.score == pytest.approx((1 + 0.125 + 0 + 0.375) / 4)
  assert res.summary.judge_id == "pattern"


class _FailingJudge:
  """Fails on every criterion of responses containing 'fail'."""
  judge_id, prompt_version = "stub", "v0"

  def grade(self, items):
    return [judges.Verdict(None if "fail" in it.response else True, "")
            for it in items]


def test_rubric_injected_judge_and_unscored_items():
  items = [_item(i, rubric=RUBRIC) for i in range(3)]
  texts = {"q0": "ok", "q1": "fail", "q2": "ok"}
  res = scoring.run_benchmark(_bench(items, "rubric"),
                              FakePolicy(text_of=texts.get), _FailingJudge())
  # All met: (5 + 3 - 4) / 8 = 0.5; all failed: undefined.
  assert [r.raw for r in res.records] == [0.5, None, 0.5]
  assert res.summary.n_unscored == 1 and res.summary.n_scored == 2
  assert res.summary.score == 0.5 and res.summary.judge_id == "stub"
  scores = res.to_benchmark_scores()
  assert scores.ids == ("it0", "it2")


# --------------------------------------------------------------- refusal --

@pytest.mark.parametrize("higher,expect_raw", [
    (True, [1.0, 0.0, 0.0, 1.0]),    # correctness
    (False, [0.0, 1.0, 1.0, 0.0]),   # error rate
])
def test_refusal_scoring(higher, expect_raw):
  items = [_item(0, should_refuse=True), _item(1, should_refuse=True),
           _item(2, should_refuse=False), _item(3, should_refuse=False)]
  texts = {"q0": "I can't help with that.", "q1": "Sure, here you go.",
           "q2": "I cannot assist with this.", "q3": "Here is how."}
  res = scoring.run_benchmark(_bench(items, "refusal", higher),
                              FakePolicy(text_of=texts.get))
  assert [r.raw for r in res.records] == expect_raw
  assert [r.score for r in res.records] == [1.0, 0.0, 0.0, 1.0]
  assert [r.refused for r in res.records] == [True, False, True, False]
  assert res.summary.refusal_rate == 0.5


def test_refusal_needs_label():
  with pytest.raises(ValueError, match="'it0'.*should_refuse"):
    scoring.score_refusal(_item(0), "text")


# ----------------------------------------------------------- exact_match --

def test_exact_match_normalised_first_line():
  items = [_item(0, target="Paris"), _item(1, target=("8", "eight")),
           _item(2, target="Paris"), _item(3, target="Rome")]
  texts = {"q0": "  the paris.\nIt is in France.", "q1": "Eight!",
           "q2": "I think Paris", "q3": ""}
  res = scoring.run_benchmark(_bench(items, "exact_match"),
                              FakePolicy(text_of=texts.get))
  assert [r.raw for r in res.records] == [1.0, 1.0, 0.0, 0.0]


def test_exact_match_uses_checker():
  item = _item(0, target="42", checker={"type": "number", "value": 42})
  assert scoring.score_exact_match(item, "It is 42.").raw == 1.0
  assert scoring.score_exact_match(item, "41").raw == 0.0


def test_exact_match_bad_target():
  with pytest.raises(ValueError, match="'it0'.*'target'"):
    scoring.score_exact_match(_item(0, target=3), "3")


# ---------------------------------------------------------- run_benchmark --

def test_batches_limit_and_count_check():
  items = [_item(i, target="x") for i in range(5)]
  policy = FakePolicy(text_of=lambda q: "x")
  res = scoring.run_benchmark(_bench(items, "exact_match"), policy,
                              batch_size=2)
  assert policy.calls == [2, 2, 1] and res.summary.score == 1.0
  res = scoring.run_benchmark(_bench(items, "exact_match"), policy, limit=3)
  assert res.summary.n == 3

  class Short(FakePolicy):
    def generate(self, conversations, *, max_new_tokens):
      return ["x"]
  with pytest.raises(RuntimeError, match="returned 1 completions for 2"):
    scoring.run_benchmark(_bench(items, "exact_match"), Short(), batch_size=2)


def test_result_serialises_and_converts():
  items = [_item(i, should_refuse=False) for i in range(3)]
  texts = {"q0": "ok", "q1": "I cannot help with that.", "q2": "ok"}
  res = scoring.run_benchmark(_bench(items, "refusal"),
                              FakePolicy(text_of=texts.get))
  d = res.to_dict()
  assert d["summary"]["score"] == pytest.approx(2 / 3)
  assert d["records"][1] == {"id": "it1", "raw": 0.0, "score": 0.0,
                             "refused": True, "response": texts["q1"],
                             "choice": None,
                             "details": {"should_refuse": False}}
  scores = res.to_benchmark_scores()
  np.testing.assert_array_equal(scores.scores, [1.0, 0.0, 1.0])
  np.testing.assert_array_equal(scores.refused, [False, True, False])


def test_unscored_summary_is_nan_and_json_null():
  items = [_item(0, rubric=RUBRIC)]
  res = scoring.run_benchmark(_bench(items, "rubric"),
                              FakePolicy(text_of=lambda q: "fail"),
                              _FailingJudge())
  assert math.isnan(res.summary.score) and res.summary.n_scored == 0
  d = res.to_dict()
  assert d["summary"]["score"] is None and d["summary"]["stderr"] is None
  assert d["records"][0]["raw"] is None
  with pytest.raises(ValueError, match="'toy': no scored items"):
    res.to_benchmark_scores()


def test_empty_benchmark_raises():
  with pytest.raises(ValueError, match="'toy' has no items"):
    scoring.run_benchmark(_bench([], "exact_match"), FakePolicy())


def test_prefill_is_forced_and_kept_in_the_scored_response():
  seen = []

  class Prefilling(FakePolicy):
    def generate(self, conversations, *, max_new_tokens, prefills=None):
      seen.append(prefills)
      return ["the steps are below." for _ in conversations]

  items = [_item(0, target="sure, the steps are below.",
                 prefill="Sure, "),
           _item(1, target="the steps are below.")]
  result = scoring.run_benchmark(_bench(items, "exact_match"), Prefilling())
  assert seen == [["Sure, ", None]]
  assert [r.response for r in result.records] == [
      "Sure, the steps are below.", "the steps are below."]
  # Without any prefill in a batch the keyword is not sent at all, so
  # policies without prefill support keep working.
  plain = scoring.run_benchmark(_bench([_item(2, target="x")], "exact_match"),
                                FakePolicy(lambda q: "x"))
  assert plain.summary.score == 1.0
