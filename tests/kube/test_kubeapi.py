"""The Kubernetes API double, driven through the real ``kubernetes`` client."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, dynamic, watch
from kubernetes.client.rest import ApiException

from tests.support.kubeapi import KubeApiServer
from tests.support.kubeapi.fixtures import TOKEN, KubeApi, kube_api, write_kubeconfig  # noqa: F401 - fixture

MERGE = "application/merge-patch+json"
GROUP, VERSION, PLURAL = "velero.io", "v1", "backups"


def raw(api: KubeApi, method: str, path: str, body: Any = None, token: str | None = TOKEN,
        content_type: str = "application/json") -> tuple[int, Any]:
    """A request without the client library, to see status codes and bodies exactly."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(api.url + path, data=data, method=method)
    request.add_header("Content-Type", content_type)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def error_body(excinfo: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    return json.loads(excinfo.value.body)


def backup_crd(scope: str = "Namespaced", status: bool = True, plural: str = PLURAL,
               kind: str = "Backup") -> dict[str, Any]:
    version: dict[str, Any] = {
        "name": VERSION, "served": True, "storage": True,
        "schema": {"openAPIV3Schema": {
            "type": "object",
            "properties": {
                "spec": {"type": "object", "properties": {
                    "ttl": {"type": "string", "default": "720h0m0s"},
                    "includedNamespaces": {"type": "array", "items": {"type": "string"}},
                    "storageLocation": {"type": "string"},
                    "retries": {"type": "integer"},
                    "mode": {"type": "string", "enum": ["Full", "Incremental"]},
                }},
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
        }},
    }
    if status:
        version["subresources"] = {"status": {}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {"group": GROUP, "scope": scope, "versions": [version],
                 "names": {"plural": plural, "singular": kind.lower(), "kind": kind, "shortNames": ["bk"]}},
    }


def backup(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Backup", "metadata": {"name": name}, "spec": spec}


def configmap(name: str, labels: dict[str, str] | None = None, **meta: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}, **meta}, "data": {"k": "v"}}


@pytest.fixture
def core(kube_api: KubeApi) -> client.CoreV1Api:
    return client.CoreV1Api(kube_api.api_client())


@pytest.fixture
def custom(kube_api: KubeApi) -> client.CustomObjectsApi:
    """CustomObjectsApi with the Backup CRD installed."""
    api_client = kube_api.api_client()
    client.ApiextensionsV1Api(api_client).create_custom_resource_definition(backup_crd())
    return client.CustomObjectsApi(api_client)


def events(stream: Iterator[dict[str, Any]], watcher: watch.Watch, count: int,
           then: Callable[[], object] | None = None) -> list[tuple[str, str]]:
    """The first ``count`` events as (type, name), then stop the watch. ``then`` runs in a
    thread from the first event on, when the watch is surely being served."""
    seen, thread = [], None
    for event in stream:
        obj = event["raw_object"]
        seen.append((event["type"], obj["metadata"]["name"]))
        if then is not None and thread is None:
            thread = in_thread(then)
        if len(seen) == count:
            watcher.stop()
    if thread is not None:
        thread.join()
    return seen


def in_thread(action: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=action)
    thread.start()
    return thread


# Discovery


def test_discovery_documents(kube_api: KubeApi) -> None:
    code, version = raw(kube_api, "GET", "/version")
    assert code == 200 and version["major"] == "1" and version["gitVersion"].startswith("v1.")
    assert raw(kube_api, "GET", "/api")[1]["versions"] == ["v1"]
    core_list = raw(kube_api, "GET", "/api/v1")[1]
    assert core_list["kind"] == "APIResourceList" and core_list["groupVersion"] == "v1"
    by_name = {r["name"]: r for r in core_list["resources"]}
    assert by_name["pods"]["namespaced"] and by_name["pods"]["kind"] == "Pod"
    assert by_name["pods"]["singularName"] == "pod" and "watch" in by_name["pods"]["verbs"]
    assert by_name["pods/status"]["verbs"] == ["get", "patch", "update"]
    assert not by_name["namespaces"]["namespaced"] and "deletecollection" not in by_name["namespaces"]["verbs"]
    groups = {g["name"]: g for g in raw(kube_api, "GET", "/apis")[1]["groups"]}
    assert groups["apps"]["preferredVersion"] == {"groupVersion": "apps/v1", "version": "v1"}
    for group in ("storage.k8s.io", "rbac.authorization.k8s.io", "apiextensions.k8s.io", "coordination.k8s.io",
                  "batch"):
        assert group in groups
    apps = raw(kube_api, "GET", "/apis/apps/v1")[1]
    assert {"deployments", "statefulsets", "daemonsets", "replicasets", "deployments/status"} <= {
        r["name"] for r in apps["resources"]}


def test_dynamic_client_discovers_builtins(kube_api: KubeApi) -> None:
    dyn = dynamic.DynamicClient(kube_api.api_client())  # its default cache file; the fixture removes it
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    assert deployments.namespaced and "status" in deployments.subresources
    created = deployments.create(namespace="default", body={
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": {}}})
    assert created.metadata.generation == 1
    assert [d.metadata.name for d in deployments.get(namespace="default").items] == ["web"]
    roles = dyn.resources.get(api_version="rbac.authorization.k8s.io/v1", kind="ClusterRole")
    assert not roles.namespaced
    roles.create(body={"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                       "metadata": {"name": "system:kbrowse"}, "rules": []})


def test_unknown_paths_and_missing_credentials(kube_api: KubeApi) -> None:
    for path in ("/apis/nope.io/v1", "/apis/nope.io/v1/things", "/api/v1/widgets", "/foo"):
        code, body = raw(kube_api, "GET", path)
        assert code == 404, path
        assert body["kind"] == "Status" and body["reason"] == "NotFound" and body["code"] == 404
    code, body = raw(kube_api, "GET", "/api/v1/namespaces", token=None)
    assert (code, body["reason"]) == (401, "Unauthorized")
    assert raw(kube_api, "GET", "/version", token=None)[0] == 200


# CustomResourceDefinitions


def test_crd_becomes_served_established_and_discoverable(kube_api: KubeApi, tmp_path: Path) -> None:
    api_client = kube_api.api_client()
    dyn = dynamic.DynamicClient(api_client, cache_file=str(tmp_path / "discovery.json"))  # discovers before the CRD
    extensions = client.ApiextensionsV1Api(api_client)
    crd = extensions.create_custom_resource_definition(backup_crd())
    conditions = {c.type: c.status for c in crd.status.conditions}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}
    assert crd.status.stored_versions == ["v1"] and crd.spec.names.list_kind == "BackupList"

    resources = {r["name"]: r for r in raw(kube_api, "GET", "/apis/velero.io/v1")[1]["resources"]}
    assert resources["backups"]["shortNames"] == ["bk"] and "backups/status" in resources
    backups = dyn.resources.get(api_version="velero.io/v1", kind="Backup")  # the lazy discoverer refreshes
    created = backups.create(namespace="default", body=backup("b1"))
    assert created.metadata.name == "b1"

    extensions.delete_custom_resource_definition("backups.velero.io")
    with pytest.raises(ApiException) as excinfo:
        client.CustomObjectsApi(api_client).list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)
    assert excinfo.value.status == 404
    assert "velero.io" not in {g["name"] for g in raw(kube_api, "GET", "/apis")[1]["groups"]}


def test_cluster_scoped_crd_and_schema_pruning_defaults_validation(kube_api: KubeApi) -> None:
    api_client = kube_api.api_client()
    client.ApiextensionsV1Api(api_client).create_custom_resource_definition(backup_crd(scope="Cluster"))
    custom = client.CustomObjectsApi(api_client)
    created = custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, backup("b1", unknownField=1, retries=2))
    assert created["spec"] == {"retries": 2, "ttl": "720h0m0s"}  # unknown field pruned, default applied
    assert "namespace" not in created["metadata"]
    with pytest.raises(ApiException) as excinfo:
        custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, backup("b2", retries="two", mode="Odd"))
    body = error_body(excinfo)
    assert (excinfo.value.status, body["reason"]) == (422, "Invalid")
    assert {c["field"] for c in body["details"]["causes"]} == {"spec.retries", "spec.mode"}


def test_crd_without_schema_or_with_bad_name_is_invalid(kube_api: KubeApi) -> None:
    extensions = client.ApiextensionsV1Api(kube_api.api_client())
    crd = backup_crd()
    crd["metadata"]["name"] = "wrong.velero.io"
    del crd["spec"]["versions"][0]["schema"]
    with pytest.raises(ApiException) as excinfo:
        extensions.create_custom_resource_definition(crd)
    causes = {c["field"] for c in error_body(excinfo)["details"]["causes"]}
    assert excinfo.value.status == 422
    assert causes == {"metadata.name", "spec.versions[0].schema.openAPIV3Schema"}


# CRUD and metadata


def test_create_fills_metadata_and_resource_versions_increase(kube_api: KubeApi, core: client.CoreV1Api) -> None:
    first = core.create_namespaced_config_map("default", configmap("a"))
    second = core.create_namespace({"metadata": {"name": "other"}})
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", first.metadata.uid)
    assert int(second.metadata.resource_version) > int(first.metadata.resource_version)
    assert first.metadata.generation == 1
    assert second.status.phase == "Active" and second.metadata.labels["kubernetes.io/metadata.name"] == "other"
    stored = raw(kube_api, "GET", "/api/v1/namespaces/default/configmaps/a")[1]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stored["metadata"]["creationTimestamp"])


def test_list_across_namespaces_and_typed_list_shape(kube_api: KubeApi, core: client.CoreV1Api) -> None:
    core.create_namespace({"metadata": {"name": "other"}})
    core.create_namespaced_config_map("default", configmap("a"))
    core.create_namespaced_config_map("other", configmap("b"))
    assert [(c.metadata.namespace, c.metadata.name) for c in core.list_config_map_for_all_namespaces().items] == [
        ("default", "a"), ("other", "b")]
    code, listing = raw(kube_api, "GET", "/api/v1/namespaces/other/configmaps")
    assert listing["kind"] == "ConfigMapList" and listing["apiVersion"] == "v1"
    assert int(listing["metadata"]["resourceVersion"]) > 0
    assert "kind" not in listing["items"][0]  # typed lists carry no per-item kind


def test_create_errors(core: client.CoreV1Api, kube_api: KubeApi) -> None:
    with pytest.raises(ApiException) as excinfo:
        core.create_namespaced_config_map("missing", configmap("a"))
    assert excinfo.value.status == 404
    assert error_body(excinfo)["details"] == {"name": "missing", "kind": "namespaces"}

    core.create_namespaced_config_map("default", configmap("a"))
    with pytest.raises(ApiException) as excinfo:
        core.create_namespaced_config_map("default", configmap("a"))
    body = error_body(excinfo)
    assert (excinfo.value.status, body["reason"], body["message"]) == (
        409, "AlreadyExists", 'configmaps "a" already exists')

    with pytest.raises(ApiException) as excinfo:
        core.create_namespaced_config_map("default", configmap("Bad_Name"))
    body = error_body(excinfo)
    assert (excinfo.value.status, body["reason"]) == (422, "Invalid")
    assert body["message"].startswith('ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value')
    assert body["details"]["causes"][0]["field"] == "metadata.name"

    with pytest.raises(ApiException) as excinfo:
        core.create_namespaced_config_map("default", {"data": {}})
    assert error_body(excinfo)["details"]["causes"][0]["reason"] == "FieldValueRequired"

    with pytest.raises(ApiException) as excinfo:
        core.create_namespaced_config_map("default", {**configmap("c"), "apiVersion": "v2"})
    assert excinfo.value.status == 400

    # A copied object (e.g. from a backup) must be stripped of resourceVersion before create.
    with pytest.raises(ApiException) as excinfo:
        core.create_namespaced_config_map("default", configmap("d", resourceVersion="5"))
    assert excinfo.value.status == 500

    code, body = raw(kube_api, "POST", "/api/v1/namespaces/default/configmaps", {**configmap("e"), "kind": "Pod"})
    assert code == 400


def test_secret_string_data_is_folded_into_data(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_secret("default", {"metadata": {"name": "creds"}, "stringData": {"key": "s3cr3t"}})
    assert created.data == {"key": "czNjcjN0"} and created.string_data is None and created.type == "Opaque"
    with pytest.raises(ApiException) as excinfo:
        core.create_namespaced_secret("default", {"metadata": {"name": "bad"}, "data": {"key": "not base64!"}})
    assert excinfo.value.status == 400


def test_update_name_must_match_url(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_config_map("default", configmap("a"))
    created.metadata.name = "b"
    with pytest.raises(ApiException) as excinfo:
        core.replace_namespaced_config_map("a", "default", created)
    assert excinfo.value.status == 400


def test_custom_resource_kind_mismatch_is_invalid(custom: client.CustomObjectsApi) -> None:
    with pytest.raises(ApiException) as excinfo:
        custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, {**backup("b"), "kind": "Restore"})
    body = error_body(excinfo)
    assert (excinfo.value.status, body["details"]["causes"][0]["field"]) == (422, "kind")
    with pytest.raises(ApiException) as excinfo:  # unstructured bodies must say what they are
        custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, {"metadata": {"name": "b"}})
    assert excinfo.value.status == 400


def test_generate_name(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_config_map("default", {"metadata": {"generateName": "backup-"}})
    assert re.fullmatch(r"backup-[a-z0-9]{5}", created.metadata.name)
    again = core.create_namespaced_config_map("default", {"metadata": {"generateName": "backup-"}})
    assert again.metadata.name != created.metadata.name


def test_stale_update_conflicts_and_unconditional_update_wins(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_config_map("default", configmap("a"))
    created.data = {"k": "first"}
    updated = core.replace_namespaced_config_map("a", "default", created)
    assert int(updated.metadata.resource_version) > int(created.metadata.resource_version)
    created.data = {"k": "stale"}
    with pytest.raises(ApiException) as excinfo:
        core.replace_namespaced_config_map("a", "default", created)
    body = error_body(excinfo)
    assert (excinfo.value.status, body["reason"]) == (409, "Conflict")
    assert body["message"].startswith('Operation cannot be fulfilled on configmaps "a"')
    created.metadata.resource_version = None
    assert core.replace_namespaced_config_map("a", "default", created).data == {"k": "stale"}


def test_noop_update_keeps_resource_version(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_config_map("default", configmap("a"))
    again = core.replace_namespaced_config_map("a", "default", created)
    assert again.metadata.resource_version == created.metadata.resource_version


def test_generation_follows_spec_only(custom: client.CustomObjectsApi) -> None:
    created = custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, backup("b", retries=1))
    labelled = custom.patch_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "b",
                                                     {"metadata": {"labels": {"a": "b"}}}, _content_type=MERGE)
    assert labelled["metadata"]["generation"] == created["metadata"]["generation"] == 1
    changed = custom.patch_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "b",
                                                    {"spec": {"retries": 2}}, _content_type=MERGE)
    assert changed["metadata"]["generation"] == 2


# Status subresource


def test_status_subresource_on_builtin(kube_api: KubeApi) -> None:
    apps = client.AppsV1Api(kube_api.api_client())
    body = {"metadata": {"name": "web"}, "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}},
                                                  "template": {}}, "status": {"replicas": 7}}
    created = apps.create_namespaced_deployment("default", body)
    assert not created.status.replicas  # status is dropped on create
    status = apps.patch_namespaced_deployment_status(
        "web", "default", {"spec": {"replicas": 5}, "status": {"readyReplicas": 1}}, _content_type=MERGE)
    assert status.status.ready_replicas == 1 and status.spec.replicas == 1  # spec ignored through /status
    main = apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 3}, "status": {"readyReplicas": 9}},
                                            _content_type=MERGE)
    assert main.spec.replicas == 3 and main.status.ready_replicas == 1  # status ignored through the main resource
    assert main.metadata.generation == 2
    read = apps.read_namespaced_deployment_status("web", "default")
    read.status.ready_replicas = 2
    assert apps.replace_namespaced_deployment_status("web", "default", read).status.ready_replicas == 2


def test_status_subresource_on_custom_resources(kube_api: KubeApi) -> None:
    api_client = kube_api.api_client()
    extensions = client.ApiextensionsV1Api(api_client)
    extensions.create_custom_resource_definition(backup_crd())
    extensions.create_custom_resource_definition(backup_crd(status=False, plural="restores", kind="Restore"))
    custom = client.CustomObjectsApi(api_client)

    created = custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL,
                                                     {**backup("b"), "status": {"phase": "Done"}})
    assert "status" not in created
    patched = custom.patch_namespaced_custom_object_status(GROUP, VERSION, "default", PLURAL, "b", {
        "spec": {"retries": 9}, "status": {"phase": "InProgress"}}, _content_type=MERGE)
    assert patched["status"] == {"phase": "InProgress"} and "retries" not in patched["spec"]
    replaced = custom.replace_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "b",
                                                       {**patched, "status": {"phase": "Failed"}})
    assert replaced["status"] == {"phase": "InProgress"}

    restore = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Restore", "metadata": {"name": "r"},
               "status": {"phase": "New"}}
    created = custom.create_namespaced_custom_object(GROUP, VERSION, "default", "restores", restore)
    assert created["status"] == {"phase": "New"}  # without the subresource, status is ordinary content
    with pytest.raises(ApiException) as excinfo:
        custom.get_namespaced_custom_object_status(GROUP, VERSION, "default", "restores", "r")
    assert excinfo.value.status == 404


# Patch


def test_merge_json_and_strategic_patches(kube_api: KubeApi, core: client.CoreV1Api, custom: client.CustomObjectsApi,
                                          tmp_path: Path) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "a"}, "data": {"x": "1", "y": "2"}})
    merged = core.patch_namespaced_config_map("a", "default", {"data": {"x": None, "z": "3"}}, _content_type=MERGE)
    assert merged.data == {"y": "2", "z": "3"}
    # A list body is sent as a JSON patch by the client.
    patched = core.patch_namespaced_config_map("a", "default", [{"op": "replace", "path": "/data/y", "value": "9"},
                                                                {"op": "add", "path": "/data/w", "value": "0"}])
    assert patched.data == {"y": "9", "z": "3", "w": "0"}
    strategic = core.patch_namespaced_config_map("a", "default", {"data": {"w": None}},
                                                 _content_type="application/strategic-merge-patch+json")
    assert strategic.data == {"y": "9", "z": "3"}

    with pytest.raises(ApiException) as excinfo:  # a failing "test" op
        core.patch_namespaced_config_map("a", "default", [{"op": "test", "path": "/data/y", "value": "0"}])
    assert excinfo.value.status == 422
    # Without _content_type the client sends a dict body as a strategic merge patch.
    assert core.patch_namespaced_config_map("a", "default", {"data": {"y": "1"}}).data == {"y": "1", "z": "3"}

    custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, backup("b"))
    # CustomObjectsApi sends every body as a merge patch: a dict works, a JSON patch list needs _content_type.
    merged = custom.patch_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "b", {"spec": {"retries": 1}})
    assert merged["spec"]["retries"] == 1
    with pytest.raises(ApiException) as excinfo:
        custom.patch_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "b", [
            {"op": "add", "path": "/spec/storageLocation", "value": "default"}])
    assert excinfo.value.status == 422
    # The dynamic client defaults to strategic merge patch, which custom resources refuse, as on a real server.
    dyn = dynamic.DynamicClient(kube_api.api_client(), cache_file=str(tmp_path / "discovery.json"))
    backups = dyn.resources.get(api_version=f"{GROUP}/{VERSION}", kind="Backup")
    with pytest.raises(ApiException) as excinfo:
        backups.patch(name="b", namespace="default", body={"spec": {}})
    assert (excinfo.value.status, error_body(excinfo)["reason"]) == (415, "UnsupportedMediaType")
    assert backups.patch(name="b", namespace="default", body={"spec": {"retries": 2}},
                         content_type=MERGE).spec.retries == 2
    code, body = raw(kube_api, "PATCH", "/apis/velero.io/v1/namespaces/default/backups/b", {"spec": {}},
                     content_type="application/json-patch+json")
    assert code == 400  # a JSON patch must be a list
    with pytest.raises(ApiException) as excinfo:
        custom.patch_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "b", {"spec": {}},
                                              _content_type="application/apply-patch+yaml")
    assert excinfo.value.status == 415
    jsonpatched = custom.patch_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "b", [
        {"op": "add", "path": "/spec/storageLocation", "value": "default"}],
        _content_type="application/json-patch+json")
    assert jsonpatched["spec"]["storageLocation"] == "default"


def test_patch_with_stale_resource_version_conflicts(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_config_map("default", configmap("a"))
    core.patch_namespaced_config_map("a", "default", {"data": {"k": "2"}}, _content_type=MERGE)
    with pytest.raises(ApiException) as excinfo:
        core.patch_namespaced_config_map("a", "default", {"metadata": {"resourceVersion":
                                                                       created.metadata.resource_version}},
                                         _content_type=MERGE)
    assert excinfo.value.status == 409


# Selectors and pagination


def test_label_selectors(core: client.CoreV1Api) -> None:
    for name, labels in (("a", {"app": "web", "tier": "front"}), ("b", {"app": "db"}), ("c", {"tier": "back"})):
        core.create_namespaced_config_map("default", configmap(name, labels))

    def names(selector: str) -> list[str]:
        return [c.metadata.name for c in core.list_namespaced_config_map("default", label_selector=selector).items]

    assert names("app=web") == ["a"]
    assert names("app==db") == ["b"]
    assert names("app!=web") == ["b", "c"]
    assert names("app in (web, db)") == ["a", "b"]
    assert names("app notin (web)") == ["b", "c"]
    assert names("tier") == ["a", "c"]
    assert names("!tier") == ["b"]
    assert names("app=web,tier=front") == ["a"]
    with pytest.raises(ApiException) as excinfo:
        names("app in (web")
    assert excinfo.value.status == 400


def test_field_selectors(core: client.CoreV1Api) -> None:
    core.create_namespace({"metadata": {"name": "other"}})
    core.create_namespaced_pod("default", {"metadata": {"name": "p1"}, "spec": {"nodeName": "n1", "containers": []}})
    core.create_namespaced_pod("other", {"metadata": {"name": "p2"}, "spec": {"nodeName": "n2", "containers": []}})
    core.patch_namespaced_pod_status("p2", "other", {"status": {"phase": "Running"}}, _content_type=MERGE)

    def names(selector: str) -> list[str]:
        return [p.metadata.name for p in core.list_pod_for_all_namespaces(field_selector=selector).items]

    assert names("metadata.name=p1") == ["p1"]
    assert names("metadata.namespace==other") == ["p2"]
    assert names("spec.nodeName!=n1") == ["p2"]
    assert names("status.phase=Pending") == ["p1"]
    assert names("status.phase=Running,spec.nodeName=n2") == ["p2"]
    with pytest.raises(ApiException) as excinfo:  # only the fields the server indexes for the kind
        core.list_namespaced_config_map("default", field_selector="data.k=v")
    assert excinfo.value.status == 400


def test_pagination_is_a_consistent_snapshot(core: client.CoreV1Api) -> None:
    for index in range(5):
        core.create_namespaced_config_map("default", configmap(f"cm-{index}"))
    page = core.list_namespaced_config_map("default", limit=2)
    assert [c.metadata.name for c in page.items] == ["cm-0", "cm-1"]
    assert page.metadata.remaining_item_count == 3
    core.create_namespaced_config_map("default", configmap("cm-2a"))  # after the snapshot: not in later pages
    core.delete_namespaced_config_map("cm-3", "default")  # deleted after the snapshot: still listed
    seen = [c.metadata.name for c in page.items]
    while page.metadata._continue:
        page = core.list_namespaced_config_map("default", limit=2, _continue=page.metadata._continue)
        seen += [c.metadata.name for c in page.items]
    assert seen == ["cm-0", "cm-1", "cm-2", "cm-3", "cm-4"]


# Watch


def test_watch_sends_existing_objects_then_changes(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", configmap("old"))

    def changes() -> None:
        core.create_namespaced_config_map("default", configmap("new"))
        core.patch_namespaced_config_map("new", "default", {"data": {"k": "2"}}, _content_type=MERGE)
        core.delete_namespaced_config_map("new", "default")

    watcher = watch.Watch()
    seen = events(watcher.stream(core.list_namespaced_config_map, "default", timeout_seconds=5), watcher, 4,
                  then=changes)
    assert seen == [("ADDED", "old"), ("ADDED", "new"), ("MODIFIED", "new"), ("DELETED", "new")]


def test_watch_resumes_from_resource_version(core: client.CoreV1Api) -> None:
    start = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map("default", configmap("a"))
    core.create_namespaced_config_map("default", configmap("b"))
    watcher = watch.Watch()
    stream = watcher.stream(core.list_namespaced_config_map, "default", resource_version=start, timeout_seconds=5)
    assert events(stream, watcher, 2) == [("ADDED", "a"), ("ADDED", "b")]


def test_watch_timeout_ends_the_stream(core: client.CoreV1Api) -> None:
    started = time.monotonic()
    assert list(watch.Watch().stream(core.list_namespaced_config_map, "default", resource_version="1",
                                     timeout_seconds=1)) == []
    assert 0.9 < time.monotonic() - started < 3


def test_watch_from_a_compacted_resource_version_is_gone(tmp_path: Path) -> None:
    with KubeApiServer(history_limit=3) as server:
        api_client = config.new_client_from_config(config_file=str(write_kubeconfig(tmp_path / "kc", server.url)))
        core = client.CoreV1Api(api_client)
        for index in range(5):
            core.create_namespaced_config_map("default", configmap(f"cm-{index}"))
        stream = watch.Watch().stream(core.list_namespaced_config_map, "default", resource_version="1")
        with pytest.raises(ApiException) as excinfo:
            next(stream)
        assert excinfo.value.status == 410
        with pytest.raises(ApiException) as excinfo:
            core.list_namespaced_config_map("default", resource_version="1", resource_version_match="Exact")
        assert excinfo.value.status == 410
        api_client.close()
        assert server.internal_errors == []


def test_watch_with_selector_sees_objects_enter_and_leave(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", configmap("a", {"app": "web"}))

    def relabel() -> None:
        core.patch_namespaced_config_map("a", "default", {"metadata": {"labels": {"app": "db"}}}, _content_type=MERGE)
        core.patch_namespaced_config_map("a", "default", {"metadata": {"labels": {"app": "web"}}}, _content_type=MERGE)

    watcher = watch.Watch()
    stream = watcher.stream(core.list_namespaced_config_map, "default", label_selector="app=web", timeout_seconds=5)
    assert events(stream, watcher, 3, then=relabel) == [("ADDED", "a"), ("DELETED", "a"), ("ADDED", "a")]


def test_watch_custom_objects(custom: client.CustomObjectsApi) -> None:
    def changes() -> None:
        custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, backup("b"))
        custom.patch_namespaced_custom_object_status(GROUP, VERSION, "default", PLURAL, "b",
                                                     {"status": {"phase": "Completed"}}, _content_type=MERGE)

    # From a resourceVersion: the watch sees the changes however late it starts.
    start = custom.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)["metadata"]["resourceVersion"]
    thread = in_thread(changes)
    watcher = watch.Watch()
    stream = watcher.stream(custom.list_namespaced_custom_object, GROUP, VERSION, "default", PLURAL,
                            resource_version=start, timeout_seconds=5)
    seen = []
    for event in stream:
        seen.append((event["type"], (event["object"].get("status") or {}).get("phase")))
        if len(seen) == 2:
            watcher.stop()
    thread.join()
    assert seen == [("ADDED", None), ("MODIFIED", "Completed")]


def test_watch_ends_when_server_stops_and_state_survives_restart(kube_api: KubeApi, core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", configmap("a"))
    seen, stopper, stopped = [], None, 0.0
    for event in watch.Watch().stream(core.list_namespaced_config_map, "default", timeout_seconds=30):
        seen.append(event["type"])
        if stopper is None:  # the watch is being served: stop the server under it
            stopper, stopped = in_thread(kube_api.server.stop), time.monotonic()
    assert seen == ["ADDED"] and time.monotonic() - stopped < 15  # well before the watch's timeout
    stopper.join()
    with pytest.raises(Exception):  # noqa: B017 - urllib3 gives up with its own connection error
        core.list_namespaced_config_map("default", _request_timeout=1)
    kube_api.server.start()
    assert [c.metadata.name for c in core.list_namespaced_config_map("default").items] == ["a"]


def test_stop_lets_a_watch_finish_the_answer_it_is_writing(kube_api: KubeApi, core: client.CoreV1Api) -> None:
    # More than the sockets buffer: when stop() comes, the server is still writing this batch.
    big = "x" * 1_000_000
    for i in range(24):
        core.create_namespaced_config_map("default", {**configmap(f"m{i:03}"), "data": {"k": big}})
    seen, stopper = [], None
    for event in watch.Watch().stream(core.list_namespaced_config_map, "default", timeout_seconds=30):
        seen.append(event["object"].metadata.name)
        if stopper is None:
            stopper = in_thread(kube_api.server.stop)
    stopper.join()
    assert seen == [f"m{i:03}" for i in range(24)]


# Deletion


def test_delete_answers(kube_api: KubeApi, core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", configmap("a"))
    status = core.delete_namespaced_config_map("a", "default")
    assert (status.status, status.details.name, status.details.kind) == ("Success", "a", "configmaps")
    core.create_namespaced_pod("default", {"metadata": {"name": "p"}, "spec": {"containers": []}})
    code, pod = raw(kube_api, "DELETE", "/api/v1/namespaces/default/pods/p")
    assert (code, pod["kind"]) == (200, "Pod")  # pods answer with the deleted object
    with pytest.raises(ApiException) as excinfo:
        core.delete_namespaced_config_map("a", "default")
    assert (excinfo.value.status, error_body(excinfo)["details"]) == (404, {"name": "a", "kind": "configmaps"})


def test_delete_collection(core: client.CoreV1Api) -> None:
    for name, app in (("a", "x"), ("b", "x"), ("c", "y")):
        core.create_namespaced_config_map("default", configmap(name, {"app": app}))
    core.delete_collection_namespaced_config_map("default", label_selector="app=x")
    assert [c.metadata.name for c in core.list_namespaced_config_map("default").items] == ["c"]


def test_finalizers_hold_deletion(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", configmap("a", finalizers=["kbrowse.io/hold"]))
    watcher = watch.Watch()
    start = core.list_namespaced_config_map("default").metadata.resource_version
    core.delete_namespaced_config_map("a", "default")
    held = core.read_namespaced_config_map("a", "default")
    assert held.metadata.deletion_timestamp is not None and held.metadata.deletion_grace_period_seconds == 0
    with pytest.raises(ApiException) as excinfo:  # no new finalizers once deletion started
        core.patch_namespaced_config_map("a", "default", {"metadata": {"finalizers": ["x", "kbrowse.io/hold"]}},
                                         _content_type=MERGE)
    assert excinfo.value.status == 422
    core.patch_namespaced_config_map("a", "default", {"metadata": {"finalizers": None}}, _content_type=MERGE)
    with pytest.raises(ApiException) as excinfo:
        core.read_namespaced_config_map("a", "default")
    assert excinfo.value.status == 404
    stream = watcher.stream(core.list_namespaced_config_map, "default", resource_version=start, timeout_seconds=5)
    assert events(stream, watcher, 2) == [("MODIFIED", "a"), ("DELETED", "a")]


def test_owner_references_cascade(core: client.CoreV1Api, custom: client.CustomObjectsApi) -> None:
    owner = custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, backup("b"))
    other = core.create_namespaced_config_map("default", configmap("other-owner"))

    def ref(obj: Any, kind: str, name: str) -> dict[str, Any]:
        uid = obj["metadata"]["uid"] if isinstance(obj, dict) else obj.metadata.uid
        return {"apiVersion": "v1", "kind": kind, "name": name, "uid": uid}

    core.create_namespaced_config_map("default", configmap("only", ownerReferences=[ref(owner, "Backup", "b")]))
    core.create_namespaced_config_map("default", configmap("shared", ownerReferences=[
        ref(owner, "Backup", "b"), ref(other, "ConfigMap", "other-owner")]))
    custom.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "b")
    remaining = {c.metadata.name: c for c in core.list_namespaced_config_map("default").items}
    assert set(remaining) == {"other-owner", "shared"}
    assert [r.name for r in remaining["shared"].metadata.owner_references] == ["other-owner"]

    core.create_namespaced_config_map("default", configmap("orphan", ownerReferences=[
        ref(other, "ConfigMap", "other-owner")]))
    core.delete_namespaced_config_map("other-owner", "default", propagation_policy="Orphan")
    orphan = core.read_namespaced_config_map("orphan", "default")
    assert not orphan.metadata.owner_references


def test_namespace_deletion_removes_its_content(core: client.CoreV1Api) -> None:
    core.create_namespace({"metadata": {"name": "doomed"}})
    core.create_namespaced_config_map("doomed", configmap("a"))
    core.create_namespaced_config_map("doomed", configmap("held", finalizers=["kbrowse.io/hold"]))
    core.delete_namespace("doomed")
    assert core.read_namespace("doomed").status.phase == "Terminating"  # held by the finalizer below
    with pytest.raises(ApiException) as excinfo:  # no new content while terminating
        core.create_namespaced_config_map("doomed", configmap("b"))
    assert (excinfo.value.status, error_body(excinfo)["reason"]) == (403, "Forbidden")
    assert [c.metadata.name for c in core.list_namespaced_config_map("doomed").items] == ["held"]
    core.patch_namespaced_config_map("held", "doomed", {"metadata": {"finalizers": []}}, _content_type=MERGE)
    with pytest.raises(ApiException) as excinfo:
        core.read_namespace("doomed")
    assert excinfo.value.status == 404
    with pytest.raises(ApiException) as excinfo:
        core.delete_namespace("kube-system")
    assert excinfo.value.status == 403


def test_rbac_denial_is_a_forbidden_status_for_that_user_only(kube_api: KubeApi, tmp_path: Path) -> None:
    kube_api.server.deny("jane-token", "jane", "list", "", "configmaps", "default")
    kube_api.server.deny("jane-token", "jane", "get", "", "configmaps", None)
    kube_api.server.deny("jane-token", "jane", "patch", "", "pods/status", None)
    jane = client.CoreV1Api(config.new_client_from_config(
        config_file=str(write_kubeconfig(tmp_path / "jane", kube_api.url, token="jane-token"))))
    admin = client.CoreV1Api(kube_api.api_client())
    admin.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    admin.create_namespaced_pod("default", {"metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "x", "image": "busybox"}]}})
    with pytest.raises(ApiException) as refused:
        jane.list_namespaced_config_map("default")
    body = json.loads(refused.value.body)
    assert refused.value.status == 403 and body["reason"] == "Forbidden" and body["kind"] == "Status"
    assert body["message"] == ('configmaps is forbidden: User "jane" cannot list resource "configmaps" in API group "" '
                               'in the namespace "default"')
    assert body["details"] == {"kind": "configmaps"}
    with pytest.raises(ApiException) as refused:
        jane.read_namespaced_config_map("c", "default")
    assert json.loads(refused.value.body)["details"] == {"name": "c", "kind": "configmaps"}
    assert jane.list_namespaced_config_map("kube-system").items == []  # another namespace: granted
    assert [c.metadata.name for c in admin.list_namespaced_config_map("default").items] == ["c"]  # another user
    jane.patch_namespaced_pod("p", "default", {"metadata": {"labels": {"a": "b"}}})  # the pod itself: granted
    with pytest.raises(ApiException) as refused:
        jane.patch_namespaced_pod_status("p", "default", {"status": {"phase": "Running"}})
    assert 'cannot patch resource "pods/status"' in json.loads(refused.value.body)["message"]
    kube_api.server.allow_all()
    assert [c.metadata.name for c in jane.list_namespaced_config_map("default").items] == ["c"]
