"""Plugin discovery: isolation of broken plugins, duplicates, the load filter."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from mmcore import Modality, hookimpl
from mmcore.errors import PluginError
from mmcore.plugins import Registry


def write_dist(root, dist, module, source, target=None):
    """A real installed distribution: a module plus a dist-info with an mmcore entry point."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text(f"[mmcore]\n{module} = {target or module}\n")


GOOD = """
    from toy import ToyPlugin
    plugin = ToyPlugin()
"""


@pytest.fixture
def plugin_path(tmp_path):
    write_dist(tmp_path, "mm-good", "mm_good", GOOD, target="mm_good:plugin")
    write_dist(tmp_path, "mm-broken", "mm_broken", "raise ImportError('libfoo.so: cannot open shared object file')\n")
    write_dist(tmp_path, "mm-hookfail", "mm_hookfail", """
        from mmcore import hookimpl
        @hookimpl
        def register_masking_policies(register):
            raise RuntimeError("policy table is corrupt")
    """)
    tests_dir = os.path.dirname(__file__)
    return f"{tmp_path}{os.pathsep}{tests_dir}"


def run_mm(args, pythonpath, **env):
    full_env = {**os.environ, "PYTHONPATH": pythonpath, **env}
    return subprocess.run([sys.executable, "-m", "mmcore", *args], capture_output=True, text=True, env=full_env, timeout=120)


def test_broken_plugins_are_listed_and_others_still_work(plugin_path):
    result = run_mm(["plugins"], plugin_path)
    assert result.returncode == 0, result.stderr
    listed = {p["name"]: p for p in json.loads(result.stdout)}
    assert listed["mm_broken"]["status"] == "broken"
    assert "libfoo.so" in listed["mm_broken"]["error"] and "import failed" in listed["mm_broken"]["error"]
    assert listed["mm_hookfail"]["status"] == "broken"
    assert "register_masking_policies" in listed["mm_hookfail"]["error"]
    good = listed["mm_good"]
    assert good["status"] == "ok" and good["distribution"] == "mm-good" and good["version"] == "0.3"
    assert good["modalities"] == ["signal"] and "signal:random" in good["masking_policies"]
    assert "signal:waves" in good["datasets"]


def test_load_filter_restricts_plugins(plugin_path):
    only = run_mm(["plugins"], plugin_path, MMCORE_LOAD_PLUGINS="mm-good")
    assert [p["name"] for p in json.loads(only.stdout)] == ["mm_good"]
    none = run_mm(["plugins"], plugin_path, MMCORE_LOAD_PLUGINS="")
    assert json.loads(none.stdout) == []


def test_unknown_modality_names_broken_plugins(plugin_path):
    code = "from mmcore.plugins import get_registry; get_registry().modality('sonar')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": plugin_path})
    assert "unknown modality 'sonar'" in result.stderr and "mm_broken" in result.stderr


def test_failing_hook_rolls_back_what_the_plugin_registered():
    from toy import SignalEmbedder, SignalHead, SignalTokenizer

    class HalfBroken:
        @hookimpl
        def register_modalities(self, register):
            register(Modality("half", SignalTokenizer, SignalEmbedder, SignalHead, "random", "identity"))

        @hookimpl
        def register_datasets(self, register):
            raise ValueError("boom")

    registry = Registry()
    info = registry.add_plugin(HalfBroken(), "half")
    assert info.error.startswith("hook register_datasets failed: ValueError: boom")
    with pytest.raises(PluginError, match="unknown modality 'half'"):
        registry.modality("half")
    assert not registry.pm.has_plugin("half")


def test_duplicate_names_are_an_error_naming_the_owner():
    from toy import ToyPlugin

    registry = Registry()
    assert registry.add_plugin(ToyPlugin(), "first").error is None
    second = registry.add_plugin(ToyPlugin(), "second")
    assert "already registered by plugin 'first'" in second.error
    assert registry.owner[("modalities", "signal")] == "first"


def test_misspelled_hook_is_reported():
    class Typo:
        @hookimpl
        def register_modality(self, register):  # the spec is register_modalities
            pass

    info = Registry().add_plugin(Typo(), "typo")
    assert info.error is not None and "register_modality" in info.error


def test_unknown_policy_lists_the_choices(toy_registry):
    with pytest.raises(PluginError, match="unknown masking policy 'tube' for modality 'signal'; available: random, random_of_valid"):
        toy_registry.policy("signal", "tube")
