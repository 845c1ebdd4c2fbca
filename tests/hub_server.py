"""TEST DOUBLE of the Hugging Face Hub, for tests only: never use it as a server for anything real.

A tiny HTTP server on 127.0.0.1 answering the few endpoints that `huggingface_hub` (2.x) calls for
`create_repo`, `create_branch` and `create_commit`/`upload_folder` over the plain (non-Xet) protocol:

    POST /api/repos/create                                   create_repo
    POST /api/validate-yaml                                  README.md metadata check before a commit
    POST /api/models/{ns}/{name}/branch/{branch}             create_branch
    POST /api/models/{ns}/{name}/preupload/{revision}        "regular" (inline base64) or "lfs" per file
    POST /{ns}/{name}.git/info/lfs/objects/batch             LFS batch: where to PUT each large file
    PUT  /lfs-upload/{oid}                                   the LFS object itself (sha256 checked)
    POST /lfs-verify                                         LFS verify step
    POST /api/models/{ns}/{name}/commit/{revision}           ndjson commit: header + file/lfsFile lines

It stores what it receives (`FakeHub.files(repo_id, revision)`, `FakeHub.commits`, `FakeHub.requests`) so a test
can compare it with what was meant to be uploaded. Clients must set `HF_HUB_DISABLE_XET=1`: Xet storage is a
separate service this double does not imitate.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

DEFAULT_NAMESPACE = "test-user"
REPO = r"(?P<repo>[^/]+/[^/]+)"
ROUTES = [
    ("POST", re.compile(r"^/api/repos/create$"), "create_repo"),
    ("POST", re.compile(r"^/api/validate-yaml$"), "validate_yaml"),
    ("POST", re.compile(rf"^/api/models/{REPO}/branch/(?P<rev>[^/]+)$"), "create_branch"),
    ("POST", re.compile(rf"^/api/models/{REPO}/preupload/(?P<rev>[^/]+)$"), "preupload"),
    ("POST", re.compile(rf"^/{REPO}\.git/info/lfs/objects/batch$"), "lfs_batch"),
    ("PUT", re.compile(r"^/lfs-upload/(?P<oid>[0-9a-f]{64})$"), "lfs_put"),
    ("POST", re.compile(r"^/lfs-verify$"), "lfs_verify"),
    ("POST", re.compile(rf"^/api/models/{REPO}/commit/(?P<rev>[^/]+)$"), "commit"),
]


@dataclass
class FakeRepo:
    private: bool | None
    branches: dict[str, dict[str, bytes]] = field(default_factory=lambda: {"main": {}})


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, **extra: Any):
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra


class FakeHub:
    """Start with `with FakeHub() as hub:`; point clients at `hub.url` via HF_ENDPOINT."""

    def __init__(self, lfs_threshold: int = 1024):
        self.lfs_threshold = lfs_threshold  # files this big or bigger go through LFS, like the Hub's 10 MB rule
        self.repos: dict[str, FakeRepo] = {}
        self.lfs_objects: dict[str, bytes] = {}
        self.commits: list[dict[str, Any]] = []
        self.requests: list[Recorded] = []
        self.valid_tokens: set[str] | None = None  # None: any bearer token is accepted
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-hub", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        with self.lock:
            return dict(self.repos[repo_id].branches[revision])

    # -- endpoints: each takes the route's groups and the parsed request, returns (status, json body) --

    def _repo(self, repo_id: str) -> FakeRepo:
        if repo_id not in self.repos:
            raise HubError(404, f"Repository {repo_id} not found", code="RepoNotFound")
        return self.repos[repo_id]

    def _branch(self, repo_id: str, rev: str) -> dict[str, bytes]:
        branches = self._repo(repo_id).branches
        if rev not in branches:
            raise HubError(404, f"Invalid rev id: {rev}", code="RevisionNotFound")
        return branches[rev]

    def create_repo(self, body: bytes) -> dict:
        payload = json.loads(body)
        repo_id = f"{payload.get('organization') or DEFAULT_NAMESPACE}/{payload['name']}"
        if payload.get("type", "model") != "model":
            raise HubError(400, "this test double only hosts model repos")
        if repo_id in self.repos:
            # like the Hub, the conflict answer still carries the url: create_repo(exist_ok=True) reads it
            raise HubError(409, "You already created this model repo", url=f"{self.url}/{repo_id}")
        visibility = payload.get("visibility")
        self.repos[repo_id] = FakeRepo(private=None if visibility is None else visibility == "private")
        return {"url": f"{self.url}/{repo_id}", "name": repo_id}

    def validate_yaml(self, body: bytes) -> dict:
        content = json.loads(body)["content"]
        match = re.match(r"^---\n(.*?)\n---\n", content, flags=re.DOTALL)
        try:
            metadata = yaml.safe_load(match.group(1)) if match else {}
        except yaml.YAMLError as err:
            raise HubError(400, f"invalid YAML: {err}") from err
        if not isinstance(metadata, dict):
            raise HubError(400, "metadata must be a mapping")
        return {"errors": [], "warnings": []}

    def create_branch(self, body: bytes, repo: str, rev: str) -> dict:
        branches = self._repo(repo).branches
        branch = unquote(rev)
        if branch in branches:
            raise HubError(409, f"Reference already exists: refs/heads/{branch}")
        start = (json.loads(body) if body else {}).get("startingPoint", "main")
        branches[branch] = dict(self._branch(repo, start))
        return {}

    def preupload(self, body: bytes, repo: str, rev: str) -> dict:
        self._branch(repo, unquote(rev))
        files = json.loads(body)["files"]
        return {
            "files": [
                {
                    "path": f["path"],
                    "uploadMode": "lfs" if f["size"] >= self.lfs_threshold else "regular",
                    "shouldIgnore": False,
                    "oid": None,
                }
                for f in files
            ]
        }

    def lfs_batch(self, body: bytes, repo: str) -> dict:
        self._repo(repo)
        objects = []
        for obj in json.loads(body)["objects"]:
            answer = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.lfs_objects:
                answer["actions"] = {
                    "upload": {"href": f"{self.url}/lfs-upload/{obj['oid']}"},
                    "verify": {"href": f"{self.url}/lfs-verify"},
                }
            objects.append(answer)
        return {"transfer": "basic", "objects": objects}

    def lfs_put(self, body: bytes, oid: str) -> dict:
        if hashlib.sha256(body).hexdigest() != oid:
            raise HubError(400, "uploaded content does not match its sha256 oid")
        self.lfs_objects[oid] = body
        return {}

    def lfs_verify(self, body: bytes) -> dict:
        payload = json.loads(body)
        stored = self.lfs_objects.get(payload["oid"])
        if stored is None or len(stored) != payload["size"]:
            raise HubError(404, f"LFS object {payload['oid']} was not uploaded")
        return {}

    def commit(self, body: bytes, repo: str, rev: str) -> dict:
        branch = self._branch(repo, unquote(rev))
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0]["key"] != "header":
            raise HubError(400, "a commit starts with a header line")
        changes: dict[str, bytes] = {}
        for line in lines[1:]:
            value = line["value"]
            if line["key"] == "file":
                changes[value["path"]] = base64.b64decode(value["content"])
            elif line["key"] == "lfsFile":
                if value["oid"] not in self.lfs_objects:
                    raise HubError(400, f"LFS object for {value['path']} was never uploaded")
                changes[value["path"]] = self.lfs_objects[value["oid"]]
            else:
                raise HubError(400, f"this test double does not support {line['key']!r} operations")
        branch.update(changes)
        oid = hashlib.sha1(body).hexdigest()
        self.commits.append(
            {"repo_id": repo, "revision": unquote(rev), "oid": oid, "summary": lines[0]["value"]["summary"],
             "paths": sorted(changes)}
        )
        return {"commitUrl": f"{self.url}/{repo}/commit/{oid}", "commitOid": oid, "pullRequestUrl": None}


def _handler_for(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects

        def log_message(self, *args: Any) -> None:  # keep pytest output clean
            pass

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _reply(self, status: int, payload: dict, error_code: str | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if error_code:
                self.send_header("X-Error-Code", error_code)
            self.end_headers()
            self.wfile.write(data)

        def _dispatch(self) -> None:
            path = urlsplit(self.path).path
            body = self._read_body()
            with hub.lock:
                hub.requests.append(Recorded(self.command, path, dict(self.headers.items())))
            for method, pattern, name in ROUTES:
                match = pattern.match(path) if method == self.command else None
                if match is None:
                    continue
                # LFS PUTs go to storage, not the API, so (like S3) they carry no Hub token
                authorization = self.headers.get("authorization", "")
                if name != "lfs_put" and (not authorization.startswith("Bearer ") or (
                        hub.valid_tokens is not None and authorization.removeprefix("Bearer ") not in hub.valid_tokens)):
                    self._reply(401, {"error": "Invalid credentials in Authorization header"})
                    return
                try:
                    with hub.lock:
                        answer = getattr(hub, name)(body, **match.groupdict())
                except HubError as err:
                    self._reply(err.status, {"error": err.message, **err.extra}, error_code=err.code)
                    return
                self._reply(200, answer)
                return
            self._reply(404, {"error": f"the Hub test double has no route for {self.command} {path}"})

        do_GET = do_POST = do_PUT = _dispatch

    return Handler
