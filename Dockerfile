# atlas server image: Python, git, bubblewrap, a verified terraform release, and atlas running as a
# non-root user.
#
#   docker build -t atlas .
#   docker run -p 4141:4141 -v atlas-data:/home/atlas/.atlas \
#     --security-opt seccomp=unconfined --security-opt apparmor=unconfined --security-opt systempaths=unconfined \
#     -e ATLAS_SANDBOX=required -e ATLAS_GH_TOKEN -e ATLAS_GH_WEBHOOK_SECRET \
#     -e ATLAS_REPO_ALLOWLIST='github.com/acme/*' atlas
#
# The three --security-opt let atlas's own sandbox (bubblewrap, which confines the pull request's
# code) work inside the container: Docker's default seccomp profile refuses the unshare and clone
# calls that create namespaces, its AppArmor profile refuses mounts, and its masked /proc keeps a
# new /proc from being mounted. With ATLAS_SANDBOX=required atlas refuses to start without them
# and says why; the default (auto) starts anyway with a loud warning. See the Security section of
# deploy/README.md for what each option opens and for the alternatives.
#
# Give `docker stop` more than the server's 30-second graceful timeout (`--time 40`) so running
# requests can finish, and `--init` so a process reaps what terraform leaves behind.

ARG PYTHON_VERSION=3.11

# --- terraform: downloaded and checked in its own stage, so curl and gnupg stay out of the image ---
FROM python:${PYTHON_VERSION}-slim AS terraform

ARG TERRAFORM_VERSION=1.11.4
# Set by BuildKit; the fallback covers the classic builder.
ARG TARGETARCH
# HashiCorp's release signing key, as published on https://www.hashicorp.com/trust/security.
ARG HASHICORP_PGP_FINGERPRINT=C874011F0AB405110D02105534365D9472D7468F

RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl gnupg unzip \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /tmp/terraform
# The checksums are only as good as their signature, which is checked with HashiCorp's key alone.
RUN set -eux; \
    arch="${TARGETARCH:-$(dpkg --print-architecture)}"; \
    base="https://releases.hashicorp.com/terraform/${TERRAFORM_VERSION}"; \
    sums="terraform_${TERRAFORM_VERSION}_SHA256SUMS"; \
    zip="terraform_${TERRAFORM_VERSION}_linux_${arch}.zip"; \
    curl -fsSL --retry 5 -O "${base}/${zip}" -O "${base}/${sums}" -O "${base}/${sums}.sig"; \
    curl -fsSL --retry 5 -o hashicorp.asc https://www.hashicorp.com/.well-known/pgp-key.txt; \
    export GNUPGHOME="$(mktemp -d)"; \
    gpg --batch --import hashicorp.asc; \
    gpg --batch --with-colons --fingerprint | grep -q "^fpr:::::::::${HASHICORP_PGP_FINGERPRINT}:"; \
    gpg --batch --verify "${sums}.sig" "${sums}"; \
    grep " ${zip}\$" "${sums}" | sha256sum -c -; \
    unzip -q "${zip}" terraform -d /usr/local/bin; \
    /usr/local/bin/terraform version

# --- atlas ---
FROM python:${PYTHON_VERSION}-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap ca-certificates git \
    && rm -rf /var/lib/apt/lists/*

COPY --from=terraform /usr/local/bin/terraform /usr/local/bin/terraform

COPY . /tmp/atlas-src
RUN pip install --no-cache-dir "/tmp/atlas-src[s3]" && rm -rf /tmp/atlas-src

RUN useradd --create-home --home-dir /home/atlas --uid 1000 --user-group --shell /usr/sbin/nologin atlas \
    && mkdir -p /home/atlas/.atlas \
    && chown atlas:atlas /home/atlas/.atlas

USER atlas
# The data dir is atlas's default ~/.atlas; it is not set through ATLAS_DATA_DIR, which would
# override a config file's data-dir.
ENV HOME=/home/atlas \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /home/atlas
# Working copies, plans and the job database: keep them across container restarts.
VOLUME ["/home/atlas/.atlas"]

EXPOSE 4141
ENTRYPOINT ["atlas"]
CMD ["server"]
