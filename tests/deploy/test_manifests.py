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
    "name, kind", [("raycluster.yaml", "RayCluster"), ("rayjob.yaml", "RayJob")]
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
