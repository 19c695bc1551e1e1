# The lakejob operator image. Build: docker build -t lakejob/operator:0.1.0 .
# Two stages: the wheel is built in the first, installed into a venv in the second; the final
# image has no build tools, runs as a numeric non-root uid and needs only /tmp writable
# (the chart mounts an emptyDir there and sets readOnlyRootFilesystem).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN pip install --no-cache-dir build==1.2.2 && python -m build --wheel --outdir /dist

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/lakejob/bin:$PATH
COPY --from=build /dist/*.whl /tmp/
RUN python -m venv /opt/lakejob \
 && /opt/lakejob/bin/pip install --no-cache-dir /tmp/*.whl \
 && rm -f /tmp/*.whl
USER 10001:10001
EXPOSE 8080 9090
ENTRYPOINT ["lakejob"]
CMD ["run", "--all-namespaces", "--liveness=http://0.0.0.0:8080/healthz"]
