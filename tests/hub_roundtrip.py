"""The Hub-protocol round trip with whatever huggingface_hub is installed (no torch, no mmcore).

Run by tests/test_hub.py with the python of small venvs holding huggingface_hub 0.36
and 1.x (``make hub-venvs``), against the test server the test started:

    python tests/hub_roundtrip.py ENDPOINT TOKEN REPO_ID WORKDIR

Prints one JSON line: the version, the commits, and the error classes it met.
"""

import os
import sys

os.environ["HF_HUB_DISABLE_XET"] = "1"  # before the import: 1.x/2.x would upload through Xet
os.environ["HF_HUB_OFFLINE"] = "0"

import hashlib  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

endpoint, token, repo_id, work = sys.argv[1:5]
os.environ["HF_ENDPOINT"] = endpoint
os.environ["HF_HOME"] = str(Path(work) / "hf-home")

import huggingface_hub  # noqa: E402
from huggingface_hub import HfApi, hf_hub_download, snapshot_download  # noqa: E402


def digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def error_of(call):
    try:
        call()
    except Exception as exc:  # the class name is the result
        return type(exc).__name__
    return None


folder = Path(work) / "upload"
folder.mkdir(parents=True)
(folder / "config.json").write_text('{"modality": "image"}\n')
(folder / "model.safetensors").write_bytes(bytes(range(256)) * 40)  # binary: goes through LFS
api = HfApi(endpoint=endpoint, token=token)
api.create_repo(repo_id, exist_ok=True)
first = api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message="first").oid
(folder / "model.safetensors").write_bytes(bytes(range(255, -1, -1)) * 40)
second = api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message="second").oid
snapshot = snapshot_download(repo_id)
old = hf_hub_download(repo_id, "model.safetensors", revision=first)
info = api.model_info(repo_id, files_metadata=True)
lfs = {s.rfilename: s.lfs is not None for s in info.siblings}
print(
    json.dumps(
        {
            "version": huggingface_hub.__version__,
            "first": first,
            "second": second,
            "main": info.sha,
            "same_bytes": digest(Path(snapshot) / "model.safetensors") == digest(folder / "model.safetensors")
            and (Path(snapshot) / "config.json").read_bytes() == (folder / "config.json").read_bytes(),
            "old_bytes": Path(old).read_bytes() == bytes(range(256)) * 40,
            "lfs": lfs,
            "missing_repo": error_of(lambda: hf_hub_download(repo_id + "-nope", "config.json")),
            "missing_file": error_of(lambda: hf_hub_download(repo_id, "nope.json")),
            "missing_revision": error_of(lambda: hf_hub_download(repo_id, "config.json", revision="v404")),
            "bad_token": error_of(lambda: HfApi(endpoint=endpoint, token="hf_bad").create_repo(repo_id + "-2")),
        }
    )
)
