# Contract test of the HTTP API (../shared/API.md) from Elixir, with OTP's :httpc only:
# Debian's Elixir 1.14 on OTP 25 has no JSON library, so it checks status codes, headers and
# the documented field names in the raw bodies.
#
#   BASE_URL=http://127.0.0.1:8000 TOKEN=... elixir clients/elixir/contract_test.exs
#
# Exits 0 when every check passes, 1 otherwise (each failure is printed).
defmodule Contract do
  def start do
    {:ok, _} = Application.ensure_all_started(:inets)
    base = System.get_env("BASE_URL", "http://127.0.0.1:8000")
    token = System.get_env("TOKEN", "")
    Process.put(:failures, [])
    Process.put(:checks, 0)
    {base, token}
  end

  # One request; returns {status, headers (lower-case names), body}.
  def request(method, url, headers, body \\ nil, content_type \\ ~c"application/json") do
    headers = for {k, v} <- headers, do: {String.to_charlist(k), String.to_charlist(v)}
    url = String.to_charlist(url)

    req =
      if body == nil,
        do: {url, headers},
        else: {url, headers, content_type, body}

    opts = [timeout: 120_000, connect_timeout: 10_000]

    case :httpc.request(method, req, opts, body_format: :binary) do
      {:ok, {{_, status, _}, resp_headers, resp_body}} ->
        hs = for {k, v} <- resp_headers, into: %{}, do: {String.downcase(to_string(k)), to_string(v)}
        {status, hs, resp_body}

      {:error, reason} ->
        {0, %{}, inspect(reason)}
    end
  end

  # Retry on 503/429 after Retry-After, as the Req client does.
  def request_with_retry(method, url, headers, body, content_type \\ ~c"application/json", tries \\ 4) do
    {status, hs, resp} = request(method, url, headers, body, content_type)

    if status in [429, 503] and tries > 1 do
      delay = hs |> Map.get("retry-after", "1") |> String.to_integer()
      Process.sleep(delay * 1000)
      request_with_retry(method, url, headers, body, content_type, tries - 1)
    else
      {status, hs, resp}
    end
  end

  def check(name, ok?, detail) do
    Process.put(:checks, Process.get(:checks) + 1)

    if ok? do
      IO.puts("ok   #{name}")
    else
      IO.puts("FAIL #{name}: #{detail}")
      Process.put(:failures, [name | Process.get(:failures)])
    end
  end

  def has_all(body, needles), do: Enum.all?(needles, &String.contains?(body, &1))

  def error_shape?(body), do: has_all(body, [~s("error"), ~s("code"), ~s("message"), ~s("request_id")])

  def finish do
    failures = Process.get(:failures)
    checks = Process.get(:checks)

    if failures == [] do
      IO.puts("#{checks} checks passed")
      System.halt(0)
    else
      IO.puts("#{length(failures)} of #{checks} checks failed")
      System.halt(1)
    end
  end
end

{base, token} = Contract.start()
auth = [{"authorization", "Bearer " <> token}]
rid = "elixir-contract-" <> Integer.to_string(System.unique_integer([:positive]))

# Health and metrics: no token needed.
{s, h, b} = Contract.request(:get, base <> "/health/live", [])
Contract.check("GET /health/live is 200 with an X-Request-ID", s == 200 and Map.has_key?(h, "x-request-id"), "#{s} #{b}")
{s, _, b} = Contract.request(:get, base <> "/health", [])
Contract.check("GET /health is ready with components", s == 200 and Contract.has_all(b, [~s("status"), ~s("components")]), "#{s} #{b}")
{s, _, b} = Contract.request(:get, base <> "/metrics", [])
Contract.check("GET /metrics is Prometheus text", s == 200 and String.contains?(b, "serve_app_requests_total"), "#{s}")

# Auth: /v1 needs the token, and errors have the one JSON shape.
{s, _, b} = Contract.request(:post, base <> "/v1/embeddings", [], ~s({"input": "oat milk"}))
Contract.check("no token is 401 in the error shape", s == 401 and Contract.error_shape?(b), "#{s} #{b}")

# Embeddings: the request id is echoed.
{s, h, b} = Contract.request_with_retry(:post, base <> "/v1/embeddings", [{"x-request-id", rid} | auth], ~s({"input": ["oat milk", "Oatly barista edition"]}))
Contract.check("POST /v1/embeddings is 200 with the OpenAI fields", s == 200 and Contract.has_all(b, [~s("object":"list"), ~s("embedding"), ~s("index"), ~s("usage"), ~s("prompt_tokens")]), "#{s} #{String.slice(b, 0, 300)}")
Contract.check("X-Request-ID is echoed", Map.get(h, "x-request-id") == rid, inspect(Map.get(h, "x-request-id")))

# Bad input: invalid JSON is 400, a wrong content type 415, both in the error shape.
{s, _, b} = Contract.request(:post, base <> "/v1/embeddings", auth, "{not json")
Contract.check("invalid JSON is 400", s == 400 and Contract.error_shape?(b), "#{s} #{b}")
{s, _, b} = Contract.request(:post, base <> "/v1/ocr", auth, "plain text", ~c"text/plain")
Contract.check("OCR of text/plain is 415", s == 415 and Contract.error_shape?(b), "#{s} #{b}")

# Documents and search.
ns = "elixir-contract"
docs = ~s({"namespace": "#{ns}", "documents": [{"id": "oatly", "text": "Oatly barista edition oat drink", "metadata": {"kind": "item"}}, {"id": "cheddar", "text": "Mature cheddar cheese 400 g", "metadata": {"kind": "item"}}]})
{s, _, b} = Contract.request_with_retry(:post, base <> "/v1/documents", auth, docs)
Contract.check("POST /v1/documents upserts", s == 200 and String.contains?(b, ~s("upserted":2)), "#{s} #{b}")
{s, _, b} = Contract.request_with_retry(:post, base <> "/v1/search", auth, ~s({"namespace": "#{ns}", "query": "oat milk", "k": 1, "filter": {"kind": "item"}}))
Contract.check("POST /v1/search finds by meaning", s == 200 and Contract.has_all(b, [~s("results"), ~s("id":"oatly"), ~s("score")]), "#{s} #{b}")
{s, _, b} = Contract.request_with_retry(:post, base <> "/v1/search", auth, ~s({"namespace": "elixir-contract-empty-#{System.unique_integer([:positive])}", "query": "oat milk"}))
Contract.check("POST /v1/search of an empty namespace is 200 with no results", s == 200 and String.contains?(b, ~s("results":[])), "#{s} #{b}")
{s, _, b} = Contract.request(:post, base <> "/v1/search", auth, ~s({"namespace": "#{ns}", "query": "x", "k": 1000}))
Contract.check("k out of range is 422", s == 422 and Contract.error_shape?(b), "#{s} #{b}")
{s, _, _} = Contract.request(:delete, base <> "/v1/documents/#{ns}/oatly", auth)
Contract.check("DELETE /v1/documents/{ns}/{id} is 204", s == 204, "#{s}")
{s, _, b} = Contract.request(:delete, base <> "/v1/documents/#{ns}/oatly", auth)
Contract.check("DELETE of a missing document is 404", s == 404 and Contract.error_shape?(b), "#{s} #{b}")
Contract.request(:delete, base <> "/v1/documents/#{ns}/cheddar", auth)

# Receipts and plans.
{s, _, b} = Contract.request(:post, base <> "/v1/receipts/parse", auth, ~s({"lines": ["FRESH MART", "MILK 2 @ 1.99 3.98", "BREAD 2.50", "TOTAL 6.48"]}))
Contract.check("POST /v1/receipts/parse reads items", s == 200 and Contract.has_all(b, [~s("items"), ~s("consistent":true), ~s("total")]), "#{s} #{b}")
plan = ~s({"days": 1, "meals": ["dinner"], "recipes": [{"id": "r1", "name": "Rice bowl", "meal": "dinner", "servings": 1, "nutrition": {"calories": 600}, "ingredients": [{"item": "rice", "quantity": 200, "unit": "g"}]}], "prices": [{"item": "rice", "unit": "g", "package_quantity": 1000, "package_price": 2.49}], "timeout_ms": 5000})
{s, _, b} = Contract.request_with_retry(:post, base <> "/v1/plans", auth, plan)
Contract.check("POST /v1/plans is optimal with a shopping list", s == 200 and Contract.has_all(b, [~s("status":"optimal"), ~s("shopping_list"), ~s("total_cost"), ~s("daily_nutrition")]), "#{s} #{b}")
{s, _, b} = Contract.request(:post, base <> "/v1/plans", auth, ~s({"days": 1, "meals": ["dinner"], "recipes": []}))
Contract.check("a plan with no recipes is 422", s == 422 and Contract.error_shape?(b), "#{s} #{b}")

Contract.finish()
