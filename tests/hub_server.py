"""A small Hugging Face Hub-protocol server for the tests, backed by git.

Why it exists: the test machines have no internet, and no server that speaks
the *upload* side of the Hub protocol is installable here. This one speaks
enough of it for the real ``huggingface_hub`` client (0.36, 1.x, 2.x, with
``HF_HUB_DISABLE_XET=1``) to create repos, upload (preupload, LFS batch,
commit), branch and download (resolve, revision info, tree), with the Hub's
error headers (``X-Error-Code``) for a missing repo, revision or file and a
bad token, and the README.md metadata check. It is a test fixture, not a product: models only, no pull
requests, no private repos, no pagination.

Storage is what git and git-lfs themselves write, so other tools can serve
the same folder (the tests point ``olah``'s local-mirror mode at it)::

    ROOT/models/<namespace>/<name>/.git                 LFS files as pointer blobs
    ROOT/models/<namespace>/<name>/.git/lfs/objects/<aa>/<bb>/<sha256>

A commit is built in a private index and published with one compare-and-swap
``git update-ref``, so a request cut off half way leaves the branch as it was.
``server.faults["commit"] = n`` cuts the next ``n`` commit requests mid-body,
as a dropped connection would.

Run by hand: ``python tests/hub_server.py ROOT [PORT]`` (token ``hf_test_write``).
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
from datetime import datetime, UTC
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")
POINTER_RE = re.compile(rb"^version https://git-lfs\.github\.com/spec/v1\noid sha256:([0-9a-f]{64})\nsize (\d+)\n$")
GITATTRIBUTES = "".join(
    f"{p} filter=lfs diff=lfs merge=lfs -text\n"
    for p in ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.ckpt", "*.h5", "*.onnx", "*.npz", "*.png", "*.jpg", "*.zip", "*.tar.gz")
)
LFS_THRESHOLD = 10 * 1024 * 1024  # larger files go to LFS whatever their name, as on the Hub
GIT_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TERMINAL_PROMPT": "0"}


class HubError(Exception):
    """An HTTP error answered the way the Hub does (status, X-Error-Code, JSON body)."""

    def __init__(self, status: int, message: str, code: str | None = None, **extra):
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra


class Repo:
    """One git repository with its git-lfs object store."""

    def __init__(self, path: Path, repo_id: str):
        self.path, self.repo_id = path, repo_id
        self.git_dir = path / ".git"
        self.lfs = self.git_dir / "lfs" / "objects"
        self.lock = threading.Lock()

    def git(self, *args: str, input: bytes | None = None, env: dict | None = None, check: bool = True) -> str:
        return self.git_bytes(*args, input=input, env=env, check=check).decode()

    def git_bytes(self, *args: str, input: bytes | None = None, env: dict | None = None, check: bool = True) -> bytes:
        out = subprocess.run(
            ["git", f"--git-dir={self.git_dir}", *args], input=input, capture_output=True, env={**os.environ, **GIT_ENV, **(env or {})}
        )
        if check and out.returncode:
            raise RuntimeError(f"git {' '.join(args)}: {out.stderr.decode().strip()}")
        return out.stdout

    def resolve(self, revision: str) -> str:
        """Commit sha of a branch, tag or (full or short) commit; 404 RevisionNotFound otherwise."""
        if not revision.startswith("-"):
            for ref in (f"refs/heads/{revision}", f"refs/tags/{revision}", revision):
                sha = self.git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False).strip()
                if sha:
                    return sha
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def entries(self, commit: str) -> dict[str, dict]:
        """path -> tree entry as the Hub's tree API gives it (with ``lfs`` for LFS files)."""
        out = self.git("ls-tree", "-r", "-l", "-z", commit)
        entries = {}
        for line in filter(None, out.split("\0")):
            meta, path = line.split("\t", 1)
            _mode, _kind, blob, size = meta.split()
            entry = {"type": "file", "oid": blob, "size": int(size), "path": path}
            if int(size) < 200:
                match = POINTER_RE.match(self.git("cat-file", "blob", blob).encode())
                if match:
                    entry["lfs"] = {"oid": match[1].decode(), "size": int(match[2]), "pointerSize": int(size)}
                    entry["size"] = int(match[2])
            entries[path] = entry
        return entries

    def lfs_path(self, oid: str) -> Path:
        return self.lfs / oid[:2] / oid[2:4] / oid

    def commit_date(self, commit: str) -> str:
        stamp = int(self.git("show", "-s", "--format=%ct", commit).strip())
        return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")

    def lfs_patterns(self, commit: str) -> list[str]:
        text = self.git("show", f"{commit}:.gitattributes", check=False)
        return [line.split()[0] for line in text.splitlines() if "filter=lfs" in line and line.split()]


class Hub:
    """The repositories under ``root`` and the tokens allowed to write."""

    repo_class = Repo  # subclasses (tests/hostile_hub.py) serve their own

    def __init__(self, root: Path, tokens: dict[str, str]):
        self.root, self.tokens = Path(root), tokens
        self.repos: dict[str, Repo] = {}
        self.lock = threading.Lock()
        self.faults: dict[str, int] = {}
        self.requests: list[tuple[str, str]] = []

    def repo(self, repo_id: str) -> Repo:
        with self.lock:
            if repo_id not in self.repos:
                path = self.root / "models" / repo_id
                if not (path / ".git" / "HEAD").exists():
                    raise HubError(404, "Repository not found", "RepoNotFound")
                self.repos[repo_id] = self.repo_class(path, repo_id)
            return self.repos[repo_id]

    def create(self, namespace: str, name: str, user: str) -> Repo:
        repo_id = f"{namespace}/{name}"
        path = self.root / "models" / repo_id
        with self.lock:
            if (path / ".git" / "HEAD").exists():
                raise HubError(409, "You already created this model repo")
            path.mkdir(parents=True, exist_ok=True)
            subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True, capture_output=True, env={**os.environ, **GIT_ENV})
            repo = self.repos[repo_id] = self.repo_class(path, repo_id)
        blob = repo.git("hash-object", "-w", "--stdin", input=GITATTRIBUTES.encode()).strip()
        tree = repo.git("mktree", input=f"100644 blob {blob}\t.gitattributes\n".encode()).strip()
        commit = repo.git("commit-tree", tree, "-m", "initial commit", env=author(user)).strip()
        repo.git("update-ref", "refs/heads/main", commit, "0" * 40)
        return repo


def author(user: str) -> dict[str, str]:
    return {
        "GIT_AUTHOR_NAME": user,
        "GIT_AUTHOR_EMAIL": f"{user}@hub.test",
        "GIT_COMMITTER_NAME": user,
        "GIT_COMMITTER_EMAIL": f"{user}@hub.test",
    }


def split_repo(parts: list[str]) -> tuple[str, list[str]]:
    """``ns/name/...`` -> (repo_id, rest); repo ids are always ``namespace/name`` here."""
    if len(parts) < 2:
        raise HubError(404, "Repository not found", "RepoNotFound")
    return f"{unquote(parts[0])}/{unquote(parts[1])}", parts[2:]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub: Hub  # set on the subclass made by `serve`

    def log_message(self, *args):  # quiet: the tests read hub.requests instead
        pass

    # -- plumbing ------------------------------------------------------------
    def do_GET(self):
        self.dispatch("GET")

    def do_HEAD(self):
        self.dispatch("HEAD")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        self.hub.requests.append((method, url.path))
        parts = [p for p in url.path.split("/") if p]  # split before unquoting: revisions may hold %2F
        self._body: bytes | None = None
        try:
            self.user = self.authenticate()
            self.route(method, parts)
        except HubError as exc:
            self.read_body()
            headers = {"X-Error-Message": exc.message}
            if exc.code:
                headers["X-Error-Code"] = exc.code
            self.send(exc.status, {"error": exc.message, **exc.extra}, headers)
        except ConnectionError:
            self.close_connection = True

    def authenticate(self) -> str | None:
        auth = self.headers.get("Authorization")
        if not auth:
            return None
        token = auth.removeprefix("Bearer ").strip()
        if token not in self.hub.tokens:
            raise HubError(401, "Invalid credentials in Authorization header")
        return self.hub.tokens[token]

    def need_user(self) -> str:
        if self.user is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        return self.user

    def read_body(self, limit: int | None = None) -> bytes:
        """The whole body (Content-Length or chunked); ``limit`` reads only that much (faults)."""
        if self._body is not None:
            return self._body
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self._body = b"".join(chunks)
        else:
            length = int(self.headers.get("Content-Length") or 0)
            self._body = self.rfile.read(length if limit is None else min(limit, length))
        return self._body

    def json_body(self) -> dict:
        try:
            return json.loads(self.read_body() or b"{}")
        except json.JSONDecodeError as exc:
            raise HubError(400, f"malformed JSON body: {exc}") from None

    def send(self, status: int, payload=None, headers: dict | None = None, content_type: str = "application/json"):
        body = b"" if payload is None else payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def base(self) -> str:
        return f"http://{self.headers.get('Host')}"

    # -- routes --------------------------------------------------------------
    def route(self, method: str, parts: list[str]) -> None:
        if parts[:3] == ["api", "repos", "create"] and method == "POST":
            return self.create_repo()
        if parts[:2] == ["api", "validate-yaml"] and method == "POST":
            return self.validate_yaml()
        if parts[:2] == ["api", "whoami-v2"]:
            return self.send(200, {"type": "user", "name": self.need_user()})
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            repo_id, rest = split_repo(parts[2:])
            repo = self.hub.repo(repo_id)
            action = rest[0] if rest else "revision"
            revision = unquote(rest[1]) if len(rest) > 1 else "main"
            if action == "revision" and method == "GET":
                return self.info(repo, revision)
            if action == "tree" and method == "GET":
                return self.tree(repo, revision, "/".join(unquote(p) for p in rest[2:]))
            if action == "refs" and method == "GET":
                return self.refs(repo)
            if action == "preupload" and method == "POST":
                return self.preupload(repo, revision)
            if action == "commit" and method == "POST":
                return self.commit(repo, revision)
            if action == "branch" and method == "POST":
                return self.branch(repo, revision)
        if len(parts) >= 5 and parts[1].endswith(".git") and parts[2:] == ["info", "lfs", "objects", "batch"]:
            return self.lfs_batch(self.hub.repo(f"{unquote(parts[0])}/{unquote(parts[1])[:-4]}"))
        if parts[:1] == ["lfs-upload"] and method == "PUT" and len(parts) == 4:
            return self.lfs_upload(self.hub.repo(f"{unquote(parts[1])}/{unquote(parts[2])}"), parts[3])
        if parts[:1] == ["lfs-verify"] and method == "POST" and len(parts) == 4:
            return self.lfs_verify(self.hub.repo(f"{unquote(parts[1])}/{unquote(parts[2])}"), parts[3])
        if len(parts) >= 5 and parts[2] == "resolve" and method in ("GET", "HEAD"):
            repo_id, rest = split_repo(parts)
            return self.resolve(self.hub.repo(repo_id), unquote(rest[1]), "/".join(unquote(p) for p in rest[2:]))
        raise HubError(404, f"no route for {method} {self.path} in this test server")

    def create_repo(self) -> None:
        user = self.need_user()
        body = self.json_body()
        if body.get("type", "model") not in (None, "model"):
            raise HubError(400, "this test server only hosts models")
        namespace, name = body.get("organization") or user, body.get("name", "")
        if not NAME_RE.match(name) or not NAME_RE.match(namespace) or "--" in name or ".." in name:
            raise HubError(400, f"Repo name {namespace}/{name} is invalid")
        if namespace != user:
            raise HubError(403, f"You don't have the rights to create a model under the namespace {namespace!r}")
        url = f"{self.base()}/{namespace}/{name}"
        try:
            self.hub.create(namespace, name, user)
        except HubError as exc:  # the Hub's 409 carries the url: the client's exist_ok reads it
            raise HubError(exc.status, exc.message, exc.code, url=url) from None
        self.send(200, {"url": url, "name": f"{namespace}/{name}"})

    def validate_yaml(self) -> None:
        """The README.md metadata check the client asks for before a commit (the Hub's is stricter)."""
        import yaml

        content = self.json_body().get("content", "")
        match = re.match(r"^---\n(.*?)\n---\n", content, flags=re.S)
        errors = []
        try:
            meta = yaml.safe_load(match.group(1)) if match else {}
        except yaml.YAMLError as exc:
            meta, errors = {}, [{"message": f"YAML error: {exc}"}]
        if not isinstance(meta, dict):
            errors.append({"message": "metadata must be a mapping"})
            meta = {}
        for key in ("license", "library_name", "pipeline_tag"):
            if key in meta and not isinstance(meta[key], str):
                errors.append({"message": f'"{key}" must be a string'})
        for key in ("tags", "datasets", "metrics", "language"):
            if key in meta and not (isinstance(meta[key], list) and all(isinstance(v, str) for v in meta[key])):
                errors.append({"message": f'"{key}" must be an array of strings'})
        self.send(400 if errors else 200, {"errors": errors, "warnings": []})

    def info(self, repo: Repo, revision: str) -> None:
        commit = repo.resolve(revision)
        blobs = self.query.get("blobs", "").lower() == "true"
        siblings = []
        for path, entry in repo.entries(commit).items():
            sibling = {"rfilename": path}
            if blobs:
                sibling.update(size=entry["size"], blobId=entry["oid"])
                if "lfs" in entry:
                    sibling["lfs"] = {
                        "sha256": entry["lfs"]["oid"],
                        "size": entry["lfs"]["size"],
                        "pointerSize": entry["lfs"]["pointerSize"],
                    }
            siblings.append(sibling)
        namespace = repo.repo_id.split("/")[0]
        self.send(
            200,
            {
                "id": repo.repo_id,
                "modelId": repo.repo_id,
                "author": namespace,
                "sha": commit,
                "lastModified": repo.commit_date(commit),
                "private": False,
                "gated": False,
                "disabled": False,
                "tags": [],
                "siblings": siblings,
            },
        )

    def tree(self, repo: Repo, revision: str, prefix: str) -> None:
        commit = repo.resolve(revision)
        recursive = self.query.get("recursive", "").lower() == "true"
        prefix = prefix.strip("/")
        items, dirs = [], set()
        for path, entry in repo.entries(commit).items():
            if prefix and not path.startswith(prefix + "/"):
                continue
            rel = path[len(prefix) + 1 :] if prefix else path
            if "/" in rel and not recursive:
                dirs.add((prefix + "/" if prefix else "") + rel.split("/")[0])
                continue
            items.append(entry)
            if recursive:
                parts = path.split("/")[:-1]
                dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
        if prefix and not items and not dirs:
            raise HubError(404, f"{prefix} does not exist on {revision}", "EntryNotFound")
        items += [
            {"type": "directory", "oid": "0" * 40, "size": 0, "path": d} for d in sorted(dirs) if not prefix or d.startswith(prefix + "/")
        ]
        self.send(200, items)

    def refs(self, repo: Repo) -> None:
        out = repo.git("for-each-ref", "--format=%(refname) %(objectname)", "refs/heads", "refs/tags")
        refs = {"branches": [], "tags": [], "converts": []}
        for line in out.splitlines():
            ref, sha = line.split()
            kind = "branches" if ref.startswith("refs/heads/") else "tags"
            refs[kind].append({"name": ref.split("/", 2)[2], "ref": ref, "targetCommit": sha})
        self.send(200, refs)

    def branch(self, repo: Repo, branch: str) -> None:
        self.need_user()
        start = repo.resolve(self.json_body().get("startingPoint") or "main")
        try:
            repo.git("check-ref-format", f"refs/heads/{branch}")
        except RuntimeError:
            raise HubError(400, f"invalid branch name {branch!r}") from None
        with repo.lock:
            if repo.git("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False).strip():
                raise HubError(409, f"Reference refs/heads/{branch} already exists")
            repo.git("update-ref", f"refs/heads/{branch}", start, "0" * 40)
        self.send(200, {})

    def preupload(self, repo: Repo, revision: str) -> None:
        self.need_user()
        commit = repo.resolve(revision)
        entries, patterns = repo.entries(commit), repo.lfs_patterns(commit)
        files = []
        for f in self.json_body().get("files", []):
            sample = base64.b64decode(f.get("sample", ""))
            lfs = (
                f["size"] >= LFS_THRESHOLD
                or b"\0" in sample
                or any(fnmatch.fnmatch(f["path"], p) or fnmatch.fnmatch(f["path"].rsplit("/", 1)[-1], p) for p in patterns)
            )
            old = entries.get(f["path"])
            oid = None if old is None else old["lfs"]["oid"] if "lfs" in old else old["oid"]
            files.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid})
        self.send(200, {"files": files, "commitOid": commit})

    def lfs_batch(self, repo: Repo) -> None:
        self.need_user()
        body = self.json_body()
        if body.get("operation") != "upload":
            raise HubError(400, "this test server only takes LFS uploads through the batch API")
        objects = []
        for obj in body.get("objects", []):
            oid, size = obj["oid"], int(obj["size"])
            if not re.fullmatch(r"[0-9a-f]{64}", oid):
                objects.append({"oid": oid, "size": size, "error": {"code": 422, "message": "invalid oid"}})
                continue
            entry = {"oid": oid, "size": size, "authenticated": True}
            path = repo.lfs_path(oid)
            if not (path.exists() and path.stat().st_size == size):  # no actions: already stored
                base = f"{self.base()}/lfs-%s/{repo.repo_id}/{oid}"
                entry["actions"] = {"upload": {"href": base % "upload"}, "verify": {"href": base % "verify"}}
            objects.append(entry)
        self.send(200, {"transfer": "basic", "objects": objects}, content_type="application/vnd.git-lfs+json")

    def lfs_upload(self, repo: Repo, oid: str) -> None:
        """Stream to a temporary file, check size and sha256, then rename into the object store."""
        if not re.fullmatch(r"[0-9a-f]{64}", oid):
            raise HubError(400, "invalid oid")
        data = self.read_body()
        expected = int(self.headers.get("Content-Length") or len(data))
        if len(data) != expected:
            raise ConnectionError("upload cut short")
        if hashlib.sha256(data).hexdigest() != oid:
            raise HubError(400, f"content does not match oid {oid}")
        path = repo.lfs_path(oid)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        self.send(200, {})

    def lfs_verify(self, repo: Repo, oid: str) -> None:
        body = self.json_body()
        path = repo.lfs_path(oid)
        if not path.exists() or path.stat().st_size != int(body.get("size", -1)):
            raise HubError(404, f"LFS object {oid} was not uploaded")
        self.send(200, {})

    def commit(self, repo: Repo, revision: str) -> None:
        user = self.need_user()
        if self.query.get("create_pr"):
            raise HubError(400, "this test server does not do pull requests")
        cut = self.hub.faults.get("commit", 0)
        if cut:  # a dropped connection: half the body arrives, then nothing
            self.hub.faults["commit"] = cut - 1
            self.read_body(limit=int(self.headers.get("Content-Length") or 0) // 2)
            self.connection.shutdown(2)
            raise ConnectionError("commit cut short (fault injected)")
        lines = [json.loads(line) for line in self.read_body().splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "a commit payload starts with a header line")
        header = lines[0]["value"]
        if repo.git("rev-parse", "--verify", "--quiet", f"refs/heads/{revision}", check=False).strip() == "":
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        with repo.lock, tempfile.TemporaryDirectory() as tmp:
            parent = repo.resolve(revision)
            if header.get("parentCommit") and header["parentCommit"] != parent:
                raise HubError(412, f"A commit has happened since {header['parentCommit']}")
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            repo.git("read-tree", parent, env=env)
            for line in lines[1:]:
                self.apply(repo, line["key"], line["value"], env)
            tree = repo.git("write-tree", env=env).strip()
            message = header.get("summary", "") + ("\n\n" + header["description"] if header.get("description") else "")
            new = repo.git("commit-tree", tree, "-p", parent, "-m", message or "update", env=author(user)).strip()
            repo.git("update-ref", f"refs/heads/{revision}", new, parent)  # compare-and-swap
        self.send(
            200, {"success": True, "commitOid": new, "pullRequestUrl": None, "commitUrl": f"{self.base()}/{repo.repo_id}/commit/{new}"}
        )

    def apply(self, repo: Repo, key: str, value: dict, env: dict) -> None:
        path = value.get("path", "")
        if not path or path.startswith("/") or ".." in path.split("/") or path.startswith(".git/"):
            raise HubError(400, f"invalid path {path!r}")
        if key == "file":
            content = base64.b64decode(value["content"])
        elif key == "lfsFile":
            oid, size = value["oid"], int(value["size"])
            stored = repo.lfs_path(oid)
            if not stored.exists() or stored.stat().st_size != size:
                raise HubError(
                    400, f"Your push was rejected because an LFS pointer pointed to a file that does not exist ({path}, sha256 {oid})"
                )
            content = f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n".encode()
        elif key in ("deletedFile", "deletedFolder"):
            listed = repo.git("ls-files", "-z", "--", path, env=env).split("\0")
            listed = [p for p in listed if p and (p == path or key == "deletedFolder")]
            if not listed:
                raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
            repo.git("update-index", "--force-remove", "-z", "--stdin", input="\0".join(listed).encode(), env=env)
            return
        else:
            raise HubError(400, f"this test server does not take {key!r} operations")
        blob = repo.git("hash-object", "-w", "--stdin", input=content).strip()
        repo.git("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env)

    def resolve(self, repo: Repo, revision: str, path: str) -> None:
        commit = repo.resolve(revision)
        entry = repo.entries(commit).get(path)
        if entry is None:
            raise HubError(404, f"Entry not found: {path} at {revision}", "EntryNotFound")
        headers = {"X-Repo-Commit": commit, "Accept-Ranges": "bytes"}
        if "lfs" in entry:
            oid = entry["lfs"]["oid"]
            headers.update({"ETag": f'"{oid}"', "X-Linked-Etag": f'"{oid}"', "X-Linked-Size": str(entry["size"])})
            data = None if self.command == "HEAD" else repo.lfs_path(oid).read_bytes()
        else:
            headers["ETag"] = f'"{entry["oid"]}"'
            data = None if self.command == "HEAD" else repo.git_bytes("cat-file", "blob", entry["oid"])
        if data is None:
            self.send_response(200)
            self.send_header("Content-Length", str(entry["size"]))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            return
        status, ranged = 200, re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if ranged:
            start, end = int(ranged[1]), int(ranged[2]) if ranged[2] else len(data) - 1
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data, status = data[start : end + 1], 206
        self.send(status, data, headers, content_type="application/octet-stream")


class HubServer:
    """``with HubServer(root) as hub: hub.url`` — a server on 127.0.0.1 on a free port, in a thread."""

    hub_class, handler_class = Hub, Handler  # subclasses (tests/hostile_hub.py) swap them

    def __init__(self, root: Path | str, tokens: dict[str, str] | None = None, port: int = 0):
        self.hub = self.hub_class(Path(root), tokens or {"hf_test_write": "alice"})
        handler = type("BoundHandler", (self.handler_class,), {"hub": self.hub})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> HubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def requests(self) -> list[tuple[str, str]]:
        return self.hub.requests

    @property
    def faults(self) -> dict[str, int]:
        return self.hub.faults


if __name__ == "__main__":
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    server = HubServer(root, port=int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    print(f"serving {root} at {server.url} (write token hf_test_write)", flush=True)
    with server:
        server.thread.join()
