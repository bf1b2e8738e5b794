"""Media types, annotation keys and file paths of mdl's model artifacts (see docs/format.md)."""

from __future__ import annotations

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"

MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})

MODEL_ARTIFACT = "application/vnd.cncf.model.manifest.v1+json"
MODEL_CONFIG = "application/vnd.cncf.model.config.v1+json"
MODEL_WEIGHT = "application/vnd.cncf.model.weight.v1.raw"
MODEL_WEIGHT_CONFIG = "application/vnd.cncf.model.weight.config.v1.raw"
MODEL_DOC = "application/vnd.cncf.model.doc.v1.raw"

ANNOTATION_FILEPATH = "org.cncf.model.filepath"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_CREATED = "org.opencontainers.image.created"
ANNOTATION_SUBJECT = "dev.mdl.subject"
"""On a store's index.json entry: the manifest this untagged referrer is attached to."""

# The file each part of a model is stored as, inside the package.
WEIGHTS_FILE = "model.gguf"
WHISPER_WEIGHTS_FILE = "ggml-model.bin"
"""A whisper.cpp model (ggml format, ``mdl.spec.whisper_ggml``): the name its converter writes."""
PROJECTOR_FILE = "projector.gguf"
DRAFT_FILE = "draft.gguf"
ADAPTER_DIR = "adapters/"
TEMPLATE_FILE = "template"
SYSTEM_FILE = "system.txt"
PARAMS_FILE = "params.json"
MESSAGES_FILE = "messages.json"
LICENSE_FILE = "LICENSE"
MODELFILE_FILE = "Modelfile"
