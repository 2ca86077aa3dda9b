"""The embedded store over ClickHouse's HTTP interface, exercised with clickhouse-connect (a
client nobody here wrote) and raw HTTP against a running collector subprocess."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import clickhouse_connect
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from clickhouse_connect.driver.exceptions import DatabaseError

from benchmarks.loadgen import LoadConfig, run
from tests.harness import Collector, base_config, free_port, ports, query_store

ALICE_PASSWORD = "wonder land"


def _config(tmp: Path, **endpoint: Any) -> tuple[dict[str, Any], int]:
    port = free_port()
    config = base_config(tmp)
    config["exporters"]["clickhouse"]["query_endpoint"] = {
        "endpoint": f"127.0.0.1:{port}",
        "users": {
            "default": {},
            "alice": {"password_sha256_hex": hashlib.sha256(ALICE_PASSWORD.encode()).hexdigest()},
        },
        "max_result_rows": 1_000_000,
        **endpoint,
    }
    return config, port


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    tmp = tmp_path_factory.mktemp("query")
    config, port = _config(tmp)
    with Collector(tmp, config):
        yield port


def _http(
    port: int,
    params: dict[str, str],
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Message, bytes]:
    url = f"http://127.0.0.1:{port}/?{urlencode(params)}"
    request = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def test_ping_and_bare_get(endpoint: int) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{endpoint}/ping", timeout=10) as response:
        assert response.read() == b"Ok.\n"
    with urllib.request.urlopen(f"http://127.0.0.1:{endpoint}/", timeout=10) as response:
        assert response.read() == b"Ok.\n"


def test_response_headers(endpoint: int) -> None:
    status, headers, body = _http(endpoint, {"query": "SELECT 1 AS one, 'x' AS s"})
    assert status == 200
    assert body == b"1\tx\n"
    assert headers["X-ClickHouse-Format"] == "TabSeparated"
    assert headers["X-ClickHouse-Timezone"]
    assert headers["X-ClickHouse-Server-Display-Name"]
    assert headers["X-ClickHouse-Query-Id"]
    summary = json.loads(headers["X-ClickHouse-Summary"])
    assert {"read_rows", "read_bytes", "written_rows", "elapsed_ns"} <= set(summary)
    status, headers, _ = _http(endpoint, {"query_id": "q-42"}, b"SELECT 1 FORMAT JSONEachRow")
    assert headers["X-ClickHouse-Query-Id"] == "q-42"
    assert headers["X-ClickHouse-Format"] == "JSONEachRow"


def test_clickhouse_connect_query_parameters_settings(endpoint: int) -> None:
    client = clickhouse_connect.get_client(host="127.0.0.1", port=endpoint)
    assert client.query("SELECT currentDatabase()").result_rows == [("otel",)]
    tables = {row[0] for row in client.query("SHOW TABLES").result_rows}
    assert {"otel_traces", "otel_logs"} <= tables
    result = client.query(
        "SELECT {s:String} AS s, {n:UInt32} + 1 AS n, {a:Array(String)} AS a",
        parameters={"s": "it's", "n": 41, "a": ["x", "y"]},
    )
    assert result.result_rows == [("it's", 42, ["x", "y"])]
    # server-side binding as well
    assert client.query("SELECT %(v)s", parameters={"v": "client"}).result_rows == [("client",)]
    settings = client.query(
        "SELECT getSetting('max_threads'), getSetting('readonly')", settings={"max_threads": 1}
    )
    assert settings.result_rows == [(1, 1)]


def test_clickhouse_connect_arrow_and_df(endpoint: int) -> None:
    client = clickhouse_connect.get_client(host="127.0.0.1", port=endpoint)
    table = client.query_arrow("SELECT number, toString(number) AS s FROM numbers(150000)")
    assert table.num_rows == 150000
    assert table.column("number").to_pylist()[-1] == 149999
    with client.query_arrow_stream("SELECT number FROM numbers(200000)") as stream:
        batches = list(stream)
    assert sum(b.num_rows for b in batches) == 200000
    pandas = pytest.importorskip("pandas")
    frame = client.query_df("SELECT number, number * 2 AS twice FROM numbers(100000)")
    assert isinstance(frame, pandas.DataFrame)
    assert frame.shape == (100000, 2)
    assert int(frame["twice"].sum()) == 2 * sum(range(100000))


def test_clickhouse_connect_compression(endpoint: int) -> None:
    for compress in ("lz4", "zstd", "gzip"):
        client = clickhouse_connect.get_client(host="127.0.0.1", port=endpoint, compress=compress)
        rows = client.query("SELECT number FROM numbers(100000)").result_rows
        assert len(rows) == 100000, compress


def test_http_compression(endpoint: int) -> None:
    query = {"query": "SELECT number FROM numbers(100000)", "enable_http_compression": "1"}
    status, headers, body = _http(endpoint, query, headers={"Accept-Encoding": "gzip"})
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(body).count(b"\n") == 100000
    status, headers, body = _http(endpoint, query, headers={"Accept-Encoding": "zstd"})
    assert headers["Content-Encoding"] == "zstd"
    assert zstandard.ZstdDecompressor().decompressobj().decompress(body).count(b"\n") == 100000
    # not asked for: plain
    status, headers, body = _http(
        endpoint, {"query": "SELECT 1"}, headers={"Accept-Encoding": "gzip"}
    )
    assert "Content-Encoding" not in headers and body == b"1\n"


def test_streamed_formats_form_one_document(endpoint: int) -> None:
    # 300000 rows come out of the engine in several blocks
    rows = 300000
    sql = f"SELECT number, toString(number) AS s FROM numbers({rows})"
    _, headers, body = _http(endpoint, {"default_format": "TSVWithNames"}, sql.encode())
    lines = body.splitlines()
    assert lines[0] == b"number\ts" and len(lines) == rows + 1
    assert headers["X-ClickHouse-Format"] == "TSVWithNames"
    _, _, body = _http(endpoint, {}, f"{sql} FORMAT CSVWithNamesAndTypes".encode())
    assert body.count(b'"number","s"') == 1 and body.count(b"\n") == rows + 2
    _, _, body = _http(endpoint, {}, f"{sql} FORMAT ArrowStream".encode())
    table = pa.ipc.open_stream(body).read_all()
    assert table.num_rows == rows
    _, _, body = _http(endpoint, {}, f"{sql} FORMAT JSON".encode())
    document = json.loads(body)
    assert document["rows"] == rows and len(document["data"]) == rows
    _, _, body = _http(
        endpoint, {}, f"SELECT number FROM numbers({rows}) FORMAT RowBinaryWithNames".encode()
    )
    assert body == b"\x01\x06number" + b"".join(n.to_bytes(8, "little") for n in range(rows))
    _, _, body = _http(endpoint, {}, f"{sql} FORMAT Parquet".encode())
    assert pq.read_table(io.BytesIO(body)).num_rows == rows
    # an empty result keeps the header
    _, _, body = _http(endpoint, {}, b"SELECT 1 AS a WHERE 0 FORMAT TSVWithNames")
    assert body == b"a\n"


def test_errors_have_clickhouse_text_and_status(endpoint: int) -> None:
    status, headers, body = _http(endpoint, {}, b"SELEC 1")
    assert status == 400
    assert headers["X-ClickHouse-Exception-Code"] == "62"
    assert body.startswith(b"Code: 62. DB::Exception: Syntax error")
    assert b"(SYNTAX_ERROR) (version " in body
    status, headers, body = _http(endpoint, {}, b"SELECT * FROM otel.nope")
    assert status == 404 and headers["X-ClickHouse-Exception-Code"] == "60"
    status, _, body = _http(endpoint, {"database": "nowhere"}, b"SELECT 1")
    assert status == 404 and b"(UNKNOWN_DATABASE)" in body
    status, _, body = _http(endpoint, {"no_such_setting": "1"}, b"SELECT 1")
    assert status == 404 and body.startswith(b"Code: 115.")

    client = clickhouse_connect.get_client(host="127.0.0.1", port=endpoint)
    with pytest.raises(DatabaseError) as info:
        client.query("SELECT * FROM numbers(3) WHERE")
    assert info.value.code == 62


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO otel.otel_logs (Body) VALUES ('x')",
        "CREATE TABLE otel.t (a Int8) ENGINE = Memory",
        "DROP TABLE otel.otel_logs",
        "TRUNCATE TABLE otel.otel_traces",
        "SET max_threads = 1",
        "SYSTEM FLUSH LOGS",
        "KILL QUERY WHERE 1",
        "SELECT 1; DROP TABLE otel.otel_logs",
        "SELECT * FROM file('/etc/hostname', 'LineAsString')",
        "SELECT number FROM numbers(10) SETTINGS max_result_rows = 0",
    ],
)
def test_writes_and_escapes_refused(endpoint: int, sql: str) -> None:
    status, headers, body = _http(endpoint, {}, sql.encode())
    assert status != 200, body
    assert headers["X-ClickHouse-Exception-Code"] in ("164", "62"), body
    client = clickhouse_connect.get_client(host="127.0.0.1", port=endpoint)
    with pytest.raises(DatabaseError):
        client.command(sql)
    # still there
    assert (
        client.query("SELECT count() FROM system.tables WHERE database = 'otel'").result_rows[0][0]
        >= 2
    )


def test_readonly_cannot_be_lifted(endpoint: int) -> None:
    status, headers, _ = _http(endpoint, {"readonly": "0"}, b"SELECT 1")
    assert status == 500 and headers["X-ClickHouse-Exception-Code"] == "164"
    status, headers, _ = _http(endpoint, {"allow_ddl": "1"}, b"SELECT 1")
    assert headers["X-ClickHouse-Exception-Code"] == "164"


def test_authentication(endpoint: int) -> None:
    client = clickhouse_connect.get_client(
        host="127.0.0.1", port=endpoint, username="alice", password=ALICE_PASSWORD
    )
    assert client.query("SELECT 1").result_rows == [(1,)]
    with pytest.raises(DatabaseError) as info:
        clickhouse_connect.get_client(
            host="127.0.0.1", port=endpoint, username="alice", password="wrong"
        )
    assert info.value.code == 516
    status, headers, body = _http(
        endpoint,
        {"query": "SELECT 1"},
        headers={"X-ClickHouse-User": "alice", "X-ClickHouse-Key": "wrong"},
    )
    assert status == 403 and headers["X-ClickHouse-Exception-Code"] == "516"
    assert b"Authentication failed" in body
    status, _, body = _http(
        endpoint,
        {"query": "SELECT 1"},
        headers={"X-ClickHouse-User": "alice", "X-ClickHouse-Key": ALICE_PASSWORD},
    )
    assert status == 200 and body == b"1\n"
    status, headers, _ = _http(
        endpoint, {"query": "SELECT 1"}, headers={"X-ClickHouse-User": "alice"}
    )
    assert status == 401 and headers["X-ClickHouse-Exception-Code"] == "194"
    status, _, _ = _http(endpoint, {"query": "SELECT 1", "user": "mallory"})
    assert status == 403


def test_limits(endpoint: int) -> None:
    # one block bigger than the limit: refused before any output
    status, headers, body = _http(
        endpoint, {"max_block_size": "4000000"}, b"SELECT number FROM numbers(2000000)"
    )
    assert status == 500 and headers["X-ClickHouse-Exception-Code"] == "396", body[-300:]
    # past the first block the status is sent already: the exception ends the body, as in
    # ClickHouse without wait_end_of_query
    status, _, body = _http(endpoint, {}, b"SELECT number FROM numbers(2000000)")
    tail = body.rsplit(b"\nCode: ", 1)[1]
    assert tail.startswith(b"396. DB::Exception: ") and b"(TOO_MANY_ROWS_OR_BYTES)" in tail
    # unless the client waits for the end of the query
    status, headers, body = _http(
        endpoint, {"wait_end_of_query": "1"}, b"SELECT number FROM numbers(2000000)"
    )
    assert status == 500 and headers["X-ClickHouse-Exception-Code"] == "396"
    # a request may lower a limit, never raise it
    _, _, body = _http(
        endpoint,
        {"max_result_rows": "5000000000", "max_execution_time": "7"},
        b"SELECT getSetting('max_result_rows'), getSetting('max_execution_time')",
    )
    assert body == b"1000000\t7\n"
    status, headers, body = _http(
        endpoint,
        {"max_execution_time": "0.2", "timeout_before_checking_execution_speed": "0"},
        b"SELECT count() FROM numbers(100000000000)",
    )
    assert status == 408 and headers["X-ClickHouse-Exception-Code"] == "159", body


def _stream(target: str, signal: str, out: dict[str, Any]) -> None:
    cfg = LoadConfig(
        target=target, signal=signal, batch=200, concurrency=4, duration=4.0, timeout=10.0
    )
    out[signal] = asyncio.run(run(cfg))


def test_queries_during_ingest_lose_nothing(tmp_path: Path) -> None:
    config, port = _config(tmp_path)
    results: dict[str, Any] = {}
    counts: list[int] = []
    with Collector(tmp_path, config) as collector:
        sender = threading.Thread(
            target=_stream, args=("grpc://" + ports(config)["grpc"], "traces", results)
        )
        sender.start()
        client = clickhouse_connect.get_client(host="127.0.0.1", port=port)
        while sender.is_alive() or len(counts) < 3:
            counts.append(client.query("SELECT count() FROM otel_traces").result_rows[0][0])
            client.query(
                "SELECT TraceId, SpanName, Duration FROM otel_traces "
                "ORDER BY Timestamp DESC LIMIT 20"
            )
            client.query_arrow("SELECT ServiceName, count() FROM otel_traces GROUP BY ServiceName")
        sender.join()
        assert collector.stop() == 0, collector.logs()
    items = results["traces"]["items"]
    assert items["acknowledged"] > 0 and items["failed"] == 0, results
    # the data became visible while the stream went on, and the queries kept answering
    assert counts == sorted(counts) and counts[-1] > 0
    stored = query_store(tmp_path / "store", "SELECT count() AS n FROM otel.otel_traces")
    assert int(stored[0]["n"]) >= items["acknowledged"]


def _held_stream(port: int) -> socket.socket:
    """A query whose client does not read: its response fills the socket and holds its slot."""
    sock = socket.create_connection(("127.0.0.1", port))
    body = b"SELECT repeat('x', 200) FROM numbers(900000)"
    sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    return sock


def test_concurrency_limit_and_abandoned_streams(endpoint: int) -> None:
    held = [_held_stream(endpoint) for _ in range(8)]
    try:
        deadline = time.monotonic() + 60
        while True:
            status, headers, body = _http(endpoint, {"query": "SELECT 1"})
            if status != 200:
                break
            assert time.monotonic() < deadline, "the held queries never filled the slots"
            time.sleep(0.05)
        assert headers["X-ClickHouse-Exception-Code"] == "202", body
        assert b"(TOO_MANY_SIMULTANEOUS_QUERIES)" in body
    finally:
        for sock in held:
            sock.close()
    # the clients went away: their queries are cancelled and the slots come back
    deadline = time.monotonic() + 60
    while _http(endpoint, {"query": "SELECT 1"})[0] != 200:
        assert time.monotonic() < deadline, "slots of abandoned queries were not released"
        time.sleep(0.05)


def test_query_endpoint_config() -> None:
    from pydantic import ValidationError

    from exporters.clickhouse.config import ClickHouseConfig

    cfg = ClickHouseConfig.model_validate(
        {
            "endpoint": "chdb://./data",
            "query_endpoint": {
                "endpoint": "0.0.0.0:8123",
                "max_execution_time": "2m",
                "users": {"ro": {"password_sha256_hex": "AB" * 32, "readonly": 2}},
            },
        }
    )
    endpoint = cfg.query_endpoint
    assert endpoint.address() == ("0.0.0.0", 8123)
    assert endpoint.max_execution_time == 120.0
    assert endpoint.accounts()["ro"].password_sha256_hex == "ab" * 32
    # a number is seconds, as in ClickHouse
    seconds = ClickHouseConfig.model_validate(
        {"endpoint": "chdb://x", "query_endpoint": {"max_execution_time": 5}}
    )
    assert seconds.query_endpoint.max_execution_time == 5.0
    # off unless configured; then one password-less `default` user
    plain = ClickHouseConfig.model_validate({"endpoint": "chdb://x"})
    assert plain.query_endpoint.endpoint == "" and list(plain.query_endpoint.accounts()) == [
        "default"
    ]
    for bad in (
        {"endpoint": "http://ch:8123", "query_endpoint": {"endpoint": "127.0.0.1:8123"}},
        {"endpoint": "chdb://x", "query_endpoint": {"endpoint": "8123"}},
        {"endpoint": "chdb://x", "query_endpoint": {"users": {"u": {"password_sha256_hex": "x"}}}},
        {"endpoint": "chdb://x", "query_endpoint": {"users": {"u": {"readonly": 3}}}},
        {"endpoint": "chdb://x", "query_endpoint": {"max_concurrent_queries": 0}},
        {"endpoint": "chdb://x", "query_endpoint": {"unknown_key": 1}},
    ):
        with pytest.raises(ValidationError):
            ClickHouseConfig.model_validate(bad)


def test_compressed_request_body(endpoint: int) -> None:
    sql = b"SELECT 40 + 2"
    status, _, body = _http(endpoint, {}, gzip.compress(sql), {"Content-Encoding": "gzip"})
    assert status == 200 and body == b"42\n"
    zstd_body = zstandard.ZstdCompressor().compress(sql)
    status, _, body = _http(endpoint, {}, zstd_body, {"Content-Encoding": "zstd"})
    assert status == 200 and body == b"42\n"
    status, headers, body = _http(endpoint, {}, b"not gzip", {"Content-Encoding": "gzip"})
    assert status == 500 and headers["X-ClickHouse-Exception-Code"] == "271"
