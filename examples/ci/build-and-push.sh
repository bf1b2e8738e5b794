#!/usr/bin/env bash
# Build a versioned model image from a Modelfile and push it, unattended; any CI runs this.
#
#   MODELFILE        the Modelfile (default: Modelfile)
#   MODEL_REPOSITORY where it goes, host[:port]/namespace/name (required)
#   MODEL_VERSION    the tag; default: the git tag at HEAD, else CI's build number
#                    (GITHUB_RUN_NUMBER, CI_PIPELINE_IID, BUILD_NUMBER), else the short commit
#   MDL_REGISTRY_USER / MDL_REGISTRY_PASSWORD   the registry's credentials
#   MDL_REGISTRY_HOST  the hosts those credentials are for (comma-separated host[:port]);
#                      default: MODEL_REPOSITORY's registry. mdl sends them to no other host.
#   MDL                the mdl command (default: mdl)
#
# Prints the manifest digest on stdout (and writes it to model.digest); exits non-zero on any
# error. The build is reproducible: the same inputs give the same digest on any machine.
set -euo pipefail

mdl=${MDL:-mdl}
modelfile=${MODELFILE:-Modelfile}
repository=${MODEL_REPOSITORY:?set MODEL_REPOSITORY to host[:port]/namespace/name}
export MDL_REGISTRY_HOST=${MDL_REGISTRY_HOST:-${repository%%/*}}
revision=$(git rev-parse HEAD 2>/dev/null || true)
version=${MODEL_VERSION:-$(git describe --tags --exact-match 2>/dev/null || true)}
version=${version:-${GITHUB_RUN_NUMBER:-${CI_PIPELINE_IID:-${BUILD_NUMBER:-}}}}
version=${version:-${revision:0:12}}
: "${version:?no MODEL_VERSION, git tag, build number or commit to version the model with}"

labels=(--label "org.opencontainers.image.version=$version")
[ -n "$revision" ] && labels+=(--label "org.opencontainers.image.revision=$revision")
source_url=$(git config --get remote.origin.url 2>/dev/null || true)
[ -n "$source_url" ] && labels+=(--label "org.opencontainers.image.source=$source_url")

export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}

"$mdl" build -f "$modelfile" -t "$repository:$version" "${labels[@]}" \
    --push --iidfile model.digest --json >model-build.json
cat model.digest
echo
