"""`hydrophone-operator import-upstream`: turn OrcaHello's hand-made deployment into Hydrophone manifests.

Upstream runs one namespace per site holding a ConfigMap of flat `config.yml` keys (UPSTREAM §5) and a
one-replica Deployment whose image tag names the model. Its ConfigMaps come in two shapes, both read here:
one per namespace, or one shared ConfigMap with a `<site>.yml` entry per site. A site is the namespace (for
a `config.yml` entry) or the entry's file stem, and is matched with the Deployment in the namespace of that
name.

Output: one Hydrophone per site, named after the site, so by default it claims the upstream namespace name.
The operator never adopts a namespace it did not create, so a site is cut over by removing the upstream
namespace first (README, "Migrating from the upstream deployment"); `--shadow` instead names the Hydrophone
`<site>-shadow` with publishing off, to compare a site side by side without duplicate detections.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import yaml
from hydrophone_worker.config import KNOWN_HYDROPHONES, ConfigError, looks_like_upstream, translate_upstream
from pydantic.alias_generators import to_camel

from hydrophone_operator import OperatorError
from hydrophone_operator.resource import API_GROUP, API_VERSION, KIND

# `<date>.<model>.<rounds>[.<variant>...].v<major>`, e.g. 11-15-20.FastAI.R1-12.v0 or
# 09-19-24.FastAI.R1-12.BushPoint.v0: the model is baked into the image, so the tag is the model's name.
UPSTREAM_MODEL_TAG = re.compile(r"^\d{2}-\d{2}-\d{2}\.[A-Za-z0-9]+\.[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.v\d+$")
SITE_CONFIG_SUFFIXES = (".yml", ".yaml")
SHARED_CONFIG_STEMS = ("config",)  # `config.yml`: the site is the ConfigMap's namespace
IMPORTED_FROM_ANNOTATION = f"{API_GROUP}/imported-from"
SHADOW_SUFFIX = "-shadow"
DEFAULT_CREDENTIALS_SECRET = "inference-system"  # upstream's hand-made Secret, same three keys


class UpstreamImportError(OperatorError, ValueError):
    """Everything wrong with the inputs, one line per problem naming the file, the field and the fix."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("cannot import the upstream deployment:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class SiteConfig:
    site: str
    origin: str  # "ConfigMap <namespace>/<name>, key <key>": recorded on the Hydrophone
    source: str  # "<file>: <origin>", for messages
    flat: dict[str, Any]


@dataclass(frozen=True)
class Document:
    source: str
    body: dict[str, Any]


def _site_configs(doc: Document, problems: list[str]) -> list[SiteConfig]:
    meta = doc.body.get("metadata") or {}
    data = doc.body.get("data") or {}
    found = []
    for key, text in data.items():
        stem, suffix = Path(key).stem, Path(key).suffix
        if suffix not in SITE_CONFIG_SUFFIXES:
            continue
        origin = f"ConfigMap {meta.get('namespace') or '(no namespace)'}/{meta.get('name')}, key {key}"
        where = f"{doc.source}: {origin}"
        try:
            flat = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            problems.append(f"{where}: not valid YAML ({exc})")
            continue
        if not isinstance(flat, dict) or not looks_like_upstream(flat):
            continue  # some other file in the ConfigMap
        site = meta.get("namespace") if stem in SHARED_CONFIG_STEMS else stem
        if not site:
            problems.append(
                f"{where}: no metadata.namespace, so the site is unknown — fix: add the "
                "namespace the ConfigMap is deployed to"
            )
            continue
        found.append(SiteConfig(site=site, origin=origin, source=where, flat=flat))
    return found


def _pod_spec(deployment: Document) -> dict[str, Any]:
    return ((deployment.body.get("spec") or {}).get("template") or {}).get("spec") or {}


def _container(deployment: Document) -> dict[str, Any]:
    """Upstream's Deployments run one container, the inference system."""
    container: dict[str, Any] = (_pod_spec(deployment).get("containers") or [{}])[0]
    return container


def _model_tag(deployment: Document, problems: list[str]) -> str | None:
    where = f"{deployment.source}: Deployment {deployment.body['metadata'].get('name')}"
    image = str(_container(deployment).get("image", ""))
    tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
    if not UPSTREAM_MODEL_TAG.match(tag):
        problems.append(
            f"{where}: image {image!r} has no model tag like 11-15-20.FastAI.R1-12.v0 "
            "(<date>.<model>.<rounds>.v<major>) — fix: pin the Deployment to the tag it runs"
        )
        return None
    return tag


def _worker(deployment: Document) -> dict[str, Any]:
    pod = _pod_spec(deployment)
    worker: dict[str, Any] = {}
    declared = _container(deployment).get("resources") or {}
    resources = {key: value for key, value in declared.items() if key in ("requests", "limits") and value}
    if resources:
        worker["resources"] = resources
    if pod.get("nodeSelector"):
        worker["nodeSelector"] = pod["nodeSelector"]
    if pod.get("tolerations"):
        worker["tolerations"] = pod["tolerations"]
    return worker


def _secret_names(deployment: Document) -> set[str]:
    """The Secrets upstream's env vars name (only names: Secret objects among the inputs are ignored)."""
    container = _container(deployment)
    names = {
        ((env.get("valueFrom") or {}).get("secretKeyRef") or {}).get("name")
        for env in container.get("env") or []
    }
    names |= {(ref.get("secretRef") or {}).get("name") for ref in container.get("envFrom") or []}
    return {name for name in names if name}


def _spec(
    config: SiteConfig,
    deployment: Document | None,
    *,
    shadow: bool,
    credentials_secret: str,
    problems: list[str],
) -> dict[str, Any] | None:
    try:
        ours = translate_upstream(config.flat, source=config.source)
    except ConfigError as exc:
        problems.extend(f"{config.source}: {line}" for line in exc.problems)
        return None
    if ours["stream"].get("mode") != "live":
        problems.append(
            f"{config.source}: hls_stream_type DateRangeHLS is a one-off backfill, not a site — "
            "fix: run `hydrophone-worker backfill` for it and leave it out of the import"
        )
        return None
    stream_id = ours["stream"]["streamId"]
    spec: dict[str, Any] = {"streamId": stream_id}
    if shadow:
        spec["namespace"] = f"{config.site}{SHADOW_SUFFIX}"
    known = KNOWN_HYDROPHONES.get(stream_id)
    if known is not None:
        spec["displayName"] = known.name
        spec["location"] = {"latitude": known.latitude, "longitude": known.longitude}
    if deployment is not None and (tag := _model_tag(deployment, problems)):
        spec["model"] = {"tag": tag}
    detection = dict(ours["detection"])
    if "aggregation" in detection:
        detection["aggregation"] = to_camel(detection["aggregation"])
    if detection:
        spec["detection"] = detection
    publish = dict(ours["publish"])
    if shadow:
        publish = {"enabled": False}
    if publish:
        spec["publish"] = publish
    if "azure" in publish.get("sinks", []):
        secrets = _secret_names(deployment) if deployment is not None else set()
        if deployment is not None and len(secrets) > 1:
            names = ", ".join(sorted(secrets))
            problems.append(
                f"{deployment.source}: the worker reads Secrets {names} — fix: merge them into "
                "one, a Hydrophone names a single credentials Secret"
            )
        spec["credentials"] = {"secretName": secrets.pop() if len(secrets) == 1 else credentials_secret}
    if deployment is not None and (worker := _worker(deployment)):
        spec["worker"] = worker
    return spec


def import_sites(
    documents: list[Document], *, shadow: bool = False, credentials_secret: str = DEFAULT_CREDENTIALS_SECRET
) -> list[dict[str, Any]]:
    """Hydrophone manifests for every upstream site in `documents`, sorted by name; raises on any problem."""
    problems: list[str] = []
    configs: dict[str, SiteConfig] = {}
    deployments: dict[str, Document] = {}
    for doc in documents:
        kind, meta = doc.body.get("kind"), doc.body.get("metadata") or {}
        if kind == "ConfigMap":
            for config in _site_configs(doc, problems):
                if config.site in configs:
                    problems.append(
                        f"{config.source}: site {config.site} is also configured in "
                        f"{configs[config.site].source} — fix: pass each site's config once"
                    )
                configs[config.site] = config
        elif kind == "Deployment":
            namespace = meta.get("namespace")
            if not namespace:
                problems.append(
                    f"{doc.source}: Deployment {meta.get('name')} has no metadata.namespace — "
                    "fix: add the namespace it runs in (the site)"
                )
            elif namespace in deployments:
                problems.append(
                    f"{doc.source}: a second Deployment in namespace {namespace} (the first is "
                    f"in {deployments[namespace].source}) — fix: pass only the inference "
                    "Deployment"
                )
            else:
                deployments[namespace] = doc
    for namespace, doc in sorted(deployments.items()):
        if namespace not in configs:
            problems.append(
                f"{doc.source}: Deployment in namespace {namespace} has no site config among the "
                f"inputs — fix: also pass the ConfigMap with {namespace}.yml or config.yml"
            )
    if not configs and not problems:
        read = ", ".join(sorted({doc.source for doc in documents})) or "no documents"
        problems.append(
            f"no upstream site config found in {read} — fix: pass the ConfigMap files "
            "(deploy/*-configmap.yaml) whose entries hold hls_hydrophone_id and the other "
            "upstream keys"
        )
    manifests = []
    readers: dict[str, str] = {}  # streamId -> the site already reading it
    for site, config in sorted(configs.items()):
        spec = _spec(
            config,
            deployments.get(site),
            shadow=shadow,
            credentials_secret=credentials_secret,
            problems=problems,
        )
        if spec is None:
            continue
        if (other := readers.setdefault(spec["streamId"], site)) != site:
            problems.append(
                f"{config.source}: site {site} reads {spec['streamId']} like site {other}, so every "
                "detection would be published twice — fix: import only the site that keeps the stream"
            )
        manifests.append(_manifest(site, config, spec, shadow=shadow))
    if problems:
        raise UpstreamImportError(problems)
    return manifests


def _manifest(site: str, config: SiteConfig, spec: dict[str, Any], *, shadow: bool) -> dict[str, Any]:
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": KIND,
        "metadata": {
            "name": f"{site}{SHADOW_SUFFIX}" if shadow else site,
            "annotations": {IMPORTED_FROM_ANNOTATION: config.origin},
        },
        "spec": spec,
    }


def read_documents(paths: list[Path]) -> list[Document]:
    documents = []
    problems = []
    for path in paths:
        try:
            bodies = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except (OSError, yaml.YAMLError) as exc:
            problems.append(f"{path}: cannot read it as YAML ({exc})")
            continue
        documents += [Document(source=str(path), body=body) for body in bodies if isinstance(body, dict)]
    if problems:
        raise UpstreamImportError(problems)
    return documents


@click.command("import-upstream")
@click.argument(
    "paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--shadow",
    is_flag=True,
    help="Name each Hydrophone <site>-shadow with publishing off, to run beside upstream.",
)
@click.option(
    "--credentials-secret",
    default=DEFAULT_CREDENTIALS_SECRET,
    show_default=True,
    help="Secret for publishing sites whose Deployment names none.",
)
def import_upstream(paths: tuple[Path, ...], shadow: bool, credentials_secret: str) -> None:
    """Print Hydrophone manifests for upstream's ConfigMaps and Deployments (files in PATHS)."""
    try:
        documents = read_documents(list(paths))
        manifests = import_sites(documents, shadow=shadow, credentials_secret=credentials_secret)
    except UpstreamImportError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(yaml.safe_dump_all(manifests, sort_keys=False), nl=False)
