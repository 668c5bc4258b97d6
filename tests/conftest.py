"""Test-wide settings.

Eight fake CPU devices are configured before JAX is imported so that sharding
tests (mesh data=2, fsdp=2, tensor=2) run in the same process as the rest.
Unsharded code still runs on device 0 only.
"""
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
_flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in _flags:
  os.environ["XLA_FLAGS"] = (
      _flags + " --xla_force_host_platform_device_count=8").strip()

import pathlib  # pylint: disable=g-import-not-at-top

import pytest  # pylint: disable=g-import-not-at-top

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_BENCHMARKS = REPO_ROOT.parent / "shared" / "benchmarks"


@pytest.fixture
def shared_benchmarks() -> pathlib.Path:
  """Path to ../shared/benchmarks; skips with the path when it is absent."""
  if not SHARED_BENCHMARKS.is_dir():
    pytest.skip(f"missing data at {SHARED_BENCHMARKS}")
  return SHARED_BENCHMARKS


@pytest.fixture(scope="module")
def persistent_compilation_cache(tmp_path_factory):
  """A per-module on-disk XLA cache: test modules that train the same tiny
  model several times (SFT, harmful finetuning) reuse its compilations."""
  import jax  # pylint: disable=g-import-not-at-top
  names = ("jax_compilation_cache_dir",
           "jax_persistent_cache_min_compile_time_secs",
           "jax_persistent_cache_min_entry_size_bytes")
  old = {n: getattr(jax.config, n) for n in names}
  jax.config.update(names[0], str(tmp_path_factory.mktemp("xla_cache")))
  jax.config.update(names[1], 0.0)
  jax.config.update(names[2], 0)
  yield
  for n, v in old.items():
    jax.config.update(n, v)


@pytest.fixture
def serve_http():
  """`serve(handler_class) -> 'http://127.0.0.1:PORT/v1'`: a local
  threading HTTP server for a stub endpoint, shut down after the test (and
  by a 60 s watchdog should a test hang)."""
  import http.server  # pylint: disable=g-import-not-at-top
  import threading  # pylint: disable=g-import-not-at-top
  started = []

  def serve(handler) -> str:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.handle_error = lambda *a: None  # client gone after a timeout
    thread = threading.Thread(target=server.serve_forever,
                              kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    watchdog = threading.Timer(60.0, server.shutdown)
    watchdog.daemon = True
    watchdog.start()
    started.append((server, thread, watchdog))
    return f"http://127.0.0.1:{server.server_address[1]}/v1"

  yield serve
  for server, thread, watchdog in started:
    watchdog.cancel()
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
