"""Registry API, suites, lazy adapter import and the list command."""

from __future__ import annotations

import pathlib
import sys
import textwrap

import pytest

from beneficial_rl.data.scenarios import Message
from beneficial_rl.eval import list as list_cmd
from beneficial_rl.eval.benchmarks import registry
from beneficial_rl.eval.benchmarks.spec import Benchmark
from beneficial_rl.eval.benchmarks.spec import DataPin
from beneficial_rl.eval.benchmarks.spec import EvalItem
from beneficial_rl.eval.benchmarks.spec import MissingDataError


def _items(n: int):
  return tuple(EvalItem(f"i{k}", (Message("user", "hi"),), target="x")
               for k in range(n))


def _bench(name: str, **kw) -> Benchmark:
  fields = dict(name=name, category="toy", domain="non_health",
                load_items=lambda: _items(3), scoring="exact_match",
                metric="accuracy")
  fields.update(kw)
  return Benchmark(**fields)


@pytest.fixture
def toy():
  """Registers test benchmarks and removes them afterwards."""
  added = []

  def add(benchmark, **kw):
    registry.register(benchmark, **kw)
    added.append(benchmark.name)
    return benchmark
  registry.load_builtin()
  yield add
  for name in dict.fromkeys(added):
    if name in registry._BENCHMARKS:  # pylint: disable=protected-access
      registry.unregister(name)
  registry._MEMBERS.pop("toy_suite", None)  # pylint: disable=protected-access


def test_register_get_names(toy):
  b = toy(_bench("toy_a"))
  toy(_bench("toy_b", category="toy2", domain="health"))
  assert registry.get("toy_a") is b
  assert registry.names(category="toy") == ["toy_a"]
  assert registry.names(category="toy2", domain="health") == ["toy_b"]
  assert "toy_a" in registry.names()
  assert registry.all_benchmarks()[-2:] == [b, registry.get("toy_b")]
  assert "toy2" in registry.categories()


def test_register_rejects_duplicates_and_bad_fields(toy):
  toy(_bench("toy_a"))
  with pytest.raises(ValueError, match="'toy_a' is already registered"):
    registry.register(_bench("toy_a"))
  registry.register(_bench("toy_a", metric="m2"), overwrite=True)
  assert registry.get("toy_a").metric == "m2"
  with pytest.raises(ValueError, match="field 'domain'.*'medical'"):
    registry.register(_bench("toy_x", domain="medical"))
  with pytest.raises(ValueError, match="field 'scoring'.*'bleu'"):
    registry.register(_bench("toy_x", scoring="bleu"))
  with pytest.raises(ValueError, match="field 'metric'"):
    registry.register(_bench("toy_x", metric=""))
  with pytest.raises(ValueError, match="field 'mc_normalization'.*'token'"):
    registry.register(_bench("toy_x", mc_normalization="token"))
  with pytest.raises(TypeError, match="needs a Benchmark"):
    registry.register("toy_x")
  with pytest.raises(ValueError, match="computed from benchmark fields"):
    registry.register(_bench("toy_x"), suites=("public",))
  assert "toy_x" not in registry.names()


def test_unknown_names():
  with pytest.raises(KeyError, match="unknown benchmark 'nope'"):
    registry.get("nope")
  with pytest.raises(KeyError, match="unknown suite 'nope'.*embedded"):
    registry.suite("nope")
  with pytest.raises(KeyError, match="not registered"):
    registry.unregister("nope")


def test_builtin_suites(toy):
  toy(_bench("toy_public", domain="health"))
  embedded = registry.suite("embedded")
  assert len(embedded) >= 53 and "toy_public" not in embedded
  assert "toy_public" in registry.suite("public")
  assert not set(embedded) & set(registry.suite("public"))
  assert registry.suite("all") == registry.names()
  health = registry.suite("embedded_health")
  assert health and all(registry.get(n).domain == "health" for n in health)
  assert set(health) | set(registry.suite("embedded_non_health")) == set(
      embedded)
  assert "toy_public" in registry.suite("health")
  assert all(registry.get(n).category == "capabilities"
             for n in registry.suite("capabilities"))
  assert len(registry.suite("heldout_traits")) == 8
  ood = registry.suite("embedded_ood")
  assert not set(ood) & set(registry.suite("capabilities"))
  assert len(ood) == len(embedded) - 6 - 8
  assert registry.names(category="fairness", suite="embedded") == [
      n for n in embedded if registry.get(n).category == "fairness"]


def test_explicit_suites(toy):
  toy(_bench("toy_a"), suites=("toy_suite",))
  toy(_bench("toy_b"))
  registry.define_suite("toy_suite", ["toy_b", "toy_a"], overwrite=True)
  assert registry.suite("toy_suite") == ["toy_a", "toy_b"]  # registry order
  assert "toy_suite" in registry.suite_names()
  with pytest.raises(ValueError, match="already exists"):
    registry.define_suite("toy_suite", [])
  with pytest.raises(ValueError, match="already exists"):
    registry.define_suite("embedded_health", [])
  registry.unregister("toy_b")  # leaves its explicit suites too
  assert registry.suite("toy_suite") == ["toy_a"]
  registry.define_suite("toy_suite", ["toy_a", "toy_gone"], overwrite=True)
  with pytest.raises(KeyError, match="unregistered benchmarks: toy_gone"):
    registry.suite("toy_suite")


@pytest.fixture
def fresh_registry(monkeypatch):
  """An empty registry whose built-ins load again on first use."""
  monkeypatch.setattr(registry, "_BENCHMARKS", {})
  monkeypatch.setattr(registry, "_MEMBERS", {})
  monkeypatch.setattr(registry, "_ADAPTED", set())
  monkeypatch.setattr(registry, "_data_dir", None)
  monkeypatch.setattr(registry, "_loaded", False)


def test_lazy_adapter_import(fresh_registry, monkeypatch, tmp_path):
  pkg = tmp_path / "fake_adapters_pkg"
  pkg.mkdir()
  (pkg / "__init__.py").write_text(textwrap.dedent("""
      from beneficial_rl.data.scenarios import Message
      from beneficial_rl.eval.benchmarks import registry
      from beneficial_rl.eval.benchmarks.spec import Benchmark
      registry.register(Benchmark(
          name="adapter_bench", category="sycophancy", domain="non_health",
          load_items=lambda: (), scoring="mc_logprob", metric="accuracy"))
      # Look-ups while importing must not recurse into loading again.
      assert "adapter_bench" in registry.names()
      """))
  monkeypatch.syspath_prepend(str(tmp_path))
  monkeypatch.setattr(registry, "ADAPTERS_MODULE", "fake_adapters_pkg")
  assert registry.suite("public") == ["adapter_bench"]
  assert "sycophancy_are_you_sure" in registry.suite("embedded")
  sys.modules.pop("fake_adapters_pkg", None)


def test_adapter_factory_gets_the_data_dir(fresh_registry, monkeypatch,
                                           tmp_path):
  (tmp_path / "factory_adapters_pkg.py").write_text(textwrap.dedent("""
      import pathlib
      from beneficial_rl.eval.benchmarks.spec import Benchmark, DataPin
      def adapter_benchmarks(data_dir):
        return [Benchmark(
            name="file_bench", category="fairness", domain="non_health",
            load_items=lambda: (), scoring="mc_logprob", metric="accuracy",
            data_pin=DataPin(str(pathlib.Path(data_dir) / "f.jsonl")))]
      """))
  monkeypatch.syspath_prepend(str(tmp_path))
  monkeypatch.setattr(registry, "ADAPTERS_MODULE", "factory_adapters_pkg")
  monkeypatch.setenv(registry.DATA_DIR_ENV, "/env/bench")
  assert registry.data_dir() == pathlib.Path("/env/bench")
  assert registry.suite("public") == ["file_bench"]
  assert registry.get("file_bench").data_pin.path == "/env/bench/f.jsonl"
  registry.set_data_dir(tmp_path / "other")
  assert registry.get("file_bench").data_pin.path == str(
      tmp_path / "other" / "f.jsonl")
  assert registry.suite("public") == ["file_bench"]
  sys.modules.pop("factory_adapters_pkg", None)


def test_default_data_dir(monkeypatch):
  monkeypatch.delenv(registry.DATA_DIR_ENV, raising=False)
  monkeypatch.setattr(registry, "_data_dir", None)
  repo = pathlib.Path(registry.__file__).resolve().parents[3]
  assert (repo / "setup.py").is_file()
  assert registry.data_dir() == repo.parent / "shared" / "benchmarks"


def test_absent_adapters_are_skipped(fresh_registry, monkeypatch):
  monkeypatch.setattr(registry, "ADAPTERS_MODULE",
                      "beneficial_rl.eval.benchmarks.no_such_adapters")
  assert registry.suite("public") == []
  assert len(registry.suite("embedded")) >= 53


def test_broken_adapters_raise(fresh_registry, monkeypatch, tmp_path):
  (tmp_path / "broken_adapters_pkg.py").write_text(
      "import a_module_that_is_not_installed\n")
  monkeypatch.syspath_prepend(str(tmp_path))
  monkeypatch.setattr(registry, "ADAPTERS_MODULE", "broken_adapters_pkg")
  with pytest.raises(ModuleNotFoundError, match="a_module_that_is_not"):
    registry.names()


# ------------------------------------------------------------------ list --

def _missing():
  raise MissingDataError("toy_missing", "/data/toy.jsonl")


def _broken():
  raise ValueError("bad row")


def test_describe_rows(toy):
  missing = toy(_bench("toy_missing", load_items=_missing,
                       data_pin=DataPin("/data/toy.jsonl")))
  assert list_cmd.describe(missing)["items"] == (
      "missing data at /data/toy.jsonl")
  row = list_cmd.describe(toy(_bench("toy_ok", higher_is_better=False)))
  assert row == {"name": "toy_ok", "category": "toy",
                 "domain": "non_health", "scoring": "exact_match",
                 "metric": "accuracy", "direction": "lower", "items": "3"}
  broken = toy(_bench("toy_broken", load_items=_broken))
  assert list_cmd.describe(broken)["items"] == "error: ValueError: bad row"


def test_list_main_table(toy, capsys):
  toy(_bench("toy_missing", load_items=_missing, category="toyc"))
  toy(_bench("toy_ok", category="toyc"))
  assert list_cmd.main(["--category", "toyc"]) == 0
  lines = capsys.readouterr().out.splitlines()
  assert lines[0].split() == list(list_cmd.COLUMNS)
  assert lines[2].split()[0] == "toy_missing"
  assert lines[2].endswith("missing data at /data/toy.jsonl")
  assert lines[3].split()[-1] == "3"
  assert lines[-1] == "2 benchmarks"
  toy(_bench("toy_broken", load_items=_broken, category="toyc"))
  assert list_cmd.main(["--category", "toyc", "--format", "json"]) == 1


def test_list_main_embedded_suite(capsys):
  assert list_cmd.main(["--suite", "embedded_health", "--no-count"]) == 0
  out = capsys.readouterr().out
  assert "mental_health_crisis" in out and "health_triage_level" in out
  assert "sycophancy_are_you_sure" not in out
  with pytest.raises(SystemExit):
    list_cmd.main(["--suite", "nope"])
