"""/v1/documents and /v1/search through the real Serve app, the real embedding model and the
session's real embedded PostgreSQL."""

from __future__ import annotations

import os
import signal
import time
import uuid

import httpx
import pytest

from tests.helpers.waiting import wait_for

pytestmark = pytest.mark.e2e

GROCERIES = {
    "oatly": ("Oatly barista edition oat drink 1 l", {"kind": "item", "aisle": "dairy"}),
    "bananas": ("Bananas, loose, per kg", {"kind": "item", "aisle": "produce"}),
    "detergent": ("Laundry detergent, 40 washes", {"kind": "item", "aisle": "household"}),
    "pasta": ("Spaghetti with tomato sauce and basil", {"kind": "recipe", "aisle": None}),
    "bread": ("Sourdough bread loaf", {"kind": "item", "aisle": "bakery"}),
    "curry": ("Chickpea curry with spinach and rice", {"kind": "recipe", "tags": ["vegan"]}),
}


def namespace() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


def post(server, path: str, body: object, timeout: float = 60) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, headers=server.headers, timeout=timeout)


def upsert(server, ns: str, docs: dict) -> httpx.Response:
    documents = [{"id": i, "text": t, "metadata": m} for i, (t, m) in docs.items()]
    return post(server, "/v1/documents", {"namespace": ns, "documents": documents})


def search(server, ns: str, query: str, **extra) -> httpx.Response:
    return post(server, "/v1/search", {"namespace": ns, "query": query, **extra})


def error_code(response: httpx.Response) -> str:
    return response.json()["error"]["code"]


def test_upsert_then_search_by_meaning(serve_server):
    ns = namespace()
    response = upsert(serve_server, ns, GROCERIES)
    assert response.status_code == 200, response.text
    assert response.json() == {"upserted": len(GROCERIES)}
    found = search(serve_server, ns, "oat milk", k=3)
    assert found.status_code == 200, found.text
    results = found.json()["results"]
    assert results[0]["id"] == "oatly"
    assert results[0]["text"] == GROCERIES["oatly"][0]
    assert results[0]["metadata"] == GROCERIES["oatly"][1]
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True) and all(-1 <= s <= 1 for s in scores)
    assert len(results) == 3


def test_concurrent_bulk_ingestion_is_queued_not_shed_and_queries_overtake_it(serve_server):
    """Eight 100-document upserts at once (the test limit per request) are more than the 0.6 s
    interactive queueing budget: as bulk work they all queue and land, and a search sent
    meanwhile overtakes them."""
    from concurrent.futures import ThreadPoolExecutor

    ns = namespace()
    assert upsert(serve_server, ns, GROCERIES).status_code == 200

    def batch(b: int) -> list[dict]:
        products = ["oat drink", "rye bread", "penne", "tofu", "peanut butter", "spinach"]
        return [
            {"id": f"bulk-{b}-{i}", "text": f"{products[i % 6]} pack {i} from batch {b}"}
            for i in range(100)
        ]

    # one batch first: the ingress learns the model's pace (it admits anything before that)
    assert post(serve_server, "/v1/documents", {"namespace": ns, "documents": batch(8)}).is_success
    with ThreadPoolExecutor(9) as pool:
        uploads = [
            pool.submit(
                post, serve_server, "/v1/documents", {"namespace": ns, "documents": batch(b)}
            )
            for b in range(8)
        ]
        time.sleep(0.3)  # the uploads are queued or running
        started = time.monotonic()
        found = search(serve_server, ns, "laundry detergent", k=1)
        search_s = time.monotonic() - started
        statuses = [u.result().status_code for u in uploads]
        ingestion_s = time.monotonic() - started
    assert statuses == [200] * 8, [u.result().text[:200] for u in uploads]
    assert found.status_code == 200, found.text
    assert found.json()["results"][0]["id"] == "detergent"
    assert search_s < ingestion_s  # it did not wait for the whole import
    count = search(serve_server, ns, "oat drink", k=100)
    assert count.status_code == 200 and len(count.json()["results"]) == 100


def test_filters_and_k(serve_server):
    ns = namespace()
    assert upsert(serve_server, ns, GROCERIES).status_code == 200
    recipes = search(serve_server, ns, "dinner", k=10, filter={"kind": "recipe"}).json()
    assert {r["id"] for r in recipes["results"]} == {"pasta", "curry"}
    vegan = search(serve_server, ns, "dinner", filter={"tags": ["vegan"]}).json()["results"]
    assert [r["id"] for r in vegan] == ["curry"]
    nothing = search(serve_server, ns, "dinner", filter={"kind": "tool"})
    assert nothing.status_code == 200 and nothing.json()["results"] == []
    assert len(search(serve_server, ns, "food", k=100).json()["results"]) == len(GROCERIES)


def test_reupsert_replaces_text_metadata_and_vector(serve_server):
    ns = namespace()
    assert upsert(serve_server, ns, {"x": ("Fresh strawberries", {"v": 1})}).status_code == 200
    assert upsert(serve_server, ns, {"y": ("Whole milk", {})}).status_code == 200
    again = upsert(serve_server, ns, {"x": ("Engine motor oil 5W-30", {"v": 2})})
    assert again.status_code == 200
    results = search(serve_server, ns, "car lubricant", k=10).json()["results"]
    assert results[0]["id"] == "x"
    assert results[0]["text"] == "Engine motor oil 5W-30" and results[0]["metadata"] == {"v": 2}
    assert len(results) == 2  # replaced, not added


def test_one_invalid_document_stores_nothing(serve_server):
    ns = namespace()
    docs = [{"id": "a", "text": "apples"}, {"id": "b", "text": "   "}]
    response = post(serve_server, "/v1/documents", {"namespace": ns, "documents": docs})
    assert response.status_code == 422
    assert "documents.1.text" in response.json()["error"]["message"]
    missing = search(serve_server, ns, "apples")
    assert missing.status_code == 200 and missing.json() == {"results": []}


def test_namespaces_are_isolated(serve_server):
    a, b = namespace(), namespace()
    assert upsert(serve_server, a, {"same": ("Apples", {})}).status_code == 200
    assert upsert(serve_server, b, {"same": ("Bicycle tyre", {})}).status_code == 200
    assert search(serve_server, a, "fruit").json()["results"][0]["text"] == "Apples"
    assert search(serve_server, b, "fruit").json()["results"][0]["text"] == "Bicycle tyre"


def test_delete(serve_server):
    ns = namespace()
    assert upsert(serve_server, ns, {"a/1": ("Apples", {}), "b": ("Pears", {})}).status_code == 200
    url = f"{serve_server.url}/v1/documents/{ns}/a/1"
    first = httpx.delete(url, headers=serve_server.headers, timeout=30)
    assert first.status_code == 204 and first.content == b""
    second = httpx.delete(url, headers=serve_server.headers, timeout=30)
    assert second.status_code == 404 and error_code(second) == "not_found"
    assert [r["id"] for r in search(serve_server, ns, "fruit").json()["results"]] == ["b"]


def test_empty_namespace_has_no_results(serve_server):
    """A new user's empty pantry is normal: an unknown or emptied namespace answers 200 []."""
    ns = namespace()
    unknown = search(serve_server, ns, "oat milk")
    assert unknown.status_code == 200 and unknown.json() == {"results": []}
    assert upsert(serve_server, ns, {"only": ("Oat milk", {})}).status_code == 200
    url = f"{serve_server.url}/v1/documents/{ns}/only"
    gone = httpx.delete(url, headers=serve_server.headers, timeout=30)
    assert gone.status_code == 204
    emptied = search(serve_server, ns, "oat milk", filter={"kind": "item"})
    assert emptied.status_code == 200 and emptied.json() == {"results": []}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"namespace": "n", "query": "x", "k": 0}, 422, "validation_error"),
        ({"namespace": "n", "query": "x", "k": 101}, 422, "validation_error"),
        ({"namespace": "n", "query": ""}, 422, "validation_error"),
        ({"namespace": "", "query": "x"}, 422, "validation_error"),
        ({"namespace": "a/b", "query": "x"}, 422, "validation_error"),
        ({"query": "x"}, 422, "validation_error"),
        ({"namespace": "n", "query": "x", "filter": "kind"}, 422, "validation_error"),
        ({"namespace": "n", "query": "x" * 30_000}, 413, "input_too_long"),
    ],
)
def test_bad_search_requests(serve_server, body, status, code):
    response = post(serve_server, "/v1/search", body)
    assert response.status_code == status, response.text
    assert error_code(response) == code


def test_bad_upserts(serve_server):
    ns = namespace()
    huge = [{"id": str(i), "text": "t"} for i in range(101)]  # the test limit is 100
    response = post(serve_server, "/v1/documents", {"namespace": ns, "documents": huge})
    assert (response.status_code, error_code(response)) == (413, "too_many_documents")
    dup = [{"id": "a", "text": "one"}, {"id": "a", "text": "two"}]
    response = post(serve_server, "/v1/documents", {"namespace": ns, "documents": dup})
    assert (response.status_code, error_code(response)) == (422, "validation_error")
    assert "duplicate id 'a'" in response.json()["error"]["message"]
    empty = post(serve_server, "/v1/documents", {"namespace": ns, "documents": []})
    assert empty.status_code == 422
    big_meta = [{"id": "a", "text": "t", "metadata": {"blob": "x" * 20_000}}]
    response = post(serve_server, "/v1/documents", {"namespace": ns, "documents": big_meta})
    assert (response.status_code, error_code(response)) == (413, "metadata_too_large")
    bad_json = httpx.post(
        f"{serve_server.url}/v1/documents",
        content=b'{"namespace": "n", "documents": [',
        headers={**serve_server.headers, "Content-Type": "application/json"},
        timeout=30,
    )
    assert (bad_json.status_code, error_code(bad_json)) == (400, "invalid_json")
    # PostgreSQL cannot store NUL or unpaired surrogates (found by schemathesis): 422, not 500
    for doc in (
        {"id": "a", "text": "oat\u0000milk"},
        {"id": "a", "text": "t", "metadata": {"k\u0000": 1}},
    ):
        response = post(serve_server, "/v1/documents", {"namespace": ns, "documents": [doc]})
        assert (response.status_code, error_code(response)) == (422, "validation_error")
        assert "NUL" in response.json()["error"]["message"]
    lone = httpx.post(
        f"{serve_server.url}/v1/documents",
        content=b'{"namespace": "n", "documents": [{"id": "a", "text": "\\ud800"}]}',
        headers={**serve_server.headers, "Content-Type": "application/json"},
        timeout=30,
    )
    assert lone.status_code in (400, 422), lone.text
    # Nothing of the rejected batches was stored.
    assert search(serve_server, ns, "t").json() == {"results": []}


def raw_post(server, path: str, body: bytes) -> httpx.Response:
    headers = {**server.headers, "Content-Type": "application/json"}
    return httpx.post(f"{server.url}{path}", content=body, headers=headers, timeout=30)


@pytest.mark.parametrize(
    ("body", "where"),
    [
        # orjson cannot write integers beyond 64 bits (found by a long schemathesis run: 500)
        (b'{"namespace": "n", "query": "x", "filter": {"n": 1180591620717411303424}}', "filter"),
        (b'{"namespace": "n", "query": "x", "filter": {"n": [1, -9223372036854775809]}}', "filter"),
        # Python's JSON parser reads NaN, Infinity and 1e400 (inf): not JSON, never stored
        (b'{"namespace": "n", "query": "x", "filter": {"f": NaN}}', "filter"),
        (b'{"namespace": "n", "query": "x", "filter": {"f": 1e400}}', "filter"),
        (b'{"namespace": "n", "documents": [{"id": "a", "text": "t", '
         b'"metadata": {"n": 18446744073709551616}}]}', "metadata"),
        (b'{"namespace": "n", "documents": [{"id": "a", "text": "t", '
         b'"metadata": {"x": [-Infinity]}}]}', "metadata"),
        (b'{"namespace": "n", "documents": [{"id": "a", "text": "t", "metadata": {"d": '
         + b"[" * 40 + b"]" * 40 + b"}}]}", "metadata"),
    ],
)  # fmt: skip
def test_json_values_that_would_not_round_trip_are_422(serve_server, body: bytes, where: str):
    path = "/v1/search" if b'"query"' in body else "/v1/documents"
    response = raw_post(serve_server, path, body)
    assert (response.status_code, error_code(response)) == (422, "validation_error"), response.text
    assert where in response.json()["error"]["message"]


def test_nesting_deeper_than_the_json_parser_goes_is_a_clear_error(serve_server):
    deep = b'{"namespace": "n", "query": "x", "filter": {"d": ' + b"[" * 100_000 + b"]" * 100_000
    response = raw_post(serve_server, "/v1/search", deep + b"}}")
    assert response.status_code in (400, 422), response.text
    assert error_code(response) in ("invalid_json", "validation_error")


def test_64_bit_integers_and_large_floats_round_trip(serve_server):
    ns = namespace()
    metadata = {"big": 2**63 - 1, "small": -(2**63), "float": 1.5e308, "nested": [[{"k": 1}]]}
    assert upsert(serve_server, ns, {"a": ("Oat milk", metadata)}).status_code == 200
    found = search(serve_server, ns, "oat", filter={"big": 2**63 - 1}).json()["results"]
    assert [r["metadata"] for r in found] == [metadata]


def store_health(server) -> dict:
    return httpx.get(f"{server.url}/health", timeout=30).json()["components"]["store"]


def test_store_health_is_reported(serve_server):
    component = store_health(serve_server)
    assert component["status"] == "ready"
    assert component["database"] == "embedded"
    assert tuple(int(p) for p in component["pgvector"].split(".")[:2]) >= (0, 8)


def test_database_down_gives_503_then_recovers_without_restart(serve_server):
    ns = namespace()
    assert upsert(serve_server, ns, {"milk": ("Whole milk", {})}).status_code == 200
    postgres = serve_server.postgres
    postgres.stop()
    try:
        down = search(serve_server, ns, "milk")
        assert down.status_code == 503, down.text
        assert error_code(down) == "store_unavailable"
        assert "Retry-After" in down.headers
        write = upsert(serve_server, ns, {"eggs": ("Eggs", {})})
        assert (write.status_code, error_code(write)) == (503, "store_unavailable")
        health = httpx.get(f"{serve_server.url}/health", timeout=30)
        assert health.status_code == 200 and health.json()["status"] == "degraded"
        assert health.json()["components"]["store"]["status"] == "unavailable"
        # Other models keep serving.
        emb = post(serve_server, "/v1/embeddings", {"input": "still up"})
        assert emb.status_code == 200
    finally:
        postgres.ensure_running()
    wait_for(lambda: store_health(serve_server)["status"] == "ready", 30, "the store back")
    back = search(serve_server, ns, "milk")
    assert back.status_code == 200 and back.json()["results"][0]["id"] == "milk"


def test_acknowledged_upsert_survives_sigkill_of_postgres(serve_server):
    ns = namespace()
    assert upsert(serve_server, ns, {"acked": ("Cheddar cheese", {})}).status_code == 200
    postgres = serve_server.postgres
    os.kill(postgres.pid(), signal.SIGKILL)
    wait_for(lambda: not postgres.running(), 10, "PostgreSQL to go")
    postgres.ensure_running()
    wait_for(lambda: search(serve_server, ns, "cheese").status_code == 200, 30, "search back")
    assert search(serve_server, ns, "cheese").json()["results"][0]["id"] == "acked"
