# The temporal-flows image: `tflow` with the project and its dependencies installed.
# Default command: a worker (`tflow worker`); flows are mounted at /flows, not baked in.
#
#   docker build -t temporal-flows .
#   docker run --rm -e TEMPORAL_ADDRESS=temporal-host:7233 -v "$PWD/examples:/flows:ro" temporal-flows
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src

# Dependencies first, read from pyproject.toml, so source edits do not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The project itself (what .dockerignore leaves in the context).
COPY . ./
RUN pip install . \
    && cd / && rm -rf /src

RUN useradd --create-home --uid 10001 --user-group tflow \
    && mkdir -p /flows \
    && chown tflow:tflow /flows

WORKDIR /flows
USER tflow

ENTRYPOINT ["tflow"]
CMD ["worker"]
