"""render.flink: configuration (ours, then runtime_config), the JobManager's command, pod sizing,
the TaskManager ReplicaSet, the job's files (fetched from the package store into usrlib, or read
where they are), refusals, placement, names, labels, the REST URL setting."""
from __future__ import annotations

from typing import Any

import pytest
import yaml

from lakejob.models.flinkjarjob import FlinkJarJobSpec
from lakejob.render import flink as render
from lakejob.render.common import Owner
from lakejob.settings import Settings

OWNER = Owner("lakejob.io/v1alpha1", "FlinkJarJob", "wc", "team-a", "uid-1")
SETTINGS = Settings(packages_url="s3://pkgs/dli/", s3_endpoint="http://store:9000", store_secret="keys")


def spec(**fields: Any) -> FlinkJarJobSpec:
    return FlinkJarJobSpec.model_validate({"name": "wc", **fields})


def conf(sp: FlinkJarJobSpec, settings: Settings = SETTINGS) -> dict[str, Any]:
    cm = render.configmap(sp, OWNER, render.resolve_sizing(sp, settings), settings)
    (name,) = [k for k in cm["data"] if k != "log4j-console.properties"]
    out: dict[str, Any] = yaml.safe_load(cm["data"][name])
    return out


def test_names_are_deterministic_and_short() -> None:
    n = render.Names.of("wc")
    assert (n.jobmanager(3), n.service, n.configmap, n.taskmanagers) == \
        ("wc-jm-3", "wc-jobmanager", "wc-flink-config", "wc-taskmanager")
    long = render.Names.of("a" * 200)
    assert len(long.taskmanagers) <= 63 and long == render.Names.of("a" * 200)


def test_job_id_is_32_hex_stable_and_new_per_attempt() -> None:
    a = render.job_id("uid-1", 1)
    assert len(a) == 32 and int(a, 16) >= 0 and a == render.job_id("uid-1", 1) != render.job_id("uid-1", 2)


def test_configuration_wires_sizes_and_merges_runtime_config_over_ours() -> None:
    c = conf(spec(cu_number=5, tm_cus=2, parallel_number=4, runtime_config="restart-strategy.type: fixed-delay\n"
                                                                          "state.backend.type: rocksdb"))
    assert c["jobmanager.rpc.address"] == "wc-jobmanager" and c["rest.port"] == 8081 and c["blob.server.port"] == 6124
    assert c["taskmanager.numberOfTaskSlots"] == 2 and c["parallelism.default"] == 4
    assert c["jobmanager.memory.process.size"] == "4096m" and c["taskmanager.memory.process.size"] == "8192m"
    assert c["taskmanager.cpu.cores"] == 2
    assert c["jobmanager.bind-host"] == "0.0.0.0" and c["rest.bind-address"] == "0.0.0.0"
    assert c["restart-strategy.type"] == "fixed-delay"  # the user's wins over our "none"
    assert c["state.backend.type"] == "rocksdb"


def test_config_file_follows_the_flink_version() -> None:
    cm2 = render.configmap(spec(), OWNER, render.resolve_sizing(spec(), SETTINGS), SETTINGS)
    assert "config.yaml" in cm2["data"]
    sp = spec(flink_version="1.20")
    cm1 = render.configmap(sp, OWNER, render.resolve_sizing(sp, SETTINGS), SETTINGS)
    assert "flink-conf.yaml" in cm1["data"] and "config.yaml" not in cm1["data"]


def test_checkpoint_path_key_depends_on_the_version() -> None:
    assert conf(spec(checkpoint_path="obs://b/c"))["execution.checkpointing.dir"] == "obs://b/c"
    old = conf(spec(checkpoint_path="obs://b/c", flink_version="1.18.1"))
    assert old["state.checkpoints.dir"] == "obs://b/c" and "execution.checkpointing.dir" not in old
    assert old["execution.checkpointing.externalized-checkpoint-retention"] == "RETAIN_ON_CANCELLATION"
    assert old["state.checkpoints.num-retained"] == 3 and "execution.checkpointing.num-retained" not in old


def test_several_checkpoints_are_retained_unless_the_runtime_config_says_otherwise() -> None:
    # The operator resumes from the newest checkpoint it polled; one retained checkpoint can be gone by then.
    assert conf(spec(checkpoint_path="obs://b/c"))["execution.checkpointing.num-retained"] == 3
    mine = conf(spec(checkpoint_path="obs://b/c", runtime_config="execution.checkpointing.num-retained: 10"))
    assert mine["execution.checkpointing.num-retained"] == 10


def test_jars_read_where_they_are_go_on_the_classpath_and_fetched_ones_do_not() -> None:
    c = conf(spec(entrypoint="javaQueueStream.jar", dependency_jars=["https://repo/x.jar", "local:///opt/y.jar",
                                                                     "/abs/z.jar", "file:///w.jar", "obs://b/v.jar"],
                  dependency_files=["myGroup/a.csv"]))
    # The fetched jars are in usrlib, which Flink puts on the classpath itself: listed twice, a jar
    # with a Main-Class would be two entry classes.
    assert c["pipeline.classpaths"].split(";") == [
        "https://repo/x.jar", "file:///opt/y.jar", "file:///abs/z.jar", "file:///w.jar",
        "file:///opt/flink/lakejob-files/"]
    assert "pipeline.classpaths" not in conf(spec()) and "pipeline.classpaths" not in conf(spec(entrypoint="a.jar"))


def tm_pod(sp: FlinkJarJobSpec, settings: Settings = SETTINGS) -> dict[str, Any]:
    tpl: dict[str, Any] = render.taskmanager_replicaset(sp, OWNER, render.resolve_sizing(sp, settings),
                                                        settings)["spec"]["template"]
    return tpl


def test_both_roles_fetch_the_jars_into_usrlib_before_flink_starts() -> None:
    sp = spec(entrypoint="javaQueueStream.jar", dependency_jars=["myGroup/test.jar", "obs://bkt/lib/v.jar",
                                                                  "local:///opt/y.jar"])
    for pod in (jm_pod(sp), tm_pod(sp)):
        ps = pod["spec"]
        fetch = ps["initContainers"][0]
        assert fetch["name"] == "fetch" and fetch["command"] == ["lakejob-oss", "fetch"]
        assert fetch["args"] == [
            "--map", "s3://pkgs/dli/javaQueueStream.jar=/opt/lakejob/packages/javaQueueStream.jar",
            "--map", "s3://pkgs/dli/myGroup/test.jar=/opt/lakejob/packages/myGroup/test.jar",
            "--map", "s3://bkt/lib/v.jar=/opt/lakejob/packages/objects/obs/bkt/lib/v.jar"]
        assert {"name": "S3_ENDPOINT", "value": "http://store:9000"} in fetch["env"]
        assert {"name": "S3_ACCESS_KEY_ID", "valueFrom": {"secretKeyRef": {
            "name": "keys", "key": "S3_ACCESS_KEY_ID", "optional": True}}} in fetch["env"]
        # Flink's own emptyDirs (/tmp, its log folder) are not the fetcher's: it writes only the packages.
        assert fetch["volumeMounts"] == [{"name": "lakejob-packages", "mountPath": "/opt/lakejob/packages"}]
        assert fetch["securityContext"]["readOnlyRootFilesystem"] is True
        assert ps["securityContext"]["runAsUser"] == 9999
        assert {"name": "lakejob-packages", "emptyDir": {}} in ps["volumes"]
        # The Flink container sees them inside usrlib, read-only: /opt/flink/usrlib/packages/myGroup/test.jar.
        assert {"name": "lakejob-packages", "mountPath": "/opt/flink/usrlib/packages", "readOnly": True} in \
            ps["containers"][0]["volumeMounts"]


def test_nothing_to_fetch_means_no_fetcher_and_no_volume() -> None:
    sp = spec(entrypoint="local:///opt/flink/usrlib/job.jar", dependency_jars=["https://repo/x.jar"])
    for pod in (jm_pod(sp), tm_pod(sp)):
        assert "initContainers" not in pod["spec"]
        assert all(v["name"] != "lakejob-packages" for v in pod["spec"]["volumes"])


def test_dependency_files_are_fetched_then_copied_to_userdata() -> None:
    sp = spec(dependency_files=["myGroup/a$b.csv", "oss://b/k/c.txt", "local:///data/x.csv"])
    for pod in (jm_pod(sp), tm_pod(sp)):
        fetch, copy = pod["spec"]["initContainers"]
        assert fetch["name"] == "fetch" and fetch["args"] == [
            "--map", "s3://pkgs/dli/myGroup/a$b.csv=/opt/lakejob/packages/myGroup/a$b.csv",
            "--map", "oss://b/k/c.txt=/opt/lakejob/packages/objects/oss/b/k/c.txt"]
        assert copy["name"] == "dependency-files"
        assert copy["command"] == ["sh", "-c", "mkdir -p /opt/flink/lakejob-files/userData && cp -- "
                                   "'/opt/flink/usrlib/packages/myGroup/a$b.csv' "
                                   "/opt/flink/usrlib/packages/objects/oss/b/k/c.txt /data/x.csv "
                                   "/opt/flink/lakejob-files/userData/"]
        assert {"name": "lakejob-packages", "mountPath": "/opt/flink/usrlib/packages", "readOnly": True} in \
            copy["volumeMounts"]
        mounts = pod["spec"]["containers"][0]["volumeMounts"]
        assert {"name": "lakejob-files", "mountPath": "/opt/flink/lakejob-files", "readOnly": True} in mounts


def test_local_dependency_files_are_copied_without_a_fetcher() -> None:
    (copy,) = jm_pod(spec(dependency_files=["/data/x.csv"]))["spec"]["initContainers"]
    assert copy["name"] == "dependency-files" and copy["volumeMounts"] == [
        {"name": "lakejob-files", "mountPath": "/opt/flink/lakejob-files"},
        {"name": "lakejob-tmp", "mountPath": "/tmp"}, {"name": "lakejob-log", "mountPath": "/opt/flink/log"}]


@pytest.mark.parametrize(("fields", "settings", "says"), [
    ({"entrypoint": "javaQueueStream.jar"}, Settings(),
     "entrypoint: 'javaQueueStream.jar' is a DLI package name, and the operator has no package store: set "
     "LAKEJOB_PACKAGES_URL"),
    ({"dependency_jars": ["a.jar", "g/../b.jar"]}, SETTINGS, "dependency_jars[1]: 'g/../b.jar' has an empty, '.' or"),
    ({"dependency_files": ["myGroup/"]}, SETTINGS, "dependency_files[0]: 'myGroup/' names a folder"),
    ({"dependency_files": ["obs:///k.csv"]}, SETTINGS, "dependency_files[0]: 'obs:///k.csv' has no bucket"),
    ({"dependency_files": ["a/test.csv", "local:///x/b.csv", "b/test.csv"]}, SETTINGS,
     "dependency_files[2]: 'b/test.csv' and dependency_files[0]: 'a/test.csv' are both userData/test.csv"),
])
def test_files_that_cannot_be_named_are_refused_naming_the_field(fields: dict[str, Any], settings: Settings,
                                                                 says: str) -> None:
    refused = render.problem(spec(**fields), settings)
    assert refused is not None and refused[0] == "InvalidPackage" and refused[1].startswith(says), refused


def test_files_that_can_be_named_are_not_refused() -> None:
    assert render.problem(spec(entrypoint="a.jar", dependency_jars=["s3a://b/k.jar", "/x.jar"],
                               dependency_files=["g/a.csv", "h/b.csv"]), SETTINGS) is None
    assert render.problem(spec(entrypoint="local:///opt/job.jar"), Settings()) is None  # no store needed


def test_the_operators_workload_placement_under_the_spec() -> None:
    s = Settings(workload_node_selector={"pool": "flink", "zone": "a"},
                 workload_tolerations=({"key": "spark", "operator": "Exists"},))
    sp = spec(jobManager={"nodeSelector": {"zone": "b"}})
    jm = render.jobmanager_pod(sp, OWNER, render.resolve_sizing(sp, s), 1, None, s)["spec"]
    assert jm["nodeSelector"] == {"pool": "flink", "zone": "b"}
    assert jm["tolerations"] == [{"key": "spark", "operator": "Exists"}]
    tm = tm_pod(sp, s)["spec"]
    assert tm["nodeSelector"] == {"pool": "flink", "zone": "a"} and tm["tolerations"] == jm["tolerations"]


def test_config_text_quotes_only_what_yaml_would_misread() -> None:
    text = render.config_text({"a": "x: y", "b": "file:///p", "c": "#x", "d": "plain"}, frozenset({"d"}))
    assert yaml.safe_load(text) == {"a": "x: y", "b": "file:///p", "c": "#x", "d": "plain"}


def test_parse_runtime_config() -> None:
    assert render.parse_runtime_config("# c\n\n a.b: 1 \nk: v: w\n") == {"a.b": "1", "k": "v: w"}
    assert render.parse_runtime_config(None) == {}


def jm_pod(sp: FlinkJarJobSpec, attempt: int = 1, savepoint: str | None = None) -> dict[str, Any]:
    return render.jobmanager_pod(sp, OWNER, render.resolve_sizing(sp, SETTINGS), attempt, savepoint, SETTINGS)


def test_jobmanager_command() -> None:
    sp = spec(main_class="com.Main", entrypoint_args="-s 'a b' --x")
    args = jm_pod(sp, 2, "s3://b/chk-5")["spec"]["containers"][0]["args"]
    assert args == ["standalone-job", "--job-id", render.job_id("uid-1", 2), "--job-classname", "com.Main",
                    "--fromSavepoint", "s3://b/chk-5", "--", "-s", "a b", "--x"]
    assert jm_pod(spec())["spec"]["containers"][0]["args"] == ["standalone-job", "--job-id", render.job_id("uid-1", 1)]


def test_jobmanager_pod_is_sized_owned_labelled_and_never_restarted_by_kubernetes() -> None:
    pod = jm_pod(spec(manager_cu_number=2, cu_number=4, queue_name="q1", tags=[{"key": "team", "value": "rt"}],
                      jobManager={"labels": {"x": "y"}, "nodeSelector": {"pool": "flink"}}), 3)
    meta, ps = pod["metadata"], pod["spec"]
    assert meta["name"] == "wc-jm-3" and meta["namespace"] == "team-a"
    assert meta["ownerReferences"][0]["uid"] == "uid-1" and meta["ownerReferences"][0]["controller"] is True
    assert meta["labels"] == {"team": "rt", "x": "y", "app.kubernetes.io/managed-by": "lakejob",
                              "lakejob.io/kind": "FlinkJarJob", "lakejob.io/name": "wc",
                              "lakejob.io/role": "jobmanager", "lakejob.io/queue": "q1", "lakejob.io/attempt": "3"}
    assert ps["restartPolicy"] == "Never" and ps["nodeSelector"] == {"pool": "flink"}
    c = ps["containers"][0]
    assert c["resources"] == {"requests": {"cpu": "2", "memory": "8192Mi"}, "limits": {"memory": "8192Mi"}}
    assert c["image"] == "flink:2.3.0-java17"
    assert {p["containerPort"] for p in c["ports"]} == {6123, 6124, 8081}
    assert c["volumeMounts"] == [{"name": "flink-config", "mountPath": "/opt/flink/conf"},
                                 {"name": "lakejob-tmp", "mountPath": "/tmp"},
                                 {"name": "lakejob-log", "mountPath": "/opt/flink/log"}]
    assert ps["securityContext"]["runAsUser"] == 9999 and ps["securityContext"]["runAsNonRoot"] is True
    assert "initContainers" not in ps


def test_log_bucket_annotation_only_when_logging() -> None:
    assert jm_pod(spec(log_enabled=True, obs_bucket="logs"))["metadata"]["annotations"]["lakejob.io/log-bucket"] == "logs"
    assert "lakejob.io/log-bucket" not in jm_pod(spec(obs_bucket="logs"))["metadata"]["annotations"]


def test_taskmanager_replicaset() -> None:
    sp = spec(cu_number=7, tm_cus=2, parallel_number=6, taskManager={"tolerations": [{"operator": "Exists"}]},
              queue_name="q")
    d = render.taskmanager_replicaset(sp, OWNER, render.resolve_sizing(sp, SETTINGS), SETTINGS)
    assert d["kind"] == "ReplicaSet" and d["metadata"]["name"] == "wc-taskmanager"
    assert d["spec"]["replicas"] == 3
    assert d["spec"]["selector"]["matchLabels"] == {"lakejob.io/kind": "FlinkJarJob", "lakejob.io/name": "wc",
                                                    "lakejob.io/role": "taskmanager"}
    tpl = d["spec"]["template"]
    assert set(d["spec"]["selector"]["matchLabels"].items()) <= set(tpl["metadata"]["labels"].items())
    c = tpl["spec"]["containers"][0]
    assert c["args"] == ["taskmanager", "-Dtaskmanager.host=$(POD_IP)"]
    assert c["resources"]["requests"] == {"cpu": "2", "memory": "8192Mi"}
    assert tpl["spec"]["tolerations"] == [{"operator": "Exists"}]
    assert "restartPolicy" not in tpl["spec"]  # a ReplicaSet's pods restart


def test_service() -> None:
    svc = render.service(spec(), OWNER)
    assert svc["metadata"]["name"] == "wc-jobmanager"
    assert "selector" not in svc["spec"]  # the operator writes its Endpoints (render.endpoints)
    assert [(p["name"], p["port"]) for p in svc["spec"]["ports"]] == [("rpc", 6123), ("blob", 6124), ("rest", 8081)]


@pytest.mark.parametrize(("template", "url"), [
    ("http://{service}.{namespace}.svc:8081", "http://wc-jobmanager.team-a.svc:8081"),
    ("http://127.0.0.1:9000/{namespace}/{name}/", "http://127.0.0.1:9000/team-a/wc"),
])
def test_rest_url_setting(template: str, url: str) -> None:
    assert render.rest_url(OWNER, Settings(flink_rest_url_template=template)) == url


def test_image_selection() -> None:
    s = Settings(flink_images={"1.20": "me/flink:1.20"})
    assert render.image_for(spec(flink_version="1.20.1"), s) == "me/flink:1.20"
    assert render.image_for(spec(flink_version="1.19"), s) == "flink:1.19-java17"
    assert render.image_for(spec(image="mine:1", flink_version="1.20"), s) == "mine:1"


def test_our_configuration_keeps_what_the_images_own_configuration_had() -> None:
    c = conf(spec())
    assert "--add-opens=java.base/java.util=ALL-UNNAMED" in c["env.java.opts.all"]  # Flink 2 on Java 17
    assert c["restart-strategy.type"] == "none" and c["jobmanager.execution.failover-strategy"] == "region"


def test_the_legacy_file_is_written_raw_and_yaml_is_quoted_only_when_needed() -> None:
    sp = spec(flink_version="1.20")
    text = render.configmap(sp, OWNER, render.resolve_sizing(sp, SETTINGS), SETTINGS)["data"]["flink-conf.yaml"]
    assert "\nenv.java.opts.all: --add-exports=" in text and '"' not in text
    assert render.config_text({"a": "true", "b": "x: y", "c": "1"}) == 'a: "true"\nb: "x: y"\nc: 1\n'


def test_both_roles_tell_the_image_entrypoint_the_jobmanager_address() -> None:
    """flink-docker's entrypoint overwrites jobmanager.rpc.address with $JOB_MANAGER_RPC_ADDRESS or,
    unset, the container's own hostname: a TaskManager would then look for itself."""
    sp = spec()
    tm = render.taskmanager_replicaset(sp, OWNER, render.resolve_sizing(sp, SETTINGS), SETTINGS)
    for container in (jm_pod(sp)["spec"]["containers"][0], tm["spec"]["template"]["spec"]["containers"][0]):
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["JOB_MANAGER_RPC_ADDRESS"] == "wc-jobmanager" == conf(sp)["jobmanager.rpc.address"]
