"""Building blocks of the embedded suite: cases, specs and item assembly.

A category module describes each benchmark as an `EmbeddedSpec`: its labels
and a `cases(rng)` function that yields `Case`s (a conversation plus the
aligned answer and the other answers, or a rubric, a refusal label, a target
string). `EmbeddedSpec.items(seed)` turns the first `n` distinct cases into
`EvalItem`s:

  * the case stream is drawn from `random.Random('embedded/<name>/<seed>')`,
    so items are a pure function of (name, seed);
  * MC choices are shuffled per item with the aligned answer's position
    balanced over items (item i puts it at position i mod C), so a policy
    that always answers 'A' gets chance accuracy;
  * `target` is the aligned choice for higher-is-better metrics and the first
    non-aligned choice (the behaviour the rate counts) for lower-is-better
    ones; metadata['aligned_choice'] is always the aligned index;
  * generated_choice prompts list the options as '(A) ...' lines;
  * mc_logprob benchmarks compare choices per character
    (`MC_NORMALIZATION`): the suite's aligned answers are often the longest
    (or shortest) choice, which a summed log-prob would reward by length.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import random
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from beneficial_rl.data.scenarios import Criterion
from beneficial_rl.data.scenarios import Evidence
from beneficial_rl.data.scenarios import Message
from beneficial_rl.eval.benchmarks import scoring
from beneficial_rl.eval.benchmarks.spec import Benchmark
from beneficial_rl.eval.benchmarks.spec import Domain
from beneficial_rl.eval.benchmarks.spec import EvalItem
from beneficial_rl.eval.benchmarks.spec import McNormalization
from beneficial_rl.eval.benchmarks.spec import Scoring

DEFAULT_SEED = 0
MIN_ITEMS, MAX_ITEMS = 40, 200
N_MC, N_GENERATED = 64, 48  # default item counts (generation is slower)
ALL = -1  # `EmbeddedSpec.n` for "every case of a finite stream"
_MC_KINDS = ("mc_logprob", "generated_choice")
# How every embedded mc_logprob benchmark compares choices (see
# `benchmarks.choice`); the suite's answer lengths are not balanced.
MC_NORMALIZATION: McNormalization = "per_char"


@dataclasses.dataclass(frozen=True)
class Case:
  """One generated prompt before it becomes an `EvalItem`.

  Attributes:
    messages: the conversation, last turn from the user.
    aligned: the aligned / correct answer (MC kinds).
    others: the other answers; others[0] is the behaviour a lower-is-better
      rate counts (MC kinds).
    target: exact_match answer(s).
    rubric: rubric criteria (rubric kind).
    metadata: extra fields, e.g. 'should_refuse', 'context_condition'.
  """
  messages: tuple[Message, ...]
  aligned: str | None = None
  others: tuple[str, ...] = ()
  target: Any = None
  rubric: tuple[Criterion, ...] = ()
  metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)


# cases(rng), or cases(rng, seed) for specs with `seeded=True` (streams that
# wrap another seeded generator, e.g. the standard tasks).
CaseFn = Callable[..., Iterable[Case]]


def user(text: str, system: str | None = None) -> tuple[Message, ...]:
  """A one-turn conversation, optionally after a system message."""
  head = (Message("system", system),) if system else ()
  return head + (Message("user", text),)


def dialog(*turns: str, system: str | None = None) -> tuple[Message, ...]:
  """Alternating user / assistant turns (odd count, ending with the user)."""
  if len(turns) % 2 != 1:
    raise ValueError("a dialog must end with a user turn")
  head = (Message("system", system),) if system else ()
  return head + tuple(Message("user" if i % 2 == 0 else "assistant", t)
                      for i, t in enumerate(turns))


def combos(rng: random.Random, **slots: Sequence[Any]) -> Iterator[dict]:
  """Every combination of slot values as dicts, in a seeded random order."""
  keys = list(slots)
  rows = [dict(zip(keys, vals)) for vals in
          itertools.product(*(slots[k] for k in keys))]
  rng.shuffle(rows)
  return iter(rows)


def round_robin(*streams: Iterable[Case]) -> Iterator[Case]:
  """Alternates between case streams (template families) until all end."""
  iters = [iter(s) for s in streams]
  while iters:
    alive = []
    for it in iters:
      case = next(it, None)
      if case is not None:
        yield case
        alive.append(it)
    iters = alive


def crit(text: str, points: int, tag: str, any_of: Sequence[str] = (),
         none_of: Sequence[str] = (), all_of: Sequence[str] = ()) -> Criterion:
  """A rubric criterion with regex evidence for `PatternJudge`."""
  return Criterion(text, points, (tag,), Evidence(tuple(any_of), tuple(all_of),
                                                  tuple(none_of)))


@dataclasses.dataclass(frozen=True)
class EmbeddedSpec:
  """A procedurally generated benchmark before registration."""
  name: str
  category: str
  domain: Domain
  scoring: Scoring
  metric: str
  cases: CaseFn
  higher_is_better: bool = True
  n: int = 0  # 0: N_MC for mc_logprob, N_GENERATED for generated kinds;
  # ALL: every distinct case of a finite stream (MIN_ITEMS..MAX_ITEMS)
  description: str = ""
  seeded: bool = False  # pass the suite seed to `cases` as well

  def __post_init__(self):
    if self.n not in (0, ALL) and not MIN_ITEMS <= self.n <= MAX_ITEMS:
      raise ValueError(f"{self.name}: n={self.n} outside "
                       f"[{MIN_ITEMS}, {MAX_ITEMS}]")

  @property
  def num_items(self) -> int:
    """Items to take; MAX_ITEMS for ALL (the stream then ends earlier)."""
    if self.n == ALL:
      return MAX_ITEMS
    return self.n or (N_MC if self.scoring == "mc_logprob" else N_GENERATED)

  def items(self, seed: int = DEFAULT_SEED) -> tuple[EvalItem, ...]:
    return _items(self, seed)

  def benchmark(self, seed: int = DEFAULT_SEED) -> Benchmark:
    return Benchmark(
        name=self.name, category=self.category, domain=self.domain,
        load_items=functools.partial(_items, self, seed),
        scoring=self.scoring, metric=self.metric,
        higher_is_better=self.higher_is_better, data_pin=None,
        description=self.description,
        mc_normalization=(MC_NORMALIZATION if self.scoring == "mc_logprob"
                          else "sum"))


def _prompt_key(messages: Sequence[Message]) -> str:
  return "\n".join(f"{m.role}: {m.content}" for m in messages)


def _mc_item(spec: EmbeddedSpec, case: Case, index: int,
             rng: random.Random) -> EvalItem:
  """Shuffles the answers (aligned at index mod C) and builds the item."""
  if case.aligned is None or not case.others:
    raise ValueError(f"{spec.name}: an MC case needs aligned and others")
  others = list(case.others)
  n = len(others) + 1
  pos = index % n
  ordered = list(others)
  rng.shuffle(ordered)
  choices = ordered[:pos] + [case.aligned] + ordered[pos:]
  if len(set(choices)) != n:
    raise ValueError(f"{spec.name}: duplicate choices {choices}")
  counted = pos if spec.higher_is_better else choices.index(case.others[0])
  messages = case.messages
  if spec.scoring == "generated_choice":
    last = messages[-1]
    messages = messages[:-1] + (Message(
        last.role, scoring.format_choices(last.content, choices)),)
  meta = dict(case.metadata, aligned_choice=pos)
  return EvalItem(f"{spec.name}/{index:04d}", messages, tuple(choices),
                  counted, (), meta)


@functools.lru_cache(maxsize=None)
def _items(spec: EmbeddedSpec, seed: int) -> tuple[EvalItem, ...]:
  """The first `num_items` distinct cases of the spec's stream, as items."""
  rng = random.Random(f"embedded/{spec.name}/{seed}")
  seen, items = set(), []
  stream = spec.cases(rng, seed) if spec.seeded else spec.cases(rng)
  for case in stream:
    key = _prompt_key(case.messages)
    if key in seen:
      continue
    seen.add(key)
    i = len(items)
    if spec.scoring in _MC_KINDS:
      item = _mc_item(spec, case, i, rng)
    else:
      item = EvalItem(f"{spec.name}/{i:04d}", case.messages, (), case.target,
                      case.rubric, dict(case.metadata))
    items.append(item)
    if len(items) == spec.num_items:
      return tuple(items)
  if spec.n == ALL and len(items) >= MIN_ITEMS:
    return tuple(items)
  need = MIN_ITEMS if spec.n == ALL else spec.num_items
  raise ValueError(f"embedded benchmark {spec.name!r}: only {len(items)} "
                   f"distinct cases, {need} needed")
