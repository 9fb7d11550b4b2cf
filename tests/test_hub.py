"""Sharing through the Hub, over HTTP, with the real huggingface_hub client.

The Hub is `tests/hub_server.py` (a git-backed Hub-protocol server on 127.0.0.1,
started per test); the download side is cross-checked with `olah` serving the
same repositories, and the protocol round trip is run with huggingface_hub 0.36,
1.x and the installed 2.x (`make hub-venvs` makes the small venvs).
"""

import os

os.environ.setdefault("HF_HUB_DISABLE_XET", "1")  # before huggingface_hub is imported: 2.x uploads through Xet

import json  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from huggingface_hub import HfApi, ModelCard, constants  # noqa: E402

import mmcore  # noqa: E402
from hub_server import HubServer  # noqa: E402
from mmcore import cli  # noqa: E402
from mmcore.card import card_info  # noqa: E402
from mmcore.errors import DataError, PluginError  # noqa: E402
from mmcore.hub import HubError, check_weights, pull, push  # noqa: E402
from mmcore.model import MaskedModel, record_sources  # noqa: E402
from mmcore.testing import tiny_config  # noqa: E402
from mmcore.executor import save_model_folder  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "hf_test_write"
TOKENIZER = {"image_size": [16, 16], "patch_size": 4, "channels": 1}
INFO = dict(
    steps=3,
    effective_batch=8,
    batch_size=8,
    grad_accum=1,
    world_size=1,
    base_lr=1.5e-4,
    lr=4.7e-6,
    precision="no",
    name="tiny-mae",
    description="A tiny test model.",
    dataset="mnist",
    metrics={"train_loss": 0.91, "eval_loss": 0.95},
    recipe="name: tiny-mae\ntrain:\n  steps: 3\n",
)
HUB_VENVS = {"0.36": ".venv-hub036", "1.": ".venv-hub1"}
OLAH = ".venv-olah/bin/olah-cli"


def make_folder(path: Path, seed: int = 0) -> Path:
    """A finished run's model folder, as `mm train` writes it (card, picture, plugin versions)."""
    from PIL import Image

    torch.manual_seed(seed)
    config = tiny_config("image", "random", tokenizer=TOKENIZER)
    config.update(record_sources(config))
    save_model_folder(MaskedModel(config), path, dict(INFO, picture_image=Image.new("L", (24, 8), seed * 40)))
    return path


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str) -> str:
    """The CLI's error: exactly one line, no traceback (download progress bars may precede it)."""
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.startswith("mm:")]
    assert len(lines) == 1 and lines[0].startswith("mm: error: ") and "Traceback" not in err, err
    assert err.rstrip().endswith(lines[0]), err
    return lines[0]


def cli_error(capsys, *argv) -> str:
    code, _, err = run_cli(capsys, *argv)
    return one_line_error(code, err)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """The server, and huggingface_hub pointed at it: online, its own cache, a write token in HF_TOKEN."""
    with HubServer(tmp_path / "hub") as server:
        monkeypatch.setattr(constants, "ENDPOINT", server.url)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", server.url + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        yield server


@pytest.fixture
def folder(tmp_path) -> Path:
    return make_folder(tmp_path / "run" / "model")


def test_push_pull_round_trip_is_byte_for_byte(hub, folder):
    commit = push(folder.parent, "alice/tiny-mae")  # a run folder: its model/ is pushed
    calls = {(m, p.split("/")[1] if p.startswith("/lfs-") else p) for m, p in hub.requests}
    assert {
        ("POST", "/api/repos/create"),
        ("POST", "/api/models/alice/tiny-mae/preupload/main"),
        ("POST", "/alice/tiny-mae.git/info/lfs/objects/batch"),
        ("PUT", "lfs-upload"),
        ("POST", "/api/models/alice/tiny-mae/commit/main"),
    } <= calls
    assert commit.oid == HfApi().model_info("alice/tiny-mae").sha

    pulled = pull("alice/tiny-mae")
    for name in ("config.json", "model.safetensors", "reconstruction.png"):
        assert (pulled / name).read_bytes() == (folder / name).read_bytes(), name
    assert (pulled / "recipe.yaml").read_text() == INFO["recipe"]
    lfs = {s.rfilename: s.lfs is not None for s in HfApi().model_info("alice/tiny-mae", files_metadata=True).siblings}
    assert lfs["model.safetensors"] and lfs["reconstruction.png"] and not lfs["config.json"]

    original, loaded = MaskedModel.from_pretrained(folder), mmcore.from_pretrained("alice/tiny-mae")
    assert same_weights(original, loaded) and loaded.config == original.config


def test_card_has_the_metadata_and_names_the_repo(hub, folder):
    push(folder, "alice/tiny-mae")
    card = ModelCard.load(pull("alice/tiny-mae") / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "mmcore" and data["license"] == "apache-2.0"
    assert {"mmcore", "image", "masking-random"} <= set(data["tags"])
    assert data["datasets"] == ["mnist"] and data["metrics"] == ["eval_loss", "train_loss"]
    assert 'mmcore.from_pretrained("alice/tiny-mae")' in card.text
    assert "![original | masked | reconstruction](reconstruction.png)" in card.text
    assert "| effective batch | 8 (per device 8 × accumulation 1 × 1 processes) |" in card.text
    assert "- eval_loss: 0.9500" in card.text and "name: tiny-mae\ntrain:\n  steps: 3\n```" in card.text


def test_mm_card_regenerates_and_keeps_the_facts(folder, capsys):
    before = (folder / "README.md").read_text()
    code, out, _ = run_cli(capsys, "card", folder, "--license", "mit", "--repo", "alice/x")
    assert code == 0 and out.strip() == str(folder / "README.md")
    after = (folder / "README.md").read_text()
    assert ModelCard(after).data.license == "mit" and 'from_pretrained("alice/x")' in after
    facts_before, facts_after = card_info(before), card_info(after)
    assert facts_after.pop("license") == "mit" and facts_after.pop("repo") == "alice/x"
    assert facts_before.pop("license") == "apache-2.0" and facts_before.pop("repo") == "path/to/model"
    assert facts_after == facts_before and facts_after["recipe"] == INFO["recipe"]
    assert facts_after["metrics"] == INFO["metrics"] and facts_after["effective_batch"] == 8
    run_cli(capsys, "card", folder)  # again, no options: nothing changes, the repo id is kept
    assert (folder / "README.md").read_text() == after


def test_revisions_and_new_commits_to_an_existing_repo(hub, folder, tmp_path):
    model = MaskedModel.from_pretrained(folder)
    first = model.push_to_hub("alice/mixin").oid  # the ModelHubMixin path
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    second = model.push_to_hub("alice/mixin", commit_message="more training").oid
    assert first != second == HfApi().model_info("alice/mixin").sha
    assert same_weights(mmcore.from_pretrained("alice/mixin"), model)
    assert same_weights(mmcore.from_pretrained("alice/mixin", revision=first), MaskedModel.from_pretrained(folder))
    assert 'from_pretrained("alice/mixin")' in (pull("alice/mixin", revision=first) / "README.md").read_text()

    other = make_folder(tmp_path / "other", seed=1)
    dev = push(other, "alice/mixin", revision="dev").oid
    assert HfApi().model_info("alice/mixin").sha == second  # main untouched
    assert (pull("alice/mixin", revision="dev") / "model.safetensors").read_bytes() == (other / "model.safetensors").read_bytes()
    assert pull("alice/mixin", revision=dev) == pull("alice/mixin", revision="dev")


def test_missing_or_old_plugin_says_what_to_pip_install(hub, folder, capsys):
    api = HfApi()
    config = json.loads((folder / "config.json").read_text())
    cases = {
        "alice/too-old": (dict(config, plugins={"mm-image": "99.0"}), "pip install -U 'mm-image>=99.0'"),
        "alice/missing": (dict(config, modality="sonar", plugins={"mm-sonar": "0.3"}), "pip install 'mm-sonar>=0.3'"),
        "alice/unknown": (dict(config, modality="sonar", plugins={}), "modality 'sonar'"),
    }
    for repo, (cfg, expected) in cases.items():  # pushed from a machine that had the plugin
        api.create_repo(repo)
        api.upload_file(path_or_fileobj=json.dumps(cfg).encode(), path_in_repo="config.json", repo_id=repo)
        api.upload_file(path_or_fileobj=str(folder / "model.safetensors"), path_in_repo="model.safetensors", repo_id=repo)
        with pytest.raises(PluginError, match=expected.replace("(", r"\(").replace(".", r"\.")):
            mmcore.from_pretrained(repo)
        assert expected in cli_error(capsys, "pull", repo)


def test_only_safetensors_travel_and_no_code(hub, folder, capsys):
    api = HfApi()
    push(folder, "alice/with-extras")
    api.upload_file(path_or_fileobj=b"raise SystemExit('ran code from the Hub')\n", path_in_repo="modeling.py", repo_id="alice/with-extras")
    api.upload_file(path_or_fileobj=b"\x80\x04pickle", path_in_repo="pytorch_model.bin", repo_id="alice/with-extras")
    pulled = pull("alice/with-extras")
    assert sorted(p.name for p in pulled.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
        "recipe.yaml",
        "reconstruction.png",
    ]

    api.create_repo("alice/pickled")
    api.upload_file(path_or_fileobj=str(folder / "config.json"), path_in_repo="config.json", repo_id="alice/pickled")
    api.upload_file(path_or_fileobj=b"\x80\x04pickle", path_in_repo="pytorch_model.bin", repo_id="alice/pickled")
    with pytest.raises(HubError, match="model.safetensors not found in alice/pickled"):
        mmcore.from_pretrained("alice/pickled")
    assert "model.safetensors not found in alice/pickled" in cli_error(capsys, "pull", "alice/pickled")


def test_bad_input_gets_one_line_errors(hub, folder, capsys, monkeypatch):
    push(folder, "alice/ok")
    cases = [
        (("push", folder, "alice/bad name!"), "invalid repo id 'alice/bad name!'"),
        (("pull", "alice/bad--name"), "invalid repo id 'alice/bad--name'"),
        (("pull", "alice/nope"), f"repo alice/nope not found on {hub.url}"),
        (("pull", "alice/ok", "--revision", "v404"), "revision 'v404' not found in alice/ok"),
        (("push", folder.parent / "nothing-here", "alice/ok"), "no model folder at"),
    ]
    for argv, expected in cases:
        code, _, err = run_cli(capsys, *argv)
        assert expected in one_line_error(code, err), err
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    line = cli_error(capsys, "push", folder, "alice/ok")
    assert f"the Hub at {hub.url} refused the token (HTTP 401)" in line


def test_network_error_mid_upload_commits_nothing_and_next_push_succeeds(hub, folder, tmp_path):
    push(folder, "alice/net")
    before = HfApi().model_info("alice/net").sha
    newer = make_folder(tmp_path / "newer", seed=2)
    hub.faults["commit"] = 1  # the connection drops while the commit is being sent
    with pytest.raises(HubError, match="network error .* nothing was committed, push again"):
        push(newer, "alice/net")
    assert HfApi().model_info("alice/net").sha == before
    assert (pull("alice/net") / "model.safetensors").read_bytes() == (folder / "model.safetensors").read_bytes()

    after = push(newer, "alice/net").oid
    assert after != before and HfApi().model_info("alice/net").sha == after
    assert (pull("alice/net") / "model.safetensors").read_bytes() == (newer / "model.safetensors").read_bytes()


def test_damaged_weights_are_refused(hub, folder, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(folder, bad)
    data = (bad / "model.safetensors").read_bytes()
    (bad / "model.safetensors").write_bytes(data[:-100])
    with pytest.raises(DataError, match="truncated"):
        push(bad, "alice/bad")
    assert "truncated" in cli_error(capsys, "push", bad, "alice/bad")
    (bad / "model.safetensors").write_bytes(b"\xff" * 16 + data[16:])
    with pytest.raises(DataError, match="not a safetensors file"):
        check_weights(bad / "model.safetensors")
    with pytest.raises(DataError, match="cannot read weights"):
        MaskedModel.from_pretrained(bad)

    push(folder, "alice/tamper")
    blob = (pull("alice/tamper") / "model.safetensors").resolve()
    changed = bytearray(blob.read_bytes())
    changed[-1] ^= 0xFF  # one byte of a tensor: the file still parses
    blob.write_bytes(bytes(changed))
    with pytest.raises(DataError, match="does not match the sha256 the Hub gave"):
        mmcore.from_pretrained("alice/tamper")
    assert "does not match the sha256" in cli_error(capsys, "pull", "alice/tamper")


def test_offline_pull_hits_the_cache(hub, folder, monkeypatch, capsys):
    commit = push(folder, "alice/offline").oid
    online = pull("alice/offline")
    asked = len(hub.requests)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert pull("alice/offline") == online == pull("alice/offline", revision=commit)
    assert same_weights(mmcore.from_pretrained("alice/offline"), MaskedModel.from_pretrained(folder))
    assert len(hub.requests) == asked  # not one request
    line = cli_error(capsys, "pull", "alice/never-pulled")
    assert "alice/never-pulled is not in the Hugging Face cache" in line and "HF_HUB_OFFLINE=1" in line


def test_cli_reads_hf_token_endpoint_and_offline_from_the_environment(hub, folder, tmp_path):
    env = {
        **os.environ,
        "HF_ENDPOINT": hub.url,
        "HF_TOKEN": TOKEN,
        "HF_HUB_OFFLINE": "0",
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_CACHE": str(tmp_path / "cache"),
    }
    mm = [sys.executable, "-m", "mmcore"]
    out = subprocess.run(
        [*mm, "push", folder, "alice/env", "--message", "from the CLI"], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    sha = HfApi().model_info("alice/env").sha
    assert out.stdout.strip() == f"{hub.url}/alice/env/commit/{sha}"
    online = pull("alice/env")  # fills the cache the offline command reads
    offline = dict(env, HF_HUB_OFFLINE="1", HF_ENDPOINT="http://127.0.0.1:9", HF_TOKEN="")
    out = subprocess.run([*mm, "pull", "alice/env"], env=offline, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()) == online


def test_hub_protocol_round_trip_across_huggingface_hub_versions(hub, tmp_path):
    pythons = {"2.": sys.executable}
    for version, venv in HUB_VENVS.items():
        python = ROOT / venv / "bin" / "python"
        if not python.exists():
            pytest.fail(f"{venv} is missing: run `make hub-venvs` (small venvs with huggingface_hub {version}x)")
        pythons[version] = str(python)
    runs = {
        v: subprocess.Popen(
            [py, str(ROOT / "tests" / "hub_roundtrip.py"), hub.url, TOKEN, f"alice/v{i}", str(tmp_path / f"v{i}")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, (v, py) in enumerate(pythons.items())
    }
    for version, proc in runs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
        result = json.loads(out.strip().splitlines()[-1])
        assert result["version"].startswith(version)
        assert result["same_bytes"] and result["old_bytes"], result
        assert result["first"] != result["second"] == result["main"]
        assert result["lfs"] == {".gitattributes": False, "config.json": False, "model.safetensors": True}
        assert result["missing_repo"] == "RepositoryNotFoundError"
        assert result["missing_file"] in ("EntryNotFoundError", "RemoteEntryNotFoundError")
        assert result["missing_revision"] == "RevisionNotFoundError"
        assert result["bad_token"] == "HfHubHTTPError"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_olah_serves_the_same_repository(hub, folder, tmp_path, monkeypatch):
    olah = ROOT / OLAH
    if not olah.exists():
        pytest.fail(f"{OLAH} is missing: run `make hub-venvs` (olah gets its own venv: it pins psutil<6)")
    commit = push(folder, "alice/mirrored").oid
    served = pull("alice/mirrored")
    port = free_port()
    (tmp_path / "olah.toml").write_text(
        f'[basic]\nhost = "127.0.0.1"\nport = {port}\nmirror-netloc = "127.0.0.1:{port}"\n'
        f'mirror-lfs-netloc = "127.0.0.1:{port}"\nrepos-path = "{tmp_path / "olah-repos"}"\n'
        f'mirrors-path = ["{tmp_path / "hub"}"]\n[accessibility]\noffline = true\n'
    )
    log = (tmp_path / "olah.log").open("w")
    proc = subprocess.Popen([str(olah), "-c", str(tmp_path / "olah.toml")], cwd=tmp_path, stdout=log, stderr=log)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None, (tmp_path / "olah.log").read_text()[-3000:]
                time.sleep(0.1)
        monkeypatch.setattr(constants, "ENDPOINT", url)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "olah-cache"))
        monkeypatch.delenv("HF_TOKEN")
        mirrored = pull("alice/mirrored")
        assert mirrored.name == commit  # the same revision, resolved by olah from the git repository
        for name in ("config.json", "model.safetensors", "README.md", "reconstruction.png", "recipe.yaml"):
            assert (mirrored / name).read_bytes() == (served / name).read_bytes(), name
        assert same_weights(mmcore.from_pretrained("alice/mirrored", revision=commit), MaskedModel.from_pretrained(folder))
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()
