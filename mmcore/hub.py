"""Sharing model folders through the Hugging Face Hub: push, pull, the card.

Every transfer goes through ``huggingface_hub`` (``HfApi``, ``snapshot_download``),
so ``HF_TOKEN``, ``HF_ENDPOINT``, ``HF_HOME`` and ``HF_HUB_OFFLINE`` work as for
every HF tool. Safety: only the files of a model folder are pushed or pulled
(never code, never pickle), a push is one commit (a failure leaves the repo as
it was), and a downloaded weights file is checked against the sha256 the Hub
gave for it before it is read.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator

from mmcore.card import card_info, render_card
from mmcore.errors import DataError, MMCoreError

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
CARD = "README.md"
PICTURE = "reconstruction.png"
RECIPE = "recipe.yaml"
FOLDER_FILES = (CONFIG, WEIGHTS, CARD, PICTURE, RECIPE)  # what a model folder is; nothing else travels
NETWORK_MODULES = ("httpx", "httpx2", "httpcore", "httpcore2", "requests", "urllib3", "h11")
SHA256 = re.compile(r"[0-9a-f]{64}")


class HubError(MMCoreError):
    """A Hub repo, revision or file cannot be reached, found or written."""


# -- checks ------------------------------------------------------------------

def check_repo_id(repo_id: str) -> str:
    """The Hub's own rule (``huggingface_hub.utils.validate_repo_id``), said in one line."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise HubError(f"invalid repo id {repo_id!r}: expected 'namespace/name' made of letters, digits, '-', '_' "
                       f"and '.' (no '--' or '..', not starting or ending with '-' or '.', at most 96 characters)"
                       ) from None
    return repo_id


def model_folder(path: str | os.PathLike) -> Path:
    """A model folder, or a run folder holding one in ``model/``."""
    path = Path(path)
    for folder in (path, path / "model"):
        if (folder / CONFIG).is_file():
            return folder
    raise DataError(f"no model folder at {path}: expected {CONFIG} and {WEIGHTS} there or in {path / 'model'} "
                    f"(a run's model/ folder appears when the run has finished)")


def read_config(folder: Path) -> dict[str, Any]:
    path = folder / CONFIG
    try:
        config = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if not isinstance(config, dict) or "modality" not in config:
        raise DataError(f"{path} is not an mmcore config: it names no modality")
    return config


def check_weights(path: Path) -> None:
    """A safetensors file whose header parses and whose tensors end exactly at the end of the file."""
    try:
        with path.open("rb") as f:
            size = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(size)) if 0 < size < 100_000_000 else None
        total = path.stat().st_size
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read weights {path}: {exc}; expected an intact safetensors file") from None
    if not isinstance(header, dict):
        raise DataError(f"weights {path} are not a safetensors file (damaged header)")
    ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"]
    if 8 + size + max(ends, default=0) != total:
        raise DataError(f"weights {path} are truncated or padded: the header describes "
                        f"{8 + size + max(ends, default=0)} bytes, the file has {total}")


def verify_download(path: str | os.PathLike) -> Path:
    """Check a file from the HF cache against the sha256 the Hub sent as its ETag (the blob's name).

    The cache keeps an LFS file as ``blobs/<sha256>``; a file changed on disk or cut short in
    transit no longer matches its name. Files outside the cache (a local folder) are not checked.
    """
    path = Path(path)
    blob = path.resolve()
    if blob.parent.name == "blobs" and SHA256.fullmatch(blob.name):
        digest = hashlib.sha256()
        with blob.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        if digest.hexdigest() != blob.name:
            raise DataError(f"{path.name} in the Hugging Face cache ({blob}) does not match the sha256 the Hub gave "
                            f"for it: the file was changed or cut short; delete it and pull again")
    return path


# -- errors from huggingface_hub, said in one line ---------------------------

@contextlib.contextmanager
def hub_errors(repo_id: str, revision: str | None = None, action: str = "pull") -> Iterator[None]:
    """Turn huggingface_hub and network errors into `HubError` naming the repo, revision and endpoint."""
    from huggingface_hub import constants
    from huggingface_hub.utils import (
        EntryNotFoundError, HFValidationError, HfHubHTTPError, LocalEntryNotFoundError,
        RepositoryNotFoundError, RevisionNotFoundError,
    )

    where = f"{repo_id}@{revision}" if revision else repo_id
    endpoint = constants.ENDPOINT
    after = "; nothing was committed, push again" if action == "push" else ""
    try:
        yield
    except HubError:
        raise
    except HFValidationError:
        check_repo_id(repo_id)
        raise
    except LocalEntryNotFoundError:
        raise HubError(f"{where} is not in the Hugging Face cache and the Hub cannot be asked (HF_HUB_OFFLINE=1 "
                       f"or no connection to {endpoint}): pull it once online") from None
    except RevisionNotFoundError:
        raise HubError(f"revision {revision or 'main'!r} not found in {repo_id} on {endpoint}") from None
    except RepositoryNotFoundError:
        raise HubError(f"repo {repo_id} not found on {endpoint} (or it is private and the token cannot read it: "
                       f"set HF_TOKEN)") from None
    except EntryNotFoundError as exc:
        name = _entry_name(exc)
        raise HubError(f"{name} not found in {where} on {endpoint}: not an mmcore model repo? "
                       f"(it needs {CONFIG} and {WEIGHTS})") from None
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status == 401:
            raise HubError(f"the Hub at {endpoint} refused the token (HTTP 401) for {where}: set HF_TOKEN "
                           f"to a valid token{after}") from None
        if status == 403:
            raise HubError(f"the token may not {action} {where} on {endpoint} (HTTP 403): it needs write access "
                           f"to that namespace{after}") from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HubError(f"the Hub at {endpoint} answered HTTP {status} for {where}: {first}{after}") from None
    except Exception as exc:
        if isinstance(exc, (ConnectionError, TimeoutError)) or type(exc).__module__.split(".")[0] in NETWORK_MODULES:
            raise HubError(f"network error talking to {endpoint} for {where} ({type(exc).__name__}: {exc})"
                           f"{after}") from None
        raise


def _entry_name(exc: Exception) -> str:
    match = re.search(r"/resolve/[^/\s]+/(\S+?)\.?(?:\s|$)", str(exc))
    return match.group(1) if match else "a file"


# -- push, pull, card ----------------------------------------------------------

def folder_card(folder: Path, config: dict[str, Any], repo: str, **overrides: Any) -> tuple[str, dict[str, Any]]:
    """The card rendered again from the folder's config and the facts its card recorded."""
    card = folder / CARD
    info = card_info(card.read_text()) if card.is_file() else {}
    info.update({k: v for k, v in overrides.items() if v is not None})
    if "picture" not in info and (folder / PICTURE).is_file():
        info["picture"] = PICTURE
    return render_card(config, info, repo), info


def write_card(path: str | os.PathLike, repo: str | None = None, **overrides: Any) -> Path:
    """Regenerate a folder's README.md (atomically) — after editing the license, say."""
    folder = model_folder(path)
    named = card_info((folder / CARD).read_text()).get("repo") if (folder / CARD).is_file() else None
    text, _ = folder_card(folder, read_config(folder), repo or named or "path/to/model", **overrides)
    write_atomic(folder / CARD, text.encode())
    return folder / CARD


def push(path: str | os.PathLike, repo_id: str, *, revision: str | None = None, message: str | None = None,
         private: bool | None = None, token: str | None = None, endpoint: str | None = None):
    """Upload a model folder as one commit; returns huggingface_hub's ``CommitInfo``.

    Only the folder's files travel (config, weights, card, picture, recipe); the card is
    rendered again so its usage lines name ``repo_id``. ``revision`` is a branch, created
    from main if it does not exist yet.
    """
    from huggingface_hub import CommitOperationAdd, HfApi

    check_repo_id(repo_id)
    folder = model_folder(path)
    config = read_config(folder)
    from mmcore.model import check_plugins

    check_plugins(config)  # a folder that would not load on the other side is not pushed
    if not (folder / WEIGHTS).is_file():
        raise DataError(f"no {WEIGHTS} in {folder}: only safetensors weights are shared")
    check_weights(folder / WEIGHTS)
    card, info = folder_card(folder, config, repo_id)
    files: dict[str, Any] = {CONFIG: folder / CONFIG, WEIGHTS: folder / WEIGHTS, CARD: card.encode()}
    if (folder / PICTURE).is_file():
        files[PICTURE] = folder / PICTURE
    if (folder / RECIPE).is_file() or info.get("recipe"):
        files[RECIPE] = folder / RECIPE if (folder / RECIPE).is_file() else info["recipe"].encode()
    api = HfApi(endpoint=endpoint, token=token)
    with hub_errors(repo_id, revision, "push"):
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        if revision not in (None, "main"):
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(src) if isinstance(src, Path) else src)
                      for name, src in files.items()]
        return api.create_commit(repo_id, operations, commit_message=message or f"mm push {folder.name}",
                                 revision=revision)


def pull(repo_id: str, *, revision: str | None = None, local_dir: str | os.PathLike | None = None,
         token: str | None = None, endpoint: str | None = None, check: bool = True) -> Path:
    """Download a model folder (from the cache when offline) and check it; returns its path."""
    from huggingface_hub import snapshot_download

    check_repo_id(repo_id)
    with hub_errors(repo_id, revision, "pull"):
        folder = Path(snapshot_download(repo_id, revision=revision, allow_patterns=list(FOLDER_FILES),
                                        local_dir=local_dir, token=token, endpoint=endpoint))
    for name in (CONFIG, WEIGHTS):
        if not (folder / name).is_file():
            where = f"{repo_id}@{revision}" if revision else repo_id
            raise HubError(f"{name} not found in {where}: not an mmcore model repo? (it needs {CONFIG} and {WEIGHTS};"
                           f" pickle weights are never loaded)")
    if check:
        from mmcore.model import check_plugins

        check_plugins(read_config(folder))
        check_weights(verify_download(folder / WEIGHTS))
    return folder


def write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
