"""A SparkSession's statement server: Livy's interactive statements, run in the session's own pod.

Runs as the `repl` container of a session's driver pod (render.sparksession), in the session's
Spark image's Python, from the copy of this file in the session's ConfigMap; it needs only the
standard library and pyspark's Spark Connect client, and imports nothing of lakejob's. It attaches
to the Connect server in the same pod (`sc://localhost:15002`) on the first statement, and keeps one
Python namespace for the session's life, with `spark` in it (a Connect session: there is no `sc`).

Statements run one at a time, in the order they came, as Livy's REPL runs them:
  POST /statements {code, kind}      201 the statement (`waiting`); kind `pyspark` or `sql`
                                     (default: the session's kind); others are refused (400)
  GET  /statements?from=&size=       {total_statements, statements}
  GET  /statements/{id}              the statement: {id, code, state, output, progress, started, completed}
  POST /statements/{id}/cancel       {"msg": "canceled"}: a waiting one is dropped, a running one
                                     interrupted (its Spark operations and its Python code)
  GET  /healthz                      200 once listening (the container's readiness probe)
State: waiting → running → available (output `ok` or `error`, as Livy: a failing statement is
`available` with an error output) or cancelling → cancelled. `pyspark` output is what the code
printed plus the value of a last expression (`text/plain`); `sql` output is the query's first
SQL_MAX_ROWS rows as `application/json` {schema, data}, as Livy's SQL interpreter answers.

The lakejob gateway reaches it through the apiserver's Service proxy as the caller
(lakejob.gateway.sessions); the statements live here, with the session, and end with its pod.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import ctypes
import io
import json
import queue
import sys
import threading
import time
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

KINDS = ("pyspark", "sql")
SQL_MAX_ROWS = 1000  # Livy's livy.spark.sql.maxResult
MAX_TEXT = 1 << 20  # output beyond it is cut (the gateway and the apiserver carry it in one response)
SOURCE_NAME = "<stdin>"  # what tracebacks call the statement's code, as Livy's Python shell does


def now_ms() -> int:
    return int(time.time() * 1000)


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Statement:
    def __init__(self, sid: int, code: str, kind: str) -> None:
        self.id, self.code, self.kind = sid, code, kind
        self.state = "waiting"
        self.output: dict[str, Any] | None = None
        self.started = self.completed = 0

    def view(self) -> dict[str, Any]:
        done = self.state in ("available", "error", "cancelled")
        return {"id": self.id, "code": self.code, "state": self.state, "output": self.output,
                "progress": 1.0 if done else 0.0, "started": self.started, "completed": self.completed}


class Interpreter:
    """One Python namespace and one Connect session (made by `connect` when first needed)."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect
        self._spark: Any = None
        self.namespace: dict[str, Any] = {"__name__": "__main__"}

    def spark(self) -> Any:
        if self._spark is None:
            self._spark = self._connect()
            self.namespace["spark"] = self._spark
        return self._spark

    def interrupt(self) -> None:
        """Stop what the session's Spark runs for us (the running statement's operations)."""
        if self._spark is not None:
            with contextlib.suppress(Exception):
                self._spark.interruptAll()

    def run(self, kind: str, code: str, count: int) -> dict[str, Any]:
        """Livy's output of one statement: {status: ok, execution_count, data} or {status: error,
        execution_count, ename, evalue, traceback}."""
        try:
            data = self._sql(code) if kind == "sql" else self._python(code)
        except Exception as e:  # the statement's own failure is its output, never the server's
            return {"status": "error", "execution_count": count, "ename": type(e).__name__,
                    "evalue": str(e), "traceback": _user_traceback(e)}
        return {"status": "ok", "execution_count": count, "data": data}

    def _python(self, code: str) -> dict[str, Any]:
        self.spark()
        tree = ast.parse(code, SOURCE_NAME, "exec")
        # As an interactive shell: the value of a last expression is shown after what was printed.
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        assert last is None or isinstance(last, ast.Expr)
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            exec(compile(tree, SOURCE_NAME, "exec"), self.namespace)
            value = eval(compile(ast.Expression(last.value), SOURCE_NAME, "eval"), self.namespace) if last else None
        text = out.getvalue() + ("" if value is None else repr(value))
        return {"text/plain": _cut(text.rstrip("\n"))}

    def _sql(self, code: str) -> dict[str, Any]:
        df = self.spark().sql(code)
        rows = df.limit(SQL_MAX_ROWS).collect()
        # Values JSON has no type for (dates, decimals) go as their text, as Livy's interpreter does.
        data = json.loads(json.dumps([list(r) for r in rows], default=str))
        return {"application/json": {"schema": json.loads(df.schema.json()), "data": data}}


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + f"\n… cut at {MAX_TEXT} characters"


def _user_traceback(e: BaseException) -> list[str]:
    """The traceback from the statement's own code on (this server's frames left out)."""
    frames = traceback.extract_tb(e.__traceback__)
    first = next((i for i, f in enumerate(frames) if f.filename == SOURCE_NAME), len(frames))
    return [*traceback.format_list(frames[first:]), *traceback.format_exception_only(type(e), e)]


class Repl:
    """The statements of one session and the thread that runs them in order."""

    def __init__(self, interpreter: Interpreter, default_kind: str) -> None:
        self.interpreter = interpreter
        self.default_kind = default_kind
        self.statements: list[Statement] = []
        self.lock = threading.Lock()
        self.pending: queue.Queue[Statement] = queue.Queue()
        self.executing: threading.Thread | None = None  # the running statement's thread
        threading.Thread(target=self._work, name="statements", daemon=True).start()

    def submit(self, body: Any) -> Statement:
        if not isinstance(body, dict) or not isinstance(body.get("code"), str):
            raise Refused(400, "code: required, a string (the statement's code)")
        kind = body.get("kind") or self.default_kind
        if kind not in KINDS:
            raise Refused(400, f"kind: {kind!r} statements are not run here: send kind 'pyspark' or 'sql'")
        with self.lock:
            statement = Statement(len(self.statements), body["code"], kind)
            self.statements.append(statement)
        self.pending.put(statement)
        return statement

    def get(self, sid: int) -> Statement:
        with self.lock:
            if 0 <= sid < len(self.statements):
                return self.statements[sid]
        raise Refused(404, f"Statement {sid} not found.")

    def cancel(self, sid: int) -> None:
        statement = self.get(sid)
        with self.lock:
            if statement.state == "waiting":
                statement.state, statement.completed = "cancelled", now_ms()
                return
            if statement.state != "running":
                return
            statement.state = "cancelling"
            thread = self.executing
        self.interpreter.interrupt()
        # Python code of its own (a loop, a sleep) stops at its next bytecode: KeyboardInterrupt,
        # raised in the statement's own thread, as Ctrl-C in a shell. A thread that has ended by then
        # is not found (nothing happens); one in its last bytecodes catches it (_execute).
        if thread is not None and thread.ident is not None:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(KeyboardInterrupt))

    def _execute(self, statement: Statement) -> dict[str, Any] | None:
        """The statement's output, run in a thread of its own (the one a cancel interrupts)."""
        result: list[dict[str, Any]] = []

        def run() -> None:
            try:
                result.append(self.interpreter.run(statement.kind, statement.code, statement.id))
            except KeyboardInterrupt:  # the cancel's, which a statement's own `except Exception` lets by
                pass

        thread = threading.Thread(target=run, name=f"statement-{statement.id}", daemon=True)
        with self.lock:
            self.executing = thread
        thread.start()
        thread.join()
        with self.lock:
            self.executing = None
        return result[0] if result else None

    def _work(self) -> None:
        while True:
            statement = self.pending.get()
            with self.lock:
                if statement.state != "waiting":
                    continue
                statement.state, statement.started = "running", now_ms()
            output = self._execute(statement)
            with self.lock:
                cancelled = statement.state == "cancelling"
                statement.state = "cancelled" if cancelled else "available"
                # A KeyboardInterrupt the code raised itself, no cancel asked: an error like any other.
                statement.output = None if cancelled else output or {
                    "status": "error", "execution_count": statement.id, "ename": "KeyboardInterrupt", "evalue": "",
                    "traceback": []}
                statement.completed = now_ms()
            print(f"statement {statement.id} ({statement.kind}) {statement.state} in "
                  f"{(statement.completed - statement.started) / 1000:.1f} s", flush=True)


def handler_for(repl: Repl) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
            pass  # one line per statement is logged by the worker; probes would drown it

        def _answer(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _route(self, method: str) -> None:
            url = urlsplit(self.path)
            parts = [p for p in url.path.split("/") if p]
            try:
                self._answer(*self._dispatch(method, parts, parse_qs(url.query)))
            except Refused as e:
                self._answer(e.status, {"msg": str(e)})

        def _body(self) -> Any:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                return json.loads(raw or b"null")
            except json.JSONDecodeError as e:
                raise Refused(400, f"the body is not JSON: {e}") from None

        def _dispatch(self, method: str, parts: list[str], query: dict[str, list[str]]) -> tuple[int, Any]:
            if method == "GET" and parts == ["healthz"]:
                return 200, {"ok": True}
            if parts[:1] != ["statements"] or len(parts) > 3:
                raise Refused(404, f"no such path: {self.path}")
            if len(parts) == 1 and method == "POST":
                return 201, repl.submit(self._body()).view()
            if len(parts) == 1 and method == "GET":
                with repl.lock:
                    views = [s.view() for s in repl.statements]
                start = _int(query, "from", 0)
                size = _int(query, "size", len(views))
                return 200, {"total_statements": len(views), "statements": views[start:start + size]}
            if not parts[1].isdigit():
                raise Refused(404, f"Statement {parts[1]!r} not found.")
            sid = int(parts[1])
            if len(parts) == 2 and method == "GET":
                return 200, repl.get(sid).view()
            if parts[2:] == ["cancel"] and method == "POST":
                repl.cancel(sid)
                return 200, {"msg": "canceled"}
            raise Refused(404, f"no such path: {method} {self.path}")

        def do_GET(self) -> None:  # noqa: N802 (http.server's names)
            self._route("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._route("POST")

    return Handler


def _int(query: dict[str, list[str]], name: str, default: int) -> int:
    raw = (query.get(name) or [""])[0]
    if not raw:
        return default
    try:
        return max(0, int(raw))
    except ValueError:
        raise Refused(400, f"{name}={raw!r}: must be an integer") from None


def connector(remote: str) -> Callable[[], Any]:
    def connect() -> Any:
        from pyspark.sql import SparkSession  # the image's pyspark, only when a statement needs it
        return SparkSession.builder.remote(remote).getOrCreate()
    return connect


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A SparkSession's statement server.")
    parser.add_argument("--port", type=int, default=8999)
    parser.add_argument("--remote", default="sc://localhost:15002")
    parser.add_argument("--kind", default="pyspark", help="the session's kind: statements' default kind")
    args = parser.parse_args(argv)
    repl = Repl(Interpreter(connector(args.remote)), args.kind)
    server = ThreadingHTTPServer(("", args.port), handler_for(repl))
    print(f"statements served on :{args.port} for {args.remote}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
