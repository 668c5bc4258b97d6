"""The `Benchmark` spec shared by the embedded suite and the public adapters.

A benchmark is a named loader of `EvalItem`s plus how to score a policy's
behaviour on them. Every reported score is oriented higher-is-better: for a
metric where lower is better (e.g. harmful compliance rate) the oriented item
score is 1 - raw. The raw metric is kept beside it.

Some published metrics are not a mean of per-item scores (BBQ's bias score,
DiscrimEval's group gaps, Winogenerated's gender correlation). A benchmark
computes those with its optional `aggregate` over all of its scored items;
the result is reported beside the mean as the summary's `aggregates`
(`compute_aggregates` checks what it returns).

`ItemScore` is what scoring returns per item, and `generate_responses` the
batched `Policy.generate` call every generated kind shares.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import (Any, Callable, Literal, Mapping, NamedTuple, Protocol,
                    Sequence)

from beneficial_rl.data.scenarios import Criterion
from beneficial_rl.data.scenarios import Message

Domain = Literal["health", "non_health"]
Scoring = Literal[
    "mc_logprob",        # argmax of log p(choice | prompt) vs `target` index
    "generated_choice",  # parse a choice letter/label from generated text
    "rubric",            # rubric judge over `rubric` criteria
    "refusal",           # refusal classifier; metadata['should_refuse']
    "exact_match",       # normalised generated answer == `target`
    "judge_scale",       # 0-100 judge scores (emergent-misalignment rule)
    "belief_stance",     # pressured stance vs elicited belief (MASK lies)
    "belief_consistency",  # incentivised vs unpressured answer (deception)
]
# How mc_logprob compares choices (`choice.normalize_logprobs`): "sum" picks
# the largest summed log-prob, "per_char" the largest sum divided by the
# choice's length in characters (length-normalised, tokenizer-independent).
McNormalization = Literal["sum", "per_char"]


@dataclasses.dataclass(frozen=True)
class EvalItem:
  """One evaluation prompt.

  Attributes:
    id: unique within its benchmark.
    messages: the conversation shown to the policy; last turn from the user.
    choices: answer options (multiple-choice scorings).
    target: correct choice index (int), answer string, or None.
    rubric: criteria for rubric scoring.
    metadata: benchmark-specific fields, e.g. 'should_refuse' (bool),
      'answer_matching_behavior', 'context_condition'.
  """
  id: str
  messages: tuple[Message, ...]
  choices: tuple[str, ...] = ()
  target: Any = None
  rubric: tuple[Criterion, ...] = ()
  metadata: dict[str, Any] = dataclasses.field(default_factory=dict)


class ItemScore(NamedTuple):
  """What scoring returns for one item (`scoring.score_items`).

  raw: raw metric in [0, 1], or None when undefined (e.g. every judge call
    failed).
  refused: is_refusal(response) where text was generated, else None.
  response: the generated text (mc_logprob: the text of the argmax choice).
  choice: picked (mc_logprob) or parsed (generated_choice) index, else None.
  details: kind-specific extras (log-probs, rubric tag scores, verdicts...).
  """
  raw: float | None
  refused: bool | None
  response: str
  choice: int | None = None
  details: Mapping[str, Any] = {}


@dataclasses.dataclass(frozen=True)
class ScoredRecord(Protocol):
  """What an `Aggregate` reads of one scored item (`scoring.ItemRecord`)."""

  @property
  def id(self) -> str: ...

  @property
  def raw(self) -> float | None:
    """Raw per-item metric; None when unscored."""

  @property
  def choice(self) -> int | None:
    """Picked (mc_logprob) or parsed (generated_choice) choice index."""

  @property
  def details(self) -> Mapping[str, Any]:
    """Kind-specific extras, e.g. 'logprobs': float[C] summed log-probs."""


# (items, their records in the same order) -> {metric name: value}. NaN marks
# an undefined value (stored as null).
Aggregate = Callable[[Sequence[EvalItem], Sequence[ScoredRecord]],
                     dict[str, float]]


@dataclasses.dataclass(frozen=True)
class DataPin:
  """Where a benchmark's data lives and the sha256 it must have."""
  path: str
  sha256: str | None = None


@dataclasses.dataclass(frozen=True)
class Benchmark:
  """A registered benchmark.

  Attributes:
    name: unique registry key, e.g. 'sycophancy_are_you_sure'.
    category: study category, e.g. 'sycophancy', 'deception', 'fairness'.
    domain: 'health' or 'non_health' (in- vs out-of-domain transfer).
    load_items: returns the items; raises `MissingDataError` when a file-backed
      benchmark's data is absent.
    scoring: how a response is scored (see `Scoring`).
    metric: the raw metric's name, e.g. 'accuracy', 'harmful_compliance_rate'.
    higher_is_better: direction of the raw metric.
    data_pin: file and sha256 for file-backed benchmarks; None if generated.
    description: one line for `python -m beneficial_rl.eval.list`.
    aggregate: optional benchmark-level metrics computed from every scored
      item (see `Aggregate`), reported as the summary's `aggregates`.
    mc_normalization: how mc_logprob picks a choice (see `McNormalization`);
      a summed log-prob favours short choices, "per_char" divides it by the
      choice's length. Ignored by the other scorings.
  """
  name: str
  category: str
  domain: Domain
  load_items: Callable[[], Sequence[EvalItem]]
  scoring: Scoring
  metric: str
  higher_is_better: bool = True
  data_pin: DataPin | None = None
  description: str = ""
  aggregate: Aggregate | None = None
  mc_normalization: McNormalization = "sum"

  def orient(self, raw: float) -> float:
    """Maps a raw per-item or mean metric in [0, 1] to higher-is-better."""
    return raw if self.higher_is_better else 1.0 - raw


def compute_aggregates(benchmark: Benchmark, items: Sequence[EvalItem],
                       records: Sequence[ScoredRecord]) -> dict[str, float]:
  """`benchmark.aggregate(items, records)`, checked; {} without one.

  Raises:
    ValueError: items and records do not match one to one, or the aggregate
      returned something other than {str: number}.
  """
  if benchmark.aggregate is None:
    return {}
  if [it.id for it in items] != [r.id for r in records]:
    raise ValueError(f"benchmark {benchmark.name!r}: aggregate needs the "
                     "items of the records, in the same order")
  out = benchmark.aggregate(items, records)
  if not isinstance(out, Mapping):
    raise ValueError(f"benchmark {benchmark.name!r}: aggregate returned "
                     f"{type(out).__name__}, expected a dict")
  checked = {}
  for key, value in out.items():
    if not isinstance(key, str) or isinstance(value, bool) or not isinstance(
        value, numbers.Real):
      raise ValueError(f"benchmark {benchmark.name!r}: aggregate entry "
                       f"{key!r}: {value!r} is not a number")
    checked[key] = float(value)
  return checked


class MissingDataError(FileNotFoundError):
  """A file-backed benchmark's data is absent: 'missing data at PATH'."""

  def __init__(self, benchmark: str, path: str):
    super().__init__(f"{benchmark}: missing data at {path}")
    self.benchmark, self.path = benchmark, path


class Policy(Protocol):
  """What the evaluation harness needs from a model (local or served)."""

  policy_id: str

  def generate(self, conversations: Sequence[Sequence[Message]], *,
               max_new_tokens: int,
               prefills: Sequence[str | None] | None = None) -> list[str]:
    """Greedy (or configured) completions, one per conversation.

    `prefills[i]`, when given and not None, is forced as the start of the
    assistant's reply (prefill attack); the policy returns only what it
    generates after it.
    """

  def choice_logprobs(self, conversations: Sequence[Sequence[Message]],
                      choices: Sequence[Sequence[str]]) -> list[list[float]]:
    """Sum of token log-probs of each choice as the assistant's reply."""


def generate_responses(policy: Policy,
                       conversations: Sequence[Sequence[Message]], *,
                       max_new_tokens: int, batch_size: int,
                       prefills: Sequence[str | None] | None = None
                       ) -> list[str]:
  """`policy.generate` in batches of `batch_size`, count checked.

  A prefill (prefill attack) is forced as the start of the response and kept
  in the returned text; `prefills` is passed on only for batches with one.
  """
  prefills = list(prefills) if prefills is not None else [None] * len(
      conversations)
  texts: list[str] = []
  for s in range(0, len(conversations), batch_size):
    chunk = list(conversations[s:s + batch_size])
    pre = prefills[s:s + batch_size]
    kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens}
    if any(pre):
      kwargs["prefills"] = pre
    out = policy.generate(chunk, **kwargs)
    if len(out) != len(chunk):
      raise RuntimeError(f"policy {policy.policy_id!r} returned {len(out)} "
                         f"completions for {len(chunk)} conversations")
    texts.extend((p or "") + t for p, t in zip(pre, out))
  return texts
