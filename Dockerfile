# The lakejob operator image.
#   Elsewhere (a Docker engine, a registry):  docker build -t lakejob/operator:0.1.0 .
#   Here (no engine, no registry):             python3 images/build.py build operator
#     builds it with buildah on lakejob.local/python-base:bookworm (--build-arg BASE=..., Debian's
#     Python 3.11 made with mmdebstrap) as lakejob.local/operator:<version>; see images/build.py.
# Two stages: the wheel is built in the first, installed into a venv in the second; the final
# image has no build tools, runs as a numeric non-root uid and needs only /tmp writable
# (the chart mounts an emptyDir there and sets readOnlyRootFilesystem).
# The same image runs `lakejob-oss` (the `oss` extra: boto3) as the fetch init container and the
# upload sidecar of DagJob command tasks, with their own command and uid (LAKEJOB_DAG_UID).
ARG BASE=python:3.11-slim
FROM ${BASE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN pip install --no-cache-dir build==1.2.2 && python -m build --wheel --outdir /dist

FROM ${BASE}
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/lakejob/bin:$PATH
COPY --from=build /dist/*.whl /tmp/
RUN python -m venv /opt/lakejob \
 && wheel="$(echo /tmp/lakejob-*.whl)" \
 && /opt/lakejob/bin/pip install --no-cache-dir "${wheel}[oss]" \
 && rm -f /tmp/*.whl
USER 10001:10001
EXPOSE 8080 9090
ENTRYPOINT ["lakejob"]
CMD ["run", "--all-namespaces", "--liveness=http://0.0.0.0:8080/healthz"]
