"""Pure builders: a DagJob's tasks → the objects that run them. No I/O.

Called by lakejob.controllers.dagjob when controllers.dagjob_decide says to start a task.
- a command task → an Indexed batch/v1 Job: completions = parallelism = InstanceCount,
  backoffLimitPerIndex = MaxRetryCount, the pod's activeDeadlineSeconds = Timeout, restartPolicy
  Never, maxFailedIndexes 0 when JobFailOnInstanceFail (the first index out of retries fails the
  Job at once); an init container `fetch` (`lakejob-oss fetch`, the operator's image) fetches
  PackagePath into the working directory and InputMapping / Mounts entries into their local
  paths; a native sidecar `upload` (`lakejob-oss upload`) echoes the command's stdout/stderr and,
  once the command has exited, uploads them, OutputMapping and LogMapping (lakejob.oss);
- a sparkBatch / flinkJarJob task → a child SparkBatch / FlinkJarJob resource (its own
  controller runs it);
- inline OSS keys → one Secret per DagJob that the tasks' fetchers read (never the keys themselves).
Every object is owned by the DagJob (ownerReference, controller: true), so deleting the DagJob
removes them all through the garbage collector. Names derive from the DagJob's name, the task and
its run only, so every create is idempotent.
"""
from __future__ import annotations

import hashlib
import posixpath
import re
import shlex
from typing import Any

from lakejob.models.dagjob import CHILD_KINDS, DagJobSpec, OSSCredentials, Task
from lakejob.oss.upload import READY_FILE
from lakejob.render import common
from lakejob.render.common import Owner, short_name
from lakejob.settings import Settings

API_VERSION = "lakejob.io/v1alpha1"
WORKDIR = "/lakejob/work"
OUT_DIR = "/lakejob/out"  # the command's stdout and stderr files, read by the upload sidecar
FETCHER = "fetch"
UPLOADER = "upload"
MAIN = "task"
TOOL = "lakejob-oss"
# The command's stdout/stderr to files the sidecar uploads; the command's words follow as $0 "$@",
# never parsed by the shell. The task's image needs /bin/sh. The shell stays, as the container's
# PID 1, and passes SIGTERM on: a PID 1 without a handler of its own ignores SIGTERM (the kernel
# gives PID 1 no default action), so a command exec'd there (`python worker.py`) would not stop
# on a pod's deletion and would take the whole grace period, leaving the upload sidecar none.
# The container's exit status is the command's (128 + N when signal N ended it); `kill -0` loops
# while the command still runs after a signal interrupted `wait`.
REDIRECT = (f'trap \'kill -TERM "$pid" 2>/dev/null\' TERM INT; '
            f'"$0" "$@" >>{OUT_DIR}/stdout 2>>{OUT_DIR}/stderr & pid=$!; '
            'wait "$pid"; status=$?; '
            'while kill -0 "$pid" 2>/dev/null; do wait "$pid"; status=$?; done; exit "$status"')
OSS_KEYS = ("AccessKeyId", "AccessKeySecret", "AccessSecurityToken")
# lakejob-oss's environment: the names Alibaba's OSS tools read.
OSS_ENV = {"AccessKeyId": "OSS_ACCESS_KEY_ID", "AccessKeySecret": "OSS_ACCESS_KEY_SECRET",
           "AccessSecurityToken": "OSS_SESSION_TOKEN"}
TASK_ANNOTATION = "lakejob.io/task"
RUN_ANNOTATION = "lakejob.io/run"
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
# The pod customisation blocks of each embedded kind (where the DagJob's PriorityClass goes).
POD_ROLES = {"sparkBatch": ("driver", "executor"), "flinkJarJob": ("jobManager", "taskManager")}


def child_name(cr_name: str, task: str, run: int) -> str:
    """The Job or custom resource of a task's run: ≤ 52 characters, so that the pods the Job
    controller names after it (`<job>-<index>-<random>`) stay within 63.

    A readable prefix (DagJob, task, run) and a hash of the exact triple: task names are free text
    (`taskA`, `task-a`, `task-a-r2`), so no spelling of them alone keeps two DagJobs' or two runs'
    children apart; the hash does (tests/unit/test_names.py)."""
    readable = re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", f"{short_name(cr_name)}-{task}-r{run}".lower()))
    digest = hashlib.sha256(f"{cr_name}/{task}/{run}".encode()).hexdigest()[:10]
    return f"{readable[:52 - 11].rstrip('-')}-{digest}"


def secret_name(cr_name: str) -> str:
    return f"{short_name(cr_name)}-oss"


def priority_class(priority: int, settings: Settings) -> str | None:
    """The PriorityClass of a Priority (0..1000): the band whose lowest priority is the highest ≤ it."""
    chosen = None
    for lowest, name in settings.dag_priority_classes:
        if priority >= lowest:
            chosen = name
    return chosen


def _labels(owner: Owner) -> dict[str, str]:
    return common.labels(owner, short_name(owner.name), "task")


def _meta(name: str, owner: Owner, task: str, run: int) -> dict[str, Any]:
    meta = common.meta(name, owner, _labels(owner))
    meta["annotations"] = {TASK_ANNOTATION: task, RUN_ANNOTATION: str(run)}
    return meta


def oss_credentials(task: Task) -> OSSCredentials | None:
    """The task's OSS keys: its own Mounts.OSS, else its AutoCluster's."""
    for mounts in (task.Mounts, task.AutoCluster.Configs.Mounts if task.AutoCluster and task.AutoCluster.Configs
                   else None):
        if mounts is not None and mounts.OSS is not None and (
                mounts.OSS.secretName or any(getattr(mounts.OSS, k) for k in OSS_KEYS)):
            return mounts.OSS
    return None


def oss_secret(spec: DagJobSpec, owner: Owner) -> dict[str, Any] | None:
    """The Secret holding the inline OSS keys of every task (`<task>.<key>`), or None if none has any;
    common.ObjectTooLarge when a Secret cannot hold them."""
    data: dict[str, str] = {}
    for name, task in sorted(spec.DAG.Tasks.items()):
        creds = oss_credentials(task)
        if creds is not None and creds.secretName is None:
            data.update({f"{name}.{k}": getattr(creds, k) for k in OSS_KEYS if getattr(creds, k)})
    if not data:
        return None
    meta = common.meta(secret_name(owner.name), owner, common.labels(owner, short_name(owner.name), "oss-credentials"))
    return common.check_size({"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque",
                              "stringData": data}, "the tasks' inline OSS keys (Mounts.OSS)")


def _oss_env(cr_name: str, task_name: str, task: Task, settings: Settings) -> list[dict[str, Any]]:
    """Where and as whom lakejob-oss reaches OSS: the operator's endpoint settings, the task's keys
    as Secret references (never the keys); a task without keys of its own gets the operator's store
    Secret (settings.store_secret, the OSS_* keys the package fetchers read too), when there is one."""
    env: list[dict[str, Any]] = [{"name": "OSS_ADDRESSING_STYLE", "value": settings.oss_addressing_style}]
    if settings.oss_endpoint:
        env.insert(0, {"name": "OSS_ENDPOINT", "value": settings.oss_endpoint})
    if settings.oss_region:
        env.append({"name": "OSS_REGION", "value": settings.oss_region})
    creds = oss_credentials(task)
    if creds is None:
        if settings.store_secret:
            env += [{"name": name, "valueFrom": {"secretKeyRef": {"name": settings.store_secret, "key": name,
                                                                  "optional": True}}}
                    for name in OSS_ENV.values()]
        return env
    for key in OSS_KEYS:
        if creds.secretName:
            ref = {"name": creds.secretName, "key": key, "optional": True}
        elif getattr(creds, key):
            ref = {"name": secret_name(cr_name), "key": f"{task_name}.{key}"}
        else:
            continue
        env.append({"name": OSS_ENV[key], "valueFrom": {"secretKeyRef": ref}})
    return env


def _directory(local: str, remote: str) -> str:
    """The directory to mount for a local path of a mapping: itself when it (or its OSS side) is a
    folder, else its parent (a single file lands in a directory we provide)."""
    if local.endswith("/") or remote.endswith("/"):
        return local.rstrip("/") or "/"
    return posixpath.dirname(local)


def upload_args(task: Task, task_name: str, job_id: str) -> list[str]:
    """The upload sidecar's arguments, or [] when the task has nothing to upload. The instance
    comes from BATCH_COMPUTE_DAG_INSTANCE_ID (the pod's completion index), set in its env."""
    assert task.Parameters is not None
    args = []
    for flag, path in (("--stdout-to", task.Parameters.StdoutRedirectPath),
                       ("--stderr-to", task.Parameters.StderrRedirectPath)):
        if path:
            args += [flag, path]
    for flag, mapping in (("--output", task.OutputMapping), ("--log", task.LogMapping)):
        for local, remote in sorted((mapping or {}).items()):
            args += [flag, f"{local}={remote}"]
    if not args:
        return []
    return ["--job-id", job_id, "--task", task_name, *args, "--out-dir", OUT_DIR]


def image(task: Task, settings: Settings) -> str:
    """ClusterId wins over AutoCluster (BatchCompute: only one takes effect): a cluster's pods use
    the default image; an AutoCluster's ImageId is looked up in the operator's image map."""
    if task.ClusterId is None and task.AutoCluster is not None and task.AutoCluster.ImageId:
        return settings.dag_images.get(task.AutoCluster.ImageId, settings.dag_default_image)
    return settings.dag_default_image


def node_selector(task: Task, settings: Settings) -> dict[str, str]:
    if task.ClusterId is not None:
        return {settings.dag_cluster_label: task.ClusterId} if settings.dag_cluster_label else {}
    if task.AutoCluster is not None and settings.dag_instance_type_label:
        return {settings.dag_instance_type_label: task.AutoCluster.InstanceType}
    return {}


def task_job(spec: DagJobSpec, task_name: str, owner: Owner, settings: Settings, run: int,
             suspended: bool = False) -> dict[str, Any]:
    """The Indexed Job of a command task."""
    task = spec.DAG.Tasks[task_name]
    assert task.Parameters is not None and task.InstanceCount is not None and task.Timeout is not None
    command = task.Parameters.Command
    name = child_name(owner.name, task_name, run)
    pod_sc, container_sc = common.security_context(settings.dag_uid)

    # Local directories the fetcher fills (inputs) or the command writes (outputs, logs): one
    # emptyDir each, shared by the init container and the command.
    fetches = [(src, dst) for src, dst in sorted((task.InputMapping or {}).items())]
    if task.Mounts and task.Mounts.Entries:
        fetches += [(e.Source, e.Destination) for e in task.Mounts.Entries]
    dirs = {_directory(dst, src) for src, dst in fetches}
    dirs |= {_directory(local, remote) for local, remote in (task.OutputMapping or {}).items()}
    # A LogMapping key is a log file (BatchCompute names the upload after it) unless it ends with /.
    dirs |= {_directory(local, "") for local in (task.LogMapping or {})}
    dirs.discard("/")
    mounts = [{"name": "work", "mountPath": WORKDIR}] + [
        {"name": f"dir-{i}", "mountPath": d} for i, d in enumerate(sorted(dirs))]
    volumes = [{"name": m["name"], "emptyDir": {}} for m in mounts]

    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in sorted((command.EnvVars or {}).items())]
    instance: dict[str, Any] = {"name": "BATCH_COMPUTE_DAG_INSTANCE_ID",
                                "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{INDEX_ANNOTATION}']"}}}
    env += [
        {"name": "BATCH_COMPUTE_DAG_JOB_ID", "value": owner.uid},
        {"name": "BATCH_COMPUTE_DAG_JOB_NAME", "value": spec.Name},
        {"name": "BATCH_COMPUTE_DAG_TASK_ID", "value": task_name},
        instance,
    ]
    uploads = upload_args(task, task_name, owner.uid)
    argv = shlex.split(command.CommandLine)
    main: dict[str, Any] = {
        "name": MAIN, "image": image(task, settings), "command": ["/bin/sh", "-c", REDIRECT, *argv] if uploads else argv,
        "workingDir": WORKDIR, "env": env, "volumeMounts": mounts, "securityContext": container_sc,
    }
    if task.resources:
        main["resources"] = {"requests": dict(task.resources)}
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never", "activeDeadlineSeconds": task.Timeout, "containers": [main],
        "volumes": volumes, "securityContext": pod_sc,
    }
    oss_env = _oss_env(owner.name, task_name, task, settings)
    init: list[dict[str, Any]] = []
    if command.PackagePath or fetches:
        args = (["--package", command.PackagePath] if command.PackagePath else []) + ["--into", WORKDIR]
        for src, dst in fetches:
            args += ["--map", f"{src}={dst}"]
        init.append({
            "name": FETCHER, "image": settings.fetcher_image, "command": [TOOL, "fetch"], "args": args,
            "env": oss_env, "volumeMounts": mounts, "securityContext": container_sc,
        })
    if uploads:
        out = {"name": "out", "mountPath": OUT_DIR}
        volumes.append({"name": "out", "emptyDir": {}})
        main["volumeMounts"] = [*mounts, out]
        # A native sidecar (restartPolicy Always): after `fetch` in the list, so it starts once the
        # fetch has finished; Kubernetes stops it (SIGTERM) once the command's container has exited,
        # and gives it the pod's grace period for the uploads.
        init.append({
            "name": UPLOADER, "image": settings.fetcher_image, "command": [TOOL, "upload"], "args": uploads,
            "restartPolicy": "Always", "env": [*oss_env, instance], "volumeMounts": [*mounts, out],
            "securityContext": container_sc,
            # The kubelet starts the command once this succeeds: the sidecar handles SIGTERM by then.
            # A busy node runs an exec probe slowly and starts Python slowly (measured: over a minute
            # at load 30 on 2 cores), and a failed startup probe restarts the sidecar: a generous
            # timeout and 10 minutes in all; the first success ends the wait.
            "startupProbe": {"exec": {"command": ["test", "-e", f"{OUT_DIR}/{READY_FILE}"]},
                             "periodSeconds": 1, "timeoutSeconds": 10, "failureThreshold": 600},
        })
        pod_spec["terminationGracePeriodSeconds"] = settings.dag_upload_grace_s
    if init:
        pod_spec["initContainers"] = init
    pc = priority_class(spec.Priority, settings)
    if pc:
        pod_spec["priorityClassName"] = pc
    selector = node_selector(task, settings)
    if selector:
        pod_spec["nodeSelector"] = selector
    meta = _meta(name, owner, task_name, run)
    template: dict[str, Any] = {"metadata": {"labels": dict(meta["labels"]), "annotations": dict(meta["annotations"])},
                                "spec": pod_spec}
    common.customize(template, main, task.pod)
    # The operator's workload placement under what the task (ClusterId, its pod block) chose.
    common.place(template, settings)
    if task.pod is not None and task.pod.volumeMounts:
        # fetch and upload see what the command sees: a volume of the user's may be where inputs
        # go or outputs come from.
        extra = [m.model_dump(exclude_none=True) for m in task.pod.volumeMounts]
        for container in init:
            container["volumeMounts"] = [*container["volumeMounts"], *extra]
    # lakejob-oss writes only into the volumes it shares with the command (a package is downloaded
    # next to where it is unpacked), so fetch and upload run with a read-only root file system. The
    # command does not: a task runs any program in any image (ImageId), which may write anywhere.
    common.read_only_root(template, init, {})
    job_spec: dict[str, Any] = {
        "completionMode": "Indexed", "completions": task.InstanceCount, "parallelism": task.InstanceCount,
        "backoffLimitPerIndex": task.MaxRetryCount or 0,
        # A replacement pod only once the failed one is gone: one attempt at a time per index.
        "podReplacementPolicy": "Failed",
        "suspend": suspended, "template": template,
    }
    if spec.JobFailOnInstanceFail:
        job_spec["maxFailedIndexes"] = 0
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": job_spec}


def child_resource(spec: DagJobSpec, task_name: str, owner: Owner, settings: Settings, run: int) -> dict[str, Any]:
    """The child custom resource of a task that embeds another lakejob kind."""
    task = spec.DAG.Tasks[task_name]
    embedded = task.child_spec()
    assert embedded is not None
    body = embedded.model_dump(mode="json", exclude_none=True)
    pc = priority_class(spec.Priority, settings)
    if pc:
        # The DagJob's priority reaches the child's pods unless the task chose a class itself.
        for role in POD_ROLES[task.kind]:
            body.setdefault(role, {}).setdefault("priorityClassName", pc)
    return {"apiVersion": API_VERSION, "kind": CHILD_KINDS[task.kind],
            "metadata": _meta(child_name(owner.name, task_name, run), owner, task_name, run), "spec": body}
