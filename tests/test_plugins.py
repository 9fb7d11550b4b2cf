"""Plugin discovery: isolation of broken plugins, duplicates, the load filter."""

import json
import sys
import textwrap

import pytest
import torch

from mmcore import Modality, hookimpl, plugins
from mmcore.cli import main
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
def plugin_path(tmp_path, monkeypatch):
    """Three installed distributions on sys.path, found through their entry points by this process's registry
    (``importlib.metadata`` reads sys.path on each call, so no fresh interpreter is needed)."""
    write_dist(tmp_path, "mm-good", "mm_good", GOOD, target="mm_good:plugin")
    write_dist(tmp_path, "mm-broken", "mm_broken", "raise ImportError('libfoo.so: cannot open shared object file')\n")
    write_dist(
        tmp_path,
        "mm-hookfail",
        "mm_hookfail",
        """
        from mmcore import hookimpl
        @hookimpl
        def register_masking_policies(register):
            raise RuntimeError("policy table is corrupt")
    """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins.reset_registry()
    yield tmp_path
    plugins.reset_registry()
    for module in ("mm_good", "mm_broken", "mm_hookfail"):
        sys.modules.pop(module, None)


def run_mm(capsys, args):
    """``mm`` in this process: (exit code, stdout, stderr)."""
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_broken_plugins_are_listed_and_others_still_work(plugin_path, capsys):
    code, out, err = run_mm(capsys, ["plugins"])
    assert code == 0, err
    listed = {p["name"]: p for p in json.loads(out)}
    assert listed["mm_broken"]["status"] == "broken"
    assert "libfoo.so" in listed["mm_broken"]["error"] and "import failed" in listed["mm_broken"]["error"]
    assert listed["mm_hookfail"]["status"] == "broken"
    assert "register_masking_policies" in listed["mm_hookfail"]["error"]
    good = listed["mm_good"]
    assert good["status"] == "ok" and good["distribution"] == "mm-good" and good["version"] == "0.3"
    assert good["modalities"] == ["signal"] and "signal:random" in good["masking_policies"]
    assert "signal:waves" in good["datasets"]


def test_load_filter_restricts_plugins(plugin_path, capsys, monkeypatch):
    monkeypatch.setenv("MMCORE_LOAD_PLUGINS", "mm-good")
    assert [p["name"] for p in json.loads(run_mm(capsys, ["plugins"])[1])] == ["mm_good"]
    plugins.reset_registry()
    monkeypatch.setenv("MMCORE_LOAD_PLUGINS", "")
    assert json.loads(run_mm(capsys, ["plugins"])[1]) == []


def test_unknown_modality_names_broken_plugins(plugin_path):
    with pytest.raises(PluginError, match="unknown modality 'sonar'.*mm_broken"):
        plugins.get_registry().modality("sonar")


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


def test_text_and_protein_register_their_transformers_peers(toy_registry):
    """The core names no plugin: mm-text and mm-protein hand their converters over through register_peers."""
    pytest.importorskip("mm_text")
    pytest.importorskip("mm_protein")
    from mm_protein import hf_esm
    from mm_text import hf_bert

    assert toy_registry.exporter("transformers", "text") is hf_bert.export_bert
    assert toy_registry.importer("transformers", "bert") is hf_bert.import_bert
    assert toy_registry.exporter("transformers", "protein") is hf_esm.export_esm
    assert toy_registry.importer("transformers", "esm") is hf_esm.import_esm
    assert toy_registry.exporter("timm", "text") is None and toy_registry.importer("transformers", ["bert"]) is None
    summaries = {p.name: p.summary() for p in toy_registry.plugins.values()}
    assert summaries["text"]["exporters"] == ["transformers:text"] and summaries["protein"]["importers"] == ["transformers:esm"]


def test_unregistered_peer_pair_is_refused_with_the_reason(toy_registry):
    from mmcore.interop import NoExactPeer, export_model

    class Video(torch.nn.Module):
        config = {"modality": "video"}

    with pytest.raises(
        NoExactPeer, match="no exact transformers peer for modality 'video' yet: the natural peer, transformers' VideoMAEModel"
    ):
        export_model(Video(), "transformers", "unused")


def test_peer_registrations_are_checked():
    def export(model, output):
        return output, 0.0

    class Peers:
        @hookimpl
        def register_peers(self, register):
            register("transformers", "signal", export=export)

    class Onnx:
        @hookimpl
        def register_peers(self, register):
            register("onnx", "signal", export=export)

    class Timm:
        @hookimpl
        def register_peers(self, register):
            register("timm", "signal", kind="vit", import_=export)

    registry = Registry()
    assert registry.add_plugin(Peers(), "peers").error is None and registry.exporter("transformers", "signal") is export
    assert "already registered by plugin 'peers'" in registry.add_plugin(Peers(), "again").error
    assert "unknown peer library 'onnx'; accepted: timm, transformers" in registry.add_plugin(Onnx(), "onnx").error
    assert "which only transformers folders have" in registry.add_plugin(Timm(), "timm").error
