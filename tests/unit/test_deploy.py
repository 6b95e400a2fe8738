"""deploy/: the Kubernetes manifests validate against the Kubernetes schemas
(kubernetes-validate, strict), keep the promises the README makes of them, and carry a
config this version loads; the Containerfile builds a non-root image of the package."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from escapia_ical.config import load_config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
K8S_VERSION = "1.30.0"  # a version still served by the major clouds; the schemas ship with the validator


def documents() -> dict[str, dict]:
    found = {}
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") != "Kustomization":
                found[doc["kind"]] = doc
    return found


@pytest.mark.parametrize("kind", ["ConfigMap", "Secret", "CronJob"])
def test_each_manifest_is_valid_kubernetes(kind):
    kubernetes_validate.validate(documents()[kind], K8S_VERSION, strict=True)


def test_the_validator_catches_a_broken_manifest():
    broken = copy.deepcopy(documents()["CronJob"])
    broken["spec"]["concurrencyPolicy"] = 3
    broken["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsNonRot"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_the_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((DEPLOY / "kubernetes" / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(p.name for p in MANIFESTS if p.name != "kustomization.yaml")


def test_the_cronjob_runs_one_bounded_tick_at_a_time_as_nobody():
    job = documents()["CronJob"]["spec"]
    config = yaml.safe_load(documents()["ConfigMap"]["data"]["accounts.yaml"])
    assert job["schedule"] == "*/5 * * * *" and job["concurrencyPolicy"] == "Forbid"
    assert 0 < job["startingDeadlineSeconds"] < 300
    assert config["deadline_seconds"] < job["jobTemplate"]["spec"]["activeDeadlineSeconds"] < 300
    pod = job["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    container = pod["containers"][0]
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}}
    # A read-only root: every folder the program writes is a volume of its own.
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    for folder in (config["state_dir"], "/tmp"):
        assert any(folder.startswith(path) and not m.get("readOnly") for path, m in mounts.items()), folder
    config_path = container["args"][container["args"].index("--config") + 1]
    assert mounts[str(Path(config_path).parent)]["readOnly"] is True


def test_the_configmap_is_a_config_this_version_loads(tmp_path):
    config_text = documents()["ConfigMap"]["data"]["accounts.yaml"]
    secret = documents()["Secret"]["stringData"]
    assert set(re.findall(r"\$\{(\w+)\}", config_text)) <= set(secret)  # every variable comes from the Secret
    path = tmp_path / "accounts.yaml"
    path.write_text(config_text)
    path.chmod(0o600)
    config = load_config(path, environ=secret)
    assert config.state.backend == "postgresql" and config.output.backend == "s3"
    assert config.output.bucket and config.state.dsn == secret["ESCAPIA_ICAL_STATE_DSN"]


def test_the_containerfile_builds_a_slim_non_root_image_of_the_package():
    text = (DEPLOY / "Containerfile").read_text()
    assert re.search(r"^FROM \S*python:3\.1[1-9]-slim$", text, re.M)
    assert re.search(r'pip install "\.\[postgresql,s3\]"', text)
    user = re.search(r"^USER (\d+):(\d+)$", text, re.M)
    assert user and int(user[1]) != 0
    pod = documents()["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert int(user[1]) == pod["securityContext"]["runAsUser"]
    assert '"escapia-ical"' in re.search(r"^ENTRYPOINT (.+)$", text, re.M)[1]
    for copied in re.findall(r"^COPY (.+) \S+$", text, re.M):
        for name in copied.split():
            assert (DEPLOY.parent / name).exists(), name  # the build context has what it copies
