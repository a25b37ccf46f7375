#!/usr/bin/env python3
"""Static checks of deploy/: the kustomizations, the manifests they build and
the Containerfile.

    python3 deploy/check.py            # from anywhere; exit 0 = all good
    python3 deploy/check.py --no-kubectl

Needs python3 and PyYAML (Debian: python3-yaml). It builds every
kustomization under deploy/ with a small built-in renderer (resources,
namespace, patches — JSON 6902 and strategic merge —, replicas, images) and
checks the result:

  * every YAML file parses, every file a kustomization names exists, every
    YAML file is a kustomization or is used by one, every object has
    apiVersion, kind and metadata.name;
  * shard servers: StatefulSet replicas == --replicas, --peers lists exactly
    that many addresses, address i is <statefulset>-i.<headless service>:<port>;
    the headless Service, the data volume and a PodDisruptionBudget exist;
  * gateways: --shard-servers is exactly the shard servers' --peers, and
    --shards agrees;
  * every port a probe, a Service or a prometheus.io/port annotation names is
    a declared container port; --listen/--metrics-listen ports are declared;
    every pod has Prometheus scrape annotations;
  * every $(VAR) in a command or args is a declared environment variable, and
    the ConfigMap/Secret keys behind them exist;
  * workers: the termination grace period covers --stop-timeout-seconds;
  * the Containerfile copies every source folder the CMake build reads and
    the binaries the brief names, and runs as a non-root user.

When kubectl is on PATH, every kustomization is also built with
`kubectl kustomize`, the same checks run on its output, and the two renderings
must agree. Any problem is printed and the exit status is 1.
"""

import argparse
import copy
import os
import re
import shlex
import shutil
import subprocess
import sys

try:
    import yaml
except ImportError:  # pragma: no cover
    sys.stderr.write(
        "deploy/check.py: PyYAML is missing; install the Debian package python3-yaml\n"
        "  (apt-get install python3-yaml)\n")
    sys.exit(2)

DEPLOY = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(DEPLOY)
KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")

# Kinds that are not namespaced (the namespace transformer leaves them alone).
CLUSTER_KINDS = {
    "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
    "PersistentVolume", "StorageClass", "PriorityClass", "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration", "APIService", "IngressClass", "RuntimeClass",
}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
# Kustomization fields the renderer models; anything else is reported rather
# than silently ignored.
KNOWN_KUSTOMIZATION_FIELDS = {
    "apiVersion", "kind", "resources", "namespace", "patches",
    "patchesStrategicMerge", "patchesJson6902", "replicas", "images",
}


class Problems:
    def __init__(self):
        self.items = []

    def add(self, where, message):
        item = f"{where}: {message}"
        if item not in self.items:  # a base built by several overlays reports once
            self.items.append(item)


P = Problems()


def rel(path):
    return os.path.relpath(path, ROOT)


def load_docs(path):
    """All non-empty YAML documents of a file, or None after reporting."""
    try:
        with open(path, encoding="utf-8") as f:
            return [d for d in yaml.safe_load_all(f) if d is not None]
    except (OSError, yaml.YAMLError) as e:
        P.add(rel(path), f"cannot parse YAML: {e}")
        return None


def find_kustomization(directory):
    for name in KUSTOMIZATION_NAMES:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    return None


def is_remote(ref):
    return bool(re.match(r"^(https?://|git@|github\.com/|ssh://)", ref)) or "?ref=" in ref


def obj_id(o):
    md = o.get("metadata") or {}
    return (o.get("kind"), md.get("namespace"), md.get("name"))


def fmt_id(o):
    kind, ns, name = obj_id(o)
    return f"{kind} {ns + '/' if ns else ''}{name}"


# --------------------------------------------------------------------------
# JSON patch (RFC 6902) and strategic merge, enough for Kubernetes manifests.

class PatchError(Exception):
    pass


def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"JSON pointer {path!r} must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc, tokens, path):
    cur = doc
    for t in tokens:
        if isinstance(cur, list):
            if not t.isdigit() or int(t) >= len(cur):
                raise PatchError(f"{path}: no list element {t!r}")
            cur = cur[int(t)]
        elif isinstance(cur, dict):
            if t not in cur:
                raise PatchError(f"{path}: no key {t!r}")
            cur = cur[t]
        else:
            raise PatchError(f"{path}: cannot index into a scalar")
    return cur


def _get(doc, path):
    return _walk(doc, _pointer(path), path)


def _remove(doc, path):
    tokens = _pointer(path)
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _walk(doc, tokens[:-1], path)
    last = tokens[-1]
    if isinstance(parent, list):
        if not last.isdigit() or int(last) >= len(parent):
            raise PatchError(f"{path}: no list element {last!r}")
        return parent.pop(int(last))
    if not isinstance(parent, dict) or last not in parent:
        raise PatchError(f"{path}: nothing to remove")
    return parent.pop(last)


def _add(doc, path, value, replace=False):
    tokens = _pointer(path)
    if not tokens:
        raise PatchError("cannot replace the whole document")
    parent = _walk(doc, tokens[:-1], path)
    last = tokens[-1]
    if isinstance(parent, list):
        if replace:
            if not last.isdigit() or int(last) >= len(parent):
                raise PatchError(f"{path}: no list element {last!r} to replace")
            parent[int(last)] = value
        elif last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent):
            parent.insert(int(last), value)
        else:
            raise PatchError(f"{path}: bad list index {last!r}")
    elif isinstance(parent, dict):
        if replace and last not in parent:
            raise PatchError(f"{path}: no key {last!r} to replace")
        parent[last] = value
    else:
        raise PatchError(f"{path}: parent is a scalar")


def apply_json6902(doc, ops):
    if not isinstance(ops, list):
        raise PatchError("a JSON 6902 patch must be a list of operations")
    for i, op in enumerate(ops):
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"operation {i} needs 'op' and 'path'")
        kind, path = op["op"], op["path"]
        if kind == "add":
            _add(doc, path, copy.deepcopy(op.get("value")))
        elif kind == "replace":
            _add(doc, path, copy.deepcopy(op.get("value")), replace=True)
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "test":
            actual = _get(doc, path)
            if actual != op.get("value"):
                raise PatchError(
                    f"test failed at {path}: expected {op.get('value')!r}, found {actual!r}")
        elif kind in ("move", "copy"):
            value = _get(doc, op["from"])
            if kind == "move":
                _remove(doc, op["from"])
            _add(doc, path, copy.deepcopy(value))
        else:
            raise PatchError(f"unknown operation {kind!r}")


# Merge keys of the Kubernetes lists a patch here may touch; other lists are
# replaced, as strategic merge does for lists without a merge key.
MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "env": "name", "volumes": "name",
    "volumeMounts": "mountPath", "ports": "containerPort", "imagePullSecrets": "name",
    "volumeClaimTemplates": None, "args": None, "command": None,
}


def strategic_merge(dst, src, field=None):
    if isinstance(src, dict) and any(k.startswith("$") for k in src):
        raise PatchError(f"strategic merge directives ({list(src)}) are not modeled by check.py")
    if isinstance(dst, dict) and isinstance(src, dict):
        for k, v in src.items():
            if v is None:
                dst.pop(k, None)
            elif k in dst:
                dst[k] = strategic_merge(dst[k], v, k)
            else:
                dst[k] = copy.deepcopy(v)
        return dst
    if isinstance(dst, list) and isinstance(src, list):
        key = MERGE_KEYS.get(field)
        if key and all(isinstance(e, dict) and key in e for e in dst + src):
            out = dst
            for e in src:
                match = next((d for d in out if d[key] == e[key]), None)
                if match is None:
                    out.append(copy.deepcopy(e))
                else:
                    strategic_merge(match, e)
            return out
        return copy.deepcopy(src)
    return copy.deepcopy(src)


# --------------------------------------------------------------------------
# The renderer: a small kustomize.

def _api_group_version(obj):
    av = obj.get("apiVersion", "")
    return tuple(av.split("/", 1)) if "/" in av else ("", av)


def target_matches(obj, target):
    group, version = _api_group_version(obj)
    md = obj.get("metadata") or {}
    for field, actual in (("group", group), ("version", version), ("kind", obj.get("kind")),
                          ("name", md.get("name")), ("namespace", md.get("namespace"))):
        if field in target and target[field] != actual:
            return False
    sel = target.get("labelSelector")
    if sel:
        labels = md.get("labels") or {}
        for term in sel.split(","):
            k, _, v = term.partition("=")
            if labels.get(k.strip()) != v.strip():
                return False
    return True


def apply_patch(objs, patch, target, where):
    """patch: parsed YAML (list = JSON 6902, mapping(s) = strategic merge)."""
    if isinstance(patch, list) and (not patch or isinstance(patch[0], dict) and "op" in patch[0]):
        if not target:
            P.add(where, "a JSON 6902 patch needs a target")
            return
        matched = [o for o in objs if target_matches(o, target)]
        if not matched:
            P.add(where, f"patch target {target} matches no object")
        for o in matched:
            try:
                apply_json6902(o, patch)
            except PatchError as e:
                P.add(where, f"patching {fmt_id(o)}: {e}")
        return
    patches = patch if isinstance(patch, list) else [patch]
    for p in patches:
        if not isinstance(p, dict) or not p.get("kind") or not (p.get("metadata") or {}).get("name"):
            P.add(where, "a strategic merge patch needs kind and metadata.name")
            continue
        if target:
            matched = [o for o in objs if target_matches(o, target)]
        else:
            pns = (p.get("metadata") or {}).get("namespace")
            matched = [o for o in objs
                       if o.get("kind") == p["kind"]
                       and o["metadata"].get("name") == p["metadata"]["name"]
                       and (pns is None or o["metadata"].get("namespace") == pns)]
        if not matched:
            P.add(where, f"strategic merge patch {p['kind']} {p['metadata']['name']} matches no object")
        for o in matched:
            body = copy.deepcopy(p)
            body.pop("apiVersion", None)
            body.pop("kind", None)
            body["metadata"] = {k: v for k, v in body["metadata"].items()
                                if k not in ("name", "namespace")}
            try:
                strategic_merge(o, body)
            except PatchError as e:
                P.add(where, f"patching {fmt_id(o)}: {e}")


def pod_template(obj):
    if obj.get("kind") in WORKLOAD_KINDS:
        return ((obj.get("spec") or {}).get("template")) or {}
    return None


def containers_of(obj):
    tmpl = pod_template(obj)
    if tmpl is None:
        return []
    spec = tmpl.get("spec") or {}
    return (spec.get("containers") or []) + (spec.get("initContainers") or [])


def set_image(obj, image):
    for c in containers_of(obj):
        ref = c.get("image", "")
        m = re.match(r"^(.*?)(?::([^:/@]+))?(?:@(.+))?$", ref)
        name = m.group(1)
        if name != image.get("name"):
            continue
        new = image.get("newName", name)
        if "digest" in image:
            new += "@" + image["digest"]
        elif "newTag" in image:
            new += ":" + str(image["newTag"])
        elif m.group(2):
            new += ":" + m.group(2)
        c["image"] = new


def render(directory, used_files, stack=()):
    """Builds the kustomization in directory; returns a list of objects."""
    kpath = find_kustomization(directory)
    where = rel(kpath) if kpath else rel(directory)
    if kpath is None:
        P.add(rel(directory), "no kustomization.yaml in this folder")
        return []
    if directory in stack:
        P.add(where, "kustomization includes itself")
        return []
    used_files.add(kpath)
    docs = load_docs(kpath)
    if not docs:
        return []
    k = docs[0]
    if not isinstance(k, dict):
        P.add(where, "not a mapping")
        return []
    for field in k:
        if field not in KNOWN_KUSTOMIZATION_FIELDS:
            P.add(where, f"field {field!r} is not modeled by deploy/check.py; extend the checker")

    def local(ref, what):
        if not isinstance(ref, str):
            P.add(where, f"{what}: {ref!r} is not a path")
            return None
        if is_remote(ref):
            P.add(where, f"{what}: remote reference {ref!r} (keep deploy/ self-contained)")
            return None
        path = os.path.normpath(os.path.join(directory, ref))
        if not os.path.exists(path):
            P.add(where, f"{what}: {ref} does not exist")
            return None
        return path

    objs = []
    for ref in k.get("resources") or []:
        path = local(ref, "resources")
        if path is None:
            continue
        if os.path.isdir(path):
            objs.extend(render(path, used_files, stack + (directory,)))
        else:
            used_files.add(path)
            for d in load_docs(path) or []:
                if not isinstance(d, dict):
                    P.add(rel(path), "a resource document is not a mapping")
                    continue
                objs.append(d)

    for o in objs:
        missing = [f for f in ("apiVersion", "kind") if not o.get(f)]
        if not (o.get("metadata") or {}).get("name"):
            missing.append("metadata.name")
        if missing:
            P.add(where, f"object {fmt_id(o)} lacks {', '.join(missing)}")

    def patch_body(entry, what):
        if "path" in entry:
            path = local(entry["path"], what)
            if path is None:
                return None, None
            used_files.add(path)
            docs = load_docs(path)
            if docs is None:
                return None, None
            body = docs[0] if len(docs) == 1 else docs
            return body, rel(path)
        if "patch" in entry:
            try:
                docs = [d for d in yaml.safe_load_all(entry["patch"]) if d is not None]
            except yaml.YAMLError as e:
                P.add(where, f"{what}: inline patch does not parse: {e}")
                return None, None
            return (docs[0] if len(docs) == 1 else docs), where
        P.add(where, f"{what}: entry needs 'path' or 'patch'")
        return None, None

    for ref in k.get("patchesStrategicMerge") or []:
        path = local(ref, "patchesStrategicMerge")
        if path:
            used_files.add(path)
            apply_patch(objs, load_docs(path) or [], None, rel(path))
    for entry in k.get("patches") or []:
        body, pwhere = patch_body(entry, "patches")
        if body is not None:
            apply_patch(objs, body, entry.get("target"), pwhere)

    ns = k.get("namespace")
    if ns:
        for o in objs:
            if o.get("kind") not in CLUSTER_KINDS:
                o.setdefault("metadata", {})["namespace"] = ns

    for entry in k.get("patchesJson6902") or []:
        body, pwhere = patch_body(entry, "patchesJson6902")
        if body is not None:
            apply_patch(objs, body if isinstance(body, list) else [body], entry.get("target"), pwhere)

    for r in k.get("replicas") or []:
        matched = [o for o in objs if o["metadata"].get("name") == r.get("name")
                   and o.get("kind") in ("Deployment", "StatefulSet", "ReplicaSet")]
        if not matched:
            P.add(where, f"replicas: no Deployment/StatefulSet named {r.get('name')!r}")
        for o in matched:
            o.setdefault("spec", {})["replicas"] = r.get("count")

    for image in k.get("images") or []:
        for o in objs:
            set_image(o, image)
    return objs


# --------------------------------------------------------------------------
# Semantic checks on a rendered set of objects.

VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def parse_flags(argv):
    """--name=value / --name value -> dict (last wins) and the words after --."""
    flags, rest, i = {}, [], 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            rest = argv[i + 1:]
            break
        if a.startswith("--"):
            name, eq, value = a[2:].partition("=")
            if not eq:
                if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                    value = argv[i + 1]
                    i += 1
                else:
                    value = True
            flags[name] = value
        i += 1
    return flags, rest


def program_of(container):
    """(binary, flags, shell script or None) of a container's command + args."""
    command = [str(x) for x in container.get("command") or []]
    args = [str(x) for x in container.get("args") or []]
    if len(command) >= 3 and os.path.basename(command[0]) in ("sh", "bash", "dash") \
            and command[1] == "-c":
        script = command[2]
        m = re.search(r"\bexec\s+(\S+)(.*)$", script, re.M)
        if not m:
            return None, {}, script
        binary = os.path.basename(m.group(1))
        try:
            words = shlex.split(m.group(2))
        except ValueError:
            words = m.group(2).split()
        # "$@" are the words after the script's $0 (command[3]) plus args.
        extra = command[4:] + args if len(command) > 3 else command[3:] + args
        argv = []
        for w in words:
            argv.extend(extra if w == "$@" else [w])
        flags, _ = parse_flags(argv)
        return binary, flags, script
    if not command:
        return None, {}, None
    flags, _ = parse_flags(command[1:] + args)
    return os.path.basename(command[0]), flags, None


def port_of(address):
    m = re.search(r":(\d+)$", str(address))
    return int(m.group(1)) if m else None


class Env:
    """Resolves $(VAR) references of one container."""

    def __init__(self, container, objs, registry, where):
        self.vars = {}
        self.where = where
        for e in container.get("env") or []:
            name = e.get("name")
            if "value" in e:
                self.vars[name] = str(e["value"])
            elif "valueFrom" in e:
                vf = e["valueFrom"]
                if "configMapKeyRef" in vf:
                    self.vars[name] = self._lookup("ConfigMap", vf["configMapKeyRef"], objs, registry)
                elif "secretKeyRef" in vf:
                    self.vars[name] = self._lookup("Secret", vf["secretKeyRef"], objs, registry)
                else:
                    self.vars[name] = None  # fieldRef etc.: defined, value unknown
            else:
                self.vars[name] = ""
        for ef in container.get("envFrom") or []:
            ref = ef.get("configMapRef") or ef.get("secretRef")
            kind = "ConfigMap" if "configMapRef" in ef else "Secret"
            source = self._find(kind, ref.get("name"), objs, registry)
            if source is None:
                if not ref.get("optional"):
                    P.add(where, f"envFrom {kind} {ref.get('name')} does not exist")
                continue
            for key in list((source.get("data") or {})) + list((source.get("stringData") or {})):
                self.vars.setdefault(ef.get("prefix", "") + key, None)

    def _find(self, kind, name, objs, registry):
        for o in list(objs) + list(registry):
            if o.get("kind") == kind and o["metadata"].get("name") == name:
                return o
        return None

    def _lookup(self, kind, ref, objs, registry):
        source = self._find(kind, ref.get("name"), objs, registry)
        if source is None:
            if not ref.get("optional"):
                P.add(self.where, f"{kind} {ref.get('name')} (referenced by env) does not exist")
            return None
        data = dict(source.get("data") or {})
        data.update(source.get("stringData") or {})
        if ref.get("key") not in data:
            if not ref.get("optional"):
                P.add(self.where, f"{kind} {ref.get('name')} has no key {ref.get('key')!r}")
            return None
        return str(data[ref["key"]]) if kind == "ConfigMap" else None

    def check_refs(self, text, what):
        for name in VAR_REF.findall(text.replace("$$", "")):
            if name not in self.vars:
                P.add(self.where, f"{what} uses $({name}), which is not an environment variable "
                      "of the container (Kubernetes would leave it unexpanded)")

    def expand(self, value):
        """The value with $(VAR) expanded, or None when it depends on unknowns."""
        if value is None:
            return None
        unknown = []

        def sub(m):
            v = self.vars.get(m.group(1))
            if v is None:
                unknown.append(m.group(1))
                return m.group(0)
            return v
        out = VAR_REF.sub(sub, str(value))
        return None if unknown else out.replace("$$", "$")


def labels_match(selector, labels):
    return bool(selector) and all((labels or {}).get(k) == v for k, v in selector.items())


def check_rendered(objs, label, registry):
    seen = {}
    for o in objs:
        i = obj_id(o)
        if i in seen:
            P.add(label, f"{fmt_id(o)} is defined twice")
        seen[i] = o
        if not o.get("apiVersion") or not o.get("kind") or not (o.get("metadata") or {}).get("name"):
            P.add(label, f"object {fmt_id(o)} lacks apiVersion, kind or metadata.name")

    workloads = [o for o in objs if pod_template(o) is not None]
    services = [o for o in objs if o.get("kind") == "Service"]
    shard_sets, gateways, workers = [], [], []

    for w in workloads:
        where = f"{label}: {fmt_id(w)}"
        spec = w.get("spec") or {}
        tmpl = pod_template(w)
        tlabels = (tmpl.get("metadata") or {}).get("labels") or {}
        sel = (spec.get("selector") or {}).get("matchLabels") or {}
        if w.get("kind") != "Job" and not labels_match(sel, tlabels):
            P.add(where, f"selector {sel} does not match the pod template labels {tlabels}")
        annotations = (tmpl.get("metadata") or {}).get("annotations") or {}
        all_ports = {}
        for c in containers_of(w):
            for p in c.get("ports") or []:
                all_ports[p.get("containerPort")] = p.get("name")
        if str(annotations.get("prometheus.io/scrape")) != "true":
            P.add(where, "pod template lacks the annotation prometheus.io/scrape: \"true\"")
        scrape_port = annotations.get("prometheus.io/port")
        if scrape_port is None:
            P.add(where, "pod template lacks the annotation prometheus.io/port")
        elif not str(scrape_port).isdigit() or int(scrape_port) not in all_ports:
            P.add(where, f"prometheus.io/port {scrape_port} is not a declared container port")

        for c in containers_of(w):
            cwhere = f"{where} container {c.get('name')}"
            ports = c.get("ports") or []
            by_number = {p.get("containerPort"): p for p in ports}
            by_name = {p.get("name"): p for p in ports if p.get("name")}
            if len(by_name) != len([p for p in ports if p.get("name")]):
                P.add(cwhere, "two ports share a name")
            for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
                probe = c.get(probe_name)
                if not probe:
                    continue
                handlers = [h for h in ("grpc", "httpGet", "tcpSocket", "exec") if h in probe]
                if len(handlers) != 1:
                    P.add(cwhere, f"{probe_name} needs exactly one handler, has {handlers}")
                    continue
                h = handlers[0]
                if h == "exec":
                    continue
                port = probe[h].get("port")
                if h == "grpc" and not isinstance(port, int):
                    P.add(cwhere, f"{probe_name}: a grpc probe's port must be a number, not {port!r}")
                elif isinstance(port, int):
                    if port not in by_number:
                        P.add(cwhere, f"{probe_name} probes port {port}, which the container does not declare")
                elif port not in by_name:
                    P.add(cwhere, f"{probe_name} probes port {port!r}, which the container does not declare")

            env = Env(c, objs, registry, cwhere)
            for field in ("command", "args"):
                for word in c.get(field) or []:
                    env.check_refs(str(word), field)

            binary, flags, script = program_of(c)
            for flag in ("listen", "metrics-listen"):
                if flag in flags:
                    port = port_of(flags[flag])
                    if port is None or port not in by_number:
                        P.add(cwhere, f"--{flag}={flags[flag]}: port is not a declared container port")
            metrics_port = port_of(flags.get("metrics-listen", "")) or \
                (int(flags["metrics-port"]) if str(flags.get("metrics-port", "")).isdigit() else None)
            if metrics_port and scrape_port and str(metrics_port) != str(scrape_port):
                P.add(cwhere, f"serves metrics on {metrics_port} but prometheus.io/port is {scrape_port}")
            info = {"obj": w, "container": c, "flags": flags, "env": env, "where": cwhere,
                    "script": script}
            if binary == "stepflow-shard":
                shard_sets.append(info)
            elif binary == "stepflow-gateway":
                gateways.append(info)
            elif binary == "stepflow-worker":
                workers.append(info)

    for s in services:
        where = f"{label}: {fmt_id(s)}"
        sel = (s.get("spec") or {}).get("selector") or {}
        selected = [w for w in workloads
                    if labels_match(sel, ((pod_template(w).get("metadata") or {}).get("labels")))]
        if not selected:
            P.add(where, f"selector {sel} matches no pod template")
            continue
        for p in (s.get("spec") or {}).get("ports") or []:
            tp = p.get("targetPort", p.get("port"))
            for w in selected:
                declared = [(q.get("containerPort"), q.get("name"))
                            for c in containers_of(w) for q in c.get("ports") or []]
                if isinstance(tp, int) and tp not in [d[0] for d in declared] or \
                        isinstance(tp, str) and tp not in [d[1] for d in declared]:
                    P.add(where, f"targetPort {tp!r} is not a port of {fmt_id(w)}")

    for o in objs:
        where = f"{label}: {fmt_id(o)}"
        if o.get("kind") == "PodDisruptionBudget":
            sel = ((o.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
            if not any(labels_match(sel, (pod_template(w).get("metadata") or {}).get("labels"))
                       for w in workloads):
                P.add(where, f"selector {sel} matches no pod template")
        if o.get("kind") == "HorizontalPodAutoscaler":
            ref = (o.get("spec") or {}).get("scaleTargetRef") or {}
            target = next((w for w in workloads if w.get("kind") == ref.get("kind")
                           and w["metadata"].get("name") == ref.get("name")), None)
            if target is None:
                P.add(where, f"scaleTargetRef {ref.get('kind')} {ref.get('name')} is not in this build")
            else:
                for m in (o.get("spec") or {}).get("metrics") or []:
                    rname = (m.get("resource") or {}).get("name")
                    if m.get("type") == "Resource" and rname:
                        for c in containers_of(target):
                            if rname not in ((c.get("resources") or {}).get("requests") or {}):
                                P.add(where, f"scales on {rname} but container {c.get('name')} "
                                      f"of {fmt_id(target)} requests no {rname}")

    # Shard servers.
    peers_by_set = {}
    for info in shard_sets:
        w, f, where = info["obj"], info["flags"], info["where"]
        spec = w.get("spec") or {}
        if w.get("kind") != "StatefulSet":
            P.add(where, "stepflow-shard must run in a StatefulSet (ordinals, stable names, volumes)")
            continue
        replicas = spec.get("replicas", 1)
        try:
            flag_replicas = int(f.get("replicas", 1))
        except (TypeError, ValueError):
            P.add(where, f"--replicas={f.get('replicas')!r} is not a number")
            continue
        if flag_replicas != replicas:
            P.add(where, f"spec.replicas is {replicas} but --replicas is {flag_replicas}; "
                  "patch them together")
        peers = [p for p in str(f.get("peers", "")).split(",") if p]
        if len(peers) != replicas:
            P.add(where, f"--peers lists {len(peers)} address(es), spec.replicas is {replicas}")
        service_name = spec.get("serviceName")
        ns = w["metadata"].get("namespace")
        listen_port = port_of(f.get("listen", "0.0.0.0:7300"))
        name = w["metadata"]["name"]
        for i, peer in enumerate(peers):
            host, _, port = peer.rpartition(":")
            base = f"{name}-{i}.{service_name}"
            allowed = {base, f"{base}.{ns}", f"{base}.{ns}.svc", f"{base}.{ns}.svc.cluster.local"}
            if host not in allowed:
                P.add(where, f"--peers address {i} is {peer!r}; expected {base}:{listen_port} "
                      f"(pod {name}-{i} behind Service {service_name})")
            if not port.isdigit() or int(port) != listen_port:
                P.add(where, f"--peers address {i} ({peer}) does not use the --listen port {listen_port}")
        ordinal = str(f.get("ordinal", ""))
        if "HOSTNAME" not in ordinal and not (info["script"] and "${HOSTNAME##*-}" in info["script"]):
            P.add(where, "--ordinal does not come from the pod name (${HOSTNAME##*-})")
        svc = next((s for s in services if s["metadata"].get("name") == service_name), None)
        if svc is None:
            P.add(where, f"serviceName {service_name!r}: no such Service in this build")
        else:
            if (svc.get("spec") or {}).get("clusterIP") != "None":
                P.add(f"{label}: {fmt_id(svc)}", "must be headless (clusterIP: None) for per-pod DNS names")
            tlabels = (pod_template(w).get("metadata") or {}).get("labels")
            if not labels_match((svc.get("spec") or {}).get("selector"), tlabels):
                P.add(f"{label}: {fmt_id(svc)}", f"does not select the pods of {fmt_id(w)}")
        data_dir = str(f.get("data-dir", ""))
        claims = {(t.get("metadata") or {}).get("name") for t in spec.get("volumeClaimTemplates") or []}
        mounts = [m for m in info["container"].get("volumeMounts") or []
                  if data_dir == m.get("mountPath") or data_dir.startswith(m.get("mountPath", "") + "/")]
        if not data_dir or not any(m.get("name") in claims for m in mounts):
            P.add(where, f"--data-dir={data_dir or '(unset)'} is not on a volumeClaimTemplates volume")
        tlabels = (pod_template(w).get("metadata") or {}).get("labels")
        if not any(o.get("kind") == "PodDisruptionBudget" and labels_match(
                ((o.get("spec") or {}).get("selector") or {}).get("matchLabels"), tlabels)
                for o in objs):
            P.add(where, "no PodDisruptionBudget selects the shard server pods")
        shards = info["env"].expand(f.get("shards"))
        if shards is not None and (not shards.isdigit() or int(shards) < 1):
            P.add(where, f"--shards resolves to {shards!r}, not a positive number")
        peers_by_set[name] = (peers, shards)

    # Gateways route to the shard servers.
    for info in gateways:
        where, f = info["where"], info["flags"]
        servers = [p for p in str(f.get("shard-servers", "")).split(",") if p]
        if not peers_by_set:
            P.add(where, "no shard server StatefulSet in this build to check --shard-servers against")
            continue
        if len(peers_by_set) > 1:
            P.add(where, "several shard server StatefulSets; cannot tell which one this gateway uses")
            continue
        (peers, shards), = peers_by_set.values()
        if servers != peers:
            P.add(where, f"--shard-servers {servers} differs from the shard servers' --peers {peers}")
        gshards = info["env"].expand(f.get("shards"))
        if gshards != shards:
            P.add(where, f"--shards resolves to {gshards!r}, the shard servers use {shards!r}")
        tlabels = (pod_template(info["obj"]).get("metadata") or {}).get("labels")
        if not any(labels_match((s.get("spec") or {}).get("selector"), tlabels) for s in services):
            P.add(where, "no Service selects the gateway pods")

    # Workers.
    for info in workers:
        where, f = info["where"], info["flags"]
        pod_spec = pod_template(info["obj"]).get("spec") or {}
        grace = pod_spec.get("terminationGracePeriodSeconds", 30)
        try:
            stop = float(f.get("stop-timeout-seconds", 0))
        except (TypeError, ValueError):
            P.add(where, f"--stop-timeout-seconds={f.get('stop-timeout-seconds')!r} is not a number")
            continue
        if stop > 0 and grace < stop + 10:
            P.add(where, f"terminationGracePeriodSeconds {grace} does not cover "
                  f"--stop-timeout-seconds {stop:g} + 5 s kill delay + a margin to report")
        if stop == 0 and grace <= 30:
            P.add(where, "--stop-timeout-seconds 0 waits for running commands, but the grace "
                  f"period is only {grace}s; raise terminationGracePeriodSeconds")
        endpoint = str(f.get("endpoint", ""))
        host, _, port = endpoint.rpartition(":")
        parts = host.split(".")
        svc = next((s for s in registry if s.get("kind") == "Service"
                    and s["metadata"].get("name") == parts[0]
                    and (len(parts) < 2 or s["metadata"].get("namespace") == parts[1])), None)
        if svc is None:
            P.add(where, f"--endpoint {endpoint}: no Service {host} in any kustomization here")
        elif not any(str(p.get("port")) == port for p in (svc.get("spec") or {}).get("ports") or []):
            P.add(where, f"--endpoint {endpoint}: Service {host} has no port {port}")
    return {"shards": peers_by_set, "gateways": len(gateways), "workers": len(workers)}


# --------------------------------------------------------------------------
# The Containerfile.

def check_containerfile():
    path = os.path.join(DEPLOY, "container", "Containerfile")
    where = rel(path)
    try:
        text = open(path, encoding="utf-8").read()
    except OSError as e:
        P.add(where, f"cannot read: {e}")
        return
    lines = re.sub(r"\\\n", " ", text).splitlines()
    instructions = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
    froms = [i.split()[1] for i in instructions if i.upper().startswith("FROM ")]
    strip = lambda ref: re.sub(r"^(docker\.io/)?(library/)?", "", ref)
    if not froms or strip(froms[0]) != "debian:bookworm":
        P.add(where, f"the build stage must be FROM debian:bookworm (found {froms[:1]})")
    if not froms or strip(froms[-1]) != "debian:bookworm-slim":
        P.add(where, f"the runtime stage must be FROM debian:bookworm-slim (found {froms[-1:]})")
    stages = [[]]
    for ins in instructions:
        if ins.upper().startswith("FROM ") and stages[-1]:
            stages.append([])
        stages[-1].append(ins)
    build, runtime = stages[0], stages[-1]
    build_text = "\n".join(build)
    for script in ("tools/setup.sh", "tools/build.sh"):
        if not re.search(r"^RUN .*" + re.escape(script), build_text, re.M):
            P.add(where, f"the build stage does not run {script}")
    copied = set()
    for ins in build:
        if ins.upper().startswith("COPY ") and "--from" not in ins:
            for src in shlex.split(ins)[1:-1]:
                copied.add(src.rstrip("/").lstrip("./") or ".")
    if "." not in copied:
        try:
            cmake = open(os.path.join(ROOT, "CMakeLists.txt"), encoding="utf-8").read()
        except OSError as e:
            P.add(where, f"cannot read the top-level CMakeLists.txt: {e}")
            cmake = ""
        needed = {"CMakeLists.txt"}
        needed |= set(re.findall(r"^\s*add_subdirectory\(\s*([^\s)]+)", cmake, re.M))
        needed |= {p.split("/")[0] for p in re.findall(r"^\s*include\(\s*([^\s)]+/[^\s)]+)", cmake, re.M)}
        for folder in sorted(needed - copied):
            P.add(where, f"the build stage does not COPY {folder}, which the CMake build reads")
    binaries = {
        "build/services/gateway/stepflow-gateway": "services/gateway",
        "build/services/execution/stepflow-shard": "services/execution",
        "build/services/eventbus/stepflow-eventbus": "services/eventbus",
        "build/services/worker/stepflow-worker": "services/worker",
        "build/tools/cli/stepflow": "tools/cli",
    }
    for out, src in binaries.items():
        name = os.path.basename(out)
        if out not in build_text:
            P.add(where, f"the build stage does not take {out}")
        if not re.search(r"build\.sh[^\n]*\s" + re.escape(name) + r"(\s|$)", build_text):
            P.add(where, f"tools/build.sh is not asked to build the target {name}")
        try:
            lists = open(os.path.join(ROOT, src, "CMakeLists.txt"), encoding="utf-8").read()
            if not re.search(r"NAME\s+" + re.escape(name) + r"[\s)]", lists):
                P.add(where, f"{src}/CMakeLists.txt defines no binary {name} (so no {out})")
        except OSError:
            P.add(where, f"{src}/CMakeLists.txt is missing (expected to build {out})")
    runtime_text = "\n".join(runtime)
    for m in re.finditer(r"apt-get install([^&|;]*)", runtime_text):
        for pkg in m.group(1).split():
            if pkg.endswith("-dev"):
                P.add(where, f"the runtime stage installs a development package: {pkg}")
    users = [i.split()[1] for i in runtime if i.upper().startswith("USER ")]
    if not users:
        P.add(where, "the runtime stage has no USER (it would run as root)")
    else:
        uid = users[-1].split(":")[0]
        if not uid.isdigit() or uid == "0":
            P.add(where, f"USER {users[-1]}: use a numeric non-zero uid so runAsNonRoot can verify it")
    if re.search(r"\b(curl|wget|git clone|pip install|npm install)\b", runtime_text + build_text):
        P.add(where, "downloads something other than Debian packages")


# --------------------------------------------------------------------------

def kubectl_build(directory):
    try:
        out = subprocess.run(["kubectl", "kustomize", directory], capture_output=True,
                             text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        P.add(rel(directory), f"kubectl kustomize failed to run: {e}")
        return None
    if out.returncode != 0:
        P.add(rel(directory), f"kubectl kustomize fails: {out.stderr.strip()}")
        return None
    return [d for d in yaml.safe_load_all(out.stdout) if d is not None]


def summary_key(o):
    out = {"replicas": (o.get("spec") or {}).get("replicas") if pod_template(o) is not None else None}
    out["containers"] = [(c.get("name"), c.get("image"), c.get("command"), c.get("args"),
                          c.get("resources"))
                         for c in containers_of(o)]
    if o.get("kind") in ("Secret", "ConfigMap"):
        out["data"] = (o.get("data"), o.get("stringData"))
    if o.get("kind") == "StatefulSet":
        out["claims"] = (o.get("spec") or {}).get("volumeClaimTemplates")
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-kubectl", action="store_true",
                        help="do not cross-check with `kubectl kustomize` even if it is installed")
    options = parser.parse_args()

    yaml_files, kdirs = [], []
    for dirpath, dirnames, filenames in os.walk(DEPLOY):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__pycache__")
        for fn in sorted(filenames):
            path = os.path.join(dirpath, fn)
            if fn.endswith((".yaml", ".yml")) or fn == "Kustomization":
                yaml_files.append(path)
        if find_kustomization(dirpath):
            kdirs.append(dirpath)

    for path in yaml_files:
        load_docs(path)  # reports parse errors of every file, used or not

    used = set()
    rendered = {}
    for d in kdirs:
        before = len(P.items)
        objs = render(d, used)
        rendered[d] = (objs, len(P.items) == before)

    for path in yaml_files:
        if path not in used:
            P.add(rel(path), "not a kustomization and not used by any kustomization")

    registry = [o for objs, _ in rendered.values() for o in objs]
    reports = {}
    for d, (objs, _) in rendered.items():
        reports[d] = check_rendered(objs, rel(d), registry)

    kubectl = None if options.no_kubectl else shutil.which("kubectl")
    if kubectl:
        for d, (objs, _) in rendered.items():
            theirs = kubectl_build(d)
            if theirs is None:
                continue
            check_rendered(theirs, rel(d) + " (kubectl kustomize)", registry)
            mine = {obj_id(o): o for o in objs}
            other = {obj_id(o): o for o in theirs}
            for i in sorted(set(mine) ^ set(other), key=str):
                side = "only check.py's" if i in mine else "only kubectl's"
                P.add(rel(d), f"{i[0]} {i[2]} appears in {side} rendering")
            for i in set(mine) & set(other):
                if summary_key(mine[i]) != summary_key(other[i]):
                    P.add(rel(d), f"check.py and kubectl kustomize render {i[0]} {i[2]} differently")

    check_containerfile()

    if P.items:
        print(f"deploy/check.py: {len(P.items)} problem(s):", file=sys.stderr)
        for item in P.items:
            print(f"  {item}", file=sys.stderr)
        return 1
    for d, (objs, _) in rendered.items():
        r = reports[d]
        shards = "; ".join(f"{n}: {len(p)} server(s), {s} logical shards"
                           for n, (p, s) in r["shards"].items()) or "no shard servers"
        print(f"ok  {rel(d)}: {len(objs)} objects; {shards}; "
              f"{r['gateways']} gateway Deployment(s), {r['workers']} worker Deployment(s)")
    print(f"ok  {rel(os.path.join(DEPLOY, 'container', 'Containerfile'))}")
    if kubectl:
        print("ok  same objects and checks with `kubectl kustomize`")
    else:
        print("--  built-in renderer only (" +
              ("--no-kubectl" if options.no_kubectl else "kubectl not found") + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
