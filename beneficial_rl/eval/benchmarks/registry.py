"""The benchmark registry: name -> `Benchmark`, plus named suites.

Benchmarks are registered with `register`. The built-in ones are loaded on
first use of a look-up function (`get`, `names`, `all_benchmarks`, `suite`...):
the embedded suite (`beneficial_rl.eval.benchmarks.embedded`, seed 0) and, if
the package exists, the public-format adapters
(`beneficial_rl.eval.benchmarks.adapters`): the benchmarks of its
`adapter_benchmarks(data_dir())` are registered, and a module without that
function may instead call `register` when imported. A file-backed benchmark
whose data is absent stays registered; its `load_items` raises
`MissingDataError`.

Suites are named lists of benchmarks. Built-in suites:

  all                  every registered benchmark
  embedded             the embedded (procedurally generated) suite
  embedded_ood         embedded minus capabilities and held-out traits
  embedded_health      embedded, domain 'health'
  embedded_non_health  embedded, domain 'non_health'
  public               every benchmark not in 'embedded' (adapters etc.)
  health, non_health   every benchmark of that domain
  capabilities         category 'capabilities'
  heldout_traits       category 'heldout_traits'

More are added with `define_suite(name, members)` or through
`register(benchmark, suites=(...))`.
"""

from __future__ import annotations

import importlib
import os
import pathlib
import typing
from types import ModuleType
from typing import Callable, Iterable, Sequence

from beneficial_rl.eval.benchmarks.spec import Benchmark
from beneficial_rl.eval.benchmarks.spec import Domain
from beneficial_rl.eval.benchmarks.spec import McNormalization
from beneficial_rl.eval.benchmarks.spec import Scoring

EMBEDDED_MODULE = "beneficial_rl.eval.benchmarks.embedded"
ADAPTERS_MODULE = "beneficial_rl.eval.benchmarks.adapters"
EMBEDDED = "embedded"
DATA_DIR_ENV = "BENEFICIAL_RL_BENCHMARK_DIR"
_REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]
DOMAINS: tuple[str, ...] = typing.get_args(Domain)
SCORINGS: tuple[str, ...] = typing.get_args(Scoring)
MC_NORMALIZATIONS: tuple[str, ...] = typing.get_args(McNormalization)

_BENCHMARKS: dict[str, Benchmark] = {}     # registration order
_MEMBERS: dict[str, list[str]] = {}        # explicit suites: member names
_ADAPTED: set[str] = set()                 # names from adapter_benchmarks
_data_dir: pathlib.Path | None = None
_loaded = False


def _in(suite_name: str) -> Callable[[Benchmark], bool]:
  return lambda b: b.name in _MEMBERS.get(suite_name, ())


_RULES: dict[str, Callable[[Benchmark], bool]] = {
    "all": lambda b: True,
    "embedded_ood": lambda b: _in(EMBEDDED)(b) and b.category not in (
        "capabilities", "heldout_traits"),
    "embedded_health": lambda b: _in(EMBEDDED)(b) and b.domain == "health",
    "embedded_non_health": lambda b: (_in(EMBEDDED)(b) and
                                      b.domain == "non_health"),
    "public": lambda b: not _in(EMBEDDED)(b),
    "health": lambda b: b.domain == "health",
    "non_health": lambda b: b.domain == "non_health",
    "capabilities": lambda b: b.category == "capabilities",
    "heldout_traits": lambda b: b.category == "heldout_traits",
}


def _validate(benchmark: Benchmark) -> None:
  if not isinstance(benchmark, Benchmark):
    raise TypeError(f"register() needs a Benchmark, got "
                    f"{type(benchmark).__name__}")
  where = f"benchmark {benchmark.name!r}"
  if not isinstance(benchmark.name, str) or not benchmark.name.strip():
    raise ValueError("benchmark field 'name': must be a non-empty string")
  if benchmark.domain not in DOMAINS:
    raise ValueError(f"{where}: field 'domain' must be one of {DOMAINS}, got "
                     f"{benchmark.domain!r}")
  if benchmark.scoring not in SCORINGS:
    raise ValueError(f"{where}: field 'scoring' must be one of {SCORINGS}, "
                     f"got {benchmark.scoring!r}")
  if benchmark.mc_normalization not in MC_NORMALIZATIONS:
    raise ValueError(f"{where}: field 'mc_normalization' must be one of "
                     f"{MC_NORMALIZATIONS}, got "
                     f"{benchmark.mc_normalization!r}")
  for field in ("category", "metric"):
    value = getattr(benchmark, field)
    if not isinstance(value, str) or not value.strip():
      raise ValueError(f"{where}: field {field!r} must be a non-empty string")
  if not isinstance(benchmark.higher_is_better, bool):
    raise ValueError(f"{where}: field 'higher_is_better' must be a bool")
  if not callable(benchmark.load_items):
    raise ValueError(f"{where}: field 'load_items' must be callable")


def register(benchmark: Benchmark, *, suites: Iterable[str] = (),
             overwrite: bool = False) -> Benchmark:
  """Adds a benchmark (and to the named explicit suites); returns it.

  Raises:
    ValueError: a bad field, or the name is taken and overwrite is False.
  """
  _validate(benchmark)
  suites = list(suites)
  if benchmark.name in _BENCHMARKS and not overwrite:
    raise ValueError(f"benchmark {benchmark.name!r} is already registered")
  for s in suites:
    if s in _RULES:
      raise ValueError(f"suite {s!r} is computed from benchmark fields; "
                       "benchmarks cannot be added to it")
  _BENCHMARKS[benchmark.name] = benchmark
  for s in suites:
    members = _MEMBERS.setdefault(s, [])
    if benchmark.name not in members:
      members.append(benchmark.name)
  return benchmark


def unregister(name: str) -> Benchmark:
  """Removes a benchmark (and its explicit suite memberships)."""
  if name not in _BENCHMARKS:
    raise KeyError(f"benchmark {name!r} is not registered")
  for members in _MEMBERS.values():
    if name in members:
      members.remove(name)
  return _BENCHMARKS.pop(name)


def load_builtin() -> None:
  """Registers the embedded suite and imports the adapters (once)."""
  global _loaded
  if _loaded:
    return
  _loaded = True  # set first: adapters may call look-ups while importing
  embedded = importlib.import_module(EMBEDDED_MODULE)
  for benchmark in embedded.benchmarks():
    if benchmark.name not in _BENCHMARKS:
      register(benchmark, suites=(EMBEDDED,))
  try:
    adapters = importlib.import_module(ADAPTERS_MODULE)
  except ModuleNotFoundError as e:
    if e.name != ADAPTERS_MODULE:
      raise  # the adapters exist but something they import is missing
    return
  _register_adapters(adapters, overwrite=False)


def _register_adapters(adapters: ModuleType, overwrite: bool) -> None:
  """Registers `adapters.adapter_benchmarks(data_dir())`, if it exists."""
  factory = getattr(adapters, "adapter_benchmarks", None)
  if factory is None:
    return  # the module registers its benchmarks itself when imported
  for benchmark in factory(data_dir()):
    if overwrite or benchmark.name not in _BENCHMARKS:
      register(benchmark, overwrite=overwrite)
      _ADAPTED.add(benchmark.name)


def data_dir() -> pathlib.Path:
  """Root of the public benchmark files.

  `set_data_dir(path)` if called, else $BENEFICIAL_RL_BENCHMARK_DIR, else
  ../shared/benchmarks beside the repository.
  """
  if _data_dir is not None:
    return _data_dir
  env = os.environ.get(DATA_DIR_ENV)
  if env:
    return pathlib.Path(env)
  return _REPO_ROOT.parent / "shared" / "benchmarks"


def set_data_dir(path: str | os.PathLike) -> None:
  """Points the public adapters at `path` (re-registering them if loaded)."""
  global _data_dir
  _data_dir = pathlib.Path(path)
  if _loaded and _ADAPTED:
    adapters = importlib.import_module(ADAPTERS_MODULE)
    _register_adapters(adapters, overwrite=True)


def get(name: str) -> Benchmark:
  """The benchmark called `name`; KeyError lists close and known names."""
  load_builtin()
  try:
    return _BENCHMARKS[name]
  except KeyError:
    raise KeyError(f"unknown benchmark {name!r}; see `python -m "
                   f"beneficial_rl.eval.list` (known: "
                   f"{', '.join(_BENCHMARKS)})") from None


def all_benchmarks() -> list[Benchmark]:
  """Every registered benchmark, in registration order."""
  load_builtin()
  return list(_BENCHMARKS.values())


def names(category: str | None = None, *, suite: str | None = None,
          domain: str | None = None) -> list[str]:
  """Registered names, optionally filtered by category, suite and domain."""
  pool = all_benchmarks() if suite is None else suite_benchmarks(suite)
  return [b.name for b in pool
          if (category is None or b.category == category)
          and (domain is None or b.domain == domain)]


def categories() -> list[str]:
  """Categories in order of first registration."""
  return list(dict.fromkeys(b.category for b in all_benchmarks()))


def define_suite(name: str, members: Sequence[str],
                 overwrite: bool = False) -> None:
  """Defines an explicit named suite; members are checked when it is used."""
  if name in _RULES or (name in _MEMBERS and not overwrite):
    raise ValueError(f"suite {name!r} already exists")
  _MEMBERS[name] = list(dict.fromkeys(members))


def suite_names() -> list[str]:
  load_builtin()
  return sorted(set(_RULES) | set(_MEMBERS))


def suite_benchmarks(name: str) -> list[Benchmark]:
  """The benchmarks of a suite, in registration order.

  Raises:
    KeyError: unknown suite (the message lists the known ones), or an
      explicit suite naming an unregistered benchmark.
  """
  load_builtin()
  if name in _RULES:
    return [b for b in _BENCHMARKS.values() if _RULES[name](b)]
  if name not in _MEMBERS:
    raise KeyError(f"unknown suite {name!r}; known suites: "
                   f"{', '.join(suite_names())}")
  missing = [m for m in _MEMBERS[name] if m not in _BENCHMARKS]
  if missing:
    raise KeyError(f"suite {name!r} names unregistered benchmarks: "
                   f"{', '.join(missing)}")
  wanted = set(_MEMBERS[name])
  return [b for b in _BENCHMARKS.values() if b.name in wanted]


def suite(name: str) -> list[str]:
  """The names of a suite's benchmarks (see `suite_benchmarks`)."""
  return [b.name for b in suite_benchmarks(name)]
