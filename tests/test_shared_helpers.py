"""The helpers plugins share from the core: recipe folders, folder listing, matplotlib pictures."""

import importlib.metadata
import sys
from pathlib import Path

import pytest

import mmcore
from mmcore.folders import visible_files
from mmcore.pictures import figure_to_image, pyplot
from mmcore.plugins import Registry, recipes_in


def test_recipes_in_lists_a_packages_recipes_folder_by_name():
    core = Path(mmcore.__file__).parent / "recipes"
    assert recipes_in("mmcore") == [(p.stem, p) for p in sorted(core.glob("*.yaml"))] != []
    assert {name: str(path) for name, path in recipes_in("mmcore")}.items() <= Registry().items["recipes"].items()


def test_each_shipped_plugin_registers_its_recipes_folder():
    registry = Registry()
    registry.load_entry_points()
    checked = []
    for ep in importlib.metadata.entry_points(group="mmcore"):
        info = registry.plugins.get(ep.name)
        if info is None or info.error or ep.value not in sys.modules:
            continue
        folder = Path(sys.modules[ep.value].__file__).parent / "recipes"  # what each hook globbed before recipes_in
        assert info.registered["recipes"] == {p.stem: str(p) for p in sorted(folder.glob("*.yaml"))}, ep.name
        checked.append(ep.name)
    assert len(checked) == len([p for p in registry.plugins.values() if not p.error]) > 0


def test_visible_files_are_sorted_and_leave_hidden_ones_out(tmp_path):
    for name in ["b/2.txt", "a.txt", "b/1.txt", ".git/x.txt", "c/._a.txt", ".hidden.txt"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).touch()
    (tmp_path / "empty").mkdir()
    assert [f.relative_to(tmp_path).as_posix() for f in visible_files(tmp_path)] == ["a.txt", "b/1.txt", "b/2.txt"]


def test_figure_to_image_is_rgb_and_closes_the_figure():
    pytest.importorskip("matplotlib")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(2, 1), dpi=50)
    ax.plot([0, 1], [1, 0])
    image = figure_to_image(fig)
    assert image.mode == "RGB" and image.size == (100, 50)
    assert not plt.fignum_exists(fig.number)
