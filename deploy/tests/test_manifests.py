"""Checks of deploy/: the Kubernetes manifests, the KEDA variant and the Dockerfile.

Run with Debian's Python and its python3-kubernetes and python3-yaml (tools/setup installs them):

    /usr/bin/python3 -m unittest discover -s deploy/tests -p 'test_*.py'

No cluster is needed or used. Each kustomization is built the way `kubectl apply -k` builds it
for the features deploy/ uses (resources, configMapGenerator with fixed names, namespace), and
where kubectl is installed that build is compared with `kubectl kustomize`'s; every object is
then deserialized into the official Kubernetes client's model classes and serialized
back, so a field the API does not know (a typo such as `contianers`) shows up as lost. The
references between the objects (selectors, ports, names, mounted files, the job id, the RBAC
verbs against the calls the Swift backend makes) are checked by hand, since the API server
checks few of them and reports none before the pods misbehave.
"""

import copy
import json
import pathlib
import re
import shlex
import shutil
import subprocess
import unittest

import kubernetes.client
import yaml

DEPLOY = pathlib.Path(__file__).resolve().parents[1]
ROOT = DEPLOY.parent
KEDA = DEPLOY / "keda"
BACKEND_SOURCES = ROOT / "Sources" / "FlotillaController" / "Kubernetes"

NAMESPACE = "flotilla"
# The optional Secrets deploy/ mounts (created by the operator, docs/OPERATIONS.md): the variable
# that names the file flotilla reads, the Secret, and its key. flotilla goes on without a file a
# variable names but nobody made, so an absent Secret needs no help from the container.
OPTIONAL_SECRET_FILES = {
    "FLOTILLA_KAFKA_PROPERTIES_FILE": ("flotilla-kafka", "kafka.properties"),
    "FLOTILLA_HTTP_TOKEN_FILE": ("flotilla-http-token", "token"),
}
TEMPLATE_PATH = "/etc/flotilla/worker-pod.yaml"
JOB_SPEC_PATH = "/etc/flotilla/job.yaml"
EXPECTED_RBAC = {("pods", "create"), ("pods", "get"), ("pods", "list"), ("pods", "delete")}
# The labels the kubernetes backend adds to every worker pod (PodTemplate.pod in the Swift
# sources); the job and worker values are placeholders, only their keys matter to selectors.
BACKEND_WORKER_LABELS = {
    "app.kubernetes.io/name": "flotilla",
    "app.kubernetes.io/component": "worker",
    "flotilla.io/job": "flotilla-example",
    "flotilla.io/worker": "w1",
}

MODELS = {
    ("v1", "Namespace"): "V1Namespace",
    ("v1", "ServiceAccount"): "V1ServiceAccount",
    ("v1", "Service"): "V1Service",
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Pod"): "V1Pod",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("rbac.authorization.k8s.io/v1", "Role"): "V1Role",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "V1RoleBinding",
}
CLUSTER_SCOPED = {"Namespace"}
KUSTOMIZATION_KEYS = {"apiVersion", "kind", "namespace", "resources", "configMapGenerator", "generatorOptions"}


# --- loading ----------------------------------------------------------------------------------------

def load_documents(path):
    """The YAML documents of a file, empty ones left out."""
    with open(path, encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def load_one(path):
    docs = load_documents(path)
    if len(docs) != 1:
        raise AssertionError(f"{path} should hold one YAML document, not {len(docs)}")
    return docs[0]


def build(folder):
    """What `kubectl apply -k folder` would apply, for the kustomize features deploy/ uses:
    the resources, the generated ConfigMaps (fixed names), and the namespace set on every
    namespaced object. Returns (objects, kustomization); refuses features it does not model."""
    kustomization = load_one(folder / "kustomization.yaml")
    unknown = set(kustomization) - KUSTOMIZATION_KEYS
    if unknown:
        hint = ""
        if "commonLabels" in unknown:
            hint = " (commonLabels rewrites selectors, and the worker pods the controller makes would not follow)"
        elif "images" in unknown:
            hint = " (images: does not reach the worker pod template inside its ConfigMap: edit the image in both files)"
        raise AssertionError(f"{folder}/kustomization.yaml uses {sorted(unknown)}, which these tests do not model{hint}")
    objects = []
    for name in kustomization.get("resources", []):
        path = folder / name
        if not path.is_file():
            raise AssertionError(f"{folder}/kustomization.yaml lists {name}, which is not a file there")
        for doc in load_documents(path):
            objects.append((f"{path.relative_to(DEPLOY)}", doc))
    options = kustomization.get("generatorOptions") or {}
    for generator in kustomization.get("configMapGenerator", []):
        data = {}
        for literal in generator.get("literals", []):
            key, _, value = literal.partition("=")
            data[key] = value
        for file_name in generator.get("files", []):
            path = folder / file_name
            if not path.is_file():
                raise AssertionError(f"{folder}/kustomization.yaml generates from {file_name}, which is not a file there")
            data[pathlib.Path(file_name).name] = path.read_text(encoding="utf-8")
        metadata = {"name": generator["name"]}
        if options.get("labels"):
            metadata["labels"] = dict(options["labels"])
        objects.append((f"{folder.relative_to(DEPLOY.parent)}/kustomization.yaml configMapGenerator {generator['name']}",
                        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}))
    namespace = kustomization.get("namespace")
    if namespace:
        for _, obj in objects:
            if obj.get("kind") not in CLUSTER_SCOPED:
                obj.setdefault("metadata", {})["namespace"] = namespace
    return objects, kustomization


def find(objects, kind, name=None):
    found = [obj for _, obj in objects if obj.get("kind") == kind and (name is None or obj["metadata"]["name"] == name)]
    return found


def only(objects, kind, name=None):
    found = find(objects, kind, name)
    if len(found) != 1:
        raise AssertionError(f"expected one {kind}{' ' + name if name else ''}, found {len(found)}")
    return found[0]


# --- the client's models ------------------------------------------------------------------------------

class FakeResponse:
    """What ApiClient.deserialize reads: an HTTP response's body in `.data`."""

    def __init__(self, obj):
        self.data = json.dumps(obj)


API = kubernetes.client.ApiClient()


def deserialize(obj, model):
    return API.deserialize(FakeResponse(obj), model)


def lost_fields(given, returned, path=""):
    """Paths present in `given` but missing or different in `returned`: what the model dropped."""
    problems = []
    if isinstance(given, dict):
        if not isinstance(returned, dict):
            return [f"{path or '.'}: became {type(returned).__name__}"]
        for key, value in given.items():
            where = f"{path}.{key}" if path else key
            if value is None:
                continue
            if key not in returned:
                problems.append(where)
            else:
                problems += lost_fields(value, returned[key], where)
    elif isinstance(given, list):
        if not isinstance(returned, list) or len(given) != len(returned):
            return [f"{path}: list changed"]
        for index, (a, b) in enumerate(zip(given, returned)):
            problems += lost_fields(a, b, f"{path}[{index}]")
    elif given != returned:
        problems.append(f"{path}: {given!r} became {returned!r}")
    return problems


def round_trip(obj):
    """(model instance, fields the model dropped) for a Kubernetes object."""
    model = MODELS.get((obj.get("apiVersion"), obj.get("kind")))
    if model is None:
        raise AssertionError(f"no client model for {obj.get('apiVersion')} {obj.get('kind')}")
    instance = deserialize(obj, model)
    return instance, lost_fields(obj, API.sanitize_for_serialization(instance))


# --- pod specs ----------------------------------------------------------------------------------------

def containers_of(pod_spec):
    return list(pod_spec.get("initContainers") or []) + list(pod_spec.get("containers") or [])


def container(pod_spec, name):
    for c in pod_spec.get("containers") or []:
        if c.get("name") == name:
            return c
    raise AssertionError(f"no container named {name!r} (have {[c.get('name') for c in pod_spec.get('containers') or []]})")


def matches(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def flotilla_argv(c):
    """The flotilla command line a container runs: its args, given to the image's ENTRYPOINT
    (`flotilla`); a container that sets `command` runs something else."""
    if "command" in c:
        raise AssertionError(f"container {c.get('name')}: command {c['command']} replaces the image's ENTRYPOINT flotilla")
    return list(c.get("args") or [])


def option(argv, name):
    if name in argv:
        index = argv.index(name)
        if index + 1 < len(argv):
            return argv[index + 1]
    return None


def mounted_files(pod_spec, c, objects, secret_ok=True):
    """{absolute path: (kind, name, key, optional)} of every file a container sees from ConfigMap
    and Secret volumes (a whole ConfigMap mounts each of its keys)."""
    volumes = {v["name"]: v for v in pod_spec.get("volumes") or []}
    files = {}

    def add(mount_path, kind, name, items, optional):
        if items:
            for item in items:
                files[f"{mount_path}/{item['path']}"] = (kind, name, item["key"], optional)
        elif kind == "ConfigMap":
            for cm in find(objects, "ConfigMap", name):
                for key in cm.get("data") or {}:
                    files[f"{mount_path}/{key}"] = (kind, name, key, optional)
        else:
            files[f"{mount_path}/*"] = (kind, name, None, optional)

    for mount in c.get("volumeMounts") or []:
        volume = volumes.get(mount["name"])
        if volume is None:
            raise AssertionError(f"container {c['name']} mounts volume {mount['name']}, which the pod does not define")
        base = mount["mountPath"].rstrip("/")
        if "configMap" in volume:
            cm = volume["configMap"]
            add(base, "ConfigMap", cm["name"], cm.get("items"), cm.get("optional", False))
        elif "secret" in volume:
            s = volume["secret"]
            add(base, "Secret", s["secretName"], s.get("items"), s.get("optional", False))
        elif "projected" in volume:
            for source in volume["projected"]["sources"]:
                if "configMap" in source:
                    cm = source["configMap"]
                    add(base, "ConfigMap", cm["name"], cm.get("items"), cm.get("optional", False))
                elif "secret" in source:
                    s = source["secret"]
                    add(base, "Secret", s["name"], s.get("items"), s.get("optional", False))
    return files


def env_of(c):
    return {e["name"]: e for e in c.get("env") or []}


def pod_specs(objects):
    """(where, pod spec, labels) of every pod the manifests make, the worker template included."""
    specs = []
    for where, obj in objects:
        if obj.get("kind") == "Deployment":
            template = obj["spec"]["template"]
            specs.append((f"{where} {obj['metadata']['name']}", template["spec"], template["metadata"].get("labels") or {}))
        if obj.get("kind") == "ConfigMap":
            for key, text in (obj.get("data") or {}).items():
                doc = yaml.safe_load(text) if key.endswith((".yaml", ".yml")) else None
                if isinstance(doc, dict) and doc.get("kind") == "Pod":
                    specs.append((f"{where} {key}", doc["spec"], (doc.get("metadata") or {}).get("labels") or {}))
    return specs


# --- the tests ------------------------------------------------------------------------------------------

class BaseCase(unittest.TestCase):
    folder = DEPLOY

    @classmethod
    def setUpClass(cls):
        cls.objects, cls.kustomization = build(cls.folder)

    def controller(self):
        return only(self.objects, "Deployment", "flotilla-controller")

    def controller_pod(self):
        return self.controller()["spec"]["template"]["spec"]

    def job_spec(self):
        return yaml.safe_load(only(self.objects, "ConfigMap", "flotilla-job")["data"]["job.yaml"])


class EveryFileParses(unittest.TestCase):
    def test_every_yaml_file_in_deploy_parses(self):
        files = sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))
        self.assertGreaterEqual(len(files), 10, files)
        for path in files:
            with self.subTest(file=str(path.relative_to(DEPLOY))):
                docs = load_documents(path)
                self.assertTrue(docs, f"{path} is empty")
                for doc in docs:
                    self.assertIsInstance(doc, dict, f"{path}: a document is not a mapping")

    def test_embedded_files_parse(self):
        for folder in (DEPLOY, KEDA):
            objects, _ = build(folder)
            for cm in find(objects, "ConfigMap"):
                for key, text in (cm.get("data") or {}).items():
                    if key.endswith((".yaml", ".yml")):
                        with self.subTest(configmap=cm["metadata"]["name"], key=key):
                            self.assertIsInstance(yaml.safe_load(text), dict)

    def test_every_manifest_is_in_its_kustomization(self):
        for folder in (DEPLOY, KEDA):
            kustomization = load_one(folder / "kustomization.yaml")
            used = set(kustomization.get("resources", []))
            for generator in kustomization.get("configMapGenerator", []):
                used |= set(generator.get("files", []))
            present = {p.name for p in folder.glob("*.yaml")} - {"kustomization.yaml"}
            with self.subTest(folder=str(folder.relative_to(ROOT))):
                self.assertEqual(present, used, "every YAML file is a resource or a generated ConfigMap, and only those")
                self.assertEqual(kustomization.get("namespace"), NAMESPACE)
                self.assertNotIn("commonLabels", kustomization)
                # worker-pod.yaml names flotilla-job itself: kustomize cannot rewrite that name.
                self.assertTrue((kustomization.get("generatorOptions") or {}).get("disableNameSuffixHash"))


class KubectlKustomize(unittest.TestCase):
    """The build above is what kubectl's own kustomize makes (where kubectl is installed)."""

    def test_build_equals_kubectl_kustomize(self):
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            self.skipTest("kubectl is not installed: the kustomize build is not compared with kubectl's")
        for folder in (DEPLOY, KEDA):
            with self.subTest(folder=str(folder.relative_to(ROOT))):
                run = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=120)
                self.assertEqual(run.returncode, 0, run.stderr)
                real = {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(run.stdout) if o}
                objects, _ = build(folder)
                ours = {(o["kind"], o["metadata"]["name"]): o for _, o in objects}
                self.assertEqual(sorted(real), sorted(ours))
                for key, obj in real.items():
                    self.assertEqual(obj, ours[key], f"{key}: kubectl kustomize builds it differently")


class ModelsKeepEveryField(unittest.TestCase):
    """Every object deserializes into the client's model, and nothing is dropped on the way."""

    def objects(self):
        for folder in (DEPLOY, KEDA):
            objects, _ = build(folder)
            for where, obj in objects:
                yield where, obj
                if obj.get("kind") == "ConfigMap":
                    for key, text in (obj.get("data") or {}).items():
                        doc = yaml.safe_load(text) if key.endswith((".yaml", ".yml")) else None
                        if isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc:
                            yield f"{where} {key}", doc

    def test_objects_deserialize_without_losing_fields(self):
        seen = set()
        for where, obj in self.objects():
            if obj.get("kind") == "ScaledObject":
                continue  # no client model: KedaVariant checks it
            with self.subTest(object=f"{where} {obj.get('kind')} {obj.get('metadata', {}).get('name', '')}"):
                instance, lost = round_trip(obj)
                self.assertEqual(lost, [], "fields the Kubernetes API does not know (a typo?)")
                self.assertIsNotNone(instance.metadata)
                seen.add(obj["kind"])
        self.assertEqual(seen, {"Namespace", "ServiceAccount", "Role", "RoleBinding", "Deployment", "Service", "ConfigMap", "Pod"})

    def test_a_misspelt_field_is_caught(self):
        # The check above can fail: a Deployment whose pod spec says `contianers`.
        objects, _ = build(DEPLOY)
        deployment = copy.deepcopy(only(objects, "Deployment", "flotilla-controller"))
        spec = deployment["spec"]["template"]["spec"]
        spec["contianers"] = spec.pop("containers")
        with self.assertRaises(ValueError):  # containers is required: the model refuses outright
            round_trip(deployment)
        spec["containers"] = copy.deepcopy(spec["contianers"])
        _, lost = round_trip(deployment)
        self.assertIn("spec.template.spec.contianers", lost)
        pod = yaml.safe_load((DEPLOY / "worker-pod.yaml").read_text())
        pod["spec"]["containers"][0]["resources"]["limts"] = pod["spec"]["containers"][0]["resources"].pop("limits")
        _, lost = round_trip(pod)
        self.assertIn("spec.containers[0].resources.limts", lost)


class References(BaseCase):
    """deploy/: the objects agree with each other and with the backend's contract."""

    def test_deployment_selector_matches_its_pods_only(self):
        deployment = self.controller()
        selector = deployment["spec"]["selector"]["matchLabels"]
        self.assertEqual(set(deployment["spec"]["selector"]), {"matchLabels"})
        self.assertTrue(matches(selector, deployment["spec"]["template"]["metadata"]["labels"]))
        # A ReplicaSet adopts ownerless pods its selector matches: never the worker pods.
        self.assertFalse(matches(selector, BACKEND_WORKER_LABELS), "the controller's selector matches worker pods")

    def test_controller_outlasts_its_workers_drain(self):
        """On SIGTERM the controller deletes its workers with the template's grace period and
        waits up to that + 15 s for them: its own grace period must be longer."""
        template = yaml.safe_load(only(self.objects, "ConfigMap", "flotilla-worker-pod")["data"]["worker-pod.yaml"])
        worker_grace = template["spec"].get("terminationGracePeriodSeconds", 30)
        controller_grace = self.controller_pod().get("terminationGracePeriodSeconds", 30)
        self.assertGreater(controller_grace, worker_grace + 15,
                           "the kubelet kills the controller before its workers have drained")

    def test_one_controller_and_no_rolling_update(self):
        spec = self.controller()["spec"]
        self.assertEqual(spec.get("replicas"), 1)
        self.assertEqual(spec.get("strategy", {}).get("type"), "Recreate",
                         "a second controller refuses to start while the first runs: a rolling update never completes")

    def test_service_selects_the_controller_and_its_port(self):
        service = only(self.objects, "Service", "flotilla-controller")
        pod = self.controller()["spec"]["template"]
        selector = service["spec"]["selector"]
        self.assertTrue(matches(selector, pod["metadata"]["labels"]), "the Service selects no controller pod")
        self.assertFalse(matches(selector, BACKEND_WORKER_LABELS), "the Service selects worker pods too")
        ports = [p for c in pod["spec"]["containers"] for p in c.get("ports") or []]
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            if isinstance(target, str):
                self.assertIn(target, [p.get("name") for p in ports], f"targetPort {target} names no container port")
            else:
                self.assertIn(target, [p["containerPort"] for p in ports], f"targetPort {target} is no container port")

    def test_http_port_probes_and_address(self):
        c = container(self.controller_pod(), "controller")
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        self.assertEqual(ports.get("http"), 8080)
        address = option(flotilla_argv(c), "--http-address")
        self.assertEqual(address, f"0.0.0.0:{ports['http']}", "the controller must listen beyond loopback on the http port")
        for probe in ("readinessProbe", "livenessProbe"):
            get = c[probe]["httpGet"]
            self.assertEqual(get["path"], "/healthz")
            self.assertIn(get["port"], ("http", 8080))
        annotations = self.controller()["spec"]["template"]["metadata"].get("annotations") or {}
        self.assertEqual(annotations.get("prometheus.io/port"), str(ports["http"]))
        self.assertEqual(annotations.get("prometheus.io/path"), "/metrics")

    def test_service_account_and_role_binding(self):
        account = only(self.objects, "ServiceAccount")
        role = only(self.objects, "Role")
        binding = only(self.objects, "RoleBinding")
        self.assertEqual(self.controller_pod().get("serviceAccountName"), account["metadata"]["name"])
        self.assertEqual(binding["roleRef"], {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"]})
        self.assertEqual(binding["subjects"], [{"kind": "ServiceAccount", "name": account["metadata"]["name"],
                                                "namespace": account["metadata"]["namespace"]}])
        self.assertEqual(role["metadata"]["namespace"], account["metadata"]["namespace"])
        self.assertFalse(find(self.objects, "ClusterRole") or find(self.objects, "ClusterRoleBinding"))

    def test_config_maps_and_secrets_that_pods_use_exist(self):
        config_maps = {cm["metadata"]["name"]: cm.get("data") or {} for cm in find(self.objects, "ConfigMap")}
        for where, spec, _ in pod_specs(self.objects):
            for c in containers_of(spec):
                with self.subTest(pod=where, container=c["name"]):
                    for kind, name, key, optional in mounted_files(spec, c, self.objects).values():
                        if kind == "ConfigMap":
                            self.assertIn(name, config_maps, f"ConfigMap {name} is not in the kustomization")
                            if key is not None:
                                self.assertIn(key, config_maps[name], f"ConfigMap {name} has no key {key}")
                        else:
                            self.assertTrue(optional, f"Secret {name} is not optional: deploy/ ships no Secrets")
                    for e in c.get("env") or []:
                        ref = (e.get("valueFrom") or {}).get("configMapKeyRef")
                        if ref:
                            self.assertIn(ref["key"], config_maps.get(ref["name"], {}), f"env {e['name']}: no {ref['name']}/{ref['key']}")
                        ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                        if ref:
                            self.assertTrue(ref.get("optional"), f"env {e['name']}: Secret {ref['name']} is not optional")
                    for source in c.get("envFrom") or []:
                        self.fail(f"envFrom {source}: name the variables one by one")

    def test_variables_in_args_are_defined(self):
        for where, spec, _ in pod_specs(self.objects):
            for c in containers_of(spec):
                defined = set(env_of(c))
                for arg in list(c.get("command") or []) + list(c.get("args") or []):
                    for name in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", arg):
                        with self.subTest(pod=where, container=c["name"], variable=name):
                            self.assertIn(name, defined, f"$({name}) is not set in the container's env: Kubernetes leaves it as written")

    def test_file_variables_name_mounted_files(self):
        """FLOTILLA_*_FILE variables name a file from a mounted Secret or ConfigMap."""
        for where, spec, _ in pod_specs(self.objects):
            for c in containers_of(spec):
                files = mounted_files(spec, c, self.objects)
                for name, e in env_of(c).items():
                    if not name.endswith("_FILE"):
                        continue
                    with self.subTest(pod=where, container=c["name"], variable=name):
                        path = e.get("value", "")
                        folder = path.rsplit("/", 1)[0]
                        source = files.get(path) or files.get(f"{folder}/*")
                        self.assertIsNotNone(source, f"{name}={path} is not a mounted file")

    def test_no_container_overrides_the_entrypoint(self):
        """Every container runs the image's ENTRYPOINT (flotilla, the Dockerfile test checks it)
        with its args: no `command`, so no shell in between and signals reach flotilla."""
        for where, spec, _ in pod_specs(self.objects):
            for c in containers_of(spec):
                with self.subTest(pod=where, container=c["name"]):
                    self.assertFalse("command" in c, f"command {c.get('command')}: set none, the image's ENTRYPOINT flotilla runs the args")
                    self.assertEqual(c["image"], container(self.controller_pod(), "controller")["image"])

    def test_optional_secret_variables_point_into_their_mounted_secrets(self):
        """FLOTILLA_KAFKA_PROPERTIES_FILE and FLOTILLA_HTTP_TOKEN_FILE name the key's file inside
        the mount of their optional Secret, and a container that mounts one of these Secrets
        names its file (a mount nothing reads is a setting that silently does nothing)."""
        seen = set()
        for where, spec, _ in pod_specs(self.objects):
            volumes = {v["name"]: v for v in spec.get("volumes") or []}
            for c in containers_of(spec):
                env = env_of(c)
                secret_mounts = {}
                for mount in c.get("volumeMounts") or []:
                    volume = volumes.get(mount["name"]) or {}
                    if "secret" in volume:
                        secret_mounts[volume["secret"]["secretName"]] = (mount, volume["secret"])
                for name, (secret, key) in OPTIONAL_SECRET_FILES.items():
                    with self.subTest(pod=where, container=c["name"], variable=name):
                        if name not in env:
                            self.assertNotIn(secret, secret_mounts, f"Secret {secret} is mounted but {name} does not name its file")
                            continue
                        seen.add(name)
                        e = env[name]
                        self.assertNotIn("valueFrom", e, f"{name} is a path, not the secret itself")
                        self.assertIn(secret, secret_mounts, f"{name} is set but Secret {secret} is not mounted")
                        mount, volume = secret_mounts[secret]
                        self.assertIs(volume.get("optional"), True, f"Secret {secret}: deploy/ ships no Secrets, so optional")
                        items = volume.get("items")
                        if items:
                            paths = {item["key"]: item["path"] for item in items}
                            self.assertIn(key, paths, f"Secret {secret}'s items leave out {key}")
                            expected = f"{mount['mountPath'].rstrip('/')}/{paths[key]}"
                        else:
                            expected = f"{mount['mountPath'].rstrip('/')}/{key}"
                        self.assertEqual(e.get("value"), expected, f"{name} does not name the file of key {key} in Secret {secret}")
                        self.assertTrue(mount.get("readOnly"), f"Secret {secret} is mounted writable")
        self.assertEqual(seen, set(OPTIONAL_SECRET_FILES), "some optional Secret is not used by any container")

    def test_controller_args_point_at_the_mounted_files(self):
        pod = self.controller_pod()
        c = container(pod, "controller")
        argv = flotilla_argv(c)
        self.assertEqual(argv[0], "controller")
        self.assertEqual(option(argv, "--backend"), "kubernetes")
        self.assertEqual(option(argv, "--pod-template"), TEMPLATE_PATH)
        self.assertIsNotNone(option(argv, "--brokers"))
        files = mounted_files(pod, c, self.objects)
        self.assertEqual(files.get(TEMPLATE_PATH, (None,) * 3)[1:3], ("flotilla-worker-pod", "worker-pod.yaml"))
        self.assertIn(JOB_SPEC_PATH, files)
        self.assertNotIn("--kafka-property", argv, "Kafka properties belong in the Secret's file, not on the command line")

    def test_the_init_container_submits_the_mounted_job(self):
        pod = self.controller_pod()
        init = [c for c in pod.get("initContainers") or [] if flotilla_argv(c)[:1] == ["submit"]]
        self.assertEqual(len(init), 1, "one init container runs flotilla submit")
        argv = flotilla_argv(init[0])
        self.assertEqual(argv[1], JOB_SPEC_PATH)
        self.assertIn("--resume", argv, "without --resume the second start of the pod fails: the job is already submitted")
        self.assertEqual(option(argv, "--brokers"), option(flotilla_argv(container(pod, "controller")), "--brokers"))
        files = mounted_files(pod, init[0], self.objects)
        self.assertEqual(files.get(JOB_SPEC_PATH, (None,) * 3)[1:3], ("flotilla-job", "job.yaml"))
        self.assertEqual(init[0]["image"], container(pod, "controller")["image"])

    def test_job_id_and_prefix_agree(self):
        spec = self.job_spec()
        argv = flotilla_argv(container(self.controller_pod(), "controller"))
        self.assertEqual(argv[1], spec["job"], "the controller's job id is not job.yaml's `job:`")
        self.assertEqual(option(argv, "--prefix") or "flotilla", (spec.get("kafka") or {}).get("topicPrefix", "flotilla"))
        # The id becomes a label value (at most 63 characters, alphanumeric at both ends) and
        # part of pod names (DNS-1123).
        self.assertRegex(spec["job"], r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")

    def test_job_inputs_are_reachable_from_every_pod(self):
        for entry in self.job_spec()["inputs"]:
            self.assertNotIn("file", entry, "a file input needs a shared volume in the controller and every worker")
            if "url" in entry:
                self.assertRegex(entry["url"], r"^https?://")

    def test_worker_template(self):
        template = yaml.safe_load(only(self.objects, "ConfigMap", "flotilla-worker-pod")["data"]["worker-pod.yaml"])
        self.assertEqual((template["apiVersion"], template["kind"]), ("v1", "Pod"))
        spec = template["spec"]
        worker = container(spec, "worker")
        self.assertIn(spec.get("restartPolicy", "Never"), ("Never",), "the backend forces Never; say so")
        self.assertEqual(worker["image"], container(self.controller_pod(), "controller")["image"], "workers and controller run one image")
        self.assertNotIn("args", worker, "the backend sets the worker's args")
        self.assertFalse(spec.get("automountServiceAccountToken", True), "workers need no Kubernetes API token")
        self.assertGreaterEqual(spec.get("terminationGracePeriodSeconds", 30), 30, "a worker drains on SIGTERM")
        for key in ("requests", "limits"):
            self.assertIn("memory", worker.get("resources", {}).get(key, {}), f"resources.{key}.memory")
        metadata = template.get("metadata") or {}
        self.assertNotIn("name", metadata, "the backend names every pod")
        self.assertNotIn("namespace", metadata, "the backend puts pods in its namespace")
        labels = dict(metadata.get("labels") or {}, **BACKEND_WORKER_LABELS)
        controller_selector = self.controller()["spec"]["selector"]["matchLabels"]
        self.assertFalse(matches(controller_selector, labels))
        # Predictors run in the spec's folder (the submitter's): it must exist in the worker too.
        files = mounted_files(spec, worker, self.objects)
        self.assertIn(JOB_SPEC_PATH, files, "the worker does not mount the job spec's folder, where predictors run")
        self.assertIn("FLOTILLA_KAFKA_PROPERTIES_FILE", env_of(worker))

    def test_pods_meet_the_restricted_pod_security_standard(self):
        namespace = only(self.objects, "Namespace")
        self.assertEqual(namespace["metadata"]["labels"].get("pod-security.kubernetes.io/enforce"), "restricted")
        for where, spec, _ in pod_specs(self.objects):
            pod_context = spec.get("securityContext") or {}
            self.assertTrue(pod_context.get("runAsNonRoot"), where)
            self.assertNotEqual(pod_context.get("runAsUser", 1), 0, where)
            self.assertEqual((pod_context.get("seccompProfile") or {}).get("type"), "RuntimeDefault", where)
            for key in ("hostNetwork", "hostPID", "hostIPC"):
                self.assertFalse(spec.get(key), f"{where}: {key}")
            for volume in spec.get("volumes") or []:
                self.assertNotIn("hostPath", volume, where)
            for c in containers_of(spec):
                context = c.get("securityContext") or {}
                self.assertIs(context.get("allowPrivilegeEscalation"), False, f"{where} {c['name']}")
                self.assertEqual((context.get("capabilities") or {}).get("drop"), ["ALL"], f"{where} {c['name']}")
                self.assertFalse(context.get("privileged"), f"{where} {c['name']}")


class RBAC(BaseCase):
    def role_permissions(self):
        role = only(self.objects, "Role")
        permissions = set()
        for rule in role["rules"]:
            self.assertEqual(rule.get("apiGroups"), [""], "pods are in the core API group")
            self.assertNotIn("resourceNames", rule)
            self.assertNotIn("nonResourceURLs", rule)
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    self.assertNotIn("*", (resource, verb), "no wildcards")
                    permissions.add((resource, verb))
        return permissions

    def test_role_grants_exactly_the_pod_calls(self):
        self.assertEqual(self.role_permissions(), EXPECTED_RBAC)

    def test_role_equals_the_calls_the_backend_makes(self):
        if not BACKEND_SOURCES.is_dir():
            self.skipTest(f"{BACKEND_SOURCES.relative_to(ROOT)} does not exist yet: the Swift kubernetes backend "
                          "(its `// rbac: RESOURCE VERB` lines) is not in this tree")
        calls = set()
        for path in sorted(BACKEND_SOURCES.glob("*.swift")):
            for line in path.read_text(encoding="utf-8").splitlines():
                m = re.match(r"^\s*//\s*rbac:\s*(\S+)\s+(\S+)\s*$", line)
                if m:
                    calls.add((m.group(1), m.group(2)))
        self.assertTrue(calls, f"no `// rbac: RESOURCE VERB` line in {BACKEND_SOURCES.relative_to(ROOT)}/*.swift")
        self.assertEqual(self.role_permissions(), calls,
                         "deploy/rbac.yaml's Role and the backend's `// rbac:` lines differ")


class KedaVariant(BaseCase):
    folder = KEDA

    def scaled_object(self):
        return only(self.objects, "ScaledObject")

    def worker(self):
        return only(self.objects, "Deployment", "flotilla-worker")

    def test_scaled_object_structure(self):
        so = self.scaled_object()
        self.assertEqual(so["apiVersion"], "keda.sh/v1alpha1")
        self.assertLessEqual(set(so), {"apiVersion", "kind", "metadata", "spec"})
        self.assertLessEqual(set(so["metadata"]), {"name", "namespace", "labels", "annotations"})
        spec = so["spec"]
        known = {"scaleTargetRef", "pollingInterval", "cooldownPeriod", "initialCooldownPeriod", "idleReplicaCount",
                 "minReplicaCount", "maxReplicaCount", "fallback", "advanced", "triggers"}
        self.assertLessEqual(set(spec), known, "unknown ScaledObject spec keys")
        self.assertLessEqual(set(spec["scaleTargetRef"]), {"apiVersion", "kind", "name", "envSourceContainerName"})
        for key in ("pollingInterval", "cooldownPeriod", "minReplicaCount", "maxReplicaCount"):
            self.assertIsInstance(spec.get(key), int, key)
        if "fallback" in spec:
            self.assertLessEqual(set(spec["fallback"]), {"failureThreshold", "replicas", "behavior"})
        self.assertTrue(spec["triggers"])
        for trigger in spec["triggers"]:
            self.assertLessEqual(set(trigger), {"type", "name", "metadata", "authenticationRef", "metricType", "useCachedMetrics"})
            self.assertIn(trigger.get("metricType", "AverageValue"), ("AverageValue", "Value", "Utilization"))
            for key, value in trigger["metadata"].items():
                self.assertIsInstance(value, str, f"trigger metadata {key}: KEDA wants strings")

    def test_scaled_object_targets_the_worker_deployment(self):
        spec = self.scaled_object()["spec"]
        target = spec["scaleTargetRef"]
        self.assertEqual(target.get("kind", "Deployment"), "Deployment")
        self.assertEqual(target.get("apiVersion", "apps/v1"), "apps/v1")
        self.assertEqual(target["name"], self.worker()["metadata"]["name"])
        self.assertEqual(spec["minReplicaCount"], 0)
        self.assertGreaterEqual(spec["maxReplicaCount"], 1)
        workers = self.job_spec().get("workers")
        workers_max = workers if isinstance(workers, int) else max(4, workers.get("min", 1)) if "max" not in workers else workers["max"]
        self.assertLessEqual(spec["maxReplicaCount"], workers_max, "more workers than workers.max: beyond 2 x max partitions")
        self.assertNotIn("replicas", self.worker()["spec"], "KEDA owns the worker count")

    def test_trigger_reads_a_flotilla_metric(self):
        trigger = self.scaled_object()["spec"]["triggers"][0]
        metadata = trigger["metadata"]
        if trigger["type"] == "metrics-api":
            self.assertEqual(metadata.get("format", "json"), "json")
            self.assertEqual(metadata["valueLocation"], "backlogSamples")
            service = only(self.objects, "Service", "flotilla-controller")
            port = service["spec"]["ports"][0]["port"]
            self.assertEqual(metadata["url"], f"http://{service['metadata']['name']}.{service['metadata']['namespace']}.svc:{port}/status")
            status = ROOT / "Sources" / "FlotillaController" / "ControllerStatus.swift"
            if status.is_file():
                self.assertRegex(status.read_text(), r"public var backlogSamples\b", "/status has no backlogSamples")
            float(metadata["targetValue"])
        else:
            self.assertEqual(trigger["type"], "prometheus")
            self.assertIn("flotilla_controller_backlog_samples", metadata["query"])

    def test_controller_runs_the_external_backend(self):
        pod = self.controller_pod()
        argv = flotilla_argv(container(pod, "controller"))
        self.assertEqual(argv[0], "controller")
        self.assertEqual(option(argv, "--backend"), "external")
        self.assertNotIn("--pod-template", argv)
        self.assertEqual(argv[1], self.job_spec()["job"])
        self.assertFalse(pod.get("automountServiceAccountToken", True), "the external backend needs no API token")
        for kind in ("ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"):
            self.assertFalse(find(self.objects, kind), f"the KEDA variant needs no {kind}")
        init = [c for c in pod.get("initContainers") or [] if flotilla_argv(c)[:1] == ["submit"]]
        self.assertEqual(len(init), 1)
        self.assertIn("--resume", flotilla_argv(init[0]))
        self.assertEqual(self.controller()["spec"].get("strategy", {}).get("type"), "Recreate")

    def test_worker_deployment(self):
        deployment = self.worker()
        template = deployment["spec"]["template"]
        self.assertTrue(matches(deployment["spec"]["selector"]["matchLabels"], template["metadata"]["labels"]))
        self.assertFalse(matches(self.controller()["spec"]["selector"]["matchLabels"], template["metadata"]["labels"]))
        service = only(self.objects, "Service", "flotilla-controller")
        self.assertFalse(matches(service["spec"]["selector"], template["metadata"]["labels"]))
        worker = container(template["spec"], "worker")
        argv = flotilla_argv(worker)
        spec = self.job_spec()
        self.assertEqual(argv[:2], ["worker", spec["job"]])
        self.assertEqual(option(argv, "--brokers"), "$(FLOTILLA_BROKERS)")
        self.assertEqual(option(argv, "--prefix") or "flotilla", (spec.get("kafka") or {}).get("topicPrefix", "flotilla"))
        self.assertNotIn("--worker-id", argv, "every pod needs its own id: leave the default (host-pid)")
        self.assertEqual(worker["image"], container(self.controller_pod(), "controller")["image"])
        self.assertIn(JOB_SPEC_PATH, mounted_files(template["spec"], worker, self.objects))
        self.assertGreaterEqual(template["spec"].get("terminationGracePeriodSeconds", 30), 30)

    def test_shared_files_match_deploy(self):
        self.assertEqual(load_one(KEDA / "namespace.yaml"), load_one(DEPLOY / "namespace.yaml"))
        self.assertEqual(load_one(KEDA / "job.yaml"), load_one(DEPLOY / "job.yaml"), "the same example job in both variants")
        base, _ = build(DEPLOY)
        self.assertEqual(only(self.objects, "ConfigMap", "flotilla-kafka")["data"], only(base, "ConfigMap", "flotilla-kafka")["data"])


# Reuse the reference checks that hold for both variants.
for _name in ("test_config_maps_and_secrets_that_pods_use_exist", "test_variables_in_args_are_defined",
              "test_file_variables_name_mounted_files", "test_pods_meet_the_restricted_pod_security_standard",
              "test_no_container_overrides_the_entrypoint", "test_optional_secret_variables_point_into_their_mounted_secrets",
              "test_service_selects_the_controller_and_its_port", "test_http_port_probes_and_address",
              "test_job_inputs_are_reachable_from_every_pod", "test_deployment_selector_matches_its_pods_only"):
    setattr(KedaVariant, _name, getattr(References, _name))


class Dockerfile(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
        joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
        cls.instructions = []
        for line in joined.splitlines():
            if line.strip():
                word, _, rest = line.strip().partition(" ")
                cls.instructions.append((word.upper(), rest.strip()))
        cls.args = {}
        for word, rest in cls.instructions:
            if word == "ARG" and "=" in rest:
                key, _, value = rest.partition("=")
                cls.args[key] = value
        cls.stages = []
        for word, rest in cls.instructions:
            if word == "FROM":
                cls.stages.append({"from": rest, "instructions": []})
            elif cls.stages:
                cls.stages[-1]["instructions"].append((word, rest))

    def resolve(self, text):
        return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: self.args.get(m.group(1) or m.group(2), m.group(0)), text)

    def stage_text(self, stage, word):
        return [rest for w, rest in stage["instructions"] if w == word]

    def test_two_stages(self):
        self.assertGreaterEqual(len(self.stages), 2)
        build_from = self.resolve(self.stages[0]["from"])
        self.assertRegex(build_from, r"(?i)\s+AS\s+build$")
        image = build_from.split()[0]
        self.assertRegex(image, r"^swift:6\.3[.\w-]*bookworm", "the build stage is Swift 6.3 on bookworm")
        final = self.resolve(self.stages[-1]["from"])
        self.assertEqual(final.split()[0], "debian:bookworm-slim")
        self.assertNotRegex(final, r"(?i)\bbuild\b")

    def test_builds_librdkafka_from_trixie_source_like_tools_setup(self):
        runs = " ".join(self.stage_text(self.stages[0], "RUN"))
        for needle in ("trixie", "deb-src", "source --download-only", "librdkafka", "./configure --prefix=/usr/local",
                       "make -C src install", "Dir::Etc::sourcelist"):
            self.assertIn(needle, runs)
        setup = (ROOT / "tools" / "setup").read_text(encoding="utf-8")
        for key in ("RDKAFKA_SRC_VERSION", "RDKAFKA_MIN"):
            wanted = re.search(rf'^{key}="([^"]+)"', setup, re.M).group(1)
            self.assertEqual(self.args.get(key), wanted, f"{key} differs from tools/setup's")
        self.assertRegex(runs, r"swift build -c release --product flotilla")

    def test_runtime_stage(self):
        final = self.stages[-1]
        runs = " ".join(self.stage_text(final, "RUN"))
        for package in ("libssl3", "libsasl2-2", "libzstd1", "liblz4-1", "zlib1g", "libcurl4", "python3", "ca-certificates"):
            self.assertRegex(runs, rf"(^|\s){re.escape(package)}(\s|;|$)", package)
        copies = self.stage_text(final, "COPY")
        self.assertTrue(any(c.startswith("--from=build") and "librdkafka.so" in c for c in copies), "librdkafka is not copied")
        self.assertTrue(any(c.startswith("--from=build") and c.split()[-1] == "/usr/local/bin/flotilla" for c in copies),
                        "the flotilla binary is not copied to /usr/local/bin/flotilla")
        sdk = [c for c in copies if c.split()[0] == "python/flotilla_predictor"]
        self.assertTrue(sdk, "the Python SDK is not copied")
        destination = pathlib.PurePosixPath(sdk[0].split()[-1])
        env = " ".join(self.stage_text(final, "ENV"))
        self.assertIn(f"PYTHONPATH={destination.parent}", env)

    def test_entrypoint_and_user(self):
        final = self.stages[-1]
        entrypoints = self.stage_text(final, "ENTRYPOINT")
        self.assertTrue(entrypoints)
        self.assertEqual(json.loads(entrypoints[-1]), ["flotilla"])
        users = self.stage_text(final, "USER")
        self.assertTrue(users, "no USER: the image runs as root")
        user = users[-1].split(":")[0]
        self.assertNotIn(user, ("root", "0"))
        self.assertRegex(user, r"^\d+$", "a numeric USER lets Kubernetes' runAsNonRoot check it")
        pod_user = str(load_one(DEPLOY / "worker-pod.yaml")["spec"]["securityContext"]["runAsUser"])
        self.assertEqual(user, pod_user)

    def test_dockerignore_keeps_build_output_out(self):
        ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
        for entry in (".build", ".tools", ".git"):
            self.assertIn(entry, ignored)
        copied = [c.split()[0] for c in self.stage_text(self.stages[0], "COPY") + self.stage_text(self.stages[-1], "COPY")
                  if not c.startswith("--from")]
        for source in copied:
            self.assertNotIn(source.split("/")[0], ignored, f"COPY {source} is excluded from the build context")


class ToolsRunThese(unittest.TestCase):
    def test_tools_setup_and_test(self):
        setup = (ROOT / "tools" / "setup").read_text(encoding="utf-8")
        packages = re.search(r"APT_PACKAGES=\(([^)]*)\)", setup).group(1).split()
        self.assertIn("python3-kubernetes", packages)
        self.assertIn("python3-yaml", packages)
        lines = (ROOT / "tools" / "test").read_text(encoding="utf-8").splitlines()
        runs = [shlex.split(line) for line in lines if "unittest" in line]
        self.assertIn(["/usr/bin/python3", "-m", "unittest", "discover", "-s", "deploy/tests", "-p", "test_*.py"], runs)


if __name__ == "__main__":
    unittest.main()
