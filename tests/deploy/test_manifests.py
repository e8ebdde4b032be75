"""deploy/ YAML and JSON: every file parses; KubeRay manifests validate against the carried CRD
schema (tests/deploy/schemas/kuberay_v1.schema.json, see its $comment for where it comes from);
the Ray cluster launcher YAML passes Ray's own config validation."""

from __future__ import annotations

import copy
import json
import shlex

import jsonschema
import pytest
import yaml
from packaging.requirements import Requirement

from tests.deploy.conftest import DEPLOY, SCHEMAS

YAML_FILES = sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))
JSON_FILES = sorted(DEPLOY.rglob("*.json"))


def test_deploy_holds_the_expected_files():
    names = {p.relative_to(DEPLOY).as_posix() for p in DEPLOY.rglob("*") if p.is_file()}
    assert {
        "prometheus/prometheus.yml",
        "grafana/sweep-dashboard.json",
        "docker/Dockerfile.cpu",
        "docker/Dockerfile.cuda",
        "ray/cluster-gpu.yaml",
        "kuberay/raycluster.yaml",
        "kuberay/rayjob.yaml",
        "kuberay/rayjob-paper.yaml",
    } <= names


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.name)
def test_yaml_parses(path):
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs and all(isinstance(d, dict) for d in docs)


@pytest.mark.parametrize("path", JSON_FILES, ids=lambda p: p.name)
def test_json_parses(path):
    assert isinstance(json.loads(path.read_text()), dict)


# ---- KubeRay ---------------------------------------------------------------------------------
def validator(kind: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / "kuberay_v1.schema.json").read_text())
    root = {"$defs": schema["$defs"], "$ref": f"#/$defs/{kind}"}
    jsonschema.Draft202012Validator.check_schema(root)
    return jsonschema.Draft202012Validator(root)


def load(name: str) -> dict:
    return yaml.safe_load((DEPLOY / "kuberay" / name).read_text())


@pytest.mark.parametrize(
    "name, kind",
    [("raycluster.yaml", "RayCluster"), ("rayjob.yaml", "RayJob"), ("rayjob-paper.yaml", "RayJob")],
)
def test_kuberay_manifest_validates(name, kind):
    errors = [e.message for e in validator(kind).iter_errors(load(name))]
    assert errors == []


def broken(mutate):
    job = load("rayjob.yaml")
    mutate(job)
    return job


def drop(d: dict, key: str) -> None:
    del d[key]


def cluster_spec(job: dict) -> dict:
    return job["spec"]["rayClusterSpec"]


def worker(job: dict) -> dict:
    return cluster_spec(job)["workerGroupSpecs"][0]


def worker_container(job: dict) -> dict:
    return worker(job)["template"]["spec"]["containers"][0]


NEGATIVE = {
    "rayjob without entrypoint": lambda j: drop(j["spec"], "entrypoint"),
    "rayjob with blank entrypoint": lambda j: j["spec"].update(entrypoint="  "),
    "rayjob without cluster spec or selector": lambda j: drop(j["spec"], "rayClusterSpec"),
    "worker group without groupName": lambda j: drop(worker(j), "groupName"),
    "worker group without template": lambda j: drop(worker(j), "template"),
    "head group without template": lambda j: drop(cluster_spec(j)["headGroupSpec"], "template"),
    "no head group": lambda j: drop(cluster_spec(j), "headGroupSpec"),
    "head pod without containers": lambda j: cluster_spec(j)["headGroupSpec"]["template"][
        "spec"
    ].update(containers=[]),
    "container without name": lambda j: drop(worker_container(j), "name"),
    "misspelt container field": lambda j: worker_container(j).update(
        resource=worker_container(j).pop("resources")
    ),
    "bad gpu quantity": lambda j: worker_container(j)["resources"]["limits"].update(
        {"nvidia.com/gpu": "one"}
    ),
    "integer rayStartParams value": lambda j: worker(j)["rayStartParams"].update({"num-gpus": 1}),
    "negative minReplicas": lambda j: worker(j).update(minReplicas=-1),
    "unknown submissionMode": lambda j: j["spec"].update(submissionMode="Batch"),
    "token auth without rayVersion": lambda j: drop(cluster_spec(j), "rayVersion"),
    "token auth on a Ray older than 2.52": lambda j: cluster_spec(j).update(rayVersion="2.9.0"),
    "ttl without shutdownAfterJobFinishes": lambda j: drop(j["spec"], "shutdownAfterJobFinishes"),
    "name not a DNS-1035 label": lambda j: j["metadata"].update(name="Sweep_1"),
    "wrong apiVersion": lambda j: j.update(apiVersion="ray.io/v1alpha1"),
}


@pytest.mark.parametrize("case", sorted(NEGATIVE))
def test_invalid_rayjobs_fail_validation(case):
    # Exactly one error: the valid manifest with this one defect, caught for that defect.
    assert len(list(validator("RayJob").iter_errors(broken(NEGATIVE[case])))) == 1


def test_interactive_mode_rayjob_may_omit_the_entrypoint():
    job = broken(lambda j: drop(j["spec"], "entrypoint"))
    job["spec"]["submissionMode"] = "InteractiveMode"
    assert validator("RayJob").is_valid(job)


def test_rayjob_runs_the_raycluster_spec():
    """The two manifests describe one cluster: a change to one must be made to both."""
    assert load("rayjob.yaml")["spec"]["rayClusterSpec"] == load("raycluster.yaml")["spec"]


def test_rayjob_entrypoint_is_a_valid_launcher_command_on_the_cluster():
    from sweep.launch import build_parser, options_from_args

    argv = shlex.split(load("rayjob.yaml")["spec"]["entrypoint"])
    assert argv[:3] == ["python", "-m", "sweep.launch"]
    options = options_from_args(build_parser().parse_args(argv[3:]))  # the launcher's own checks
    assert options.address == "auto"
    assert options.space == "spectral_linf"
    assert options.storage.startswith("s3://")
    assert options.name  # a fixed name, so the run can be resumed after a head-node loss


# Where the images put data (deploy/docker: the dataset-fashion-mnist package) and the datasets
# that need no files at all; any other dataset needs --data-dir on a mounted volume.
IN_IMAGE = {"fashion_mnist": "/usr/share/datasets/fashion-mnist"}
NO_FILES = {"digits", "gaussian", "teacher"}


def entrypoint_plan(name: str):
    """The launcher's options and the space registry's plan for a RayJob's entrypoint."""
    from sweep.launch import build_parser, options_from_args
    from sweep.spaces import get_space

    argv = shlex.split(load(name)["spec"]["entrypoint"])
    options = options_from_args(build_parser().parse_args(argv[3:]))
    plan = get_space(options.space).resolve(options.scale, options.trial_overrides())
    return options, plan


def test_rayjob_runs_a_cpu_scale_space_whose_data_the_images_carry():
    from trainables.data import fashion_mnist

    assert IN_IMAGE["fashion_mnist"] == fashion_mnist.DEFAULT_DIR
    options, plan = entrypoint_plan("rayjob.yaml")
    assert options.scale == "cpu" and options.data_dir is None
    datasets = {c.dataset for c in plan.corner_configs()}
    assert datasets and datasets <= set(IN_IMAGE) | NO_FILES, datasets
    assert all(c.data_dir is None for c in plan.corner_configs())  # the loaders' default path
    assert options.resource_wait > 0  # the autoscaler starts GPU workers from zero replicas


def mounts(pod: dict) -> dict[str, dict]:
    """mountPath -> volume, for every container of a pod template spec."""
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    return {
        m["mountPath"]: volumes[m["name"]]
        for c in pod["containers"]
        for m in c.get("volumeMounts", [])
    }


def test_paper_rayjob_reads_cifar10_from_a_volume_every_ray_container_mounts():
    options, plan = entrypoint_plan("rayjob-paper.yaml")
    assert options.scale == "paper"
    datasets = {c.dataset for c in plan.corner_configs()}
    assert "cifar10" in datasets
    assert {c.data_dir for c in plan.corner_configs()} == {options.data_dir}
    spec = load("rayjob-paper.yaml")["spec"]["rayClusterSpec"]
    pods = [spec["headGroupSpec"]["template"]["spec"]] + [
        g["template"]["spec"] for g in spec["workerGroupSpecs"]
    ]
    for pod in pods:  # the head loads it in preflight, each worker in its trials
        for container in pod["containers"]:
            paths = {
                m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])
            }
            under = [p for p in paths if options.data_dir.startswith(p.rstrip("/") + "/")]
            assert under, f"{container['name']} does not mount {options.data_dir}"
            volume = mounts(pod)[under[0]]
            assert volume["persistentVolumeClaim"]["readOnly"] is True
    # apart from the volume, the cluster is rayjob.yaml's (and so raycluster.yaml's)
    stripped = copy.deepcopy(spec)
    for pod in [stripped["headGroupSpec"]["template"]["spec"]] + [
        g["template"]["spec"] for g in stripped["workerGroupSpecs"]
    ]:
        pod.pop("volumes")
        for c in pod["containers"]:
            c.pop("volumeMounts")
    assert stripped == load("rayjob.yaml")["spec"]["rayClusterSpec"]


def test_kuberay_keeps_the_dashboard_private_and_token_auth_on():
    spec = load("raycluster.yaml")["spec"]
    assert spec["authOptions"]["mode"] == "token"
    head = spec["headGroupSpec"]
    assert head.get("serviceType", "ClusterIP") == "ClusterIP"
    assert not head.get("enableIngress", False)


def test_gpu_workers_request_gpus_and_head_requests_none():
    spec = load("raycluster.yaml")["spec"]
    for group in spec["workerGroupSpecs"]:
        for c in group["template"]["spec"]["containers"]:
            # Kubernetes schedules extended resources from limits; requests must match them.
            assert int(c["resources"]["limits"]["nvidia.com/gpu"]) >= 1
            assert (
                c["resources"]["requests"]["nvidia.com/gpu"]
                == c["resources"]["limits"]["nvidia.com/gpu"]
            )
    head = spec["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in head["resources"].get("limits", {})


def test_manifests_use_the_ray_version_pyproject_pins(pyproject):
    ray_req = next(
        Requirement(d) for d in pyproject["project"]["dependencies"] if d.startswith("ray")
    )
    for name in ("raycluster.yaml", "rayjob.yaml"):
        doc = load(name)
        spec = doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"]["rayClusterSpec"]
        assert ray_req.specifier.contains(spec["rayVersion"])


# ---- Ray cluster launcher --------------------------------------------------------------------
def launcher_config() -> dict:
    return yaml.safe_load((DEPLOY / "ray" / "cluster-gpu.yaml").read_text())


def ray_validate(config: dict) -> None:
    # What `ray up` runs before it touches the cloud: fill in provider defaults, then check the
    # config against ray/autoscaler/ray-schema.json and the node-type rules.
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(copy.deepcopy(config)))


def test_cluster_launcher_yaml_passes_rays_validation():
    ray_validate(launcher_config())


def test_cluster_launcher_validation_rejects_an_unknown_head_type():
    config = launcher_config()
    config["head_node_type"] = "no-such-type"
    with pytest.raises(ValueError, match="head_node_type"):
        ray_validate(config)


def test_cluster_launcher_installs_the_project_and_keeps_auth(pyproject):
    config = launcher_config()
    assert config["provider"]["type"] == "aws"
    assert config["file_mounts"]["~/sweep"] == "."
    assert any(
        shlex.split(c)[-1] == "~/sweep" and "pip install" in c for c in config["setup_commands"]
    )
    assert any("apt-get install" in c and "dataset-fashion-mnist" in c
               for c in config["setup_commands"])  # the cpu-scale spaces' data on every node
    assert "--env RAY_AUTH_MODE=token" in config["docker"]["run_options"]
    assert "~/.ray/auth_token" in config["file_mounts"]
    head_start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start
    assert "--metrics-export-port=" in head_start
    image_version = config["docker"]["image"].split(":")[1].split("-")[0]
    ray_req = next(
        Requirement(d) for d in pyproject["project"]["dependencies"] if d.startswith("ray")
    )
    assert ray_req.specifier.contains(image_version)
    gpu_types = [
        t for name, t in config["available_node_types"].items() if name != config["head_node_type"]
    ]
    assert gpu_types and all(
        t["node_config"]["InstanceType"].startswith(("g", "p")) for t in gpu_types
    )
