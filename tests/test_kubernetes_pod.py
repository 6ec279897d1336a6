"""The Kubernetes route, checked offline: no cluster runs here.

``docker/kubernetes/pod_template.yaml`` is loaded the way the KubernetesExecutor and the
KubernetesPodOperator load it (the cncf.kubernetes provider's own code), the pods they would submit are
rendered for a real export task, and every rendered pod is checked against the Kubernetes API's object
model (the official client's generated models: unknown or mistyped fields do not survive a round trip)
plus the rules the API server would enforce on names, references and resource quantities. Stages hand
over through object storage, so no rendered pod may ask for a shared (ReadWriteMany) volume.
"""

from __future__ import annotations

import ast
import os
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "docker" / "kubernetes" / "pod_template.yaml"
IMAGE = "registry.example.com/ml/exportflow-airflow:0.1.0"
# volume sources that belong to one pod: nothing a second pod could mount and share
POD_LOCAL_VOLUMES = {"configMap", "secret", "emptyDir", "downwardAPI", "projected"}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def serialize(pod: Any) -> dict[str, Any]:
    from kubernetes.client import ApiClient

    return ApiClient().sanitize_for_serialization(pod)


def assert_valid_pod(manifest: dict[str, Any]) -> None:
    """What the API server would refuse: unknown/mistyped fields, bad names, dangling references, quantities."""
    from kubernetes.client import ApiClient, Configuration, V1Pod
    from kubernetes.utils import parse_quantity

    # The client's models validate required fields and enums on construction; anything they do not
    # know (a typo, a field at the wrong level, a string where an int belongs) changes the round trip.
    model = ApiClient(configuration=Configuration())._ApiClient__deserialize_model(manifest, V1Pod)
    assert serialize(model) == manifest

    spec = manifest["spec"]
    volumes = {v["name"] for v in spec.get("volumes", [])}
    assert len(volumes) == len(spec.get("volumes", [])), "volume names must be unique"
    names = [c["name"] for c in spec["containers"]]
    for container in spec["containers"]:
        assert DNS_LABEL.match(container["name"]), container["name"]
        mounts = container.get("volumeMounts", [])
        assert {m["name"] for m in mounts} <= volumes, "every volumeMount names a volume of the pod"
        assert len({m["mountPath"] for m in mounts}) == len(mounts), "mount paths must be unique"
        for env in container.get("env", []):
            assert ENV_NAME.match(env["name"]), env["name"]
            field = env.get("valueFrom", {}).get("resourceFieldRef")
            if field:
                assert field.get("containerName", container["name"]) in names
        resources = container.get("resources", {})
        for resource, request in resources.get("requests", {}).items():
            limit = resources.get("limits", {}).get(resource)
            assert limit is None or parse_quantity(request) <= parse_quantity(limit), resource
        for quantity in (*resources.get("requests", {}).values(), *resources.get("limits", {}).values()):
            parse_quantity(quantity)  # raises on a malformed quantity
    for volume in spec.get("volumes", []):
        assert DNS_LABEL.match(volume["name"]), volume["name"]


def base_container(manifest: dict[str, Any]) -> dict[str, Any]:
    (base,) = [c for c in manifest["spec"]["containers"] if c["name"] == "base"]
    return base


def assert_shares_no_disk(manifest: dict[str, Any]) -> None:
    """No PVC, no RWX, no network filesystem: every volume lives and dies with this pod."""
    for volume in manifest["spec"].get("volumes", []):
        (source,) = set(volume) - {"name"}
        assert source in POD_LOCAL_VOLUMES, f"volume {volume['name']!r} is a {source}, shared beyond the pod"
    assert "ReadWriteMany" not in repr(manifest) and "persistentVolumeClaim" not in repr(manifest)


def scratch_of(manifest: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The emptyDir the base container's TMPDIR points at, and that path."""
    base = base_container(manifest)
    tmpdir = {e["name"]: e.get("value") for e in base["env"]}["TMPDIR"]
    mounts = {m["mountPath"]: m["name"] for m in base["volumeMounts"]}
    volumes = {v["name"]: v for v in manifest["spec"]["volumes"]}
    return volumes[mounts[tmpdir]], tmpdir


# --- the template itself -------------------------------------------------------------------------


def test_template_is_a_valid_pod_with_a_base_container_sized_for_tensorflow() -> None:
    from kubernetes.utils import parse_quantity

    manifest = yaml.safe_load(TEMPLATE.read_text())
    assert (manifest["apiVersion"], manifest["kind"]) == ("v1", "Pod")
    assert_valid_pod(manifest)

    base = base_container(manifest)  # the KubernetesExecutor runs the task in the container named "base"
    requests, limits = base["resources"]["requests"], base["resources"]["limits"]
    assert parse_quantity(requests["cpu"]) >= 2 and parse_quantity(requests["memory"]) >= parse_quantity(
        "4Gi"
    )
    assert requests["memory"] == limits["memory"]  # Guaranteed memory: TF exports are not evicted mid-write
    env = {e["name"]: e for e in base["env"]}
    assert env["TF_NUM_INTRAOP_THREADS"]["valueFrom"]["resourceFieldRef"]["resource"] == "limits.cpu"
    # scratch is this pod's own emptyDir on node disk, bounded by what the pod's ephemeral-storage allows
    assert_shares_no_disk(manifest)
    scratch, _ = scratch_of(manifest)
    assert "medium" not in scratch["emptyDir"]  # not tmpfs: it would count against the memory limit
    size = parse_quantity(scratch["emptyDir"]["sizeLimit"])
    assert parse_quantity(requests["ephemeral-storage"]) <= size < parse_quantity(limits["ephemeral-storage"])
    assert manifest["spec"]["restartPolicy"] == "Never"
    assert manifest["spec"]["securityContext"]["runAsUser"] == 50000  # the image's airflow user


def test_template_scratch_and_configs_paths_match_the_compose_stack() -> None:
    """The same image runs under compose and Kubernetes: the folders its config expects must exist in both.

    Neither needs a shared folder: the config stages in the bucket, and scratch is per worker / per pod.
    """
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    template = yaml.safe_load(TEMPLATE.read_text())
    _, pod_tmpdir = scratch_of(template)
    pod_targets = {m["mountPath"] for m in base_container(template)["volumeMounts"]}
    for name in ("worker-1", "worker-2"):
        worker = compose["services"][name]
        worker_targets = {re.search(r":(/[^:]*)", v).group(1) for v in worker["volumes"]}
        assert {pod_tmpdir, "/opt/exportflow/configs"} <= worker_targets & pod_targets, name
        assert worker["environment"]["TMPDIR"] == pod_tmpdir, name
    config = yaml.safe_load((ROOT / "docker" / "configs" / "example.yaml").read_text())
    assert "staging_dir" not in config and config["staging"].startswith("gs://")


def test_a_broken_template_is_caught_by_the_validation() -> None:
    """The checks above can fail: a misplaced field, a dangling mount and a bad quantity are each caught."""
    good = yaml.safe_load(TEMPLATE.read_text())

    misplaced = yaml.safe_load(TEMPLATE.read_text())
    misplaced["spec"]["containers"][0]["resource"] = misplaced["spec"]["containers"][0].pop("resources")
    dangling = yaml.safe_load(TEMPLATE.read_text())
    dangling["spec"]["containers"][0]["volumeMounts"].append({"name": "nowhere", "mountPath": "/x"})
    bad_quantity = yaml.safe_load(TEMPLATE.read_text())
    bad_quantity["spec"]["containers"][0]["resources"]["limits"]["memory"] = "6 gigs"
    inverted = yaml.safe_load(TEMPLATE.read_text())
    inverted["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "8"
    shared = yaml.safe_load(TEMPLATE.read_text())
    shared["spec"]["volumes"].append({"name": "staging", "persistentVolumeClaim": {"claimName": "rwx"}})
    nfs = yaml.safe_load(TEMPLATE.read_text())
    nfs["spec"]["volumes"].append({"name": "staging", "nfs": {"server": "filestore", "path": "/x"}})

    assert_valid_pod(good)
    for broken in (misplaced, dangling, inverted):
        with pytest.raises(AssertionError):
            assert_valid_pod(broken)
    with pytest.raises(ValueError):
        assert_valid_pod(bad_quantity)
    assert_shares_no_disk(good)
    for broken in (shared, nfs):
        assert_valid_pod(broken)  # a valid pod, but one that needs a disk other pods share
        with pytest.raises(AssertionError, match="shared beyond the pod"):
            assert_shares_no_disk(broken)


# --- what the KubernetesExecutor would submit ----------------------------------------------------


def export_task_workload():
    """The workload the scheduler hands the executor for one mapped export task instance."""
    from airflow.executors.workloads import BundleInfo, ExecuteTask, TaskInstanceDTO

    ti = TaskInstanceDTO(
        id=uuid.uuid4(),
        task_id="export",
        dag_id="exportflow__example",
        run_id="manual__2026-11-21T00:00:00+00:00",
        try_number=1,
        dag_version_id=uuid.uuid4(),
        map_index=2,
        queue="default",
        pool_slots=1,
        priority_weight=1,
    )
    return ExecuteTask(
        token="not-a-real-token",
        dag_rel_path="exportflow_dags.py",
        bundle_info=BundleInfo(name="dags-folder", version=None),
        log_path="dag_id=exportflow__example/task_id=export/map_index=2/attempt=1.log",
        ti=ti,
    )


def test_kubernetes_executor_renders_a_valid_pod_for_an_export_task(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.providers.cncf.kubernetes.executors.kubernetes_executor_utils import (
        get_base_pod_from_template,
    )
    from airflow.providers.cncf.kubernetes.kube_config import KubeConfig
    from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator, workload_to_command_args

    monkeypatch.setenv("AIRFLOW__KUBERNETES_EXECUTOR__POD_TEMPLATE_FILE", str(TEMPLATE))
    monkeypatch.setenv("AIRFLOW__KUBERNETES_EXECUTOR__NAMESPACE", "exportflow")
    kube_config = KubeConfig()
    assert kube_config.pod_template_file == str(TEMPLATE)

    workload = export_task_workload()
    args = workload_to_command_args(workload)
    pod = PodGenerator.construct_pod(
        namespace=kube_config.kube_namespace,
        scheduler_job_id="7",
        pod_id="exportflow-example-export",
        dag_id=workload.ti.dag_id,
        task_id=workload.ti.task_id,
        kube_image=IMAGE,
        try_number=workload.ti.try_number,
        map_index=workload.ti.map_index,
        date=None,
        run_id=workload.ti.run_id,
        args=args,
        pod_override_object=None,
        base_worker_pod=get_base_pod_from_template(None, kube_config),
    )
    manifest = serialize(pod)
    assert_valid_pod(manifest)
    assert_shares_no_disk(manifest)

    template = yaml.safe_load(TEMPLATE.read_text())
    base = base_container(manifest)
    assert base["image"] == IMAGE  # the executor's image setting wins over the template's default
    assert base["args"][:3] == ["python", "-m", "airflow.sdk.execution_time.execute_workload"]
    assert base["resources"] == base_container(template)["resources"]  # TF sizing survives the merge
    assert {"name": "AIRFLOW_IS_K8S_EXECUTOR_POD", "value": "True"} in base["env"]
    assert {e["name"] for e in base_container(template)["env"]} <= {e["name"] for e in base["env"]}
    assert manifest["spec"]["volumes"] == template["spec"]["volumes"]
    labels = manifest["metadata"]["labels"]
    assert (labels["dag_id"], labels["task_id"], labels["map_index"]) == (
        "exportflow__example",
        "export",
        "2",
    )
    assert labels["app.kubernetes.io/name"] == "exportflow"
    assert manifest["metadata"]["namespace"] == "exportflow"


# --- what a KubernetesPodOperator would submit -----------------------------------------------------


def readme_pod_operator_example() -> dict[str, Any]:
    """The keyword arguments of the KubernetesPodOperator example in README's "Running at scale"."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Running at scale\n", 1)[1].split("\n## ", 1)[0]
    (block,) = [
        b
        for b in re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
        if "KubernetesPodOperator" in b
    ]
    (call,) = [node for node in ast.walk(ast.parse(block)) if isinstance(node, ast.Call)]
    assert call.func.id == "KubernetesPodOperator" and not call.args
    return {keyword.arg: ast.literal_eval(keyword.value) for keyword in call.keywords}


def test_readmes_kubernetes_pod_operator_example_runs_the_cli_in_the_image_with_the_template(
    tmp_path: Path,
) -> None:
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    from components.cli import build_parser

    # building the request asks the hook whether it runs in a cluster; a kubeconfig that points nowhere
    # answers that without any API call
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "none", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "none", "user": {"token": "none"}}],
                "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none"}}],
                "current-context": "none",
            }
        )
    )
    example = readme_pod_operator_example()
    assert (ROOT / example["pod_template_file"]).resolve() == TEMPLATE  # relative to the repository
    assert not {"volumes", "volume_mounts"} & set(example)  # the template brings all it needs
    operator = KubernetesPodOperator(
        **{**example, "pod_template_file": str(TEMPLATE)}, config_file=str(kubeconfig)
    )
    manifest = serialize(operator.build_pod_request_obj(context=None))
    assert_valid_pod(manifest)
    assert_shares_no_disk(manifest)
    assert scratch_of(manifest) == scratch_of(yaml.safe_load(TEMPLATE.read_text()))

    base = base_container(manifest)
    assert (base["image"], base["command"], base["args"]) == (
        example["image"],
        example["cmds"],
        example["arguments"],
    )
    assert build_parser().parse_args(base["args"]).command == "run"  # a command line our CLI accepts
    config_path = base["args"][base["args"].index("--config") + 1]
    configs = {m["mountPath"] for m in base["volumeMounts"]}
    assert os.path.dirname(config_path) in configs  # the config it names is in the pod (the ConfigMap)
    assert base["resources"] == base_container(yaml.safe_load(TEMPLATE.read_text()))["resources"]
    assert manifest["metadata"]["name"].startswith(example["name"])


# --- a Keras 3 model's tasks: routed to the image with the Keras runtime -------------------------

KERAS_TEMPLATE = ROOT / "docker" / "kubernetes" / "pod_template_keras.yaml"


def test_a_keras_models_tasks_render_pods_of_the_keras_image(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The model's config names the Keras pod template; the DAG gives each task that executor_config, and
    the KubernetesExecutor's own code renders a valid pod of the Keras image (no image setting overrides it)."""
    from airflow.providers.cncf.kubernetes.executors.kubernetes_executor_utils import (
        get_base_pod_from_template,
    )
    from airflow.providers.cncf.kubernetes.kube_config import KubeConfig
    from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator, workload_to_command_args

    from components.config import load_config
    from plugins.dag_factory import build_dag

    data = yaml.safe_load((ROOT / "docker" / "configs" / "example_keras.yaml").read_text())
    data["airflow"] = {**data["airflow"], "pod_template_file": str(KERAS_TEMPLATE)}
    path = tmp_path / "example_keras.yaml"
    path.write_text(yaml.safe_dump(data))
    dag = build_dag(load_config(path))
    export = dag.get_task("export")
    assert export.executor_config == {"pod_template_file": str(KERAS_TEMPLATE)}
    assert {t.queue for t in dag.tasks} == {"keras"}
    estimator = build_dag(load_config(ROOT / "docker" / "configs" / "example.yaml"))
    assert estimator.get_task("export").executor_config in ({}, None)  # the executor's default template

    monkeypatch.setenv("AIRFLOW__KUBERNETES_EXECUTOR__POD_TEMPLATE_FILE", str(TEMPLATE))
    monkeypatch.setenv("AIRFLOW__KUBERNETES_EXECUTOR__NAMESPACE", "exportflow")
    monkeypatch.delenv("AIRFLOW__KUBERNETES_EXECUTOR__WORKER_CONTAINER_REPOSITORY", raising=False)
    kube_config = KubeConfig()
    assert kube_config.kube_image is None
    workload = export_task_workload()
    pod = PodGenerator.construct_pod(
        namespace=kube_config.kube_namespace,
        scheduler_job_id="7",
        pod_id="exportflow-example-keras-export",
        dag_id="exportflow__example_keras",
        task_id="export",
        kube_image=kube_config.kube_image,
        try_number=1,
        map_index=2,
        date=None,
        run_id=workload.ti.run_id,
        args=workload_to_command_args(workload),
        pod_override_object=None,
        base_worker_pod=get_base_pod_from_template(export.executor_config["pod_template_file"], kube_config),
    )
    manifest = serialize(pod)
    assert_valid_pod(manifest)
    assert_shares_no_disk(manifest)
    base = base_container(manifest)
    assert base["image"] == "exportflow-airflow-keras:0.1.0"
    assert {"name": "EXPORTFLOW_KERAS_PYTHON", "value": "/opt/keras-venv/bin/python"} in base["env"]
    assert base["resources"] == base_container(yaml.safe_load(TEMPLATE.read_text()))["resources"]
