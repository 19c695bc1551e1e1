"""lakejob.repl.server, the statement server of a session's pod, over HTTP with a stand-in for the
Connect session (the real one is proven in tests/e2e/test_gateway_sessions_real_node.py)."""
from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from typing import Any

import pytest

from lakejob.repl import server


class Schema:
    def json(self) -> str:
        return json.dumps({"type": "struct", "fields": [{"name": "x", "type": "integer", "nullable": True,
                                                         "metadata": {}}]})


class DataFrame:
    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.rows, self.schema, self.limited = rows, Schema(), None

    def limit(self, n: int) -> DataFrame:
        self.limited = n
        return DataFrame(self.rows[:n])

    def collect(self) -> list[tuple[Any, ...]]:
        return self.rows


class Spark:
    """What the interpreter uses of a Connect session."""

    def __init__(self) -> None:
        self.queries: list[str] = []
        self.interrupted = 0

    def sql(self, query: str) -> DataFrame:
        if "boom" in query:
            raise ValueError(f"[PARSE_SYNTAX_ERROR] near {query!r}")
        self.queries.append(query)
        return DataFrame([(i,) for i in range(5000)])

    def interruptAll(self) -> list[str]:  # noqa: N802 (pyspark's name)
        self.interrupted += 1
        return []


@pytest.fixture
def served() -> Iterator[tuple[str, Spark]]:
    spark = Spark()
    repl = server.Repl(server.Interpreter(lambda: spark), "pyspark")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), server.handler_for(repl))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", spark
    httpd.shutdown()


def call(url: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def settled(base: str, sid: int) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        _, st = call(f"{base}/statements/{sid}")
        if st["state"] in ("available", "cancelled", "error"):
            return st  # type: ignore[no-any-return]
        time.sleep(0.02)
    raise AssertionError(f"statement {sid} did not settle: {st}")


def test_pyspark_statements_share_one_namespace_and_show_prints_and_the_last_value(served: tuple[str, Spark]) -> None:
    base, spark = served
    status, first = call(f"{base}/statements", "POST", {"code": "n = 10\nprint('hello')"})
    assert status == 201 and first["id"] == 0 and first["state"] in ("waiting", "running", "available")
    assert settled(base, 0)["output"] == {"status": "ok", "execution_count": 0, "data": {"text/plain": "hello"}}
    call(f"{base}/statements", "POST", {"code": "print(spark is not None)\nsum(range(n))", "kind": "pyspark"})
    second = settled(base, 1)
    assert second["output"]["data"] == {"text/plain": "True\n45"}
    assert second["progress"] == 1.0 and second["started"] <= second["completed"]
    _, listed = call(f"{base}/statements")
    assert listed["total_statements"] == 2 and [s["id"] for s in listed["statements"]] == [0, 1]
    _, page = call(f"{base}/statements?from=1&size=5")
    assert [s["id"] for s in page["statements"]] == [1]


def test_a_failing_statement_is_available_with_livys_error_output(served: tuple[str, Spark]) -> None:
    base, _ = served
    call(f"{base}/statements", "POST", {"code": "def f():\n    return 1 / 0\n\nf()"})
    st = settled(base, 0)
    assert st["state"] == "available"
    out = st["output"]
    assert out["status"] == "error" and out["ename"] == "ZeroDivisionError" and out["evalue"] == "division by zero"
    # The statement's own frames, none of the server's.
    assert out["traceback"][0].startswith('  File "<stdin>", line 4') and "server.py" not in "".join(out["traceback"])
    call(f"{base}/statements", "POST", {"code": "x = ("})
    assert settled(base, 1)["output"]["ename"] == "SyntaxError"


def test_sql_answers_livys_json_with_at_most_its_row_limit(served: tuple[str, Spark]) -> None:
    base, spark = served
    call(f"{base}/statements", "POST", {"code": "SELECT x FROM t", "kind": "sql"})
    out = settled(base, 0)["output"]
    assert out["status"] == "ok" and spark.queries == ["SELECT x FROM t"]
    result = out["data"]["application/json"]
    assert result["schema"]["fields"][0]["name"] == "x"
    assert len(result["data"]) == server.SQL_MAX_ROWS and result["data"][:2] == [[0], [1]]
    call(f"{base}/statements", "POST", {"code": "boom", "kind": "sql"})
    assert settled(base, 1)["output"]["ename"] == "ValueError"


def test_bad_statements_are_refused_naming_the_field(served: tuple[str, Spark]) -> None:
    base, _ = served
    assert call(f"{base}/statements", "POST", {"code": "1", "kind": "spark"}) == (
        400, {"msg": "kind: 'spark' statements are not run here: send kind 'pyspark' or 'sql'"})
    assert call(f"{base}/statements", "POST", {"kind": "sql"})[0] == 400
    assert call(f"{base}/statements/7") == (404, {"msg": "Statement 7 not found."})
    assert call(f"{base}/statements")[1] == {"total_statements": 0, "statements": []}


def test_cancel_drops_a_waiting_statement_and_interrupts_a_running_one(served: tuple[str, Spark]) -> None:
    base, spark = served
    call(f"{base}/statements", "POST", {"code": "import time\nwhile True:\n    time.sleep(0.01)"})
    call(f"{base}/statements", "POST", {"code": "'never'"})
    deadline = time.monotonic() + 10
    while call(f"{base}/statements/0")[1]["state"] != "running" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert call(f"{base}/statements/1/cancel", "POST") == (200, {"msg": "canceled"})
    assert call(f"{base}/statements/1")[1]["state"] == "cancelled"
    assert call(f"{base}/statements/0/cancel", "POST") == (200, {"msg": "canceled"})
    st = settled(base, 0)
    assert st["state"] == "cancelled" and st["output"] is None and spark.interrupted == 1
    # The session goes on.
    call(f"{base}/statements", "POST", {"code": "2 + 2"})
    assert settled(base, 2)["output"]["data"] == {"text/plain": "4"}


def test_a_keyboardinterrupt_of_the_codes_own_is_an_error_output(served: tuple[str, Spark]) -> None:
    base, _ = served
    call(f"{base}/statements", "POST", {"code": "raise KeyboardInterrupt"})
    st = settled(base, 0)
    assert st["state"] == "available" and st["output"]["ename"] == "KeyboardInterrupt"
