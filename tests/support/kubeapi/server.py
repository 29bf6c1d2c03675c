"""The HTTP face of the double: routes kube-apiserver URLs to the store, on 127.0.0.1."""

from __future__ import annotations

import json
import select
import socket
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

from . import errors, watch
from .discovery import VERSION_INFO, Registry
from .errors import ApiError
from .resources import ResourceType
from .selectors import Selection
from .store import Store

# Paths the server answers without credentials (the system:public-info-viewer role).
PUBLIC_PATHS = ("/version", "/healthz", "/livez", "/readyz")
_TRUE = ("1", "t", "T", "true", "True", "TRUE")  # what Go's strconv.ParseBool takes as true


class KubeApiServer:
    """A Kubernetes API server double. State lives in ``store`` and survives ``stop()``/``start()``,
    which reuse the same port, so clients can be tested against an outage."""

    def __init__(self, history_limit: int = 1000) -> None:
        self.registry = Registry()
        self.store = Store(self.registry, history_limit)
        # Tracebacks of requests the double itself failed on: a bug here, not in the client.
        self.internal_errors: list[str] = []
        # RBAC denials: (verb, group, resource, namespace or None: all, token) -> the user's name.
        self._denied: dict[tuple[str, str, str, str | None, str], str] = {}
        self._port = 0
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def start(self) -> KubeApiServer:
        if self._httpd is not None:
            return self
        httpd = _HTTPServer(("127.0.0.1", self._port), _Handler, self)
        self._port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"kubeapi-{self._port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: open watches end, requests in flight get their whole answer, idle
        keep-alive connections are closed, new ones refused."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._httpd = self._thread = None
        httpd.shutdown()
        httpd.stop_connections()
        self.store.wake_watchers()
        httpd.server_close()  # joins the request threads
        thread.join()

    def deny(self, token: str, user: str, verb: str, group: str, resource: str,
             namespace: str | None = None) -> None:
        """The user whose bearer token is ``token`` (named ``user``) lacks the RBAC right to
        ``verb`` (get, list, watch, create, update, patch, delete, deletecollection) the
        ``resource`` (a plural, or plural/subresource as RBAC names it) in ``namespace`` (None:
        anywhere). Such requests get RBAC's 403 Forbidden before anything else is looked at;
        other users (other tokens) are not affected."""
        self._denied[(verb, group, resource, namespace, token)] = user

    def allow_all(self) -> None:
        self._denied.clear()

    def denial(self, token: str, verb: str, group: str, resource: str, namespace: str | None) -> str | None:
        """The user refused, if this request is denied."""
        return self._denied.get((verb, group, resource, namespace, token)) or \
            self._denied.get((verb, group, resource, None, token))

    def __enter__(self) -> KubeApiServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class _HTTPServer(ThreadingHTTPServer):
    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], api: KubeApiServer) -> None:
        self.api = api
        self.stopping = threading.Event()
        self._idle: set[socket.socket] = set()  # open connections waiting for their next request
        self._lock = threading.Lock()
        super().__init__(address, handler)

    def idle(self, connection: socket.socket, idle: bool) -> bool:
        """Record whether ``connection`` waits for a request; False once stopping, when the
        connection must close after the answer it is giving."""
        with self._lock:
            (self._idle.add if idle else self._idle.discard)(connection)
            return not self.stopping.is_set()

    def stop_connections(self) -> None:
        # Keep-alive connections would otherwise go on being served after stop(). Only idle
        # ones are shut down: one that is answering (a watch too) would cut its answer off,
        # so it ends on its own and then closes. Under the lock, so that a connection that
        # finishes an answer either sees ``stopping`` or is idle by now.
        with self._lock:
            self.stopping.set()
            for connection in self._idle:
                try:
                    # Wakes the handler's read; an answer it may just have begun still goes out.
                    connection.shutdown(socket.SHUT_RD)
                except OSError:
                    pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # dropped connections are expected
            self.api.internal_errors.append(traceback.format_exc())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # needed for keep-alive and chunked watch streams
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.idle(self.connection, True)

    def parse_request(self) -> bool:
        # A request line came in: from now until its answer is out, stop() leaves it alone.
        self.server.idle(self.connection, False)
        return super().parse_request()

    def handle_one_request(self) -> None:
        super().handle_one_request()
        if not self.server.idle(self.connection, True):
            self.close_connection = True

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.idle(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # Plumbing

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        self._query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        self._body = self.rfile.read(length) if length else b""
        try:
            if url.path not in PUBLIC_PATHS and not self._authenticated():
                raise errors.unauthorized()
            self._route(method, url.path)
        except ApiError as error:
            self._send(error.code, error.status())
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:  # noqa: BLE001 - reported as the server's 500, and kept for the test to see
            self.server.api.internal_errors.append(traceback.format_exc())
            self._send(500, errors.internal("the test double failed; see KubeApiServer.internal_errors").status())

    def _authenticated(self) -> bool:
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        return scheme.lower() == "bearer" and bool(token.strip())

    def _send(self, code: int, body: Any, content_type: str = "application/json") -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.wfile.write(data)

    def _decoded_body(self) -> Any:
        content_type = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip().lower()
        try:
            if content_type in ("application/yaml", "application/x-yaml"):
                return yaml.safe_load(self._body or b"")
            if content_type not in ("application/json", "*/*"):
                raise errors.unsupported_media_type(content_type, ["application/json", "application/yaml"])
            return json.loads(self._body) if self._body else None
        except (ValueError, yaml.YAMLError) as exc:
            raise errors.bad_request(f"error decoding the request body: {exc}") from exc

    def _flag(self, name: str) -> bool:
        return self._query.get(name) in _TRUE

    # Routing

    def _route(self, method: str, path: str) -> None:
        api = self.server.api
        if path == "/version":
            return self._send(200, VERSION_INFO)
        if path in PUBLIC_PATHS:
            return self._send(200, "ok", "text/plain")
        parts = [unquote(p) for p in path.split("/") if p]
        if not parts or parts[0] not in ("api", "apis"):
            raise errors.no_such_route()
        if parts[0] == "api":
            group, rest = "", parts[1:]
            if not rest:
                return self._discovery(method, api.registry.api_versions(f"127.0.0.1:{api.port}"))
        else:
            if len(parts) == 1:
                return self._discovery(method, api.registry.api_group_list())
            group, rest = parts[1], parts[2:]
            if not rest:
                return self._discovery(method, api.registry.api_group(group))
        version, rest = rest[0], rest[1:]
        if not rest:
            return self._discovery(method, api.registry.api_resource_list(group, version))
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            candidate = api.registry.resolve(group, version, rest[2])
            if candidate is not None and candidate.namespaced:
                namespace, rest = rest[1], rest[2:]
        rt = api.registry.resolve(group, version, rest[0])
        if rt is None or len(rest) > 3 or (rt.namespaced and namespace is None and len(rest) > 1):
            raise errors.no_such_route()
        name = rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else None
        if subresource is not None and (subresource != "status" or not rt.has_status):
            raise errors.no_such_route()
        if self._query.get("dryRun"):
            raise errors.bad_request("dryRun is not implemented by the Kubernetes API test double")
        if name is None:
            self._collection(method, rt, namespace)
        else:
            self._item(method, rt, namespace, name, subresource)

    def _discovery(self, method: str, document: dict[str, Any] | None) -> None:
        if document is None:
            raise errors.no_such_route()
        if method != "GET":
            raise errors.method_not_allowed()
        self._send(200, document)

    def _allowed(self, rt: ResourceType, verb: str, namespace: str | None = None, name: str | None = None,
                 subresource: str | None = None) -> None:
        token = (self.headers.get("Authorization") or "").partition(" ")[2].strip()
        resource = f"{rt.plural}/{subresource}" if subresource else rt.plural
        user = self.server.api.denial(token, verb, rt.group, resource, namespace)
        if user is not None:
            raise errors.rbac_forbidden(rt, verb, namespace, name, user, resource)
        if verb not in rt.verbs:
            raise errors.method_not_allowed()

    def _collection(self, method: str, rt: ResourceType, namespace: str | None) -> None:
        store = self.server.api.store
        if method == "GET":
            selection = Selection(rt, namespace, self._query.get("labelSelector"), self._query.get("fieldSelector"))
            if self._flag("watch"):
                self._allowed(rt, "watch", namespace)
                return self._watch(rt, selection)
            self._allowed(rt, "list", namespace)
            limit = self._int_param("limit")
            result = store.list(rt, selection, limit, self._query.get("continue") or None,
                                self._query.get("resourceVersion"), self._query.get("resourceVersionMatch"))
            return self._send(200, result)
        if method == "POST" and (namespace is not None or not rt.namespaced):
            self._allowed(rt, "create", namespace)
            return self._send(201, store.create(rt, namespace, self._decoded_body()))
        if method == "DELETE":
            self._allowed(rt, "deletecollection", namespace)
            selection = Selection(rt, namespace, self._query.get("labelSelector"), self._query.get("fieldSelector"))
            return self._send(200, store.delete_collection(rt, selection, self._delete_options()))
        raise errors.method_not_allowed()

    def _item(self, method: str, rt: ResourceType, namespace: str | None, name: str, subresource: str | None) -> None:
        store = self.server.api.store
        if method == "GET":
            self._allowed(rt, "get", namespace, name)
            return self._send(200, store.get(rt, namespace, name))
        if method == "PUT":
            self._allowed(rt, "update", namespace, name, subresource)
            return self._send(200, store.replace(rt, namespace, name, self._decoded_body(), subresource))
        if method == "PATCH":
            self._allowed(rt, "patch", namespace, name, subresource)
            content_type = self.headers.get("Content-Type") or ""
            return self._send(200, store.patch(rt, namespace, name, content_type, self._body, subresource))
        if method == "DELETE" and subresource is None:
            self._allowed(rt, "delete", namespace, name)
            return self._send(200, store.delete(rt, namespace, name, self._delete_options()))
        raise errors.method_not_allowed()

    def _int_param(self, name: str) -> int:
        value = self._query.get(name) or "0"
        try:
            return int(value)
        except ValueError:
            raise errors.bad_request(f'invalid value for {name}: "{value}"') from None

    def _delete_options(self) -> dict[str, Any]:
        options = self._decoded_body() or {}
        if not isinstance(options, dict):
            raise errors.bad_request("the body of a delete must be DeleteOptions")
        if "propagationPolicy" in self._query:
            options["propagationPolicy"] = self._query["propagationPolicy"]
        if "orphanDependents" in self._query:
            options["orphanDependents"] = self._flag("orphanDependents")
        return options

    def _watch(self, rt: ResourceType, selection: Selection) -> None:
        timeout = self._int_param("timeoutSeconds")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.close_connection = True

        def send(event: dict[str, Any]) -> None:
            line = json.dumps(event).encode() + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))

        watch.stream(self.server.api.store, rt, selection, self._query.get("resourceVersion"), timeout, send,
                     lambda: self.server.stopping.is_set() or self._client_gone())
        self.wfile.write(b"0\r\n\r\n")

    def _client_gone(self) -> bool:
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True
