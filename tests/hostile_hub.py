"""A Hub that attacks its client: tests/hub_server.py with switchable lies on the download side.

Why: a model is pulled from whatever ``HF_ENDPOINT`` names (a mirror, a proxy, a
compromised host), and ``huggingface_hub`` turns what that server says (the commit
sha of a revision, ``X-Repo-Commit``, ``ETag``) into paths under the cache. The
tests push an honest repo first, then set ``server.attacks`` and pull:

    sha=S          revision info names commit S (and S is then served as the real commit)
    commit=S       ``X-Repo-Commit: S`` on every resolve answer, 404s included (as the Hub does)
    etag=S         ``ETag``/``X-Linked-Etag: "S"`` on every resolve answer
    etag_late=S    the same from the second HEAD of a file on: an honest first answer, then a lie
    names=[...]    extra files in the tree listing and the siblings (serving config.json's bytes)
    gone={name: S} resolve answers 404 EntryNotFound for ``name``, with ``X-Repo-Commit: S``
    length=N       GET of model.safetensors claims ``Content-Length`` + N, then the connection closes
    swap=True      GET of model.safetensors serves other bytes (same length) than its sha256
    error=(status, code)  every download request fails so (code None: no ``X-Error-Code``)
    no_codes=True  error answers carry no ``X-Error-Code`` (a proxy that strips headers)
"""

from __future__ import annotations

from hub_server import Handler, Hub, HubError, HubServer, Repo

WEIGHTS = "model.safetensors"
LIES = ("sha", "commit", "etag", "etag_late")


class HostileRepo(Repo):
    hub: HostileHub

    def resolve(self, revision: str) -> str:
        """A lied-about commit is served as main's, so the client goes on to use it."""
        if revision in [self.hub.attacks.get(k) for k in LIES]:
            revision = "main"
        return super().resolve(revision)

    def entries(self, commit: str) -> dict[str, dict]:
        entries = super().entries(commit)
        for name in self.hub.attacks.get("names", ()):
            entries[name] = dict(entries["config.json"], path=name)
        return entries


class HostileHub(Hub):
    repo_class = HostileRepo

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.attacks: dict = {}
        self.heads: dict[str, int] = {}

    def repo(self, repo_id: str) -> Repo:
        repo = super().repo(repo_id)
        repo.hub = self
        return repo


class HostileHandler(Handler):
    hub: HostileHub

    def route(self, method: str, parts: list[str]) -> None:
        self.resolving = len(parts) >= 5 and parts[2] == "resolve"
        self.file = "/".join(parts[4:]) if self.resolving else None
        self.status = 0
        if self.resolving and method == "HEAD":
            self.hub.heads[self.path] = self.hub.heads.get(self.path, 0) + 1
        error = self.hub.attacks.get("error")
        if error and method in ("GET", "HEAD"):
            raise HubError(error[0], "Repository not found" if error[0] == 404 else "Internal Error", error[1])
        if self.resolving and self.file in self.hub.attacks.get("gone", {}):
            raise HubError(404, f"Entry not found: {self.file}", "EntryNotFound")
        super().route(method, parts)

    def send_response(self, code: int, message: str | None = None) -> None:
        self.status = code
        super().send_response(code, message)

    def send_header(self, key: str, value: str) -> None:
        attacks = self.hub.attacks
        if key == "X-Error-Code" and attacks.get("no_codes"):
            return
        if getattr(self, "resolving", False):
            if key == "X-Repo-Commit" and "commit" in attacks:
                value = attacks["commit"]
            late = "etag_late" in attacks and self.hub.heads.get(self.path, 0) > 1
            if key in ("ETag", "X-Linked-Etag") and ("etag" in attacks or late):
                value = f'"{attacks["etag"] if "etag" in attacks else attacks["etag_late"]}"'
            if key == "Content-Length" and self.weights_get() and "length" in attacks:
                value = str(int(value) + attacks["length"])
                self.close_connection = True
        super().send_header(key, value)

    def end_headers(self) -> None:
        if getattr(self, "resolving", False) and self.status == 404:
            commit = self.hub.attacks.get("gone", {}).get(self.file) or self.hub.attacks.get("commit")
            if commit:
                super().send_header("X-Repo-Commit", commit)
        super().end_headers()

    def send(self, status, payload=None, headers=None, content_type="application/json"):
        attacks = self.hub.attacks
        if self.weights_get() and attacks.get("swap") and isinstance(payload, bytes):
            payload = payload[:-1] + bytes([payload[-1] ^ 0xFF])  # one tensor byte: the header still parses
        if isinstance(payload, dict) and "siblings" in payload:
            payload = dict(payload, sha=attacks.get("sha", payload["sha"]))
        super().send(status, payload, headers, content_type)

    def weights_get(self) -> bool:
        return getattr(self, "resolving", False) and self.command == "GET" and self.file == WEIGHTS


class HostileHubServer(HubServer):
    """``HubServer`` whose ``attacks`` dict switches the lies on (empty: an honest Hub)."""

    hub_class, handler_class = HostileHub, HostileHandler

    @property
    def attacks(self) -> dict:
        return self.hub.attacks
