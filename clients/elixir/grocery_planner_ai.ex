defmodule GroceryPlannerAI do
  @moduledoc """
  Client for the grocery-planner-ai model server (the contract is `../shared/API.md`),
  written for `Req` as Phoenix apps use it. Copy this file into the Phoenix app and add
  `{:req, "~> 0.5"}` to its deps.

      client = GroceryPlannerAI.new(
        base_url: "http://grocery-planner-ai.flycast",   # Fly's private network
        token: System.fetch_env!("GROCERY_AI_TOKEN")
      )
      {:ok, %{"data" => [%{"embedding" => vector}]}} = GroceryPlannerAI.embeddings(client, "oat milk")

  Every call sends `Authorization: Bearer <token>` and an `X-Request-ID` (yours via
  `request_id:`, or a new one) that the server logs and echoes back. A 503 or 429 (the server
  shedding load, a replica restarting) is retried after its `Retry-After`, up to
  `max_retries` times; every route is safe to retry (upserts are idempotent per id, plans are
  pure). Errors come back as `{:error, %{status: s, code: c, message: m, request_id: id}}`
  from the server's JSON error shape, or `{:error, exception}` for transport failures.
  """

  @default_timeout 60_000

  @doc "A client. Options: `:base_url` (required), `:token`, `:max_retries` (3), `:receive_timeout` (ms)."
  def new(opts) do
    Req.new(
      base_url: Keyword.fetch!(opts, :base_url),
      auth: bearer(Keyword.get(opts, :token)),
      receive_timeout: Keyword.get(opts, :receive_timeout, @default_timeout),
      retry: &retry?/2,
      retry_delay: &retry_delay/1,
      max_retries: Keyword.get(opts, :max_retries, 3)
    )
  end

  # -- one function per route --------------------------------------------------------------

  @doc "GET /health: readiness and per-component status."
  def health(client, opts \\ []), do: call(client, :get, "/health", nil, opts)

  @doc "POST /v1/embeddings (OpenAI-compatible); `input` is a string or a list of strings."
  def embeddings(client, input, opts \\ []) do
    body = %{input: input} |> put_opt(:model, opts[:model])
    call(client, :post, "/v1/embeddings", {:json, body}, opts)
  end

  @doc "POST /v1/documents: upsert `[%{id:, text:, metadata:}]` into `namespace` (all or nothing)."
  def upsert_documents(client, namespace, documents, opts \\ []) do
    call(client, :post, "/v1/documents", {:json, %{namespace: namespace, documents: documents}}, opts)
  end

  @doc "DELETE /v1/documents/{namespace}/{id}: `:ok`, or an error with status 404."
  def delete_document(client, namespace, id, opts \\ []) do
    path = "/v1/documents/#{URI.encode_www_form(namespace)}/#{URI.encode_www_form(id)}"

    case call(client, :delete, path, nil, opts) do
      {:ok, _} -> :ok
      error -> error
    end
  end

  @doc """
  POST /v1/search: the `k` (default 10) best matches, optionally filtered by metadata.
  A namespace with no documents (a new user's empty pantry) is `{:ok, %{"results" => []}}`.
  """
  def search(client, namespace, query, opts \\ []) do
    body =
      %{namespace: namespace, query: query}
      |> put_opt(:k, opts[:k])
      |> put_opt(:filter, opts[:filter])

    call(client, :post, "/v1/search", {:json, body}, opts)
  end

  @doc "POST /v1/ocr: a receipt image (JPEG, PNG, WebP, PDF) as the raw body."
  def ocr(client, image, content_type, opts \\ []) do
    receipt = Keyword.get(opts, :receipt, true)
    path = "/v1/ocr?receipt=#{receipt}"
    call(client, :post, path, {:raw, image, content_type}, opts)
  end

  @doc "POST /v1/receipts/parse: a receipt from text lines read elsewhere."
  def parse_receipt(client, lines, opts \\ []) do
    call(client, :post, "/v1/receipts/parse", {:json, %{lines: lines}}, opts)
  end

  @doc "POST /v1/plans: a meal plan and shopping list (see API.md for the request)."
  def plan(client, request, opts \\ []) do
    # a plan may take up to its timeout_ms on the server
    timeout = Map.get(request, :timeout_ms, Map.get(request, "timeout_ms", 5_000)) + 15_000
    call(client, :post, "/v1/plans", {:json, request}, Keyword.put_new(opts, :receive_timeout, timeout))
  end

  # -- plumbing ----------------------------------------------------------------------------

  defp call(client, method, path, body, opts) do
    request_id = Keyword.get_lazy(opts, :request_id, &new_request_id/0)

    req_opts =
      [method: method, url: path, headers: [{"x-request-id", request_id}]]
      |> put_body(body)
      |> put_opt_kw(:receive_timeout, opts[:receive_timeout])

    case Req.request(client, req_opts) do
      {:ok, %Req.Response{status: status, body: body}} when status in 200..299 ->
        {:ok, body}

      {:ok, %Req.Response{status: status, body: body} = response} ->
        {:error, error_from(status, body, response, request_id)}

      {:error, exception} ->
        {:error, exception}
    end
  end

  defp put_body(opts, nil), do: opts
  defp put_body(opts, {:json, body}), do: Keyword.put(opts, :json, body)

  defp put_body(opts, {:raw, data, content_type}) do
    opts
    |> Keyword.put(:body, data)
    |> Keyword.update!(:headers, &[{"content-type", content_type} | &1])
  end

  defp error_from(status, %{"error" => %{} = error}, _response, request_id) do
    %{
      status: status,
      code: error["code"],
      message: error["message"],
      request_id: error["request_id"] || request_id
    }
  end

  defp error_from(status, body, _response, request_id) do
    %{status: status, code: nil, message: inspect(body), request_id: request_id}
  end

  @doc false
  # Retry what the server says is temporary: load shedding (503, 429) and transport errors.
  def retry?(_request, %Req.Response{status: status}) when status in [429, 503], do: true
  def retry?(_request, %Req.TransportError{}), do: true
  def retry?(_request, _response_or_exception), do: false

  @doc false
  # Req passes the attempt number; the server's Retry-After is honoured by Req itself when
  # present (it takes precedence over retry_delay); this is the backoff without it.
  def retry_delay(attempt), do: min(200 * Integer.pow(2, attempt), 5_000) + :rand.uniform(100)

  @doc false
  def new_request_id do
    Base.encode16(:crypto.strong_rand_bytes(8), case: :lower)
  end

  defp bearer(nil), do: nil
  defp bearer(token), do: {:bearer, token}

  defp put_opt(map, _key, nil), do: map
  defp put_opt(map, key, value), do: Map.put(map, key, value)

  defp put_opt_kw(kw, _key, nil), do: kw
  defp put_opt_kw(kw, key, value), do: Keyword.put(kw, key, value)
end
