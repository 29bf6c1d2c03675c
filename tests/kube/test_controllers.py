"""`mover server` against the Kubernetes API double and a real S3 server (SeaweedFS): backups,
restores, schedules, TTL, sync, failure paths, restarts, and the controller framework."""

from __future__ import annotations

import copy
import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from mover.kube.items.actions import ActionContext, Item, default_actions
from mover.kube.controllers.backup import ATTEMPT_ANNOTATION
from mover.kube.framework.client import Kube, KubeError, Obj, Resource, load_api_client
from mover.kube.framework.controller import Controller, Manager
from mover.velero.cron import CronError, parse
from mover.velero.requests import delete_backup_request
from mover.kube.resources import (
    BACKUPS,
    BSLS,
    CRDS,
    DELETE_BACKUP_REQUESTS,
    NAMESPACES,
    RESTORES,
    SCHEDULES,
    SECRETS,
)
from mover.kube.items.restore import priority, transform
from mover.kube.server import Server
from mover.kube.framework.status import patch_status
from mover.kube.storage import SecretFiles, open_location
from mover.velero.bsl import BucketView
from mover.velero.objectstore import ObjectStore
from mover.velero.tarball import ResourceRef
from tests.support.kubeapi import KubeApiServer
from tests.support.kubeapi.fixtures import KubeApi, kube_api, write_kubeconfig  # noqa: F401 - fixture
from tests.support.s3server import S3Server, free_ports
from tests.support.velero_env import (
    CONFIGMAPS,
    DEPLOYMENTS,
    NS,
    PVCS,
    PVS,
    SERVICE_ACCOUNTS,
    SERVICES,
    FakeClock,
    credentials_secret,
    fast_options,
    install,
    phase,
    running_server,
    s3_location,
    utc,
    velero_object,
    wait_for,
    wait_phase,
)

SERVER_SET = ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields")


def bucket_store(kube: Kube, name: str = "default") -> ObjectStore:
    files = SecretFiles()
    try:
        return open_location(kube, kube.get(BSLS, NS, name), files)
    finally:
        files.close()  # the S3 client read the credentials when it was made


def make_app(kube: Kube, ns: str = "shop") -> None:
    """A small application: deployment, config maps, secrets, services, a claim and its volume."""
    kube.create(NAMESPACES, None, {"metadata": {"name": ns, "labels": {"team": "web"}}})
    kube.create(DEPLOYMENTS, ns, {"metadata": {"name": "web", "labels": {"app": "web"}}, "spec": {
        "replicas": 2, "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
            "serviceAccountName": "web",
            "containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}}}})
    kube.create(SERVICE_ACCOUNTS, ns, {"metadata": {"name": "web"}})
    for name, data in (("settings", {"mode": "prod"}), ("feature-flags", {"beta": "on"})):
        kube.create(CONFIGMAPS, ns, {"metadata": {"name": name, "labels": {"app": "web"}}, "data": data})
    kube.create(CONFIGMAPS, ns, {"metadata": {"name": "scratch", "labels": {"velero.io/exclude-from-backup": "true"}},
                                 "data": {"x": "y"}})
    for name in ("db-password", "tls"):
        kube.create(SECRETS, ns, {"metadata": {"name": name}, "stringData": {"value": f"{name}-secret"}})
    kube.create(SERVICES, ns, {"metadata": {"name": "web"}, "spec": {
        "selector": {"app": "web"}, "clusterIP": "10.0.0.12", "clusterIPs": ["10.0.0.12"], "type": "NodePort",
        "ports": [{"port": 80, "targetPort": 80, "nodePort": 30080}]}})
    kube.create(SERVICES, ns, {"metadata": {"name": "web-headless"}, "spec": {
        "selector": {"app": "web"}, "clusterIP": "None", "ports": [{"port": 80}]}})
    kube.create(PVS, None, {"metadata": {"name": f"{ns}-data"}, "spec": {
        "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "persistentVolumeReclaimPolicy": "Retain",
        "hostPath": {"path": "/data"}, "claimRef": {"namespace": ns, "name": "data"}}})
    kube.create(PVCS, ns, {"metadata": {"name": "data", "annotations": {"pv.kubernetes.io/bind-completed": "yes"}},
                           "spec": {"accessModes": ["ReadWriteOnce"], "volumeName": f"{ns}-data",
                                    "resources": {"requests": {"storage": "1Gi"}}}})


APP_OBJECTS = [(DEPLOYMENTS, "web"), (SERVICE_ACCOUNTS, "web"), (CONFIGMAPS, "settings"),
               (CONFIGMAPS, "feature-flags"), (SECRETS, "db-password"), (SECRETS, "tls"), (SERVICES, "web"),
               (SERVICES, "web-headless"), (PVCS, "data")]


def comparable(obj: Obj) -> Obj:
    """An object without what a server sets, what a restore changes on purpose, and its namespace."""
    out = copy.deepcopy(obj)
    meta = out["metadata"]
    for field in SERVER_SET + ("namespace",):
        meta.pop(field, None)
    for label in ("velero.io/backup-name", "velero.io/restore-name"):
        (meta.get("labels") or {}).pop(label, None)
    if not meta.get("labels"):
        meta.pop("labels", None)
    (meta.get("annotations") or {}).pop("pv.kubernetes.io/bind-completed", None)
    if not meta.get("annotations"):
        meta.pop("annotations", None)
    spec = out.get("spec") or {}
    if out["kind"] == "PersistentVolumeClaim":
        spec.pop("volumeName", None)  # checked on its own: bound only to a volume free for it
    if out["kind"] == "Service" and spec.get("clusterIP") != "None":
        for field in ("clusterIP", "clusterIPs"):
            spec.pop(field, None)
        for port in spec.get("ports") or []:
            port.pop("nodePort", None)
    return out


def backup(kube: Kube, name: str, **spec: Any) -> Obj:
    kube.create(BACKUPS, NS, velero_object("Backup", name, spec))
    return wait_phase(kube, BACKUPS, name)


def restore(kube: Kube, name: str, **spec: Any) -> Obj:
    kube.create(RESTORES, NS, velero_object("Restore", name, spec))
    return wait_phase(kube, RESTORES, name)


def tar_names(store: ObjectStore, backup_name: str) -> set[str]:
    import io
    import tarfile

    data = store.get(f"backups/{backup_name}/{backup_name}.tar.gz")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return set(tar.getnames())


# -- the whole round trip -------------------------------------------------------------------------

def test_backup_then_restore_into_a_new_namespace(kube: Kube, location: str) -> None:
    make_app(kube)
    kube.create(NAMESPACES, None, {"metadata": {"name": "other"}})
    kube.create(CONFIGMAPS, "other", {"metadata": {"name": "unrelated"}, "data": {}})
    with running_server(kube):
        b = backup(kube, "shop-1", includedNamespaces=["shop"])
        assert phase(b) == "Completed", b["status"]
        status = b["status"]
        assert status["formatVersion"] == "1.1.0" and "errors" not in status
        assert status["progress"]["totalItems"] == status["progress"]["itemsBackedUp"] == 11
        assert b["metadata"]["labels"]["velero.io/storage-location"] == "default"
        assert b["spec"]["ttl"] == "720h0m0s"
        assert b["metadata"]["annotations"]["velero.io/source-cluster-k8s-gitversion"] == "v1.31.0"

        store = bucket_store(kube)
        keys = set(store.list(""))
        for suffix in (".tar.gz", "-logs.gz", "-results.gz", "-resource-list.json.gz", "-volumeinfo.json.gz",
                       "-podvolumebackups.json.gz", "-itemoperations.json.gz"):
            assert f"backups/shop-1/shop-1{suffix}" in keys
        assert "backups/shop-1/velero-backup.json" in keys
        assert {k.split("/")[0] for k in keys} <= {"backups", "restores", "metadata"}
        stored = json.loads(store.get("backups/shop-1/velero-backup.json"))
        assert stored["status"]["phase"] == "Completed" and stored["metadata"]["uid"] == b["metadata"]["uid"]
        names = tar_names(store, "shop-1")
        assert "metadata/version" in names
        for path in ("deployments.apps/namespaces/shop/web.json", "configmaps/namespaces/shop/settings.json",
                     "services/namespaces/shop/web.json", "persistentvolumeclaims/namespaces/shop/data.json",
                     "namespaces/cluster/shop.json", "persistentvolumes/cluster/shop-data.json"):
            group = path.split("/")[0]
            assert f"resources/{path}" in names
            version_dir = "v1-preferredversion"
            assert f"resources/{group}/{version_dir}/{path.split('/', 1)[1]}" in names
        assert not any("scratch" in n or "unrelated" in n for n in names)
        resource_list = json.loads(gzip.decompress(store.get("backups/shop-1/shop-1-resource-list.json.gz")))
        assert resource_list["apps/v1/Deployment"] == ["shop/web"]
        assert "msg=\"Backed up a total of 11 items\"" in gzip.decompress(
            store.get("backups/shop-1/shop-1-logs.gz")).decode()

        r = restore(kube, "shop-copy", backupName="shop-1", namespaceMapping={"shop": "shop-copy"})
        assert phase(r) == "Completed", r["status"]
        assert r["status"]["progress"] == {"totalItems": 11, "itemsRestored": 11}

    for res, name in APP_OBJECTS:
        original, copied = kube.get(res, "shop", name), kube.get(res, "shop-copy", name)
        assert copied["metadata"]["labels"]["velero.io/restore-name"] == "shop-copy"
        assert copied["metadata"]["labels"]["velero.io/backup-name"] == "shop-1"
        assert comparable(copied) == comparable(original), name
    web = kube.get(SERVICES, "shop-copy", "web")["spec"]
    assert "clusterIP" not in web and "nodePort" not in web["ports"][0]
    assert kube.get(SERVICES, "shop-copy", "web-headless")["spec"]["clusterIP"] == "None"
    # The original volume is still claimed by shop/data: the copy's claim gets a new volume.
    assert "volumeName" not in kube.get(PVCS, "shop-copy", "data")["spec"]
    ns = kube.get(NAMESPACES, None, "shop-copy")
    assert ns["metadata"]["labels"]["team"] == "web"
    assert kube.get_or_none(CONFIGMAPS, "shop-copy", "scratch") is None
    restore_keys = set(store.list("restores/"))
    assert restore_keys >= {"restores/shop-copy/restore-shop-copy-logs.gz",
                            "restores/shop-copy/restore-shop-copy-results.gz",
                            "restores/shop-copy/restore-shop-copy-resource-list.json.gz"}
    listed = json.loads(gzip.decompress(store.get("restores/shop-copy/restore-shop-copy-resource-list.json.gz")))
    assert "shop-copy/web(created)" in listed["apps/v1/Deployment"]
    assert "shop-data(skipped)" in listed["v1/PersistentVolume"]  # it still exists: reused, not replaced
    store.close()


# -- what a backup holds ----------------------------------------------------------------------

def tarball_objects(kube: Kube, backup_name: str) -> set[str]:
    """``resource/namespace/name`` of every object in a backup (namespace "-" if cluster-scoped)."""
    with BucketView(bucket_store(kube)) as bucket:
        return {f"{r.resource}/{r.namespace or '-'}/{r.name}" for r in bucket.contents(backup_name).refs()}


def test_backup_filters(kube: Kube, location: str) -> None:
    make_app(kube)
    make_app(kube, "blog")
    with running_server(kube):
        assert phase(backup(kube, "by-label", labelSelector={"matchLabels": {"app": "web"}})) == "Completed"
        assert phase(backup(kube, "by-or-label", includedNamespaces=["blog"], orLabelSelectors=[
            {"matchLabels": {"app": "nothing"}}, {"matchExpressions": [
                {"key": "app", "operator": "In", "values": ["web"]}]}])) == "Completed"
        assert phase(backup(kube, "only-cm", includedNamespaces=["shop"], includedResources=["cm", "deploy"],
                            excludedResources=["secrets"])) == "Completed"
        assert phase(backup(kube, "no-cluster", includedNamespaces=["shop"], includeClusterResources=False)) == \
            "Completed"
        assert phase(backup(kube, "scoped", includedNamespaces=["shop"],
                            includedNamespaceScopedResources=["configmaps"],
                            includedClusterScopedResources=["storageclasses"])) == "Completed"

    labelled = tarball_objects(kube, "by-label")
    # Labelled objects of both namespaces, their namespaces, never the excluded-by-label one.
    assert {"configmaps/shop/settings", "configmaps/blog/feature-flags", "deployments.apps/blog/web",
            "namespaces/-/shop", "namespaces/-/blog"} <= labelled
    assert not any(o.startswith(("secrets/", "services/")) or "scratch" in o for o in labelled)
    by_or = tarball_objects(kube, "by-or-label")
    assert by_or == {"configmaps/blog/settings", "configmaps/blog/feature-flags", "deployments.apps/blog/web",
                     "namespaces/-/blog"}
    assert tarball_objects(kube, "only-cm") == {"configmaps/shop/settings", "configmaps/shop/feature-flags",
                                                "deployments.apps/shop/web", "namespaces/-/shop"}
    no_cluster = tarball_objects(kube, "no-cluster")
    assert "persistentvolumeclaims/shop/data" in no_cluster and "persistentvolumes/-/shop-data" not in no_cluster
    assert tarball_objects(kube, "scoped") == {"configmaps/shop/settings", "configmaps/shop/feature-flags",
                                               "namespaces/-/shop"}


def test_all_namespace_backup_takes_cluster_resources_and_custom_resource_definitions(
        kube: Kube, location: str) -> None:
    make_app(kube)
    with running_server(kube):
        assert phase(backup(kube, "everything")) == "Completed"
    everything = tarball_objects(kube, "everything")
    assert {"persistentvolumes/-/shop-data", "namespaces/-/kube-system",
            "customresourcedefinitions.apiextensions.k8s.io/-/backups.velero.io",
            "backupstoragelocations.velero.io/velero/default"} <= everything


# -- validation and failure paths -----------------------------------------------------------------

def test_backup_validation_and_failures(kube: Kube, s3_server: S3Server, location: str) -> None:
    port = free_ports(1)[0]
    s3_location(kube, s3_server, "anything", "unreachable", endpoint=f"http://127.0.0.1:{port}", default=False)
    s3_location(kube, s3_server, "no-such-bucket-here", "missing-bucket", default=False,
                credential={"name": "cloud-credentials", "key": "cloud"})
    kube.create(NAMESPACES, None, {"metadata": {"name": "real"}})
    with running_server(kube):
        for name in ("unreachable", "missing-bucket"):
            bsl = wait_phase(kube, BSLS, name, ("Unavailable",))
            assert bsl["status"]["message"].startswith(f'BackupStorageLocation "{name}" is unavailable')
            assert bsl["status"]["lastValidationTime"]
        assert "does not exist" in kube.get(BSLS, NS, "missing-bucket")["status"]["message"]
        assert phase(wait_phase(kube, BSLS, "default", ("Available",))) == "Available"

        b = backup(kube, "to-nowhere", storageLocation="nowhere")
        assert phase(b) == "FailedValidation"
        assert "'nowhere' was not found" in b["status"]["validationErrors"][0]
        b = backup(kube, "to-unreachable", storageLocation="unreachable")
        assert phase(b) == "FailedValidation"
        assert "Unavailable status" in b["status"]["validationErrors"][0]
        b = backup(kube, "overlap", includedNamespaces=["a", "b"], excludedNamespaces=["b"],
                   labelSelector={"matchLabels": {"x": "y"}}, orLabelSelectors=[{"matchLabels": {"x": "z"}}])
        assert phase(b) == "FailedValidation"
        assert len(b["status"]["validationErrors"]) == 2
        b = backup(kube, "ghost-ns", includedNamespaces=["real", "ghost"])
        assert phase(b) == "PartiallyFailed" and b["status"]["errors"] == 1
        with BucketView(bucket_store(kube)) as bucket:
            results = bucket.results("ghost-ns")
            assert results.errors.velero == ["namespace ghost is included in the backup but does not exist"]

        r = restore(kube, "from-nothing", backupName="never-made")
        assert phase(r) == "FailedValidation" and r["status"]["validationErrors"] == ["backup never-made not found"]
        r = restore(kube, "from-failed", backupName="overlap")
        assert "only Completed or PartiallyFailed" in r["status"]["validationErrors"][0]
        r = restore(kube, "bad-policy", backupName="ghost-ns", existingResourcePolicy="replace")
        assert phase(r) == "FailedValidation" and "existingResourcePolicy" in r["status"]["validationErrors"][0]
        r = restore(kube, "ghost-restore", backupName="ghost-ns", includedNamespaces=["ghost"])
        assert phase(r) == "Completed" and r["status"]["warnings"] == 1



def test_local_location_is_validated_and_takes_backups(kube: Kube, tmp_path: Path) -> None:
    """Provider local: a directory with the bucket's layout, for single-machine use."""
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    (bad / "stray-folder").mkdir(parents=True)
    for name, directory in (("default", good), ("cluttered", bad)):
        kube.create(BSLS, NS, velero_object("BackupStorageLocation", name, {
            "provider": "local", "objectStorage": {"bucket": str(directory), "prefix": "cluster-a"},
            "default": name == "default"}))
    (bad / "cluster-a" / "junk").mkdir(parents=True)
    kube.create(NAMESPACES, None, {"metadata": {"name": "app"}})
    kube.create(CONFIGMAPS, "app", {"metadata": {"name": "cfg"}, "data": {"k": "v"}})
    with running_server(kube):
        cluttered = wait_phase(kube, BSLS, "cluttered", ("Unavailable",))
        assert "invalid top-level directories: ['junk']" in cluttered["status"]["message"]
        wait_phase(kube, BSLS, "default", ("Available",))
        assert phase(backup(kube, "local-1", includedNamespaces=["app"])) == "Completed"
    assert (good / "cluster-a" / "backups" / "local-1" / "local-1.tar.gz").is_file()
    assert sorted(p.name for p in (good / "cluster-a").iterdir()) == ["backups", "metadata"]


def test_existing_objects_under_each_policy(kube: Kube, location: str) -> None:
    make_app(kube)
    with running_server(kube):
        assert phase(backup(kube, "app", includedNamespaces=["shop"])) == "Completed"
        kube.patch(CONFIGMAPS, "shop", "settings", {"data": {"mode": "debug"}})
        kube.patch(DEPLOYMENTS, "shop", "web", {"spec": {"replicas": 5}})

        r = restore(kube, "keep", backupName="app", existingResourcePolicy="none")
        assert phase(r) == "Completed" and r["status"]["warnings"] == 2
        assert kube.get(CONFIGMAPS, "shop", "settings")["data"] == {"mode": "debug"}
        with BucketView(bucket_store(kube)) as bucket:
            warnings = bucket.store.get("restores/keep/restore-keep-results.gz")
        messages = json.loads(gzip.decompress(warnings))["warnings"]["namespaces"]["shop"]
        assert any("configmaps shop/settings already exists" in m and "different" in m for m in messages)

        r = restore(kube, "overwrite", backupName="app", existingResourcePolicy="update")
        assert phase(r) == "Completed" and "warnings" not in r["status"]
        assert kube.get(CONFIGMAPS, "shop", "settings")["data"] == {"mode": "prod"}
        web = kube.get(DEPLOYMENTS, "shop", "web")
        assert web["spec"]["replicas"] == 2
        assert web["metadata"]["labels"]["velero.io/restore-name"] == "overwrite"
        # Identical objects are neither warnings nor updates.
        r = restore(kube, "again", backupName="app")
        assert phase(r) == "Completed" and "warnings" not in r["status"]


# -- schedules, TTL and deletion -----------------------------------------------------------------

def backup_names(kube: Kube) -> set[str]:
    return {b["metadata"]["name"] for b in kube.list(BACKUPS, NS)["items"]}


def stays(check: Any, seconds: float = 0.6) -> None:
    """``check()`` holds for a while (several resync periods of the server)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert check()
        time.sleep(0.05)


def test_schedule_makes_backups_on_its_cron_and_ttl_removes_them(kube: Kube, location: str) -> None:
    clock = FakeClock(utc(2030, 1, 1, 0, 0, 30))
    kube.create(NAMESPACES, None, {"metadata": {"name": "app"}})
    kube.create(CONFIGMAPS, "app", {"metadata": {"name": "cfg"}, "data": {"k": "v"}})
    first, second = "hourly-20300101000030", "hourly-20300101010030"
    with running_server(kube, clock=clock):
        kube.create(SCHEDULES, NS, velero_object("Schedule", "hourly", {"schedule": "0 * * * *", "template": {
            "includedNamespaces": ["app"], "ttl": "90m", "metadata": {"labels": {"tier": "gold"}}}}))
        made = wait_phase(kube, BACKUPS, first, ("Completed",))  # never ran: runs at once
        assert made["metadata"]["labels"] == {"velero.io/schedule-name": "hourly", "tier": "gold",
                                              "velero.io/storage-location": "default"}
        assert made["status"]["expiration"] == "2030-01-01T01:30:30Z"
        schedule = wait_for(lambda: kube.get(SCHEDULES, NS, "hourly"),
                            lambda s: (s.get("status") or {}).get("lastBackup"), what="lastBackup")
        assert schedule["status"]["phase"] == "Enabled"
        assert schedule["status"]["lastBackup"] == "2030-01-01T00:00:30Z"

        clock.advance(minutes=29)  # 00:29:30: not due before 01:00
        stays(lambda: backup_names(kube) == {first})
        clock.advance(minutes=31)  # 01:00:30
        wait_phase(kube, BACKUPS, second, ("Completed",))

        store = bucket_store(kube)
        assert store.exists(f"backups/{first}/velero-backup.json")
        clock.advance(minutes=45)  # 01:45:30: the first backup expired at 01:30:30
        wait_for(lambda: backup_names(kube), lambda names: names == {second}, what="the expired backup to go")
        assert not list(store.list(f"backups/{first}/"))
        assert store.exists(f"backups/{second}/velero-backup.json")
        # The request was carried out and then removed: the fake clock is years past its creation.
        wait_for(lambda: kube.list(DELETE_BACKUP_REQUESTS, NS)["items"], lambda items: not items)

        kube.patch(SCHEDULES, NS, "hourly", {"spec": {"paused": True}})
        wait_for(lambda: kube.get(SCHEDULES, NS, "hourly"), lambda s: s["spec"]["paused"])
        clock.advance(hours=3)  # several runs would be due; paused, none is made; the second expires
        wait_for(lambda: backup_names(kube), lambda names: not names, what="the second backup to expire")
        stays(lambda: not backup_names(kube))
        assert not list(store.list("backups/"))

        kube.create(SCHEDULES, NS, velero_object("Schedule", "nightly", {
            "schedule": "0 3 * * *", "skipImmediately": True, "template": {"includedNamespaces": ["app"]}}))
        nightly = wait_for(lambda: kube.get(SCHEDULES, NS, "nightly"),
                           lambda s: s["spec"]["skipImmediately"] is False, what="skipImmediately to be consumed")
        assert nightly["status"]["lastSkipped"] == "2030-01-01T04:45:30Z"
        stays(lambda: not backup_names(kube))
        clock.advance(hours=1)  # 05:45:30 -> next run 03:00 tomorrow
        stays(lambda: not backup_names(kube), 0.3)

        kube.create(SCHEDULES, NS, velero_object("Schedule", "broken", {"schedule": "every day", "template": {}}))
        broken = wait_for(lambda: kube.get(SCHEDULES, NS, "broken"), lambda s: phase(s) == "FailedValidation")
        assert "expected exactly 5 fields" in broken["status"]["validationErrors"][0]


def test_delete_backup_request_removes_backup_restores_and_files(kube: Kube, location: str) -> None:
    make_app(kube)
    with running_server(kube):
        b = backup(kube, "doomed", includedNamespaces=["shop"])
        restore(kube, "from-doomed", backupName="doomed", namespaceMapping={"shop": "shop-2"})
        kube.create(DELETE_BACKUP_REQUESTS, NS, delete_backup_request(b))
        wait_for(lambda: backup_names(kube), lambda names: not names, what="the backup to be deleted")
        assert kube.get_or_none(RESTORES, NS, "from-doomed") is None
        store = bucket_store(kube)
        assert not list(store.list("backups/")) and not list(store.list("restores/"))
        kube.create(DELETE_BACKUP_REQUESTS, NS, delete_backup_request(b))
        gone = wait_for(lambda: kube.list(DELETE_BACKUP_REQUESTS, NS)["items"],
                        lambda items: any((i.get("status") or {}).get("errors") for i in items))
        assert sorted(str((i.get("status") or {}).get("errors")) for i in gone) == \
            ["None", "['backup doomed not found']"]
    assert kube.get(DEPLOYMENTS, "shop-2", "web")  # restored objects stay: only the records go


# -- disaster recovery: a new cluster, the old bucket ----------------------------------------------

def test_sync_shows_old_backups_in_a_fresh_cluster_and_restores_them(
        kube: Kube, s3_server: S3Server, location: str, tmp_path: Path) -> None:
    make_app(kube)
    apples = Resource("example.com", "v1", "apples", True, "Apple")
    kube.create(CRDS, None, {"metadata": {"name": "apples.example.com"}, "spec": {
        "group": "example.com", "scope": "Namespaced", "names": {"plural": "apples", "kind": "Apple"},
        "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
            "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}})
    kube.create(apples, "shop", {"apiVersion": "example.com/v1", "kind": "Apple", "metadata": {"name": "gala"},
                                 "spec": {"crunchy": True}})
    with running_server(kube):
        originals = {n: backup(kube, n, includedNamespaces=["shop"], ttl="24h") for n in ("dr-1", "dr-2")}
    with KubeApiServer() as fresh:
        kube2 = Kube(load_api_client(str(write_kubeconfig(tmp_path / "fresh", fresh.url))))
        install(kube2)
        s3_location(kube2, s3_server, location, credential=credentials_secret(kube2, s3_server))
        with running_server(kube2):
            synced = wait_for(lambda: kube2.list(BACKUPS, NS)["items"],
                              lambda items: len(items) == 2 and all(phase(b) == "Completed" for b in items),
                              what="the synced backups")
            for b in synced:
                original = originals[b["metadata"]["name"]]
                assert b["spec"] == original["spec"]
                assert b["status"] == original["status"]
                assert b["metadata"]["labels"]["velero.io/storage-location"] == "default"
            assert kube2.get(BSLS, NS, "default")["status"]["lastSyncedTime"]

            r = restore(kube2, "recovered", backupName="dr-1")
            assert phase(r) == "Completed", r["status"]
            for res, name in [*APP_OBJECTS, (apples, "gala")]:
                assert comparable(kube2.get(res, "shop", name)) == comparable(kube.get(res, "shop", name))
            assert kube2.get(CRDS, None, "apples.example.com")  # came along with its custom resource

            # Files gone from the bucket: the Completed backup goes from the cluster too.
            store = bucket_store(kube2)
            for key in list(store.list("backups/dr-2/")):
                store.delete(key)
            wait_for(lambda: backup_names(kube2), lambda names: names == {"dr-1"}, what="dr-2 to be unsynced")
        assert not fresh.internal_errors


# -- a server that stops in the middle --------------------------------------------------------------

class Blocker:
    """An item action that holds the backup until released, then fails as a dying process
    would: the backup must be left InProgress, with nothing uploaded."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def applies_to(self, resource: Resource) -> bool:
        return resource.qualified == "configmaps"

    def execute(self, item: Item, ctx: ActionContext) -> list[ResourceRef]:
        self.entered.set()
        self.release.wait(30)
        raise RuntimeError("the process died")


def test_server_restarted_mid_backup_resumes_it(kube: Kube, location: str) -> None:
    make_app(kube)
    blocker = Blocker()
    first = Server(kube, fast_options(backup_actions=[*default_actions(), blocker])).start()
    try:
        kube.create(BACKUPS, NS, velero_object("Backup", "interrupted", {"includedNamespaces": ["shop"]}))
        assert blocker.entered.wait(10)
        assert phase(kube.get(BACKUPS, NS, "interrupted")) == "InProgress"
        first.stop(grace=0.1)  # its worker stays stuck in the action: for the cluster, this server is gone
        with running_server(kube):
            done = wait_phase(kube, BACKUPS, "interrupted")
    finally:
        blocker.release.set()
    assert phase(done) == "Completed", done["status"]
    assert done["metadata"]["annotations"][ATTEMPT_ANNOTATION] == "2"
    assert "configmaps/shop/settings" in tarball_objects(kube, "interrupted")


def test_server_restart_never_leaves_a_backup_in_progress(kube: Kube, location: str) -> None:
    kube.create(NAMESPACES, None, {"metadata": {"name": "app"}})
    with running_server(kube):
        wait_phase(kube, BSLS, "default", ("Available",))
        uploaded = backup(kube, "uploaded", includedNamespaces=["app"])
        backup(kube, "half-uploaded", includedNamespaces=["app"])
    # Crashed after the upload, before recording it; in the middle of the upload; and one
    # that crashed too often.
    patch_status(kube, BACKUPS, NS, "uploaded", {"phase": "InProgress"})
    patch_status(kube, BACKUPS, NS, "half-uploaded", {"phase": "InProgress"})
    store = bucket_store(kube)
    store.delete("backups/half-uploaded/half-uploaded-volumeinfo.json.gz")
    kube.create(BACKUPS, NS, velero_object("Backup", "cursed", {"storageLocation": "default"},
                                           annotations={ATTEMPT_ANNOTATION: "3"}))
    patch_status(kube, BACKUPS, NS, "cursed", {"phase": "InProgress"})
    kube.create(RESTORES, NS, velero_object("Restore", "cut-short", {"backupName": "uploaded"}))
    patch_status(kube, RESTORES, NS, "cut-short", {"phase": "InProgress"})
    with running_server(kube):
        assert wait_phase(kube, BACKUPS, "uploaded")["status"] == uploaded["status"]
        redone = wait_phase(kube, BACKUPS, "half-uploaded")
        assert phase(redone) == "Completed" and redone["metadata"]["annotations"][ATTEMPT_ANNOTATION] == "2"
        assert store.exists("backups/half-uploaded/half-uploaded-volumeinfo.json.gz")
        cursed = wait_phase(kube, BACKUPS, "cursed")
        assert phase(cursed) == "Failed"
        assert "the server stopped 3 times" in cursed["status"]["failureReason"]
        cut = wait_phase(kube, RESTORES, "cut-short")
        assert phase(cut) == "Failed" and "InProgress during the server starting" in cut["status"]["failureReason"]


# -- the command ------------------------------------------------------------------------------------

def test_mover_server_command_runs_and_stops_on_sigterm(kube: Kube, kube_api: KubeApi,  # noqa: F811
                                                         location: str) -> None:
    kube.create(NAMESPACES, None, {"metadata": {"name": "app"}})
    proc = subprocess.Popen(
        [sys.executable, "-m", "mover.cli", "server", "--kubeconfig", str(kube_api.kubeconfig_path),
         "--namespace", NS, "--resync-period", "200ms", "--store-validation-frequency", "1s"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)})
    try:
        assert phase(backup(kube, "via-command", includedNamespaces=["app"])) == "Completed"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert 'msg="server stopped"' in err and "Traceback" not in err
    assert 'level=info msg="Backed up a total of 1 items" backup=velero/via-command' in err


# -- the controller framework ------------------------------------------------------------------------

class Recorder(Controller):
    """Remembers every object it was asked about; fails with a conflict the first time if told to."""

    resource = CONFIGMAPS

    def __init__(self, ctx: Any, conflicts: int = 0) -> None:
        super().__init__(ctx)
        self.seen: dict[str, int] = {}
        self.conflicts = conflicts

    def reconcile(self, name: str, obj: Obj | None) -> float | None:
        self.seen[name] = self.seen.get(name, 0) + 1
        if self.conflicts:
            self.conflicts -= 1
            raise KubeError(409, "Conflict", "the object has been modified")
        return None


def test_watches_resume_after_the_api_server_restarts(kube_api: KubeApi) -> None:  # noqa: F811
    kube = Kube(kube_api.api_client())
    manager = Manager(kube, "default", resync=60, watch_seconds=5)
    recorder = manager.add(Recorder)
    manager.start()
    try:
        kube.create(CONFIGMAPS, "default", {"metadata": {"name": "before"}})
        wait_for(lambda: recorder.seen, lambda seen: "before" in seen)
        kube_api.server.stop()
        time.sleep(0.3)
        kube_api.server.start()
        kube.create(CONFIGMAPS, "default", {"metadata": {"name": "after"}})
        wait_for(lambda: recorder.seen, lambda seen: "after" in seen, what="the change after the restart")
        assert recorder.seen["before"] == 1  # resumed from where it was: nothing replayed
    finally:
        manager.stop(grace=2)


def test_watch_relists_when_its_history_is_gone(tmp_path: Path) -> None:
    with KubeApiServer(history_limit=5) as server:
        kube = Kube(load_api_client(str(write_kubeconfig(tmp_path / "kc", server.url))))
        manager = Manager(kube, "default", resync=60, watch_seconds=5)
        recorder = manager.add(Recorder)
        manager.start()
        try:
            kube.create(CONFIGMAPS, "default", {"metadata": {"name": "first"}})
            wait_for(lambda: recorder.seen, lambda seen: "first" in seen)
            server.stop()
            configmaps = server.registry.resolve("", "v1", "configmaps")
            for i in range(10):  # more changes than the history keeps, while the watch is cut
                server.store.create(configmaps, "default", {"metadata": {"name": f"missed-{i}"}})
            server.start()
            wait_for(lambda: set(recorder.seen), lambda seen: {f"missed-{i}" for i in range(10)} <= seen,
                     what="the relist")
            assert len(manager.ctx.informers[CONFIGMAPS].names()) == 11
        finally:
            manager.stop(grace=2)
        assert not server.internal_errors


def test_conflicts_are_retried_at_once(kube_api: KubeApi) -> None:  # noqa: F811
    kube = Kube(kube_api.api_client())
    manager = Manager(kube, "default", resync=60)
    recorder = manager.add(lambda ctx: Recorder(ctx, conflicts=2))
    manager.start()
    try:
        started = time.monotonic()
        kube.create(CONFIGMAPS, "default", {"metadata": {"name": "contested"}})
        wait_for(lambda: recorder.seen.get("contested", 0), lambda n: n == 3)
        assert time.monotonic() - started < 2
    finally:
        manager.stop(grace=2)


def test_status_is_written_without_a_status_subresource(kube: Kube) -> None:
    """Velero's own CRDs have none: status then goes through the object itself."""
    crd = kube.get(CRDS, None, "backups.velero.io")
    crd["spec"]["versions"][0]["subresources"] = {}
    kube.replace(CRDS, None, crd)
    kube.create(BACKUPS, NS, velero_object("Backup", "plain", {}))
    patch_status(kube, BACKUPS, NS, "plain", {"phase": "Completed"})
    assert phase(kube.get(BACKUPS, NS, "plain")) == "Completed"
    assert BACKUPS in kube.without_status_subresource


# -- pure parts --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("expression", "after", "expected"), [
    ("*/15 * * * *", utc(2030, 1, 1, 0, 7), [utc(2030, 1, 1, 0, 15), utc(2030, 1, 1, 0, 30)]),
    ("0 3 * * mon-fri", utc(2030, 1, 4, 4), [utc(2030, 1, 7, 3), utc(2030, 1, 8, 3)]),  # Fri -> Mon
    ("30 2 1,15 * *", utc(2030, 1, 1, 2, 30), [utc(2030, 1, 15, 2, 30), utc(2030, 2, 1, 2, 30)]),
    ("0 0 29 2 *", utc(2030, 1, 1), [utc(2032, 2, 29)]),
    ("0 0 13 * 5", utc(2030, 9, 1), [utc(2030, 9, 6), utc(2030, 9, 13)]),  # day OR weekday
    ("@daily", utc(2030, 1, 1, 12), [utc(2030, 1, 2)]),
    ("@every 90m", utc(2030, 1, 1), [utc(2030, 1, 1, 1, 30), utc(2030, 1, 1, 3)]),
    ("0 12 * jan,jul sun", utc(2030, 1, 30), [utc(2030, 7, 7, 12)]),
])
def test_cron(expression: str, after: Any, expected: list[Any]) -> None:
    cron, got, when = parse(expression), [], after
    for _ in expected:
        when = cron.next_after(when)
        got.append(when)
    assert got == expected


@pytest.mark.parametrize("bad", ["* * * *", "61 * * * *", "* 24 * * *", "*/0 * * * *", "5-1 * * * *",
                                 "* * * foo *", "@every never"])
def test_cron_rejects(bad: str) -> None:
    with pytest.raises(CronError):
        parse(bad)


def test_restore_order_and_what_is_stripped() -> None:
    resources = ["services", "pods", "deployments.apps", "secrets", "namespaces", "persistentvolumes",
                 "customresourcedefinitions.apiextensions.k8s.io", "configmaps", "persistentvolumeclaims",
                 "replicasets.apps", "storageclasses.storage.k8s.io", "serviceaccounts", "clusters.cluster.x-k8s.io",
                 "apples.example.com"]
    assert sorted(resources, key=priority) == [
        "customresourcedefinitions.apiextensions.k8s.io", "namespaces", "storageclasses.storage.k8s.io",
        "persistentvolumes", "persistentvolumeclaims", "serviceaccounts", "secrets", "configmaps", "pods",
        "replicasets.apps", "services", "apples.example.com", "deployments.apps", "clusters.cluster.x-k8s.io"]
    service = {"apiVersion": "v1", "kind": "Service", "status": {"loadBalancer": {}}, "metadata": {
        "name": "web", "namespace": "a", "uid": "u", "resourceVersion": "7", "creationTimestamp": "t",
        "managedFields": [{}], "ownerReferences": [{}], "labels": {"app": "web"}},
        "spec": {"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"], "ports": [{"port": 80, "nodePort": 30000}]}}
    out = transform("services", service, namespace="b", backup="bk", restore="rs", preserve_node_ports=False)
    assert out == {"apiVersion": "v1", "kind": "Service", "metadata": {
        "name": "web", "namespace": "b", "labels": {"app": "web", "velero.io/backup-name": "bk",
                                                    "velero.io/restore-name": "rs"}},
        "spec": {"ports": [{"port": 80}]}}
    kept = transform("services", service, namespace="b", backup="bk", restore="rs", preserve_node_ports=True)
    assert kept["spec"]["ports"] == [{"port": 80, "nodePort": 30000}]
    claim = {"metadata": {"name": "c", "annotations": {"pv.kubernetes.io/bind-completed": "yes"}},
             "spec": {"volumeName": "pv-1"}}
    fresh = transform("persistentvolumeclaims", claim, namespace="b", backup="bk", restore="rs",
                      preserve_node_ports=False, claim_volume_kept=False)
    assert "volumeName" not in fresh["spec"] and not fresh["metadata"]["annotations"]
